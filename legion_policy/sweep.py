"""Multi-seed / multi-method / multi-ordering sweeps of ``legion train`` on Ray (``legion sweep``).

Every combination of method, task order and seed is one Ray task (one CPU each) that runs
:func:`legion_policy.trainer.train` into ``out/<method>-<order>-s<seed>``. Ray runs locally by default,
bound to 127.0.0.1 with the dashboard off; pass a cluster address (``ray://host:10001`` or ``auto``) to
scale out. Runs resume from their ``state.pt``, so a sweep started again after a crash continues
where each run stopped.
"""
from __future__ import annotations

import copy
from dataclasses import replace
from pathlib import Path

from legion_policy.trainer import TrainConfig, TrainConfigError


def sweep_configs(base: TrainConfig, methods: list[str], orders: list[str], seeds: list[int], out: Path) -> list[TrainConfig]:
    """One :class:`TrainConfig` per (method, order, seed), each with its own run folder.

    Raises:
        TrainConfigError: a combination is invalid (checked before anything starts).
    """
    configs = []
    for method in methods:
        for order in orders:
            for seed in seeds:
                cfg = replace(base, method=method, order=order, seed=seed, agent=copy.deepcopy(base.agent),
                              out=str(out / f"{method}-{order}-s{seed}"))
                cfg.validate()
                configs.append(cfg)
    if not configs:
        raise TrainConfigError("the sweep is empty: give at least one method, order and seed")
    return configs


def _run(cfg: TrainConfig) -> dict:
    from legion_policy.trainer import train

    metrics = train(cfg, resume=True)
    return {"out": cfg.out, "method": cfg.method, "order": cfg.order, "seed": cfg.seed,
            "average_success_final": metrics.get("average_success_final"),
            "mean_forgetting": metrics.get("mean_forgetting"), "wall_time_s": metrics.get("wall_time_s")}


def run_sweep(configs: list[TrainConfig], address: str | None = None, num_cpus: int | None = None) -> list[dict]:
    """Run ``configs`` as Ray tasks (one CPU each) and return one summary dict per run, in order.

    Args:
        configs: from :func:`sweep_configs`.
        address: Ray cluster address; None starts a local Ray on 127.0.0.1.
        num_cpus: CPUs of the local Ray (default: all); ignored with ``address``.
    """
    import ray

    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        ray.init(num_cpus=num_cpus, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False)
    try:
        remote = ray.remote(num_cpus=1)(_run)
        return ray.get([remote.remote(cfg) for cfg in configs])
    finally:
        ray.shutdown()
