"""The paper's lifelong-learning metrics (Methods, "Evaluation metrics", eqs. 1-4), from evaluation curves.

Inputs are what the trainer records: ``tasks`` (the distinct tasks, stream order of the first loop),
``visits`` (the env_id trained in each visit, in order; a task appears once per loop), ``steps_per_visit``
(Delta) and ``curve``, a list of evaluations ``{"step": t, "success": {task: P_task(t)}}`` sorted by
step, where every visit ends with an evaluation at ``step = Delta * visit_number``.

* average success, eq. 1: P(t) = mean_i P_i(t);
* success matrix (Table 1): P_i after each visit (rows: evaluated task, columns: trained-after visit);
* forgetting, eq. 2: F_i = P_i(Delta * i) - P_i(T), F the mean over the first N - 1 tasks;
* forward transfer, eq. 3 as printed: FT_i = (1 / (i - 1)) sum_{k<i} P_k(Delta * k), FT the mean over
  i = 2..N (the printed formula averages earlier tasks' end-of-visit success);
* forward transfer, Continual World's form (Wołczyk et al. 2021): FT_i = (AUC_i - AUC_i^ref) /
  (1 - AUC_i^ref), AUC_i the mean success of task i during its own visit and AUC_i^ref the same for a
  single-task reference run of that task;
* few-shot improvement, eq. 4: f = (integral of P_i over a later visit - over an earlier visit) /
  (Delta * P_max), P_max = 1, i.e. the difference of mean success during the two visits.

Integrals use the trapezoid rule over the evaluations inside a visit, starting from the evaluation
at the visit's start (the previous visit's last one; 0 success for the very first visit).
"""
from __future__ import annotations

import numpy as np


def success_at(curve: list[dict], step: int) -> dict[str, float]:
    """The evaluation recorded at ``step`` (KeyError if there is none)."""
    for row in curve:
        if row["step"] == step:
            return row["success"]
    raise KeyError(f"no evaluation at step {step}; evaluations at {[r['step'] for r in curve]}")


def average_success(curve: list[dict], tasks: list[str]) -> list[tuple[int, float]]:
    """Eq. 1: [(t, P(t))] for every evaluation, P(t) the mean success over ``tasks``."""
    return [(row["step"], float(np.mean([row["success"][t] for t in tasks]))) for row in curve]


def success_matrix(curve: list[dict], tasks: list[str], visits: list[str], steps_per_visit: int) -> np.ndarray:
    """(len(tasks), len(visits)) matrix: P_i after each visit (Table 1 layout)."""
    return np.array([[success_at(curve, steps_per_visit * (v + 1))[t] for v in range(len(visits))] for t in tasks])


def forgetting(curve: list[dict], visits: list[str], steps_per_visit: int) -> dict[str, float]:
    """Eq. 2 per task of a single-loop stream: {task: P_i(Delta i) - P_i(T)} for the first N - 1 tasks."""
    final = success_at(curve, steps_per_visit * len(visits))
    return {t: success_at(curve, steps_per_visit * (i + 1))[t] - final[t] for i, t in enumerate(visits[:-1])}


def forward_transfer_printed(curve: list[dict], visits: list[str], steps_per_visit: int) -> float | None:
    """Eq. 3 as printed: mean over i = 2..N of the mean end-of-visit success of tasks k < i (None if N < 2)."""
    own = [success_at(curve, steps_per_visit * (k + 1))[t] for k, t in enumerate(visits)]
    values = [float(np.mean(own[:i])) for i in range(1, len(visits))]
    return float(np.mean(values)) if values else None


def visit_auc(curve: list[dict], task: str, visit_index: int, steps_per_visit: int) -> float:
    """Mean success of ``task`` during visit ``visit_index`` (0-based): trapezoid integral / Delta."""
    start, end = steps_per_visit * visit_index, steps_per_visit * (visit_index + 1)
    points = [(start, 0.0)] if start == 0 else [(start, success_at(curve, start)[task])]
    points += [(r["step"], r["success"][task]) for r in curve if start < r["step"] <= end]
    steps, values = np.array(points, dtype=float).T
    return float(np.trapezoid(values, steps) / steps_per_visit)


def forward_transfer_cw(curve: list[dict], visits: list[str], steps_per_visit: int,
                        reference_auc: dict[str, float]) -> dict[str, float]:
    """Continual World's forward transfer per task with a reference AUC (tasks without one are skipped)."""
    out = {}
    for v, t in enumerate(visits):
        if t in reference_auc and t not in out:
            ref = reference_auc[t]
            auc = visit_auc(curve, t, v, steps_per_visit)
            out[t] = (auc - ref) / (1.0 - ref) if ref < 1.0 else 0.0
    return out


def few_shot_improvement(curve: list[dict], visits: list[str], steps_per_visit: int) -> dict[str, dict[str, float]]:
    """Eq. 4 per task revisited in later loops: {task: {"loop1->loop2": f, "loop1->loop3": f, ...}}."""
    out: dict[str, dict[str, float]] = {}
    for t in dict.fromkeys(visits):
        idx = [v for v, name in enumerate(visits) if name == t]
        aucs = [visit_auc(curve, t, v, steps_per_visit) for v in idx]
        if len(aucs) > 1:
            out[t] = {f"loop1->loop{j + 1}": aucs[j] - aucs[0] for j in range(1, len(aucs))}
    return out


def summarise(curve: list[dict], tasks: list[str], visits: list[str], steps_per_visit: int,
              reference_auc: dict[str, float] | None = None) -> dict:
    """Every metric above for a finished (or partial) run; visits without a final evaluation are left out."""
    done = [v for v in range(len(visits)) if any(r["step"] == steps_per_visit * (v + 1) for r in curve)]
    visits_done = visits[: len(done)]
    out: dict = {"visits_completed": len(visits_done)}
    if not visits_done:
        return out
    final = success_at(curve, steps_per_visit * len(visits_done))
    out["final_success"] = {t: final[t] for t in tasks}
    out["average_success_final"] = float(np.mean([final[t] for t in tasks]))
    out["success_matrix"] = {"rows_evaluated_task": tasks, "columns_trained_after": visits_done,
                             "values": success_matrix(curve, tasks, visits_done, steps_per_visit).tolist()}
    single_loop = len(set(visits_done)) == len(visits_done)
    if single_loop:
        f = forgetting(curve, visits_done, steps_per_visit)
        out["forgetting"] = f
        out["mean_forgetting"] = float(np.mean(list(f.values()))) if f else None
        out["forward_transfer_printed"] = forward_transfer_printed(curve, visits_done, steps_per_visit)
    if reference_auc:
        cw = forward_transfer_cw(curve, visits_done, steps_per_visit, reference_auc)
        out["forward_transfer_cw"] = cw
        out["mean_forward_transfer_cw"] = float(np.mean(list(cw.values()))) if cw else None
    few = few_shot_improvement(curve, visits_done, steps_per_visit)
    if few:
        out["few_shot_improvement"] = few
        keys = sorted({k for v in few.values() for k in v})
        out["mean_few_shot_improvement"] = {k: float(np.mean([v[k] for v in few.values() if k in v])) for k in keys}
    return out
