"""Story clustering: cost per item of fingerprint + lookup, and Redis memory per remembered story.

    .venv-bench/bin/python bench/story.py [--stories 100000] [--probes 4000] [--compare]

1. Fills ``daemon.story.StoryIndex`` with ``--stories`` synthetic stories (news-sized items,
   ~1.5 KB: words drawn from the Zipf vocabulary of bench/match.py, 15% of them from a dozen
   names of the story's own (people, places), two numbers and a weekday each), then times
   fingerprint + ``assign`` for ``--probes`` more items: half rewrites of stories in the index
   (headline changed, a fifth of the sentences dropped, two swapped; stories from the start,
   middle and end of the window), half new stories.
2. Writes the Redis layout described in ``daemon/story.py`` for the same stories into a real
   redis-server (``daemon.embedded.EmbeddedRedis``, in memory) and reads ``INFO memory``:
   bytes per remembered story, per part, and the cost of one pipelined lookup.
3. ``--compare``: precision/recall on tests/data/stories/pairs.yaml and fingerprint cost of the
   alternatives (MinHash Jaccard, MinHash containment, SimHash) beside the chosen design.

Prints a summary and writes ``bench/results/story.json``.
"""

from __future__ import annotations

import argparse
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

import redis  # noqa: E402

from bench.match import vocabulary  # noqa: E402
from bench.story_compare import compare  # noqa: E402
from daemon.embedded import EmbeddedRedis  # noqa: E402
from daemon.story import StoryIndex, StoryState, fingerprint  # noqa: E402
from daemon.story_sketch import PACKED_SIZE, Fingerprint  # noqa: E402

HOUR = 3600.0
WINDOW = 48 * HOUR
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
FEEDS = [f"feed-{i:03d}" for i in range(300)]
MAX_SOURCES = 8
RECORD = PACKED_SIZE + 1 + 2 * MAX_SOURCES  # sketch, source count, source feed ids
REC_PER_HASH = 40  # 3 fields per record: 120 fields per hash, under hash-max-ziplist-entries
SLICE_HOURS = 12
BAND_SLICE = SLICE_HOURS * HOUR  # band and item hashes: one set per 12 hours
PER_HASH = 80  # fields per small hash: stays under hash-max-ziplist-entries (128)
NAME_SHARE = 0.15
NOW = WINDOW - HOUR / 2  # when the probes arrive: every filled story is still in the window
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


def _fingerprints(job: tuple[int, int, int]) -> list[Fingerprint]:
    return [fingerprint(t, x) for t, x in _texts(*job)]


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
        fp = fingerprint(title, text)
        t3 = time.perf_counter()
        got = index.assign(f"probe-{j}", fp, FEEDS[j % len(FEEDS)])
        t4 = time.perf_counter()
        fp_times.append(t3 - t2)
        assign_times.append(t4 - t3)
        joined[kind] += not got.new_story
        candidates += len(index.candidates(fp))
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
        fingerprint(title, text)
    return (time.perf_counter() - t0) / len(probes)


def _shards(entries_per_slice: float) -> int:
    return max(1, round(entries_per_slice / PER_HASH))


def bench_redis(stories: list[StoryState], probe_fps: list[Fingerprint]) -> dict[str, Any]:
    """Write the layout for every story; INFO memory before and after each part."""
    rng = random.Random(5)
    n = len(stories)
    slices = WINDOW / BAND_SLICE + 1
    avg_keys = sum(len(s.keys) for s in stories) / n
    band_shards = _shards(n / slices * avg_keys)
    item_shards = _shards(n * 1.5 / slices)
    tag = "{fw}"
    parts: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as tmp, EmbeddedRedis(tmp, persistent=False) as server:
        assert server.url
        r = redis.Redis.from_url(server.url)
        r.config_set("maxmemory-policy", "noeviction")

        def used() -> int:
            return int(r.info("memory")["used_memory"])

        def ttl(end: float) -> int:  # story times run 0..WINDOW; "now" is the end of the fill
            return max(1, int(end + WINDOW - NOW))

        base = used()
        feed_ids = {f: i + 1 for i, f in enumerate(FEEDS)}
        r.hset(f"{tag}:story:feeds", mapping=feed_ids)
        # 1. records: the id is (hour, index); small hashes of REC_PER_HASH records, each record
        #    in three fields of <= 64 bytes (hash-max-ziplist-value), field = index * 4 + part
        refs: list[tuple[int, int]] = []
        pipe = r.pipeline(transaction=False)
        counts: dict[int, int] = {}
        for i, story in enumerate(stories):
            hour = int(story.started // HOUR)
            idx = counts.get(hour, 0)
            counts[hour] = idx + 1
            refs.append((hour, idx))
            sources = [feed_ids[f] for f in rng.sample(FEEDS, rng.choice((1, 1, 2, 3)))]
            src = bytes([len(sources)]) + b"".join(s.to_bytes(2, "little") for s in sources)
            record = story.fingerprint.pack() + src.ljust(RECORD - PACKED_SIZE, b"\0")
            name = f"{tag}:story:rec:{hour}:{idx // REC_PER_HASH}"
            parts3 = {idx * 4 + p: record[p * 64 : (p + 1) * 64] for p in range(3)}
            pipe.hset(name, mapping=parts3)  # type: ignore[arg-type]
            if idx % REC_PER_HASH == 0:
                pipe.expire(name, ttl((hour + 1) * HOUR))
            if i % 1000 == 999:
                pipe.execute()
        pipe.execute()
        parts["records"] = used() - base
        # 2. band keys: field = 32-bit key, value = last 4 story indexes (3 bytes each)
        buckets: dict[tuple[int, int], dict[int, list[int]]] = {}
        for story, (hour, idx) in zip(stories, refs, strict=True):
            part = int(story.started // BAND_SLICE)
            ref = (hour % SLICE_HOURS) << 20 | idx  # hour within the slice, index in that hour
            for k in story.keys:
                bucket = buckets.setdefault((part, k % band_shards), {}).setdefault(k, [])
                bucket.append(ref)
                del bucket[:-4]
        mark = used()
        for (part, shard), fields in buckets.items():
            name = f"{tag}:story:band:{part}:{shard}"
            mapping = {k: b"".join(x.to_bytes(3, "little") for x in v) for k, v in fields.items()}
            pipe.hset(name, mapping=mapping)
            pipe.expire(name, ttl((part + 1) * BAND_SLICE))
        pipe.execute()
        parts["band_keys"] = used() - mark
        # 3. items: 6-byte hash of the item key -> story ref (1.5 items per story)
        mark = used()
        items: dict[tuple[int, int], dict[bytes, int]] = {}
        for i, (story, (hour, idx)) in enumerate(zip(stories, refs, strict=True)):
            part = int(story.started // BAND_SLICE)
            for _ in range(1 + (i % 2)):
                h = rng.getrandbits(48).to_bytes(6, "little")
                items.setdefault((part, h[0] % item_shards), {})[h] = hour << 21 | idx
        for (part, shard), fields in items.items():
            name = f"{tag}:story:item:{part}:{shard}"
            pipe.hset(name, mapping=fields)  # type: ignore[arg-type]
            pipe.expire(name, ttl((part + 1) * BAND_SLICE))
        pipe.execute()
        parts["item_map"] = used() - mark
        encodings = {
            r.object("encoding", k).decode()
            for k in r.scan_iter(f"{tag}:story:*", count=1000)
            if not k.endswith(b":feeds")
        }
        lookup_us = _lookup_cost(r, probe_fps, band_shards, tag)
        r.close()
    total = sum(parts.values())
    return {
        "stories": n,
        "record_bytes": RECORD,
        "band_keys_per_story": round(avg_keys, 2),
        "band_hashes_per_slice": band_shards,
        "hash_encodings": sorted(encodings),
        "bytes_per_story": {k: round(v / n, 1) for k, v in parts.items()},
        "bytes_per_story_total": round(total / n, 1),
        "bytes_per_item_at_1_5_items_per_story": round(total / (n * 1.5), 1),
        "redis_lookup_us": lookup_us,
    }


def _lookup_cost(r: redis.Redis, probes: list[Fingerprint], shards: int, tag: str) -> float:
    """One lookup as the Redis index would do it: HMGET the probe keys in every live
    slice (one pipeline), then HMGET the candidate records (a second one)."""
    live = range(int(WINDOW // BAND_SLICE) + 1)
    t0 = time.perf_counter()
    for fp in probes:
        groups: dict[int, list[int]] = {}
        for k in fp.probes:
            groups.setdefault(k % shards, []).append(k)
        pipe = r.pipeline(transaction=False)
        order = []
        for part in live:
            for shard, ks in groups.items():
                pipe.hmget(f"{tag}:story:band:{part}:{shard}", ks)
                order.append(part)
        refs = set()
        for part, values in zip(order, pipe.execute(), strict=True):
            for v in values:
                for i in range(0, len(v or b""), 3):
                    ref = int.from_bytes(v[i : i + 3], "little")
                    refs.add((part * SLICE_HOURS + (ref >> 20), ref & 0xFFFFF))
        pipe = r.pipeline(transaction=False)
        for hour, idx in list(refs)[:16]:
            name = f"{tag}:story:rec:{hour}:{idx // REC_PER_HASH}"
            pipe.hmget(name, [idx * 4, idx * 4 + 1, idx * 4 + 2])
        for fields in pipe.execute():
            if all(fields):
                Fingerprint.unpack(b"".join(fields)[:PACKED_SIZE])
    return round((time.perf_counter() - t0) / len(probes) * 1e6, 1)


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
        sample = _texts(args.seed + 1, 0, 200)
        red = bench_redis(index.stories(), [fingerprint(t, x) for t, x in sample])
        result["redis"] = red
        print(
            f"redis: {red['bytes_per_story_total']} bytes per remembered story "
            f"({', '.join(f'{k} {v}' for k, v in red['bytes_per_story'].items())}); "
            f"{red['bytes_per_item_at_1_5_items_per_story']} per item at 1.5 items/story "
            f"(goal <= 300); hashes {red['hash_encodings']}; "
            f"one lookup {red['redis_lookup_us']} us"
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
