"""Story clustering (daemon.stories.cluster): labelled pairs, fingerprints, the in-memory index."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterable
from functools import cache
from pathlib import Path

import pytest

from daemon.config.yamlfile import load_yaml
from daemon.stories.cluster import (
    PACKED_SIZE,
    SAME_STORY,
    Fingerprint,
    StoryIndex,
    band_keys,
    fingerprint,
    similarity,
    story_key_for_url,
)
from daemon.stories.sketch import specifics

PAIRS = Path(__file__).parent.parent / "data" / "stories" / "pairs.yaml"
HOUR = 3600.0


@cache
def labelled() -> tuple[dict[str, tuple[str, str]], list[tuple[str, str, bool]]]:
    data = load_yaml(PAIRS)
    items = {str(k): (str(v["title"]), str(v["text"] or "")) for k, v in data["items"].items()}
    pairs = [(str(a), str(b), bool(same)) for a, b, same, _why in data["pairs"]]
    return items, pairs


@cache
def fp(key: str) -> Fingerprint:
    return fingerprint(*labelled()[0][key])


def precision_recall(decisions: Iterable[tuple[bool, bool]]) -> tuple[float, float, str]:
    """(precision, recall, summary) of "same story" over (decided same, labelled same)."""
    tp = fp_ = fn = 0
    for decided, same in decisions:
        tp += decided and same
        fp_ += decided and not same
        fn += same and not decided
    precision = tp / (tp + fp_) if tp + fp_ else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    return (
        precision,
        recall,
        f"precision {precision:.3f}, recall {recall:.3f} ({tp} TP, {fp_} FP, {fn} FN)",
    )


def report(capsys: pytest.CaptureFixture[str], what: str, summary: str) -> None:
    with capsys.disabled():
        print(f"\n[story] {what}: {summary} at SAME_STORY={SAME_STORY}")


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# -- the labelled set ------------------------------------------------------------------------


def test_labelled_set_is_well_formed() -> None:
    """The set has >= 30 same-story and >= 30 different-story pairs over known, distinct items."""
    items, pairs = labelled()
    same = [p for p in pairs if p[2]]
    assert len(same) >= 30 and len(pairs) - len(same) >= 30
    assert all(a in items and b in items and a != b for a, b, _ in pairs)
    assert len({frozenset((a, b)) for a, b, _ in pairs}) == len(pairs)
    assert all(title.strip() for title, _ in items.values())


def test_same_story_precision_recall_exact(capsys: pytest.CaptureFixture[str]) -> None:
    """Two fresh fingerprints: precision >= 0.95 and recall >= 0.90 of "same story"."""
    _, pairs = labelled()
    p, r, summary = precision_recall(
        (similarity(fp(a), fp(b)) >= SAME_STORY, same) for a, b, same in pairs
    )
    report(capsys, "labelled pairs, exact", summary)
    assert p >= 0.95 and r >= 0.90, summary


def test_same_story_precision_recall_against_stored(capsys: pytest.CaptureFixture[str]) -> None:
    """A new item against a remembered story, both arrival orders: precision >= 0.95, recall
    >= 0.90."""
    _, pairs = labelled()
    decisions = []
    for a, b, same in pairs:
        decisions.append((similarity(fp(b), fp(a).stored()) >= SAME_STORY, same))
        decisions.append((similarity(fp(a), fp(b).stored()) >= SAME_STORY, same))
    p, r, summary = precision_recall(decisions)
    report(capsys, "labelled pairs, new item vs stored story", summary)
    assert p >= 0.95 and r >= 0.90, summary


def test_same_story_precision_recall_through_index(capsys: pytest.CaptureFixture[str]) -> None:
    """Through StoryIndex (band keys, candidates, then similarity), both arrival orders."""
    _, pairs = labelled()
    decisions = []
    for a, b, same in pairs:
        for first, second in ((a, b), (b, a)):
            index = StoryIndex(clock=Clock())
            one = index.assign(first, fp(first), "feed-1")
            two = index.assign(second, fp(second), "feed-2")
            decisions.append((two.story_id == one.story_id, same))
    p, r, summary = precision_recall(decisions)
    report(capsys, "labelled pairs through StoryIndex", summary)
    assert p >= 0.95 and r >= 0.90, summary


# -- fingerprint and similarity ----------------------------------------------------------------


@pytest.mark.parametrize("key", ["merc-seed", "troops-brief", "title-troops", "uk-810-kyiv"])
def test_identical_text_is_similarity_one(key: str) -> None:
    """The same text is 1.0 exactly, and at least 0.95 against its remembered sketch."""
    title, text = labelled()[0][key]
    again = fingerprint(title, text)
    assert similarity(fp(key), again) == 1.0
    assert similarity(fp(key), again.stored()) >= 0.95
    assert similarity(fp(key).stored(), again) >= 0.95


def test_similarity_is_symmetric_between_fresh_fingerprints() -> None:
    """similarity(a, b) == similarity(b, a) when both carry their words."""
    for a, b, _ in labelled()[1][:30]:
        assert similarity(fp(a), fp(b)) == similarity(fp(b), fp(a))


def test_a_summary_matches_its_article_not_another_report() -> None:
    """A short item is compared with the other item's lead: its article yes, another no."""
    assert similarity(fp("back-lead"), fp("back-seed")) >= SAME_STORY
    assert similarity(fp("title-troops"), fp("troops-wire")) >= SAME_STORY
    assert similarity(fp("back-lead"), fp("troops-seed")) < SAME_STORY
    assert similarity(fp("title-captured"), fp("troops-seed")) < SAME_STORY


def test_fingerprint_is_deterministic_across_processes() -> None:
    """Fingerprints use keyed BLAKE2b, not hash(): other processes and hash seeds agree."""
    title, text = labelled()[0]["troops-seed"]
    mine = fingerprint(title, text)
    code = (
        "import json, sys\n"
        "from daemon.stories.cluster import fingerprint, band_keys\n"
        "t, x = json.loads(sys.stdin.read())\n"
        "f = fingerprint(t, x)\n"
        "print(json.dumps([f.pack().hex(), band_keys(f), list(f.probes)]))\n"
    )
    for seed in ("1", "4242"):
        out = subprocess.run(
            [sys.executable, "-c", code],
            input=json.dumps([title, text]),
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": seed, "PATH": "/usr/bin:/bin"},
            cwd=Path(__file__).parent.parent.parent,
            timeout=60,
        )
        packed, keys, probes = json.loads(out.stdout)
        assert packed == mine.pack().hex()
        assert keys == band_keys(mine)
        assert probes == list(mine.probes)


def test_pack_round_trips_the_sketch() -> None:
    """unpack(pack()) is the stored form, and pack() is PACKED_SIZE bytes."""
    for key in ("merc-seed", "title-troops", "ru-sudzha"):
        packed = fp(key).pack()
        assert len(packed) == PACKED_SIZE == 148
        assert Fingerprint.unpack(packed) == fp(key).stored()


def test_band_keys_are_short_hex_strings() -> None:
    """band_keys gives 8-hex-digit strings, the same for the same text, also for titles only."""
    keys = band_keys(fp("merc-seed"))
    assert keys and all(len(k) == 8 and int(k, 16) >= 0 for k in keys)
    assert keys == band_keys(fingerprint(*labelled()[0]["merc-seed"]))
    assert band_keys(fp("title-troops"))
    assert set(fp("merc-seed").bands) <= set(fp("merc-seed").probes)


def test_specifics_are_numbers_and_weekdays() -> None:
    """Numbers (separators dropped, no years or single digits) and weekdays in 3 languages."""
    got = specifics(
        "On Monday 50,000 troops, $425 million, the 810th brigade; in 2022, 3 times, 1.300 km",
        ["monday", "troops"],
    )
    assert got == ["mon", "50000", "425", "810", "1300"]
    words = ["неділю", "понеділок", "ятницю", "воскресенье"]
    assert specifics("Курськ", words) == ["sun", "mon", "fri"]


def test_empty_item_is_similar_to_nothing() -> None:
    """An item with no words has similarity 0.0 and still gets a story of its own."""
    empty = fingerprint("", "")
    assert similarity(empty, fp("merc-seed")) == 0.0
    assert similarity(fp("merc-seed").stored(), empty) == 0.0
    index = StoryIndex(clock=Clock())
    assert index.assign("a", empty, "f").new_story
    assert index.assign("b", fp("merc-seed"), "f").new_story


# -- the in-memory index ---------------------------------------------------------------------


def test_the_three_seeds_are_three_stories() -> None:
    """Three reports about Kursk start three stories."""
    index = StoryIndex(clock=Clock())
    got = [index.assign(k, fp(k), "seeds") for k in ("merc-seed", "troops-seed", "back-seed")]
    assert all(a.new_story for a in got)
    assert len({a.story_id for a in got}) == 3 == len(index)


def test_rewrites_join_and_sources_grow_first_seen_first() -> None:
    """Rewrites by other outlets join the story; its sources list feeds in first-seen order."""
    index = StoryIndex(clock=Clock())
    first = index.assign("merc-seed", fp("merc-seed"), "cali-today")
    second = index.assign("merc-wire", fp("merc-wire"), "wire")
    third = index.assign("merc-reorder", fp("merc-reorder"), "kyiv-daily")
    again = index.assign("merc-context", fp("merc-context"), "wire")
    assert first.new_story and first.sources == ("cali-today",)
    assert not second.new_story and second.story_id == first.story_id
    assert second.similarity >= SAME_STORY
    assert third.story_id == first.story_id and not third.new_story
    assert third.sources == ("cali-today", "wire", "kyiv-daily")
    assert again.story_id == first.story_id and again.sources == third.sources
    assert len(index) == 1


def test_a_story_is_forgotten_after_the_window() -> None:
    """With an injected clock: a rewrite inside the window joins, one after it starts anew."""
    clock = Clock(0.0)
    index = StoryIndex(window=48 * HOUR, clock=clock)
    first = index.assign("troops-seed", fp("troops-seed"), "a")
    clock.now = 48 * HOUR - 1
    inside = index.assign("troops-wire", fp("troops-wire"), "b")
    assert inside.story_id == first.story_id
    clock.now = 48 * HOUR + 1
    after = index.assign("troops-cut", fp("troops-cut"), "c")
    assert after.new_story and after.story_id != first.story_id
    assert len(index) == 1
    late = index.assign("troops-rewrite", fp("troops-rewrite"), "d", now=49 * HOUR)
    assert late.story_id == after.story_id and late.sources == ("c", "d")


def test_assigning_an_item_again_changes_nothing() -> None:
    """The same item key returns its story; sources are not counted twice."""
    index = StoryIndex(clock=Clock())
    one = index.assign("merc-seed", fp("merc-seed"), "a")
    index.assign("merc-wire", fp("merc-wire"), "b")
    again = index.assign("merc-wire", fp("merc-wire"), "b")
    assert again.story_id == one.story_id and not again.new_story
    assert again.sources == ("a", "b")


def test_a_known_link_joins_whatever_the_text() -> None:
    """Two spellings of one article link are one story even when the texts differ."""
    index = StoryIndex(clock=Clock())
    url = "http://example.net/wire/2025/08/mercenaries-kursk/?utm_source=rss#top"
    first = index.assign("a", fp("merc-seed"), "wire", url=url)
    other = index.assign(
        "b", fp("sudzha"), "mirror", url="https://example.net/wire/2025/08/mercenaries-kursk"
    )
    assert other.story_id == first.story_id and other.similarity == 1.0
    assert index.assign("c", fp("kursk-npp"), "x", url="https://example.net/other").new_story


def test_story_key_for_url_follows_canonical_url() -> None:
    """Tracking parameters, AMP, scheme and fragment do not change the key; the path does."""
    key = story_key_for_url("https://example.org/news/story-1")
    assert story_key_for_url("http://EXAMPLE.org/news/story-1/?utm_medium=x&fbclid=1") == key
    assert story_key_for_url("https://example.org/amp/news/story-1#comments") == key
    assert story_key_for_url("https://example.org/news/story-2") != key


def test_a_fuller_text_becomes_the_representative() -> None:
    """A title-only item starts the story; the full article joins and represents it after."""
    index = StoryIndex(clock=Clock())
    first = index.assign("title-troops", fp("title-troops"), "titles")
    full = index.assign("troops-wire", fp("troops-wire"), "wire")
    assert full.story_id == first.story_id
    [state] = index.stories()
    assert state.fingerprint == fp("troops-wire").stored()
    assert set(fp("title-troops").bands) & set(state.keys)
    rewrite = index.assign("troops-rewrite", fp("troops-rewrite"), "outlet")
    assert rewrite.story_id == first.story_id
    assert rewrite.sources == ("titles", "wire", "outlet")


def test_candidates_are_bounded_by_max_candidates() -> None:
    """However many stories share a key, a lookup verifies at most max_candidates of them."""
    index = StoryIndex(clock=Clock(), max_candidates=5, bucket_size=4)
    for i in range(40):
        text = f"Storm closes mountain passes number {i * 7 + 11} near valley town {i}"
        index.assign(f"s{i}", fingerprint(f"Weather bulletin {i}", text), "weather")
    probe = fingerprint("Weather bulletin", "Storm closes mountain passes near valley town")
    assert 0 < len(index.candidates(probe)) <= 5
