"""How well a similarity tells one event's items from others, on the labelled real-news days.

A research aid for story clustering (not run by ``make eval``, which measures the daemon
itself): for each labelled day it compares

* ``sketch``: today's ``daemon.stories.sketch.similarity`` (containment of content words and
  numbers, exact, both fingerprints fresh);
* ``tfidf``: cosine of TF-IDF vectors, document frequencies from the day's own items (a
  stand-in for a stream's recent frequencies), title words counted twice, a crude stem
  (plural ``s`` dropped, words cut at 7 letters), years dropped;

and prints, for each: the share of same-event pairs at or above the 99.9th percentile of
pairs of a labelled item with an item of another event (a threshold that keeps wrong joins
rare), the median same-event similarity, and the AUC. ``--cluster THETA`` also runs a greedy
online clustering on TF-IDF (items in publication order join the story whose centroid is most
similar, at or above THETA) and scores it as ``eval/stories.py`` does.

    python eval/similarity.py [--day D ...] [--cluster 0.35]
"""

from __future__ import annotations

import argparse
import math
import random
import re
import sys
from collections import Counter
from itertools import combinations
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script
    sys.path.insert(0, str(ROOT))

from daemon.parse.text import html_to_text  # noqa: E402
from daemon.stories.sketch import STOP_WORDS, fingerprint, similarity  # noqa: E402
from eval.stories import CORPUS, LABELS, Score, read_day, score  # noqa: E402

Vector = dict[str, float]


def terms(text: str) -> list[str]:
    out = []
    for w in re.findall(r"\w+", text.lower()):
        if w in STOP_WORDS or len(w) < 2 or (w.isdigit() and 1900 <= int(w) <= 2099):
            continue
        if len(w) > 4 and w.endswith("s") and not w.endswith("ss"):
            w = w[:-1]
        out.append(w if w.isdigit() else w[:7])
    return out


def vector(title: str, text: str, df: Counter[str], n: int) -> Vector:
    weights: Counter[str] = Counter()
    for w in set(terms(title)):
        weights[w] += 2.0
    for w in set(terms(text)):
        weights[w] += 1.0
    v = {w: x * math.log((n + 1) / (df.get(w, 0) + 1)) for w, x in weights.items()}
    norm = math.sqrt(sum(x * x for x in v.values())) or 1.0
    return {w: x / norm for w, x in v.items()}


def cosine(a: Vector, b: Vector) -> float:
    if len(a) > len(b):
        a, b = b, a
    return sum(x * b.get(w, 0.0) for w, x in a.items())


def auc(pos: list[float], neg: list[float]) -> float:
    ranked = sorted([(v, 1) for v in pos] + [(v, 0) for v in neg])
    rank_sum = sum(i for i, (_, label) in enumerate(ranked, 1) if label)
    return (rank_sum - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg))


def separation(labels: dict[str, Any], sim: dict[str, Any], measure: Any) -> dict[str, float]:
    event = {link: e["id"] for e in labels["events"] for link in e["links"]}
    pos = [
        measure(sim[a], sim[b])
        for e in labels["events"]
        for a, b in combinations([x for x in e["links"] if x in sim], 2)
    ]
    rng, links, labelled, neg = random.Random(1), list(sim), list(event), []
    while len(neg) < 20000:
        a, b = rng.choice(labelled), rng.choice(links)
        if event.get(b) != event[a]:
            neg.append(measure(sim[a], sim[b]))
    pos.sort()
    neg.sort()
    cut = neg[int(0.999 * (len(neg) - 1))]
    return {
        "same_at_cut": sum(p >= cut for p in pos) / len(pos),
        "cut": cut,
        "median_same": pos[len(pos) // 2],
        "auc": auc(pos, neg),
    }


def cluster(day: Any, theta: float) -> dict[str, str]:
    """Greedy online TF-IDF clustering, items in publication order: link → story."""
    df: Counter[str] = Counter()
    stories: list[tuple[list[Vector], Vector]] = []
    story_of: dict[str, str] = {}
    for n, e in enumerate(sorted(day.entries, key=lambda e: e.published), 1):
        if e.link in story_of:
            continue
        text = html_to_text(e.description) if e.description else ""
        df.update(set(terms(e.title)) | set(terms(text)))
        v = vector(e.title, text, df, max(n, 50))
        best, best_sim = -1, 0.0
        for i, (_, centroid) in enumerate(stories):
            s = cosine(v, centroid)
            if s > best_sim:
                best, best_sim = i, s
        if best >= 0 and best_sim >= theta:
            members = [*stories[best][0], v]
            total: Counter[str] = Counter()
            for m in members:
                total.update(m)
            norm = math.sqrt(sum(x * x for x in total.values())) or 1.0
            stories[best] = (members, {w: x / norm for w, x in total.items()})
            story_of[e.link] = str(best)
        else:
            stories.append(([v], v))
            story_of[e.link] = str(len(stories) - 1)
    return story_of


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--labels", type=Path, default=LABELS)
    parser.add_argument("--day", action="append")
    parser.add_argument("--cluster", type=float, help="also cluster on TF-IDF at this threshold")
    args = parser.parse_args(argv)
    if not args.corpus.is_dir():
        print(f"similarity eval skipped: no real-news corpus at {args.corpus}")
        return 0
    yaml = YAML(typ="safe")
    totals = {"all": Score(), "en": Score()}
    for path in sorted(args.labels.glob("*.yaml")):
        if args.day and path.stem not in args.day:
            continue
        labels = yaml.load(path.read_text(encoding="utf-8"))
        day = read_day(args.corpus / path.stem)
        texts = {
            e.link: (e.title, html_to_text(e.description) if e.description else "")
            for e in day.entries
        }
        df: Counter[str] = Counter()
        for title, text in texts.values():
            df.update(set(terms(title)) | set(terms(text)))
        sketches = {link: fingerprint(t, x) for link, (t, x) in texts.items()}
        vectors = {link: vector(t, x, df, len(texts)) for link, (t, x) in texts.items()}
        for name, sims, measure in (
            ("sketch", sketches, similarity),
            ("tfidf", vectors, cosine),
        ):
            f = separation(labels, sims, measure)
            print(
                f"{path.stem} {name:6}: {f['same_at_cut']:.2f} of same-event pairs at or above "
                f"{f['cut']:.2f} (p99.9 of other pairs); median same {f['median_same']:.2f}; "
                f"AUC {f['auc']:.3f}"
            )
        if args.cluster is not None:
            story = cluster(day, args.cluster)
            every = {e.link for e in day.entries}
            english = {e.link for e in day.entries if e.language == "en"}
            totals["all"].add(score(labels, story, every))
            totals["en"].add(score(labels, story, english))
    if args.cluster is not None:
        for lang, s in totals.items():
            f = s.figures()
            print(
                f"tfidf clustering at {args.cluster} ({lang}): {f['events']} events, "
                f"{f['stories_per_event_mean']} stories per event (worst "
                f"{f['stories_per_event_worst']}), pair precision {f['pair_precision']}, "
                f"pair recall {f['pair_recall']}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
