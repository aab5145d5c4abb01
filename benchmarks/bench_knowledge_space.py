"""Fit time and peak memory of the knowledge space (DPMM, memoized VB with birth/merge).

LEGION's refit: 3,000 latents of dim 10 (official code), here from 10 Gaussian clusters (means ~ N(0, I),
within-cluster std 0.1). Cold = a fresh knowledge space starting from K = 1; warm = a second fit on new
latents from the same clusters, starting from the first fit. Targets: cold < 2 s, warm < 0.3 s.
Peak memory: tracemalloc (Python/numpy allocations), measured in separate runs from the timings.

    .venv/bin/python benchmarks/bench_knowledge_space.py [--repeats 5] [--dim 10] [--clusters 10] [--deletes]
"""
from __future__ import annotations

import argparse
import time
import tracemalloc

import numpy as np
from sklearn.metrics import adjusted_rand_score

from legion_policy.knowledge_space import KnowledgeSpace


def sample(rng, means, n, std):
    labels = rng.integers(len(means), size=n)
    return means[labels] + std * rng.normal(size=(n, means.shape[1])), labels


def one_round(seed: int, dim: int, clusters: int, n: int, std: float, deletes: bool = False):
    """(cold seconds, warm seconds, cold report, warm report, ARI after warm fit)."""
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(clusters, dim))
    z1, _ = sample(rng, means, n, std)
    z2, labels2 = sample(rng, means, n, std)
    ks = KnowledgeSpace(dim, seed=seed, deletes=deletes)
    t0 = time.perf_counter()
    cold = ks.fit(z1)
    t1 = time.perf_counter()
    warm = ks.fit(z2)
    t2 = time.perf_counter()
    return t1 - t0, t2 - t1, cold, warm, adjusted_rand_score(labels2, ks.predict(z2))


def peak_mib(seed: int, dim: int, clusters: int, n: int, std: float, deletes: bool = False):
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(clusters, dim))
    z1, _ = sample(rng, means, n, std)
    z2, _ = sample(rng, means, n, std)
    ks = KnowledgeSpace(dim, seed=seed, deletes=deletes)
    tracemalloc.start()
    ks.fit(z1)
    cold = tracemalloc.get_traced_memory()[1]
    tracemalloc.reset_peak()
    ks.fit(z2)
    warm = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return cold / 2**20, warm / 2**20


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dim", type=int, default=10)
    parser.add_argument("--clusters", type=int, default=10)
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--std", type=float, default=0.1)
    parser.add_argument("--deletes", action="store_true", help="enable the delete move")
    args = parser.parse_args()
    KnowledgeSpace(args.dim).fit(np.zeros((10, args.dim)) + np.arange(10)[:, None])  # warm up imports

    cold_s, warm_s = [], []
    print(f"knowledge space: N={args.n} latents, dim={args.dim}, {args.clusters} clusters, std={args.std}, "
          f"deletes={'on' if args.deletes else 'off'}")
    for seed in range(args.repeats):
        tc, tw, cold, warm, ari = one_round(seed, args.dim, args.clusters, args.n, args.std, args.deletes)
        cold_s.append(tc)
        warm_s.append(tw)
        print(f"  seed {seed}: cold {tc:.3f} s (K={cold.K}, laps={cold.laps}, births={cold.n_births}, "
              f"merges={cold.n_merges})  warm {tw:.3f} s (K={warm.K}, laps={warm.laps})  ARI={ari:.3f}")
    mc, mw = peak_mib(0, args.dim, args.clusters, args.n, args.std, args.deletes)
    print(f"cold fit (from K=1):         median {np.median(cold_s):.3f} s, max {max(cold_s):.3f} s, "
          f"peak traced memory {mc:.1f} MiB  (target < 2 s)")
    print(f"warm fit (from previous fit): median {np.median(warm_s):.3f} s, max {max(warm_s):.3f} s, "
          f"peak traced memory {mw:.1f} MiB  (target < 0.3 s)")


if __name__ == "__main__":
    main()
