"""The default rules in rules/: they catch the seed articles and their variants, and stay quiet
on near misses."""

from __future__ import annotations

import pytest
from ruamel.yaml import YAML

from daemon.match.examples import check_examples
from daemon.match.matcher import Matcher
from daemon.match.rules import RuleSet, load_rules
from daemon.types import Item
from tests.conftest import ROOT

# The three seed articles, copied in full into the story pairs (their ids there):
PAIRS = ROOT / "tests" / "data" / "stories" / "pairs.yaml"
KURSK_OFFENSIVE = "merc-seed"  # seed 000: mercenaries in Kursk; pleas for US weapons
NK_SOLDIERS = "troops-seed"  # seed 003: 50,000 soldiers incl. North Korean ones, Kursk
KURSK_ESCALATION = "back-seed"  # seed 004: Kursk offensive, NK soldiers, arms deliveries


@pytest.fixture(scope="module")
def ruleset() -> RuleSet:
    return load_rules([ROOT / "rules"])


@pytest.fixture(scope="module")
def matcher(ruleset: RuleSet) -> Matcher:
    return Matcher(ruleset)


def matched(matcher: Matcher, summary: str, title: str = "") -> set[str]:
    item = Item("test", "1", title, summary, None, None)
    return {m.rule.id for m in matcher.match(item)}


def seed(name: str) -> tuple[str, str]:
    """(title, body) of a seed article."""
    item = YAML(typ="safe").load(PAIRS.read_text(encoding="utf-8"))["items"][name]
    return item["title"], item["text"]


def test_default_rules_load_and_their_examples_pass(ruleset: RuleSet) -> None:
    """The three default files load, route to the default notifier, and pass their examples."""
    assert [r.id for r in ruleset.rules] == ["kursk", "north-korean-troops", "weapons-aid"]
    assert all(r.notify == () and r.enabled for r in ruleset.rules)
    assert all(r.examples.match and r.examples.no_match for r in ruleset.rules)
    assert check_examples(ruleset) == []


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (KURSK_OFFENSIVE, {"kursk", "weapons-aid"}),
        (NK_SOLDIERS, {"kursk", "north-korean-troops", "weapons-aid"}),
        (KURSK_ESCALATION, {"kursk", "north-korean-troops", "weapons-aid"}),
    ],
)
def test_seed_articles(matcher: Matcher, name: str, expected: set[str]) -> None:
    """Each seed article is caught by the rules about it (003 also mentions arms for Kyiv)."""
    title, body = seed(name)
    assert matched(matcher, body, title) == expected


def test_seed_explanations_point_into_the_text(matcher: Matcher) -> None:
    """Every span of every seed match points at text that is the matched term's word(s)."""
    for name in (KURSK_OFFENSIVE, NK_SOLDIERS, KURSK_ESCALATION):
        title, body = seed(name)
        for m in matcher.match(Item("s", name, title, body, None, None)):
            assert m.spans
            for s in m.spans:
                text = title if s.field == "title" else body
                assert text[s.start : s.end].strip() == text[s.start : s.end] != ""


@pytest.mark.parametrize(
    "text",
    [
        "Ukraine's incursion into Kursk continues",
        "Heavy fighting in the KURSK region",
        "Бої на Курщині тривають",  # Ukrainian: the Kursk region
        "Ситуація в Курській області",
        "Курськ під обстрілом",
        "Обстановка в Курской области",  # Russian
        "В Курске объявлена тревога",
        "Courts: l'offensive ukrainienne dans la région de Koursk",
    ],
)
def test_kursk_variants(matcher: Matcher, text: str) -> None:
    """Kursk in English, Ukrainian and Russian, in its inflected forms."""
    assert "kursk" in matched(matcher, text)


@pytest.mark.parametrize(
    "text",
    [
        "Russian forces close in on Kurakhove.",
        "Trains to the Kursky railway station in Moscow were delayed.",
        "Fighting continues in the Belgorod region.",
    ],
)
def test_kursk_near_misses(matcher: Matcher, text: str) -> None:
    """Other places, and words that merely start like Kursk, stay quiet."""
    assert "kursk" not in matched(matcher, text)


@pytest.mark.parametrize(
    "text",
    [
        "DPRK soldiers have been seen on the front line in Russia.",
        "Ukraine says troops from North Korea are fighting in Kursk.",
        "Pyongyang's forces are now deployed on Russian territory.",
        "Moscow has deployed North Korean soldiers to the Kursk region.",
        "Thousands of North Koreans troops arrived in Russia, Kyiv says.",
        "Kremlin silent on reports of North Korean infantry units near the front in Ukraine.",
        "Войска КНДР замечены в Курской области",
    ],
)
def test_north_korean_troops_variants(matcher: Matcher, text: str) -> None:
    """North Korean troops in Russia, however the article puts it."""
    assert "north-korean-troops" in matched(matcher, text)


@pytest.mark.parametrize(
    "text",
    [
        "North Korea test-fired a ballistic missile into the sea, Japan's defence ministry said.",
        "Russia condemned the North Korean missile launch as a provocation.",  # no troops
        "A North Korean soldier defected across the border to South Korea.",  # no Russia
        (
            "Russian troops advanced near Pokrovsk on Monday, according to the general staff; "
            "separately, North Korea held a party congress."
        ),  # too far apart
    ],
)
def test_north_korean_troops_near_misses(matcher: Matcher, text: str) -> None:
    """A missile test, a Korean border incident, unrelated mentions far apart: quiet."""
    assert "north-korean-troops" not in matched(matcher, text)


@pytest.mark.parametrize(
    "text",
    [
        "Ukraine pleads for more US weapons.",
        "Kyiv needs air defense systems before winter.",
        "Germany pledges more air defence systems for Ukraine.",
        "Ukraine asks for munitions and long-range precision weapons.",
        "Zelenskyy praised new arms deliveries from European partners.",
        "The Pentagon announced a new weapons package for Ukraine.",
        "Washington approved $2 billion in military aid to Kyiv.",
        "Britain will supply Ukraine with more artillery shells.",
    ],
)
def test_weapons_aid_variants(matcher: Matcher, text: str) -> None:
    """Arms for Ukraine: deliveries, pledges, requests, packages, military aid."""
    assert "weapons-aid" in matched(matcher, text)


@pytest.mark.parametrize(
    "text",
    [
        "The EU sent humanitarian aid to Ukraine: food, medicine and generators.",
        "The United States sent humanitarian aid to flood victims in Ukraine.",
        "Ukrainian soldiers showed us weapons captured from Russian troops.",  # "us" is not {US}
        "Germany will send more weapons to the Baltic states.",  # not about Ukraine
    ],
)
def test_weapons_aid_near_misses(matcher: Matcher, text: str) -> None:
    """Humanitarian aid, the pronoun "us", weapons for someone else: quiet."""
    assert "weapons-aid" not in matched(matcher, text)


def test_rules_readme_exists() -> None:
    """The analysts' reference sits beside the default rules."""
    assert (ROOT / "rules" / "README.md").is_file()


def test_default_rule_files_are_self_contained() -> None:
    """Each default file loads on its own (test-rule can be run on one file)."""
    for path in sorted((ROOT / "rules").glob("*.yaml")):
        assert len(load_rules([path]).rules) == 1
