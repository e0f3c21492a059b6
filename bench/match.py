"""Matching speed: items/s for 10, 100, 1,000 and 10,000 generated rules, beside a naive loop.

    .venv/bin/python bench/match.py [--items 1500] [--seed 7] [--quick]

Items are news-sized (~1.5 KB: a title and a ~240-word summary) drawn from a Zipf-distributed
vocabulary (English function words first, then the seed articles' words, then made-up words).
Rules are generated in five shapes over that vocabulary (AND, phrase OR, NEAR with an OR-group,
prefix AND NOT, OR-group AND word AND NOT).

"naive" is what one would write first: every rule, every item, one compiled ``re`` per term,
evaluated as a boolean tree. It runs on fewer items at large rule counts, to stay within a
few minutes in all. Prints a table and writes ``bench/results/match.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import random
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.feedgen import seed_text  # noqa: E402
from daemon.match.matcher import Matcher  # noqa: E402
from daemon.match.query import compile_text, parse  # noqa: E402
from daemon.match.query.ast import And, Group, Near, Node, Not, Or, Scope, Term  # noqa: E402
from daemon.match.rule_spec import RuleSpec  # noqa: E402
from daemon.match.rules import RuleSet, load_rules, make_rule  # noqa: E402
from daemon.types import Item  # noqa: E402

RULE_COUNTS = (10, 100, 1000, 10000)
FUNCTION_WORDS = (
    "the of and to a in that is was he for it with as his on be at by i this had not are but "
    "from or have an they which one you were her all she there would their we him been has when "
    "who will more no if out so said what up its about into than them can only other new some "
    "could time these two may then do first any my now such like our over man me even most made "
    "after also did many before must through back years where much your way well down should "
    "because each just those people how too little state good very make world still own see men "
    "work long get here between both life being under never day same another know while last"
).split()


def vocabulary(rng: random.Random, size: int = 100_000) -> list[str]:
    words = list(dict.fromkeys(FUNCTION_WORDS))
    for w in re.findall(r"[A-Za-z]{3,}", seed_text()):  # the same on every machine
        if w.lower() not in words:
            words.append(w.lower())
    syllables = [c + v for c in "bdfgklmnprstvz" for v in ("a", "e", "i", "o", "u", "ar", "en")]
    seen = set(words)
    while len(words) < size:
        w = "".join(rng.choice(syllables) for _ in range(rng.randint(3, 4)))
        if w not in seen:
            seen.add(w)
            words.append(w)
    return words


def make_items(rng: random.Random, vocab: list[str], n: int) -> list[Item]:
    weights = [1.0 / (rank + 1) for rank in range(len(vocab))]
    items = []
    for i in range(n):
        draw = rng.choices(vocab, weights, k=250)
        title = " ".join(draw[:10]).capitalize()
        sentences, pos = [], 10
        while pos < len(draw):
            k = rng.randint(12, 25)
            sentences.append(" ".join(draw[pos : pos + k]).capitalize() + ".")
            pos += k
        items.append(Item("bench", f"item-{i}", title, " ".join(sentences), None, None))
    return items


def make_queries(rng: random.Random, vocab: list[str], n: int) -> list[str]:
    content = vocab[len(FUNCTION_WORDS) :]

    def w() -> str:
        # Rules name specific things (people, places, organisations, weapons): ranks
        # log-uniform from 1,000 to the vocabulary's end. A rank-1,000 word is in ~2% of
        # items, the median one (rank 10,000) in ~0.2%.
        rank = math.exp(rng.uniform(math.log(1000), math.log(len(content))))
        return content[min(len(content) - 1, int(rank))]

    shapes = [
        lambda: f"{w()} AND {w()}",
        lambda: f'"{w()} {w()}" OR {w()}',
        lambda: f"{w()} NEAR/5 ({w()} OR {w()})",
        lambda: f"{w()}* AND NOT {w()}",
        lambda: f"({w()} OR {w()}) AND {w()} AND NOT {w()}",
    ]
    return [shapes[i % len(shapes)]() for i in range(n)]


def ruleset(queries: list[str]) -> RuleSet:
    rules = tuple(
        make_rule(RuleSpec(id=f"r{i}", query=q), compile_text(q)) for i, q in enumerate(queries)
    )
    return RuleSet(rules, ())


# -- the naive baseline -----------------------------------------------------------------------


def naive_compile(node: Node) -> Any:
    if isinstance(node, Group | Scope):
        return naive_compile(node.child)
    if isinstance(node, Term):
        body = r"\W+".join(re.escape(x) for x in node.words)
        return ("re", re.compile(rf"\b{body}" + (r"\w*" if node.prefix else r"\b"), re.I))
    if isinstance(node, Not):
        return ("not", naive_compile(node.child))
    if isinstance(node, Near):
        a, b = naive_pattern(node.left), naive_pattern(node.right)
        gap = rf"(?:\W+\w+){{0,{node.distance}}}\W+"
        return ("re", re.compile(rf"{a}{gap}{b}|{b}{gap}{a}", re.I))
    assert isinstance(node, And | Or)
    return ("and" if isinstance(node, And) else "or", [naive_compile(c) for c in node.children])


def naive_pattern(node: Node) -> str:
    if isinstance(node, Group):
        return naive_pattern(node.child)
    if isinstance(node, Or):
        return "(?:" + "|".join(naive_pattern(c) for c in node.children) + ")"
    assert isinstance(node, Term)
    body = r"\W+".join(re.escape(x) for x in node.words)
    return rf"\b{body}" + (r"\w*" if node.prefix else r"\b")


def naive_eval(plan: Any, text: str) -> bool:
    kind, arg = plan
    if kind == "re":
        return arg.search(text) is not None
    if kind == "not":
        return not naive_eval(arg, text)
    if kind == "and":
        return all(naive_eval(p, text) for p in arg)
    return any(naive_eval(p, text) for p in arg)


def naive_rate(queries: list[str], items: list[Item]) -> tuple[float, int]:
    plans = [naive_compile(parse(q)) for q in queries]
    start, hits = time.perf_counter(), 0
    for item in items:
        for plan in plans:
            if naive_eval(plan, item.title) or naive_eval(plan, item.summary):
                hits += 1
    return len(items) / (time.perf_counter() - start), hits


def matcher_rate(matcher: Matcher, items: list[Item], repeat: int = 3) -> tuple[float, int]:
    """Items per second (the best of ``repeat`` runs: least disturbed by other processes)."""
    best, hits = float("inf"), 0
    for _ in range(repeat):
        start, hits = time.perf_counter(), 0
        for item in items:
            hits += len(matcher.match(item))
        best = min(best, time.perf_counter() - start)
    return len(items) / best, hits


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--items", type=int, default=1500, help="items per matcher run")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--quick", action="store_true", help="fewer items (a smoke run)")
    args = ap.parse_args(argv)
    rng = random.Random(args.seed)
    vocab = vocabulary(rng)
    n_items = 200 if args.quick else args.items
    items = make_items(rng, vocab, n_items)
    avg_size = sum(len(i.title) + len(i.summary) for i in items) / len(items)
    all_queries = make_queries(rng, vocab, max(RULE_COUNTS))

    t0 = time.perf_counter()
    big = ruleset(all_queries)
    t1 = time.perf_counter()
    Matcher(big)
    t2 = time.perf_counter()
    compile_s = {"queries": t1 - t0, "matcher": t2 - t1, "total": t2 - t0}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rules.yaml"
        body = "".join(f"  - id: r{i}\n    query: '{q}'\n" for i, q in enumerate(all_queries))
        path.write_text("rules:\n" + body, encoding="utf-8")
        t3 = time.perf_counter()
        load_rules([path])
        compile_s["load_rules_yaml"] = time.perf_counter() - t3

    rows = []
    for count in RULE_COUNTS:
        rs = RuleSet(big.rules[:count], ())
        matcher = Matcher(rs)
        matcher_rate(matcher, items[:50], repeat=1)  # warm-up (caches, allocator)
        rate, hits = matcher_rate(matcher, items)
        naive_n = max(5, min(n_items, int(20000 / count)))
        naive, naive_hits = naive_rate(all_queries[:count], items[:naive_n])
        rows.append(
            {
                "rules": count,
                "items_per_s": round(rate),
                "matches_per_item": round(hits / len(items), 3),
                "naive_items_per_s": round(naive, 1),
                "naive_items": naive_n,
                "naive_matches_per_item": round(naive_hits / naive_n, 3),
                "speedup": round(rate / naive, 1),
            }
        )

    print(f"items: {n_items} of ~{avg_size:.0f} chars; python {platform.python_version()}")
    print(f"{'rules':>7} {'items/s':>9} {'naive/s':>9} {'speedup':>8} {'matches/item':>13}")
    for r in rows:
        print(
            f"{r['rules']:>7} {r['items_per_s']:>9,} {r['naive_items_per_s']:>9,.1f}"
            f" {r['speedup']:>7}x {r['matches_per_item']:>13}"
        )
    print(
        f"compile 10,000 rules: {compile_s['total']:.2f} s "
        f"(queries {compile_s['queries']:.2f} s, matcher {compile_s['matcher']:.2f} s); "
        f"load_rules from one YAML file, parsing included: {compile_s['load_rules_yaml']:.2f} s"
    )
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    result = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "items": n_items,
        "avg_item_chars": round(avg_size),
        "rows": rows,
        "compile_10000_rules_s": {k: round(v, 3) for k, v in compile_s.items()},
        "goals": {
            "1000_rules_items_per_s": 10000,
            "10000_rules_items_per_s": 5000,
            "compile_10000_s": 2.0,
        },
    }
    (out / "match.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
