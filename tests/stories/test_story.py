"""Story clustering (daemon.stories.cluster): what makes items one story, labelled pairs, the
in-memory index."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest

from daemon.config.yamlfile import load_yaml
from daemon.stories.cluster import (
    STORY_SIZE,
    Remembered,
    StoryIndex,
    item_terms,
    score,
    story_key_for_url,
)
from daemon.stories.profile import PROFILE_TERMS, Profile, merged, vector
from daemon.stories.sketch import REWRITE, matcher
from daemon.stories.terms import ItemTerms, numbers

PAIRS = Path(__file__).parent.parent / "data" / "stories" / "pairs.yaml"
HOUR = 3600.0


@cache
def labelled() -> tuple[dict[str, tuple[str, str]], list[tuple[str, str, bool]]]:
    data = load_yaml(PAIRS)
    items = {str(k): (str(v["title"]), str(v["text"] or "")) for k, v in data["items"].items()}
    pairs = [(str(a), str(b), bool(same)) for a, b, same, _why in data["pairs"]]
    return items, pairs


@cache
def terms(key: str) -> ItemTerms:
    return item_terms(*labelled()[0][key])


def precision_recall(decisions: list[tuple[bool, bool]]) -> tuple[float, float, str]:
    """(precision, recall, summary) of "same story" over (decided same, labelled same)."""
    tp = sum(d and s for d, s in decisions)
    fp = sum(d and not s for d, s in decisions)
    fn = sum(s and not d for d, s in decisions)
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    return (
        precision,
        recall,
        f"precision {precision:.3f}, recall {recall:.3f} ({tp} TP, {fp} FP, {fn} FN)",
    )


def report(capsys: pytest.CaptureFixture[str], what: str, summary: str) -> None:
    with capsys.disabled():
        print(f"\n[story] {what}: {summary}")


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def warmed(keys: list[str] | None = None, **kw: float) -> StoryIndex:
    """An index whose document frequencies have seen every labelled item (a warm stream)."""
    index = StoryIndex(clock=Clock(), **kw)  # type: ignore[arg-type]
    for key in keys if keys is not None else labelled()[0]:
        index.count(terms(key), 1_000_000.0)
    return index


# -- short reports, as real feeds carry them ----------------------------------------------

BACKGROUND = (
    [
        ("Storm brings heavy snow to the Alps", "Ski resorts closed roads as more snow fell."),
        ("Central bank holds interest rates", "The bank kept its main rate, citing inflation."),
        ("Football club sacks manager after defeat", "The coach left by mutual consent."),
        ("Oil prices rise on supply fears", "Brent crude climbed as traders weighed supply."),
        ("Election campaign enters final week", "Candidates held rallies across the country."),
        ("Tech giant unveils new phone", "The company showed its latest handset and software."),
    ]
    + [
        (f"Russian strike hits {city}", f"A missile attack on {city} overnight damaged buildings.")
        for city in ("Kherson", "Dnipro", "Sumy", "Lviv", "Poltava", "Chernihiv", "Pokrovsk")
    ]
    + [
        (f"Ukraine asks allies for more {thing}", f"Kyiv wants {thing} to defend its cities.")
        for thing in ("air defence", "artillery shells", "fighter jets", "drones", "tanks")
    ]
    + [  # a war week: sending tanks to Ukraine is everywhere, so those words weigh little
        ("Tanks for Ukraine: what we know", "Which countries could send armour, and when."),
        ("Kremlin warns West over sending tanks", "Moscow says deliveries to Ukraine escalate."),
        ("Ukraine's army trains crews for new tanks", "Soldiers learn to drive Western armour."),
        ("Why tanks matter in a spring offensive", "Analysts say armour could help Ukraine."),
        ("Allies argue over who will send tanks first", "Ministers met again without a deal."),
        ("Ukraine war: what happened on Tuesday", "Fighting went on as allies weighed tanks."),
    ]
)


def stream() -> StoryIndex:
    """An index that has seen some news (each background item its own story or not)."""
    index = StoryIndex(clock=Clock())
    for n, (title, text) in enumerate(BACKGROUND * 2):
        index.assign(f"bg{n}", item_terms(title, text), f"bg{n}")
    return index


def test_two_short_reports_of_one_event_are_one_story() -> None:
    """Different headlines and one-sentence summaries sharing a name, a number and the key
    noun are one story; so is a headline alone."""
    index = stream()
    a = index.assign(
        "a",
        item_terms(
            "US to send 31 Abrams tanks to Ukraine",
            "The Biden administration will provide 31 M1 Abrams tanks, officials said.",
        ),
        "nbc.com",
    )
    b = index.assign(
        "b",
        item_terms(
            "Biden approves sending 31 Abrams tanks to Kyiv",
            "Washington reverses course and will supply 31 of its main battle tanks.",
        ),
        "bbc.co.uk",
    )
    c = index.assign("c", item_terms("Washington to give Kyiv Abrams tanks", ""), "ft.com")
    assert a.new_story and b.story_id == a.story_id and c.story_id == a.story_id
    assert c.sources == ("nbc.com", "bbc.co.uk", "ft.com")


def test_same_topic_other_event_stays_apart() -> None:
    """Another country's tanks for Ukraine the same day is another story: the words they share
    are the week's common ones; the ones that differ are names and numbers."""
    index = stream()
    abrams = index.assign(
        "a",
        item_terms(
            "US to send 31 Abrams tanks to Ukraine",
            "The Biden administration will provide 31 M1 Abrams tanks, officials said.",
        ),
        "nbc.com",
    )
    leopard = index.assign(
        "l",
        item_terms(
            "Germany to send Leopard 2 tanks to Ukraine",
            "Berlin approves 14 Leopard tanks after weeks of pressure from allies.",
        ),
        "dw.com",
    )
    assert leopard.new_story and leopard.story_id != abrams.story_id


def test_long_texts_must_be_rewrites() -> None:
    """Two long reports on one topic are one story only when one carries the other's words:
    a rewrite joins, another report on Kursk does not."""
    index = warmed()
    first = index.assign("troops-seed", terms("troops-seed"), "a")
    rewrite = index.assign("troops-wire", terms("troops-wire"), "b")
    other = index.assign("merc-seed", terms("merc-seed"), "c")
    assert rewrite.story_id == first.story_id and not rewrite.new_story
    assert other.new_story


# -- the labelled rewrites (tests/data/stories/pairs.yaml) ---------------------------------


def test_labelled_set_is_well_formed() -> None:
    """The set has >= 30 same-story and >= 30 different-story pairs over known, distinct items."""
    items, pairs = labelled()
    same = [p for p in pairs if p[2]]
    assert len(same) >= 30 and len(pairs) - len(same) >= 30
    assert all(a in items and b in items and a != b for a, b, _ in pairs)
    assert len({frozenset((a, b)) for a, b, _ in pairs}) == len(pairs)
    assert all(title.strip() for title, _ in items.values())


def test_labelled_pairs_against_a_remembered_story(capsys: pytest.CaptureFixture[str]) -> None:
    """A new item against a one-item story (packed and unpacked, as Redis keeps it), document
    frequencies from the whole set, both arrival orders: precision >= 0.95, recall >= 0.90."""
    items, pairs = labelled()
    index = warmed()
    df_n = {k: index.frequencies(terms(k), 1_000_000.0) for k in items}
    vec = {k: vector(terms(k), *df_n[k]) for k in items}
    decisions = []
    for a, b, same in pairs:
        for first, second in ((a, b), (b, a)):
            story = Remembered.unpack(Remembered.first(terms(first), vec[first]).pack())
            compare = matcher(terms(second).sketch, REWRITE)
            decisions.append((score(compare, terms(second), vec[second], story) >= 1.0, same))
    p, r, summary = precision_recall(decisions)
    report(capsys, "labelled pairs, new item vs remembered story", summary)
    assert p >= 0.95 and r >= 0.90, summary


def test_labelled_pairs_through_the_index(capsys: pytest.CaptureFixture[str]) -> None:
    """Through StoryIndex (probe terms, candidates, then score), both arrival orders."""
    items, pairs = labelled()
    decisions = []
    for a, b, same in pairs:
        for first, second in ((a, b), (b, a)):
            index = warmed([k for k in items if k not in (a, b)])
            one = index.assign(first, terms(first), "feed-1")
            two = index.assign(second, terms(second), "feed-2")
            decisions.append((two.story_id == one.story_id, same))
    p, r, summary = precision_recall(decisions)
    report(capsys, "labelled pairs through StoryIndex", summary)
    assert p >= 0.95 and r >= 0.90, summary


# -- terms and profiles ----------------------------------------------------------------------


def test_numbers_are_anchors_without_years() -> None:
    """Numbers of two digits or more, separators dropped; no years, no single digits."""
    got = numbers("On Monday 50,000 troops, $425 million, the 810th brigade; in 2022, 3 times")
    assert got == ["50000", "425", "810"]


def test_title_words_weigh_double_and_count_once() -> None:
    """A title word weighs 2, a summary word 1; a word in both counts once, as a title word."""
    t = item_terms("Abrams tanks for Ukraine", "Tanks will arrive. Officials confirmed.")
    weights = dict(zip(t.ids, t.weights, strict=True))
    assert sorted(weights.values(), reverse=True)[:3] == [2.0, 2.0, 2.0]
    assert len(t.ids) == len(set(t.ids)) == 6  # abrams tank ukraine; arrive officials confirmed


def test_profile_accumulates_and_packs() -> None:
    """A profile is the sum of its items' vectors, cut to PROFILE_TERMS, and packs exactly."""
    many = ItemTerms(tuple(range(100)), tuple(1.0 for _ in range(100)), terms("merc-seed").sketch)
    v = vector(many, [0] * 100, 10)
    p = merged(merged(None, v), v)
    assert p.count == 2 and len(p.ids) == PROFILE_TERMS
    assert Profile.unpack(p.pack()).ids == p.ids
    assert all(
        abs(a - b) < 1e-2 for a, b in zip(Profile.unpack(p.pack()).weights, p.weights, strict=True)
    )
    assert len(Remembered.first(terms("merc-seed"), v).pack()) == STORY_SIZE


# -- the in-memory index ---------------------------------------------------------------------


def test_the_three_seeds_are_three_stories() -> None:
    """Three reports about Kursk start three stories."""
    index = StoryIndex(clock=Clock())
    got = [index.assign(k, terms(k), "seeds") for k in ("merc-seed", "troops-seed", "back-seed")]
    assert all(a.new_story for a in got)
    assert len({a.story_id for a in got}) == 3 == len(index)


def test_rewrites_join_and_sources_grow_first_seen_first() -> None:
    """Rewrites by other outlets join the story; its sources list feeds in first-seen order."""
    index = StoryIndex(clock=Clock())
    first = index.assign("merc-seed", terms("merc-seed"), "cali-today")
    second = index.assign("merc-wire", terms("merc-wire"), "wire")
    third = index.assign("merc-reorder", terms("merc-reorder"), "kyiv-daily")
    again = index.assign("merc-context", terms("merc-context"), "wire")
    assert first.new_story and first.sources == ("cali-today",)
    assert not second.new_story and second.story_id == first.story_id
    assert second.similarity >= 1.0
    assert third.story_id == first.story_id and not third.new_story
    assert third.sources == ("cali-today", "wire", "kyiv-daily")
    assert again.story_id == first.story_id and again.sources == third.sources
    assert len(index) == 1


def test_a_story_is_forgotten_after_the_window() -> None:
    """With an injected clock: a rewrite inside the window joins, one after it starts anew."""
    clock = Clock(0.0)
    index = StoryIndex(window=48 * HOUR, clock=clock)
    first = index.assign("troops-seed", terms("troops-seed"), "a")
    clock.now = 48 * HOUR - 1
    inside = index.assign("troops-wire", terms("troops-wire"), "b")
    assert inside.story_id == first.story_id
    clock.now = 48 * HOUR + 1
    after = index.assign("troops-cut", terms("troops-cut"), "c")
    assert after.new_story and after.story_id != first.story_id
    assert len(index) == 1
    late = index.assign("troops-rewrite", terms("troops-rewrite"), "d", now=49 * HOUR)
    assert late.story_id == after.story_id and late.sources == ("c", "d")


def test_assigning_an_item_again_changes_nothing() -> None:
    """The same item key returns its story; sources are not counted twice."""
    index = StoryIndex(clock=Clock())
    one = index.assign("merc-seed", terms("merc-seed"), "a")
    index.assign("merc-wire", terms("merc-wire"), "b")
    again = index.assign("merc-wire", terms("merc-wire"), "b")
    assert again.story_id == one.story_id and not again.new_story
    assert again.sources == ("a", "b")


def test_a_known_link_joins_whatever_the_text() -> None:
    """Two spellings of one article link are one story even when the texts differ."""
    index = StoryIndex(clock=Clock())
    url = "http://example.net/wire/2025/08/mercenaries-kursk/?utm_source=rss#top"
    first = index.assign("a", terms("merc-seed"), "wire", url=url)
    other = index.assign(
        "b", terms("sudzha"), "mirror", url="https://example.net/wire/2025/08/mercenaries-kursk"
    )
    assert other.story_id == first.story_id and other.similarity == 1.0
    assert index.assign("c", terms("kursk-npp"), "x", url="https://example.net/other").new_story


def test_story_key_for_url_follows_canonical_url() -> None:
    """Tracking parameters, AMP, scheme and fragment do not change the key; the path does."""
    key = story_key_for_url("https://example.org/news/story-1")
    assert story_key_for_url("http://EXAMPLE.org/news/story-1/?utm_medium=x&fbclid=1") == key
    assert story_key_for_url("https://example.org/amp/news/story-1#comments") == key
    assert story_key_for_url("https://example.org/news/story-2") != key


def test_a_fuller_text_becomes_the_sketch() -> None:
    """A title-only item starts the story; the full article joins: its sketch becomes the
    story's and its terms join the profile."""
    index = StoryIndex(clock=Clock())
    first = index.assign("title-troops", terms("title-troops"), "titles")
    full = index.assign("troops-wire", terms("troops-wire"), "wire")
    assert full.story_id == first.story_id
    [state] = index.stories()
    assert state.memory.sketch == terms("troops-wire").sketch.stored()
    assert state.memory.profile.count == 2
    rewrite = index.assign("troops-rewrite", terms("troops-rewrite"), "outlet")
    assert rewrite.story_id == first.story_id
    assert rewrite.sources == ("titles", "wire", "outlet")


def test_candidates_are_bounded_by_max_candidates() -> None:
    """However many stories share a key, a lookup verifies at most max_candidates of them."""
    index = StoryIndex(clock=Clock(), max_candidates=5, bucket_size=4)
    for i in range(40):
        text = f"Storm closes mountain passes number {i * 7 + 11} near valley town {i}"
        index.assign(f"s{i}", item_terms(f"Weather bulletin {i}", text), "weather")
    probe = item_terms("Weather bulletin", "Storm closes mountain passes near valley town")
    v = vector(probe, *index.frequencies(probe, 1_000_000.0))
    assert 0 < len(index.candidates(v)) <= 5
