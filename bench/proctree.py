"""Measuring processes for the benchmarks: CPU seconds, the machine's load, what ran where.

Shared by bench/poll.py, bench/delivery.py and bench/scale.py (imported as ``proctree``: the
scripts' folder is on ``sys.path`` when they run).

* :func:`cpu_of` — CPU seconds (user + system) of one process and its reaped children;
* :func:`children`, :func:`tree_sample` — a process tree (a daemon, its parse workers, its
  redis-server): the RSS and role of each process, its CPU seconds kept by pid;
  :func:`cpu_by_role` sums those;
* :func:`busy_cpu` — busy CPU seconds of the whole machine since boot;
* :class:`CpuMeter` — both, from a start: what some processes spent, and what the rest of the
  machine did meanwhile (a benchmark that shares its cores with others says when it was noisy);
* :func:`machine` and :func:`versions` — the facts a results file records beside its figures.
"""

from __future__ import annotations

import os
import platform
import subprocess
import time
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]


def busy_cpu() -> float:
    """Busy CPU seconds of the machine (all cores): everything but idle, iowait and guest time
    (guest time is already counted in user time)."""
    t = psutil.cpu_times()
    return float(
        sum(t)
        - t.idle
        - getattr(t, "iowait", 0.0)
        - getattr(t, "guest", 0.0)
        - getattr(t, "guest_nice", 0.0)
    )


def cpu_of(p: psutil.Process | None, *, reaped: bool = True) -> float:
    """CPU seconds of ``p`` and (``reaped``) of the children it reaped; 0.0 for None or a
    process gone."""
    if p is None:
        return 0.0
    try:
        t = p.cpu_times()
    except psutil.Error:
        return 0.0
    return float(t.user + t.system + (t.children_user + t.children_system if reaped else 0.0))


def children(main: psutil.Process) -> list[psutil.Process]:
    """Every descendant of ``main`` (psutil's recursive scan reads all of /proc); [] if gone."""
    try:
        return list(main.children(recursive=True))
    except psutil.Error:
        return []


def role(p: psutil.Process, main: psutil.Process) -> str:
    """A short role name for a process of ``main``'s tree, for the CPU and RSS breakdowns."""
    if p.pid == main.pid:
        return "main"
    try:
        name, cmd = p.name(), " ".join(p.cmdline())
    except psutil.Error:
        return "?"
    if "resource_tracker" in cmd:
        return "resource_tracker"
    if "forkserver" in cmd or "multiprocessing" in cmd:
        try:
            parent = p.ppid()
        except psutil.Error:
            parent = 0
        # a fork server is the tree's child; workers are its children (or spawned by main)
        return "forkserver" if "forkserver" in cmd and parent == main.pid else "parse worker"
    return str(name)


def tree_sample(
    main: psutil.Process, kids: Iterable[psutil.Process], cpu: dict[int, tuple[str, float]]
) -> list[tuple[str, int]]:
    """Role and RSS (bytes) of ``main`` and each of ``kids`` still there (a process gone is left
    out); updates ``cpu`` (pid -> role, CPU seconds so far: a process keeps its first role)."""
    out: list[tuple[str, int]] = []
    for p in (main, *kids):
        try:
            with p.oneshot():
                rss = int(p.memory_info().rss)
                t = p.cpu_times()
        except psutil.Error:
            continue
        label = cpu[p.pid][0] if p.pid in cpu else role(p, main)
        cpu[p.pid] = (label, t.user + t.system)
        out.append((label, rss))
    return out


def cpu_by_role(cpu: Mapping[int, tuple[str, float]]) -> dict[str, float]:
    """CPU seconds per role, e.g. {"main": 9.1, "parse worker x2": 14.0, "redis-server": 0.8}."""
    roles: dict[str, list[float]] = {}
    for label, secs in cpu.values():
        roles.setdefault(label, []).append(secs)
    return {
        (k if len(v) == 1 else f"{k} x{len(v)}"): round(sum(v), 2) for k, v in sorted(roles.items())
    }


class CpuMeter:
    """CPU seconds spent by ``procs`` since the meter was made, and by the rest of the machine.

    This process (the benchmark), if among ``procs``, counts without the children it reaped:
    those are the processes it measured (a contender, a fleet of daemons), whose CPU the
    caller samples and passes to ``other`` as ``elsewhere``; counting them here too would
    count them twice (and report a noisy machine as idle)."""

    def __init__(self, procs: Mapping[str, psutil.Process | None]) -> None:
        self.procs = dict(procs)
        self.start = {k: self._cpu(p) for k, p in self.procs.items()}
        self.busy0, self.t0 = busy_cpu(), time.perf_counter()

    @staticmethod
    def _cpu(p: psutil.Process | None) -> float:
        return cpu_of(p, reaped=p is None or p.pid != os.getpid())

    def spent(self) -> dict[str, float]:
        """CPU seconds per named process since the start."""
        return {k: self._cpu(p) - self.start[k] for k, p in self.procs.items()}

    def other(self, elsewhere: float = 0.0) -> float:
        """Busy CPU seconds of the machine since the start not spent by ``procs`` nor in
        ``elsewhere`` (CPU seconds the caller accounted for itself), at least 0."""
        ours = sum(self.spent().values()) + elsewhere
        return max(0.0, busy_cpu() - self.busy0 - ours)

    def wall(self) -> float:
        """Seconds since the start."""
        return time.perf_counter() - self.t0


def machine() -> dict[str, Any]:
    """Platform, Python, CPU model and count, memory, load average now."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_model": model,
        "cpus": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def versions(dists: Iterable[str], repo: Path) -> dict[str, str | None]:
    """The installed version of each distribution (None if absent), and ``feedwatch_git``: the
    short commit of ``repo`` (None outside a checkout or without git)."""
    out: dict[str, str | None] = {}
    for dist in dists:
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=repo,
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        out["feedwatch_git"] = commit or None
    except OSError:
        out["feedwatch_git"] = None
    return out
