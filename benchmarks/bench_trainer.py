"""Trainer throughput: env-steps per second of `legion train` and the cost of its parts.

Usage: .venv/bin/python benchmarks/bench_trainer.py [--steps 3000] [--hidden 256] [--batch-size 128] [--utd 1.0]

Prints (one thread, as the trainer runs):
  * Meta-World reach-v3 wrapper steps/s with random actions;
  * agent.act (encoder + actor, batch 1) in ms;
  * one SAC update and one upstream (encoder/decoder) update in ms;
  * end-to-end trainer env-steps/s over ``--steps`` steps of reach-v3 after its random-action phase
    (includes env steps, acting, SAC updates at the given UTD, encoder updates every 50 steps).
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from legion_policy.agent import AgentConfig, LegionAgent
from legion_policy.trainer import TrainConfig, train
from legion_sim.metaworld_env import MetaWorldTaskEnv


def timed(fn, n: int) -> float:
    """Mean seconds per call of ``fn`` over ``n`` calls (after 5 warm-up calls)."""
    for _ in range(5):
        fn()
    t = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t) / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--utd", type=float, default=1.0)
    args = ap.parse_args()
    torch.set_num_threads(1)

    env = MetaWorldTaskEnv("reach-v3", seed=0)
    env.reset()

    def env_step():
        *_, truncated, _ = env.step(env.action_space.sample())
        if truncated:
            env.reset()

    print(f"reach-v3 wrapper, random actions: {1 / timed(env_step, 1500):8.0f} steps/s")

    cfg = AgentConfig(hidden=args.hidden, batch_size=args.batch_size)
    agent = LegionAgent(cfg)
    B = cfg.batch_size
    batch = {"obs": torch.rand(B, 12), "next_obs": torch.rand(B, 12), "action": torch.rand(B, 4) * 2 - 1,
             "reward": torch.rand(B), "done": torch.zeros(B), "task": torch.zeros(B, dtype=torch.long),
             "embed": torch.nn.functional.normalize(torch.randn(B, cfg.embed_dim), dim=-1)}
    obs, emb = np.zeros(12, np.float32), batch["embed"][0].numpy()
    print(f"agent.act (batch 1):              {timed(lambda: agent.act(obs, emb), 300) * 1e3:8.2f} ms")
    print(f"SAC update (hidden {args.hidden}, batch {B}): {timed(lambda: agent.update_sac(batch), 100) * 1e3:8.2f} ms")
    print(f"upstream update:                  {timed(lambda: agent.update_encoder(batch), 100) * 1e3:8.2f} ms")

    with tempfile.TemporaryDirectory() as tmp:
        random_steps = 500
        tc = TrainConfig(tasks=["reach-v3"], steps_per_task=random_steps + args.steps, eval_every=10 ** 9,
                         eval_episodes=1, random_steps=random_steps, dpmm_first=10 ** 9, dpmm_samples=500,
                         updates_per_step=args.utd, log_every=random_steps, out=tmp, agent=cfg)
        train(tc)
        rows = [json.loads(line) for line in open(Path(tmp) / "train_log.jsonl")]
        t = {r["step"]: r for r in rows if r["event"] == "train"}
    # steps_per_s is cumulative per task: recover the rate after the random phase.
    n_total = random_steps + args.steps
    t_random = random_steps / t[random_steps]["steps_per_s"]
    t_total = n_total / t[n_total - n_total % random_steps]["steps_per_s"]
    rate = (n_total - n_total % random_steps - random_steps) / (t_total - t_random)
    print(f"trainer (UTD {args.utd}):                {rate:8.1f} env-steps/s "
          f"({3600 * rate / 1000:.0f}k steps/hour)")


if __name__ == "__main__":
    main()
