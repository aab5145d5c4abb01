"""Run every benchmark of the project in turn and print its figures (docs/performance.md).

Usage: .venv/bin/python benchmarks/run_all.py [name ...]     (names: control_cycle, language, trainer, ...)
Each benchmark is its own script in this folder and can be run alone.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ORDER = ["cli", "control_cycle", "language", "trainer", "sac_update_parts", "knowledge_space", "plant", "safety",
         "perception"]


def main() -> int:
    names = sys.argv[1:] or ORDER
    env = {**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
    failed = []
    for name in names:
        script = HERE / f"bench_{name}.py"
        if not script.is_file():
            print(f"no benchmark {script.name}; known: {', '.join(ORDER)}")
            failed.append(name)
            continue
        print(f"\n=== {script.name} ===", flush=True)
        t0 = time.perf_counter()
        rc = subprocess.call([sys.executable, str(script)], cwd=HERE.parent, env=env)
        print(f"--- {script.name}: exit {rc}, {time.perf_counter() - t0:.0f} s", flush=True)
        if rc:
            failed.append(name)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
