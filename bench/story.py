"""Story clustering: cost per item of terms + lookup, and Redis memory per remembered story.

    .venv-bench/bin/python bench/story.py [--stories 100000] [--probes 4000] [--compare]

1. Fills ``daemon.stories.cluster.StoryIndex`` with ``--stories`` synthetic stories (news-sized
   items, ~1.5 KB: words drawn from the Zipf vocabulary of bench/match.py, 15% of them from a dozen
   names of the story's own (people, places), two numbers and a weekday each), then times
   terms (``item_terms``: words, numbers, sketch) + ``assign`` for ``--probes`` more items:
   half rewrites of stories in the index (headline changed, a fifth of the sentences dropped,
   two swapped; stories from the start, middle and end of the window), half new stories.
2. The Redis index the daemon uses (``daemon.stories.index.StoryStore``) on a real redis-server
   (``daemon.redis.embedded.EmbeddedRedis``, in memory): filled with the same stories (every other
   one carried by a second feed: 1.5 items per story), then terms + lookup + commit of
   the same kind of probes, one at a time and in polls of 50; ``INFO memory`` gives bytes per
   remembered item.
3. ``--compare``: precision/recall on tests/data/stories/pairs.yaml and fingerprint cost of the
   alternatives (MinHash Jaccard, MinHash containment, SimHash) beside the chosen design.

Prints a summary and writes ``bench/results/story.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import json
import multiprocessing
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redis.asyncio as aioredis  # noqa: E402

from bench.match import vocabulary  # noqa: E402
from bench.story_compare import compare  # noqa: E402
from daemon.redis.embedded import EmbeddedRedis  # noqa: E402
from daemon.redis.keys import Keys  # noqa: E402
from daemon.stories.cluster import StoryIndex, item_terms  # noqa: E402
from daemon.stories.index import StoryEntry, StoryStore, item_key  # noqa: E402
from daemon.stories.profile import vector  # noqa: E402
from daemon.stories.terms import ItemTerms  # noqa: E402

HOUR = 3600.0
WINDOW = 48 * HOUR
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
FEEDS = [f"feed-{i:03d}" for i in range(300)]
NAME_SHARE = 0.15
NOW = WINDOW - HOUR / 2  # when the probes arrive: every filled story is still in the window
T_FILL = 1_800_000_000.0  # the Redis index's clock (epoch seconds) at the start of its fill
T_PROBE = T_FILL + NOW
SYLLABLES = [c + v for c in "bdfgklmnprstvz" for v in ("a", "e", "i", "o", "u", "ar", "en")]


def make_story(rng: random.Random, vocab: list[str], weights: list[float]) -> tuple[str, str]:
    names = ["".join(rng.choices(SYLLABLES, k=rng.randint(3, 4))).capitalize() for _ in range(12)]
    draw = rng.choices(vocab, cum_weights=weights, k=250)
    for i in rng.sample(range(250), int(250 * NAME_SHARE)):
        draw[i] = rng.choice(names)
    title = " ".join(draw[:10]).capitalize()
    sentences, pos = [], 10
    while pos < len(draw):
        k = rng.randint(12, 25)
        sentences.append(" ".join(draw[pos : pos + k]).capitalize() + ".")
        pos += k
    sentences[0] = f"{sentences[0][:-1]} on {rng.choice(DAYS)}."
    sentences[2] = f"{sentences[2][:-1]}, with {rng.randint(11, 99_999):,} of them."
    sentences[5 % len(sentences)] += f" It was {rng.randint(11, 999)} km away."
    return title, "\n".join(sentences)


def rewrite(rng: random.Random, vocab: list[str], title: str, text: str) -> tuple[str, str]:
    sentences = text.split("\n")
    keep = [s for i, s in enumerate(sentences) if i < 3 or rng.random() > 0.2]
    if len(keep) > 4:
        i = rng.randrange(1, len(keep) - 1)
        keep[i], keep[i + 1] = keep[i + 1], keep[i]
    new_title = " ".join(rng.sample(title.split(), 6) + rng.sample(vocab[200:5000], 3))
    return new_title.capitalize(), "\n".join(keep)


def _texts(seed: int, start: int, n: int) -> list[tuple[str, str]]:
    rng = random.Random(seed * 1_000_003 + start)
    vocab = vocabulary(random.Random(seed))
    cum = list(itertools.accumulate(1.0 / (rank + 1) for rank in range(len(vocab))))
    return [make_story(rng, vocab, cum) for _ in range(n)]


def _fingerprints(job: tuple[int, int, int]) -> list[ItemTerms]:
    return [item_terms(t, x) for t, x in _texts(*job)]


def bench_index(args: argparse.Namespace) -> tuple[dict[str, Any], StoryIndex]:
    rng = random.Random(args.seed)
    vocab = vocabulary(random.Random(args.seed))
    cum = list(itertools.accumulate(1.0 / (rank + 1) for rank in range(len(vocab))))
    chunk = 5000
    jobs = [(args.seed, i, min(chunk, args.stories - i)) for i in range(0, args.stories, chunk)]
    t0 = time.perf_counter()
    with multiprocessing.Pool(2) as pool:  # the fill is set-up, not measured: use both cores
        fps = [fp for part in pool.map(_fingerprints, jobs) for fp in part]
    clock_now = [0.0]
    index = StoryIndex(window=WINDOW, clock=lambda: clock_now[0])
    step = (WINDOW - HOUR) / args.stories  # every story stays inside the window
    t1 = time.perf_counter()
    for i, fp in enumerate(fps):
        clock_now[0] = i * step
        index.assign(f"item-{i}", fp, FEEDS[i % len(FEEDS)])
    fill_s = time.perf_counter() - t1
    del fps
    # rewrites of stories of every age: the first, middle and last chunks of the fill
    texts = [t for job in (jobs[0], jobs[len(jobs) // 2], jobs[-1]) for t in _texts(*job)]
    probes = []
    for j in range(args.probes):
        if j % 2 == 0:
            probes.append(("rewrite", *rewrite(rng, vocab, *texts[rng.randrange(len(texts))])))
        else:
            probes.append(("new", *make_story(rng, vocab, cum)))
    setup_s = time.perf_counter() - t0
    clock_now[0] = NOW
    gc.collect()
    fp_times, assign_times = [], []
    joined = {"rewrite": 0, "new": 0}
    candidates = 0
    for j, (kind, title, text) in enumerate(probes):
        t2 = time.perf_counter()
        fp = item_terms(title, text)
        t3 = time.perf_counter()
        got = index.assign(f"probe-{j}", fp, FEEDS[j % len(FEEDS)])
        t4 = time.perf_counter()
        fp_times.append(t3 - t2)
        assign_times.append(t4 - t3)
        joined[kind] += not got.new_story
        v = vector(fp, *index.frequencies(fp, NOW))
        candidates += len(index.candidates(v, long=not fp.sketch.short))
    fp_best = min(_timed(probes) for _ in range(3))
    n = len(probes)
    totals = [a + b for a, b in zip(fp_times, assign_times, strict=True)]
    us = 1e6
    result = {
        "stories_in_index": len(index),
        "setup_s": round(setup_s, 1),
        "fill_us_per_item": round(fill_s / args.stories * us, 1),
        "probes": n,
        "avg_item_chars": round(sum(len(t) + len(x) for _, t, x in probes) / n),
        "fingerprint_us_mean": round(statistics.fmean(fp_times) * us, 1),
        "fingerprint_us_median": round(statistics.median(fp_times) * us, 1),
        "fingerprint_us_best_of_3": round(fp_best * us, 1),
        "lookup_assign_us_mean": round(statistics.fmean(assign_times) * us, 1),
        "lookup_assign_us_median": round(statistics.median(assign_times) * us, 1),
        "total_us_mean": round(statistics.fmean(totals) * us, 1),
        "total_us_median": round(statistics.median(totals) * us, 1),
        "total_us_p99": round(sorted(totals)[int(n * 0.99)] * us, 1),
        "candidates_per_lookup": round(candidates / n, 1),
        "rewrites_joined": round(joined["rewrite"] / (n / 2), 3),
        "new_stories_joined": round(joined["new"] / (n / 2), 3),
    }
    return result, index


def _timed(probes: list[tuple[str, str, str]]) -> float:
    t0 = time.perf_counter()
    for _, title, text in probes:
        item_terms(title, text)
    return (time.perf_counter() - t0) / len(probes)


def bench_redis(args: argparse.Namespace) -> dict[str, Any]:
    """The Redis story index as the daemon runs it (``daemon.stories.index.StoryStore`` on a
    real redis-server): fill it with ``--stories`` stories (every other one carried by a
    second feed: 1.5 items per story) spread over the window, then time fingerprint +
    lookup + commit of the probes, one item at a time and in polls of 50; INFO memory."""
    return asyncio.run(_bench_redis(args))


async def _bench_redis(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    vocab = vocabulary(random.Random(args.seed))
    cum = list(itertools.accumulate(1.0 / (rank + 1) for rank in range(len(vocab))))
    chunk = 5000
    jobs = [(args.seed, i, min(chunk, args.stories - i)) for i in range(0, args.stories, chunk)]
    with multiprocessing.Pool(2) as pool:
        fps = [fp for part in pool.map(_fingerprints, jobs) for fp in part]
    texts = [t for job in (jobs[0], jobs[len(jobs) // 2], jobs[-1]) for t in _texts(*job)]
    probes = [
        ("rewrite", *rewrite(rng, vocab, *texts[rng.randrange(len(texts))]))
        if j % 2 == 0
        else ("new", *make_story(rng, vocab, cum))
        for j in range(args.probes)
    ]
    step = (WINDOW - HOUR) / args.stories
    with tempfile.TemporaryDirectory() as tmp, EmbeddedRedis(tmp, persistent=False) as server:
        assert server.url
        r = aioredis.Redis.from_url(server.url)
        store = StoryStore(r, Keys("fw"), window=WINDOW)

        async def used() -> int:
            return int((await r.info("memory"))["used_memory"])

        base = await used()
        t0 = time.perf_counter()
        items = 0
        for start in range(0, len(fps), 50):
            batch = []
            for i in range(start, min(start + 50, len(fps))):
                feed = FEEDS[i % len(FEEDS)]
                batch.append(StoryEntry(item_key(feed, f"i{i}"), fps[i], feed, f"https://x/{i}"))
                if i % 2:
                    other = FEEDS[(i + 7) % len(FEEDS)]
                    batch.append(StoryEntry(item_key(other, f"j{i}"), fps[i], other, None))
            items += len(batch)
            await store.assign_many(batch, T_FILL + start * step)
        fill_s = time.perf_counter() - t0
        mem = await used() - base
        stories = len(fps)
        del fps
        encodings: set[str] = set()
        async for k in r.scan_iter(match="{fw}:story:[bm]:*", count=1000):
            encodings.add((await r.object("encoding", k)).decode())
        # one item at a time (a poll with one new item), then polls of 50 new items
        fp_times, one_times = [], []
        joined = {"rewrite": 0, "new": 0}
        for j, (kind, title, text) in enumerate(probes):
            t1 = time.perf_counter()
            fp = item_terms(title, text)
            t2 = time.perf_counter()
            got = await store.assign(item_key("probe", str(j)), fp, "probe", T_PROBE)
            t3 = time.perf_counter()
            fp_times.append(t2 - t1)
            one_times.append(t3 - t2)
            joined[kind] += not got.new_story
        batch_probes = [
            StoryEntry(item_key("poll", str(j)), item_terms(t, x), "poll", None)
            for j, (_, t, x) in enumerate(probes)
        ]
        t4 = time.perf_counter()
        for start in range(0, len(batch_probes), 50):
            await store.assign_many(batch_probes[start : start + 50], T_PROBE + 1)
        batch_us = (time.perf_counter() - t4) / len(batch_probes) * 1e6
        await r.aclose()
    n = len(probes)
    us = 1e6
    totals = [a + b for a, b in zip(fp_times, one_times, strict=True)]
    return {
        "stories": stories,
        "items": items,
        "fill_us_per_item": round(fill_s / items * us, 1),
        "bytes_per_item": round(mem / items, 1),
        "bytes_per_story": round(mem / stories, 1),
        "band_and_item_hash_encodings": sorted(encodings),
        "probes": n,
        "fingerprint_us_median": round(statistics.median(fp_times) * us, 1),
        "lookup_commit_one_us_median": round(statistics.median(one_times) * us, 1),
        "lookup_commit_one_us_p99": round(sorted(one_times)[int(n * 0.99)] * us, 1),
        "total_one_us_median": round(statistics.median(totals) * us, 1),
        "total_one_us_mean": round(statistics.fmean(totals) * us, 1),
        "lookup_commit_in_polls_of_50_us_per_item": round(batch_us, 1),
        "rewrites_joined": round(joined["rewrite"] / (n / 2), 3),
        "new_stories_joined": round(joined["new"] / (n / 2), 3),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--stories", type=int, default=100_000)
    ap.add_argument("--probes", type=int, default=4000)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--compare", action="store_true", help="also measure the alternatives")
    ap.add_argument("--no-redis", action="store_true")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    index_result, index = bench_index(args)
    ir = index_result
    print(
        f"index of {ir['stories_in_index']:,} stories (set-up {ir['setup_s']} s; "
        f"fill through assign {ir['fill_us_per_item']} us/item)"
    )
    print(
        f"per item (~{ir['avg_item_chars']} chars), median / mean: fingerprint "
        f"{ir['fingerprint_us_median']} / {ir['fingerprint_us_mean']} us (best of 3 runs "
        f"{ir['fingerprint_us_best_of_3']}) + lookup and assign {ir['lookup_assign_us_median']} / "
        f"{ir['lookup_assign_us_mean']} us = {ir['total_us_median']} / {ir['total_us_mean']} us "
        f"(p99 {ir['total_us_p99']}; goal <= 500); {ir['candidates_per_lookup']} candidates/lookup"
    )
    print(
        f"rewrites joined their story: {ir['rewrites_joined']:.1%}; "
        f"new stories joined one: {ir['new_stories_joined']:.1%}"
    )
    result: dict[str, Any] = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "index": index_result,
        "goals": {"us_per_item_at_100000": 500, "redis_bytes_per_item": 300},
    }
    if not args.no_redis:
        red = bench_redis(args)
        result["redis"] = red
        print(
            f"redis index ({red['stories']:,} stories, {red['items']:,} items; fill "
            f"{red['fill_us_per_item']} us/item): {red['bytes_per_item']} bytes per remembered "
            f"item (goal <= 300), {red['bytes_per_story']} per story; hashes "
            f"{red['band_and_item_hash_encodings']}"
        )
        print(
            f"redis, per item, median: fingerprint {red['fingerprint_us_median']} us + lookup "
            f"and commit {red['lookup_commit_one_us_median']} us (p99 "
            f"{red['lookup_commit_one_us_p99']}) = {red['total_one_us_median']} us (goal <= 500)"
            f"; in polls of 50 new items: lookup and commit "
            f"{red['lookup_commit_in_polls_of_50_us_per_item']} us/item; rewrites joined "
            f"{red['rewrites_joined']:.1%}, new stories joined one {red['new_stories_joined']:.1%}"
        )
    if args.compare:
        result["compare"] = compare()
        for row in result["compare"]:
            print(
                f"  {row['method']:<58} recall {row['recall']:.3f} at precision "
                f"{row['precision']:.3f} (threshold {row['threshold']}); "
                f"fingerprint {row['fingerprint_us']} us"
            )
    result["wall_s"] = round(time.perf_counter() - t0, 1)
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "story.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out / 'story.json'} ({result['wall_s']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
