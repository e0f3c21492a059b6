"""Rewrite sketches (daemon.stories.sketch): containment of one item's words in another's."""

from __future__ import annotations

import json
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

from daemon.config.yamlfile import load_yaml
from daemon.stories.sketch import (
    PACKED_SIZE,
    REWRITE,
    Fingerprint,
    fingerprint,
    similarity,
    specifics,
)

PAIRS = Path(__file__).parent.parent / "data" / "stories" / "pairs.yaml"


@cache
def items() -> dict[str, tuple[str, str]]:
    data = load_yaml(PAIRS)
    return {str(k): (str(v["title"]), str(v["text"] or "")) for k, v in data["items"].items()}


@cache
def fp(key: str) -> Fingerprint:
    return fingerprint(*items()[key])


@pytest.mark.parametrize("key", ["merc-seed", "troops-brief", "title-troops", "uk-810-kyiv"])
def test_identical_text_is_similarity_one(key: str) -> None:
    """The same text is 1.0 exactly, and at least 0.95 against its remembered sketch."""
    again = fingerprint(*items()[key])
    assert similarity(fp(key), again) == 1.0
    assert similarity(fp(key), again.stored()) >= 0.95
    assert similarity(fp(key).stored(), again) >= 0.95


def test_similarity_is_symmetric_between_fresh_fingerprints() -> None:
    """similarity(a, b) == similarity(b, a) when both carry their words."""
    keys = sorted(items())[:12]
    for a in keys:
        for b in keys:
            assert similarity(fp(a), fp(b)) == similarity(fp(b), fp(a))


def test_a_summary_is_contained_in_its_article_not_another_report() -> None:
    """A short item is compared with the other item's lead: its article yes, another no."""
    assert similarity(fp("back-lead"), fp("back-seed")) >= REWRITE
    assert similarity(fp("title-troops"), fp("troops-wire")) >= REWRITE
    assert similarity(fp("back-lead"), fp("troops-seed")) < REWRITE
    assert similarity(fp("title-captured"), fp("troops-seed")) < REWRITE


def test_fingerprint_is_deterministic_across_processes() -> None:
    """Sketches use keyed BLAKE2b, not hash(): other processes and hash seeds agree."""
    title, text = items()["troops-seed"]
    mine = fingerprint(title, text)
    code = (
        "import json, sys\n"
        "from daemon.stories.sketch import fingerprint\n"
        "from daemon.stories.terms import item_terms\n"
        "t, x = json.loads(sys.stdin.read())\n"
        "print(json.dumps([fingerprint(t, x).pack().hex(), list(item_terms(t, x).ids)]))\n"
    )
    from daemon.stories.terms import item_terms

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
        packed, ids = json.loads(out.stdout)
        assert packed == mine.pack().hex()
        assert ids == list(item_terms(title, text).ids)


def test_pack_round_trips_the_sketch() -> None:
    """unpack(pack()) is the stored form, and pack() is PACKED_SIZE bytes."""
    for key in ("merc-seed", "title-troops", "ru-sudzha"):
        packed = fp(key).pack()
        assert len(packed) == PACKED_SIZE == 148
        assert Fingerprint.unpack(packed) == fp(key).stored()


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
    """An item with no words has similarity 0.0."""
    empty = fingerprint("", "")
    assert similarity(empty, fp("merc-seed")) == 0.0
    assert similarity(fp("merc-seed").stored(), empty) == 0.0
