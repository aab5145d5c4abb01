"""Meta-World wrapper on the real Meta-World scenes, the replay buffer, and a tiny end-to-end training run."""
import csv
import json

import numpy as np
import pytest
import torch

from legion_policy.agent import AgentConfig
from legion_policy.checkpoint import LegionPolicy, load_checkpoint
from legion_policy.replay import ReplayBuffer
from legion_policy.trainer import TrainConfig, TrainConfigError, train
from legion_sim.metaworld_env import MetaWorldTaskEnv

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def reach():
    return MetaWorldTaskEnv("reach-v3", seed=0)


def test_observation_is_12d_with_visible_randomised_goal(reach):
    goals = []
    for _ in range(3):
        obs, info = reach.reset()
        assert obs.shape == (12,) and obs.dtype == np.float32 and reach.observation_space.contains(obs)
        goal = obs[9:12]
        assert np.linalg.norm(goal) > 0.5, "goal must be visible (non-zero)"
        np.testing.assert_allclose(goal, reach.unwrapped_metaworld._target_pos, atol=1e-6)
        np.testing.assert_allclose(obs[0:3], info["obs39"][0:3], atol=1e-6)
        np.testing.assert_array_equal(obs[6:9], 0)
        goals.append(goal)
    assert len({tuple(g) for g in goals}) == 3, "placement must change every episode"
    obs, *_ = reach.step(np.zeros(4, np.float32))
    assert np.linalg.norm(obs[9:12]) > 0.5, "goal must stay visible after a step"


def test_same_seed_same_placements():
    a, b = MetaWorldTaskEnv("drawer-close-v3", seed=7), MetaWorldTaskEnv("drawer-close-v3", seed=7)
    for _ in range(2):
        np.testing.assert_array_equal(a.reset()[0], b.reset()[0])


def test_episode_truncates_at_150_steps(reach):
    reach.reset()
    for t in range(1, 151):
        _, reward, terminated, truncated, info = reach.step(reach.action_space.sample())
        assert not terminated and isinstance(info["success"], bool) and 0 <= reward <= 10
        assert truncated == (t == 150)
    with pytest.raises(RuntimeError, match="reset"):
        reach.step(np.zeros(4))


@pytest.mark.filterwarnings("ignore:Constant.*may be too high")
def test_scripted_expert_succeeds_through_the_wrapper(reach):
    from metaworld.policies import SawyerReachV3Policy

    expert = SawyerReachV3Policy()
    for _ in range(3):
        reach.reset()
        success = False
        for _ in range(150):
            *_, info = reach.step(expert.get_action(reach.last_obs39))
            success |= info["success"]
        assert success


def test_v1_reward_keeps_rising_inside_the_success_radius():
    """reach-v3's v2 reward is flat inside the 5 cm success radius; v1 (scaled) still rewards getting closer."""
    rewards = {}
    for version in ("v1", "v2"):
        env = MetaWorldTaskEnv("reach-v3", seed=0, reward_version=version)
        obs, _ = env.reset(seed=0)
        trace = []
        for _ in range(80):  # proportional controller that drives the TCP (4.5 cm below the hand) onto the goal
            target = obs[9:12] + np.array([0.0, 0.0, 0.045])
            obs, reward, *_ = env.step(np.r_[np.clip((target - obs[0:3]) * 50, -1, 1), 0.0])
            trace.append((np.linalg.norm(env.unwrapped_metaworld.tcp_center - obs[9:12]), reward))
        rewards[version] = trace
    inside = {v: [r for d, r in t if d < 0.045] for v, t in rewards.items()}
    assert min(inside["v2"]) == pytest.approx(10.0) and max(inside["v2"]) == pytest.approx(10.0)
    edge = [r for d, r in rewards["v1"] if 0.035 < d < 0.045]
    near = [r for d, r in rewards["v1"] if d < 0.015]
    assert edge and near and min(near) > max(edge) + 3.0  # closer is better under v1
    assert max(r for _, r in rewards["v1"]) < 30.0  # scaled into v2's range
    with pytest.raises(ValueError, match="reward_version"):
        MetaWorldTaskEnv("reach-v3", reward_version="v3")
    with pytest.raises(TrainConfigError, match="reward_v1_tasks"):
        TrainConfig(tasks=["reach-v3"], reward_v1_tasks=["push-v3"]).validate()


def test_wrapper_rejects_bad_input(reach):
    with pytest.raises(ValueError, match="unknown Meta-World task 'reach-v9'"):
        MetaWorldTaskEnv("reach-v9")
    reach.reset()
    with pytest.raises(ValueError, match="4 finite numbers"):
        reach.step(np.zeros(3))
    with pytest.raises(ValueError, match="4 finite numbers"):
        reach.step(np.array([np.nan, 0, 0, 0]))


def test_replay_buffer_samples_every_task():
    table = np.eye(3, 384, dtype=np.float32)
    buf = ReplayBuffer(10, 12, 4, table, canonical=np.array([0, 0, 2]))  # phrases 0, 1 share a task
    for i in range(10):
        buf.add(np.full(12, i), np.zeros(4), float(i), np.full(12, i + 1), 0.0, phrase=i % 3, task=i % 2)
    batch = buf.sample(256, np.random.default_rng(0))
    assert batch["obs"].shape == (256, 12) and batch["embed"].shape == (256, 384) and batch["task"].dtype == torch.int64
    np.testing.assert_array_equal(batch["next_obs"][:, 0] - batch["obs"][:, 0], 1)
    np.testing.assert_array_equal(batch["reward"], batch["obs"][:, 0])
    idx = batch["obs"][:, 0].long()
    torch.testing.assert_close(batch["embed"], torch.from_numpy(table)[idx % 3])
    torch.testing.assert_close(batch["embed_target"], torch.from_numpy(table)[torch.tensor([0, 0, 2])[idx % 3]])
    assert set(batch["task"].tolist()) == {0, 1}
    with pytest.raises(RuntimeError, match="full"):
        buf.add(np.zeros(12), np.zeros(4), 0.0, np.zeros(12), 0.0, 0, 0)


@pytest.mark.parametrize("kwargs, match", [
    ({"tasks": []}, "tasks is empty"),
    ({"steps_per_task": 0}, "steps_per_task must be positive"),
    ({"tasks": ["reach-v3", "reach-v3"]}, "distinct"),
    ({"agent": AgentConfig(batch_size=0)}, "AgentConfig.batch_size must be >= 1"),
    ({"tasks": ["reach-v3"], "revisits": ["push-v3"]}, r"revisits \['push-v3'\] are not tasks of the stream"),
    ({"method": "packnet", "revisits": ["reach-v3"]}, "packnet packs each task once"),
])
def test_train_config_errors(kwargs, match):
    with pytest.raises(TrainConfigError, match=match):
        TrainConfig(**kwargs).validate()


def test_unknown_task_is_refused(tmp_path):
    with pytest.raises(TrainConfigError, match="no subtask of the task library uses 'assembly-v3'"):
        train(TrainConfig(tasks=["assembly-v3"], out=str(tmp_path)))


def test_tiny_two_task_run_writes_loadable_checkpoint_and_metrics(tmp_path):
    cfg = TrainConfig(tasks=["reach-v3", "drawer-close-v3"], steps_per_task=300, eval_every=200, eval_episodes=1,
                      random_steps=100, dpmm_first=150, dpmm_every=1000, dpmm_samples=200, encoder_every=10,
                      log_every=100, seed=1, out=str(tmp_path / "run"), agent=AgentConfig(hidden=32, batch_size=32))
    metrics = train(cfg)
    run = tmp_path / "run"
    saved = json.loads((run / "metrics.json").read_text())
    assert saved["success_matrix"]["columns_trained_after"] == ["reach-v3", "drawer-close-v3"]
    assert np.array(saved["success_matrix"]["values"]).shape == (2, 2)
    assert saved["final_success"] == metrics["final_success"] and set(saved["forgetting"]) == {"reach-v3"}
    steps = [row["step"] for row in saved["curve"]]
    assert steps == [200, 300, 400, 600], steps  # every eval_every steps plus the end of each task
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    assert [int(r["step"]) for r in rows] == steps and "drawer-close-v3" in rows[0]
    events = [json.loads(line)["event"] for line in open(run / "train_log.jsonl")]
    assert {"train", "eval", "dpmm_fit"} <= set(events)

    ckpt = load_checkpoint(run)
    prov = ckpt.manifest["provenance"]
    assert prov["tasks_trained"] == ["reach-v3", "drawer-close-v3"] and prov["total_steps"] == 600
    assert set(prov["metaworld_success"]) == {"reach-v3", "drawer-close-v3"}
    policy = LegionPolicy.load(run)
    env = MetaWorldTaskEnv("reach-v3", seed=5)
    obs, _ = env.reset()
    from legion_language.embedding import TextEmbedder

    embedder = TextEmbedder()
    policy.check_embedder(embedder.name, embedder.dim)
    action, component = policy.act(obs, embedder.embed("reach the goal"))
    assert action.shape == (4,) and 0 <= component < policy.agent.knowledge_space.K


def test_cli_paper_preset_trains_the_official_networks(tmp_path):
    from typer.testing import CliRunner

    from legion_runtime.cli import app

    runner = CliRunner()
    bad = runner.invoke(app, ["train", "--agent-preset", "huge", "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "--agent-preset must be 'default' or 'paper'" in bad.output
    result = runner.invoke(app, ["train", "--recipe", "paper", "--tasks", "reach-v3", "--agent-preset", "paper",
                                 "--dpmm-deletes", "--steps-per-task", "160", "--random-steps", "150", "--eval-every", "1000",
                                 "--eval-episodes", "1", "--dpmm-first", "100", "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    config = load_checkpoint(tmp_path / "run").manifest["agent_config"]
    assert config == {**AgentConfig.paper(embed_dim=384, dpmm_deletes=True).to_dict()}


def test_sigkilled_run_resumes_from_its_last_evaluation(tmp_path):
    """A run killed with SIGKILL mid-visit continues from state.pt and loses at most one eval interval."""
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "run"
    args = [sys.executable, "-m", "legion_runtime.cli", "train", "--recipe", "paper", "--tasks", "reach-v3,push-v3", "--method", "finetune",
            "--steps-per-task", "600", "--eval-every", "200", "--eval-episodes", "1", "--random-steps", "100",
            "--hidden", "32", "--batch-size", "32", "--seed", "2", "--out", str(out)]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and not (out / "state.pt").exists():
        time.sleep(0.2)
    time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    import torch

    saved = torch.load(out / "state.pt", weights_only=False)
    done_before = saved["progress"]["total"]
    assert 200 <= done_before < 1200, "killed before the run finished"
    steps_before = [r["step"] for r in saved["curve"]]
    mismatch = subprocess.run(args[:-2] + ["--out", str(out), "--resume", "--seed", "3"], capture_output=True, text=True)
    assert mismatch.returncode == 2 and "settings ['seed'] differ" in " ".join(mismatch.stdout.split())
    subprocess.run(args + ["--resume"], check=True, capture_output=True, timeout=600)
    metrics = json.loads((out / "metrics.json").read_text())
    steps = [r["step"] for r in metrics["curve"]]
    assert steps == [200, 400, 600, 800, 1000, 1200] and steps[:len(steps_before)] == steps_before
    assert metrics["visits_completed"] == 2 and not list(out.glob(".state.pt.tmp-*"))
    again = subprocess.run(args + ["--resume"], check=True, capture_output=True, text=True, timeout=600)
    assert "final success" in again.stdout and json.loads((out / "metrics.json").read_text()) == metrics
    assert os.path.getsize(out / "state.pt") > 0

    # a copy of the finished run, resumed elsewhere with a revisit: one more visit, the first two as they were
    import shutil

    extended = tmp_path / "extended"
    shutil.copytree(out, extended)
    args_x = args[:-1] + [str(extended)]
    subprocess.run(args_x + ["--resume", "--revisit", "reach-v3"], check=True, capture_output=True, timeout=600)
    more = json.loads((extended / "metrics.json").read_text())
    assert more["visits"] == ["reach-v3", "push-v3", "reach-v3"] and more["visits_completed"] == 3
    assert [r["step"] for r in more["curve"]] == steps + [1400, 1600, 1800] and more["curve"][:6] == metrics["curve"]
    assert len(more["success_matrix"]["values"][0]) == 3 and "loop1->loop2" in more["few_shot_improvement"]["reach-v3"]
    assert json.loads((out / "metrics.json").read_text()) == metrics, "the original run is untouched"
    other = subprocess.run(args_x + ["--resume", "--revisit", "push-v3"], capture_output=True, text=True)
    assert other.returncode == 2 and "settings ['revisits'] differ" in " ".join(other.stdout.split())


def test_report_compares_runs_and_draws_figures(tmp_path):
    from typer.testing import CliRunner

    from legion_runtime.cli import app

    runs = []
    for method in ("legion", "finetune"):
        cfg = TrainConfig(tasks=["reach-v3", "drawer-close-v3"], method=method, steps_per_task=200, eval_every=100,
                          eval_episodes=1, random_steps=100, dpmm_first=150, dpmm_samples=200, encoder_every=10,
                          log_every=100, seed=1, out=str(tmp_path / method), agent=AgentConfig(hidden=16, batch_size=16))
        train(cfg)
        runs.append(str(tmp_path / method))
    assert len(list((tmp_path / "legion" / "latents").glob("visit_*.npz"))) == 2
    result = CliRunner().invoke(app, ["report", *runs, "--figures", str(tmp_path / "fig"),
                                      "--reference", runs[1], "--json", str(tmp_path / "rows.json")])
    assert result.exit_code == 0, repr(result.exception)
    assert "paper LEGION" in result.output and "success matrix" in result.output
    rows = json.loads((tmp_path / "rows.json").read_text())
    assert [r["method"] for r in rows] == ["legion", "finetune"] and rows[1]["forward_transfer_cw"] == "0.00"
    names = sorted(p.name for p in (tmp_path / "fig").iterdir())
    assert names == ["average_success.png", "success_matrix_0_legion_s1.png", "success_matrix_1_finetune_s1.png",
                     "tsne_0_legion_s1.png"]
    bad = CliRunner().invoke(app, ["report", str(tmp_path)])
    assert bad.exit_code == 2 and "no readable metrics.json" in bad.output


def test_few_shot_protocol_is_the_papers():
    from legion_policy.trainer import few_shot_protocol

    cfg = few_shot_protocol(steps_per_task=1000)
    cfg.validate()
    assert cfg.visits() == ["reach-v3", "push-v3", "faucet-open-v3", "button-press-topdown-v3", "window-close-v3"] * 3
    assert (cfg.replay, cfg.fifo_visits, cfg.steps_per_task) == ("fifo", 3, 1000)
    assert TrainConfig(tasks=["reach-v3", "push-v3", "door-open-v3"], order="reverse").stream() == \
        ["door-open-v3", "push-v3", "reach-v3"]
    assert TrainConfig(tasks=["door-open-v3", "reach-v3", "push-v3"], order="paper").stream() == \
        ["reach-v3", "push-v3", "door-open-v3"]
    shuffled = TrainConfig(tasks=list(cfg.tasks), order="random", seed=4).stream()
    assert sorted(shuffled) == sorted(cfg.tasks) and shuffled == TrainConfig(tasks=list(cfg.tasks), order="random", seed=4).stream()
    with pytest.raises(TrainConfigError, match="packnet packs each task once"):
        few_shot_protocol(method="packnet").validate()


def test_device_auto_is_cuda_when_present_and_cuda_without_one_is_refused():
    import torch

    from legion_policy.train_run import resolve_device

    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(TrainConfigError, match="no CUDA device"):
            resolve_device("cuda")
    with pytest.raises(TrainConfigError, match="device must be 'cpu', 'cuda' or 'auto'"):
        TrainConfig(device="tpu").validate()


def test_cuda_updates_match_cpu_up_to_float_tolerance():
    """The same SAC and encoder updates on the GPU and on the CPU give the same weights up to float tolerance
    (noise is drawn from the CPU generator on both). Runs where CUDA is present (the lent GPU machine)."""
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device on this machine")
    from legion_policy.agent import LegionAgent

    table = np.random.default_rng(0).normal(size=(4, 384)).astype(np.float32)
    agents, replays = {}, {}
    for device in ("cpu", "cuda"):
        agents[device] = LegionAgent(AgentConfig(embed_dim=384, hidden=64, batch_size=64), seed=3).to(device)
        replays[device] = ReplayBuffer(500, 12, 4, table, device=device)
        rng = np.random.default_rng(1)
        for _ in range(500):
            replays[device].add(rng.normal(size=12), rng.uniform(-1, 1, 4), rng.normal(), rng.normal(size=12), 0.0,
                                phrase=int(rng.integers(4)), task=0)
    for device in ("cpu", "cuda"):
        torch.manual_seed(7)
        rng = np.random.default_rng(2)
        for _ in range(20):
            agents[device].update_sac(replays[device].sample(64, rng))
            agents[device].update_encoder(replays[device].sample(64, rng))
    cpu, gpu = agents["cpu"].tensors(), agents["cuda"].tensors()
    for name in cpu:
        torch.testing.assert_close(gpu[name], cpu[name], rtol=1e-3, atol=1e-4, msg=name)
