"""The test suite on a loaded host (``make test-under-load``).

CI hosts are busy; a test whose result depends on how fast the host runs is a bug. This
starts CPU-burning processes (two by default, as many as a 2-core CI host has cores),
then runs tests/test_vmscan.py ``--vmscan`` times and the whole suite ``--suite`` times
(on every core, as ``make test`` runs it) beside them, each in a fresh pytest process,
and prints how many runs passed. It exits 1 unless every run passed.

    python tests/under_load.py [--burners 2] [--vmscan 20] [--suite 5]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BURN = "while True: pass"


def runs(label: str, args: list[str], times: int) -> int:
    """Run pytest with ``args`` ``times`` times; the number of runs that passed."""
    passed = 0
    for n in range(1, times + 1):
        start = time.monotonic()
        r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                            *args], cwd=ROOT, capture_output=True, text=True)
        passed += r.returncode == 0
        last = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else "(no output)"
        print(f"{label} {n}/{times}: {'ok ' if r.returncode == 0 else 'FAILED'} "
              f"{time.monotonic() - start:6.1f}s  {last}", flush=True)
        if r.returncode:
            print(r.stdout[-4000:] + r.stderr[-2000:], flush=True)
    return passed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--burners", type=int, default=2)
    parser.add_argument("--vmscan", type=int, default=20)
    parser.add_argument("--suite", type=int, default=5)
    args = parser.parse_args()
    burners = [subprocess.Popen([sys.executable, "-c", BURN]) for _ in range(args.burners)]
    try:
        vmscan = runs("tests/test_vmscan.py", ["tests/test_vmscan.py"], args.vmscan)
        suite = runs("suite", ["-n", "auto", "--dist", "worksteal"], args.suite)
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()
    print(f"with {args.burners} CPU burners: tests/test_vmscan.py passed {vmscan} of "
          f"{args.vmscan} runs, the whole suite {suite} of {args.suite}")
    return 0 if (vmscan, suite) == (args.vmscan, args.suite) else 1


if __name__ == "__main__":
    sys.exit(main())
