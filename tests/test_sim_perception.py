"""Perception in the MuJoCo scene: the virtual RealSense, real tag36h11 textures, the detector, calibration,
goals from detections, and the control loop's behaviour when the object is not seen."""
import cv2
import mujoco
import numpy as np
import pytest
import yaml
from scipy.spatial.transform import Rotation
from sim_tag_frames import random_visible_tag_frame

from legion_runtime.sim_perception import SIM_CALIBRATION, CameraPerception
from legion_sim.calibration_rig import collect_samples, true_base_from_camera
from legion_sim.camera import CALIBRATION_TAG_SIZE_M, OCCLUDER_BODY, OCCLUDER_PARKED_POS, D435_COLOR_640x480
from legion_sim.plant import KukaPlant
from sim2real.calibration import calibrate_eye_on_base, check_calibration, write_calibration, write_samples
from sim2real.goals import ObjectNotSeenError
from sim2real.perception import PerceptionError, TagDetector, TagSpec


@pytest.fixture(scope="module")
def reach():
    with KukaPlant("reach-v3", seed=3) as plant:
        yield plant


def angle_deg(Ra, Rb):
    return float(np.degrees(Rotation.from_matrix(Ra.T @ Rb).magnitude()))


def test_the_camera_renders_with_the_d435_intrinsics(reach):
    """The tag centre lands where the pinhole model with the D435's fx, fy, cx, cy puts it (principal point too)."""
    import pupil_apriltags

    reach.reset(3)
    T = np.linalg.inv(reach.camera().pose_sim())
    s = reach.model.site("tag0").id
    p = T[:3, :3] @ reach.data.site_xpos[s] + T[:3, 3]
    uv = (D435_COLOR_640x480.matrix @ p)[:2] / p[2]
    gray = cv2.cvtColor(reach.camera().grab(), cv2.COLOR_RGB2GRAY)
    assert gray.shape == (480, 640)
    # full resolution, as TagDetector runs it (the default quad_decimate 2.0 misses this 25 px tag)
    found = [d for d in pupil_apriltags.Detector(families="tag36h11", quad_decimate=1.0).detect(gray) if d.tag_id == 0]
    assert len(found) == 1
    assert np.linalg.norm(found[0].center - uv) < 0.5, (found[0].center, uv)


def test_rendered_tags_are_detected_and_located_within_5_mm_at_half_a_metre_to_1_2_m(reach):
    rng = np.random.default_rng(0)
    detector = TagDetector({0: TagSpec(0, "puck", 0.04)})
    n, errors, angles, distances = 60, [], [], []
    for _ in range(n):
        rgb, truth, distance = random_visible_tag_frame(reach, rng)
        distances.append(distance)
        seen = detector.detect(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), reach.camera().intrinsics)
        if seen:
            errors.append(np.linalg.norm(seen[0].translation - truth[:3, 3]))
            angles.append(angle_deg(seen[0].rotation, truth[:3, :3]))
    rate = len(errors) / n
    print(f"{n} visible tags at {min(distances):.2f}-{max(distances):.2f} m: detected {rate:.1%}; position error "
          f"median {np.median(errors) * 1e3:.2f} mm, p90 {np.percentile(errors, 90) * 1e3:.2f} mm; "
          f"rotation median {np.median(angles):.2f} deg")
    assert min(distances) < 0.6 and max(distances) > 1.1
    assert rate >= 0.95
    assert np.median(errors) <= 0.005


def test_calibrating_the_simulated_camera_recovers_its_pose_within_5_mm_and_half_a_degree(tmp_path):
    A, B, plant = collect_samples(25, seed=0)
    truth = true_base_from_camera(plant)
    result = calibrate_eye_on_base(A, B, "park")
    dt = np.linalg.norm(result.base_from_camera[:3, 3] - truth[:3, 3])
    dr = angle_deg(result.base_from_camera[:3, :3], truth[:3, :3])
    print(f"25 simulated samples, park: camera pose error {dt * 1e3:.2f} mm, {dr:.3f} deg")
    assert dt < 0.005 and dr < 0.5
    shipped = CameraPerception().base_from_camera  # calibration/sim_camera_extrinsics.yaml is this very result
    assert np.linalg.norm(shipped[:3, 3] - result.base_from_camera[:3, 3]) < 1e-4, "re-run `legion calibrate-sim`"
    assert angle_deg(shipped[:3, :3], result.base_from_camera[:3, :3]) < 0.01
    # the check command's figures: small on new samples, large for a calibration 2 cm off
    A2, B2, other = collect_samples(10, seed=7)
    other.close()
    plant.close()
    write_samples(tmp_path / "new.yaml", A2, B2, D435_COLOR_640x480, CALIBRATION_TAG_SIZE_M)
    write_calibration(tmp_path / "good.yaml", result)
    good = check_calibration(tmp_path / "good.yaml", tmp_path / "new.yaml")
    result.base_from_camera[:3, 3] += [0.02, 0.0, 0.0]
    write_calibration(tmp_path / "bad.yaml", result)
    bad = check_calibration(tmp_path / "bad.yaml", tmp_path / "new.yaml")
    print(f"reprojection error on 10 new samples: {np.median(good.reprojection_px):.2f} px; 2 cm off: "
          f"{np.median(bad.reprojection_px):.2f} px")
    assert np.median(good.reprojection_px) < 1.5
    assert np.median(bad.reprojection_px) > 5


def test_the_shipped_sim_calibration_matches_the_scene():
    with KukaPlant("reach-v3", seed=0) as plant:
        truth = true_base_from_camera(plant)
    found = CameraPerception().base_from_camera
    assert np.linalg.norm(found[:3, 3] - truth[:3, 3]) < 0.005
    assert angle_deg(found[:3, :3], truth[:3, :3]) < 0.5


@pytest.mark.parametrize("task", ["reach-v3", "drawer-close-v3"])
def test_object_and_goal_from_the_camera_match_the_simulator(task):
    perception = CameraPerception()
    with KukaPlant(task, seed=0) as plant:
        for seed in range(3):
            plant.reset(seed)
            objects = perception.for_subtask(plant, task)
            goal = objects.start(0.0)
            obj, goal_again = objects(0.05)
            print(task, seed, f"object error {np.linalg.norm(obj - plant.object_position()) * 1e3:.1f} mm, goal error "
                  f"{np.linalg.norm(goal - plant.goal_position()) * 1e3:.1f} mm")
            assert np.linalg.norm(goal - plant.goal_position()) < 0.01
            assert np.linalg.norm(obj - plant.object_position()) < 0.01
            np.testing.assert_array_equal(goal, goal_again)  # the goal is fixed at the start


def occlude(plant, site="tag0"):
    """Put the grey card 30 cm in front of the camera on the line to ``site``."""
    cam = plant.camera().pose_sim()[:3, 3]
    target = plant.data.site_xpos[plant.model.site(site).id]
    mocap = plant.model.body_mocapid[plant.model.body(OCCLUDER_BODY).id]
    plant.data.mocap_pos[mocap] = cam + 0.3 * (target - cam) / np.linalg.norm(target - cam)
    mujoco.mj_forward(plant.model, plant.data)


def test_an_object_not_seen_at_the_start_is_not_attempted():
    with KukaPlant("reach-v3", seed=0) as plant:
        occlude(plant)
        with pytest.raises(ObjectNotSeenError, match="'puck' is not seen"):
            CameraPerception().for_subtask(plant, "reach-v3").start(0.0)


@pytest.mark.parametrize("fault", ["occlusion", "no_camera"])
def test_the_arm_holds_while_the_object_is_not_seen_and_resumes_after(fault):
    """Occlusion or a camera that delivers nothing: the loop holds (the arm does not move) once the last pose is
    older than max_age_s, and finishes the task once frames show the object again. Never a stale pose."""
    from pathlib import Path

    from legion_language.embedding import TextEmbedder
    from legion_runtime.main_job import load_policy, make_chain
    from legion_runtime.runner import ControlLoop

    policy = load_policy(Path("models/legion-reach-drawer"))
    embedding = TextEmbedder().embed("reach the goal")
    with KukaPlant("reach-v3", seed=1) as plant:  # (seed 2: the held wrist itself hides the puck's tag)
        objects = CameraPerception().for_subtask(plant, "reach-v3")
        objects.start(0.0)
        joints = []

        camera = objects.camera

        def on_step(step):
            joints.append(plant.joint_state()[0])
            if step == 1:  # the fault starts after two cycles ...
                if fault == "occlusion":
                    occlude(plant)
                else:
                    objects.camera = None
            if step == 12:  # ... and ends ten cycles later
                plant.data.mocap_pos[plant.model.body_mocapid[plant.model.body(OCCLUDER_BODY).id]] = OCCLUDER_PARKED_POS
                mujoco.mj_forward(plant.model, plant.data)
                objects.camera = camera

        outcome = ControlLoop(policy, *make_chain()).run_subtask(plant, "reach", embedding, 150, on_step=on_step,
                                                                 objects=objects)
    held = outcome.interventions.get("object_not_seen", 0)
    print(fault, outcome)
    assert 8 <= held <= 11  # max_age_s 0.15 s: the pose from the last good frame is used for up to 3 cycles
    # while held, the arm settles where it was: no joint moves by more than 2 mrad per cycle at the end of the hold
    still = np.abs(np.diff(np.array(joints[9:13]), axis=0)).max()
    assert still < 0.002, still
    assert outcome.success


def park_occluder(plant):
    plant.data.mocap_pos[plant.model.body_mocapid[plant.model.body(OCCLUDER_BODY).id]] = OCCLUDER_PARKED_POS
    mujoco.mj_forward(plant.model, plant.data)


@pytest.mark.parametrize("at_hand", [False, True])
def test_an_object_whose_tag_is_hidden_is_predicted_for_max_predict_s_and_never_without_frames(reach, at_hand):
    """max_predict_s > 0 (the table's runner): while frames arrive but the object's tag is hidden, its position is
    predicted, carried with the measured TCP when the TCP was at it at the last sighting (pushed), else left where it
    was last seen; flagged as a prediction. No frame at all (camera dead), or a hide longer than max_predict_s: None,
    and the loop holds."""
    reach.reset(3)
    park_occluder(reach)
    objects = CameraPerception(max_predict_s=0.5).for_subtask(reach, "reach-v3")
    objects.start(0.0)
    truth = reach.object_position()
    tcp = truth + (np.array([0.0, 0.0, 0.02]) if at_hand else np.array([0.0, -0.2, 0.2]))
    seen, goal = objects(0.05, tcp)
    assert not objects.predicted and np.linalg.norm(seen - truth) < 0.01
    occlude(reach)
    moved = np.array([0.04, -0.03, 0.05])
    predicted, goal_again = objects(0.30, tcp + moved)  # 0.25 s after the last sighting: stale (max_age_s 0.15)
    assert objects.predicted
    np.testing.assert_allclose(predicted, seen + moved if at_hand else seen, atol=1e-12)
    np.testing.assert_array_equal(goal_again, goal)
    camera, objects.camera = objects.camera, None
    assert objects(0.35, tcp) is None  # no frame at all: nothing is predicted
    objects.camera = camera
    assert objects(0.60, tcp) is None  # 0.55 s since the last sighting > max_predict_s
    # the fingers closed on it after its last sighting (they may have pushed it): no hand measurement either
    assert objects(0.90, tcp + 2 * moved, holding=True) is None
    park_occluder(reach)
    seen_again, _ = objects(1.05, tcp)
    assert not objects.predicted and np.linalg.norm(seen_again - truth) < 0.01


def test_a_held_object_is_measured_by_the_hand_while_the_grasp_holds_since_its_sighting(reach):
    """An object last seen at the TCP while the gripper held it is measured by the hand (TCP + the offset of that
    sighting) however long it is hidden; once the gripper stops reporting it, not again until it is seen held."""
    reach.reset(4)
    park_occluder(reach)
    objects = CameraPerception(max_predict_s=0.5).for_subtask(reach, "reach-v3")
    objects.start(0.0)
    truth = reach.object_position()
    tcp = truth + np.array([0.0, 0.0, 0.02])
    seen, _ = objects(0.05, tcp, holding=True)  # seen in the closed fingers
    occlude(reach)
    moved = np.array([0.04, -0.03, 0.05])
    held, _ = objects(0.90, tcp + moved, holding=True)  # 0.85 s hidden > max_predict_s: measured, not predicted
    assert not objects.predicted and objects.state.source == "hand"
    np.testing.assert_allclose(held, seen + moved, atol=1e-12)
    # the gripper stops reporting the object for a cycle (it slipped): held again, the hand no longer measures it
    # (it may have turned in the fingers); 0.95 s since the sighting: no prediction either, the loop holds
    assert objects(0.95, tcp + moved, holding=False) is None
    assert objects(1.00, tcp + moved, holding=True) is None and objects.state.source != "hand"
    park_occluder(reach)
    assert objects(1.05, tcp, holding=True) is not None and not objects.predicted  # seen again, held
    occlude(reach)
    assert objects(1.40, tcp + moved, holding=True) is not None and objects.state.source == "hand"


def test_a_measured_camera_pose_gives_extrinsics_that_locate_objects(tmp_path):
    """Camera offset set-up: the simulated camera's pose typed in as xyz + rpy of camera_link gives the same
    extrinsics, and objects come out within 1 cm through them."""
    from sim2real.calibration import LINK_FROM_OPTICAL, camera_from_measurement, write_extrinsics

    with KukaPlant("reach-v3", seed=0) as plant:
        truth = true_base_from_camera(plant)
        rpy = Rotation.from_matrix(truth[:3, :3] @ LINK_FROM_OPTICAL.T).as_euler("xyz")
        T = camera_from_measurement(np.round(truth[:3, 3], 3), np.round(rpy, 3))  # a tape measure: mm, mrad
        assert np.linalg.norm(T[:3, 3] - truth[:3, 3]) < 0.001 and angle_deg(T[:3, :3], truth[:3, :3]) < 0.1
        write_extrinsics(tmp_path / "measured.yaml", T)
        objects = CameraPerception(tmp_path / "measured.yaml").for_subtask(plant, "reach-v3")
        objects.start(0.0)
        obj, _ = objects(0.05)
        assert np.linalg.norm(obj - plant.object_position()) < 0.01
    with pytest.raises(Exception, match="3 finite"):
        camera_from_measurement([0, 0, np.nan], [0, 0, 0])
