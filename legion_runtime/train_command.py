"""`legion train`: the command-line options of the lifelong trainer (:func:`legion_policy.trainer.train`).

The options live here, apart from the trainer, so that `legion --help` and option errors answer without importing
torch; the trainer is imported when training starts.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from legion_language.tasks import FEW_SHOT_STREAM, PAPER_STREAM

console = Console(soft_wrap=True)  # messages stay on one line (greppable)


def split_list(text: str) -> list[str]:
    """``"a, b,,c"`` -> ``["a", "b", "c"]``: a comma-separated option's items, blanks dropped."""
    return [t.strip() for t in text.split(",") if t.strip()]


def train(
    protocol: Annotated[str, typer.Option(
        help="'stream' (the options below) or 'few-shot' (the paper's recall protocol: 5 tasks, 3 loops, FIFO replay "
             "of 3 visits; overrides --tasks, --loops, --replay, --fifo-visits).")] = "stream",
    tasks: Annotated[str, typer.Option(help="Comma-separated Meta-World v3 tasks (default: the paper's ten).")] = ",".join(PAPER_STREAM),
    order: Annotated[str, typer.Option(help="paper | given | reverse | random (seeded).")] = "given",
    loops: Annotated[int, typer.Option(help="Passes over the ordered tasks (few-shot protocol: 3).")] = 1,
    revisit: Annotated[str, typer.Option(
        help="Comma-separated tasks trained once more after the loops, in this order. With --resume on a finished "
             "run: more revisits extend it, its visits so far kept.")] = "",
    method: Annotated[str, typer.Option(help="legion | finetune | perfect-memory | reservoir | agem | ewc | packnet | multitask.")] = "legion",
    replay: Annotated[str, typer.Option(help="unbounded | fifo | reservoir (default: the method's).")] = "",
    fifo_visits: Annotated[int, typer.Option(help="Visits a FIFO replay keeps (few-shot protocol: 3).")] = 1,
    reservoir_capacity: Annotated[int, typer.Option(help="Transitions a reservoir replay keeps (0: one visit).")] = 0,
    placement: Annotated[str, typer.Option(help="random (every episode) | fixed (one per task, as the paper's code).")] = "random",
    recipe: Annotated[str, typer.Option(
        help="efficient (the default: the measured sample-efficient "
             "recipe on the deployed KUKA: --robot kuka --control joint --demos models/demos-200 --demo-fraction 0.5 "
             "--bc-weight 0.4 --critic-layer-norm --utd 2; docs/sample-efficiency.md) | paper (pure RL on "
             "Meta-World's Sawyer, as the paper). Options given explicitly "
             "override the recipe's.")] = "efficient",
    robot: Annotated[str | None, typer.Option(help="sawyer (Meta-World's) | kuka (iiwa 14 + Robotiq 2F-85 in the same tasks). Default: the recipe's.")] = None,
    control: Annotated[str | None, typer.Option(help="KUKA control: mocap (Meta-World's weld, fast) | joint (Sim2Real + IK, as deployed). Default: the recipe's.")] = None,
    layout: Annotated[str, typer.Option(help="metaworld (Meta-World's placements and hand starts) | table (KUKA, the long-horizon table's tasks where the table puts them; demonstrations recorded with `legion demos --layout table`).")] = "metaworld",
    observation_layout: Annotated[str, typer.Option(help="paper (the paper's 12-d observation) | gripper (the same with the 2F-85's opening in slot 6; the recipe's demonstrations are then models/demos-200-gripper, recorded with `legion demos --observation-layout gripper`; docs/lifelong.md).")] = "paper",
    steps_per_task: Annotated[int, typer.Option(help="Environment steps per task visit.")] = 60_000,
    eval_every: Annotated[int, typer.Option(help="Evaluate every task every N steps.")] = 10_000,
    eval_episodes: Annotated[int, typer.Option(help="Deterministic episodes per task and evaluation.")] = 10,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    out: Annotated[Path, typer.Option(help="Run folder: checkpoint/, state.pt, metrics.json, metrics.csv, train_log.jsonl, tb/.")] = Path("models/legion-run"),
    resume: Annotated[bool, typer.Option(help="Continue the run in --out from its state.pt.")] = False,
    embedding_model: Annotated[Path | None, typer.Option(help="Local transformers folder of the language model (default: all-MiniLM-L6-v2).")] = None,
    random_steps: Annotated[int, typer.Option(help="Random-action steps at the start of each visit.")] = 1500,
    dpmm_first: Annotated[int, typer.Option(help="Local step of each visit at which the knowledge space is first refitted.")] = 10_000,
    dpmm_every: Annotated[int, typer.Option(help="Refit the knowledge space every N steps after that (official code: 100k).")] = 100_000,
    encoder_every: Annotated[int, typer.Option(help="One encoder/decoder update every N env steps.")] = 50,
    agent_preset: Annotated[str, typer.Option(
        help="'default' (2 x --hidden layers, batch --batch-size) or 'paper' (the official code's networks: "
             "encoder 3 x 400, SAC 3 x 300 with LayerNorm + tanh, batch 512; --hidden/--batch-size ignored).")] = "default",
    batch_size: Annotated[int, typer.Option(help="SAC and encoder batch size (paper: 512).")] = 128,
    hidden: Annotated[int, typer.Option(help="Hidden-layer width of every network (paper: 300/400).")] = 256,
    dpmm_deletes: Annotated[bool, typer.Option(help="Enable the knowledge space's delete move (official code: off).")] = False,
    utd: Annotated[float | None, typer.Option(help="SAC updates per env step (0.5: one update every 2 steps; paper: 1). Default: the recipe's.")] = None,
    critic_layer_norm: Annotated[bool | None, typer.Option(
        help="LayerNorm after every hidden layer of the critics (RLPD; pairs with --utd > 1). Off in the paper. "
             "Default: the recipe's.")] = None,
    bc_weight: Annotated[float | None, typer.Option(
        help="Behaviour cloning of the demonstrations in the actor loss, lambda (TD3+BC's form; 0.4 = its alpha "
             "2.5; 0: off, as the paper). Needs --demos. Default: the recipe's.")] = None,
    actor_average: Annotated[float, typer.Option(
        help="Rate of a Polyak average of the actor's weights (e.g. 2e-4), the actor that is evaluated and "
             "deployed; the trained actor collects (0: off, as the paper). LEGION only.")] = 0.0,
    packnet_retrain_steps: Annotated[int, typer.Option(
        help="PackNet: SAC updates on the kept weights after each pruning (-1: a tenth of --steps-per-task).")] = -1,
    num_envs: Annotated[int, typer.Option(help="Environments stepped side by side (Gymnasium vector env; same update-to-data ratio).")] = 1,
    vector_env: Annotated[str, typer.Option(help="sync (one process) | async (one worker process per environment).")] = "sync",
    torch_threads: Annotated[int, typer.Option(help="PyTorch threads (0: all cores; 1 suits parallel sweeps).")] = 1,
    reward_v1: Annotated[str, typer.Option(
        help="Comma-separated tasks trained on Meta-World's dense v1 reward (x0.01) instead of v2, e.g. reach-v3.")] = "",
    demos: Annotated[Path | None, typer.Option(
        help="Folder of demonstration files (`legion demos`): each visit's tasks' demonstrations go into the replay "
             "at its start (default: the recipe's; paper: none, pure RL).")] = None,
    demo_fraction: Annotated[float | None, typer.Option(
        help="Share of every SAC batch drawn from the demonstrations, the rest from online data (RLPD: 0.5; "
             "0: uniform over all stored transitions). Needs --demos. Default: the recipe's.")] = None,
    device: Annotated[str, typer.Option(help="cpu | cuda | auto (CUDA when present) for the networks.")] = "cpu",
) -> None:
    """Train LEGION (or a baseline) on a stream of Meta-World v3 tasks, one after another."""
    from legion_policy.agent import AgentConfig
    from legion_policy.train_config import RECIPES
    from legion_policy.trainer import TrainConfig, TrainConfigError, train as run_training

    if recipe not in RECIPES:
        console.print(f"[red]error:[/red] --recipe must be one of {', '.join(RECIPES)}, got {recipe!r}")
        raise typer.Exit(2)
    given = {"robot": robot, "control": control, "utd": utd, "critic_layer_norm": critic_layer_norm,
             "bc_weight": bc_weight, "demos": demos, "demo_fraction": demo_fraction}
    chosen = {k: RECIPES[recipe][k] if v is None else v for k, v in given.items()}
    robot, control, utd, critic_layer_norm, bc_weight, demos, demo_fraction = chosen.values()
    if given["demos"] is None and demos and observation_layout != "paper":
        demos = Path(f"{demos}-{observation_layout}")  # the recipe's demonstrations, recorded with that observation

    if agent_preset == "paper":
        agent = AgentConfig.paper(dpmm_deletes=dpmm_deletes, critic_layer_norm=critic_layer_norm,
                                  bc_weight=bc_weight, actor_average=actor_average)  # embed_dim: the model's
    elif agent_preset == "default":
        agent = AgentConfig(batch_size=batch_size, hidden=hidden, dpmm_deletes=dpmm_deletes,
                            critic_layer_norm=critic_layer_norm, bc_weight=bc_weight, actor_average=actor_average)
    else:
        console.print(f"[red]error:[/red] --agent-preset must be 'default' or 'paper', got {agent_preset!r}")
        raise typer.Exit(2)
    cfg = TrainConfig(tasks=split_list(tasks), order=order, loops=loops, revisits=split_list(revisit), method=method,
                      replay=replay or None,
                      fifo_visits=fifo_visits, reservoir_capacity=reservoir_capacity or None, placement=placement,
                      robot=robot, control=control, layout=layout, observation_layout=observation_layout,
                      steps_per_task=steps_per_task, eval_every=eval_every, eval_episodes=eval_episodes, seed=seed,
                      out=str(out), embedding_model=str(embedding_model) if embedding_model else None,
                      random_steps=random_steps, dpmm_first=dpmm_first, dpmm_every=dpmm_every,
                      encoder_every=encoder_every, updates_per_step=utd, agent=agent, reward_v1_tasks=split_list(reward_v1),
                      num_envs=num_envs, vector_env=vector_env, torch_threads=torch_threads,
                      demos=str(demos) if demos else None, demo_fraction=demo_fraction or None, device=device,
                      packnet_retrain_steps=None if packnet_retrain_steps < 0 else packnet_retrain_steps)
    if protocol == "few-shot":
        cfg = replace(cfg, tasks=list(FEW_SHOT_STREAM), loops=3, replay="fifo", fifo_visits=3)
    elif protocol != "stream":
        console.print(f"[red]error:[/red] --protocol must be 'stream' or 'few-shot', got {protocol!r}")
        raise typer.Exit(2)
    try:
        metrics = run_training(cfg, resume=resume)
    except TrainConfigError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    console.print(f"final success: {metrics.get('final_success')}  (metrics in {out / 'metrics.json'})")
