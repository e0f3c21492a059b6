"""Scale benchmark: memory of one daemon with 10,000 feeds; polls/s of one vs three processes.

Both parts run the long-lived daemon (``feedwatch run``, not ``--once``) against the bench feed
server (bench/feedgen.py, its own process) and read its JSON log lines, time-stamped as they
arrive here.

* **memory**: one ``feedwatch run`` (embedded Redis under its state_dir) with 10,000 feeds, each
  its own small feed on the server (10 items). Interval 10m, so the scheduler's first polls
  (spread over the first 5 s) are the only ones. The process tree's summed RSS (main process,
  parse workers, redis-server) is sampled from start, through the first pass, then for a steady
  window; then SIGTERM, which must exit 0.
* **throughput**: 1,000 feeds x 50 items, one shared redis-server (started here, not persistent),
  1 process, then 3 processes on a fresh Redis, each ``feedwatch run --role all``. Three stages
  on the same state: *cold* (interval 10m: the first pass, every feed 200 + parse; each feed
  must be polled exactly once in all), *steady* (interval 10s: all 304, the rate the schedule
  asks for, and how close together two polls of one feed came) and *max* (interval 1s: more
  than the processes can do, all 304: their capacity). The steady and max windows open only
  once the processes share the feeds as designed (see ``warm_up``).

    python bench/scale.py            # everything, about 4-5 minutes
    python bench/scale.py --quick    # small sizes and short windows, under a minute

Results: a table on stdout and bench/results/scale.json (scale-partial.json for non-default
arguments, unless --out is given).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter, deque
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]
import redis

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
from poll import Server, feedwatch_cmd, versions  # noqa: E402
from proctree import CpuMeter, children, cpu_by_role, cpu_of, machine, tree_sample  # noqa: E402

import daemon  # noqa: E402
from daemon.poll.leases import claim_ttl  # noqa: E402
from daemon.poll.peers import BEATS_PER_TTL, CLAIM_PATIENCE, preferred  # noqa: E402
from daemon.poll.result import SKIPPED  # noqa: E402
from daemon.poll.scheduling import START_SPREAD  # noqa: E402
from daemon.redis.embedded import EmbeddedRedis  # noqa: E402

RESULTS = HERE / "results"
RSS_GOAL_MB = 250.0
MB = 2**20
# The daemon's defaults, written into the configs because warm_up depends on them:
LEASE_TTL = 30.0  # polling.lease_ttl: the peers beat every third of it
JITTER = 0.1  # defaults.jitter: a tick comes up to this fraction of an interval late
# Ticks that made no request: skipped (logged at debug only; /metrics counts them) or in backoff.
NO_FETCH = (*SKIPPED, "backoff")
_OUTCOME = re.compile(r'^feedwatch_polls_total\{[^}]*outcome="([^"]+)"[^}]*\}\s+([0-9.eE+]+)')


# -- a fleet of daemons and its process trees -------------------------------------------------


@dataclass(frozen=True, slots=True)
class Poll:
    t: float  # seconds since the fleet was launched, when the log line arrived
    proc: int
    feed: str
    outcome: str


class Fleet:
    """``n`` ``feedwatch run --role all`` processes on one config; stderr parsed as it arrives,
    every process tree sampled (RSS by role, CPU) every ``every`` seconds. ``polls``: the polls
    that made a request; ticks that did not (``NO_FETCH``) are only counted, in ``skipped``."""

    def __init__(self, n: int, config: Path, every: float, logs: Path) -> None:
        self.t0 = time.perf_counter()
        self.logs = [logs.with_name(f"{logs.name}-{i}.log") for i in range(n)]
        self.polls: list[Poll] = []
        self.skipped: Counter[str] = Counter()  # logged ticks without a request, by outcome
        self.started: dict[int, float] = {}
        self.identity: dict[int, str] = {}  # process -> its peer identity (daemon/poll/peers.py)
        self.http: dict[int, str] = {}
        self.warnings: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()  # poll errors, by message (first 120 characters)
        self.tails: list[deque[str]] = [deque(maxlen=20) for _ in range(n)]
        self.samples: list[tuple[float, dict[str, int]]] = []  # t, role -> RSS bytes
        self.cpu: dict[int, tuple[str, float]] = {}  # pid -> role, CPU seconds
        self._done = threading.Event()
        cmd = [*feedwatch_cmd(), "run", "--role", "all", "--config", str(config)]
        self.procs = [
            subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=REPO)
            for _ in range(n)
        ]
        self.ps = [psutil.Process(p.pid) for p in self.procs]
        self._threads = [
            threading.Thread(target=self._read, args=(i,), daemon=True) for i in range(n)
        ]
        self._threads.append(threading.Thread(target=self._sample_loop, args=(every,), daemon=True))
        for th in self._threads:
            th.start()

    def now(self) -> float:
        return time.perf_counter() - self.t0

    def _read(self, i: int) -> None:
        stream = self.procs[i].stderr
        assert stream is not None
        with self.logs[i].open("wb") as saved:
            for raw in stream:
                saved.write(raw)
                self._line(i, self.now(), raw.decode(errors="replace").rstrip("\n"))

    def _line(self, i: int, t: float, line: str) -> None:
        self.tails[i].append(line)
        try:
            rec = json.loads(line)
        except ValueError:
            return
        if not isinstance(rec, dict):
            return
        event = str(rec.get("event"))
        if event == "poll":
            outcome = str(rec.get("outcome"))
            if outcome in NO_FETCH:  # skipped ticks are at debug level: only if it was asked for
                self.skipped[outcome] += 1
                return
            self.polls.append(Poll(t, i, str(rec.get("feed")), outcome))
            if rec.get("error"):
                self.errors[str(rec["error"])[:120]] += 1
        elif event == "started":
            self.started[i] = t
            self.identity[i] = str(rec.get("identity"))
            if rec.get("http"):
                self.http[i] = str(rec["http"])
        elif rec.get("level") in ("warning", "error", "critical"):
            self.warnings[event[:70]] += 1

    def sample(self) -> dict[str, int]:
        """RSS by role over every process tree, now; updates the CPU figures too."""
        roles: dict[str, int] = {}
        for main in self.ps:
            for role, rss in tree_sample(main, children(main), self.cpu):
                roles[role] = roles.get(role, 0) + rss
        self.samples.append((self.now(), roles))
        return roles

    def pss(self) -> int:
        """Summed proportional set size of the trees (shared pages counted once overall)."""
        total = 0
        for main in self.ps:
            for p in (main, *children(main)):
                try:
                    total += p.memory_full_info().pss
                except psutil.Error:
                    continue
        return total

    def _sample_loop(self, every: float) -> None:
        while not self._done.is_set():
            self.sample()
            self._done.wait(every)

    def _check_alive(self) -> None:
        for i, p in enumerate(self.procs):
            if p.poll() is not None:
                raise RuntimeError(
                    f"feedwatch #{i} exited with {p.returncode}:\n" + "\n".join(self.tails[i])
                )

    def wait_started(self, timeout: float = 90.0) -> float:
        """Until every process logged ``started``; returns when the last one did."""
        deadline = time.monotonic() + timeout
        while len(self.started) < len(self.procs):
            self._check_alive()
            if time.monotonic() > deadline:
                raise RuntimeError(f"not every feedwatch started within {timeout:.0f}s")
            time.sleep(0.02)
        return max(self.started.values())

    def wait_polls(self, n: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while len(self.polls) < n:
            self._check_alive()
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def outcomes(self) -> dict[str, int]:
        """Every outcome counted by the processes' /metrics since they started, the skipped
        ticks (``SKIPPED``: leased, fresh, websub) too."""
        total: Counter[str] = Counter()
        for addr in self.http.values():
            try:
                with urllib.request.urlopen(f"http://{addr}/metrics", timeout=10) as r:
                    text = r.read().decode()
            except OSError:
                continue
            for line in text.splitlines():
                if m := _OUTCOME.match(line):
                    total[m.group(1)] += int(float(m.group(2)))
        return dict(sorted(total.items()))

    def stop(self, timeout: float = 30.0) -> tuple[list[int | None], float]:
        """SIGTERM every process; exit codes (None: had to be killed) and the slowest exit."""
        self.sample()  # the CPU figures as late as can be (their shutdown goes uncounted)
        t = time.perf_counter()
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        codes: list[int | None] = []
        for p in self.procs:
            try:
                codes.append(p.wait(max(0.1, timeout - (time.perf_counter() - t))))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
                codes.append(None)
        took = time.perf_counter() - t
        self._done.set()
        for th in self._threads:
            th.join(5)
        return codes, round(took, 2)

    def cpu_s(self) -> float:
        return round(sum(s for _, s in self.cpu.values()), 1)


def mb(n: float) -> float:
    return round(n / MB, 1)


def write_config(
    tmp: Path, server: Server, n: int, interval: str, *, redis: str | None, http: bool
) -> Path:
    config: dict[str, Any] = {
        "state_dir": str(tmp / "state"),
        "rules": [str(REPO / "rules")],
        "defaults": {
            "notify": ["null-out"],
            "backfill": "none",
            "interval": interval,
            "jitter": JITTER,
        },
        "feeds": [{"name": f"f{i:04d}", "url": server.url(i)} for i in range(n)],
        "notifiers": {"null-out": {"type": "console", "format": "json", "stream": "stderr"}},
        "polling": {"lease_ttl": LEASE_TTL},
        # info: skipped ticks are not logged (debug), so the log carries the polls that fetched.
        "log": {"level": "info", "format": "json"},
    }
    if redis is not None:
        config["redis"] = redis
    if http:
        config["http"] = {"listen": "127.0.0.1:0"}
    tmp.mkdir(parents=True, exist_ok=True)
    path = tmp / f"feedwatch-{interval}.yaml"
    path.write_text(json.dumps(config))
    return path


def meter(**procs: psutil.Process | None) -> CpuMeter:
    """CPU of ``procs`` (feed server, shared Redis) and of this script from now; its ``other``
    is what the rest of the machine spent, given the fleet's CPU seconds."""
    return CpuMeter({**procs, "bench": psutil.Process()})


# -- memory -----------------------------------------------------------------------------------


def memory(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    print(f"memory: {args.mem_feeds:,} feeds x {args.mem_items} items, one process", flush=True)
    server = Server(args.mem_feeds, args.mem_items)
    try:
        config = write_config(tmp, server, args.mem_feeds, "10m", redis=None, http=False)
        load = meter(server=server.ps)
        fleet = Fleet(1, config, every=0.2, logs=tmp / "memory")
        try:
            t_started = fleet.wait_started()
            at_start, polls_at_start, pss_start = fleet.sample(), len(fleet.polls), fleet.pss()
            complete = fleet.wait_polls(args.mem_feeds, args.mem_timeout)
            t_pass = fleet.now()
            time.sleep(args.steady)
            pss_end, t_end = fleet.pss(), fleet.now()
            stats = server.control("/_stats")
        finally:
            codes, stop_s = fleet.stop()  # SIGTERM: the daemon must exit 0
        other = round(load.other(fleet.cpu_s()), 1)
        server_cpu = round(load.spent()["server"], 1)
    finally:
        server.close()
    totals = [(t, sum(r.values()), r) for t, r in fleet.samples]
    peak_t, peak, peak_roles = max(totals, key=lambda x: x[1])
    steady = [x for x in totals if t_pass <= x[0] <= t_end]
    steady_mb = mb(statistics.median(x[1] for x in steady)) if steady else None
    result = {
        "feeds": args.mem_feeds,
        "items_per_feed": args.mem_items,
        "feed_urls": "one distinct feed per URL (/f0000.xml ... on the bench server)",
        "interval": "10m",
        "started_s": round(t_started, 2),
        "rss_at_start_mb": mb(sum(at_start.values())),
        "rss_at_start_by_role_mb": {k: mb(v) for k, v in at_start.items()},
        "polls_done_at_start": polls_at_start,
        "pss_at_start_mb": mb(pss_start),
        "first_pass_complete": complete,
        "first_pass_s": round(t_pass - t_started, 1),
        "polls": len(fleet.polls),
        "outcomes": dict(Counter(p.outcome for p in fleet.polls)),
        "skipped_logged": dict(fleet.skipped),
        "peak_rss_mb": mb(peak),
        "peak_at_s": round(peak_t, 1),
        "peak_by_role_mb": {k: mb(v) for k, v in peak_roles.items()},
        "steady_window_s": args.steady,
        "steady_rss_mb": steady_mb,
        "steady_by_role_mb": {k: mb(v) for k, v in steady[-1][2].items()} if steady else {},
        "pss_steady_mb": mb(pss_end),
        "server": {k: stats[k] for k in ("requests", "200", "304", "404", "connections")},
        "cpu_s": fleet.cpu_s(),
        "cpu_by_role_s": cpu_by_role(fleet.cpu),
        "server_cpu_s": server_cpu,
        "other_cpu_s": other,
        "exit_code": codes[0],
        "sigterm_to_exit_s": stop_s,
        "warnings": dict(fleet.warnings.most_common(5)),
        "poll_errors": dict(fleet.errors.most_common(5)),
        "goal_rss_mb": RSS_GOAL_MB,
    }
    result["goal_met"] = max(result["peak_rss_mb"], steady_mb or 0.0) <= RSS_GOAL_MB
    if codes[0] != 0 or not complete:
        result["error"] = "\n".join(fleet.tails[0])
    return result


# -- throughput -------------------------------------------------------------------------------


class SharedRedis:
    """The fleet's redis-server (started here, in memory): its CPU time and command statistics."""

    def __init__(self, where: Path) -> None:
        self.embedded = EmbeddedRedis(where, persistent=False)
        self.url = self.embedded.start(reuse=False)  # a fresh state for every fleet size
        assert self.embedded.proc is not None
        self.ps = psutil.Process(self.embedded.proc.pid)
        self.client = redis.Redis.from_url(self.url)

    def reset(self) -> float:
        self.client.config_resetstat()
        return cpu_of(self.ps)

    def commands(self, top: int = 8) -> dict[str, dict[str, float]]:
        """The commands that took most of Redis's time since ``reset`` (script calls included)."""
        stats: dict[str, Any] = self.client.info("commandstats")
        rows = sorted(stats.items(), key=lambda kv: -float(kv[1]["usec"]))[:top]
        return {
            k.removeprefix("cmdstat_"): {
                "calls": int(v["calls"]),
                "s": round(float(v["usec"]) / 1e6, 2),
                "us_per_call": float(v["usec_per_call"]),
            }
            for k, v in rows
        }

    def close(self) -> None:
        self.client.close()
        self.embedded.stop()


def warm_up(interval: float) -> float:
    """Seconds from the last process's ``started`` until a throughput window opens: until the
    fleet shares the feeds as designed, whose first ticks say little about it.

    * Every process beats in Redis every ``LEASE_TTL / BEATS_PER_TTL`` (10 s) and reads the live
      processes then (``daemon/poll/peers.py``). One that registered before the others first sees
      fewer of them (alone, it prefers every feed); every view agrees one beat after the last
      process registered (just after its ``started`` line).
    * Then each feed moves to the process it prefers at its next claim: the preferred one
      claims as soon as the last claim ends, the others ``CLAIM_PATIENCE`` of an interval later,
      and a tick comes up to ``JITTER`` of an interval late.

    One process needs only its first ticks (``START_SPREAD``), but both fleet sizes get the
    same warm-up so that their windows compare alike. ``preferred_share`` in the results says
    whether it was long enough (at the 10 s interval, nearly every poll by the preferred one).
    """
    beat = LEASE_TTL / BEATS_PER_TTL
    return max(START_SPREAD, beat + (1 + CLAIM_PATIENCE + JITTER) * interval)


def _pairs(polls: list[Poll]) -> list[tuple[str, float, int, int]]:
    """Every two successive polls of a feed: (feed, seconds between them, their processes)."""
    times: dict[str, list[tuple[float, int]]] = {}
    for p in polls:
        times.setdefault(p.feed, []).append((p.t, p.proc))
    out = []
    for feed, ts in times.items():
        ts.sort()
        out += [(feed, b - a, pa, pb) for (a, pa), (b, pb) in zip(ts, ts[1:], strict=False)]
    return out


def gaps(polls: list[Poll], interval: float) -> dict[str, Any]:
    """How close together two polls of one feed came (over every process of the fleet)."""
    pairs = _pairs(polls)
    all_gaps = [g for _, g, _, _ in pairs]
    per_feed = Counter(p.feed for p in polls)
    return {
        "feeds_polled": len(per_feed),
        "max_polls_per_feed": max(per_feed.values(), default=0),
        "gaps": len(all_gaps),
        "min_gap_s": round(min(all_gaps), 3) if all_gaps else None,
        "median_gap_over_interval": (
            round(statistics.median(all_gaps) / interval, 3) if all_gaps else None
        ),
        "mean_gap_over_interval": (
            round(statistics.fmean(all_gaps) / interval, 3) if all_gaps else None
        ),
        "feeds_twice_within_interval": len({f for f, g, _, _ in pairs if g < interval}),
    }


def within_claim(polls: list[Poll], interval: float) -> int:
    """Feeds polled by two processes less than a claim apart: ``daemon/poll/leases.py`` promises
    none (between the two requests). A process's own polls are not held back by its claim (they
    follow its schedule), so only a change of process counts."""
    ttl = claim_ttl(interval)
    return len({f for f, g, pa, pb in _pairs(polls) if pa != pb and g < ttl})


def preferred_share(polls: list[Poll], identity: dict[int, str]) -> float | None:
    """The share of ``polls`` made by the process the feed prefers (``daemon/poll/peers.py``, over
    the fleet's processes); None for one process."""
    members = sorted(identity.values())
    if len(members) < 2 or not polls:
        return None
    best: dict[str, str | None] = {}
    hits = 0
    for p in polls:
        if p.feed not in best:
            best[p.feed] = preferred(p.feed, members)
        hits += identity.get(p.proc) == best[p.feed]
    return round(hits / len(polls), 3)


def stage(
    name: str,
    n: int,
    config: Path,
    server: Server,
    shared: SharedRedis,
    *,
    feeds: int,
    interval: float,
    window: float | None,
    timeout: float,
) -> dict[str, Any]:
    """One launch of ``n`` processes. ``window`` None: until every feed was polled once (cold),
    then a few seconds more to see that nothing is polled twice; else a window of that many
    seconds after ``warm_up``."""
    server.control("/_stats/reset")
    redis_cpu = shared.reset()
    load = meter(server=server.ps, redis=shared.ps)
    fleet = Fleet(n, config, every=0.5, logs=config.with_name(name))
    out: dict[str, Any] = {"stage": name, "procs": n, "interval_s": interval}
    try:
        t_started = fleet.wait_started()
        out["started_s"] = round(t_started, 2)
        if window is None:
            out["complete"] = fleet.wait_polls(feeds, timeout)
            last = fleet.polls[-1].t if fleet.polls else t_started
            w0, w1 = min(fleet.started.values()), last
            time.sleep(3.0)
        else:
            out["warm_up_s"] = round(warm_up(interval), 1)
            time.sleep(max(0.0, t_started + warm_up(interval) - fleet.now()))
            server.control("/_stats/reset")
            w0 = fleet.now()
            time.sleep(window)
            w1 = fleet.now()
        stats = server.control("/_stats")
        out["metrics_outcomes"] = fleet.outcomes()
        out["redis_cpu_s"] = round(cpu_of(shared.ps) - redis_cpu, 1)
        out["redis_commands"] = shared.commands()
    finally:
        codes, stop_s = fleet.stop()
    in_window = [p for p in fleet.polls if w0 <= p.t <= w1]
    # Gaps: over the window (the steady state), but over the whole cold run (every feed once).
    paced = fleet.polls if window is None else in_window
    out.update(
        window_s=round(w1 - w0, 2),
        polls=len(in_window),
        polls_per_s=round(len(in_window) / (w1 - w0), 1) if w1 > w0 else None,
        per_process=[sum(1 for p in in_window if p.proc == i) for i in range(n)],
        preferred_share=preferred_share(in_window, fleet.identity),
        outcomes=dict(Counter(p.outcome for p in in_window)),
        polls_whole_run=len(fleet.polls),
        outcomes_whole_run=dict(Counter(p.outcome for p in fleet.polls)),
        skipped_whole_run={k: out["metrics_outcomes"].get(k, 0) for k in SKIPPED},
        server={k: stats[k] for k in ("requests", "200", "304", "404", "connections")},
        **gaps(paced, interval),
        feeds_twice_within_claim=within_claim(fleet.polls, interval),
        peak_rss_mb=mb(max((sum(r.values()) for _, r in fleet.samples), default=0)),
        cpu_s=fleet.cpu_s(),
        cpu_by_role_s=cpu_by_role(fleet.cpu),
        cpu_per_poll_ms=round(1000 * fleet.cpu_s() / len(fleet.polls), 2) if fleet.polls else None,
        server_cpu_s=round(load.spent()["server"], 1),
        other_cpu_s=round(load.other(fleet.cpu_s()), 1),
        exit_codes=codes,
        sigterm_to_exit_s=stop_s,
        warnings=dict(fleet.warnings.most_common(5)),
        poll_errors=dict(fleet.errors.most_common(5)),
    )
    if window is None:
        out["cold_polls_per_s_from_launch"] = round(len(in_window) / w1, 1) if w1 else None
    errors = []
    if any(c != 0 for c in codes):
        errors.append(f"exit codes {codes}")
    if window is None and not out["complete"]:
        errors.append(f"only {len(fleet.polls)} of {feeds} feeds polled in {timeout:.0f}s")
    if window is None and out["max_polls_per_feed"] > 1:
        errors.append("a feed was polled more than once in the cold stage")
    # Log lines are time-stamped on arrival here, after the poll's end (its claim is stamped
    # then) and the lease's release: a second process's poll logs at least a claim plus its own
    # duration later. A saturated event loop delays lines by up to hundreds of ms, more than a
    # 304's duration, so the check runs only where the loops have time to spare (steady, 10 s).
    if out["feeds_twice_within_claim"] and interval >= 5:
        errors.append(f"{out['feeds_twice_within_claim']} feeds polled by two within a claim")
    if errors:
        out["error"] = "; ".join(errors)
        out["log_tail"] = list(fleet.tails[0])
    return out


def throughput(args: argparse.Namespace, tmp: Path) -> list[dict[str, Any]]:
    print(
        f"throughput: {args.feeds:,} feeds x {args.items} items, processes {args.procs}",
        flush=True,
    )
    server = Server(args.feeds, args.items)
    rows: list[dict[str, Any]] = []
    try:
        for n in args.procs:
            d = tmp / f"procs-{n}"
            shared = SharedRedis(d / "shared-redis")
            try:
                plan = (
                    ("cold", "10m", None, args.cold_timeout),
                    ("steady", f"{args.interval}s", args.window, 0.0),
                    ("max", f"{args.max_interval}s", args.max_window, 0.0),
                )
                for name, interval, window, timeout in plan:
                    cfg = write_config(d, server, args.feeds, interval, redis=shared.url, http=True)
                    secs = 600.0 if interval == "10m" else float(interval.removesuffix("s"))
                    row = stage(
                        name,
                        n,
                        cfg,
                        server,
                        shared,
                        feeds=args.feeds,
                        interval=secs,
                        window=window,
                        timeout=timeout,
                    )
                    rows.append(row)
                    print("  " + row_line(row), flush=True)
                    if "error" in row:
                        print("    " + row["error"], flush=True)
            finally:
                shared.close()
    finally:
        server.close()
    return rows


# -- report -----------------------------------------------------------------------------------

HEAD = (
    f"{'stage':<6} {'procs':>5} {'int s':>5} {'window s':>8} {'polls':>6} {'polls/s':>8} "
    f"{'server':>6} {'per process':<15} {'pref':>4} {'<claim':>6} {'<1I':>4} {'gap/I':>5} "
    f"{'min s':>5} {'skipped l/f/w':>15} {'RSS MB':>6} {'CPU s':>5} {'other':>5} exit"
)


def row_line(r: dict[str, Any]) -> str:
    skips = "/".join(str(r["skipped_whole_run"][k]) for k in SKIPPED)  # leased/fresh/websub
    gap, low, pref = r["mean_gap_over_interval"], r["min_gap_s"], r["preferred_share"]
    return (
        f"{r['stage']:<6} {r['procs']:>5} {r['interval_s']:>5g} {r['window_s']:>8.1f} "
        f"{r['polls']:>6} {r['polls_per_s'] or 0:>8.1f} {r['server']['requests']:>6} "
        f"{'/'.join(map(str, r['per_process'])):<15} "
        f"{'' if pref is None else f'{pref:.0%}':>4} {r['feeds_twice_within_claim']:>6} "
        f"{r['feeds_twice_within_interval']:>4} {'' if gap is None else f'{gap:.3f}':>5} "
        f"{'' if low is None else f'{low:.2f}':>5} {skips:>15} {r['peak_rss_mb']:>6.0f} "
        f"{r['cpu_s']:>5.1f} {r['other_cpu_s']:>5.1f} {','.join(map(str, r['exit_codes']))}"
    )


def ratios(rows: list[dict[str, Any]]) -> dict[str, float | None]:
    """Per stage: polls/s of the largest fleet over polls/s of one process (the issue's
    comparison; ``max`` is the capacity)."""
    out: dict[str, float | None] = {}
    most = max((r["procs"] for r in rows), default=1)
    for name in dict.fromkeys(r["stage"] for r in rows):
        one = next((r for r in rows if r["stage"] == name and r["procs"] == 1), None)
        many = next((r for r in rows if r["stage"] == name and r["procs"] == most), None)
        if one is None or many is None or most == 1 or not one["polls_per_s"]:
            out[name] = None
        else:
            out[name] = round((many["polls_per_s"] or 0.0) / one["polls_per_s"], 2)
    return out


def memory_lines(m: dict[str, Any]) -> list[str]:
    def roles(d: dict[str, float]) -> str:
        return ", ".join(f"{k} {v:.0f}" for k, v in sorted(d.items(), key=lambda x: -x[1]))

    start = roles(m["rss_at_start_by_role_mb"])
    peak = roles(m["peak_by_role_mb"])
    steady = roles(m["steady_by_role_mb"])
    server = m["server"]["requests"]
    goal = "met" if m["goal_met"] else "MISSED"
    return [
        (
            f"memory, one process, {m['feeds']:,} feeds (RSS summed over the process tree: main, "
            "parse workers, redis-server), MB"
        ),
        (
            f"  after start {m['rss_at_start_mb']:7.1f}  ({start}; PSS {m['pss_at_start_mb']:.0f}; "
            f"{m['polls_done_at_start']} polls done)"
        ),
        f"  peak        {m['peak_rss_mb']:7.1f}  ({peak}; at {m['peak_at_s']} s)",
        (
            f"  steady      {m['steady_rss_mb'] or 0:7.1f}  ({steady}; "
            f"PSS {m['pss_steady_mb']:.0f}; median over {m['steady_window_s']:.0f} s)"
        ),
        (
            f"  first pass  {m['polls']:,} polls {m['outcomes']} in {m['first_pass_s']} s; server "
            f"{server:,} requests; CPU {m['cpu_s']} s; other {m['other_cpu_s']} s"
        ),
        f"  SIGTERM     exit {m['exit_code']} after {m['sigterm_to_exit_s']} s",
        f"  goal <= {RSS_GOAL_MB:.0f} MB (peak and steady): {goal}",
    ]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", choices=["memory", "throughput"], help="run one part")
    p.add_argument("--mem-feeds", type=int, default=10_000)
    p.add_argument("--mem-items", type=int, default=10)
    p.add_argument("--mem-timeout", type=float, default=75.0, help="first pass, seconds")
    p.add_argument("--steady", type=float, default=30.0, help="memory steady window, seconds")
    p.add_argument("--feeds", type=int, default=1000)
    p.add_argument("--items", type=int, default=50)
    p.add_argument("--procs", default="1,3", help="fleet sizes, comma-separated")
    p.add_argument("--interval", type=int, default=10, help="steady stage interval, seconds")
    # Three intervals: a whole number of them counts each feed's polls alike, whatever the phase.
    p.add_argument("--window", type=float, default=30.0, help="steady stage window, seconds")
    p.add_argument("--max-interval", type=int, default=1, help="max stage interval, seconds")
    p.add_argument("--max-window", type=float, default=15.0, help="max stage window, seconds")
    p.add_argument("--cold-timeout", type=float, default=45.0)
    p.add_argument("--quick", action="store_true", help="small sizes, short windows")
    p.add_argument("--out", type=Path)
    p.add_argument("--keep", action="store_true", help="keep the temp dir (daemon logs, configs)")
    args = p.parse_args(argv)
    defaults = vars(p.parse_args([]))
    if args.quick:
        args.mem_feeds, args.steady, args.feeds, args.items = 1000, 5.0, 200, 10
        args.window, args.max_window, args.interval = 12.0, 6.0, 4
    args.procs = [int(x) for x in str(args.procs).split(",") if x.strip()]
    if args.out is None:
        fixed = (k for k in defaults if k not in ("procs", "keep"))
        same = all(getattr(args, k) == defaults[k] for k in fixed)
        full = same and args.procs == [1, 3]
        args.out = RESULTS / ("scale.json" if full else "scale-partial.json")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    started = datetime.now(UTC)
    t0 = time.perf_counter()
    info = machine()
    mem: dict[str, Any] | None = None
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="fw-bench-scale-", ignore_cleanup_errors=True) as td:
        if args.only in (None, "memory"):
            mem = memory(args, Path(td) / "memory")
            print("\n".join(memory_lines(mem)), flush=True)
        if args.only in (None, "throughput"):
            rows = throughput(args, Path(td) / "throughput")
        if args.keep:
            kept = Path(tempfile.mkdtemp(prefix="fw-bench-scale-kept-"))
            subprocess.run(["cp", "-r", f"{td}/.", str(kept)], check=False)
            print(f"kept logs and configs in {kept}")
    info["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    print()
    if mem is not None:
        print("\n".join(memory_lines(mem)))
    table = [HEAD, "-" * len(HEAD), *map(row_line, rows)] if rows else []
    if rows:
        print(f"\nthroughput, {args.feeds:,} local feeds x {args.items} items, one shared Redis:")
        print("\n".join(table))
        print(
            "server: feed requests in the window. pref: share of the window's polls made by "
            "the process the feed prefers. <claim: feeds polled by two processes less than a "
            "claim apart (whole run; log-arrival noise at 1 s); <1I: feeds polled twice less "
            "than 1 interval apart (by any process). gap/I: mean gap between two polls of a "
            "feed / interval; min s: the smallest (window). skipped l/f/w: leased/fresh/websub "
            "ticks (whole run, /metrics). other: busy CPU s of the rest of the machine."
        )
        ratio = ratios(rows)
        print(
            f"polls/s, {max(args.procs)} processes over 1: "
            + ", ".join(f"{k} {'n/a' if v is None else f'{v:.2f}x'}" for k, v in ratio.items())
        )
    result = {
        "benchmark": "scale",
        "started": started.isoformat(timespec="seconds"),
        "duration_s": round(time.perf_counter() - t0, 1),
        "machine": info,
        "versions": versions(),
        # The tree the daemons ran (PYTHONPATH=<another checkout> runs another version).
        "feedwatch_source": str(Path(daemon.__file__).resolve().parent.parent),
        "params": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "memory": mem,
        "throughput": rows,
        "polls_per_s_ratio": ratios(rows) if rows else {},
        "table": table,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"\nwrote {args.out.relative_to(REPO) if args.out.is_relative_to(REPO) else args.out}")
    failed = (mem is not None and "error" in mem) or any("error" in r for r in rows)
    return 1 if failed else 0  # a missed goal is a figure, not a failure (as in poll.py)


if __name__ == "__main__":
    sys.exit(main())
