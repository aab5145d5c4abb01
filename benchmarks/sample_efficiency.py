"""Sample efficiency of the SAC options on the deployed KUKA: learning curves of each option against the paper's
setting, on the same tasks, seeds and evaluation (issue 18).

Every (task, variant, seed) is one single-task LEGION run, ``legion train --robot kuka --control joint`` (the
deployed joint chain: Sim2Real and IK in the loop, randomised placements), evaluated every ``--eval-every`` steps
on ``--eval-episodes`` deterministic episodes. The variants:

* ``paper``: pure RL as the paper (one SAC update per env step, no demonstrations);
* ``demos``: the reference controllers' demonstrations (``models/demos``) in the replay, half of every batch drawn
  from them (RLPD's symmetric sampling, Ball et al. 2023);
* ``ln-utd``: LayerNorm critics with two updates per env step (RLPD's critic, a higher update-to-data ratio);
* ``combined``: both;
* ``demos-bc``: ``demos`` plus behaviour cloning of the demonstrations in the actor loss (TD3+BC's form,
  ``bc_weight`` 0.4 = its alpha 2.5);
* ``combined-bc``: all of them.

Runs go to ``--out`` (keep it outside the clone) and resume from their ``state.pt``: start the same command again
in a later session to continue. ``--report`` reads whatever runs exist and writes the figures (success vs env steps
and vs wall time, mean over seeds) and a JSON summary (steps and wall time to reach 0.9, final success)::

    .venv/bin/python benchmarks/sample_efficiency.py --out /work/runs/sample-efficiency --steps 30000 --jobs 2
    .venv/bin/python benchmarks/sample_efficiency.py --out /work/runs/sample-efficiency --report \
        --json benchmarks/results/sample_efficiency.json --figures docs/media
"""
from __future__ import annotations

import argparse
import copy
import json
from dataclasses import replace
from pathlib import Path

import numpy as np

TASKS = ("button-press-topdown-v3", "push-v3", "pick-place-v3")
DEMOS = Path(__file__).resolve().parents[1] / "models" / "demos"
#: variant -> (TrainConfig fields, AgentConfig fields)
VARIANTS: dict[str, tuple[dict, dict]] = {
    "paper": ({}, {}),
    "demos": ({"demos": str(DEMOS), "demo_fraction": 0.5}, {}),
    "ln-utd": ({"updates_per_step": 2.0}, {"critic_layer_norm": True}),
    "combined": ({"demos": str(DEMOS), "demo_fraction": 0.5, "updates_per_step": 2.0}, {"critic_layer_norm": True}),
    "demos-bc": ({"demos": str(DEMOS), "demo_fraction": 0.5}, {"bc_weight": 0.4}),
    "combined-bc": ({"demos": str(DEMOS), "demo_fraction": 0.5, "updates_per_step": 2.0},
                    {"critic_layer_norm": True, "bc_weight": 0.4}),
}
SUCCESS_GOAL = 0.9


def configs(args):
    """One TrainConfig per (task, variant, seed)."""
    from legion_policy.agent import AgentConfig
    from legion_policy.trainer import TrainConfig

    base = TrainConfig(robot="kuka", control="joint", steps_per_task=args.steps, eval_every=args.eval_every,
                       eval_episodes=args.eval_episodes, encoder_every=10, dpmm_first=min(10_000, args.steps),
                       dpmm_every=50_000, torch_threads=1, log_every=1000, agent=AgentConfig(hidden=256, batch_size=128))
    out = []
    for seed in args.seeds:  # seed-major: a study cut short still has every (task, variant) at the first seed
        for task in args.tasks:
            for variant in args.variants:
                fields, agent_fields = VARIANTS[variant]
                if "demos" in fields and args.demos:
                    fields = {**fields, "demos": str(args.demos)}
                agent = replace(copy.deepcopy(base.agent), **agent_fields)
                cfg = replace(base, tasks=[task], seed=seed, agent=agent,
                              out=str(args.out / task / f"{variant}-s{seed}"), **fields)
                cfg.validate()
                out.append(cfg)
    return out


def curves(out: Path) -> dict:
    """{task: {variant: [(steps (E,), wall s (E,), success (E,)) per seed]}} of the runs under ``out``."""
    found: dict = {}
    for metrics in sorted(out.glob("*/*-s*/metrics.json")):
        task, run = metrics.parent.parent.name, metrics.parent.name
        variant = run.rsplit("-s", 1)[0]
        curve = json.loads(metrics.read_text())["curve"]
        found.setdefault(task, {}).setdefault(variant, []).append(
            (np.array([r["step"] for r in curve]), np.array([r["elapsed_s"] for r in curve]),
             np.array([r["success"][task] for r in curve])))
    return found


def first_reach(x: np.ndarray, success: np.ndarray, goal: float = SUCCESS_GOAL) -> float | None:
    """The first x at which success >= goal (None: never)."""
    hit = np.flatnonzero(success >= goal)
    return float(x[hit[0]]) if len(hit) else None


def report(found: dict, figures: Path | None) -> dict:
    """Print a table per task and variant; draw success vs env steps and vs wall time; return the summary."""
    summary = {}
    for task, variants in sorted(found.items()):
        print(task)
        print(f"  {'variant':10s} seeds  final success   env steps to {SUCCESS_GOAL}   wall s to {SUCCESS_GOAL}   "
              f"steps run  wall s")
        summary[task] = {}
        for variant, runs in variants.items():
            final = [float(s[-1]) for _, _, s in runs]
            to_steps = [first_reach(st, s) for st, _, s in runs]
            to_wall = [first_reach(w, s) for _, w, s in runs]
            summary[task][variant] = {"seeds": len(runs), "final_success": final, "steps_to_goal": to_steps,
                                      "wall_s_to_goal": to_wall, "steps": [int(st[-1]) for st, _, _ in runs],
                                      "wall_s": [float(w[-1]) for _, w, _ in runs]}
            fmt = lambda xs: ", ".join("-" if x is None else f"{x:.0f}" for x in xs)  # noqa: E731
            print(f"  {variant:10s} {len(runs):5d}  {', '.join(f'{f:.2f}' for f in final):14s}  {fmt(to_steps):22s}  "
                  f"{fmt(to_wall):18s}  {fmt([st[-1] for st, _, _ in runs]):9s}  {fmt([w[-1] for _, w, _ in runs])}")
        if figures is not None:
            _figure(task, variants, figures / f"sample_efficiency_{task.removesuffix('-v3')}.png")
    return summary


def _figure(task: str, variants: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
    for k, (variant, runs) in enumerate(sorted(variants.items())):
        colour = f"C{k}"
        for which, ax in ((0, axes[0]), (1, axes[1])):
            for run in runs:
                ax.plot(run[which] / (1000 if which == 0 else 60), run[2], color=colour, alpha=0.35, lw=1)
            n = min(len(r[2]) for r in runs)  # the mean over seeds where all have evaluated
            x = np.mean([r[which][:n] for r in runs], axis=0) / (1000 if which == 0 else 60)
            ax.plot(x, np.mean([r[2][:n] for r in runs], axis=0), color=colour, lw=2,
                    label=f"{variant} ({len(runs)} seed{'s' * (len(runs) > 1)})" if which == 0 else None)
    axes[0].set_xlabel("env steps (thousands)")
    axes[1].set_xlabel("wall time on this machine, shared with other runs (min)")
    axes[0].set_ylabel("success (deterministic episodes)")
    for ax in axes:
        ax.axhline(SUCCESS_GOAL, color="grey", ls=":", lw=1)
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    axes[0].legend(loc="upper left", fontsize=8)
    fig.suptitle(f"{task} on the KUKA, joint mode (deployed chain)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"  figure: {path}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--steps", type=int, default=30_000, help="env steps per run")
    parser.add_argument("--eval-every", type=int, default=5_000)
    parser.add_argument("--eval-episodes", type=int, default=50)
    parser.add_argument("--demos", type=Path, help=f"demonstrations folder of the demo variants (default {DEMOS})")
    parser.add_argument("--jobs", type=int, default=2, help="runs side by side, one CPU each")
    parser.add_argument("--out", type=Path, required=True, help="run folders (outside the clone; runs resume)")
    parser.add_argument("--report", action="store_true", help="only summarise the runs under --out")
    parser.add_argument("--json", type=Path, help="write the summary here")
    parser.add_argument("--figures", type=Path, help="write sample_efficiency_<task>.png here")
    args = parser.parse_args()
    args.tasks, args.variants = args.tasks.split(","), args.variants.split(",")
    args.seeds = [int(s) for s in args.seeds.split(",")]
    if unknown := set(args.variants) - set(VARIANTS):
        parser.error(f"unknown variants {sorted(unknown)}; known: {list(VARIANTS)}")
    if not args.report:
        from legion_policy.sweep import run_sweep

        cfgs = configs(args)
        print(f"{len(cfgs)} runs, {args.jobs} at a time, into {args.out}", flush=True)
        run_sweep(cfgs, num_cpus=args.jobs)
    summary = report(curves(args.out), args.figures)
    if args.json:
        args.json.write_text(json.dumps({"settings": {k: (str(v) if isinstance(v, Path) else v)
                                                      for k, v in vars(args).items()}, "tasks": summary}, indent=2))


if __name__ == "__main__":
    main()
