#!/usr/bin/env bash
# Set up (if needed) and run the main job: a spoken command, through the whole LEGION stack, to a simulated
# KUKA iiwa 14 + Robotiq 2F-85 in MuJoCo. Extra arguments go to `legion run` (e.g. --text "close the drawer");
# without --wav or --text, the shipped "reach the goal" WAV is the command (options such as --checkpoint are kept).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export MUJOCO_GL=${MUJOCO_GL:-egl}
has_command=0
for arg in "$@"; do
  case "$arg" in --wav|--wav=*|--text|--text=*) has_command=1 ;; esac
done
if [ "$has_command" -eq 0 ]; then set -- --wav legion_language/data/commands/reach_the_goal.wav "$@"; fi
exec .venv/bin/legion run "$@"
