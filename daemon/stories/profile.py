"""Story profiles: an item's weighted terms against what a story has accumulated.

An item's terms (``daemon.stories.terms``) are weighed by how rare they are in the stream
itself: ``idf = log((n + IDF_PRIOR) / (df + 1))``, ``n`` the items the stream has seen in the
window and ``df`` how many of them had the term (counts shared by every process, kept in Redis
by ``daemon.stories.index``; the prior keeps a cold stream's weights sane). The item's *vector*
is raw weight × idf, normalised.

A story remembers a *profile*: the sum of its items' vectors, cut to its ``PROFILE_TERMS``
heaviest terms (so a story's words that several outlets used outweigh one outlet's), and
how many items it has. An item belongs to the story whose profile is most similar — cosine of
the item's vector and the profile — at or above ``SAME_STORY``.

A story is filed under its ``INDEX_TERMS`` heaviest terms; an item looks up its
``PROBE_TERMS`` heaviest and compares itself with the stories found under most of them
(``daemon.stories.index``). Long texts (full articles) spread their weight over many words,
and two rewrites' heaviest few need not meet: a long story is filed under
``LONG_INDEX_TERMS`` and a long item looks up ``LONG_PROBE_TERMS``. Packed
(``Profile.pack``) a profile is ``PROFILE_SIZE`` bytes: the count, then each term as its 32-bit
id and a half-precision weight. Pure.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

from daemon.stories.terms import ItemTerms

__all__ = [
    "IDF_PRIOR",
    "INDEX_TERMS",
    "LONG_INDEX_TERMS",
    "LONG_PROBE_TERMS",
    "PROBE_TERMS",
    "PROFILE_SIZE",
    "PROFILE_TERMS",
    "SAME_STORY",
    "Profile",
    "Vector",
    "idf",
    "merged",
    "probes",
    "similarity",
    "vector",
]

SAME_STORY = 0.32
"""Cosine of an item's vector and a story's profile at or above which the item belongs to it.

Chosen with ``make eval`` on the four tuning days (eval/README.md), the real daemon each time:
0.30 gave 2.40-2.43 stories per event at pair precision 0.933-0.945, 0.31 gave 2.48 at 0.945,
0.32 gave 2.51-2.52 at 0.950-0.984 (runs differ: the daemon polls feeds concurrently); 0.32
is the lowest that kept precision at 0.95."""
PROFILE_TERMS = 32
INDEX_TERMS = 8
PROBE_TERMS = 8
LONG_INDEX_TERMS = 16
LONG_PROBE_TERMS = 24
IDF_PRIOR = 20.0

_HEAD = struct.Struct(">HBx")
_TERM = struct.Struct(">Ie")
PROFILE_SIZE = _HEAD.size + PROFILE_TERMS * _TERM.size

Vector = dict[int, float]


@dataclass(frozen=True, slots=True)
class Profile:
    """A story's accumulated terms, heaviest first, and how many items it has."""

    ids: tuple[int, ...]
    weights: tuple[float, ...]
    count: int = 1
    norm: float = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "norm", math.sqrt(sum(w * w for w in self.weights)))

    def keys(self, *, long: bool = False) -> tuple[int, ...]:
        """The terms the story is filed under (more for a long text)."""
        return self.ids[: LONG_INDEX_TERMS if long else INDEX_TERMS]

    def pack(self) -> bytes:
        """``PROFILE_SIZE`` bytes (what the Redis index stores per story)."""
        parts = [_HEAD.pack(min(self.count, 0xFFFF), len(self.ids))]
        parts += [
            _TERM.pack(i, min(w, 60000.0)) for i, w in zip(self.ids, self.weights, strict=True)
        ]
        return b"".join(parts).ljust(PROFILE_SIZE, b"\0")

    @classmethod
    def unpack(cls, data: bytes) -> Profile:
        count, n = _HEAD.unpack_from(data)
        body = data[_HEAD.size : _HEAD.size + n * _TERM.size]
        ids, weights = zip(*_TERM.iter_unpack(body), strict=True) if n else ((), ())
        return cls(tuple(ids), tuple(weights), count)


def idf(n: int, df: int) -> float:
    """The weight of a term that ``df`` of ``n`` items had (both counting the item itself)."""
    return math.log((n + IDF_PRIOR) / (df + 1.0))


def vector(terms: ItemTerms, df: Sequence[int], n: int) -> Vector:
    """The item's normalised vector; ``df[j]``: items of the stream so far with term ``j``, and
    ``n`` items in all, before this one."""
    v = {t: x * idf(n + 1, d + 1) for t, x, d in zip(terms.ids, terms.weights, df, strict=True)}
    norm = math.sqrt(sum(x * x for x in v.values())) or 1.0
    return {t: x / norm for t, x in v.items() if x > 0}


def probes(v: Vector, *, long: bool = False) -> tuple[int, ...]:
    """The item's heaviest terms: what it looks stories up under (more for a long text)."""
    n = LONG_PROBE_TERMS if long else PROBE_TERMS
    return tuple(sorted(v, key=lambda t: (-v[t], t))[:n])


def similarity(v: Vector, profile: Profile) -> float:
    """Cosine of an item's (normalised) vector and a story's profile."""
    if not profile.norm:
        return 0.0
    get = v.get
    dot = sum(get(t, 0.0) * w for t, w in zip(profile.ids, profile.weights, strict=True))
    return dot / profile.norm


def merged(profile: Profile | None, v: Vector) -> Profile:
    """The profile with one more item (a new story's: ``profile`` None)."""
    total: Vector = dict(zip(profile.ids, profile.weights, strict=True)) if profile else {}
    for t, x in v.items():
        total[t] = total.get(t, 0.0) + x
    top = sorted(total, key=lambda t: (-total[t], t))[:PROFILE_TERMS]
    return Profile(tuple(top), tuple(total[t] for t in top), (profile.count if profile else 0) + 1)
