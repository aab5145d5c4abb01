"""KUKA Meta-World: Meta-World's own task code with the iiwa 14 + 2F-85, in mocap and joint control."""
import gymnasium as gym
import metaworld.policies as mw_policies
import numpy as np
import pytest

import legion_sim  # noqa: F401  (registers the legion/* Gymnasium ids)
from legion_sim.metaworld_env import PAPER_TASKS, MetaWorldTaskEnv
from sim2real.kinematics import JOINT_LIMITS_RAD


def scripted(task: str):
    """Meta-World's scripted expert of ``task`` (e.g. ``SawyerDrawerCloseV3Policy``)."""
    return getattr(mw_policies, "Sawyer" + "".join(w.capitalize() for w in task[:-3].split("-")) + "V3Policy")()


def run_expert(env: MetaWorldTaskEnv, task: str, seed: int, steps: int) -> bool:
    env.reset(seed=seed)
    policy = scripted(task)
    for _ in range(steps):
        if env.step(policy.get_action(env.last_obs39))[4]["success"]:
            return True
    return False


@pytest.mark.parametrize("task", PAPER_TASKS)
def test_every_paper_task_is_registered_and_places_objects_as_meta_world(task):
    kuka = gym.make(f"legion/kuka-{task}").unwrapped
    sawyer = MetaWorldTaskEnv(task)
    for seed in (3, 4):
        obs, _ = kuka.reset(seed=seed)
        sawyer_obs, _ = sawyer.reset(seed=seed)
        assert obs.shape == (12,) and obs.dtype == np.float32
        # same task code, same seeded placement: object and goal where Meta-World puts them for the Sawyer
        np.testing.assert_allclose(obs[3:6], sawyer_obs[3:6], atol=2e-3)
        np.testing.assert_allclose(obs[9:12], sawyer_obs[9:12], atol=1e-4)
        mw = kuka.unwrapped_metaworld
        assert "KukaIiwa" not in type(mw).__name__ and type(mw).__name__.startswith("Kuka")
        # the hand starts at Meta-World's start (or just ahead of it where the iiwa cannot reach top-down)
        np.testing.assert_allclose(obs[0:3], mw.hand_init_pos, atol=0.01)
        ahead = mw.hand_init_pos - mw.metaworld_hand_init_pos
        assert ahead[0] == pytest.approx(0.0, abs=1e-6) and ahead[2] == pytest.approx(0.0, abs=1e-6)
        assert ahead[1] == pytest.approx(0.0, abs=1e-6) or (mw.metaworld_hand_init_pos[1] == pytest.approx(0.4) and 0.0 < ahead[1] <= 0.2)
    _, reward, terminated, truncated, info = kuka.step(np.zeros(4, np.float32))
    assert np.isfinite(reward) and not terminated and not truncated and isinstance(info["success"], bool)


def test_model_is_the_kuka_with_meta_worlds_names_and_no_sawyer_left():
    env = MetaWorldTaskEnv("reach-v3", robot="kuka")
    env.reset(seed=0)
    mw = env.unwrapped_metaworld
    model = mw.model
    names = {model.body(i).name for i in range(model.nbody)}
    assert {"hand", "leftpad", "rightpad", "leftclaw", "rightclaw", "mocap"} <= names
    assert not {"right_l0", "right_hand", "rightclaw_it"} & names  # the Sawyer's links are gone
    assert model.joint("objjoint").qposadr[0] == 9  # Meta-World's hard-coded object index still holds
    assert model.nu == 8  # 7 joint servos + the 2F-85 knuckle
    # left is +y at the grasp pose, as on the Sawyer (pick-place's pad tests rely on it)
    assert mw.data.body("leftpad").xpos[1] > mw.data.body("rightpad").xpos[1]
    # tcp_center, 4.5 cm below the hand along the approach axis
    np.testing.assert_allclose(mw.tcp_center, mw.data.body("hand").xpos - [0.0, 0.0, 0.045], atol=1e-3)


@pytest.mark.parametrize("task", ["reach-v3", "drawer-close-v3", "button-press-topdown-v3", "window-open-v3"])
def test_meta_worlds_expert_succeeds_on_the_kuka_in_mocap_mode(task):
    env = MetaWorldTaskEnv(task, robot="kuka", control="mocap", max_episode_steps=500)
    assert all(run_expert(env, task, seed, 500) for seed in (0, 1))


def test_joint_mode_drives_the_servos_through_ik_within_the_limits():
    env = MetaWorldTaskEnv("drawer-close-v3", robot="kuka", control="joint", max_episode_steps=300)
    mw = env.unwrapped_metaworld
    assert mw.data.eq_active[mw.model.equality("mocap_weld").id] == 0  # no weld: only the servos move the arm
    assert mw.frame_skip * mw.model.opt.timestep == pytest.approx(0.05)  # the robot's 20 Hz
    env.reset(seed=2)
    policy, q_log = scripted("drawer-close-v3"), []
    success = False
    for _ in range(300):
        success = env.step(policy.get_action(env.last_obs39))[4]["success"]
        q_log.append(mw.joint_positions())
        if success:
            break
    assert success
    assert np.all(np.abs(np.array(q_log)) <= JOINT_LIMITS_RAD)
    assert np.ptp(np.array(q_log), axis=0).max() > 0.1  # the arm moved on its joints


def test_gripper_follows_meta_worlds_sawyer_semantics():
    env = MetaWorldTaskEnv("reach-v3", robot="kuka")
    env.reset(seed=0)
    for _ in range(20):
        env.step(np.array([0.0, 0.0, 0.0, 0.0], np.float32))
    open_gap = env.last_obs39[3]
    for _ in range(20):
        env.step(np.array([0.0, 0.0, 0.0, 1.0], np.float32))
    assert open_gap > 0.8  # a = 0 keeps it open, as the Sawyer's fingers
    assert env.last_obs39[3] < open_gap - 0.3


def test_bad_robot_or_control_is_refused():
    with pytest.raises(ValueError, match="control='joint' needs robot='kuka'"):
        MetaWorldTaskEnv("reach-v3", control="joint")
    with pytest.raises(ValueError, match="control must be one of"):
        MetaWorldTaskEnv("reach-v3", robot="kuka", control="torque")
    with pytest.raises(ValueError, match="robot must be"):
        MetaWorldTaskEnv("reach-v3", robot="ur5")


def test_trainer_settings_for_the_kuka_are_checked():
    from legion_policy.trainer import TrainConfig, TrainConfigError

    TrainConfig(tasks=["reach-v3"], robot="kuka", control="joint").validate()
    with pytest.raises(TrainConfigError, match="control 'joint' needs robot 'kuka'"):
        TrainConfig(tasks=["reach-v3"], robot="sawyer", control="joint").validate()
    with pytest.raises(TrainConfigError, match="robot must be one of"):
        TrainConfig(tasks=["reach-v3"], robot="ur5").validate()
