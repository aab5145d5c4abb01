"""Reference controllers on the KUKA + Menagerie 2F-85 through the deployed chain, and the gripper models."""
import os

os.environ.setdefault("MUJOCO_GL", "egl")

import warnings

import numpy as np
import pytest

from legion_runtime.main_job import make_chain
from legion_runtime.runner import ControlLoop
from legion_sim.kuka_scene import GRIPPER_CLOSED_RAD, GRIPPER_MODELS, SceneConfig
from legion_sim.metaworld_env import PAPER_TASKS
from legion_sim.plant import KukaPlant
from legion_sim.reference import PLANS, ReferenceController, grasp_lift_test


@pytest.mark.parametrize("task", PAPER_TASKS)
def test_each_task_is_done_through_the_deployed_chain(task):
    # three randomised placements per task, 150 steps (7.5 s) each, Real2Sim -> controller -> Sim2Real -> safety -> IK
    with KukaPlant(task, seed=0) as plant:
        controller = ReferenceController(task)
        loop = ControlLoop(controller, *make_chain())
        steps = []
        for i in range(3):
            plant.reset(500 + i)
            controller.reset()
            out = loop.run_subtask(plant, task, np.zeros(1, np.float32), 150)
            assert out.success, (task, i, controller.phase, out)
            assert out.fault == "" and not out.skipped
            steps.append(out.steps)
    print(task, "steps to success:", steps)


@pytest.mark.parametrize("task", ["pick-place-v3", "door-open-v3"])
def test_mocap_mode_too(task):
    from legion_sim.kuka_metaworld import METAWORLD_STEP_S
    from legion_sim.metaworld_env import MetaWorldTaskEnv

    env = MetaWorldTaskEnv(task, seed=0, robot="kuka", control="mocap", max_episode_steps=600)
    controller = ReferenceController(task, dt=METAWORLD_STEP_S)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        obs, _ = env.reset(seed=7)
        for _ in range(600):
            obs, _, _, truncated, info = env.step(controller.act(obs)[0])
            if info["success"] or truncated:
                break
    env.close()
    assert info["success"], controller.phase


def test_menagerie_gripper_lifts_and_holds_the_puck_like_the_datasheet_says():
    # the grasp benchmark's trial: lift the pick-place puck 10 cm, hold it 2 s; Robotiq 2F-85: 85 mm stroke
    with KukaPlant("pick-place-v3", seed=0, config=SceneConfig(gripper="menagerie")) as plant:
        gap = lambda: float(np.linalg.norm(np.subtract(*plant.data.site_xpos[plant._pads])))  # noqa: E731
        assert 0.085 <= gap() - 0.008 <= 0.087  # pad centres 4 mm behind each pad face
        plant.reset(3)
        start = plant.object_position()
        controller = ReferenceController("grasp-lift", phases=grasp_lift_test(0.10, 2.0))
        ControlLoop(controller, *make_chain()).run_subtask(plant, "grasp-lift", np.zeros(1, np.float32), 300,
                                                           until=lambda tcp, seen: controller.phase == "done")
        assert controller.phase == "done"
        assert plant.object_position()[2] - start[2] >= 0.095
        assert np.linalg.norm(plant.object_position() - plant.tcp_position()) < 0.02


def test_free_closing_time_matches_the_datasheet_speed():
    # 85 mm at 150 mm/s (the datasheet's fastest): 0.57 s; the model closes to 95 % in 0.55 s
    with KukaPlant("reach-v3", seed=0, config=SceneConfig(gripper="menagerie")) as plant:
        q, _ = plant.joint_state()
        steps = 0
        while plant.gripper_position() < 0.95 * GRIPPER_CLOSED_RAD and steps < 40:
            plant.step(q, 1.0)
            steps += 1
    assert 0.45 <= steps * plant.dt <= 0.65, steps


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="no reference controller for 'assembly-v3'"):
        ReferenceController("assembly-v3")
    with pytest.raises(ValueError, match="12-d observation"):
        ReferenceController("reach-v3").act(np.zeros(11))
    with pytest.raises(ValueError, match="dt"):
        ReferenceController("reach-v3", dt=0.0)
    with pytest.raises(ValueError, match="unknown gripper model 'robotiq'"):
        SceneConfig(gripper="robotiq")
    assert set(PLANS) == set(PAPER_TASKS) and set(GRIPPER_MODELS) == {"robosuite", "menagerie"}
