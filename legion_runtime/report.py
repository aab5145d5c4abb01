"""``legion report RUN_DIR...``: compare lifelong runs (methods, seeds) side by side, and draw figures.

Each run folder holds the ``metrics.json`` written by ``legion train``. Runs are grouped by method
(and stream length); each figure of a group is given as mean ± std over its seeds. Figures
(matplotlib, PNG): per-run success-matrix heatmaps, average success P(t) of every run, and a t-SNE of
the knowledge space after each visit coloured by task and by DPMM component (from the
``latents/visit_*.npz`` files LEGION runs write).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from legion_policy import metrics as lm

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


def draw_figures(runs: list[dict], out: Path) -> list[Path]:
    """Write the PNG figures of the module docstring into ``out``; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    written = []
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for run in runs:
        steps, p = zip(*lm.average_success(run["curve"], run["tasks"])) if run["curve"] else ((), ())
        ax.plot(steps, p, label=f"{run['method']} s{run['seed']}")
    ax.set(xlabel="environment steps", ylabel="average success P(t)", ylim=(-0.02, 1.02), title="eq. 1 over the stream")
    ax.legend(fontsize=8)
    fig.tight_layout()
    written.append(out / "average_success.png")
    fig.savefig(written[-1], dpi=120)
    plt.close(fig)
    for i, run in enumerate(runs):
        m = run.get("success_matrix")
        if not m:
            continue
        values = np.array(m["values"])
        fig, ax = plt.subplots(figsize=(1 + 0.6 * values.shape[1], 1 + 0.45 * values.shape[0]))
        ax.imshow(values, vmin=0, vmax=1, cmap="viridis")
        ax.set_xticks(range(values.shape[1]), [c.replace("-v3", "") for c in m["columns_trained_after"]], rotation=60,
                      ha="right", fontsize=7)
        ax.set_yticks(range(values.shape[0]), [c.replace("-v3", "") for c in m["rows_evaluated_task"]], fontsize=7)
        for (r, c), v in np.ndenumerate(values):
            ax.text(c, r, f"{v:.1f}", ha="center", va="center", fontsize=6, color="w" if v < 0.5 else "k")
        ax.set_title(f"{run['method']} seed {run['seed']}: success after each visit", fontsize=8)
        fig.tight_layout()
        written.append(out / f"success_matrix_{i}_{run['method']}_s{run['seed']}.png")
        fig.savefig(written[-1], dpi=120)
        plt.close(fig)
    for i, run in enumerate(runs):
        files = sorted((Path(run["path"]) / "latents").glob("visit_*.npz"))
        if files:
            written.append(out / f"tsne_{i}_{run['method']}_s{run['seed']}.png")
            _tsne_figure(files, run, written[-1], plt)
    return written


def _tsne_figure(files: list[Path], run: dict, path: Path, plt) -> None:
    """t-SNE (scikit-learn) of the latents after each visit: top row by task, bottom row by DPMM component."""
    from sklearn.manifold import TSNE

    fig, axes = plt.subplots(2, len(files), figsize=(2.2 * len(files), 4.6), squeeze=False)
    for j, f in enumerate(files):
        d = np.load(f)
        xy = TSNE(n_components=2, perplexity=min(30, len(d["z"]) - 1), random_state=0).fit_transform(d["z"])
        for row, key in enumerate(("task", "component")):
            axes[row, j].scatter(xy[:, 0], xy[:, 1], c=d[key], cmap="tab10", s=2, vmin=0, vmax=9)
            axes[row, j].set_xticks([])
            axes[row, j].set_yticks([])
        visit = int(f.stem.split("_")[1])
        axes[0, j].set_title(f"after {run['visits'][visit].replace('-v3', '')}", fontsize=7)
    axes[0, 0].set_ylabel("colour: task", fontsize=7)
    axes[1, 0].set_ylabel("colour: component", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
