"""``legion report RUN_DIR...``: compare lifelong runs (methods, seeds) side by side, and draw figures.

Each run folder holds the ``metrics.json`` written by ``legion train``. Runs are grouped by method
(and stream length); each figure of a group is given as mean ± std over its seeds. Figures
(matplotlib, PNG): per-run success-matrix heatmaps, average success P(t) of every run, and a t-SNE of
the knowledge space after each visit coloured by task and by DPMM component (from the
``latents/visit_*.npz`` files LEGION runs write).
"""
from __future__ import annotations

import json
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from legion_policy import metrics as lm

#: Resolution of the PNG figures (dots per inch) and their smallest size in pixels (width, height).
DPI = 120
MIN_PX = (640, 480)
#: t-SNE iterations (scikit-learn's default 1000; after 500 the layout of 1000 latents barely moves).
TSNE_ITERATIONS = 500

#: The paper's Table 1 / Results figures for LEGION (1M steps per task, 5 seeds).
PAPER = {"average_success_final": 0.84, "mean_forgetting": 0.00, "forward_transfer_printed": 0.10}


class ReportError(ValueError):
    """A run folder without a readable metrics.json."""


def load_run(path: str | Path) -> dict:
    """metrics.json of a run folder (with ``path`` added). Raises :class:`ReportError`."""
    path = Path(path)
    try:
        data = json.loads((path / "metrics.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ReportError(f"{path}: no readable metrics.json ({exc}); pass run folders written by `legion train`") from exc
    data["path"] = str(path)
    return data


def reference_aucs(paths) -> dict[str, float]:
    """Per-task mean success during training of single-task reference runs (Continual World's AUC^ref)."""
    aucs: dict[str, list[float]] = {}
    for run in map(load_run, paths):
        for v, task in enumerate(run["visits"]):
            aucs.setdefault(task, []).append(lm.visit_auc(run["curve"], task, v, run["steps_per_task"]))
    return {t: float(np.mean(a)) for t, a in aucs.items()}


def _mean_std(values) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "–"
    return f"{np.mean(values):.2f} ± {np.std(values):.2f}" if len(values) > 1 else f"{values[0]:.2f}"


def summary_rows(runs: list[dict], reference: dict[str, float] | None = None) -> list[dict]:
    """One row per (method, stream) group: mean ± std of the paper's metrics over its runs."""
    groups: dict[tuple, list[dict]] = {}
    for run in runs:
        groups.setdefault((run["method"], len(run["visits"]), run["steps_per_task"]), []).append(run)
    rows = []
    for (method, n_visits, steps), group in groups.items():
        ft_cw = []
        for run in group:
            if reference and method != "multitask":
                cw = lm.forward_transfer_cw(run["curve"], run["visits"][: run.get("visits_completed", 0)],
                                            run["steps_per_task"], reference)
                ft_cw.append(float(np.mean(list(cw.values()))) if cw else None)
        rows.append({
            "method": method, "visits": n_visits, "steps_per_task": steps, "seeds": sorted(r["seed"] for r in group),
            "average_success_final": _mean_std([r.get("average_success_final") for r in group]),
            "mean_forgetting": _mean_std([r.get("mean_forgetting") for r in group]),
            "forward_transfer_printed": _mean_std([r.get("forward_transfer_printed") for r in group]),
            "forward_transfer_cw": _mean_std(ft_cw),
            "few_shot": _mean_std([np.mean(list(r["mean_few_shot_improvement"].values()))
                                   for r in group if r.get("mean_few_shot_improvement")]),
            "wall_time_h": _mean_std([r["wall_time_s"] / 3600 for r in group]),
        })
    return rows


def print_report(runs: list[dict], reference: dict[str, float] | None, console: Console) -> list[dict]:
    rows = summary_rows(runs, reference)
    table = Table(title="lifelong runs (mean ± std over seeds)")
    for col in ("method", "visits x steps", "seeds", "P(T)", "forgetting F", "FT (eq. 3)", "FT (CW)",
                "few-shot f", "wall h"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["method"], f"{r['visits']} x {r['steps_per_task']:,}", ",".join(map(str, r["seeds"])),
                      r["average_success_final"], r["mean_forgetting"], r["forward_transfer_printed"],
                      r["forward_transfer_cw"], r["few_shot"], r["wall_time_h"])
    table.add_row("paper LEGION", "10 x 1,000,000", "0-4", f"{PAPER['average_success_final']:.2f}",
                  f"{PAPER['mean_forgetting']:.2f}", f"{PAPER['forward_transfer_printed']:.2f}", "–", "–", "–")
    console.print(table)
    for run in runs:
        m = run.get("success_matrix")
        if not m:
            continue
        t = Table(title=f"{run['method']} seed {run['seed']}: success matrix ({run['path']})")
        t.add_column("evaluated \\ after")
        for c in m["columns_trained_after"]:
            t.add_column(c.replace("-v3", ""))
        for task, values in zip(m["rows_evaluated_task"], m["values"]):
            t.add_row(task.replace("-v3", ""), *[f"{v:.1f}" for v in values])
        console.print(t)
    return rows


def _print(message: str) -> None:
    print(message, flush=True)


def draw_figures(runs: list[dict], out: Path, log: Callable[[str], None] = _print) -> list[Path]:
    """Write the PNG figures of the module docstring into ``out``; returns their paths.

    ``log`` receives a line before each step that takes a while (the t-SNE of each visit's latents).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    written = []

    def save(fig, name: str) -> None:
        written.append(out / name)
        fig.savefig(written[-1], dpi=DPI)
        plt.close(fig)

    save(average_success_figure(runs, plt), "average_success.png")
    for i, run in enumerate(runs):
        if run.get("success_matrix"):
            save(success_matrix_figure(run, plt), f"success_matrix_{i}_{run['method']}_s{run['seed']}.png")
    for i, run in enumerate(runs):
        files = sorted((Path(run["path"]) / "latents").glob("visit_*.npz"))
        if files:
            save(tsne_figure(files, run, plt, log), f"tsne_{i}_{run['method']}_s{run['seed']}.png")
    return written


def _figure(plt, width_in: float, height_in: float, nrows: int = 1, ncols: int = 1):
    """A constrained-layout figure of at least :data:`MIN_PX` pixels (labels and titles kept inside)."""
    size = (max(width_in, MIN_PX[0] / DPI), max(height_in, MIN_PX[1] / DPI))
    return plt.subplots(nrows, ncols, figsize=size, dpi=DPI, layout="constrained", squeeze=False)


def _wrap(text: str, fig, fontsize: float) -> str:
    """``text`` broken into lines that fit the figure's width (about 0.6 em per character)."""
    return textwrap.fill(text, width=max(20, int(0.9 * fig.get_figwidth() * 72 / (0.6 * fontsize))))


def average_success_figure(runs: list[dict], plt):
    """Average success P(t) (eq. 1) of every run over the environment steps."""
    fig, axes = _figure(plt, 8, 4.5)
    ax = axes[0, 0]
    for run in runs:
        steps, p = zip(*lm.average_success(run["curve"], run["tasks"])) if run["curve"] else ((), ())
        ax.plot(steps, p, label=f"{run['method']} s{run['seed']}")
    ax.set(xlabel="environment steps", ylabel="average success P(t)", ylim=(-0.02, 1.02))
    ax.set_title(_wrap("average success over the stream (eq. 1)", fig, 11), fontsize=11)
    if runs:
        ax.legend(fontsize=8)
    return fig


def success_matrix_figure(run: dict, plt):
    """Heatmap of the success of each evaluated task (rows) after each visit (columns)."""
    m = run["success_matrix"]
    values = np.array(m["values"])
    rows, cols = values.shape
    after = [c.replace("-v3", "") for c in m["columns_trained_after"]]
    evaluated = [c.replace("-v3", "") for c in m["rows_evaluated_task"]]
    char_in = 0.6 * 9 / 72  # width of a 9 pt tick-label character, inches
    tilted = cols > 3
    fig, axes = _figure(plt, 2.5 + 0.6 * cols + char_in * max(map(len, evaluated)),
                        2.4 + 0.45 * rows + (0.87 * char_in * max(map(len, after)) if tilted else 0))
    ax = axes[0, 0]
    image = ax.imshow(values, vmin=0, vmax=1, cmap="viridis")
    tilt = {"rotation": 60, "ha": "right", "rotation_mode": "anchor"} if tilted else {}
    ax.set_xticks(range(cols), after, fontsize=9, **tilt)
    ax.set_yticks(range(rows), evaluated, fontsize=9)
    for (r, c), v in np.ndenumerate(values):
        ax.text(c, r, f"{v:.1f}", ha="center", va="center", fontsize=8, color="w" if v < 0.5 else "k")
    ax.set(xlabel="after training on", ylabel="evaluated task")
    fig.colorbar(image, ax=ax, label="success rate", shrink=0.8)
    ax.set_title(_wrap(f"{run['method']} seed {run['seed']}: success after each visit", fig, 11), fontsize=11)
    return fig


def tsne_figure(files: list[Path], run: dict, plt, log: Callable[[str], None] = _print):
    """t-SNE (scikit-learn) of the latents after each visit: top row by task, bottom row by DPMM component."""
    from matplotlib.lines import Line2D
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    fig, axes = _figure(plt, 2.4 * len(files), 5.4, nrows=2, ncols=len(files))
    cmap = plt.get_cmap("tab10")
    for j, f in enumerate(files):
        d = np.load(f)
        visit = int(f.stem.split("_")[1])
        log(f"t-SNE {j + 1}/{len(files)}: {len(d['z'])} latents after visit {visit + 1} of {run['path']}")
        t0 = time.perf_counter()
        # One thread: OpenMP across cores makes Barnes-Hut t-SNE of ~1000 points slower, not faster
        # (a barrier every iteration; 15-30 s instead of 3 s on a busy 2-core machine).
        with threadpool_limits(1):
            xy = TSNE(n_components=2, perplexity=min(30, len(d["z"]) - 1), max_iter=TSNE_ITERATIONS,
                      random_state=0).fit_transform(d["z"])
        log(f"  done in {time.perf_counter() - t0:.1f} s")
        # Components by their rank among those present, 20 colours (K reaches 40 in a stream): vmax 9 painted
        # every component past the ninth one colour
        present, rank = np.unique(d["component"], return_inverse=True)
        axes[0, j].scatter(xy[:, 0], xy[:, 1], c=d["task"], cmap=cmap, s=3, vmin=0, vmax=9)
        axes[1, j].scatter(xy[:, 0], xy[:, 1], c=rank % 20, cmap=plt.get_cmap("tab20"), s=3, vmin=0, vmax=19)
        axes[1, j].set_title(f"{len(present)} component{'s' if len(present) != 1 else ''}", fontsize=8)
        for row in (0, 1):
            axes[row, j].set_xticks([])
            axes[row, j].set_yticks([])
        axes[0, j].set_title(f"after {run['visits'][visit].replace('-v3', '')}", fontsize=9)
    axes[0, 0].set_ylabel("colour: task", fontsize=9)
    axes[1, 0].set_ylabel("colour: DPMM component", fontsize=9)
    tasks = [t.replace("-v3", "") for t in run["tasks"]]
    fig.legend([Line2D([], [], ls="", marker="o", color=cmap(k % 10)) for k in range(len(tasks))], tasks,
               loc="outside lower center", ncols=min(len(tasks), 5), fontsize=8, title="task", title_fontsize=8)
    fig.suptitle(_wrap(f"{run['method']} seed {run['seed']}: knowledge space (t-SNE of encoder means) after each "
                       "visit", fig, 11), fontsize=11)
    return fig
