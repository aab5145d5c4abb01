"""The 12-d simulation-frame observation s_t shared by training and deployment.

Layout (paper, Methods; official code), all in the ``sim`` frame (Meta-World world frame, metres):

====== ===== ==========================================================
index  size  content
====== ===== ==========================================================
0:3    3     end-effector point, m: Meta-World's ``hand`` (4.5 cm behind the 2F-85 TCP)
3:6    3     object position, m
6:9    3     object orientation slot: zeros, as in the official code
9:12   3     goal position, m
====== ===== ==========================================================

Meta-World's 39-d observation is mapped with :func:`from_metaworld`; the robot stack builds the
same vector with :func:`build_observation` (Real2Sim), so the policy sees one layout everywhere.

Two layouts (:data:`OBS_LAYOUTS`), named in every checkpoint's manifest and chosen at training
(``legion train --observation-layout``):

* ``"paper"`` (:data:`OBS_LAYOUT`, the default): the table above.
* ``"gripper"`` (beyond the paper): the same with the gripper's opening in slot :data:`GRIPPER_SLOT` (6), the first of
  the zero padding: :func:`gripper_opening` of the fingertip pads' distance, Meta-World's own obs[3]. The paper's
  vector has no gripper state, and a memoryless policy then stalls over a puck it failed to grasp (docs/lifelong.md,
  "Pick-place: the observation has no gripper"). On the robot the distance comes from the 2F-85's knuckle joint
  (:func:`sim2real.gripper.pad_distance`).
"""
from __future__ import annotations

import numpy as np

OBS_DIM = 12
ACTION_DIM = 4
#: One action unit moves the end effector 1 cm per control step (Meta-World's action_scale 1/100).
ACTION_SCALE_M = 0.01
OBS_LAYOUT = {
    "ee_position": {"slice": [0, 3], "unit": "m", "frame": "sim", "point": "Meta-World hand, 0.045 m behind the TCP"},
    "object_position": {"slice": [3, 6], "unit": "m", "frame": "sim"},
    "object_orientation": {"slice": [6, 9], "unit": "zero padding (official code)", "frame": "sim"},
    "goal_position": {"slice": [9, 12], "unit": "m", "frame": "sim"},
}

#: Index of the gripper opening when the observation carries it (the first slot of the zero-padded 6:9).
GRIPPER_SLOT = 6
#: Pad distance that reads as fully open: Meta-World's normalisation of its obs[3] (``SawyerXYZEnv._get_curr_obs_combined_no_goal``).
GRIPPER_FULL_OPENING_M = 0.1
#: The gripper layout: the paper's with the opening in slot 6 (module docstring).
GRIPPER_OBS_LAYOUT = {
    "ee_position": OBS_LAYOUT["ee_position"],
    "object_position": OBS_LAYOUT["object_position"],
    "gripper_opening": {"slice": [GRIPPER_SLOT, GRIPPER_SLOT + 1],
                        "unit": "fingertip pads' distance / 0.1 m, clipped to [0, 1] (Meta-World obs[3])"},
    "object_orientation": {"slice": [GRIPPER_SLOT + 1, 9], "unit": "zero padding (official code)", "frame": "sim"},
    "goal_position": OBS_LAYOUT["goal_position"],
}
#: Layout name (a checkpoint's ``observation.name``) -> fields, each with its ``slice`` [start, stop) of s_t.
OBS_LAYOUTS = {"paper": OBS_LAYOUT, "gripper": GRIPPER_OBS_LAYOUT}


def layout_name(layout: dict) -> str | None:
    """The name in :data:`OBS_LAYOUTS` of a layout as a manifest records it (the same field names, each with the
    same ``slice``; descriptive text is not compared), or None when it is none of them."""
    slices = {name: (spec or {}).get("slice") for name, spec in (layout or {}).items()}
    for name, known in OBS_LAYOUTS.items():
        if slices == {field: spec["slice"] for field, spec in known.items()}:
            return name
    return None


def check_layout(name: str) -> str:
    """``name`` if it is a layout of :data:`OBS_LAYOUTS`.

    Raises:
        ValueError: naming the known layouts.
    """
    if name not in OBS_LAYOUTS:
        raise ValueError(f"observation layout must be one of {list(OBS_LAYOUTS)}, got {name!r}")
    return name


def gripper_opening(pad_distance_m: float) -> float:
    """The observation's gripper opening: fingertip pads' distance / 0.1 m, clipped to [0, 1] (Meta-World's obs[3]).

    Raises:
        ValueError: a distance that is not a finite number >= 0 (m).
    """
    d = float(pad_distance_m)
    if not np.isfinite(d) or d < 0:
        raise ValueError(f"pad distance must be a finite distance >= 0 in metres, got {pad_distance_m!r}")
    return float(np.clip(d / GRIPPER_FULL_OPENING_M, 0.0, 1.0))


def build_observation(ee_position: np.ndarray, object_position: np.ndarray, goal_position: np.ndarray,
                      gripper: float | None = None) -> np.ndarray:
    """Assemble s_t.

    Args:
        ee_position: (3,) end-effector point (Meta-World's hand, 4.5 cm behind the TCP) in the sim frame, m.
        object_position: (3,) object position in the sim frame, m.
        goal_position: (3,) goal position in the sim frame, m.
        gripper: the opening in [0, 1] (:func:`gripper_opening`) for slot :data:`GRIPPER_SLOT`; None leaves it zero,
            the paper's layout.

    Returns:
        (12,) float32 observation laid out as :data:`OBS_LAYOUT`.

    Raises:
        ValueError: an input is not a finite 3-vector, or an opening outside [0, 1].
    """
    parts = []
    for name, v in (("ee_position", ee_position), ("object_position", object_position),
                    ("goal_position", goal_position)):
        v = np.asarray(v, dtype=np.float64).reshape(-1)
        if v.shape != (3,) or not np.all(np.isfinite(v)):
            raise ValueError(f"{name} must be a finite 3-vector in metres, got {v!r}")
        parts.append(v)
    obs = np.zeros(OBS_DIM, dtype=np.float32)
    obs[0:3], obs[3:6], obs[9:12] = parts
    if gripper is not None:
        if not 0.0 <= float(gripper) <= 1.0:  # also refuses NaN
            raise ValueError(f"gripper opening must lie in [0, 1] (pads' distance / 0.1 m), got {gripper!r}")
        obs[GRIPPER_SLOT] = gripper
    return obs


def from_metaworld(obs39: np.ndarray, with_gripper: bool = False) -> np.ndarray:
    """Map Meta-World v3's 39-d observation (hand 0:3, object 4:7, goal 36:39) to s_t.

    Args:
        obs39: (39,) or (N, 39) Meta-World observation.
        with_gripper: also copy its gripper opening (obs[3], already :func:`gripper_opening`'s scale) into
            :data:`GRIPPER_SLOT`; False leaves it zero, the paper's layout.

    Returns:
        (12,) or (N, 12) float32.
    """
    obs39 = np.asarray(obs39)
    if obs39.shape[-1] != 39:
        raise ValueError(f"expected a 39-d Meta-World observation, got shape {obs39.shape}")
    out = np.zeros(obs39.shape[:-1] + (OBS_DIM,), dtype=np.float32)
    out[..., 0:3] = obs39[..., 0:3]
    out[..., 3:6] = obs39[..., 4:7]
    out[..., 9:12] = obs39[..., 36:39]
    if with_gripper:
        out[..., GRIPPER_SLOT] = obs39[..., 3]
    return out
