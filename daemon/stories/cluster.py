"""Cross-outlet story clustering: which items are one story, and an in-memory story index.

Reports of one event by different outlets are one *story*; different events on one topic are
not. Real outlets do not rewrite one text: each writes its own headline and a short summary
(often none; the median real item has 13-15 words of summary), and two reports of one event
share a handful of words — names, numbers, one key noun ("Biden", "31", "Abrams", "tanks").
Wire copies and long rewrites, on the other hand, share most of their words. So an item has two
faces (``daemon.stories.terms.ItemTerms``), and so does a story (``Remembered``):

- its *terms* (title words counted double, numbers as anchors) weighed by how rare each is in
  the stream's own recent items — document frequencies shared by every process — against the
  story's *profile*, the sum of its items' vectors (``daemon.stories.profile``): cosine;
- its *rewrite sketch* against the sketch of the story's fullest item
  (``daemon.stories.sketch``): containment of the smaller text's words in the larger.

``score``: two long texts are one story when one is a rewrite of the other (containment at or
above ``REWRITE``); when either is short, also when the cosine reaches ``SAME_STORY``. An item
joins the story it scores best for, 1.0 or more, else starts one.

Lookup: a story is filed under its profile's heaviest terms (``INDEX_TERMS``, more for a long
text; each term keeps its last ``BUCKET_SIZE`` stories); an item looks up its own heaviest
(``PROBE_TERMS``, more for a long text) and is scored against at most ``MAX_CANDIDATES``
stories, those found under its heaviest terms first (``rank_candidates``).

Measured (``make eval``: the real daemon over 6 days of ~28 real outlets' feeds with 360
hand-labelled events; eval/README.md): at ``SAME_STORY`` 0.32, on the four days the parameters
were chosen on, 2.52 stories per event (English 2.20) at pair precision 0.950; on the two days
kept aside, 2.68 (English 2.29) at 0.960. The containment sketch alone, before: 4.05 (3.71) at
0.958, and 4.46 (4.03) at 0.950. Chosen with eval/cluster_lab.py and eval/similarity.py (the
alternatives measured: title weight, name boosts, number anchors, stems, profile size, first
item vs accumulated profile, merging stories, index limits; none reached 1.5 per event).
On the synthetic rewrites of tests/data/stories/pairs.yaml the tests assert precision >= 0.95
and recall >= 0.90 of "same story" (0.977 and 0.944 through the index).

The Redis-backed index, shared by every process: ``daemon.stories.index`` (its layout:
``daemon.stories.lua``; measured by bench/story.py). ``StoryIndex`` here is its in-memory
reference, with the same decisions.

Canonical links: ``story_key_for_url`` maps every spelling of one article link to one key;
``StoryIndex.assign(..., url=...)`` joins an item whose link is already known to that story
whatever its text (the same article under two links of one canonical form is one story).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from hashlib import blake2b

from daemon.parse.urls import canonical_url
from daemon.stories.profile import (
    PROFILE_SIZE,
    SAME_STORY,
    Profile,
    Vector,
    merged,
    probes,
    similarity,
    vector,
)
from daemon.stories.sketch import PACKED_SIZE as SKETCH_SIZE
from daemon.stories.sketch import REWRITE, Fingerprint, matcher
from daemon.stories.terms import ItemTerms, item_terms

__all__ = [
    "BUCKET_SIZE",
    "MAX_CANDIDATES",
    "REWRITE",
    "SAME_STORY",
    "STORY_SIZE",
    "ItemTerms",
    "Remembered",
    "StoryAssignment",
    "StoryIndex",
    "StoryState",
    "item_terms",
    "rank_candidates",
    "score",
    "story_key_for_url",
]

BUCKET_SIZE = 32
"""Stories kept per index term (the most recent): a common term's bucket forgets old stories."""
MAX_CANDIDATES = 10
"""Stories an item is compared with at most."""
STORY_SIZE = SKETCH_SIZE + PROFILE_SIZE
"""Bytes a story's ``Remembered`` packs into."""


@dataclass(frozen=True, slots=True)
class Remembered:
    """What a story index keeps to compare items with a story: the rewrite sketch of its
    fullest item, and the profile of all its items."""

    sketch: Fingerprint
    profile: Profile

    def pack(self) -> bytes:
        return self.sketch.stored().pack() + self.profile.pack()

    @classmethod
    def unpack(cls, data: bytes) -> Remembered:
        return cls(
            Fingerprint.unpack(data[:SKETCH_SIZE]), Profile.unpack(data[SKETCH_SIZE:STORY_SIZE])
        )

    def keys(self) -> tuple[int, ...]:
        """The terms the story is filed under."""
        return self.profile.keys(long=not self.sketch.short)

    def with_item(self, terms: ItemTerms, v: Vector) -> Remembered:
        """The story with one more item: its vector added to the profile; its sketch the
        story's if it is the fuller text."""
        sketch = terms.sketch if terms.sketch.size > self.sketch.size else self.sketch
        return Remembered(sketch.stored(), merged(self.profile, v))

    @classmethod
    def first(cls, terms: ItemTerms, v: Vector) -> Remembered:
        """A new story of this one item."""
        return cls(terms.sketch.stored(), merged(None, v))


def score(
    compare: Callable[[Fingerprint], float], terms: ItemTerms, v: Vector, story: Remembered
) -> float:
    """How strongly an item belongs to a story: 1.0 or more means it does.

    ``compare``: ``daemon.stories.sketch.matcher`` of the item's sketch. Two long texts (neither
    is ``short``) are one story when one is a rewrite of the other (containment at or above
    ``REWRITE``); two short ones (a headline and a summary: most feed items) when the item's
    vector and the story's profile are similar at or above ``SAME_STORY`` (a few shared words
    are not enough: "Germany to send Leopard tanks" is not "US to send Abrams tanks"); a short
    one and a long one when either holds (a summary and its article). The score is the larger
    share of its threshold (the rewrite check, the dearer one, is skipped when the profile
    alone makes the item belong)."""
    if not terms.sketch.short and not story.sketch.short:
        return compare(story.sketch) / REWRITE
    near = similarity(v, story.profile) / SAME_STORY
    if near >= 1.0 or (terms.sketch.short and story.sketch.short):
        return near
    return max(near, compare(story.sketch) / REWRITE)


@dataclass(frozen=True, slots=True)
class StoryAssignment:
    """Where ``StoryIndex.assign`` put an item.

    ``similarity`` is the item's ``score`` for the story it joined (1.0 or more; 1.0 for a
    known link or a replayed item), or for a new story the best score it had for any candidate
    (below 1.0; 0.0 if none). ``sources`` are the publishers carrying the story, first seen
    first.
    """

    story_id: str
    new_story: bool
    similarity: float
    sources: tuple[str, ...]


def story_key_for_url(url: str) -> str:
    """One key for every spelling of one article link (``daemon.parse.urls.canonical_url``)."""
    digest = blake2b(canonical_url(url).encode(), digest_size=8).hexdigest()
    return f"u{digest}"


def rank_candidates(
    v: Vector, buckets: Sequence[Sequence[str]], limit: int = MAX_CANDIDATES
) -> list[str]:
    """The stories to compare an item with: found under its probe terms (``buckets[j]``: the
    stories filed under its ``j``-th heaviest term, oldest first), ranked by the summed weight
    of the terms they were found under, then most recently filed first; at most ``limit``."""
    score: dict[str, float] = {}
    recent: dict[str, int] = {}
    weights = sorted(v.values(), reverse=True)
    for j, bucket in enumerate(buckets):
        w = weights[j] if j < len(weights) else 0.0
        for pos, sid in enumerate(bucket):
            score[sid] = score.get(sid, 0.0) + w
            recent[sid] = max(recent.get(sid, -1), pos)
    return sorted(score, key=lambda s: (-round(score[s], 6), -recent[s], s))[:limit]


@dataclass(frozen=True, slots=True)
class StoryState:
    """One remembered story, as ``StoryIndex.stories()`` lists it (what a Redis index holds)."""

    story_id: str
    started: float
    memory: Remembered
    keys: tuple[int, ...]  # the terms it is filed under
    sources: tuple[str, ...]


@dataclass(slots=True)
class _Story:
    id: str
    memory: Remembered
    started: float
    keys: tuple[int, ...]  # the terms it is filed under
    sources: list[str]
    links: list[str] = field(default_factory=list)  # item keys and link keys pointing here


class StoryIndex:
    """In-memory reference implementation of the story index (the Redis one decides alike).

    ``assign`` weighs the item's terms by the document frequencies of the items assigned in
    the window (this one included), looks its ``PROBE_TERMS`` heaviest terms up, scores it
    against at most ``max_candidates`` stories found there (``rank_candidates``, ``score``) and
    joins the best scoring 1.0 or more, adding its vector to the story's profile (and its sketch
    if it is the fuller text) and filing the story under the profile's heaviest terms;
    otherwise it starts a story. A story is
    remembered for ``window`` seconds after its first item and lists at most ``max_sources``
    publishers. Document frequencies count the items of the current and the previous
    ``window``. Times must not go backwards.
    """

    def __init__(
        self,
        *,
        window: float = 48 * 3600,
        clock: Callable[[], float],
        bucket_size: int = BUCKET_SIZE,
        max_candidates: int = MAX_CANDIDATES,
        max_sources: int = 8,
    ) -> None:
        self.window = window
        self.clock = clock
        self.bucket_size = bucket_size
        self.max_candidates = max_candidates
        self.max_sources = max_sources
        self._stories: dict[str, _Story] = {}  # in start order
        self._buckets: dict[int, list[str]] = {}  # term -> story ids, oldest first
        self._keys: dict[str, str] = {}  # item key / link key -> story id
        self._df: dict[int, tuple[Counter[int], list[int]]] = {}  # slice -> (df, [n])

    def __len__(self) -> int:
        return len(self._stories)

    def stories(self) -> list[StoryState]:
        """Every remembered story, oldest first."""
        return [
            StoryState(s.id, s.started, s.memory, s.keys, tuple(s.sources))
            for s in self._stories.values()
        ]

    def frequencies(self, terms: ItemTerms, now: float) -> tuple[list[int], int]:
        """(document frequency of each term, items) over the live slices, before this item."""
        live = [v for k, v in self._df.items() if k >= int(now // self.window) - 1]
        df = [sum(c[t] for c, _ in live) for t in terms.ids]
        return df, sum(n[0] for _, n in live)

    def count(self, terms: ItemTerms, now: float) -> None:
        """Add an item's terms to the document frequencies."""
        current = int(now // self.window)
        for old in [k for k in self._df if k < current - 1]:
            del self._df[old]
        df, n = self._df.setdefault(current, (Counter(), [0]))
        df.update(terms.ids)
        n[0] += 1

    def assign(
        self,
        item_key: str,
        terms: ItemTerms,
        feed: str,
        now: float | None = None,
        *,
        url: str | None = None,
    ) -> StoryAssignment:
        """Join the item to the best story at or above ``SAME_STORY``, else start a story.

        Assigning a known ``item_key`` again changes nothing and returns its story. ``url``
        (the item's link), when given, makes a known canonical link a match on its own.
        """
        now = self.clock() if now is None else now
        self._expire(now)
        known = self._keys.get(item_key)
        if known is not None:
            story = self._stories[known]
            return StoryAssignment(story.id, False, 1.0, tuple(story.sources))
        link = story_key_for_url(url) if url else None
        if link is not None and (linked := self._keys.get(link)) is not None:
            return self._join(self._stories[linked], item_key, None, feed, 1.0)
        v = vector(terms, *self.frequencies(terms, now))
        self.count(terms, now)
        best: _Story | None = None
        best_score = 0.0
        compare = matcher(terms.sketch, REWRITE)
        for story_id in self.candidates(v, long=not terms.sketch.short):
            story = self._stories[story_id]
            got = score(compare, terms, v, story.memory)
            if got > best_score or (got == best_score and best and story.started < best.started):
                best, best_score = story, got
        if best is not None and best_score >= 1.0:
            return self._join(best, item_key, link, feed, best_score, terms, v)
        return self._start(item_key, link, terms, v, feed, now, best_score)

    def candidates(self, v: Vector, *, long: bool = False) -> list[str]:
        """Ids of the stories to compare ``v`` (of a long text?) with (``rank_candidates``)."""
        buckets = [self._buckets.get(t, []) for t in probes(v, long=long)]
        return rank_candidates(v, buckets, self.max_candidates)

    def _join(
        self,
        story: _Story,
        item_key: str,
        link: str | None,
        feed: str,
        sim: float,
        terms: ItemTerms | None = None,
        v: Vector | None = None,
    ) -> StoryAssignment:
        if feed not in story.sources and len(story.sources) < self.max_sources:
            story.sources.append(feed)
        if terms is not None and v is not None:
            story.memory = story.memory.with_item(terms, v)
            self._file(story)
        for key in (item_key, link):
            if key is not None and key not in self._keys:
                self._keys[key] = story.id
                story.links.append(key)
        return StoryAssignment(story.id, False, sim, tuple(story.sources))

    def _start(
        self,
        item_key: str,
        link: str | None,
        terms: ItemTerms,
        v: Vector,
        feed: str,
        now: float,
        sim: float,
    ) -> StoryAssignment:
        story_id = blake2b(item_key.encode(), digest_size=6).hexdigest()
        base, n = story_id, 1
        while story_id in self._stories:
            story_id, n = f"{base}-{n}", n + 1
        story = _Story(story_id, Remembered.first(terms, v), now, (), [feed])
        self._stories[story_id] = story
        self._file(story)
        for key in (item_key, link):
            if key is not None:
                self._keys[key] = story_id
                story.links.append(key)
        return StoryAssignment(story_id, True, sim, (feed,))

    def _file(self, story: _Story) -> None:
        """File the story under its profile's heaviest terms (each bucket keeps its last
        ``bucket_size`` stories)."""
        for key in story.memory.keys():
            bucket = self._buckets.setdefault(key, [])
            if story.id not in bucket:
                bucket.append(story.id)
                if len(bucket) > self.bucket_size:
                    del bucket[0]
                story.keys += (key,)

    def _expire(self, now: float) -> None:
        while self._stories:
            story = next(iter(self._stories.values()))
            if story.started + self.window > now:
                return
            del self._stories[story.id]
            for key in story.keys:
                bucket = self._buckets.get(key)
                if bucket is not None and story.id in bucket:
                    bucket.remove(story.id)
                    if not bucket:
                        del self._buckets[key]
            for item in story.links:
                if self._keys.get(item) == story.id:
                    del self._keys[item]
