"""Word forms: inflections in English, Russian, Ukrainian and Polish, names across scripts,
``=`` for the exact form, phrases and NEAR over forms, explanations of the text as written."""

from __future__ import annotations

import pytest

from daemon.match.query import QuerySyntaxError, compile_text, parse
from daemon.match.query.ast import Term
from daemon.match.query.forms import (
    MAX_FORMS,
    TooManyForms,
    to_cyrillic,
    to_latin,
    word_forms,
)
from tests.match.query.support import explain, matches

CASES = [
    # English: the lemma's forms
    ("troop", "Russia moved troops to the border", True),
    ("troops", "a troop was seen", True),
    ("sent", "Germany sends tanks", True),
    ("missile", "two missiles hit Kyiv", True),
    # Russian / Ukrainian
    ("ракета", "удар ракетой по городу", True),
    ("зброя", "нова партія зброї для України", True),
    ("Україна", "допомога Україні", True),
    ("Москва", "в Москве прошли обыски", True),
    # Polish
    ("czołg", "Polska przekaże czołgi", True),
    ("amunicja", "dostawy amunicji", True),
    # A name: case endings, and its spellings in the other script, both ways
    ("Kursk", "Бої в Курській області", True),
    ("Kursk", "Войска в Курской области", True),
    ("Kursk", "ЗСУ під Курськом", True),
    ("Kursk", "Взрывы слышны в Курске", True),
    ("Kursk", "Walki w obwodzie kurskim trwają w Kursku", True),
    ("Kursk", "Ukraina weszła do Kurska", True),
    ("Курськ", "Ukraine's incursion into Kursk", True),
    ("Курськ", "Россия перебросила войска в Курскую область", True),
    ("Курск", "бої під Курськом", True),
    ("Zelensky", "Зеленський заявив", True),
    ("Зеленський", "Zelensky said", True),
    ("Sudzha", "бої за Суджу", True),
    ("Pokrovsk", "наступ на Покровськ", True),
    # … and what a name must not match
    ("Kursk", "Russian forces are closing in on the town of Kurakhove.", False),
    ("Kursk", "Trains to the Kursky railway station in Moscow were delayed.", False),
    ("Kursk", "Kurskaya station", False),
    ("Kursk", "Курахове під обстрілом", False),
    ("Kursk", "курсы валют", False),
    # the exact form only
    ("=Kursk", "Бої в Курській області", False),
    ("=Kursk", "Kursk region", True),
    ("=troops", "a troop was seen", False),
    ('="North Korean soldiers"', "North Korean soldier", False),
    ('="North Korean soldiers"', "north korean soldiers", True),
    # a lower-case word the dictionaries do not know is only itself
    ("zork", "zorks", False),
    # wildcards and {case} terms use no forms
    ("{US}", "us", False),
    ("troop*", "troopers", True),
    # a stop word's lemma adds nothing: "is" does not match "are"
    ("is", "they are here", False),
    # phrases and NEAR over forms
    ('"North Korean soldier"', "North Korean soldiers", True),
    ('"Курська область"', "у Курській області", True),
    ("soldier NEAR/3 Kursk", "солдаты", False),
    ("soldier NEAR/3 Kursk", "soldiers were sent to Kursk", True),
    ("(troop OR soldier) NEAR/2 Курськ", "troops near Kursk", True),
]


@pytest.mark.parametrize(("query", "text", "expected"), CASES)
def test_forms(query: str, text: str, expected: bool) -> None:
    """Query × text → match or not, with word forms."""
    assert matches(query, text) is expected


def test_no_forms_outside_the_title_and_summary() -> None:
    """Links, feed names and tags are not prose: their words match as written."""
    assert not matches("link:troop", link="https://example.com/troops")
    assert matches("link:troops", link="https://example.com/troops")


def test_explanations_show_the_text_as_written() -> None:
    """A form matches, and the explanation points at the text that matched."""
    text = "ЗСУ увійшли в Курську область; Kurska okolica"
    spans = explain("Kursk", text)
    assert {text[s.start : s.end] for s in spans} == {"Курську", "Kurska"}
    assert {s.term for s in spans} == {"Kursk"}
    spans = explain("Kursk NEAR/3 troop", "troops entered Kurska")
    assert sorted("troops entered Kurska"[s.start : s.end] for s in spans) == ["Kurska", "troops"]


def test_exact_form_syntax() -> None:
    """``=word`` and ``="a phrase"`` parse to terms without forms; unparse keeps them."""
    assert parse("=Kursk") == Term("=Kursk", ("kursk",), forms=False)
    assert parse('="North Korea"') == Term('="North Korea"', ("north", "korea"), forms=False)
    assert parse("Kursk").uses_forms and not parse("=Kursk").uses_forms  # type: ignore[union-attr]
    assert compile_text("=Kursk").keys == frozenset({" kursk "})
    with pytest.raises(QuerySyntaxError) as info:
        parse("=tr*op")
    assert info.value.pos == 3


def test_transliteration_tables() -> None:
    assert to_cyrillic("kursk") == {"курск", "курськ"}
    assert to_cyrillic("kharkiv") == {"харкив", "харків"}
    assert to_cyrillic("donetsk") == {"донецк", "донецьк"}
    assert "kyiv" in to_latin("киів")  # Київ, normalised (ї → і)
    assert to_latin("курськ") == {"kursk"}
    assert to_latin("зеленскии") == {"zelensky", "zelenskyi"}


def test_english_first_for_latin_words() -> None:
    """An English word gets no Polish forms (war ≠ Polish wary), and no Cyrillic spellings."""
    forms = word_forms("war")
    assert "wars" in forms and "warach" not in forms
    assert not any("\u0400" <= c <= "\u04ff" for f in word_forms("Western") for c in f)


def test_too_many_forms_is_an_error_at_the_word(monkeypatch: pytest.MonkeyPatch) -> None:
    """A word whose forms are too many is reported where it is written."""
    from daemon.match.query import forms

    word_forms.cache_clear()
    monkeypatch.setattr(forms, "MAX_FORMS", 3)
    try:
        with pytest.raises(QuerySyntaxError) as info:
            parse("Kursk AND troops")
        assert (info.value.pos, info.value.end) == (0, 5)
        assert "=Kursk" in info.value.message
        assert parse("=Kursk AND =troops")
    finally:
        word_forms.cache_clear()
    assert MAX_FORMS > 100
    assert issubclass(TooManyForms, ValueError)
