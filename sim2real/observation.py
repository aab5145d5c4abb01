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


def build_observation(ee_position: np.ndarray, object_position: np.ndarray, goal_position: np.ndarray) -> np.ndarray:
    """Assemble s_t.

    Args:
        ee_position: (3,) end-effector point (Meta-World's hand, 4.5 cm behind the TCP) in the sim frame, m.
        object_position: (3,) object position in the sim frame, m.
        goal_position: (3,) goal position in the sim frame, m.

    Returns:
        (12,) float32 observation laid out as :data:`OBS_LAYOUT`.

    Raises:
        ValueError: an input is not a finite 3-vector.
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
    return obs


def from_metaworld(obs39: np.ndarray) -> np.ndarray:
    """Map Meta-World v3's 39-d observation (hand 0:3, object 4:7, goal 36:39) to s_t.

    Args:
        obs39: (39,) or (N, 39) Meta-World observation.

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
    return out
