"""Online story clustering lab: a portable design measured on the labelled real-news days.

Research aid (not run by ``make eval``). Items arrive one at a time, in publication order
(``--order time``) or in feed batches (``--order feeds``: the feeds in a seeded random order, each
feed's items consecutively, as the daemon's cold ``run --once`` sees them). Each item joins the
most similar story at or above ``theta`` among at most ``C`` candidates found through an inverted
index, or starts a story. Everything a story remembers is bounded (a top-``K`` term profile and a
count); document frequencies come only from the items seen so far in the stream.

The core, small pure functions meant to be ported:

- ``item_terms``: (term, raw weight) of an item: content words of the title (weight
  ``title_w``) and of the first ``body_words`` content words of the text (weight 1), crude
  stemmed; numbers (not years) as ``#n`` anchors (``num_w``); names (capitalised mid-sentence
  in the text) boosted by ``cap_w``.
- ``idf``: ``log((n + idf_a) / (df + idf_b))`` over the stream so far (``n`` items, ``df`` of
  the term), ``idf_a``/``idf_b`` the cold-start prior.
- ``vector``: raw weight x idf, L2-normalised.
- ``profile_add``: a story's profile, the sum of its items' vectors truncated to the top ``K``.
- ``similarity``: cosine of an item's vector and a (normalised) profile.
- ``file_keys`` / ``probe_keys``: the top ``M`` profile terms a story is filed under; the top
  ``P`` item terms looked up; candidates ranked by the summed item weight of their hits.

    python eval/cluster_lab.py [--order time|feeds] [--theta 0.3] [--lodo] [--pairs] [--bench]
"""

from __future__ import annotations

import argparse
import math
import random
import re
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script
    sys.path.insert(0, str(ROOT))

from daemon.match.query.tokenize import index_text  # noqa: E402
from daemon.parse.text import html_to_text  # noqa: E402
from daemon.stories.sketch import STOP_WORDS  # noqa: E402
from eval.stories import CORPUS, LABELS, Score, read_day, score  # noqa: E402

DAYS = ("2022-12-23", "2023-02-24", "2023-05-19", "2023-07-07")  # the only labels used here
PAIRS = ROOT / "tests" / "data" / "stories" / "pairs.yaml"

Vector = dict[str, float]


@dataclass(frozen=True)
class Config:
    theta: float = 0.32
    title_w: float = 2.0
    body_words: int = 60
    stem: str = "p5"  # none | s7 (plural s dropped, cut at 7) | p5 (cut at 5) | light
    num_w: float = 2.0
    cap_w: float = 1.0
    idf_a: float = 20.0
    idf_b: float = 1.0
    k: int = 48  # profile terms per story
    m: int = 8  # index keys per story
    p: int = 8  # probe keys per item
    c: int = 16  # candidates verified per item
    bucket: int = 64  # stories kept per index key (most recent)
    profile: str = "live"  # live (tf parts, idf when compared) | centroid (idf frozen) | first
    unlimited: bool = False  # no index: compare with every story (quality bound)
    binary_tf: bool = True
    short_n: int = 0  # items with fewer terms than this ...
    short_boost: float = 1.0  # ... have their similarity multiplied by this
    theta_lo: float = 0.0  # join at this similarity if the title shares ``title_share`` terms
    title_share: int = 2
    title_k: int = 16  # title terms a story remembers
    merge: float = 0.5  # a second story this similar to a joining item is merged into the best


# ---------------------------------------------------------------- terms (portable)

_NUM = re.compile(r"\d[\d.,]*\d|\d")
_GROUP = re.compile(r"[.,](?=\d{3}(?!\d))")
_YEAR = re.compile(r"(?:19|20)\d\d")
_CAP = re.compile(r"(?<![.!?:\"“]\s)(?<!^)\b([A-Z][a-z]+)")
_SUFFIXES = ("ations", "ation", "ings", "ing", "ies", "ed", "es", "s")


def stem(word: str, mode: str) -> str:
    """A crude stem: ``s7`` plural ``s`` dropped, cut at 7 letters; ``p5`` cut at 5; ``light``
    a few English suffixes dropped, then cut at 7."""
    if mode == "none":
        return word
    if mode == "p5":
        return word[:5]
    if mode == "light":
        for suf in _SUFFIXES:
            if len(word) > len(suf) + 3 and word.endswith(suf):
                word = word[: -len(suf)]
                break
        return word[:7]
    if len(word) > 4 and word.endswith("s") and not word.endswith("ss"):
        word = word[:-1]
    return word[:7]


def content(text: str) -> list[str]:
    """Normalised words of ``text`` (the daemon's tokenizer), no stop words, digits or 1-letter
    words."""
    return [w for w in index_text(text).norm.split() if w not in STOP_WORDS and w.isalpha()]


def numbers(text: str) -> list[str]:
    """Numbers of two digits or more, separators dropped, years skipped."""
    out: dict[str, None] = {}
    for raw in _NUM.findall(text):
        s = _GROUP.sub("", raw).lstrip("0")
        if len(s) < 2 or (len(s) == 4 and _YEAR.fullmatch(s)):
            continue
        out[s] = None
    return list(out)


def names(text: str) -> set[str]:
    """Words capitalised in mid-sentence (lower-cased): names, places, organisations."""
    return {m.lower() for m in _CAP.findall(text)}


def item_terms(title: str, text: str, cfg: Config) -> dict[str, float]:
    """Raw term weights of one item (before idf)."""
    out: dict[str, float] = {}
    caps = names(text) if cfg.cap_w != 1.0 else set()
    body = content(text)[: cfg.body_words]
    for words, w in ((body, 1.0), (content(title), cfg.title_w)):
        for word in words:
            x = w * cfg.cap_w if word in caps else w
            t = stem(word, cfg.stem)
            if cfg.binary_tf:
                if x > out.get(t, 0.0):
                    out[t] = x
            else:
                out[t] = out.get(t, 0.0) + x
    if cfg.num_w:
        for n in numbers(f"{title}\n{text}"):
            out["#" + n] = cfg.num_w
    return out


def idf(n: int, df: int, cfg: Config) -> float:
    return math.log((n + cfg.idf_a) / (df + cfg.idf_b))


def vector(raw: dict[str, float], df: dict[str, int], n: int, cfg: Config) -> Vector:
    v = {t: x * idf(n, df.get(t, 0), cfg) for t, x in raw.items()}
    norm = math.sqrt(sum(x * x for x in v.values())) or 1.0
    return {t: x / norm for t, x in v.items() if x > 0}


def profile_add(profile: Vector, v: Vector, k: int) -> Vector:
    """A story's profile after one more item: summed vectors, the top ``k`` terms kept."""
    total = dict(profile)
    for t, x in v.items():
        total[t] = total.get(t, 0.0) + x
    if len(total) > k:
        total = dict(sorted(total.items(), key=lambda kv: -kv[1])[:k])
    return total


def similarity(v: Vector, profile: Vector, profile_norm: float) -> float:
    """Cosine of a normalised item vector and a profile of norm ``profile_norm``."""
    if not profile_norm:
        return 0.0
    return sum(x * profile.get(t, 0.0) for t, x in v.items()) / profile_norm


def top_terms(v: Vector, n: int) -> list[str]:
    return [t for t, _ in sorted(v.items(), key=lambda kv: -kv[1])[:n]]


# ---------------------------------------------------------------- the stream (simulated)


@dataclass
class Story:
    profile: Vector
    norm: float
    count: int
    keys: list[str]
    titles: dict[str, int]


def run_stream(items: list[tuple[str, dict[str, float]]], cfg: Config) -> dict[str, str]:
    """Cluster ``items`` (link, raw terms) in the given order: link -> story id."""
    df: dict[str, int] = {}
    n = 0
    stories: list[Story] = []
    index: dict[str, list[int]] = defaultdict(list)
    story_of: dict[str, str] = {}
    live = cfg.profile == "live"
    alias: dict[int, int] = {}
    for link, raw in items:
        if link in story_of:
            continue
        n += 1
        for t in raw:
            df[t] = df.get(t, 0) + 1
        v = vector(raw, df, n, cfg)
        if live:
            # the profile keeps tf parts (weight / idf); idf applied when compared
            w = {t: idf(n, df[t], cfg) for t in v}
            q = {t: x * w[t] for t, x in v.items()}
        else:
            q = v
        if cfg.unlimited:
            cands: list[int] = list(range(len(stories)))
        else:
            hits: dict[int, float] = {}
            for t in top_terms(v, cfg.p):
                for s in index.get(t, ()):
                    hits[s] = hits.get(s, 0.0) + v[t]
            cands = sorted(hits, key=lambda s: -hits[s])[: cfg.c]
        heads = [t for t, x in raw.items() if x >= cfg.title_w]
        boost = cfg.short_boost if len(raw) < cfg.short_n else 1.0
        best, best_sim, second, second_sim = -1, 0.0, -1, 0.0
        for s in cands:
            st = stories[s]
            sim = boost * similarity(q, st.profile, st.norm)
            if cfg.theta_lo and cfg.theta_lo <= sim < cfg.theta:
                shared = sum(1 for t in heads if t in st.titles)
                if shared >= cfg.title_share:
                    sim = cfg.theta  # joins (ranked as a bare join)
            if sim > best_sim:
                best, best_sim, second, second_sim = s, sim, best, best_sim
            elif sim > second_sim:
                second, second_sim = s, sim
        tf = {t: x / w[t] for t, x in v.items() if w[t] > 0} if live else v
        if best >= 0 and best_sim >= cfg.theta:
            st = stories[best]
            st.count += 1
            st.titles = _titles(st.titles, heads, cfg.title_k)
            if cfg.profile != "first":
                st.profile, st.norm = _update(st.profile, tf, df, n, cfg)
                _file(index, best, st, cfg)
            story_of[link] = str(best)
            if cfg.merge and second >= 0 and second_sim >= cfg.merge:
                other = stories[second]
                st.profile, st.norm = _update(st.profile, other.profile, df, n, cfg)
                st.count += other.count
                alias[second] = best
                for t in other.keys:
                    if second in index.get(t, ()):
                        index[t].remove(second)
                other.keys, other.profile, other.norm = [], {}, 0.0
                _file(index, best, st, cfg)
        else:
            prof, norm = _update({}, tf, df, n, cfg)
            st = Story(prof, norm, 1, [], _titles({}, heads, cfg.title_k))
            stories.append(st)
            _file(index, len(stories) - 1, st, cfg)
            story_of[link] = str(len(stories) - 1)
    return {link: str(_root(alias, int(s))) for link, s in story_of.items()}


def _titles(titles: dict[str, int], heads: list[str], k: int) -> dict[str, int]:
    """A story's title terms and how many of its items' titles had them (top ``k``)."""
    out = dict(titles)
    for t in heads:
        out[t] = out.get(t, 0) + 1
    if len(out) > k:
        out = dict(sorted(out.items(), key=lambda kv: -kv[1])[:k])
    return out


def _root(alias: dict[int, int], s: int) -> int:
    while s in alias:
        s = alias[s]
    return s


def _update(
    profile: Vector, v: Vector, df: dict[str, int], n: int, cfg: Config
) -> tuple[Vector, float]:
    """(profile, norm) after adding ``v``; with ``live`` profiles, ranked and normed by the
    current idf."""
    if cfg.profile != "live":
        prof = profile_add(profile, v, cfg.k)
        return prof, math.sqrt(sum(x * x for x in prof.values()))
    total = dict(profile)
    for t, x in v.items():
        total[t] = total.get(t, 0.0) + x
    weighted = {t: x * idf(n, df.get(t, 0), cfg) for t, x in total.items()}
    keep = sorted(weighted, key=lambda t: -weighted[t])[: cfg.k]
    return {t: total[t] for t in keep}, math.sqrt(sum(weighted[t] ** 2 for t in keep))


def _file(index: dict[str, list[int]], sid: int, st: Story, cfg: Config) -> None:
    keys = top_terms(st.profile, cfg.m)
    for t in st.keys:
        if t not in keys and sid in index[t]:
            index[t].remove(sid)
    for t in keys:
        if t not in st.keys:
            bucket = index[t]
            bucket.append(sid)
            if len(bucket) > cfg.bucket:
                del bucket[0]
    st.keys = keys


# ---------------------------------------------------------------- evaluation


@dataclass
class DayData:
    name: str
    labels: dict[str, Any]
    entries: list[Any]  # eval.stories.Entry
    texts: dict[str, str]
    feeds: dict[str, list[str]]  # feed -> links, file order
    every: set[str]
    english: set[str]


def load_days(corpus: Path, labels: Path, days: tuple[str, ...] = DAYS) -> list[DayData]:
    yaml = YAML(typ="safe")
    out = []
    for name in days:
        lab = yaml.load((labels / f"{name}.yaml").read_text(encoding="utf-8"))
        day = read_day(corpus / name)
        entries = day.entries
        texts = {e.link: html_to_text(e.description) if e.description else "" for e in entries}
        out.append(
            DayData(
                name,
                lab,
                entries,
                texts,
                {f: [e.link for e in es] for f, es in day.feeds.items()},
                {e.link for e in entries},
                {e.link for e in entries if e.language == "en"},
            )
        )
    return out


def order(d: DayData, how: str, seed: int = 1) -> list[str]:
    if how == "time":
        return [e.link for e in sorted(d.entries, key=lambda e: e.published)]
    feeds = sorted(d.feeds)
    random.Random(f"{seed}-{d.name}").shuffle(feeds)
    return [link for f in feeds for link in d.feeds[f]]


_TERMS_CACHE: dict[tuple[Any, ...], dict[str, dict[str, float]]] = {}


def terms_of(d: DayData, cfg: Config) -> dict[str, dict[str, float]]:
    key = (d.name, cfg.title_w, cfg.body_words, cfg.stem, cfg.num_w, cfg.cap_w, cfg.binary_tf)
    if key not in _TERMS_CACHE:
        titles = {e.link: e.title for e in d.entries}
        _TERMS_CACHE[key] = {link: item_terms(titles[link], d.texts[link], cfg) for link in titles}
    return _TERMS_CACHE[key]


def evaluate(days: list[DayData], cfg: Config, how: str, seed: int = 1) -> dict[str, Any]:
    per: dict[str, dict[str, Score]] = {}
    for d in days:
        terms = terms_of(d, cfg)
        story = run_stream([(link, terms[link]) for link in order(d, how, seed)], cfg)
        per[d.name] = {
            "all": score(d.labels, story, d.every),
            "en": score(d.labels, story, d.english),
        }
    return per


def total(per: dict[str, dict[str, Score]], names: list[str] | None = None) -> dict[str, Score]:
    out = {"all": Score(), "en": Score()}
    for name, s in per.items():
        if names is None or name in names:
            out["all"].add(s["all"])
            out["en"].add(s["en"])
    return out


def line(s: Score) -> str:
    f = s.figures()
    return (
        f"{f['events']:3} ev {f['stories_per_event_mean']:.2f} st/ev (worst "
        f"{f['stories_per_event_worst']:2}) P {f['pair_precision']:.3f} ({f['wrong_pairs']:4} "
        f"wrong) R {f['pair_recall']:.3f}"
    )


def report(per: dict[str, dict[str, Score]], label: str = "") -> None:
    for name, s in [*per.items(), ("all days", total(per))]:
        print(f"{label}{name:10} all {line(s['all'])}")
        print(f"{label}{'':10} en  {line(s['en'])}")


def objective(s: dict[str, Score], min_precision: float = 0.95) -> float:
    """What a fit minimises: English stories per event, and a steep penalty below the precision
    floor (all languages)."""
    f, e = s["all"].figures(), s["en"].figures()
    penalty = max(0.0, min_precision - float(f["pair_precision"])) * 100
    return float(e["stories_per_event_mean"]) + 0.5 * float(f["stories_per_event_mean"]) + penalty


def lodo(days: list[DayData], cfgs: list[Config], how: str) -> dict[str, dict[str, Score]]:
    """Leave one day out: for each day, the config best on the other three, scored on it."""
    runs = [evaluate(days, c, how) for c in cfgs]
    out: dict[str, dict[str, Score]] = {}
    for d in days:
        train = [x.name for x in days if x.name != d.name]
        best = min(range(len(cfgs)), key=lambda i: objective(total(runs[i], train)))
        print(f"  lodo {d.name}: chose {_diff(cfgs[best])}")
        out[d.name] = runs[best][d.name]
    return out


def _diff(cfg: Config) -> str:
    base = Config()
    return (
        ", ".join(
            f"{k}={getattr(cfg, k)}"
            for k in cfg.__dataclass_fields__
            if getattr(cfg, k) != getattr(base, k)
        )
        or "defaults"
    )


# ---------------------------------------------------------------- synthetic pairs


def pairs_figures(cfg: Config, path: Path = PAIRS) -> tuple[float, float, list[float], list[float]]:
    """Precision and recall of ``similarity >= theta`` on the synthetic pairs (item a is a
    one-item story, df from the set's own items)."""
    data = YAML(typ="safe").load(path.read_text(encoding="utf-8"))
    items = data["items"]
    raw = {k: item_terms(v.get("title") or "", v.get("text") or "", cfg) for k, v in items.items()}
    df: Counter[str] = Counter()
    for r in raw.values():
        df.update(r)
    n = len(raw)
    vec = {k: vector(r, df, n, cfg) for k, r in raw.items()}
    same, diff = [], []
    for a, b, is_same, *_ in data["pairs"]:
        prof = profile_add({}, vec[a], cfg.k)
        norm = math.sqrt(sum(x * x for x in prof.values()))
        s = similarity(vec[b], prof, norm)
        (same if is_same else diff).append(s)
    tp = sum(s >= cfg.theta for s in same)
    fp = sum(s >= cfg.theta for s in diff)
    return (tp / (tp + fp) if tp + fp else 1.0), tp / len(same), same, diff


# ---------------------------------------------------------------- main


def bench(days: list[DayData], cfg: Config) -> None:
    """Pure-Python microseconds per item: terms (tokenizing included) and clustering."""
    items = [(e.title, days[0].texts[e.link]) for e in days[0].entries]
    t0 = time.perf_counter()
    raws = [item_terms(t, x, cfg) for t, x in items]
    t1 = time.perf_counter()
    stream = list(zip([e.link for e in days[0].entries], raws, strict=True))
    run_stream(stream, cfg)
    t2 = time.perf_counter()
    n = len(items)
    print(
        f"bench {days[0].name}: {n} items, terms {1e6 * (t1 - t0) / n:.0f} us/item, "
        f"clustering {1e6 * (t2 - t1) / n:.0f} us/item"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--labels", type=Path, default=LABELS)
    parser.add_argument("--order", choices=("time", "feeds"), default="time")
    parser.add_argument("--theta", type=float)
    parser.add_argument("--set", action="append", default=[], help="config field=value")
    parser.add_argument("--lodo", action="store_true", help="fit theta leave-one-day-out")
    parser.add_argument("--pairs", action="store_true", help="synthetic pairs figures")
    parser.add_argument("--bench", action="store_true")
    args = parser.parse_args(argv)
    if not args.corpus.is_dir():
        print(f"cluster lab skipped: no real-news corpus at {args.corpus}")
        return 0
    cfg = Config()
    for kv in args.set:
        k, v = kv.split("=", 1)
        cfg = replace(cfg, **{k: type(getattr(cfg, k))(v if v not in ("False", "0") else "")})
    if args.theta is not None:
        cfg = replace(cfg, theta=args.theta)
    days = load_days(args.corpus, args.labels)
    print(f"config: {cfg}")
    if args.lodo:
        grid = [replace(cfg, theta=t / 100) for t in range(18, 46, 2)]
        report(lodo(days, grid, args.order), f"{args.order} lodo ")
    else:
        report(evaluate(days, cfg, args.order), f"{args.order} ")
    if args.pairs:
        p, r, same, diff = pairs_figures(cfg)
        print(
            f"synthetic pairs at {cfg.theta}: precision {p:.3f} recall {r:.3f} "
            f"(same min {min(same):.2f} median {sorted(same)[len(same) // 2]:.2f}; "
            f"different max {max(diff):.2f})"
        )
    if args.bench:
        bench(days, cfg)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
