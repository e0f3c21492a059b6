"""Rewrite sketches: how much of one item's text another carries (``containment``).

One half of story similarity (``daemon.stories.cluster``): an outlet that runs a wire report
cut, reordered or re-headlined still carries most of its words, and containment of content
words tells such rewrites apart from other reports on the same topic better than any weighted
cosine of a few key terms (``daemon.stories.profile``, the other half) can on long texts.

- **Content words**: ``daemon.match.query.tokenize`` normalisation (NFKC, casefold, accents
  dropped), minus stop words (English, Ukrainian, Russian), one-letter words and anything with a
  digit. Each distinct word gets a 64-bit id (keyed BLAKE2b: the same in every process and Python
  version, unlike ``hash()``). ``words``: the title's words and the first ``BODY_WORDS``
  distinct words of the text. *Lead*: the title and the first ``LEAD_WORDS`` content words of
  the text; a *short* item (fewer than ``SHORT_WORDS`` words) is all lead.
- **Specifics**: weekday names (English, Ukrainian, Russian) and numbers of two digits or more
  (thousands separators dropped; years 1900-2099 skipped: context, not facts). The first
  ``MAX_SPECIFICS`` are kept as 16-bit hashes; each weighs ``SPECIFIC_WEIGHT`` words.
- **Containment** (``similarity``): the weighted share of the *smaller* item that the larger one
  carries (not Jaccard: an outlet that keeps half of a wire story still carries all it kept);
  a short item is compared with the larger item's lead, so that a summary matches its article
  and not every long report on its topic.
- **Sketch** (remembered per story, ``Fingerprint.pack()``, ``PACKED_SIZE`` = 148 bytes): a
  ``BLOOM_BITS``-bit Bloom filter with 2 bits per word and 2 more per lead word, the specifics,
  the word count and the short flag. A new item, whose words are known, is compared with a
  remembered sketch through its Bloom filter; the expected false positives plus one standard
  deviation are subtracted, so a tiny item cannot join a big story by luck (an identical item
  scores >= 0.95 instead of 1.0).

Measured on tests/data/stories/pairs.yaml (45 same-story, 45 different-story pairs of rewrites):
at ``REWRITE`` (0.52), new item against stored sketch, both arrival orders, precision 0.966 and
recall 0.944; MinHash Jaccard, MinHash containment and SimHash did worse (recall 0.07-0.71 at
precision 0.95).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from functools import lru_cache, reduce
from hashlib import blake2b
from math import sqrt
from operator import itemgetter, or_
from struct import Struct

from daemon.match.query.tokenize import index_text

REWRITE = 0.52
"""Containment at or above which one item is a rewrite of the other (``similarity``)."""
BODY_WORDS = 200
LEAD_WORDS = 45
SHORT_WORDS = 30
SPECIFIC_WEIGHT = 8
MAX_SPECIFICS = 8
BLOOM_BITS = 1024
FP_SIGMAS = 1.0  # Bloom false positives subtracted: the expected count plus this many sigmas
SAMPLE = 40  # words checked before a candidate far below the floor is given up (``matcher``)
SAMPLE_MARGIN = 0.2

_KEY = b"feedwatch.story.1"
_BLOOM_BYTES = BLOOM_BITS // 8
_MASK10 = BLOOM_BITS - 1  # a Bloom position is a 10-bit slice of a word id
_first = itemgetter(0)
_HEADER = Struct(f"<{_BLOOM_BYTES}sHBB{MAX_SPECIFICS}H")
PACKED_SIZE = _HEADER.size

STOP_WORDS = frozenset(
    """
    about above after again against all also although am among an and another any are around as
    at back be because been before being below between both but by can could did do does doing
    down during each either even ever every few for from further had has have having he her here
    hers herself him himself his how however if in into is it its itself just least less like
    made make many may me might more most much must my myself near neither no nor not now of off
    often on once one only onto or other others our ours ourselves out over own per rather same
    says said say she should since so some still such than that the their theirs them themselves
    then there these they this those though through thus to too told toward under until up upon
    us very via was we were what when where whether which while who whom whose why will with
    within without would yet you your yours according
    а але би бо в вже від до для же з за и із й к як яка які який на не ні но о об от по при про
    та так також те то у что це чи щоб що это його її їх с со как из или он она они мы вы
    """.split()
    + list("abcdefghijklmnopqrstuvwxyzабвгґдеєжзиіїйклмнопрстуфхцчшщьюяёъыэ")
)
_NUMBER = re.compile(r"[0-9][0-9.,]*")
# Weekday names, as normalised words (English; Ukrainian and Russian stems of any case ending:
# the tokeniser splits "п'ятниця" into "п" + "ятниця").
_WEEKDAYS = {
    "monday": "mon", "tuesday": "tue", "wednesday": "wed", "thursday": "thu",
    "friday": "fri", "saturday": "sat", "sunday": "sun",
}  # fmt: skip
_DAY_STEMS = {
    "понеділ": "mon", "понедельник": "mon", "вівтор": "tue", "вторник": "tue",
    "середу": "wed", "середа": "wed", "среду": "wed", "среда": "wed",
    "четвер": "thu", "ятниц": "fri", "пятниц": "fri",
    "субот": "sat", "суббот": "sat", "неділ": "sun", "воскресень": "sun",
}  # fmt: skip
_DAY_PREFIX: dict[str, list[tuple[str, str]]] = {}  # first 4 letters -> (stem, day), longest first
for _stem in sorted(_DAY_STEMS, key=len, reverse=True):
    _DAY_PREFIX.setdefault(_stem[:4], []).append((_stem, _DAY_STEMS[_stem]))
_GROUP_SEP = re.compile(r"[.,](?=\d{3}(?!\d))")
_YEAR = re.compile(r"(?:19|20)\d\d")


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """What one item looks like to story clustering.

    ``bloom``, ``specifics``, ``n_words`` and ``short`` are the sketch a story index remembers
    (``pack()``). The rest exists only on a fingerprint just computed (``fingerprint()``): the
    sorted word ids of the words and of the lead, and their Bloom bits (as a word, as a lead
    word). ``stored()`` and ``unpack()`` give the sketch alone.
    """

    bloom: bytes
    specifics: tuple[int, ...]
    n_words: int
    short: bool
    words: tuple[int, ...] = ()
    lead: tuple[int, ...] = ()
    masks: tuple[tuple[int, int], ...] = ()
    lead_masks: tuple[tuple[int, int], ...] = ()

    @property
    def size(self) -> int:
        """Distinct words plus specifics: which of two items is the smaller."""
        return self.n_words + len(self.specifics)

    def stored(self) -> Fingerprint:
        """The sketch alone: what a story index keeps."""
        return replace(self, words=(), lead=(), masks=(), lead_masks=())

    def pack(self) -> bytes:
        """The sketch as ``PACKED_SIZE`` bytes (what a Redis index stores per story)."""
        nums = self.specifics + (0,) * (MAX_SPECIFICS - len(self.specifics))
        n = min(self.n_words, 0xFFFF)
        return _HEADER.pack(self.bloom, n, int(self.short), len(self.specifics), *nums)

    @classmethod
    def unpack(cls, data: bytes) -> Fingerprint:
        """The stored form from ``pack()`` bytes."""
        bloom, n, short, count, *nums = _HEADER.unpack(data)
        return cls(bytes(bloom), tuple(nums[:count]), n, bool(short))


@lru_cache(maxsize=1 << 18)
def _word(word: str) -> tuple[int, tuple[int, int]]:
    """(64-bit id, (Bloom bits as a word, Bloom bits as a lead word)) of a normalised word:
    four 10-bit slices of the id's low 40 bits."""
    wid = int.from_bytes(blake2b(word.encode(), digest_size=8, key=_KEY).digest(), "little")
    whole = (1 << (wid & _MASK10)) | (1 << ((wid >> 10) & _MASK10))
    lead = (1 << ((wid >> 20) & _MASK10)) | (1 << ((wid >> 30) & _MASK10))
    return wid, (whole, lead)


@lru_cache(maxsize=1 << 14)
def _specific_id(number: str) -> int:
    return int.from_bytes(blake2b(number.encode(), digest_size=2, key=_KEY).digest(), "little")


def content_words(text: str) -> list[str]:
    """Normalised words of ``text`` in order, without stop words, digits or one-letter words."""
    return [w for w in index_text(text).norm.split() if w not in STOP_WORDS and w.isalpha()]


def tokens(text: str) -> list[str]:
    """The normalised words of ``text`` in order (stop words and all)."""
    return index_text(text).norm.split()


def _text_words(tokens: list[str]) -> tuple[list[str], list[str]]:
    """(distinct content words in order, the first LEAD_WORDS content words) of a text's
    ``tokens``."""
    distinct = [w for w in dict.fromkeys(tokens) if w not in STOP_WORDS and w.isalpha()]
    lead: list[str] = []
    for w in tokens:
        if w not in STOP_WORDS and w.isalpha():
            lead.append(w)
            if len(lead) == LEAD_WORDS:
                break
    return distinct, lead


def specifics(text: str, words: Iterable[str] = ()) -> list[str]:
    """Distinct specifics in order: weekday names among ``words`` (normalised, as from
    ``content_words``), then the numbers of ``text`` (separators dropped; no years, no single
    digits)."""
    out: dict[str, None] = {}
    if text.isascii():
        # sorted: a set's order changes from process to process (string hashing), and the
        # fingerprint must not (parse workers compute it)
        for found in sorted({_WEEKDAYS[w] for w in _WEEKDAYS.keys() & set(words)}):
            out[found] = None
    else:
        for w in words:
            day = _WEEKDAYS.get(w)
            if day is None and (stems := _DAY_PREFIX.get(w[:4])):
                day = next((d for stem, d in stems if w.startswith(stem)), None)
            if day is not None:
                out[day] = None
    for raw in _NUMBER.findall(text):
        s = _GROUP_SEP.sub("", raw.rstrip(".,")).lstrip("0")
        if len(s) < 2 or (len(s) == 4 and _YEAR.fullmatch(s)):
            continue
        out[s] = None
    return list(out)


def fingerprint(
    title: str,
    text: str,
    *,
    title_words: list[str] | None = None,
    text_tokens: list[str] | None = None,
) -> Fingerprint:
    """The fingerprint of an item's title and plain text (``Item.title``, ``Item.summary``);
    ``title_words`` (``content_words(title)``) and ``text_tokens`` (``tokens(text)``) when
    the caller has them already."""
    if title_words is None:
        title_words = content_words(title)
    distinct, first = _text_words(tokens(text) if text_tokens is None else text_tokens)
    names = dict.fromkeys(title_words + distinct[:BODY_WORDS])
    words = sorted(map(_word, names), key=_first)
    short = len(words) < SHORT_WORDS
    lead = words if short else sorted(map(_word, dict.fromkeys(title_words + first)), key=_first)
    found = specifics(f"{title}\n{text}", names if len(distinct) <= BODY_WORDS else distinct)
    masks = tuple(map(itemgetter(1), words))
    lead_masks = tuple(map(itemgetter(1), lead))
    bits = reduce(or_, map(itemgetter(0), masks), 0)
    bits |= reduce(or_, map(itemgetter(1), lead_masks), 0)
    word_ids = tuple(map(itemgetter(0), words))
    lead_ids = tuple(map(itemgetter(0), lead))
    return Fingerprint(
        bloom=bits.to_bytes(_BLOOM_BYTES, "little"),
        specifics=tuple(_specific_id(n) for n in found[:MAX_SPECIFICS]),
        n_words=len(words),
        short=short,
        words=word_ids,
        lead=lead_ids,
        masks=masks,
        lead_masks=lead_masks,
    )


def similarity(a: Fingerprint, b: Fingerprint) -> float:
    """How much of the smaller item the larger one carries, in [0, 1].

    Weighted containment of the smaller item's words and specifics in the larger item; a short
    item (title-only, summary-only) is compared with the larger item's lead instead. Exact when
    both fingerprints carry their words; against a stored fingerprint, estimated from its Bloom
    filter (false positives subtracted); between two stored ones, a rough bit-overlap estimate.
    """
    if a.words and b.words:
        return _exact(a, b)
    if b.words:
        a, b = b, a
    if a.words:
        return matcher(a)(b)
    return _stored_pair(a, b)


def matcher(fp: Fingerprint, floor: float = 0.0) -> Callable[[Fingerprint], float]:
    """``similarity(fp, other)`` as a function of ``other``, with ``fp``'s Bloom bits computed
    once: what an index does with one new item and several candidate stories.

    With a ``floor``, a stored candidate is first checked on ``SAMPLE`` of ``fp``'s words (in
    id order, i.e. at random); if that estimate is more than ``SAMPLE_MARGIN`` below the floor
    it is returned as is (a true similarity at the floor is cut this way about once in 200).
    """
    if not fp.words:
        return lambda other: similarity(fp, other)
    masks, lead_masks = fp.masks, fp.lead_masks

    def compare(other: Fingerprint) -> float:
        if other.words:
            return _exact(fp, other)
        return _against_stored(fp, other, masks, lead_masks, floor)

    return compare


def _ordered(a: Fingerprint, b: Fingerprint) -> tuple[Fingerprint, Fingerprint]:
    return (a, b) if (a.size, a.bloom) <= (b.size, b.bloom) else (b, a)


def _exact(a: Fingerprint, b: Fingerprint) -> float:
    small, big = _ordered(a, b)
    total = len(small.words) + SPECIFIC_WEIGHT * len(small.specifics)
    if not total:
        return 0.0
    target = big.lead if small.short else big.words
    hits = len(set(small.words).intersection(target))
    hits += SPECIFIC_WEIGHT * len(set(small.specifics).intersection(big.specifics))
    return hits / total


def _against_stored(
    x: Fingerprint,
    y: Fingerprint,
    masks: tuple[tuple[int, int], ...],
    lead_masks: tuple[tuple[int, int], ...],
    floor: float,
) -> float:
    """``x`` carries its words (``masks`` / ``lead_masks``: their Bloom bits), ``y`` is stored."""
    bloom = int.from_bytes(y.bloom, "little")
    fp_rate = (bloom.bit_count() / BLOOM_BITS) ** 2
    spec = SPECIFIC_WEIGHT * len(set(x.specifics).intersection(y.specifics))
    if _ordered(x, y)[0] is x:
        # x is the smaller: how many of its words are in y (in y's lead if x is short)?
        side, seq, cap = (1 if x.short else 0), masks, float(len(x.words))
        total = len(x.words) + SPECIFIC_WEIGHT * len(x.specifics)
    else:
        # y is the smaller: how many of x's words (lead words if y is short) are in y?
        side, seq, cap = 0, (lead_masks if y.short else masks), float(y.n_words)
        total = y.n_words + SPECIFIC_WEIGHT * len(y.specifics)
    if not total:
        return 0.0

    def value(hits: float, n: int) -> float:
        # false positives expected among the n words, plus one standard deviation of them
        false = n * fp_rate + FP_SIGMAS * sqrt(n * fp_rate * (1.0 - fp_rate))
        true = min(cap, max(0.0, (hits - false) / (1.0 - fp_rate)))
        return min(1.0, (true + spec) / total)

    n = len(seq)
    if floor and n > 2 * SAMPLE:
        hits = sum(1 for m in seq[:SAMPLE] if m[side] & bloom == m[side])
        guess = value(hits * n / SAMPLE, n)
        if guess < floor - SAMPLE_MARGIN:
            return guess
        hits += sum(1 for m in seq[SAMPLE:] if m[side] & bloom == m[side])
    else:
        hits = sum(1 for m in seq if m[side] & bloom == m[side])
    return value(hits, n)


def _stored_pair(a: Fingerprint, b: Fingerprint) -> float:
    """Neither carries words: overlap of Bloom bits beyond chance, relative to the sparser."""
    x, y = int.from_bytes(a.bloom, "little"), int.from_bytes(b.bloom, "little")
    pa, pb = x.bit_count(), y.bit_count()
    chance = pa * pb / BLOOM_BITS
    lower = min(pa, pb) - chance
    if lower <= 0:
        return 1.0 if a == b else 0.0
    words = max(0.0, min(1.0, ((x & y).bit_count() - chance) / lower))
    small = _ordered(a, b)[0]
    nums = len(set(a.specifics).intersection(b.specifics))
    total = small.n_words + SPECIFIC_WEIGHT * len(small.specifics)
    return min(1.0, (words * small.n_words + SPECIFIC_WEIGHT * nums) / total) if total else 0.0
