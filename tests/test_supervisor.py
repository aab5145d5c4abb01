"""The safety node's state machine (sim2real/supervisor.py) over arbitrary event sequences (hypothesis).

Each hypothesis example is a sequence of 200 events drawn by a seeded generator from hypothesis-drawn value
pools (plausible joint values, the band and hardware-limit edges and their float neighbours, and arbitrary floats:
NaN, +-inf, huge): joint states with stamps that may be late, early or non-finite, joint commands with stamps that
may be stale, the arm / hold / e-stop services, and time that jumps forward. Most joint states move the arm from
the previous one at a speed it can make (so commands get forwarded, also next to the limits); the others are sensor
faults: a jump, a joint far past its limit, NaN / inf / huge entries (the 3.52e13 rad of issue 15), a wrong shape,
a non-finite or future stamp. After every event the invariants are checked against the test's own reading of the
documented rules (:func:`run_events`). 100 examples x 200 events = 20,000 events per run; the same generator and
invariants run over 10^6 events in ``benchmarks/bench_safety.py``.

Invariants:
* every forwarded command q is finite, each joint inside the limits minus the margin (or no farther out than the
  measured joint) and no joint faster than its velocity limit from the last measured state over the command period;
  that state was plausible (within the position tolerance of the limits);
* the supervisor was ARMED, the last plausible joint state at most ``watchdog_s`` old and the command fresh;
* nothing is forwarded between an e-stop and the next successful arm;
* nothing is forwarded between a faulty joint state and the next successful arm: after a fault the supervisor is
  FAULT (or ESTOP), :meth:`hold` keeps it, and :meth:`arm` succeeds exactly when the newest state is plausible and
  fresh.

The hypothesis profile (tests/conftest.py, ``ci`` by default) makes the examples the same on every run.
"""
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_safety import ANY_FLOAT, BAND_HI, BAND_LO, JOINT_VALUES, LIMITS, SEEDS, VMAX, combine, pool, quiet_log

from sim2real.safety import SafetyFilter
from sim2real.supervisor import (ARMED, ESTOP, FAULT, HOLD, JOINT_STATE_NOISE_RAD, JOINT_STATE_POSITION_TOLERANCE_RAD,
                                 JOINT_STATE_SPEED_FACTOR, JOINT_STATE_STAMP_JITTER_S, SafetySupervisor,
                                 joint_state_fault)

EVENTS = 200
WATCHDOG = 0.1
PERIOD = 0.05
STEPS = [0.0, 0.01, 0.02, 0.05, 0.05, 0.05, 0.05, 0.099, 0.1, 0.101, 0.3, 5.0]
#: where a measured joint may read: the hardware limits widened by the documented tolerance, rad
READ_LO = LIMITS.joint_position_min - JOINT_STATE_POSITION_TOLERANCE_RAD
READ_HI = LIMITS.joint_position_max + JOINT_STATE_POSITION_TOLERANCE_RAD
Q_HOME = np.array([0.0, 0.5, 0.0, -1.2, 0.0, 0.8, 0.0])


def expected_fault(q, stamp: float, now: float, reference) -> str | None:
    """The documented rules, read independently of the supervisor: the kind of fault of a state, or None."""
    if stamp - now > WATCHDOG:  # whatever it holds: a future stamp must not outrank the states after it
        return "future"
    if q.shape != (7,) or not np.all(np.isfinite(q)) or not np.isfinite(stamp):
        return "reading"
    if np.any(q < READ_LO) or np.any(q > READ_HI):
        return "position"
    if reference is not None:
        with np.errstate(over="ignore"):
            allowed = VMAX * (JOINT_STATE_SPEED_FACTOR * abs(float(stamp) - reference[1]) + JOINT_STATE_STAMP_JITTER_S) \
                + JOINT_STATE_NOISE_RAD
        if np.any(np.abs(q - reference[0]) > allowed):
            return "speed"
    return None


def run_events(values: np.ndarray, wild: np.ndarray, seed: int, steps: np.ndarray, events: int = EVENTS) -> dict:
    """One sequence of ``events`` events on a fresh supervisor; returns what happened and the invariants broken.

    Args:
        values: plausible joint values and limit edges, rad (the pool the postures are drawn from).
        wild: arbitrary floats (NaN, +-inf, huge) for faulty entries and stamps.
        seed: seeds the generator that picks the events.
        steps: time steps between events, s.

    Returns:
        dict: ``events``, ``states``, ``commands``, ``arms``, ``holds``, ``estops`` (events of each kind), ``forwarded``, ``pulled_back`` (forwarded "joint_outside_band" pull-backs), ``faults``
        (Counter by kind: reading, future, position, speed), ``rearmed_after_fault``, ``counters`` (the
        supervisor's), ``violations`` (list of messages; empty when every invariant held).
    """
    rng = np.random.default_rng(seed)
    supervisor = SafetySupervisor(SafetyFilter(LIMITS), watchdog_s=WATCHDOG)
    violations: list[str] = []
    stats = {"events": events, "states": 0, "commands": 0, "forwarded": 0, "pulled_back": 0, "faults": Counter(),
             "rearmed_after_fault": 0}

    def check(ok, what: str) -> None:
        if not ok and len(violations) < 20:
            violations.append(f"event {e}: {what}")

    now = 0.0
    q_state, t_state = None, -np.inf  # newest plausible state: what commands are computed from
    reference = None  # (q, stamp): newest state that passed the single-state checks (the speed reference)
    t_newest, newest_fault = -np.inf, None
    latched = estopped = False
    for e in range(events):
        now += steps[rng.integers(len(steps))]
        kind = rng.choice(["state", "command", "arm", "hold", "estop"], p=[0.45, 0.4, 0.12, 0.02, 0.01])
        stats[f"{kind}s"] = stats.get(f"{kind}s", 0) + 1
        if kind == "state":
            stamp = now - rng.choice([0.0, 0.0, 0.0, 0.02, 0.15, 0.5]) if rng.random() < 0.98 else wild[rng.integers(16)]
            p = rng.random()
            if reference is None or p < 0.04:  # a posture from the pool: a jump, unless there is nothing to jump from
                q = combine(values, int(rng.integers(2**32)), 7)
            elif p < 0.07:  # one joint reads a wild value (NaN, inf, 3.52e13 ...)
                q = reference[0].copy()
                q[rng.integers(7)] = wild[rng.integers(16)]
            elif p < 0.075:
                q = np.zeros(int(rng.choice([6, 8])))
            else:  # the arm moves at most at its velocity limit since the reference (drifting inwards a little)
                dt = abs(stamp - reference[1]) if np.isfinite(stamp) else 0.0
                u = np.where(rng.random(7) < 0.5, -np.sign(reference[0]) * rng.random(7), rng.uniform(-1, 1, 7))
                q = np.clip(reference[0] + u * VMAX * min(dt, 1.0),
                            READ_LO + JOINT_STATE_POSITION_TOLERANCE_RAD / 2,
                            READ_HI - JOINT_STATE_POSITION_TOLERANCE_RAD / 2)
            fault = expected_fault(q, stamp, now, reference)
            supervisor.on_joint_state(q, stamp, now)
            if fault not in ("reading", "future", "position") and (reference is None or stamp >= reference[1]):
                reference = (q, float(stamp))
            newest = not stamp < t_newest
            if newest:
                if np.isfinite(stamp) and fault != "future":
                    t_newest = stamp
                newest_fault = fault
            if fault is None:
                if stamp >= t_state:
                    q_state, t_state = q, stamp
            else:
                stats["faults"][fault] += 1
                latched = True
                check(supervisor.state == (ESTOP if estopped else FAULT), f"{fault} fault left state {supervisor.state}")
                check(supervisor.fault is not None, "a fault without a message")
        elif kind == "command":
            if q_state is not None and rng.random() < 0.5:  # a policy's step: near the measured posture
                target = q_state + rng.uniform(-1.5, 1.5, 7) * VMAX * PERIOD
            else:  # anything: the pool, with wild entries
                target = combine(values, int(rng.integers(2**32)), 7, wild)
            stamp = now - rng.choice([0.0, 0.0, 0.05, 0.2])
            state_before = supervisor.state
            decision = supervisor.on_joint_command(target, PERIOD, now, stamp)
            if latched and not estopped and now - stamp <= WATCHDOG:
                check(decision.reasons == ("joint_state_fault",) and decision.message,
                      f"latched fault refused with {decision.reasons}")
            if decision.q is not None:
                q = decision.q
                stats["forwarded"] += 1
                stats["pulled_back"] += decision.reasons == ("joint_outside_band",)
                check(state_before == ARMED and not estopped, f"forwarded in {state_before}")
                check(not latched, "forwarded after a sensor fault, before a re-arm")
                check(now - t_state <= WATCHDOG and now - stamp <= WATCHDOG, "forwarded on stale inputs")
                check(np.all(q_state >= READ_LO) and np.all(q_state <= READ_HI), "computed from an impossible state")
                check(np.all(np.isfinite(q)), "non-finite command")
                lo, hi = np.minimum(BAND_LO, q_state), np.maximum(BAND_HI, q_state)
                check(np.all(q >= lo - 1e-9) and np.all(q <= hi + 1e-9), "outside the band")
                check(np.all(np.abs(q - q_state) <= VMAX * PERIOD * (1 + 1e-9) + 1e-12), "faster than the limit")
        elif kind == "arm":
            ok, why = supervisor.arm(now)
            check(ok == (newest_fault is None and now - t_state <= WATCHDOG), f"arm gave {ok}: {why}")
            if ok:
                stats["rearmed_after_fault"] += latched
                estopped = latched = False
                check(supervisor.state == ARMED and supervisor.fault is None, "armed but not ARMED")
        elif kind == "hold":
            supervisor.hold()
            check(supervisor.state == (ESTOP if estopped else FAULT if latched else HOLD), f"hold: {supervisor.state}")
        else:
            supervisor.estop()
            estopped = True
            check(supervisor.state == ESTOP, "estop did not latch")
    stats["counters"] = dict(supervisor.counters)
    stats["violations"] = violations
    return stats


@settings(max_examples=100)
@given(values=pool(JOINT_VALUES, 64), wild=pool(ANY_FLOAT, 16), seed=SEEDS,
       steps=pool(st.sampled_from(STEPS), 16))
def test_no_sequence_of_inputs_makes_the_supervisor_forward_an_unsafe_command(values, wild, seed, steps):
    with quiet_log():
        stats = run_events(values, wild, seed, steps)
    assert stats["violations"] == []


def test_the_event_generator_reaches_every_path():
    """Guard against a vacuous property: fixed pools, 20 sequences; forwards, pull-backs, faults of every kind and
    re-arms after them all happen."""
    rng = np.random.default_rng(0)
    edges = np.concatenate([BAND_LO, BAND_HI, LIMITS.joint_position_min, LIMITS.joint_position_max])
    total = Counter()
    faults = Counter()
    for i in range(20):
        values = np.concatenate([rng.uniform(-2.2, 2.2, 48), rng.choice(edges, 16)])
        wild = np.array([np.nan, np.inf, -np.inf, 3.52e13, -3.52e13, 1e300, 1e6, 0.0] * 2)
        with quiet_log():
            stats = run_events(values, wild, i, np.array(STEPS * 2))
        assert stats["violations"] == []
        total.update({k: stats[k] for k in ("forwarded", "pulled_back", "rearmed_after_fault")})
        faults.update(stats["faults"])
    print(dict(total), dict(faults))
    assert total["forwarded"] >= 40 and total["pulled_back"] >= 5 and total["rearmed_after_fault"] >= 20
    assert all(faults[k] >= 5 for k in ("reading", "future", "position", "speed")), faults


def armed_at(t: float, q=Q_HOME) -> SafetySupervisor:
    supervisor = SafetySupervisor(SafetyFilter(LIMITS), watchdog_s=WATCHDOG)
    supervisor.on_joint_state(q, t, t)
    assert supervisor.arm(t)[0]
    return supervisor


def test_a_joint_read_at_3_5e13_rad_is_a_latched_sensor_fault():
    """Issue 15: hypothesis found a measured joint of 3.5e13 rad; the old supervisor forwarded the pull-back target
    (joint_outside_band) computed from it, which moved A5 0.1172 rad in 50 ms against its 0.1134 rad limit (float64
    steps are 2^-7 rad there). Such a state is a sensor fault now: nothing is computed from it."""
    supervisor = armed_at(1.0)
    corrupt = Q_HOME.copy()
    corrupt[4] = 3.52e13
    pull_back = SafetyFilter(LIMITS).hold_target(corrupt, PERIOD)  # what the old supervisor forwarded
    assert abs(pull_back[4] - corrupt[4]) == 0.1171875 > VMAX[4] * PERIOD
    supervisor.on_joint_state(corrupt, 1.02, 1.02)
    decision = supervisor.on_joint_command(Q_HOME, PERIOD, 1.03, 1.03)
    assert decision.q is None and decision.reasons == ("joint_state_fault",)
    assert "A5" in decision.message and "3.52e+13" in decision.message
    assert supervisor.state == FAULT and supervisor.fault == decision.message
    assert supervisor.counters["joint_state_fault"] == 1 and supervisor.counters["not_armed_fault"] == 1
    assert supervisor.hold()[1].startswith("sensor fault is latched") and supervisor.state == FAULT
    ok, why = supervisor.arm(1.03)
    assert not ok and "sensor fault" in why, "arming is refused while the newest state is the fault"
    supervisor.on_joint_state(Q_HOME, 1.05, 1.05)  # plausible again: still latched until an arm
    assert supervisor.on_joint_command(Q_HOME + 0.01, PERIOD, 1.06, 1.06).q is None
    assert supervisor.arm(1.06) == (True, "armed (was FAULT)") and supervisor.fault is None
    np.testing.assert_allclose(supervisor.on_joint_command(Q_HOME + 0.01, PERIOD, 1.07, 1.07).q, Q_HOME + 0.01)


def test_a_state_faster_than_the_velocity_limit_is_a_latched_sensor_fault():
    supervisor = armed_at(1.0)
    q, t = Q_HOME.copy(), 1.0
    for _ in range(10):  # A5 at 1.4x its 130 deg/s: servo overshoot, within the tolerance
        q, t = q + np.eye(7)[4] * 1.4 * VMAX[4] * PERIOD, t + PERIOD
        supervisor.on_joint_state(q, t, t)
    assert supervisor.state == ARMED and "joint_state_fault" not in supervisor.counters
    assert supervisor.on_joint_command(q, PERIOD, t, t).q is not None
    allowed = VMAX[4] * (JOINT_STATE_SPEED_FACTOR * PERIOD + JOINT_STATE_STAMP_JITTER_S) + JOINT_STATE_NOISE_RAD
    jump = q + np.eye(7)[4] * allowed * 1.01
    supervisor.on_joint_state(jump, t + PERIOD, t + PERIOD)
    decision = supervisor.on_joint_command(jump, PERIOD, t + PERIOD, t + PERIOD)
    assert decision.q is None and decision.reasons == ("joint_state_fault",)
    assert decision.message.startswith("A5 moved") and supervisor.state == FAULT
    supervisor.on_joint_state(jump, t + 2 * PERIOD, t + 2 * PERIOD)  # consistent with the jump: plausible
    assert supervisor.on_joint_command(jump, PERIOD, t + 2 * PERIOD, t + 2 * PERIOD).q is None, "latched"
    assert supervisor.arm(t + 2 * PERIOD)[0]
    assert supervisor.on_joint_command(jump, PERIOD, t + 2 * PERIOD, t + 2 * PERIOD).q is not None


def test_a_joint_pushed_past_the_band_is_pulled_back_instead_of_following_the_command():
    q = Q_HOME.copy()
    q[5] = np.radians(118.0)  # A6: limit 120, band 115 deg
    supervisor = armed_at(1.0, q)
    decision = supervisor.on_joint_command(q + 0.01, PERIOD, 1.01, 1.01)
    assert decision.reasons == ("joint_outside_band",)
    np.testing.assert_allclose(np.degrees(decision.q[5]), 114.5)  # to 0.5 deg inside the band: 3.5 deg < 6.75 deg
    np.testing.assert_array_equal(np.delete(decision.q, 5), np.delete(q, 5))


def test_a_joint_pushed_past_its_hardware_limit_within_the_tolerance_is_pulled_back_not_a_fault():
    """A contact can push a joint a little past the hardware limit (the soft simulated servos: 2.1 deg seen); up to
    5 deg past it the state is a posture, and the pull-back works; past 5 deg it is a sensor fault."""
    q = Q_HOME.copy()
    q[5] = np.radians(124.0)  # 4 deg past A6's 120 deg limit
    supervisor = armed_at(1.0, q)
    decision = supervisor.on_joint_command(q, PERIOD, 1.0, 1.0)
    assert decision.reasons == ("joint_outside_band",)
    assert np.isclose(np.degrees(q[5] - decision.q[5]), 135.0 * PERIOD)  # back at A6's 135 deg/s
    assert joint_state_fault(LIMITS, q, 0.0) is None
    q[5] = np.radians(125.5)
    assert "A6" in joint_state_fault(LIMITS, q, 0.0)
    q[5] = -np.radians(125.5)
    assert "A6" in joint_state_fault(LIMITS, q, 0.0)


@pytest.mark.parametrize("q, stamp, words", [
    (np.where(np.arange(7) == 2, np.nan, Q_HOME), 1.02, "A3 measured nan"),
    (np.where(np.arange(7) == 6, -np.inf, Q_HOME), 1.02, "A7 measured -inf"),
    (Q_HOME[:6], 1.02, "shape (6,)"),
    (Q_HOME, np.nan, "stamped nan"),
    (Q_HOME, 1.5, "in the future"),
    (np.degrees(Q_HOME) + 100.0, 1.02, "A1 measured 100"),  # degrees sent as radians
])
def test_unreadable_and_impossible_states_are_latched_faults_too(q, stamp, words):
    supervisor = armed_at(1.0)
    supervisor.on_joint_state(q, stamp, 1.02)
    assert supervisor.state == FAULT and words in supervisor.fault
    assert supervisor.on_joint_command(Q_HOME, PERIOD, 1.02, 1.02).q is None
    assert not supervisor.arm(1.02)[0]
    supervisor.on_joint_state(Q_HOME, 1.04, 1.04)
    assert supervisor.arm(1.04)[0]


def test_a_late_faulty_state_latches_but_the_newer_plausible_state_allows_arming():
    supervisor = armed_at(1.0)
    supervisor.on_joint_state(Q_HOME, 1.10, 1.10)
    corrupt = Q_HOME.copy()
    corrupt[0] = 7.0
    supervisor.on_joint_state(corrupt, 1.05, 1.11)  # older than the newest state, arriving late
    assert supervisor.state == FAULT and supervisor.on_joint_command(Q_HOME, PERIOD, 1.11, 1.11).q is None
    assert supervisor.arm(1.11)[0]


def test_an_estop_stays_latched_over_a_fault_and_arm_releases_both():
    supervisor = armed_at(1.0)
    supervisor.estop()
    supervisor.sensor_fault("unreadable joint state: JointState lacks joints ['lbr_A3']")
    assert supervisor.state == ESTOP and "lbr_A3" in supervisor.fault
    assert not supervisor.arm(1.0)[0], "the newest state is the unreadable one"
    supervisor.on_joint_state(Q_HOME, 1.02, 1.02)
    assert supervisor.arm(1.02)[0] and supervisor.state == ARMED and supervisor.fault is None


def test_a_sequence_with_fresh_inputs_forwards_and_stale_ones_do_not():
    """Guard against a vacuous property: the same machinery forwards when everything is healthy."""
    supervisor = SafetySupervisor(SafetyFilter(LIMITS), watchdog_s=WATCHDOG)
    q = Q_HOME
    supervisor.on_joint_state(q, 1.0)
    assert supervisor.arm(1.0)[0]
    assert supervisor.on_joint_command(q + 0.01, PERIOD, 1.02, 1.02).q is not None
    assert supervisor.on_joint_command(q + 0.01, PERIOD, 1.02, 0.9).q is None  # made 120 ms ago
    assert supervisor.on_joint_command(q + 0.01, PERIOD, 1.15, 1.15).q is None  # joint state 150 ms old
    supervisor.on_joint_state(q, 1.16)
    supervisor.on_joint_state(q + 0.1, 1.10)  # a late, older state does not replace the newer one
    decision = supervisor.on_joint_command(q + 0.01, PERIOD, 1.17, 1.17)
    np.testing.assert_allclose(decision.q, q + 0.01)
    assert supervisor.counters["stale_command"] == 1 and supervisor.counters["stale_joint_states"] == 1
    assert supervisor.counters.get("command_gap", 0) == 1 and supervisor.command_rate_hz == 4.0  # 4 in the last 1 s
    assert supervisor.state == ARMED and "joint_state_fault" not in supervisor.counters


def test_the_command_rate_is_the_commands_of_the_last_second_so_a_burst_after_arming_reads_as_a_burst():
    """Issue 16.6: command_rate_hz read 140-650 Hz right after arming (an exponential average seeded by the first
    interval between two queued commands). Now: commands that arrived in the last second."""
    supervisor = SafetySupervisor(SafetyFilter(LIMITS), watchdog_s=WATCHDOG)
    q = Q_HOME
    now = 1.0
    for k in range(5):  # five commands queued while the node started, delivered 1 ms apart
        supervisor.on_joint_command(q, PERIOD, now + 0.001 * k, now)
    assert supervisor.command_rate_hz == 5.0
    rates = []
    for k in range(1, 61):  # then 3 s at 20 Hz
        t = now + 0.004 + k * PERIOD
        supervisor.on_joint_state(q, t)
        supervisor.on_joint_command(q, PERIOD, t, t)
        rates.append(supervisor.command_rate_hz)
    assert max(rates) <= 24.0, max(rates)  # never the 650 Hz of a burst
    assert all(19.0 <= r <= 21.0 for r in rates[25:]), rates[25:]  # 20 Hz, +-1 command at the window edge


@pytest.mark.parametrize("below_floor_m, forwarded", [(0.003, True), (0.0049, True), (0.006, False), (0.05, False)])
def test_the_cartesian_check_allows_the_ik_solutions_millimetres_but_not_more(below_floor_m, forwarded):
    """On the real ROS 2 graph 187 of 300 reach commands were refused as "workspace_clamped": the IK solution's TCP
    lay millimetres below the box floor the sim2real node had clamped its target to. The supervisor now allows
    CARTESIAN_TOLERANCE_M (5 mm; the floor is 5 mm above the table) and refuses anything farther out."""
    from sim2real.supervisor import CARTESIAN_TOLERANCE_M

    assert CARTESIAN_TOLERANCE_M == 0.005
    tcp = {"now": np.array([0.5, 0.0, 0.06])}
    supervisor = SafetySupervisor(SafetyFilter(LIMITS), watchdog_s=WATCHDOG, fk=lambda q: tcp["now"].copy())
    supervisor.on_joint_state(Q_HOME, 1.0)
    assert supervisor.arm(1.0)[0]
    tcp["now"] = np.array([0.5, 0.0, LIMITS.workspace_min[2] - below_floor_m])
    decision = supervisor.on_joint_command(Q_HOME, PERIOD, 1.01, 1.01)
    assert (decision.q is not None) == forwarded, decision.reasons
    if not forwarded:
        assert decision.reasons == ("cartesian_workspace_exceeded",)
