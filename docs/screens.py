"""Screenshots of what each notifier shows: ``python docs/screens.py`` (needs Debian's chromium).

Builds sample alerts (a story carried by three outlets: its first alert and two follow-ups),
renders them as the email, Slack and Telegram notifiers do, and screenshots each rendering
with headless Chromium into ``docs/screens/``. The email HTML is the notifier's own
(``alerts.mailhtml``); Slack's Block Kit payload and Telegram's HTML message are drawn on a
page that imitates each client (a sketch of the client, not the client), from the exact text
the notifiers send.
"""

from __future__ import annotations

import html
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from alerts.mailhtml import html_part  # noqa: E402
from alerts.slack import build_payload  # noqa: E402
from alerts.telegram import render  # noqa: E402
from alerts.wire import Alert, AlertItem, AlertMatch, AlertRule  # noqa: E402

OUT = ROOT / "docs" / "screens"
WHEN = datetime(2024, 8, 13, 9, 30, tzinfo=UTC)


def alert(n: int, feed: str, title: str, excerpt: str, kind: str = "new") -> Alert:
    words = [("Kursk", "kursk"), ("Ukrainian", "ukrain*")]
    matches = tuple(
        AlertMatch(term=term, field="summary", start=excerpt.find(w), end=excerpt.find(w) + len(w))
        for w, term in words
        if w in excerpt
    )
    sources = ["wire", "kyiv-daily", "world-desk"][: n + 1]
    extra = {"story_id": "3f2a9c", "sources": sources, "source_count": len(sources)}
    if kind == "update":
        extra |= {"first_alert_id": "a0", "first_title": STORY[0][1]}
    return Alert(
        id=f"a{n}",
        rule=AlertRule(id="kursk", title="Fighting in the Kursk region", severity="high"),
        item=AlertItem(
            id=f"i{n}",
            title=title,
            link=f"https://{feed}.example.org/kursk-{n}",
            excerpt=excerpt,
            published=WHEN,
            feed=feed,
        ),  # fmt: skip
        matches=matches,
        created=WHEN,
        kind=kind,
        extra=extra,
    )


STORY = [
    ("wire", "Ukrainian forces push deeper into Russia's Kursk region",
     ("Ukrainian troops advanced several kilometres into the Kursk region on Tuesday, officials "
     "in Kyiv said, as Moscow moved reserves to the border.")),
    ("kyiv-daily", "Kyiv says its troops hold new ground in Kursk",
     ("The General Staff said Ukrainian units consolidated positions near Sudzha in the Kursk "
     "region overnight.")),
    ("world-desk", "Russia rushes reinforcements to Kursk as Ukraine advances",
     ("Russian columns were seen heading towards Kursk, where Ukrainian forces hold dozens of "
     "villages.")),
]  # fmt: skip


def alerts() -> list[Alert]:
    return [
        alert(n, feed, title, excerpt, "new" if n == 0 else "update")
        for n, (feed, title, excerpt) in enumerate(STORY)
    ]


PAGE = """<!DOCTYPE html><html><head><meta charset="utf-8"><style>
body{{margin:0;padding:24px;background:{bg};font-family:-apple-system,'Segoe UI',Roboto,
Helvetica,Arial,sans-serif;font-size:15px;color:#1d1c1d}}{css}</style></head>
<body>{body}</body></html>"""

SLACK_CSS = """.msg{display:flex;gap:10px;margin-bottom:14px}.av{width:36px;height:36px;
border-radius:6px;background:#4a154b;color:#fff;font-weight:bold;display:flex;
align-items:center;justify-content:center}.who{font-weight:bold}.who span{color:#616061;
font-weight:normal;font-size:12px;margin-left:6px}.h{font-size:18px;font-weight:900;
margin:4px 0}.s{margin:4px 0;line-height:1.45}.c{color:#616061;font-size:12px;margin-top:4px}
.thread{margin-left:46px;border-left:2px solid #ddd;padding-left:12px}
.tlabel{color:#1264a3;font-size:13px;margin:0 0 10px 46px}a{color:#1264a3;text-decoration:none}"""

TG_CSS = """.bubble{background:#fff;border-radius:12px;padding:8px 12px;margin:0 0 10px 0;
max-width:460px;box-shadow:0 1px 1px rgba(0,0,0,.15);line-height:1.4;white-space:pre-wrap}
.reply{border-left:3px solid #3390ec;padding-left:8px;color:#3390ec;font-size:13px;
margin-bottom:4px;white-space:normal}a{color:#3390ec;text-decoration:none}"""


def mrkdwn(text: str) -> str:
    """Slack mrkdwn (already escaped by the notifier) to HTML, for the sketch."""
    text = re.sub(r"<(https?://[^|>]+)\|([^>]+)>", r'<a href="\1">\2</a>', text)
    text = re.sub(r"\*([^*\n]+)\*", r"<b>\1</b>", text)
    return text.replace("\n", "<br>")


def slack_page(items: list[Alert]) -> str:
    def message(a: Alert) -> str:
        blocks = build_payload(a)["blocks"]
        parts = []
        for b in blocks:
            if b["type"] == "header":
                parts.append(f'<div class="h">{html.escape(b["text"]["text"])}</div>')
            elif b["type"] == "section":
                parts.append(f'<div class="s">{mrkdwn(b["text"]["text"])}</div>')
            else:
                parts.append(f'<div class="c">{mrkdwn(b["elements"][0]["text"])}</div>')
        return (
            '<div class="msg"><div class="av">fw</div><div><div class="who">feedwatch'
            f"<span>APP 09:31</span></div>{''.join(parts)}</div></div>"
        )

    body = message(items[0]) + '<div class="tlabel">2 replies</div><div class="thread">'
    body += "".join(message(a) for a in items[1:]) + "</div>"
    return PAGE.format(bg="#ffffff", css=SLACK_CSS, body=body)


def telegram_page(items: list[Alert]) -> str:
    first = html.escape(items[0].item.title)
    body = "".join(
        '<div class="bubble">'
        + (f'<div class="reply">{first}</div>' if a.kind == "update" else "")
        + render(a)
        + "</div>"
        for a in items
    )
    return PAGE.format(bg="#8fb07d", css=TG_CSS, body=body)


def shoot(page: str, name: str, height: int, work: Path, browser: str) -> None:
    src = work / f"{name}.html"
    src.write_text(page, encoding="utf-8")
    subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         "--disable-background-networking", "--no-first-run", f"--user-data-dir={work / 'p'}",
         f"--window-size=700,{height}", f"--screenshot={OUT / (name + '.png')}",
         src.as_uri()],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    print(f"wrote {OUT / (name + '.png')}")


def main() -> int:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        print("docs/screens.py: no chromium (apt-get install chromium)", file=sys.stderr)
        return 2
    OUT.mkdir(parents=True, exist_ok=True)
    items = alerts()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        shoot(html_part([items[0]]), "email-alert", 290, work, browser)
        shoot(html_part([items[1]]), "email-follow-up", 300, work, browser)
        digest = [*items, alert(3, "wire", "Drone attack on Kursk power station", "A drone "
                  "struck a substation in the Kursk region, the governor said.")]  # fmt: skip
        digest[3] = replace(digest[3], extra={"story_id": "other"})
        shoot(html_part(digest), "email-digest", 700, work, browser)
        shoot(slack_page(items), "slack-thread", 450, work, browser)
        shoot(telegram_page(items), "telegram-replies", 620, work, browser)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
