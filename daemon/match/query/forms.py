"""Word forms of a query word: its inflections in English, Russian, Ukrainian and Polish, and for
a name, its spellings in the other script. Computed when a query is compiled, so matching stays
exact lookups of automaton keys.

``word_forms(written)`` → the normalised forms (always including the word itself):

1. **A word the lemma lists know** (simplemma's; see ``lexicon``): a Latin-script word is looked
   up in English, and only if English does not know it, in Polish; a Cyrillic word in Russian
   and Ukrainian. It matches every form of its lemma(s) that starts like the lemma: ``troop`` →
   troops, trooped; ``sent`` → send, sends, sending; ``ракета`` → ракеты, ракетой;
   ``czołg`` → czołgi, czołgów. A word whose lemma is a stop word (``is`` → *be*) keeps its
   exact form only.
2. **A name** — written with a capital letter and unknown to the lists of its script — gets
   the case endings of Polish (Latin script) or Russian and Ukrainian (Cyrillic), and its
   transliterations into the other script with their endings: ``Kursk`` → Kurska, Kursku,
   Курск, Курська, Курської, Курской, Курськ; ``Курськ`` → Kursk, Kurska, Курск, ….
   Adjectives of ``-sk`` names (Курская, Курської) are forms of the name.
3. Anything else (a lower-case unknown word, a number, another script) is only itself.

Transliteration is by two small tables (Russian BGN/PCGN-like and Ukrainian 2010 national
rules, in the normalised alphabet where й = и, ї = і, ё = е), both directions.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from daemon.match.query.ast import Term
from daemon.match.query.lexicon import Lexicon
from daemon.match.query.tokenize import normalize_word, words

# A word with more forms than this is an error (``check`` reports it): write ``=word``.
MAX_FORMS = 400
# A phrase's forms are every combination of its words' forms; more than this is an error.
MAX_PHRASE_FORMS = 2000

_STOP = {
    "en": (
        "a an the and or but of in on at to for by with from as is be are was were been being "
        "have has had do does did not no it its he she they we you i me him her them us our their "
        "this that these those which who what will would can could shall should may might must s "
        "say said says there here so if than then"
    ),
    "pl": (
        "i w we z ze na nie się że to do o a od jak po za być ten ta jest są mieć on ona oni my "
        "wy ty ja co czy tak już też ale lub oraz"
    ),
    "ru": (
        "и в во не на я он она оно они мы вы ты что как а но по к у из за от до о об с со же бы "
        "быть это этот тот весь свой который так уже или ли"
    ),
    "uk": (
        "і й та в у на не що як а але по до з із за від о про це цей той бути свій який так вже "
        "або чи"
    ),
}
STOP_WORDS = {lang: frozenset(normalize_word(w) for w in ws.split()) for lang, ws in _STOP.items()}

_LEXICONS: dict[str, Lexicon] = {}
_CYRILLIC = re.compile("[\u0400-\u04ff]")
_LATIN = re.compile("[a-z\u00c0-\u024f]", re.IGNORECASE)
_POLISH_LETTERS = re.compile("[ąćęłńóśźż]", re.IGNORECASE)


def lexicon(lang: str) -> Lexicon:
    """The lemma list of ``lang`` (loaded on first use, then kept)."""
    got = _LEXICONS.get(lang)
    if got is None:
        got = _LEXICONS[lang] = Lexicon(lang)
    return got


def _script(word: str) -> str | None:
    if _CYRILLIC.search(word):
        return None if _LATIN.search(word) else "cyrillic"
    if _LATIN.search(word) and word.isalpha():
        return "latin"
    return None


class TooManyForms(ValueError):
    """A word (or phrase) whose forms are too many to be a useful query term."""


def _stem(lemma: str) -> int:
    return max(3, len(lemma) - 3)


def _dictionary_forms(written: str, langs: tuple[str, ...]) -> tuple[set[str], bool] | None:
    """Forms from the first language of ``langs`` that knows ``written`` (all of them for
    Cyrillic, where the same spelling is often Russian and Ukrainian); None if none knows it.
    The flag says a lemma is a stop word."""
    found: set[str] = set()
    known = stop = False
    for lang in langs:
        lex = lexicon(lang)
        lemmas = set()
        for variant in dict.fromkeys((written.lower(), written, written.capitalize())):
            lemma = lex.lemma(variant)
            if lemma is None:
                continue
            lemmas.add(lemma)
            if lemma != variant and variant in lex.forms(variant, len(variant)):
                lemmas.add(variant)  # also a lemma itself (a homograph: Polish broni)
        if not lemmas:
            continue
        known = True
        norm = STOP_WORDS[lang]
        if normalize_word(written) in norm or any(normalize_word(x) in norm for x in lemmas):
            stop = True
        for lemma in lemmas:
            found |= lex.forms(lemma, _stem(lemma))
        if langs[0] == "en":  # Latin script: English first, Polish only for non-English words
            break
    return (found, stop) if known else None


# -- names: case endings and transliteration ---------------------------------------------

_VOWELS_CYR = set("аеиоуыэюяіє")
_CYR_NOUN = ("а", "у", "ом", "ем", "е", "і", "и", "ові", "ой", "ою")
_CYR_FEM_A = ("а", "ы", "и", "і", "е", "у", "ой", "ою", "ей")
_CYR_FEM_YA = ("я", "и", "і", "е", "ю", "ей", "ею")
_RU_ADJ = ("ий", "ая", "ое", "ой", "ого", "ому", "ую", "им", "ом", "ие", "их", "ими")
_UK_ADJ = ("ий", "а", "е", "ої", "ого", "ому", "у", "ій", "им", "ім", "ою", "і", "их", "ими")
_PL_CONSONANT = ("a", "u", "owi", "em", "iem", "ie")
_PL_FEM_A = ("y", "i", "e", "ę", "ą")


def cyrillic_name_forms(name: str) -> set[str]:
    """Case forms of a Cyrillic name in the nominative (normalised, lower case)."""
    out = {name}
    last = name[-1]
    if last == "а":
        out.update(name[:-1] + e for e in _CYR_FEM_A)
    elif last == "я":
        out.update(name[:-1] + e for e in _CYR_FEM_YA)
    elif last not in _VOWELS_CYR and last != "и":
        stem = name.rstrip("ь")
        out.update(stem + e for e in _CYR_NOUN)
        if stem.endswith(("ск", "цк")):  # Курск → Курская; Курськ → Курської
            hard = stem.replace("ськ", "ск").replace("цьк", "цк")
            soft = hard[:-2] + hard[-2] + "ьк"
            out.update(hard + e for e in _RU_ADJ)
            out.update(soft + e for e in _UK_ADJ)
    return {normalize_word(f) for f in out}


def latin_name_forms(name: str) -> set[str]:
    """Polish case forms of a Latin-script name (normalised, lower case)."""
    out = {name}
    last = name[-1]
    if last == "a":
        out.update(name[:-1] + e for e in _PL_FEM_A)
    elif last not in "aeiouy":
        out.update(name + e for e in _PL_CONSONANT)
    return {normalize_word(f) for f in out}


_CYR_TO_LAT_COMMON = {
    "а": "a", "б": "b", "в": "v", "д": "d", "е": "e", "ж": "zh", "з": "z", "к": "k", "л": "l",
    "м": "m", "н": "n", "о": "o", "п": "p", "р": "r", "с": "s", "т": "t", "у": "u", "ф": "f",
    "х": "kh", "ц": "ts", "ч": "ch", "ш": "sh", "щ": "shch", "ъ": "", "ь": "", "ы": "y",
    "э": "e", "ю": "yu", "я": "ya", "і": "i", "є": "ie", "ґ": "g", "'": "",
}  # fmt: skip
_RU_TO_LAT = {**_CYR_TO_LAT_COMMON, "г": "g", "и": "i"}
_UK_TO_LAT = {**_CYR_TO_LAT_COMMON, "г": "h", "и": "y", "ю": "iu", "я": "ia"}


def to_latin(name: str) -> set[str]:
    """Latin spellings of a normalised Cyrillic word (Russian and Ukrainian conventions)."""
    out = set()
    for table, final in ((_RU_TO_LAT, "y"), (_UK_TO_LAT, "yi")):
        word = name
        if word.endswith("ии"):  # -ий (й is и once normalised): Зеленский → Zelensky
            word = word[:-2]
            tail = final
        else:
            tail = ""
        if any(c not in table for c in word):
            continue
        out.add("".join(table[c] for c in word) + tail)
    return out


_LAT_DIGRAPHS = (
    ("shch", "щ"), ("zh", "ж"), ("kh", "х"), ("ch", "ч"), ("sh", "ш"), ("ts", "ц"), ("ya", "я"),
    ("yu", "ю"), ("ia", "я"), ("iu", "ю"), ("yo", "е"), ("ye", "е"), ("ie", "е"),
)  # fmt: skip
_LAT_SINGLE = {
    "a": "а", "b": "б", "c": "к", "d": "д", "e": "е", "f": "ф", "g": "г", "j": "и", "k": "к",
    "l": "л", "m": "м", "n": "н", "o": "о", "p": "п", "q": "к", "r": "р", "s": "с", "t": "т",
    "u": "у", "v": "в", "w": "в", "x": "кс", "z": "з",
}  # fmt: skip
_LAT_RU = {**_LAT_SINGLE, "h": "х", "i": "и", "y": "ы"}
_LAT_UK = {**_LAT_SINGLE, "h": "г", "i": "і", "y": "и"}
_SKY = re.compile(r"(sk|tsk|ck)(y|iy|yi|yy|ii|ij)\Z")


def to_cyrillic(name: str) -> set[str]:
    """Cyrillic spellings of a normalised ASCII word (Russian and Ukrainian conventions), plus
    the Ukrainian soft sign of ``-sk`` names (Kursk → Курськ)."""
    if not name.isascii():
        return set()
    out = set()
    for lang, single in (("ru", _LAT_RU), ("uk", _LAT_UK)):
        word, tail = name, ""
        sky = _SKY.search(word)
        if sky:  # Zelensky → Зеленский / Зеленський
            word = word[: sky.start(2)]
            tail = "ий"
        parts, i = [], 0
        while i < len(word):
            for latin, cyr in _LAT_DIGRAPHS:
                if word.startswith(latin, i):
                    parts.append(cyr)
                    i += len(latin)
                    break
            else:
                c = word[i]
                if c not in single:
                    return set()
                parts.append(single[c])
                i += 1
        cyr = "".join(parts)
        if lang == "uk" and cyr.endswith(("ск", "цк")):
            out.add(normalize_word(cyr[:-1] + "ь" + cyr[-1] + tail))  # Курськ, Зеленський
            if tail:
                continue
        out.add(normalize_word(cyr + tail))
    return out


def _name_forms(norm: str, script: str) -> set[str]:
    if script == "latin":
        out = latin_name_forms(norm)
        for cyr in to_cyrillic(norm):
            out |= cyrillic_name_forms(cyr)
        return out
    cyrs = {norm}
    latins = to_latin(norm)
    for lat in latins:
        cyrs |= to_cyrillic(lat)
    out = set()
    for cyr in cyrs:
        out |= cyrillic_name_forms(cyr)
    for lat in latins:
        out |= latin_name_forms(lat)
    return out


def _is_name(written: str, norm: str, script: str) -> bool:
    """Capitalised, at least 3 letters, and not an English word (unless English knows it as a
    name: Kyiv, Pyongyang)."""
    if not written[:1].isupper() or len(norm) < 3 or written.isupper():
        return False
    if script == "latin":
        english = lexicon("en")
        for variant in (written.lower(), written):
            lemma = english.lemma(variant)
            if lemma is not None and not lemma[:1].isupper():
                return False
    return True


@lru_cache(maxsize=100_000)
def word_forms(written: str) -> frozenset[str]:
    """The normalised forms ``written`` (one query word as written) matches, itself included.

    Raises TooManyForms if there are more than MAX_FORMS.
    """
    norm = normalize_word(written)
    script = _script(written)
    if script is None or not norm:
        return frozenset({norm})
    if script == "latin":
        langs: tuple[str, ...] = ("pl",) if _POLISH_LETTERS.search(written) else ("en", "pl")
    else:
        langs = ("ru", "uk")
    nfc = unicodedata.normalize("NFC", written)
    known = _dictionary_forms(nfc, langs)
    out = {norm}
    if known is not None:
        found, stop = known
        if stop:
            return frozenset(out)
        for form in found:
            split = words(form)
            if len(split) == 1:
                out.add(split[0][0])
    if _is_name(nfc, norm, script):
        out |= _name_forms(norm, script)
    if len(out) > MAX_FORMS:
        raise TooManyForms(
            f"{written!r} matches {len(out)} word forms (more than {MAX_FORMS});"
            f" write ={written} for this form only"
        )
    return frozenset(out)


def phrase_forms(written: tuple[str, ...]) -> list[tuple[str, ...]]:
    """Every combination of the forms of a phrase's words (the phrase as written first)."""
    per_word = [sorted(word_forms(w)) for w in written]
    total = 1
    for forms in per_word:
        total *= len(forms)
    if total > MAX_PHRASE_FORMS:
        raise TooManyForms(
            f"this phrase matches {total} combinations of word forms (more than"
            f" {MAX_PHRASE_FORMS}); put = before it for these forms only"
        )
    combos: list[tuple[str, ...]] = [()]
    for forms in per_word:
        combos = [c + (f,) for c in combos for f in forms]
    return combos


def term_forms(term: Term) -> list[tuple[str, ...]]:
    """The word runs a plain word or phrase matches: its own words first, then every other
    combination of its words' forms. Raises TooManyForms."""
    if not term.uses_forms:
        return [term.words]
    written = tuple(term.text[s:e] for _, s, e in words(term.text))
    if len(written) != len(term.words):  # pragma: no cover - the same tokenizer made both
        return [term.words]
    combos = phrase_forms(written)
    return [term.words, *(c for c in combos if c != term.words)]
