"""Measuring processes for the benchmarks: CPU seconds, the machine's load, what ran where.

Shared by bench/poll.py and bench/delivery.py (imported as ``proctree``: the scripts' folder is
on ``sys.path`` when they run).

* :func:`cpu_of` — CPU seconds (user + system) of one process and its reaped children;
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


def cpu_of(p: psutil.Process | None) -> float:
    """CPU seconds of ``p`` and of the children it reaped; 0.0 for None or a process gone."""
    if p is None:
        return 0.0
    try:
        t = p.cpu_times()
    except psutil.Error:
        return 0.0
    return float(t.user + t.system + t.children_user + t.children_system)


class CpuMeter:
    """CPU seconds spent by ``procs`` since the meter was made, and by the rest of the machine."""

    def __init__(self, procs: Mapping[str, psutil.Process | None]) -> None:
        self.procs = dict(procs)
        self.start = {k: cpu_of(p) for k, p in self.procs.items()}
        self.busy0, self.t0 = busy_cpu(), time.perf_counter()

    def spent(self) -> dict[str, float]:
        """CPU seconds per named process since the start."""
        return {k: cpu_of(p) - self.start[k] for k, p in self.procs.items()}

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
