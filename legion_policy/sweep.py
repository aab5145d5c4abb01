"""Multi-seed / multi-method / multi-ordering sweeps of ``legion train`` (``legion sweep``).

Every combination of method, task order and seed is one job (one CPU each) that runs
:func:`legion_policy.trainer.train` into ``out/<method>-<order>-s<seed>``. Runs resume from their
``state.pt``, so a sweep started again after a crash continues where each run stopped.

Backends:

* ``local`` (default): a process pool on this machine, no network at all.
* ``ray``: Ray tasks, on the cluster at ``address`` (``ray://head:10001`` or ``auto``) or, without an
  address, on a local Ray started for the sweep. Measured with Ray 2.60 (``ss -ltn``): its GCS,
  raylet and worker gRPC servers listen on all interfaces even with ``node_ip_address=127.0.0.1``,
  and its runtime-env agent on the host's address. Where every socket must stay on loopback, run the
  sweep in a private network namespace whose only interface is loopback, as the test does::

      unshare -rn sh -c 'ip link set lo up && exec .venv/bin/legion sweep --backend ray ...'

  Installed with the ``test`` extra, or ``pip install 'legion-stack[ray]'``.
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


def run_sweep(configs: list[TrainConfig], backend: str = "local", address: str | None = None,
              num_cpus: int | None = None) -> list[dict]:
    """Run ``configs`` (one CPU each) and return one summary dict per run, in order.

    Args:
        configs: from :func:`sweep_configs`.
        backend: ``"local"`` (process pool) or ``"ray"``.
        address: Ray cluster address (ray backend); None starts a local Ray.
        num_cpus: parallel runs of the local pool or CPUs of the local Ray (default: all CPUs).

    Raises:
        ValueError: unknown backend. ImportError: ray backend without Ray installed.
    """
    if backend == "local":
        import multiprocessing
        import os
        from concurrent.futures import ProcessPoolExecutor

        # spawn: fresh interpreters (forking a process that holds torch/OpenMP threads is unsafe)
        with ProcessPoolExecutor(max_workers=min(num_cpus or os.cpu_count() or 1, len(configs)),
                                 mp_context=multiprocessing.get_context("spawn")) as pool:
            return list(pool.map(_run, configs))
    if backend != "ray":
        raise ValueError(f"unknown sweep backend {backend!r}; choose 'local' or 'ray'")
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
