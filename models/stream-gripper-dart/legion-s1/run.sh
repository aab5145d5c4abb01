#!/bin/bash
# Issue 18: the v2 stream with --observation-layout gripper and DART demonstrations (sigma 0.3) + the actor weight average 2e-4.
# Code: worktree /tmp/dartwt at the commit in commit.txt. Resumable: ./runB-s1.sh --resume
cd /tmp/dartwt
export MUJOCO_GL=egl PYTHONPATH=/tmp/dartwt
exec nice -n 5 /work/main/.venv/bin/legion train --method legion --order paper --observation-layout gripper --demos /tmp/dartwt/models/demos-200-gripper-dart --actor-average 2e-4 --steps-per-task 20000 --eval-every 20000 --eval-episodes 10 --dpmm-first 10000 --encoder-every 10 --seed 1 --out <run folder> "$@"
