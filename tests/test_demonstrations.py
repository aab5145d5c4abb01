"""`legion demos` writes demonstrations of the reference controllers for the ten tasks; the trainer reads them."""
import os

os.environ.setdefault("MUJOCO_GL", "egl")

import json
from dataclasses import replace

import numpy as np
import pytest
from typer.testing import CliRunner

from legion_policy.demonstrations import FORMAT, path_for, read_demonstrations, write_demonstrations
from legion_policy.trainer import TrainConfig, TrainConfigError, load_stream_demonstrations, train
from legion_runtime.cli import app
from legion_sim.metaworld_env import PAPER_TASKS


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    out = tmp_path_factory.mktemp("demos")
    result = CliRunner().invoke(app, ["demos", "--episodes", "1", "--out", str(out), "--seed", "40"])
    assert result.exit_code == 0, result.output
    print(result.output)
    return out


def test_all_ten_tasks_are_written_in_the_documented_format(folder):
    for task in PAPER_TASKS:
        demo = read_demonstrations(path_for(folder, task))
        n = len(demo)
        assert demo.meta["format"] == FORMAT and demo.task == task and demo.episodes == 1
        assert 5 < n <= 150 and demo.obs.shape == demo.next_obs.shape == (n, 12) and demo.action.shape == (n, 4)
        assert demo.success[-1] and demo.truncated[-1] and demo.truncated.sum() == 1  # ends at its first success
        assert demo.success_rate == 1.0 and demo.meta["successes"] == 1 and list(demo.seed) == [40]
        np.testing.assert_array_equal(demo.step, np.arange(n))
        np.testing.assert_array_equal(demo.obs[1:], demo.next_obs[:-1])  # one stream of consecutive states
        assert np.all(np.abs(demo.action) <= 1.0) and np.all((demo.reward >= 0) & (demo.reward <= 10))


def test_the_trainer_reads_them_into_its_replay(folder, tmp_path):
    found = load_stream_demonstrations(folder, list(PAPER_TASKS))
    assert sorted(found) == list(range(10))
    cfg = TrainConfig(tasks=["reach-v3"], steps_per_task=200, eval_every=200, eval_episodes=1, random_steps=100,
                      dpmm_first=150, dpmm_samples=100, out=str(tmp_path / "run"), demos=str(folder),
                      robot="kuka", control="joint",  # the robot and chain they were recorded on
                      demo_fraction=0.5)  # RLPD's symmetric sampling (the replay's share: test_replay)
    metrics = train(cfg)
    n = len(read_demonstrations(path_for(folder, "reach-v3")))
    assert metrics["demonstrations"] == {"reach-v3": n}
    events = [json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    (event,) = [e for e in events if e["event"] == "demonstrations"]
    assert event["transitions"] == n and event["success_rate"] == 1.0


def test_demo_fraction_needs_demonstrations_and_a_share_below_one(folder, tmp_path):
    with pytest.raises(TrainConfigError, match="demo_fraction must be in .0, 1. and needs demos"):
        TrainConfig(tasks=["reach-v3"], demo_fraction=0.5).validate()
    with pytest.raises(TrainConfigError, match="demo_fraction must be in"):
        TrainConfig(tasks=["reach-v3"], demos=str(folder), demo_fraction=1.0).validate()


def test_bad_files_and_folders_are_refused_with_the_fix(folder, tmp_path):
    with pytest.raises(TrainConfigError, match="legion demos --tasks push-v3"):
        load_stream_demonstrations(tmp_path, ["push-v3"])
    with pytest.raises(TrainConfigError, match="no folder"):
        load_stream_demonstrations(tmp_path / "nope", ["push-v3"])
    demo = read_demonstrations(path_for(folder, "push-v3"))
    demo.action = demo.action[:, :3]
    with pytest.raises(ValueError, match=r"action must be \(\d+, 4\) float32"):
        write_demonstrations(tmp_path / "bad.npz", demo)
    np.savez(tmp_path / "push-v3.npz", obs=np.zeros((2, 12)))
    with pytest.raises(TrainConfigError, match="not a LEGION demonstration file"):
        load_stream_demonstrations(tmp_path, ["push-v3"])
    result = CliRunner().invoke(app, ["demos", "--tasks", "assembly-v3", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "no reference controller for ['assembly-v3']" in result.output


def test_demonstrations_with_another_reward_than_the_run_trains_on_are_refused(folder, tmp_path):
    """The recorded rewards are v2: a run that trains the task on v1 (x0.01) would mix two reward scales."""
    cfg = TrainConfig(tasks=["reach-v3"], steps_per_task=200, eval_every=200, eval_episodes=1, random_steps=100,
                      out=str(tmp_path / "run"), demos=str(folder), reward_v1_tasks=["reach-v3"], robot="kuka",
                      control="joint")
    with pytest.raises(TrainConfigError, match="demonstrations of reach-v3 carry v2 rewards, and this run trains it "
                                               "on v1"):
        train(cfg)
    # recorded on the KUKA chain: a Sawyer run would clone another robot's actions
    with pytest.raises(TrainConfigError, match="recorded on .*KukaPlant.*and this run trains robot 'sawyer'"):
        train(replace(cfg, reward_v1_tasks=[], robot="sawyer", control="mocap"))


def test_the_efficient_recipe_sets_the_measured_options_and_explicit_ones_win(tmp_path):
    """`legion train --recipe efficient`: KUKA joint chain, models/demos-200, RLPD sampling, cloning, LayerNorm
    critics, UTD 2 (docs/sample-efficiency.md); an option given explicitly overrides the recipe's."""
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", "--recipe", "efficient", "--utd", "1", "--tasks", "reach-v3",
                                      "--steps-per-task", "200", "--random-steps", "100", "--eval-every", "200",
                                      "--eval-episodes", "1", "--dpmm-first", "150", "--hidden", "32",
                                      "--batch-size", "32", "--out", str(out)])
    assert result.exit_code == 0, result.output
    from legion_policy.checkpoint import load_checkpoint

    metrics = json.loads((out / "metrics.json").read_text())
    config = load_checkpoint(out).manifest["provenance"]["train_config"]
    assert (config["robot"], config["control"], config["demo_fraction"], config["updates_per_step"]) == \
        ("kuka", "joint", 0.5, 1.0)
    assert config["demos"].endswith("models/demos-200")
    assert config["agent"]["bc_weight"] == 0.4 and config["agent"]["critic_layer_norm"] is True
    assert metrics["demonstrations"] == {"reach-v3": len(read_demonstrations(path_for(config["demos"], "reach-v3")))}
    bad = CliRunner().invoke(app, ["train", "--recipe", "fast", "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "--recipe must be one of paper, efficient" in bad.output


def test_with_recipe_sets_the_sweeps_settings():
    from legion_policy.train_config import RECIPES, with_recipe

    cfg = with_recipe(TrainConfig(tasks=["push-v3"]), "efficient")
    assert (cfg.robot, cfg.control, cfg.updates_per_step, cfg.demo_fraction) == ("kuka", "joint", 2.0, 0.5)
    assert cfg.demos == RECIPES["efficient"]["demos"] and cfg.agent.bc_weight == 0.4 and cfg.agent.critic_layer_norm
    cfg.validate()
    paper = with_recipe(cfg, "paper")
    assert (paper.robot, paper.demos, paper.demo_fraction, paper.agent.bc_weight) == ("sawyer", None, None, 0.0)
    with pytest.raises(TrainConfigError, match="recipe must be one of paper, efficient"):
        with_recipe(cfg, "fast")


def test_dart_demonstrations_execute_noisy_actions_that_the_controller_corrects(tmp_path):
    """`legion demos --action-noise 0.3` (DART): the recorded (executed) action is the controller's TCP displacement
    plus N(0, 0.3^2) per axis, clipped, with the controller's gripper command; the controller corrects the drift, so
    the episodes still succeed, and the files say which noise they hold."""
    from legion_sim.reference import ReferenceController

    result = CliRunner().invoke(app, ["demos", "--tasks", "pick-place-v3", "--episodes", "2", "--seed", "40",
                                      "--action-noise", "0.3", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    demo = read_demonstrations(path_for(tmp_path, "pick-place-v3"))
    assert demo.meta["action_noise"] == 0.3 and demo.success_rate == 1.0
    noise = []
    for episode in range(2):
        rows = demo.episode == episode
        controller = ReferenceController("pick-place-v3")  # replayed on the recorded states: its clean actions
        clean = np.array([controller.act(obs)[0] for obs in demo.obs[rows]], np.float32)
        np.testing.assert_array_equal(demo.action[rows, 3], clean[:, 3])
        inside = np.abs(demo.action[rows, :3]) < 1.0  # not clipped
        noise.append((demo.action[rows, :3] - clean[:, :3])[inside])
    noise = np.concatenate(noise)
    assert abs(noise.mean()) < 0.05 and 0.25 < noise.std() < 0.35, (noise.mean(), noise.std())
    bad = CliRunner().invoke(app, ["demos", "--tasks", "reach-v3", "--action-noise", "1.5", "--out", str(tmp_path)])
    assert bad.exit_code == 2 and "--action-noise is DART's sigma" in bad.output
