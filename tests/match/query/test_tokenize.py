"""Words and their normalisation: the same for queries and items."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.match.query.tokenize import index_text, normalize_word, words


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("Kursk", "kursk"),
        ("KURSK", "kursk"),
        ("Kúrsk", "kursk"),
        ("Kur\u0301sk", "kursk"),  # decomposed accent
        ("Курськ", "курськ"),
        ("КУРСК", "курск"),
        ("Straße", "strasse"),
        ("ﬁre", "fire"),  # NFKC ligature
        ("Ｋｕｒｓｋ", "kursk"),  # full-width
        ("İstanbul", "istanbul"),
        ("ёлка", "елка"),
        ("Zelenskyy", "zelenskyy"),
    ],
)
def test_normalize_word(word: str, expected: str) -> None:
    """NFKC, casefold and dropped combining marks, in any script."""
    assert normalize_word(word) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Pyongyang's forces", ["pyongyang", "s", "forces"]),
        ("long-range missiles", ["long", "range", "missiles"]),
        ("the U.S. army", ["the", "u", "s", "army"]),
        ("north_korea", ["north", "korea"]),
        ("50,000 soldiers", ["50", "000", "soldiers"]),
        ("Kyiv’s “pleas”", ["kyiv", "s", "pleas"]),
        ("北朝鲜军队", ["北", "朝", "鲜", "军", "队"]),
        ("café au lait", ["cafe", "au", "lait"]),
        ("", []),
        ("... !!!", []),
    ],
)
def test_words(text: str, expected: list[str]) -> None:
    """Words are runs of letters, digits and marks; punctuation and '_' separate them."""
    assert [w for w, _, _ in words(text)] == expected


@pytest.mark.parametrize(
    "text",
    [
        "Russia Accuses West of Sending Mercenaries to Kursk",
        "Kyiv’s forces — “fierce” fighting, 50,000 troops",
        "Бої в Курській області",
        "Mixed: Kursk / Курськ / Курск_region",
        "  leading and trailing  ",
        "é",
        "",
    ],
)
def test_index_text_spans_align_with_words(text: str) -> None:
    """The n-th word of ``norm`` is the normalised text of the n-th span."""
    indexed = index_text(text)
    norm_words = indexed.norm.split()
    spans = indexed.spans()
    assert len(norm_words) == len(spans)
    assert [normalize_word(text[s:e]) for s, e in spans] == norm_words
    assert indexed.norm.startswith(" ") and indexed.norm.endswith(" ")


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=60))
def test_index_text_agrees_with_words(text: str) -> None:
    """Fast (ASCII) and general paths give the words ``words()`` gives, with their offsets."""
    indexed = index_text(text)
    expected = words(text)
    assert indexed.norm.split() == [w for w, _, _ in expected]
    assert indexed.spans() == [(s, e) for _, s, e in expected]


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(
        st.text(alphabet=st.sampled_from("ab Z9.,;-_'’\n\t"), max_size=60),
        st.text(alphabet=st.characters(codec="utf-8"), max_size=40),
    ),
    st.data(),
)
def test_char_span_maps_norm_words_back(text: str, data: st.DataObject) -> None:
    """Any run of consecutive words in ``norm`` maps back to the text of those words."""
    indexed = index_text(text)
    spans = indexed.spans()
    if not spans:
        return
    starts = [i + 1 for i, c in enumerate(indexed.norm) if c == " "][: len(spans)]
    i = data.draw(st.integers(0, len(spans) - 1))
    j = data.draw(st.integers(i, len(spans) - 1))
    a = starts[i]
    b = indexed.norm.index(" ", starts[j])
    assert indexed.char_span(a, b) == (spans[i][0], spans[j][1])
