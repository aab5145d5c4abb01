"""Safety filter (sim2real/safety.py): property-based invariants plus one unit test per behaviour.

The property tests build 256 filter calls per hypothesis example from hypothesis-drawn pools of
values (plausible ones, the limits and their float neighbours, and arbitrary floats: NaN, ±inf, ±0,
huge, tiny) combined by a hypothesis-drawn seed: hypothesis keeps its edge values and its shrinking,
and the file runs (150 + 150 + 125 + 125) * 256 = 140,800 filter calls in seconds. Deadline, derandomisation and
example database come from the hypothesis profile of tests/conftest.py (``ci`` by default: the same examples on
every run, no saved database).
"""
import contextlib
import logging
import math
from dataclasses import FrozenInstanceError

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from sim2real.observation import ACTION_SCALE_M
from sim2real.safety import REASONS, CartesianVerdict, JointVerdict, SafetyFilter, SafetyLimits

# A table-top box in front of the iiwa 14, base frame, m.
LIMITS = SafetyLimits.iiwa14(workspace_min=[0.3, -0.4, 0.05], workspace_max=[0.8, 0.4, 0.6])
BOX_LO, BOX_HI, CAP = LIMITS.workspace_min, LIMITS.workspace_max, LIMITS.max_step_m
BAND_LO = LIMITS.joint_position_min + LIMITS.joint_position_margin
BAND_HI = LIMITS.joint_position_max - LIMITS.joint_position_margin
VMAX = LIMITS.joint_velocity_max
TOL = 1e-9  # rounding slack the task allows

CASES = 256


def _edges(*bounds):
    """Limit values and their nearest float neighbours: where rounding bugs live."""
    v = np.concatenate([np.ravel(b) for b in bounds])
    return st.sampled_from(sorted(set(np.concatenate([v, np.nextafter(v, -np.inf), np.nextafter(v, np.inf)]))))


ANY_FLOAT = st.floats(allow_nan=True, allow_infinity=True)
CART_VALUES = st.one_of(st.floats(-0.5, 0.9), _edges(BOX_LO, BOX_HI))  # covers the box on every axis
JOINT_VALUES = st.one_of(st.floats(-2.2, 2.2), _edges(BAND_LO, BAND_HI, LIMITS.joint_position_min,
                                                      LIMITS.joint_position_max))
DT_VALUES = st.floats(1e-3, 0.2)
SEEDS = st.integers(0, 2**32 - 1)


@contextlib.contextmanager
def quiet_log():
    """Silence the filter's and the supervisor's log lines: the property tests check outputs; logging has its own
    test below."""
    logs = [logging.getLogger(name) for name in ("sim2real.safety", "sim2real.supervisor")]
    levels = [log.level for log in logs]
    for log in logs:
        log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for log, level in zip(logs, levels):
            log.setLevel(level)


def pool(values, size=32):
    return hnp.arrays(np.float64, size, elements=values, fill=st.nothing())


def combine(values: np.ndarray, seed: int, shape, wild: np.ndarray | None = None) -> np.ndarray:
    """An array of ``shape`` whose entries are picked from ``values`` by a seeded generator; with ``wild``,
    each entry is instead picked from ``wild`` with probability 0.1 (so a 14-entry case is all-plausible
    about a quarter of the time and the finite code paths get exercised too)."""
    rng = np.random.default_rng(seed)
    out = values[rng.integers(len(values), size=shape)]
    if wild is not None:
        out = np.where(rng.random(shape) < 0.1, wild[rng.integers(len(wild), size=shape)], out)
    return out


# ----------------------------------------------------------------------------------------------------
# Invariants, checked on a batch of calls (vectorised so the per-case cost stays tiny)
# ----------------------------------------------------------------------------------------------------
def assert_cartesian_invariants(targets, currents, grippers, verdicts):
    pos = np.array([v.position for v in verdicts])
    grip = np.array([v.gripper for v in verdicts])
    accepted = np.array([v.accepted for v in verdicts])
    assert pos.shape == (len(verdicts), 3) and np.isfinite(pos).all() and np.isfinite(grip).all()
    assert ((LIMITS.gripper_min <= grip) & (grip <= LIMITS.gripper_max)).all()
    assert all(set(v.reasons) <= set(REASONS) for v in verdicts)
    finite_in = np.isfinite(targets).all(1) & np.isfinite(currents).all(1) & np.isfinite(grippers)
    assert not accepted[~finite_in].any(), "a non-finite input was accepted"

    known = np.isfinite(currents).all(1)
    p, c = pos[known], currents[known]
    assert (np.linalg.norm(p - c, axis=1) <= CAP + TOL).all(), "step longer than max_step_m"
    # Per axis, the distance to the box never grows; it is 0 (inside) whenever the current position is inside.
    dist_p = np.maximum(BOX_LO - p, 0) + np.maximum(p - BOX_HI, 0)
    dist_c = np.maximum(BOX_LO - c, 0) + np.maximum(c - BOX_HI, 0)
    assert (dist_p <= dist_c).all(), "moved away from the workspace box"
    assert (pos[known & ~accepted] == currents[known & ~accepted]).all(), "HOLD must return the current position"


def assert_joint_invariants(targets, currents, dts, verdicts):
    q = np.array([v.q for v in verdicts])
    accepted = np.array([v.accepted for v in verdicts])
    assert q.shape == (len(verdicts), 7) and np.isfinite(q).all()
    assert all(set(v.reasons) <= set(REASONS) for v in verdicts)
    finite_in = np.isfinite(targets).all(1) & np.isfinite(currents).all(1) & np.isfinite(dts)
    assert not accepted[~finite_in].any(), "a non-finite input was accepted"

    known = np.isfinite(currents).all(1)
    qk, c = q[known], currents[known]
    # Inside the band (limits minus margin), or no farther out than q_current on each joint.
    assert ((qk >= np.minimum(BAND_LO, c)) & (qk <= np.maximum(BAND_HI, c))).all(), "joint limit broken"
    timed = known & np.isfinite(dts)
    with np.errstate(over="ignore"):
        speed_cap = VMAX * dts[timed, None] * (1 + TOL)
    assert (np.abs(q[timed] - currents[timed]) <= speed_cap).all(), "joint velocity limit broken"
    assert (q[known & ~accepted] == currents[known & ~accepted]).all(), "HOLD must return q_current"


# ----------------------------------------------------------------------------------------------------
# Property-based tests
# ----------------------------------------------------------------------------------------------------
@settings(max_examples=150)
@given(values=pool(CART_VALUES), wild=pool(ANY_FLOAT, 16), seed=SEEDS)
def test_cartesian_invariants_hold_for_arbitrary_floats(values, wild, seed):
    cases = combine(values, seed, (CASES, 7), wild)
    targets, currents, grippers = cases[:, 0:3], cases[:, 3:6], cases[:, 6]
    f = SafetyFilter(LIMITS)
    with quiet_log():
        verdicts = [f.filter_cartesian(t, c, g) for t, c, g in zip(targets, currents, grippers)]
    assert_cartesian_invariants(targets, currents, grippers, verdicts)
    assert sum(f.counters.values()) == sum(len(v.reasons) for v in verdicts)


@settings(max_examples=150)
@given(values=pool(JOINT_VALUES), dt_values=pool(DT_VALUES, 8), wild=pool(ANY_FLOAT, 16), seed=SEEDS)
def test_joint_invariants_hold_for_arbitrary_floats(values, dt_values, wild, seed):
    cases = combine(values, seed, (CASES, 14), wild)
    targets, currents = cases[:, :7], cases[:, 7:]
    dts = combine(dt_values, seed + 1, CASES, wild)
    f = SafetyFilter(LIMITS)
    verdicts, kept = [], []
    with quiet_log():
        for i, (t, c, dt) in enumerate(zip(targets, currents, dts)):
            if math.isfinite(dt) and dt <= 0:  # a programming error, not a command: raises
                with pytest.raises(ValueError, match="dt must be > 0"):
                    f.filter_joints(t, c, dt)
                continue
            verdicts.append(f.filter_joints(t, c, dt))
            kept.append(i)
    assert_joint_invariants(targets[kept], currents[kept], dts[kept], verdicts)
    assert sum(f.counters.values()) == sum(len(v.reasons) for v in verdicts)


@settings(max_examples=125)
@given(fractions=pool(st.floats(0, 1)), deltas=pool(st.floats(-0.05, 0.05)), grips=pool(st.floats(-0.5, 1.5), 8),
       seed=SEEDS)
def test_cartesian_filter_changes_only_what_it_must(fractions, deltas, grips, seed):
    """Current inside the box, target a few cm away: pass through unchanged, or clamp then cap exactly."""
    currents = np.clip(BOX_LO + combine(fractions, seed, (CASES, 3)) * (BOX_HI - BOX_LO), BOX_LO, BOX_HI)
    targets = currents + combine(deltas, seed + 1, (CASES, 3))
    grippers = combine(grips, seed + 2, CASES)
    f = SafetyFilter(LIMITS)
    with quiet_log():
        verdicts = [f.filter_cartesian(t, c, g) for t, c, g in zip(targets, currents, grippers)]

    goal = np.clip(targets, BOX_LO, BOX_HI)
    length = np.array([math.hypot(*d) for d in goal - currents])
    clamped, capped, grip_out = (goal != targets).any(1), length > CAP, np.clip(grippers, 0.0, 1.0)
    expected = [("workspace_clamped",) * w + ("step_capped",) * s + ("gripper_clamped",) * g
                for w, s, g in zip(clamped.tolist(), capped.tolist(), (grip_out != grippers).tolist())]
    assert [v.reasons for v in verdicts] == expected and all(v.accepted for v in verdicts)
    np.testing.assert_array_equal([v.gripper for v in verdicts], grip_out)
    pos = np.array([v.position for v in verdicts])
    np.testing.assert_array_equal(pos[~capped], goal[~capped])  # untouched unless the step is too long
    step = (goal - currents)[capped] * (CAP / length[capped])[:, None]
    np.testing.assert_allclose(pos[capped], currents[capped] + step, atol=1e-12)  # along the step, to max_step_m


@settings(max_examples=125)
@given(fractions=pool(st.floats(0, 1)), deltas=pool(st.floats(-0.3, 0.3)), dt_values=pool(st.floats(0.005, 0.1), 8),
       seed=SEEDS)
def test_joint_filter_changes_only_what_it_must(fractions, deltas, dt_values, seed):
    """q_current inside the band: reject beyond it, pass slow motions unchanged, slow fast ones uniformly."""
    currents = np.clip(BAND_LO + combine(fractions, seed, (CASES, 7)) * (BAND_HI - BAND_LO), BAND_LO, BAND_HI)
    targets = currents + combine(deltas, seed + 1, (CASES, 7))
    dts = combine(dt_values, seed + 2, CASES)
    f = SafetyFilter(LIMITS)
    with quiet_log():
        verdicts = [f.filter_joints(t, c, dt) for t, c, dt in zip(targets, currents, dts)]

    q = np.array([v.q for v in verdicts])
    delta, max_delta = targets - currents, VMAX * dts[:, None]
    rejected = ((targets < BAND_LO) | (targets > BAND_HI)).any(1)
    scaled = ~rejected & (np.abs(delta) > max_delta).any(1)
    expected = [("joint_limit",) if r else ("velocity_scaled",) if s else () for r, s in zip(rejected, scaled)]
    assert [v.reasons for v in verdicts] == expected
    assert [v.accepted for v in verdicts] == (~rejected).tolist()
    np.testing.assert_array_equal(q[rejected], currents[rejected])  # HOLD
    untouched = ~rejected & ~scaled
    np.testing.assert_array_equal(q[untouched], targets[untouched])
    with np.errstate(divide="ignore", over="ignore"):
        scale = np.min(max_delta[scaled] / np.abs(delta[scaled]), axis=1, keepdims=True)
    assert ((0 <= scale) & (scale < 1)).all()
    np.testing.assert_allclose(q[scaled] - currents[scaled], scale * delta[scaled], atol=1e-12)  # same direction
    at_limit = np.isclose(np.abs(q[scaled] - currents[scaled]) / max_delta[scaled], 1.0)
    assert at_limit.any(1).all()  # the limiting joint runs exactly at its speed limit


# ----------------------------------------------------------------------------------------------------
# Unit tests: one per reason, counters, logging, shapes, limits
# ----------------------------------------------------------------------------------------------------
CURRENT = np.array([0.5, 0.0, 0.3])
Q0 = np.array([0.0, 0.5, 0.0, -1.2, 0.0, 0.8, 0.0])


def test_nominal_policy_steps_pass_unchanged():
    """An action in [-1, 1]^3 moves at most sqrt(3) * 1 cm < 2 cm: the cap never bites a nominal policy."""
    f = SafetyFilter(LIMITS)
    for a in np.array(np.meshgrid(*[[-1.0, 0.0, 1.0]] * 3)).T.reshape(-1, 3):
        v = f.filter_cartesian(CURRENT + ACTION_SCALE_M * a, CURRENT, 0.5)
        assert v.accepted and v.reasons == ()
        np.testing.assert_array_equal(v.position, CURRENT + ACTION_SCALE_M * a)
    assert sum(f.counters.values()) == 0


def test_workspace_clamped():
    v = SafetyFilter(LIMITS).filter_cartesian([0.5, 0.0, 0.045], [0.5, 0.0, 0.055], 0.0)  # 5 mm below the floor
    assert v.accepted and v.reasons == ("workspace_clamped",)
    np.testing.assert_array_equal(v.position, [0.5, 0.0, 0.05])


def test_step_capped_along_the_step_direction():
    v = SafetyFilter(LIMITS).filter_cartesian(CURRENT + [0.03, 0.04, 0.0], CURRENT, 0.0)  # 5 cm step
    assert v.accepted and v.reasons == ("step_capped",)
    np.testing.assert_allclose(v.position, CURRENT + [0.012, 0.016, 0.0], atol=1e-15)


def test_far_target_is_clamped_then_capped_and_stays_in_the_box():
    v = SafetyFilter(LIMITS).filter_cartesian([0.5, 0.0, -5.0], [0.5, 0.0, 0.1], 0.0)
    assert v.reasons == ("workspace_clamped", "step_capped")
    np.testing.assert_allclose(v.position, [0.5, 0.0, 0.08], atol=1e-15)
    v = SafetyFilter(LIMITS).filter_cartesian([0.5, 0.0, -5.0], [0.5, 0.0, 0.06], 0.0)
    assert v.reasons == ("workspace_clamped",)  # only 1 cm of room left: stops on the floor of the box
    np.testing.assert_array_equal(v.position, [0.5, 0.0, 0.05])


def test_outside_the_box_the_filter_only_moves_back_in():
    above = np.array([0.5, 0.0, 0.9])  # e.g. a home pose 30 cm above the box
    v = SafetyFilter(LIMITS).filter_cartesian([0.5, 0.0, 1.5], above, 0.0)
    assert v.accepted and v.reasons == ("workspace_clamped", "step_capped")
    np.testing.assert_allclose(v.position, [0.5, 0.0, 0.88], atol=1e-15)


@pytest.mark.parametrize("g, expected", [(1.7, 1.0), (-0.2, 0.0)])
def test_gripper_clamped(g, expected):
    v = SafetyFilter(LIMITS).filter_cartesian(CURRENT, CURRENT, g)
    assert v.accepted and v.gripper == expected and v.reasons == ("gripper_clamped",)


@pytest.mark.parametrize("target, current, gripper", [
    ([np.nan, 0.0, 0.3], CURRENT, 0.5), (CURRENT, CURRENT, np.inf), ([0.5, -np.inf, 0.3], CURRENT, 0.5)])
def test_non_finite_command_holds_at_current_position(target, current, gripper):
    f = SafetyFilter(LIMITS)
    f.filter_cartesian(CURRENT, CURRENT, 0.7)  # an accepted command first: its gripper is what HOLD keeps
    v = f.filter_cartesian(target, current, gripper)
    assert not v.accepted and v.reasons == ("non_finite",)
    np.testing.assert_array_equal(v.position, CURRENT)
    assert v.gripper == 0.7


def test_non_finite_state_holds_at_a_finite_placeholder():
    f = SafetyFilter(LIMITS)
    v = f.filter_cartesian(CURRENT, [np.nan, 0.0, 0.3], 0.5)
    assert not v.accepted and np.isfinite(v.position).all()
    np.testing.assert_array_equal(v.position, (BOX_LO + BOX_HI) / 2)  # nothing accepted yet: the box centre
    ok = f.filter_cartesian(CURRENT, CURRENT, 0.5)
    np.testing.assert_array_equal(f.filter_cartesian(CURRENT, [np.inf] * 3, 0.5).position, ok.position)
    j = f.filter_joints(Q0, np.full(7, np.nan), 0.05)
    assert not j.accepted and j.reasons == ("non_finite",) and np.isfinite(j.q).all()


def test_joint_target_inside_the_margin_band_passes_and_beyond_it_is_rejected():
    f = SafetyFilter(LIMITS)
    near = Q0.copy()
    near[3] = np.radians(-114.0)  # A4 limit ±120°, margin 5°
    assert f.filter_joints(near, near, 0.05).reasons == ()
    beyond = near.copy()
    beyond[3] = np.radians(-116.0)  # inside the hardware limit, outside the margin: reject, never clamp
    v = f.filter_joints(beyond, near, 0.05)
    assert not v.accepted and v.reasons == ("joint_limit",)
    np.testing.assert_array_equal(v.q, near)


def test_a_hold_pulls_a_pushed_joint_back_into_the_band_at_its_velocity_limit():
    f = SafetyFilter(LIMITS)
    pushed = Q0.copy()
    pushed[5] = np.radians(124.0)  # A6 limit ±120°, band ±115°: a contact pushed it past both
    hold = f.hold_target(pushed, 0.05)
    np.testing.assert_array_equal(np.delete(hold, 5), np.delete(pushed, 5))  # the others stay where they are
    assert np.isclose(np.degrees(pushed[5] - hold[5]), 135.0 * 0.05)  # back by A6's 135 deg/s over 50 ms
    for _ in range(3):
        hold = f.hold_target(hold, 0.05)
    assert np.isclose(np.degrees(hold[5]), 114.5)  # to 0.5 deg inside the band, where a drooping servo still is
    resting = Q0.copy()
    resting[5] = np.radians(115.05)  # just outside the band: pulled in too, not left on the edge
    assert np.isclose(np.degrees(f.hold_target(resting, 0.05)[5]), 114.5)
    inside = Q0.copy()
    inside[5] = np.radians(114.8)  # inside the band: a hold leaves it where it is
    np.testing.assert_array_equal(f.hold_target(inside, 0.05), inside)
    with pytest.raises(ValueError, match="finite"):
        f.hold_target(np.full(7, np.nan), 0.05)


def test_joint_outside_the_band_may_only_move_back():
    f = SafetyFilter(LIMITS)
    out = Q0.copy()
    out[0] = np.radians(168.0)  # A1 limit ±170°, band ±165°
    further, back = out.copy(), out.copy()
    further[0], back[0] = np.radians(168.5), np.radians(167.0)
    assert f.filter_joints(further, out, 0.05).reasons == ("joint_limit",)
    assert f.filter_joints(out, out, 0.05).accepted  # staying put is allowed
    v = f.filter_joints(back, out, 0.05)
    assert v.accepted and v.reasons == ()
    np.testing.assert_array_equal(v.q, back)


def test_velocity_scaled_uniformly():
    dt = 0.05
    delta = np.zeros(7)
    delta[3] = 2 * VMAX[3] * dt  # A4 at twice its speed limit
    delta[0] = 0.5 * VMAX[0] * dt
    v = SafetyFilter(LIMITS).filter_joints(Q0 + delta, Q0, dt)
    assert v.accepted and v.reasons == ("velocity_scaled",)
    np.testing.assert_allclose(v.q, Q0 + 0.5 * delta, atol=1e-15)  # every joint slowed by the same factor


def test_non_finite_joint_inputs_hold():
    f = SafetyFilter(LIMITS)
    for t, dt in [(np.where(np.arange(7) == 2, np.nan, Q0), 0.05), (Q0, np.inf), (Q0, np.nan), (Q0, -np.inf)]:
        v = f.filter_joints(t, Q0, dt)
        assert not v.accepted and v.reasons == ("non_finite",)
        np.testing.assert_array_equal(v.q, Q0)


def test_numerical_guard_holds_when_rounding_would_break_a_limit():
    # At |x| ~ 2^47 floats are 1/32 m apart: a 2 cm step rounds to 3.1 cm, and a 2 cm joint step likewise.
    far = np.array([1.5 * 2.0**47, 0.0, 0.3])
    v = SafetyFilter(LIMITS).filter_cartesian(CURRENT, far, 0.0)
    assert not v.accepted and v.reasons == ("numerical_guard",)
    np.testing.assert_array_equal(v.position, far)
    q_far = Q0.copy()
    q_far[0] = 1.5 * 2.0**47
    j = SafetyFilter(LIMITS).filter_joints(Q0, q_far, 0.02 / VMAX[0])
    assert not j.accepted and j.reasons == ("numerical_guard",)


def test_counters_last_reasons_and_logging(caplog):
    f = SafetyFilter(LIMITS)
    with caplog.at_level(logging.INFO, logger="sim2real.safety"):
        f.filter_cartesian(CURRENT + [0.1, 0.0, 0.0], CURRENT, 2.0)
        assert f.last_reasons == ("step_capped", "gripper_clamped")
        f.filter_cartesian([np.nan] * 3, CURRENT, 0.0)
        f.filter_joints(Q0 + 1.0, Q0, 0.05)
        f.filter_joints(Q0, Q0, 0.05)
        assert f.last_reasons == ()
        f.filter_joints(np.full(7, 3.0), Q0, 0.05)
    assert f.counters == {"non_finite": 1, "workspace_clamped": 0, "step_capped": 1, "gripper_clamped": 1,
                          "joint_limit": 1, "velocity_scaled": 1, "numerical_guard": 0}
    records = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert len(records) == 4  # one line per intervening call, none for the clean one
    assert records[0][0] == logging.INFO and "step_capped, gripper_clamped" in records[0][1]
    assert records[1][0] == logging.WARNING and "non_finite" in records[1][1]
    assert records[3][0] == logging.WARNING and "joint_limit" in records[3][1]


@pytest.mark.parametrize("shape", [(2,), (4,), (1, 3), (3, 1), ()])
def test_wrong_cartesian_shapes_raise(shape):
    f = SafetyFilter(LIMITS)
    with pytest.raises(ValueError, match=r"target_pos must have shape \(3,\)"):
        f.filter_cartesian(np.zeros(shape), CURRENT, 0.0)
    with pytest.raises(ValueError, match=r"current_pos must have shape \(3,\)"):
        f.filter_cartesian(CURRENT, np.zeros(shape), 0.0)


def test_wrong_joint_shapes_and_bad_dt_raise():
    f = SafetyFilter(LIMITS)
    for shape in [(6,), (8,), (1, 7), (7, 1)]:
        with pytest.raises(ValueError, match=r"q_target must have shape \(7,\)"):
            f.filter_joints(np.zeros(shape), Q0, 0.05)
        with pytest.raises(ValueError, match=r"q_current must have shape \(7,\)"):
            f.filter_joints(Q0, np.zeros(shape), 0.05)
    with pytest.raises(ValueError, match="gripper must be a scalar"):
        f.filter_cartesian(CURRENT, CURRENT, [0.5])
    with pytest.raises(ValueError, match="dt must be a scalar"):
        f.filter_joints(Q0, Q0, [0.05])
    for dt in [0.0, -0.05]:
        with pytest.raises(ValueError, match="dt must be > 0"):
            f.filter_joints(Q0, Q0, dt)
    assert sum(f.counters.values()) == 0


def test_outputs_do_not_alias_inputs_and_accept_float32_and_lists():
    f = SafetyFilter(LIMITS)
    q = (Q0 + 0.01).astype(np.float32)
    v = f.filter_joints(q, Q0, 0.05)
    assert v.accepted and v.q.dtype == np.float64 and v.q is not q
    np.testing.assert_array_equal(v.q, q.astype(np.float64))
    v.q[:] = 99.0  # a caller scribbling on a verdict must not change the filter's HOLD placeholder
    np.testing.assert_array_equal(f.filter_joints(Q0, [np.nan] * 7, 0.05).q, q.astype(np.float64))
    assert f.filter_cartesian(CURRENT.tolist(), CURRENT.tolist(), 1).accepted


def test_iiwa14_limits_match_the_datasheet():
    np.testing.assert_allclose(np.degrees(LIMITS.joint_position_max), [170, 120, 170, 120, 170, 120, 175])
    np.testing.assert_allclose(np.degrees(LIMITS.joint_position_min), [-170, -120, -170, -120, -170, -120, -175])
    np.testing.assert_allclose(np.degrees(LIMITS.joint_velocity_max), [85, 85, 100, 75, 130, 135, 135])
    assert LIMITS.max_step_m == 0.02 and math.isclose(LIMITS.joint_position_margin, math.radians(5))


def test_limits_round_trip_through_yaml_and_are_immutable():
    data = yaml.safe_load(yaml.safe_dump(LIMITS.to_dict()))
    assert SafetyLimits.from_dict(data) == LIMITS
    assert SafetyLimits.from_dict({**data, "max_step_m": 0.01}) != LIMITS
    with pytest.raises(FrozenInstanceError):
        LIMITS.max_step_m = 1.0
    with pytest.raises(ValueError, match="read-only"):
        LIMITS.workspace_max[2] = 5.0


@pytest.mark.parametrize("change, message", [
    ({"workspace_min": [0.3, -0.4, 0.7]}, "below workspace_max"),
    ({"workspace_max": [800.0, 400.0, 600.0]}, "millimetres"),
    ({"workspace_max": [0.8, np.nan, 0.6]}, "finite"),
    ({"workspace_max": [0.8, 0.4]}, r"shape \(3,\)"),
    ({"joint_position_margin": 2.1}, "margin"),
    ({"joint_velocity_max": [1.0] * 6 + [0.0]}, "> 0 rad/s"),
    ({"max_step_m": 0.0}, "max_step_m"),
    ({"gripper_max": 1.5}, "gripper"),
])
def test_bad_limits_raise(change, message):
    with pytest.raises(ValueError, match=message):
        SafetyLimits.from_dict({**LIMITS.to_dict(), **change})


def test_from_dict_names_unknown_and_missing_keys():
    with pytest.raises(ValueError, match="unknown safety limit keys.*max_step"):
        SafetyLimits.from_dict({**LIMITS.to_dict(), "max_step": 0.01})
    data = LIMITS.to_dict()
    del data["joint_velocity_max"]
    with pytest.raises(ValueError, match="missing safety limit keys.*joint_velocity_max"):
        SafetyLimits.from_dict(data)
    assert isinstance(SafetyFilter(LIMITS).filter_cartesian(CURRENT, CURRENT, 0.0), CartesianVerdict)
    assert isinstance(SafetyFilter(LIMITS).filter_joints(Q0, Q0, 0.05), JointVerdict)
