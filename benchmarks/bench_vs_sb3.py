"""Our SAC trainer against stable-baselines3's SAC and SBX's (its JAX version) on reach-v3, side by side, same settings.

Both: networks 2 x 256 (actor and twin critics), batch 128, one update per env step after 1,500 random
steps (the same update-to-data ratio), Adam 3e-4, gamma 0.99, tau 0.005, automatic entropy (target -|A|),
the same number of PyTorch threads (``--threads``, default all cores), the same environment
(:class:`legion_sim.metaworld_env.MetaWorldTaskEnv`, 150-step episodes, randomised placements, Meta-World's
v1 reward for reach as in our shipped run). Ours is ``legion train --method finetune`` on one task (the SAC
backbone every method shares) with ``--num-envs`` environments stepped side by side (SB3 runs its usual
single environment; SBX compiles its update with JAX's jit, one CPU thread for XLA with ``--threads 1``). Runs
alternate ours / SB3 / SBX ``--repeats`` times so that a noisy machine slows them alike. Prints env-steps/s of
each training loop (evaluation excluded), the median ratios, and the success rate of each after the same number of
steps (deterministic episodes, success if any step succeeds).

    .venv/bin/pip install -e '.[bench]'   # stable-baselines3 and sbx-rl: the 'bench' extra, not project dependencies
    .venv/bin/python benchmarks/bench_vs_sb3.py [--steps 10000] [--repeats 2] [--num-envs 4] [--threads 2]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time

import torch

from legion_sim.metaworld_env import MetaWorldTaskEnv


def success_rate(act, seed: int, episodes: int) -> float:
    env = MetaWorldTaskEnv("reach-v3", seed=seed)
    wins = 0
    for _ in range(episodes):
        obs, _ = env.reset()
        for _ in range(env.max_episode_steps):
            obs, _, _, truncated, info = env.step(act(obs))
            if info["success"]:
                wins += 1
                break
            if truncated:
                break
    return wins / episodes


def run_ours(args) -> tuple[float, float]:
    """(env-steps/s of the training loop, success) of ``legion train --method finetune``."""
    from legion_policy.agent import AgentConfig
    from legion_policy.trainer import TrainConfig, train

    with tempfile.TemporaryDirectory() as out:
        cfg = TrainConfig(tasks=["reach-v3"], method="finetune", steps_per_task=args.steps, eval_every=args.steps,
                          eval_episodes=args.episodes, seed=args.seed, out=out, reward_v1_tasks=["reach-v3"],
                          log_every=args.steps, num_envs=args.num_envs, vector_env=args.vector_env,
                          torch_threads=args.threads, agent=AgentConfig(hidden=256, batch_size=128))
        metrics = train(cfg)
        rate = [json.loads(line) for line in open(f"{out}/train_log.jsonl") if '"train"' in line][-1]["steps_per_s"]
    return rate, metrics["final_success"]["reach-v3"]


def run_sb3(args) -> tuple[float, float]:
    """(env-steps/s of ``SAC.learn``, success) of stable-baselines3's SAC with the same settings."""
    from stable_baselines3 import SAC

    torch.set_num_threads(args.threads)
    env = MetaWorldTaskEnv("reach-v3", seed=args.seed, reward_version="v1")
    model = SAC("MlpPolicy", env, learning_rate=3e-4, buffer_size=args.steps, learning_starts=1500, batch_size=128,
                tau=0.005, gamma=0.99, train_freq=1, gradient_steps=1, ent_coef="auto",
                policy_kwargs=dict(net_arch=[256, 256]), seed=args.seed, device="cpu", verbose=0)
    t0 = time.perf_counter()
    model.learn(total_timesteps=args.steps)
    rate = args.steps / (time.perf_counter() - t0)
    return rate, success_rate(lambda o: model.predict(o, deterministic=True)[0], args.seed + 500, args.episodes)


def run_sbx(args) -> tuple[float, float]:
    """(env-steps/s of ``SAC.learn``, success) of SBX's SAC (JAX) with the same settings."""
    from sbx import SAC

    env = MetaWorldTaskEnv("reach-v3", seed=args.seed, reward_version="v1")
    model = SAC("MlpPolicy", env, learning_rate=3e-4, buffer_size=args.steps, learning_starts=1500, batch_size=128,
                tau=0.005, gamma=0.99, train_freq=1, gradient_steps=1, ent_coef="auto",
                policy_kwargs=dict(net_arch=[256, 256]), seed=args.seed, verbose=0)
    t0 = time.perf_counter()
    model.learn(total_timesteps=args.steps)
    rate = args.steps / (time.perf_counter() - t0)
    return rate, success_rate(lambda o: model.predict(o, deterministic=True)[0], args.seed + 500, args.episodes)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=2, help="alternating runs of each")
    parser.add_argument("--num-envs", type=int, default=4, help="our vector environment size")
    parser.add_argument("--vector-env", default="sync", choices=("sync", "async"))
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="PyTorch threads of both")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()
    if args.threads == 1:  # XLA's CPU client: one intra-op thread, as torch gets (set before jax is imported)
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false "
                                   "intra_op_parallelism_threads=1").strip()
    import sbx
    import stable_baselines3

    ours, sb3, sbx_runs = [], [], []
    for r in range(args.repeats):
        ours.append(run_ours(args))
        sb3.append(run_sb3(args))
        sbx_runs.append(run_sbx(args))
        print(f"repeat {r + 1}: ours {ours[-1][0]:.1f}, SB3 {sb3[-1][0]:.1f}, SBX {sbx_runs[-1][0]:.1f} env-steps/s",
              flush=True)
    ratios = [o[0] / s[0] for o, s in zip(ours, sb3)]
    ratios_sbx = [o[0] / s[0] for o, s in zip(ours, sbx_runs)]
    print(f"reach-v3, {args.steps} env steps, batch 128, 2 x 256, 1 update per env step, {args.threads} torch threads, "
          f"seed {args.seed}, {args.repeats} alternating repeats")
    print(f"  ours (legion train --method finetune, {args.num_envs} {args.vector_env} envs): "
          f"{statistics.median(o[0] for o in ours):7.1f} env-steps/s, success {ours[0][1]:.2f} ({args.episodes} episodes)")
    print(f"  stable-baselines3 {stable_baselines3.__version__} SAC (1 env):                    "
          f"{statistics.median(s[0] for s in sb3):7.1f} env-steps/s, success {sb3[0][1]:.2f} ({args.episodes} episodes)")
    print(f"  SBX {sbx.__version__} SAC (JAX, 1 env):                                   "
          f"{statistics.median(s[0] for s in sbx_runs):7.1f} env-steps/s, success {sbx_runs[0][1]:.2f} "
          f"({args.episodes} episodes)")
    print(f"  ratio ours / SB3: median {statistics.median(ratios):.2f}x (each repeat: "
          f"{', '.join(f'{x:.2f}' for x in ratios)})")
    print(f"  ratio ours / SBX: median {statistics.median(ratios_sbx):.2f}x (each repeat: "
          f"{', '.join(f'{x:.2f}' for x in ratios_sbx)}; target >= 1x)")
    if args.json:
        figures = {"settings": vars(args), "ours": ours, "sb3": sb3, "sbx": sbx_runs, "ratio_sb3": ratios,
                   "ratio_sbx": ratios_sbx, "sb3_version": stable_baselines3.__version__, "sbx_version": sbx.__version__}
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=2)


if __name__ == "__main__":
    main()
