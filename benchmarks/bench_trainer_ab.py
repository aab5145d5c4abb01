"""The SAC training loop of two versions of this code, alternating: is a change faster in the loop, not only alone?

Runs ``legion train --method finetune`` on reach-v3 (what ``bench_vs_sb3.py`` times as "ours": 2 x 256 networks,
batch 128, one update per env step after 1,500 random steps, ``--num-envs`` sync environments, one torch thread) from
a checkout of another commit and from this one, alternating ``--repeats`` times, each in its own process with that
checkout first on ``PYTHONPATH``. Prints env-steps/s of each run and the medians. Alternating matters: on a shared
machine the speed moves by more between runs than a small change gains (docs/performance.md, 2026-12-08).

    git worktree add /tmp/before <commit> --detach
    .venv/bin/python benchmarks/bench_trainer_ab.py /tmp/before [--steps 6000] [--repeats 4]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHILD = """
import argparse, sys, torch
sys.path.insert(0, sys.argv[1] + "/benchmarks")
import bench_vs_sb3
torch.set_num_threads(1)
args = argparse.Namespace(steps=int(sys.argv[2]), episodes=1, seed=0, num_envs=int(sys.argv[3]), vector_env="sync",
                          threads=1)
print("RATE", bench_vs_sb3.run_ours(args)[0])
"""


def rate(code: Path, steps: int, num_envs: int) -> float:
    env = {**os.environ, "PYTHONPATH": str(code), "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
    out = subprocess.run([sys.executable, "-c", CHILD, str(code), str(steps), str(num_envs)], capture_output=True,
                         text=True, env=env, cwd="/tmp")
    lines = [line for line in out.stdout.splitlines() if line.startswith("RATE")]
    if out.returncode != 0 or not lines:
        raise SystemExit(f"the run from {code} failed:\n{out.stderr[-2000:]}")
    return float(lines[-1].split()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path, help="checkout of the other version (e.g. a git worktree)")
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--num-envs", type=int, default=4)
    args = parser.parse_args()
    if not (args.before / "legion_policy").is_dir():
        raise SystemExit(f"{args.before} is not a checkout of this project (no legion_policy/ in it)")
    runs: dict[str, list[float]] = {"before": [], "this": []}
    for r in range(args.repeats):
        for name, code in (("before", args.before.resolve()), ("this", ROOT)):
            runs[name].append(rate(code, args.steps, args.num_envs))
            print(f"repeat {r + 1}, {name}: {runs[name][-1]:.1f} env-steps/s", flush=True)
    before, this = statistics.median(runs["before"]), statistics.median(runs["this"])
    print(f"median env-steps/s: before {before:.1f}, this {this:.1f}, ratio {this / before:.3f}")


if __name__ == "__main__":
    main()
