"""Escaping helpers shared by the built-in notifiers. Pure functions, no I/O.

Feed text is hostile: a title can carry ``<!channel>``, a forged Slack link, HTML, control
characters or RFC 2047 encoded-words that decode into header breaks. Every notifier passes each
piece of feed text through one of these helpers before it reaches its output format.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterable, Sequence
from urllib.parse import urlsplit

from alerts.wire import Alert

ELLIPSIS = "…"

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_SPACES = re.compile(r"\s+")
_LINK_FORBIDDEN = re.compile(r"[\x00-\x20\x7f-\x9f\u2028\u2029]")


# --- plain text -------------------------------------------------------------------------------


def one_line(text: str) -> str:
    """Control characters (CR, LF, TAB, ESC, NEL…) become spaces; whitespace runs collapse."""
    return _SPACES.sub(" ", _CONTROL.sub(" ", text)).strip()


def truncate(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, ending with "…" when it was cut."""
    if len(text) <= limit:
        return text
    if limit <= 0:
        return ""
    return text[: limit - 1].rstrip() + ELLIPSIS


def fit(text: str, render: Callable[[str], str], limit: int) -> str:
    """The longest ``render(prefix)`` that is at most ``limit`` characters long.

    ``render`` escapes or decorates raw text (escaping makes it longer), so the raw text is cut
    *before* rendering and the result never ends inside an entity or markup. The cut text ends
    with "…". Returns ``render("")`` cut hard if even that is too long.
    """
    full = render(text)
    if len(full) <= limit:
        return full
    lo, hi = 0, len(text)  # invariant: render(truncate(text, lo)) fits; hi is too long
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if len(render(truncate(text, mid))) <= limit:
            lo = mid
        else:
            hi = mid
    out = render(truncate(text, lo))
    return out if len(out) <= limit else out[:limit]


# --- links ------------------------------------------------------------------------------------


def safe_link(url: str | None) -> str | None:
    """``url`` if it is an absolute http(s) URL without whitespace or control characters.

    ``javascript:``, ``data:``, relative and malformed links give None: notifiers then show the
    title without a link.
    """
    if not url or _LINK_FORBIDDEN.search(url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return url


# --- Slack mrkdwn -----------------------------------------------------------------------------


def slack_escape(text: str) -> str:
    """Escape the three characters Slack's mrkdwn treats as control: ``& < >``.

    After this, ``<!channel>`` or ``<http://evil|click>`` render literally and ping nobody.
    Control characters become spaces.
    """
    text = _CONTROL.sub(" ", text)
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_link_target(url: str) -> str:
    """A URL made safe to sit inside Slack's ``<url|label>``: ``|`` and brackets %-encoded."""
    return url.replace("|", "%7C").replace("<", "%3C").replace(">", "%3E").replace("&", "&amp;")


# --- HTML -------------------------------------------------------------------------------------


def html_text(text: str) -> str:
    """Feed text as HTML character data (quotes escaped too, so it is safe in attributes)."""
    return html.escape(_CONTROL.sub(" ", text), quote=True)


# --- mail headers -----------------------------------------------------------------------------


def header_text(text: str) -> str:
    """Feed text made safe for a mail header value (Subject).

    Control characters (CR, LF…) are removed, whitespace collapses, and RFC 2047 encoded-word
    openers ``=?`` are broken up (``= ?``): Python's email package before 3.11.10/3.12.5 decodes
    encoded-words while refolding a long header, so ``=?UTF-8?Q?=0A?=Bcc: x@evil`` in a title
    would otherwise become a real ``Bcc:`` header (CVE-2024-6923).
    """
    text = one_line(text)
    while "=?" in text:
        text = text.replace("=?", "= ?")
    return text


# --- highlighting matched terms ---------------------------------------------------------------

_TERM_NOISE = re.compile(r"^[\"'(]+|[\"')*?]+$")


def highlight_needles(alert: Alert) -> list[str]:
    """Texts to highlight in an alert's excerpt: the matched terms and the matched words.

    Terms are cleaned of query syntax (quotes, trailing wildcards). Where a match's offsets fall
    inside the title or excerpt, the exact matched text is added too (so ``ukrain*`` highlights
    "Ukraine"). Longest first, case-insensitively unique.
    """
    found: dict[str, str] = {}
    texts = {"title": alert.item.title, "excerpt": alert.item.excerpt}

    def add(needle: str) -> None:
        needle = one_line(needle)
        if len(needle) >= 2:
            found.setdefault(needle.casefold(), needle)

    for m in alert.matches:
        add(_TERM_NOISE.sub("", m.term.strip()))
        source = texts.get(m.field)
        if source is not None and 0 <= m.start < m.end <= len(source):
            add(source[m.start : m.end])
    return sorted(found.values(), key=lambda n: (-len(n), n.casefold()))


def find_spans(text: str, needles: Iterable[str]) -> list[tuple[int, int]]:
    """Non-overlapping ``(start, end)`` spans of ``needles`` in ``text``, case-insensitively.

    A needle matches only at the start of a word and the span extends to the end of that word
    (so "ukrain" marks all of "Ukraine", and "war" does not mark "award"). Whitespace inside a
    needle matches any whitespace run.
    """
    parts = [r"\s+".join(re.escape(w) for w in n.split()) for n in needles if n.split()]
    if not parts:
        return []
    pattern = re.compile(r"(?<!\w)(?:" + "|".join(parts) + r")\w*", re.IGNORECASE)
    return [m.span() for m in pattern.finditer(text) if m.end() > m.start()]


def render_spans(
    text: str,
    spans: Sequence[tuple[int, int]],
    escape: Callable[[str], str],
    mark: Callable[[str], str],
) -> str:
    """``text`` escaped piece by piece, with each span's escaped text wrapped by ``mark``.

    Matching happens on the raw text and escaping per piece, so markup is never inserted inside
    an entity such as ``&amp;``.
    """
    out: list[str] = []
    pos = 0
    for start, end in spans:
        out.append(escape(text[pos:start]))
        out.append(mark(escape(text[start:end])))
        pos = end
    out.append(escape(text[pos:]))
    return "".join(out)


def published_text(alert: Alert) -> str:
    """When the item was published, as notifiers show it: ``2024-08-13 09:30 UTC``."""
    published = alert.item.published
    return published.strftime("%Y-%m-%d %H:%M UTC") if published else "undated"


def story_sources(alert: Alert) -> tuple[int, list[str]]:
    """(how many sources carry the alert's story, their names on one line each)."""
    names = alert.extra.get("sources")
    listed = [one_line(str(n)) for n in names] if isinstance(names, list) else []
    count = alert.extra.get("source_count")
    return (count if isinstance(count, int) else len(listed)), listed


def rules_text(alert: Alert) -> str:
    """The rules a message is for, plain text on one line: ``Rule kursk``, or with several
    (one item matched them all) ``Rules kursk [high], weapons-aid [medium]``, highest severity
    first; callers escape it for their format."""
    hits = alert.hits
    if len(hits) == 1:
        return f"Rule {one_line(hits[0].id)}"
    return "Rules " + ", ".join(f"{one_line(h.id)} [{one_line(h.severity)}]" for h in hits)


def more_rules(alert: Alert) -> str:
    """`` (+2 rules)`` after a headline naming one rule of a message for three; else ``""``."""
    n = len(alert.hits) - 1
    return f" (+{n} rule{'s' if n > 1 else ''})" if n > 0 else ""
