"""How fast the `legion` command answers when it has nothing heavy to do: help, the command list, input errors.

Target (issue 15): under 1 s each on this 2-core machine. Each case runs the console script in a fresh process,
as a user does; the figure is the wall time from start to exit, median and max over --repeats runs.

Usage: .venv/bin/python benchmarks/bench_cli.py [--repeats 5]
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LEGION = str(ROOT / ".venv" / "bin" / "legion")
CASES = {
    "legion --help": ["--help"],
    "legion train --help": ["train", "--help"],
    "legion commands": ["commands"],
    "legion run (no command: exit 2)": ["run"],
    "legion run --text 'wash the dishes' (unknown: exit 3)": ["run", "--text", "wash the dishes"],
    "legion run --text 'clean the table' (skills missing: exit 3)": ["run", "--text", "clean the table"],
    "legion run --checkpoint no/such (exit 2)": ["run", "--text", "reach the goal", "--checkpoint", "no/such"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"{'case':60s} {'median':>8s} {'max':>8s}  exit")
    for name, argv in CASES.items():
        times, code = [], None
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            code = subprocess.run([LEGION, *argv], cwd=ROOT, capture_output=True).returncode
            times.append(time.perf_counter() - t0)
        print(f"{name:60s} {statistics.median(times):7.2f}s {max(times):7.2f}s  {code}")


if __name__ == "__main__":
    main()
