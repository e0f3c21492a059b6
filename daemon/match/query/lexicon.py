"""simplemma's lemma lists (form → lemma) for one language, read without building a dict.

simplemma ships each language as an lzma-compressed, front-coded stream of sorted
``(form, lemma)`` records (``data/<lang>.plzma``; format: ``simplemma/.../frontcode.py``).
Building a Python dict of it costs seconds and hundreds of MB (Polish: 3.7 M forms, 0.5 GB), so
the stream is kept as bytes (1–19 MB per language) with a restart point every ``_BLOCK``
records: a lookup bisects to a block and decodes at most ``_BLOCK`` records, and the forms of a
lemma are the records of a key range that carry that lemma. The restart points take one pass
over the stream (0.2 s for English, 3 s for Polish); they are cached on disk
(``$FEEDWATCH_CACHE_DIR``, else ``$XDG_CACHE_HOME/feedwatch``, else ``~/.cache/feedwatch``) so
later processes load a language in ~0.1 s. A cache that cannot be read or written is ignored.
"""

from __future__ import annotations

import lzma
import marshal
import os
import tempfile
import zlib
from bisect import bisect_right
from collections.abc import Iterator
from importlib import metadata, resources
from pathlib import Path

_MAGIC = b"SMFC1"
_SAME_AS_PREV = 254
_LITERAL_VALUE = 255
_BLOCK = 64
_FORMAT = 2  # of the cache file
_BLOOM_BITS = 10  # per form: a miss costs three hashes, ~1% false "maybe"s decode a block
_BLOOM_HASHES = 3

Seed = tuple[int, bytes, bytes]  # (record offset, previous key, previous value)


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _records(data: bytes, pos: int, key: bytes, value: bytes) -> Iterator[tuple[int, bytes, bytes]]:
    """(record offset, key, value) from ``pos``, resuming with the previous record's key/value."""
    n = len(data)
    while pos < n:
        start = pos
        shared = data[pos]
        if shared < 0x80:
            pos += 1
        else:
            shared, pos = _varint(data, pos)
        length = data[pos]
        if length < 0x80:
            pos += 1
        else:
            length, pos = _varint(data, pos)
        key = key[:shared] + data[pos : pos + length]
        pos += length
        trim = data[pos]
        pos += 1
        if trim != _SAME_AS_PREV:
            length, pos = _varint(data, pos)
            tail = data[pos : pos + length]
            pos += length
            value = tail if trim == _LITERAL_VALUE else key[: len(key) - trim] + tail
        yield start, key, value


def _bloom_positions(key: bytes, bits: int) -> list[int]:
    h1, h2 = zlib.crc32(key), zlib.adler32(key) | 1
    return [(h1 + i * h2) % bits for i in range(_BLOOM_HASHES)]


def _cache_dir() -> Path:
    explicit = os.environ.get("FEEDWATCH_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "feedwatch"


def _version() -> str:
    try:
        return metadata.version("simplemma")
    except metadata.PackageNotFoundError:  # pragma: no cover - a dependency
        return "unknown"


class Lexicon:
    """One language's form → lemma list: ``lemma(form)``, ``forms(lemma)``."""

    __slots__ = ("_bits", "_bloom", "_data", "_firsts", "_seeds", "lang")

    def __init__(self, lang: str) -> None:
        self.lang = lang
        source = resources.files("simplemma") / "strategies" / "dictionaries" / "data"
        with (source / f"{lang}.plzma").open("rb") as fh:
            data = lzma.decompress(fh.read())
        if not data.startswith(_MAGIC) or data[len(_MAGIC)] & 1:
            raise ValueError(f"simplemma {lang}: unknown dictionary format")
        _, start = _varint(data, len(_MAGIC) + 1)
        self._data = data
        cached = self._load_seeds(len(data))
        if cached is None:
            cached = self._index(start)
            self._save_seeds(len(data), *cached)
        self._seeds, self._bloom = cached
        self._bits = len(self._bloom) * 8
        # The first key of each block (for bisect): decoding one record per block.
        self._firsts = [next(_records(data, *seed))[1] for seed in self._seeds]

    def _index(self, start: int) -> tuple[list[Seed], bytes]:
        """Restart points, and a Bloom filter of the forms (so most misses decode nothing)."""
        seeds: list[Seed] = []
        keys: list[bytes] = []
        key = value = b""
        for i, (offset, k, v) in enumerate(_records(self._data, start, b"", b"")):
            if i % _BLOCK == 0:
                seeds.append((offset, key, value))
            key, value = k, v
            keys.append(k)
        bits = max(64, len(keys) * _BLOOM_BITS)
        bloom = bytearray(bits // 8 + 1)
        bits = len(bloom) * 8
        for k in keys:
            for p in _bloom_positions(k, bits):
                bloom[p >> 3] |= 1 << (p & 7)
        return seeds, bytes(bloom)

    def _cache_file(self) -> Path:
        return _cache_dir() / f"forms-{self.lang}-simplemma-{_version()}-{_FORMAT}.idx"

    def _load_seeds(self, size: int) -> tuple[list[Seed], bytes] | None:
        try:
            # Our own cache file; marshal builds plain data (runs no code) and the shape is
            # checked below.
            got = marshal.loads(self._cache_file().read_bytes())  # noqa: S302
        except (OSError, ValueError, EOFError, TypeError):
            return None
        if not isinstance(got, tuple) or len(got) != 3 or got[0] != size:
            return None
        if not isinstance(got[2], bytes):
            return None
        return list(got[1]), got[2]

    def _save_seeds(self, size: int, seeds: list[Seed], bloom: bytes) -> None:
        path = self._cache_file()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
            with os.fdopen(fd, "wb") as fh:
                fh.write(marshal.dumps((size, tuple(seeds), bloom)))
            os.replace(tmp, path)
        except OSError:
            return  # no cache: the next process indexes again

    def _scan(self, low: bytes) -> Iterator[tuple[bytes, bytes]]:
        """Records from the block that may hold ``low`` on (keys in sorted order)."""
        block = max(0, bisect_right(self._firsts, low) - 1)
        for _, key, value in _records(self._data, *self._seeds[block]):
            yield key, value

    def lemma(self, form: str) -> str | None:
        """The lemma of ``form`` (as written: case matters), or None if unknown."""
        target = form.encode()
        bloom = self._bloom
        for p in _bloom_positions(target, self._bits):
            if not bloom[p >> 3] & (1 << (p & 7)):
                return None
        for key, value in self._scan(target):
            if key >= target:
                return value.decode() if key == target else None
        return None

    def forms(self, lemma: str, stem: int) -> set[str]:
        """Forms of ``lemma`` that start with its first ``stem`` characters (so suppletive forms
        such as go → went are not found)."""
        prefix = lemma[:stem].encode()
        target = lemma.encode()
        out: set[str] = set()
        for key, value in self._scan(prefix):
            if key < prefix:
                continue
            if not key.startswith(prefix):
                break
            if value == target:
                out.add(key.decode())
        return out
