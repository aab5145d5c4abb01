"""Training at the table's layout (``legion train --layout table``): the KUKA Meta-World tasks with their object set
where the long-horizon table puts it and the hand where the table starts the subtask; its demonstrations; and the
table running such skills without any frame mapping. Real MuJoCo scenes throughout."""
import os

os.environ.setdefault("MUJOCO_GL", "egl")  # before the first mujoco import of the session

import random

import numpy as np
import pytest
from typer.testing import CliRunner

from legion_policy.checkpoint import LegionPolicy
from legion_policy.demonstrations import path_for, read_demonstrations
from legion_language.tasks import load_task_library
from legion_policy.trainer import TrainConfig, TrainConfigError, train
from legion_runtime.cli import app
from legion_runtime.long_horizon import run_trial, table_frames
from legion_runtime.main_job import make_chain
from legion_runtime.runner import ControlLoop
from legion_sim.metaworld_env import MetaWorldTaskEnv
from legion_sim.table_scene import JITTER_M, TASKS_BY_ID, TablePlant, layout_start
from tests.test_long_horizon import SeeingController

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("env_id", ["push-v3", "button-press-topdown-v3", "window-close-v3"])
def test_the_table_layout_puts_the_set_where_the_table_does_and_the_hand_at_the_subtasks_start(env_id):
    env = MetaWorldTaskEnv(env_id, seed=3, robot="kuka", control="joint", layout="table")
    table = TablePlant(seed=3)
    anchor = np.asarray(TASKS_BY_ID[env_id].anchor)
    for _ in range(5):
        obs, _ = env.reset()
        root = env.unwrapped_metaworld._last_rand_vec[:3]
        assert np.all(np.abs(root[:2] - anchor[:2]) <= JITTER_M + 1e-9) and root[2] == pytest.approx(anchor[2])
        # after the reset's settling; at the button set's nearest jitter the open gripper touches its head: up to 7 mm
        np.testing.assert_allclose(obs[:3], layout_start(env_id), atol=0.01)
        if env_id == "push-v3":  # the goal as the table's marker: 0.2 m further, within both jitters
            assert np.all(np.abs(obs[9:11] - obs[3:5] - [0.0, 0.2]) <= 4 * JITTER_M + 0.01), obs
    # the start is where the table starts that subtask with every set at its anchor
    np.testing.assert_allclose(layout_start(env_id), TablePlant(seed=0, jitter_m=0.0).skill_starts()[env_id])
    table.close()


@pytest.mark.parametrize("env_id", list(TASKS_BY_ID))
def test_the_observed_goal_is_the_tasks_goal_at_the_table_layout(env_id):
    # Meta-World clips the observation to its goal box: left at Meta-World's placements it moved the table's push goal
    # 11 cm (and rewarded the clipped one)
    env = MetaWorldTaskEnv(env_id, seed=1, robot="kuka", control="joint", layout="table")
    for _ in range(4):
        env.reset()
        obs, *_ = env.step(np.zeros(4, np.float32))
        np.testing.assert_allclose(obs[9:12], env.unwrapped_metaworld._target_pos, atol=1e-6, err_msg=env_id)


def test_the_table_layout_is_refused_for_the_sawyer_and_for_tasks_off_the_table():
    with pytest.raises(ValueError, match="layout 'table' needs robot 'kuka'"):
        MetaWorldTaskEnv("push-v3", robot="sawyer", layout="table")
    with pytest.raises(ValueError, match="a task of the table"):
        MetaWorldTaskEnv("reach-v3", robot="kuka", control="joint", layout="table")
    with pytest.raises(ValueError, match="layout must be one of"):
        MetaWorldTaskEnv("push-v3", robot="kuka", layout="kitchen")
    with pytest.raises(TrainConfigError, match="layout 'table' needs robot 'kuka' and tasks of the table"):
        TrainConfig(tasks=["reach-v3", "push-v3"], robot="kuka", control="joint", layout="table").validate()


@pytest.fixture(scope="module")
def table_demos(tmp_path_factory):
    out = tmp_path_factory.mktemp("demos-table")
    result = CliRunner().invoke(app, ["demos", "--layout", "table", "--tasks", "push-v3,window-close-v3",
                                      "--episodes", "2", "--out", str(out), "--seed", "5"])
    assert result.exit_code == 0, result.output
    return out


def test_demonstrations_at_the_table_layout_succeed_and_say_so(table_demos):
    for task in ("push-v3", "window-close-v3"):
        demo = read_demonstrations(path_for(table_demos, task))
        assert demo.meta["layout"] == "table" and demo.meta["successes"] == 2, demo.meta
        np.testing.assert_allclose(demo.obs[0][:3], layout_start(task), atol=0.003)


def test_a_run_refuses_demonstrations_of_another_layout(table_demos, tmp_path):
    cfg = TrainConfig(tasks=["push-v3"], steps_per_task=200, eval_every=200, eval_episodes=1, random_steps=100,
                      out=str(tmp_path / "run"), demos=str(table_demos), robot="kuka", control="joint")
    with pytest.raises(TrainConfigError, match="recorded at layout 'table', and this run trains at layout 'metaworld'"):
        train(cfg)


def test_the_table_runs_table_trained_skills_from_their_training_start_without_mapping():
    plant = TablePlant(seed=0)
    plant.reset(4)
    how = table_frames(plant, "table")
    assert how["workspace_offsets"] is None
    spy = SeeingController()
    seen = spy.seen
    handle = plant.objects()["window_handle"]
    result = run_trial("close the window", plant=plant, loop=ControlLoop(spy, *make_chain()),
                       library=load_task_library(), controller=spy, embed=lambda _t: np.zeros(1, np.float32),
                       rng=random.Random(4), **how)
    assert result.report["success"], result.report
    np.testing.assert_allclose(seen[0][:3], layout_start("window-close-v3"), atol=0.003)  # unshifted, as trained
    np.testing.assert_allclose(seen[0][3:6], handle, atol=0.005)
    plant.close()
    with pytest.raises(ValueError, match="layout must be"):
        table_frames(plant, "kitchen")


def test_checkpoints_say_where_they_were_trained():
    policy = LegionPolicy.load(os.path.join(ROOT, "models", "stream-efficient", "legion", "checkpoint"))
    assert policy.layout == "metaworld"  # recorded before layouts: Meta-World's
