"""HTTP/1.1 request heads, read strictly: h11 parses, and what h11 tolerates is refused first.

The endpoint faces the internet through a proxy, and a proxy and a server that read one head
two ways is how requests are smuggled. h11 (the parser httpx uses) parses the request and
its body framing; before it sees the head, ``check_head`` refuses what RFC 9112 allows a
server to refuse and h11 accepts:

* a bare LF or bare CR anywhere (every line ends with CRLF; h11 takes a lone LF as an end of
  line, so ``X: a\\nContent-Length: 34`` would become two headers);
* obs-fold and a whitespace-led first header line (a line that starts with SP or HTAB);
* whitespace between a field name and its colon, and a name that is not a token;
* in a field value, anything but visible ASCII, SP and HTAB (``\\x0b``, ``\\xa0``, ``\\x85``…);
* in the request line, anything but ``METHOD SP target SP HTTP/1.x`` in visible ASCII;
* Content-Length and Transfer-Encoding together, more than one Content-Length, one that is
  not 1 to 18 digits, and any transfer coding but ``chunked``.

``check_head`` returns the status to answer (400, or 501 for a transfer coding) or None.
Pure: no I/O.
"""

from __future__ import annotations

import re

_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_VALUE = re.compile(rb"[\t\x20-\x7e]*")
_REQUEST_LINE = re.compile(rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]+) ([\x21-\x7e]+) HTTP/1\.[01]")
_DIGITS = re.compile(rb"[0-9]{1,18}")


def check_head(head: bytes) -> int | None:
    """The status that refuses ``head`` (request line and headers, ending with CRLF CRLF), or
    None when it is well-formed in the strict sense above."""
    if not head.endswith(b"\r\n\r\n"):
        return 400
    lines = head[:-4].split(b"\r\n")
    if any(b"\r" in line or b"\n" in line for line in lines):
        return 400  # a bare CR or LF
    if not _REQUEST_LINE.fullmatch(lines[0]):
        return 400
    lengths: list[bytes] = []
    codings: list[bytes] = []
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not _TOKEN.fullmatch(name):
            return 400  # obs-fold, a leading space, a space before the colon, no colon
        if not _VALUE.fullmatch(value):
            return 400
        key = name.lower()
        if key == b"content-length":
            lengths.append(value.strip(b" \t"))
        elif key == b"transfer-encoding":
            codings.append(value.strip(b" \t").lower())
    if codings and lengths:
        return 400
    if len(lengths) > 1 or (lengths and not _DIGITS.fullmatch(lengths[0])):
        return 400
    if codings and codings != [b"chunked"]:
        return 501
    return None


def bounded_int(text: str | None, *, digits: int = 12) -> int | None:
    """``text`` as a non-negative integer when it is 1 to ``digits`` ASCII digits, else None
    (a number from a request: 5,000 digits must not cost a traceback, or the CPU)."""
    if text is None or not 0 < len(text) <= digits or not (text.isascii() and text.isdigit()):
        return None
    return int(text)


def printable(text: str, limit: int = 200) -> str:
    """``text`` for a log line: control characters escaped, at most ``limit`` characters."""
    cut = text[:limit]
    safe = "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in cut)
    return safe + ("…" if len(text) > limit else "")
