"""The "gripper" observation layout through the stack: the 2F-85's opening in slot 6 from its knuckle joint
(Real2Sim, the deployed chain), from Meta-World's obs[3] (training), recorded in demonstrations and checkpoints, and
refused where the two sides disagree. All on the real KUKA + 2F-85 MuJoCo scene."""
import os

os.environ.setdefault("MUJOCO_GL", "egl")

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from legion_runtime.cli import app
from legion_runtime.main_job import make_chain
from legion_runtime.runner import ControlLoop
from sim2real.gripper import KNUCKLE_TO_PAD_DISTANCE, pad_distance
from sim2real.observation import GRIPPER_SLOT
from sim2real.transforms import Real2Sim

Q = np.deg2rad([90.0, 30.0, 0.0, -90.0, 0.0, 60.0, 0.0])
OBJ, GOAL = np.array([0.05, 0.65, 0.02]), np.array([-0.1, 0.85, 0.2])


class _Seen:
    """Keeps every observation the chain gives a reference controller."""

    def __init__(self, controller):
        self.controller, self.obs = controller, []

    def act(self, obs, embedding):
        self.obs.append(obs.copy())
        return self.controller.act(obs, embedding)


def test_the_knuckle_map_reads_the_simulated_2f85s_pads_and_a_grasp_through_the_chain():
    """No contact: the map is the measured pads' distance within 0.5 mm at any knuckle angle. A pick-place by the
    reference controller through the gripper-layout chain: the chain's opening (from the knuckle) stays within 0.01
    of Meta-World's (the pads' measured distance) at every cycle, and reads the puck's grip (0.3 .. 0.6) while held."""
    from legion_sim.kuka_scene import GRIPPER_CLOSED_RAD
    from legion_sim.plant import KukaPlant
    from legion_sim.reference import ReferenceController

    plant = KukaPlant("pick-place-v3", seed=0)
    plant.reset(0)
    q, _ = plant.joint_state()
    errors = []
    for knuckle in (0.0, 0.13, 0.37, 0.55, 0.71, GRIPPER_CLOSED_RAD):
        for _ in range(15):
            plant.step(q, knuckle / GRIPPER_CLOSED_RAD)
        errors.append(pad_distance(plant.gripper_position()) - plant.metaworld_observation()[3] * 0.1)
    assert np.max(np.abs(errors)) < 5e-4, errors

    plant.reset(0)
    seen = _Seen(ReferenceController("pick-place-v3"))
    measured = []
    loop = ControlLoop(seen, *make_chain(observation_layout="gripper"))
    outcome = loop.run_subtask(plant, "pick-place-v3", np.zeros(1, np.float32), 150,
                               on_step=lambda _: measured.append(plant.metaworld_observation()[3]))
    plant.close()
    assert outcome.success
    built = np.array([o[GRIPPER_SLOT] for o in seen.obs])
    # the observation of cycle i is built before step i: compare with what Meta-World reads after step i - 1
    np.testing.assert_allclose(built[1:], np.array(measured[:len(built) - 1]), atol=0.01)
    assert built[0] > 0.9 and 0.3 < built[-1] < 0.6  # opens wide; ends holding the 4 cm puck


def test_real2sim_builds_the_layout_it_is_given():
    paper, grip = Real2Sim(), Real2Sim(observation_layout="gripper")
    s = paper.observation(Q, OBJ, GOAL, knuckle_rad=0.4)  # the paper's layout does not read the gripper
    opened, closed = (grip.observation(Q, OBJ, GOAL, knuckle_rad=k) for k in (0.0, 0.7929))
    assert s[GRIPPER_SLOT] == 0.0
    assert opened[GRIPPER_SLOT] == pytest.approx(KNUCKLE_TO_PAD_DISTANCE[0, 1] / 0.1)
    assert closed[GRIPPER_SLOT] == pytest.approx(0.07, abs=0.005)
    np.testing.assert_array_equal(np.delete(opened, GRIPPER_SLOT), np.delete(s, GRIPPER_SLOT))
    with pytest.raises(ValueError, match="'gripper' observation layout needs the 2F-85's knuckle position"):
        grip.observation(Q, OBJ, GOAL)
    for bad in (1.2, -0.1, float("nan")):
        with pytest.raises(ValueError, match=r"knuckle position must be a finite angle in \[0.0, 0.8\] rad"):
            grip.observation(Q, OBJ, GOAL, knuckle_rad=bad)
    with pytest.raises(ValueError, match=r"observation layout must be one of \['paper', 'gripper'\], got 'pads'"):
        Real2Sim(observation_layout="pads")


def test_the_training_env_puts_metaworlds_opening_in_the_slot():
    from legion_sim.metaworld_env import MetaWorldTaskEnv

    paper = MetaWorldTaskEnv("pick-place-v3", seed=3, robot="kuka", control="joint")
    grip = MetaWorldTaskEnv("pick-place-v3", seed=3, robot="kuka", control="joint", observation_layout="gripper")
    (a, _), (b, info) = paper.reset(), grip.reset()
    assert a[GRIPPER_SLOT] == 0.0 and b[GRIPPER_SLOT] == pytest.approx(info["obs39"][3]) and b[GRIPPER_SLOT] > 0.9
    np.testing.assert_array_equal(np.delete(a, GRIPPER_SLOT), np.delete(b, GRIPPER_SLOT))
    for _ in range(15):
        b = grip.step(np.array([0.0, 0.0, 0.0, 1.0]))[0]  # close on nothing, far above the puck
    assert b[GRIPPER_SLOT] < 0.2
    with pytest.raises(ValueError, match="observation layout must be one of"):
        MetaWorldTaskEnv("reach-v3", observation_layout="39d")


def test_a_gripper_run_records_its_layout_and_deployment_builds_it(tmp_path):
    """Demonstrations recorded in the gripper layout, a run trained on it, its checkpoint through the deployed chain;
    paper-layout demonstrations and a paper-layout chain are refused with the fix."""
    from legion_policy.checkpoint import LegionPolicy
    from legion_policy.demonstrations import path_for, read_demonstrations
    from legion_policy.trainer import TrainConfig, TrainConfigError, train

    runner = CliRunner()
    demos, paper_demos = tmp_path / "demos", tmp_path / "paper-demos"
    for folder, layout in ((demos, "gripper"), (paper_demos, "paper")):
        result = runner.invoke(app, ["demos", "--tasks", "pick-place-v3", "--episodes", "1", "--seed", "3",
                                     "--observation-layout", layout, "--out", str(folder)])
        assert result.exit_code == 0, result.output
    demo = read_demonstrations(path_for(demos, "pick-place-v3"))
    assert demo.meta["observation_layout"] == "gripper" and demo.obs[0, GRIPPER_SLOT] > 0.9
    assert read_demonstrations(path_for(paper_demos, "pick-place-v3")).obs[:, GRIPPER_SLOT].max() == 0.0

    cfg = TrainConfig(tasks=["pick-place-v3"], steps_per_task=200, eval_every=200, eval_episodes=1, random_steps=100,
                      dpmm_first=150, dpmm_samples=100, encoder_every=10, robot="kuka", control="joint",
                      observation_layout="gripper", demos=str(paper_demos), demo_fraction=0.5, out=str(tmp_path / "run"))
    with pytest.raises(TrainConfigError, match="hold observations of layout 'paper', and this run trains on 'gripper': "
                                               "record them with `legion demos --observation-layout gripper`"):
        train(cfg)
    cfg.demos = str(demos)
    train(cfg)
    manifest = json.loads((tmp_path / "run" / "checkpoint" / "manifest.json").read_text())
    assert manifest["observation"]["name"] == "gripper"
    assert manifest["provenance"]["train_config"]["observation_layout"] == "gripper"
    policy = LegionPolicy.load(tmp_path / "run")
    assert policy.observation_layout == "gripper"
    with pytest.raises(ValueError, match="the policy takes the 'gripper' observation layout, and Real2Sim builds "
                                         "'paper'"):
        ControlLoop(policy, *make_chain())
    result = runner.invoke(app, ["evaluate", "--task", "pick-place-v3", "--episodes", "1", "--plant", "kuka",
                                 "--checkpoint", str(tmp_path / "run")])
    assert result.exit_code == 0 and "pick-place-v3 on kuka (simulator): success" in result.output, result.output
    with pytest.raises(TrainConfigError, match=r"observation_layout must be one of \['paper', 'gripper'\]"):
        TrainConfig(tasks=["reach-v3"], observation_layout="full").validate()
