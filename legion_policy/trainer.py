"""Lifelong training on a stream of Meta-World v3 tasks (``legion train``): LEGION and its baselines.

Protocol (../shared/docs/method.md sections 1 and 4; issue 4):

* a stream of visits: the tasks in the paper's easy-to-hard order (default), reversed, shuffled by a
  seed, or as given, repeated ``loops`` times (the few-shot recall protocol uses 3 loops);
* ``steps_per_task`` environment steps per visit, 150-step episodes, placements randomised every
  episode (``placement="fixed"``: one placement per task, as the paper's code);
* one replay buffer across visits: unbounded (the paper's code), FIFO over the last N visits, or a
  reservoir (:mod:`legion_policy.replay`); optimiser state is reset at each visit;
* every ``eval_every`` steps and at the end of each visit every task of the stream is evaluated with
  deterministic actions (``eval_episodes`` episodes, success if any step succeeds);
* methods on the same SAC backbone: ``legion``; ``finetune`` (SAC, FIFO-1 replay), ``perfect-memory``
  (SAC, unbounded), ``reservoir`` (SAC, reservoir), ``agem``, ``ewc``, ``packnet`` (:mod:`legion_policy.baselines`);
  ``multitask`` trains SAC on all tasks at once (episodes cycle through the tasks) as the upper reference.

LEGION's language input is the embedding of one phrasing of the task per episode, drawn from the task
library; the language decoder reconstructs the canonical description (phrasings[0]).

Outputs in ``out``: ``checkpoint/`` (LEGION: the deployable checkpoint after each visit),
``state.pt`` (everything needed to resume, rewritten atomically at every evaluation), ``metrics.json``
and ``metrics.csv`` (curve, success matrix and the paper's metrics, :mod:`legion_policy.metrics`),
``train_log.jsonl``, TensorBoard scalars in ``tb/`` and, for LEGION, encoder means after each visit
in ``latents/`` (t-SNE figures of ``legion report``). A killed run restarts from ``state.pt`` with
``resume=True``, losing at most one evaluation interval.

The loop below reads as CleanRL's SAC does: collect, update, then the periodic phases (refit the knowledge space,
log, evaluate and save). Each phase is a method of :class:`legion_policy.train_run.TrainingRun`, which holds the
run's state; the settings are :class:`legion_policy.train_config.TrainConfig`.
"""
from __future__ import annotations

import time

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from legion_policy.allocator import keep_freed_memory
from legion_policy.progress import ProgressMeter
from legion_language.tasks import FEW_SHOT_STREAM, PAPER_STREAM  # noqa: F401 - streams re-exported
from legion_policy.train_config import (METHODS, ORDERS, TrainConfig, TrainConfigError,  # noqa: F401 - the API
                                        few_shot_protocol)
from legion_policy.train_run import (STATE, TrainingRun, add_demonstrations, console, evaluate,  # noqa: F401
                                     load_stream_demonstrations, make_agent, task_cycle_env)


def train(cfg: TrainConfig, resume: bool = False) -> dict:
    """Run the lifelong training described in the module docstring.

    Args:
        cfg: settings.
        resume: continue from ``out/state.pt`` if it exists (the settings must match the saved ones).

    Returns:
        The metrics dict also written to ``out/metrics.json``.

    Raises:
        TrainConfigError: invalid settings, a task the task library does not know, or a resume whose
            settings differ from the saved run's.
    """
    keep_freed_memory()  # no page faults on the update's buffers (legion_policy/allocator.py)
    run = TrainingRun(cfg)
    if resume:
        run.restore()
    run.open_logs()
    # Progress: a live bar on a terminal, else (output to a file) a plain line every minute or 5 % of the run
    meter = ProgressMeter(run.steps_per_visit * len(run.visits), done=run.total)
    live = console.is_interactive
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[speed]}"), console=console, disable=not live)
    with progress:
        bar = progress.add_task("training", total=meter.total, completed=run.total, speed=meter.speed())

        def show(what: str) -> None:
            progress.update(bar, completed=meter.done, description=what, speed=meter.speed())
            if not live and meter.line_due():  # one unwrapped, greppable line
                console.print(f"[{time.strftime('%H:%M:%S')}] {meter.line(what)}", markup=False, highlight=False)

        for v in range(run.visit, len(run.visits)):
            what = f"visit {v + 1}/{len(run.visits)} {run.visits[v]}"
            show(what)
            with meter.paused():  # not training time: the rate leaves it out
                venv, obs, _ = run.start_visit(v)
            t0, start_local, credit = time.time(), run.local, 0.0
            while run.local < run.steps_per_visit:
                prev = run.local
                obs = run.collect(venv, obs)
                if run.learning():
                    credit += cfg.updates_per_step * cfg.num_envs  # the update-to-data ratio of one env
                    credit = run.update(credit, _crossings(prev, run.local, cfg.encoder_every))
                    meter.update(run.total)
                else:  # random actions without updates: far faster than what follows, so not its rate
                    meter.restart(run.total)
                if _crossings(prev, run.local, cfg.dpmm_every, first=cfg.dpmm_first):
                    with meter.paused():
                        run.refit_knowledge_space()
                if _crossings(prev, run.local, cfg.log_every):
                    run.log_losses((run.local - start_local) / (time.time() - t0))  # since the visit (re)started
                if _crossings(run.total - cfg.num_envs, run.total, cfg.eval_every) and run.local != run.steps_per_visit:
                    with meter.paused():
                        run.evaluate()
                        run.save_state(v, run.local)
                show(what)
            with meter.paused():
                run.end_visit(venv)
    run.close()
    return run.finished_metrics()


def _crossings(before: int, after: int, every: int, first: int | None = None) -> int:
    """How many of the steps ``first, first + every, ...`` (default ``every, 2 every, ...``) lie in (before, after]."""
    first = every if first is None else first
    count = lambda x: 0 if x < first else (x - first) // every + 1  # noqa: E731
    return count(after) - count(before)
