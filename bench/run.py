"""Run every benchmark present (``make bench``): poll, match, delivery, each in its own process.

A benchmark that fails (non-zero exit, or a crash) does not stop the others; the exit status is
non-zero if any failed. Extra arguments are passed to every script, e.g. ``--help``.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = ("poll.py", "match.py", "delivery.py", "story.py", "scale.py")


def main(argv: list[str] | None = None) -> int:
    extra = sys.argv[1:] if argv is None else argv
    present = [HERE / s for s in SCRIPTS if (HERE / s).is_file()]
    if not present:
        print("no benchmark scripts found in bench/", file=sys.stderr)
        return 1
    summary: list[tuple[str, int | None, float]] = []
    for script in present:
        print(f"\n=== bench/{script.name} ===", flush=True)
        t0 = time.perf_counter()
        try:
            code: int | None = subprocess.run(
                [sys.executable, str(script), *extra], cwd=HERE.parent, check=False
            ).returncode
        except OSError as e:
            print(f"could not start {script.name}: {e}", file=sys.stderr)
            code = None
        summary.append((script.name, code, time.perf_counter() - t0))
    print("\n=== summary ===")
    for name, code, secs in summary:
        state = "ok" if code == 0 else f"FAILED (exit {code})"
        print(f"  {name:<12} {secs:7.1f}s  {state}")
    missing = [s for s in SCRIPTS if not (HERE / s).is_file()]
    if missing:
        print(f"  not present: {', '.join(missing)}")
    print(f"results in {HERE / 'results'}")
    return 0 if all(code == 0 for _, code, _ in summary) else 1


if __name__ == "__main__":
    sys.exit(main())
