#!/bin/bash
# The v2 stream (LEGION, 10 x 20k, efficient recipe) with --observation-layout gripper, from the committed code
# (worktree /tmp/gripstream at the commit in commit.txt). Resumable: ./run.sh --resume
cd /tmp/gripstream
export MUJOCO_GL=egl PYTHONPATH=/tmp/gripstream
exec nice -n 5 /work/main/.venv/bin/legion train --method legion --order paper --observation-layout gripper --steps-per-task 20000 --eval-every 20000 --eval-episodes 10 --dpmm-first 10000 --encoder-every 10 --seed 0 --out /work/runs/stream-gripper/legion "$@"
