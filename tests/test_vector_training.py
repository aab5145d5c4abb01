"""Vectorised training: Gymnasium vector environments of real Meta-World scenes, batched acting, and the
trainer's step bookkeeping when N environments step side by side."""
import gymnasium as gym
import numpy as np
import pytest
import torch

from legion_policy.agent import AgentConfig, LegionAgent
from legion_policy.baselines import PackNetAgent, SACAgent
from legion_policy.train_run import task_cycle_env
from legion_policy.trainer import TrainConfig, TrainConfigError, _crossings, train
from legion_sim.metaworld_env import MetaWorldTaskEnv, TaskCycleEnv

torch.set_num_threads(1)
SMALL = AgentConfig(hidden=32, batch_size=16)


def test_crossings_count_schedule_points_in_a_window():
    assert _crossings(0, 4, 2) == 2  # steps 2 and 4
    assert _crossings(4, 8, 50) == 0 and _crossings(48, 52, 50) == 1
    assert _crossings(0, 10_000, 100_000, first=10_000) == 1  # the first DPMM fit
    assert _crossings(10_000, 110_000, 100_000, first=10_000) == 1 and _crossings(10_000, 109_996, 100_000, first=10_000) == 0
    # one step at a time gives the same points as the old `local % every == 0` test
    assert sum(_crossings(s - 1, s, 7) for s in range(1, 100)) == sum(s % 7 == 0 for s in range(1, 100))


def testtask_cycle_env_switches_task_every_reset():
    env = TaskCycleEnv([MetaWorldTaskEnv("reach-v3", seed=0), MetaWorldTaskEnv("drawer-close-v3", seed=0)], start=1)
    seen = [env.reset()[1]["task_index"] for _ in range(4)]
    assert seen == [1, 0, 1, 0]
    _, _, _, _, info = env.step(np.zeros(4, np.float32))
    assert info["task_index"] == 0 and isinstance(info["success"], bool)
    with pytest.raises(ValueError, match="at least one"):
        TaskCycleEnv([])


def test_vector_env_autoreset_keeps_each_episodes_last_observation():
    specs = [("reach-v3", 0, "v2"), ("drawer-close-v3", 0, "v2")]
    venv = gym.vector.SyncVectorEnv([lambda i=i: task_cycle_env(specs, 5, "random", start=i) for i in range(2)],
                                    autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    obs, info = venv.reset()
    assert obs.shape == (2, 12) and list(info["task_index"]) == [0, 1]
    for t in range(5):
        last = obs
        obs, _, terminated, truncated, info = venv.step(np.zeros((2, 4), np.float32))
    assert truncated.all() and not terminated.any()
    final = np.stack(info["final_obs"])
    # still action: the end-effector of the final observation stays where it was; the returned obs is a new episode
    np.testing.assert_allclose(final[:, :3], last[:, :3], atol=0.01)
    assert list(info["task_index"]) == [1, 0], "each env moved on to its next task"
    assert not np.allclose(final[:, 9:], obs[:, 9:]), "a new episode draws a new goal"
    venv.close()


@pytest.mark.parametrize("make", [lambda: LegionAgent(AgentConfig(embed_dim=8, hidden=32)),
                                  lambda: SACAgent(AgentConfig(embed_dim=8, hidden=32))])
def test_batched_act_matches_one_at_a_time(make):
    agent = make()
    rng = np.random.default_rng(0)
    obs, emb = rng.normal(size=(5, 12)).astype(np.float32), rng.normal(size=(5, 8)).astype(np.float32)
    tasks = np.array([0, 1, 2, 1, 0])
    batch = agent.act(obs, emb, deterministic=True, task=tasks)
    assert batch.shape == (5, 4) and batch.dtype == np.float32
    for i in range(5):
        np.testing.assert_allclose(batch[i], agent.act(obs[i], emb[i], deterministic=True, task=int(tasks[i])), atol=1e-6)
    assert agent.act(obs, emb, task=tasks).shape == (5, 4)  # stochastic too


def test_packnet_refuses_a_batch_of_mixed_tasks():
    agent = PackNetAgent(AgentConfig(embed_dim=8, hidden=16), n_tasks=2)
    obs = np.zeros((2, 12), np.float32)
    assert agent.act(obs, np.zeros((2, 8), np.float32), task=np.array([1, 1])).shape == (2, 4)
    with pytest.raises(ValueError, match="one task per call"):
        agent.act(obs, np.zeros((2, 8), np.float32), task=np.array([0, 1]))


def test_vector_training_stores_every_environments_transitions_in_order(tmp_path):
    cfg = TrainConfig(tasks=["reach-v3"], method="finetune", steps_per_task=600, eval_every=300, eval_episodes=1,
                      random_steps=100, num_envs=2, out=str(tmp_path), log_every=100, agent=SMALL)
    metrics = train(cfg)
    assert [row["step"] for row in metrics["curve"]] == [300, 600]
    state = torch.load(tmp_path / "state.pt", weights_only=False)
    obs, next_obs = state["replay"]["obs"], state["replay"]["next_obs"]
    assert len(obs) == 600
    # rows alternate env 0, env 1: within one env, s_{t+1} of a row is s of its next row except where an
    # episode ended (150 steps), where it is that episode's own last observation, not the next reset
    for env in range(2):
        rows = np.arange(env, 600, 2)
        breaks = np.flatnonzero(np.abs(next_obs[rows[:-1]] - obs[rows[1:]]).max(1) > 1e-6)
        assert list(breaks) == [149]  # 300 steps per env: two 150-step episodes
        assert np.abs(next_obs[rows[149], :3] - obs[rows[149], :3]).max() < 0.05  # one step, not a reset jump


def test_multitask_vector_training_steps_both_tasks_side_by_side(tmp_path):
    cfg = TrainConfig(tasks=["reach-v3", "drawer-close-v3"], method="multitask", steps_per_task=300, eval_every=600,
                      eval_episodes=1, random_steps=600, num_envs=2, vector_env="async", out=str(tmp_path), agent=SMALL)
    metrics = train(cfg)
    task = torch.load(tmp_path / "state.pt", weights_only=False)["replay"]["task"]
    assert np.bincount(task).tolist() == [300, 300]
    assert set(task[:2].tolist()) == {0, 1}, "env 0 starts on task 0, env 1 on task 1"
    assert set(metrics["final_success"]) == {"reach-v3", "drawer-close-v3"}


def test_num_envs_must_divide_the_schedule():
    with pytest.raises(TrainConfigError, match="num_envs"):
        TrainConfig(tasks=["reach-v3"], steps_per_task=1000, eval_every=500, num_envs=3).validate()
    with pytest.raises(TrainConfigError, match="vector_env"):
        TrainConfig(tasks=["reach-v3"], vector_env="threads").validate()


def test_resume_may_change_how_fast_a_run_goes_but_not_what_it_learns(tmp_path):
    from dataclasses import replace

    cfg = TrainConfig(tasks=["reach-v3"], method="finetune", steps_per_task=200, eval_every=100, eval_episodes=1,
                      random_steps=50, out=str(tmp_path), agent=SMALL)
    first = train(cfg)
    again = train(replace(cfg, num_envs=2, vector_env="async", torch_threads=2, log_every=50), resume=True)
    assert again["curve"] == first["curve"]  # already finished: nothing re-run
    with pytest.raises(TrainConfigError, match=r"settings \['seed'\] differ"):
        train(replace(cfg, seed=1), resume=True)
