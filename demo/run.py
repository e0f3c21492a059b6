"""``make demo``: serve the sample feeds locally and run one feedwatch poll over them.

1. Serve ``demo/feeds/*.xml`` on a free 127.0.0.1 port (``demo/serve.py``), times fresh.
2. Write a config into a fresh temporary folder: the demo feeds (tag ``ukraine``), the repo's
   ``rules/``, a ``console`` notifier, ``backfill: all`` (every item counts as new), ``state_dir``
   inside that folder (so every run starts clean and shows the alerts) and no ``redis`` URL
   (feedwatch runs its embedded Redis there).
3. Run ``feedwatch run --once --config <that file>``: the console notifier writes one JSON
   object per alert on feedwatch's stdout, which this script shows as a few readable lines each
   (``demo/show.py``; ``--format json`` prints the objects as they are). The daemon's own log
   (stderr) goes to ``.feedwatch-demo/feedwatch.log``, whose path and count of warnings are
   printed at the end, so the alerts are not buried among ``delivered`` and ``poll`` lines.
4. Stop the server, remove the folder (unless ``--keep``), exit with feedwatch's exit code.

``demo/expected.yaml`` says which items should alert and which are near misses that must not.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from types import FrameType

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: ``python demo/run.py``
    sys.path.insert(0, str(ROOT))

from demo.serve import serve, stop  # noqa: E402 - needs the repo root on sys.path first
from demo.show import render_line  # noqa: E402

RULES_DIR = ROOT / "rules"
LOG = ROOT / ".feedwatch-demo" / "feedwatch.log"


def _q(text: str) -> str:
    """A YAML scalar for any string (a JSON string is valid YAML)."""
    return json.dumps(text, ensure_ascii=False)


def config_text(
    base_url: str,
    names: list[str],
    *,
    state_dir: Path,
    rules_dir: Path = RULES_DIR,
    console_format: str = "text",
) -> str:
    """The demo's feedwatch config: one feed per demo template, served at ``base_url``."""
    lines = [
        "# Written by demo/run.py for one demo run; deleted afterwards.",
        "# No 'redis:' URL: feedwatch runs its embedded Redis under state_dir.",
        f"state_dir: {_q(str(state_dir))}",
        f"rules: [{_q(str(rules_dir))}]",
        "defaults:",
        "  notify: [console]",
        "  backfill: all",
        "notifiers:",
        f"  console: {{type: console, format: {console_format}}}",
        "feeds:",
    ]
    for name in names:
        lines += [
            f"  - name: {_q(name)}",
            f"    url: {_q(f'{base_url}/{name}.xml')}",
            f"    publisher: {_q(name)}",  # the outlets share example.* domains
            "    tags: [ukraine]",
        ]
    return "\n".join(lines) + "\n"


def feedwatch_command(config: Path) -> list[str]:
    """``feedwatch run --once --config CONFIG`` with this interpreter's feedwatch."""
    script = Path(sys.executable).with_name("feedwatch")
    base = [str(script)] if script.is_file() else [sys.executable, "-m", "daemon"]
    return [*base, "run", "--once", "--config", str(config)]


def _exit_code(returncode: int) -> int:
    """A child's return code as a shell would report it (killed by signal N: 128 + N)."""
    return 128 - returncode if returncode < 0 else returncode


def run_feedwatch(cmd: list[str], log: Path | None = None, *, pretty: bool = False) -> int:
    """Run ``cmd``; forward SIGTERM; return its exit code.

    Its stdout is ours (with ``pretty``, each alert object rendered by demo/show.py); its
    stderr, the daemon's log, goes to ``log`` when given. Ctrl-C reaches the child directly
    (same foreground process group), so SIGINT is not forwarded: that would count as a second
    signal and skip feedwatch's graceful shutdown.
    """
    with contextlib.ExitStack() as stack:
        err = stack.enter_context(log.open("w", encoding="utf-8")) if log is not None else None
        out = subprocess.PIPE if pretty else None
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=err, text=True)
        return _wait(proc, pretty=pretty)


def _wait(proc: subprocess.Popen[str], *, pretty: bool) -> int:
    def forward(signum: int, frame: FrameType | None) -> None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signum)

    previous_term = signal.signal(signal.SIGTERM, forward)
    previous_int = signal.signal(signal.SIGINT, lambda signum, frame: None)
    try:
        if pretty and proc.stdout is not None:
            for line in proc.stdout:
                shown = render_line(line)
                print(line.rstrip("\n") if shown is None else shown + "\n", flush=True)
        return _exit_code(proc.wait())
    finally:
        signal.signal(signal.SIGTERM, previous_term)
        signal.signal(signal.SIGINT, previous_int)


def _stop_leftover_redis(state_dir: Path) -> None:
    """Stop an embedded redis-server feedwatch left running in OUR temporary state_dir.

    feedwatch stops the server it started when it exits normally; this only matters after a
    crash. It only touches a redis-server whose working directory (redis-server changes into its
    ``--dir``) is this run's ``state_dir/redis``.
    """
    redis_dir = state_dir / "redis"
    try:
        pid = int(json.loads((redis_dir / "server.json").read_text())["pid"])
        cwd = os.readlink(f"/proc/{pid}/cwd")
        exe = os.readlink(f"/proc/{pid}/exe")
    except (OSError, ValueError, KeyError, TypeError):
        return
    if Path(exe).name == "redis-server" and Path(cwd) == redis_dir.resolve():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)


def _header(base_url: str, names: list[str], config: Path, cmd: list[str]) -> str:
    rules = sorted(p.name for p in RULES_DIR.glob("*.y*ml")) if RULES_DIR.is_dir() else []
    return "\n".join(
        [
            "feedwatch demo",
            "==============",
            f"Serving {len(names)} sample feeds (news reports about the war in Ukraine, rewrites,",
            f"near misses and unrelated stories) at {base_url}/ :",
            *(f"  {base_url}/{name}.xml" for name in names),
            f"Rules: {RULES_DIR} ({', '.join(rules) or 'no rule files yet'})",
            f"Config: {config}",
            "State: a fresh temporary folder with an embedded Redis, so every run starts clean.",
            "Expect alerts about North Korean troops in Kursk, the Kursk offensive and",
            "weapons for Ukraine; the missile test, humanitarian aid, a lower-case 'us',",
            "sport and weather stay quiet (see demo/expected.yaml).",
            "",
            "$ " + " ".join(cmd),
            "",
        ]
    )


def _log_summary(log: Path) -> str:
    """Where the daemon's log is, and how many warnings and errors it holds."""
    try:
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return f"No log at {log}."
    bad = sum(1 for line in lines if " WARNING " in line or " ERROR " in line)
    rel = log.relative_to(ROOT) if log.is_relative_to(ROOT) else log
    return f"Its log ({len(lines)} lines, {bad} warnings or errors): {rel}"


def main(argv: list[str] | None = None) -> int:
    """Run the demo; return feedwatch's exit code (2 if feedwatch is not installed)."""
    parser = argparse.ArgumentParser(description="Run feedwatch once over local sample feeds.")
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the temporary config and state folder and print its path",
    )
    parser.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help="text: each alert as a few readable lines (default); json: one object per alert",
    )
    args = parser.parse_args(argv)

    if importlib.util.find_spec("daemon.cli") is None:
        print(
            "demo: feedwatch is not installed in this Python (no daemon.cli); "
            "run 'make install' first",
            file=sys.stderr,
        )
        return 2

    work = Path(tempfile.mkdtemp(prefix="feedwatch-demo-"))
    state_dir = work / "state"
    server, base_url = serve(0)
    try:
        names = sorted(server.feeds)
        config = work / "feedwatch.yaml"
        config.write_text(
            config_text(base_url, names, state_dir=state_dir, console_format="json"),
            encoding="utf-8",
        )
        cmd = feedwatch_command(config)
        print(_header(base_url, names, config, cmd), flush=True)
        LOG.parent.mkdir(exist_ok=True)
        code = run_feedwatch(cmd, LOG, pretty=args.format == "text")
        print(f"\nfeedwatch exited with code {code}. {_log_summary(LOG)}", flush=True)
        if code != 0:  # the reason is in the log: show its end
            tail = LOG.read_text(encoding="utf-8", errors="replace").splitlines()[-20:]
            print("\n".join(tail), file=sys.stderr)
        return code
    finally:
        stop(server)
        _stop_leftover_redis(state_dir)
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
