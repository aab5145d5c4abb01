#!/usr/bin/env bash
cd <code at commit.txt>
export PYTHONPATH=<code at commit.txt> MUJOCO_GL=egl OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
exec taskset -c 0 nice -n 10 .venv/bin/legion train --method perfect-memory --order paper --observation-layout gripper \
  --demos /work/main/models/demos-200-gripper-dart --steps-per-task 20000 --eval-every 20000 --eval-episodes 10 \
  --seed 0 --out /work/runs/dart/perfect-memory "$@"
