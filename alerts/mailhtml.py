"""The HTML part of an alert mail: an inline-CSS template that mail clients render alike.

No external CSS, no images, no scripts: tables for layout (Outlook), every style inline
(Gmail drops ``<style>`` in some views), system fonts. What a reader sees:

* a card per story: the severity as a coloured label, the rule's title, the item's title
  linked, outlet and time, the excerpt with the matched words marked, the story's sources as
  small labels, and a footer with the rule id and matched terms;
* a follow-up (``kind: update``) as a compact reply: "↪ Also reported by …", the new item
  linked, the sources so far;
* a digest (several alerts) as a scannable list: a header with the count, then one card per
  story in arrival order, its follow-ups as compact rows inside it.

Pure: no I/O. Every piece of feed text is HTML-escaped (``alerts.escape.html_text``), links
are emitted only for http(s) URLs.
"""

from __future__ import annotations

from collections.abc import Sequence

from alerts.escape import (
    find_spans,
    highlight_needles,
    html_text,
    more_rules,
    one_line,
    published_text,
    render_spans,
    rules_text,
    safe_link,
    story_sources,
)
from alerts.wire import Alert

FONT = "-apple-system,BlinkMacSystemFont,'Segoe UI',Roboto,Helvetica,Arial,sans-serif"
SEVERITY_COLOURS = {
    "critical": "#7f1d1d",
    "high": "#dc2626",
    "medium": "#d97706",
    "low": "#2563eb",
    "info": "#6b7280",
}
MUTED = "#6b7280"
BORDER = "#e5e7eb"


def _label(severity: str) -> str:
    colour = SEVERITY_COLOURS.get(severity.lower(), SEVERITY_COLOURS["info"])
    return (
        f'<span style="display:inline-block;padding:2px 8px;border-radius:4px;'
        f"background:{colour};color:#ffffff;font-size:12px;font-weight:bold;"
        f'letter-spacing:0.04em">{html_text(severity.upper())}</span>'
    )


def _title(alert: Alert, size: int) -> str:
    title = html_text(one_line(alert.item.title) or "(untitled)")
    link = safe_link(alert.item.link)
    style = f"color:#111827;font-size:{size}px;font-weight:bold;text-decoration:none"
    if link is None:
        return f'<span style="{style}">{title}</span>'
    return f'<a href="{html_text(link)}" style="{style}">{title}</a>'


def _meta(alert: Alert) -> str:
    return (
        f'<div style="color:{MUTED};font-size:13px;margin-top:4px">'
        f"{html_text(one_line(alert.item.feed))} · {html_text(published_text(alert))}</div>"
    )


def _excerpt(alert: Alert) -> str:
    excerpt = one_line(alert.item.excerpt)
    if not excerpt:
        return ""
    spans = find_spans(excerpt, highlight_needles(alert))
    marked = render_spans(
        excerpt,
        spans,
        html_text,
        lambda s: f'<mark style="background:#fef08a;color:#111827;padding:0 1px">{s}</mark>',
    )
    return (
        f'<div style="margin-top:12px;padding-left:12px;border-left:3px solid {BORDER};'
        f'color:#374151;font-size:14px;line-height:1.5">{marked}</div>'
    )


def _sources(alert: Alert) -> str:
    n, names = story_sources(alert)
    if not names:
        return ""
    pills = " ".join(
        f'<span style="display:inline-block;margin:2px 4px 2px 0;padding:1px 8px;'
        f'border:1px solid {BORDER};border-radius:10px;font-size:12px;color:#374151">'
        f"{html_text(name)}</span>"
        for name in names
    )
    plural = "source" if n == 1 else "sources"
    return f'<div style="margin-top:12px;font-size:12px;color:{MUTED}">{n} {plural}: {pills}</div>'


def _footer(alert: Alert) -> str:
    terms = ", ".join(sorted({one_line(m.term) for m in alert.matches}, key=str.casefold))
    return (
        f'<div style="margin-top:12px;font-size:12px;color:{MUTED}">'
        f"{html_text(rules_text(alert))} · matched: {html_text(terms or '-')}</div>"
    )


def _card(alert: Alert) -> str:
    """A story's first alert, full size."""
    return (
        f'<div style="font-size:13px;color:#374151;margin-bottom:8px">'
        f"{_label(alert.rule.severity)} &nbsp;"
        f"{html_text(one_line(alert.rule.title) + more_rules(alert))}</div>"
        f"{_title(alert, 18)}{_meta(alert)}{_excerpt(alert)}{_sources(alert)}{_footer(alert)}"
    )


def _reply(alert: Alert, *, full: bool) -> str:
    """A follow-up: who else reported the story, the new item linked (``full``: with its
    excerpt and footer, for a mail of its own)."""
    n, _ = story_sources(alert)
    plural = "source" if n == 1 else "sources"
    head = (
        f'<div style="font-size:13px;color:{MUTED};margin-bottom:6px">↪ Also reported by '
        f"<strong>{html_text(one_line(alert.item.feed))}</strong> — {n} {plural}"
        f" · {_label(alert.rule.severity)} {html_text(one_line(alert.rule.title))}</div>"
    )
    body = f"{head}{_title(alert, 15)}{_meta(alert)}"
    if full:
        body += f"{_excerpt(alert)}{_sources(alert)}{_footer(alert)}"
    return body


def _box(inner: str, *, compact: bool = False) -> str:
    padding = "10px 16px" if compact else "20px"
    return (
        f'<tr><td style="padding:{padding};background:#ffffff;border:1px solid {BORDER};'
        f'border-radius:8px">{inner}</td></tr>'
        '<tr><td style="height:12px;line-height:12px;font-size:0">&nbsp;</td></tr>'
    )


def html_part(alerts: Sequence[Alert]) -> str:
    """The text/html body of a mail carrying ``alerts`` (one alert, or a digest)."""
    rows: list[str] = []
    if len(alerts) == 1:
        a = alerts[0]
        rows.append(_box(_reply(a, full=True) if a.kind == "update" else _card(a)))
    else:
        plural = "s" if len(alerts) != 1 else ""
        rows.append(
            f'<tr><td style="padding:4px 4px 14px;font-size:20px;font-weight:bold;'
            f'color:#111827">feedwatch digest: {len(alerts)} alert{plural}</td></tr>'
        )
        stories: dict[str, list[Alert]] = {}
        for a in alerts:
            key = str(a.extra.get("story_id") or a.extra.get("first_alert_id") or a.id)
            stories.setdefault(key, []).append(a)
        for group in stories.values():
            parts = []
            for n, a in enumerate(group):
                if n == 0 and a.kind != "update":
                    parts.append(_card(a))
                else:
                    sep = f"margin-top:14px;padding-top:12px;border-top:1px solid {BORDER}"
                    parts.append(f'<div style="{sep if n else ""}">{_reply(a, full=False)}</div>')
            rows.append(_box("".join(parts)))
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width"></head>\n'
        f'<body style="margin:0;padding:0;background:#f3f4f6">\n'
        f'<table role="presentation" width="100%" cellpadding="0" cellspacing="0" '
        f'style="background:#f3f4f6"><tr><td align="center" style="padding:24px 12px">\n'
        f'<table role="presentation" width="600" cellpadding="0" cellspacing="0" '
        f'style="max-width:600px;width:100%;font-family:{FONT};color:#111827">\n'
        + "\n".join(rows)
        + '\n<tr><td style="font-size:11px;color:#9ca3af;padding:4px">'
        "Sent by feedwatch.</td></tr>\n</table></td></tr></table>\n</body></html>\n"
    )
