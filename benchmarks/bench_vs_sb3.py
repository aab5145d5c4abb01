"""Our SAC trainer against stable-baselines3's SAC on reach-v3, side by side, same settings.

Both: networks 2 x 256 (actor and twin critics), batch 128, one update per env step after 1,500 random
steps, Adam 3e-4, gamma 0.99, tau 0.005, automatic entropy (target -|A|), one torch thread, the same
environment (:class:`legion_sim.metaworld_env.MetaWorldTaskEnv`, 150-step episodes, randomised
placements, Meta-World's v1 reward for reach as in our shipped run). Ours is ``legion train --method
finetune`` on one task (the SAC backbone every method shares). Prints env-steps/s of the training
loop (evaluation excluded), the ratio, and the success rate of each after the same number of steps
(deterministic episodes, success if any step succeeds).

    .venv/bin/pip install stable-baselines3   # not a project dependency
    .venv/bin/python benchmarks/bench_vs_sb3.py [--steps 20000] [--episodes 20]
"""
from __future__ import annotations

import argparse
import json
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    from stable_baselines3 import SAC

    # ours: the trainer logs the loop's env-steps/s (evaluations excluded) at every log interval
    from legion_policy.agent import AgentConfig
    from legion_policy.trainer import TrainConfig, train

    with tempfile.TemporaryDirectory() as out:
        cfg = TrainConfig(tasks=["reach-v3"], method="finetune", steps_per_task=args.steps, eval_every=10 ** 9,
                          eval_episodes=args.episodes, seed=args.seed, out=out, reward_v1_tasks=["reach-v3"],
                          log_every=args.steps, agent=AgentConfig(hidden=256, batch_size=128))
        metrics = train(cfg)
        ours_rate = [json.loads(line) for line in open(f"{out}/train_log.jsonl") if '"train"' in line][-1]["steps_per_s"]
        ours_success = metrics["final_success"]["reach-v3"]

    env = MetaWorldTaskEnv("reach-v3", seed=args.seed, reward_version="v1")
    model = SAC("MlpPolicy", env, learning_rate=3e-4, buffer_size=args.steps, learning_starts=1500, batch_size=128,
                tau=0.005, gamma=0.99, train_freq=1, gradient_steps=1, ent_coef="auto",
                policy_kwargs=dict(net_arch=[256, 256]), seed=args.seed, device="cpu", verbose=0)
    t0 = time.perf_counter()
    model.learn(total_timesteps=args.steps)
    sb3_rate = args.steps / (time.perf_counter() - t0)
    sb3_success = success_rate(lambda o: model.predict(o, deterministic=True)[0], args.seed + 500, args.episodes)

    print(f"reach-v3, {args.steps} env steps, batch 128, 2 x 256, 1 update/step, seed {args.seed}")
    print(f"  ours (legion train --method finetune): {ours_rate:7.1f} env-steps/s, success {ours_success:.2f} "
          f"({args.episodes} episodes)")
    print(f"  stable-baselines3 {__import__('stable_baselines3').__version__} SAC:      {sb3_rate:7.1f} env-steps/s, "
          f"success {sb3_success:.2f} ({args.episodes} episodes)")
    print(f"  ratio ours / SB3: {ours_rate / sb3_rate:.2f}x (target >= 2x)")


if __name__ == "__main__":
    main()
