"""The one error the query language raises: where a query is wrong, and why."""

from __future__ import annotations

from daemon.errors import FeedwatchError, Problem


class QuerySyntaxError(FeedwatchError):
    """A query (or alias definition) is invalid.

    ``pos``/``end`` are character offsets of the offending part in the text being compiled.
    ``alias`` names the alias whose definition the offsets point into, if any.
    """

    def __init__(self, message: str, pos: int, end: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.pos = pos
        self.end = pos + 1 if end is None else max(end, pos)

    def caret(self, text: str) -> tuple[str, str]:
        """The line of ``text`` holding the error and a caret line under the offending part."""
        start = text.rfind("\n", 0, self.pos) + 1
        stop = text.find("\n", self.pos)
        line = text[start : stop if stop >= 0 else len(text)]
        width = max(1, min(self.end, start + len(line)) - self.pos)
        return line, " " * (self.pos - start) + "^" * width

    def problem(
        self, file: str, where: str, query: str, source: list[str], line: int, col: int, what: str
    ) -> Problem:
        """This error as a located Problem, the query echoed with a caret under the error.

        ``line``/``col`` (1-based) locate the query's value in ``source`` (the file's lines).
        When the query can be found there as written — plain or quoted on that line, or in the
        lines of a ``|``/``>`` block below it — the position is moved onto the error itself;
        otherwise it stays at the start of the value.
        """
        line, col = self._locate(query, source, line, col)
        echoed, caret = self.caret(query)
        detail = (f"{what}: {echoed}", " " * (len(what) + 2) + caret)
        return Problem(file, line, col, where, self.message, detail)

    def _locate(self, query: str, source: list[str], line: int, col: int) -> tuple[int, int]:
        if not 0 < line <= len(source):
            return line, col
        first = source[line - 1]
        indicator = first[col - 1 : col]
        if indicator in ("|", ">"):
            return self._locate_block(query, source, line, col)
        if "\n" in query:
            return line, col
        start = col - 1 + (1 if indicator in ("'", '"') else 0)
        if first[start : start + self.pos] == query[: self.pos]:
            return line, start + self.pos + 1
        return line, col

    def _locate_block(self, query: str, source: list[str], line: int, col: int) -> tuple[int, int]:
        cursor = 0
        key_indent = len(source[line - 1]) - len(source[line - 1].lstrip())
        for n in range(line, len(source)):
            raw = source[n]
            content = raw.strip()
            if not content:
                continue
            if len(raw) - len(raw.lstrip()) <= key_indent:
                break  # back at the key's indentation: the block has ended
            k = query.find(content, cursor)
            if k < 0:
                break
            if k <= self.pos <= k + len(content):
                return n + 1, len(raw) - len(raw.lstrip()) + self.pos - k + 1
            cursor = k + len(content)
        return line, col
