"""The safety node's state machine (sim2real/supervisor.py) over arbitrary event sequences (hypothesis).

Each hypothesis example is a sequence of 200 events drawn by a seeded generator from hypothesis-drawn value
pools (plausible joint values, the band edges and their float neighbours, and arbitrary floats: NaN, +-inf,
huge): joint states with stamps that may be late or early, joint commands with stamps that may be stale, the
arm / hold / e-stop services, and time that jumps forward. After every event the invariants of a forwarded
command are checked. 100 examples x 200 events = 20,000 events per run, about 10,000 of them commands, of which
about 300 are forwarded (the rest are refused: not armed, stale states or commands) and checked.

Invariants of every forwarded command q:
* it is finite, each joint inside the limits minus the margin (or no farther out than the measured joint) and
  no joint faster than its velocity limit from the last measured state over the command period;
* the supervisor was ARMED, the last joint state was at most ``watchdog_s`` old and the command was fresh;
* nothing is forwarded between an e-stop and the next successful arm.
"""
import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from test_safety import ANY_FLOAT, BAND_HI, BAND_LO, JOINT_VALUES, LIMITS, PROPERTY, SEEDS, VMAX, combine, pool, quiet_log

from sim2real.safety import SafetyFilter
from sim2real.supervisor import ARMED, ESTOP, HOLD, SafetySupervisor

EVENTS = 200
WATCHDOG = 0.1
PERIOD = 0.05


@PROPERTY
@given(values=pool(JOINT_VALUES, 64), wild=pool(ANY_FLOAT, 16), seed=SEEDS,
       steps=pool(st.sampled_from([0.0, 0.01, 0.05, 0.05, 0.099, 0.1, 0.101, 0.3, 5.0]), 16))
def test_no_sequence_of_inputs_makes_the_supervisor_forward_an_unsafe_command(values, wild, seed, steps):
    rng = np.random.default_rng(seed)
    supervisor = SafetySupervisor(SafetyFilter(LIMITS), watchdog_s=WATCHDOG)
    now, q_state, t_state, estopped = 0.0, None, -np.inf, False
    with quiet_log():
        for e in range(EVENTS):
            now += steps[rng.integers(len(steps))]
            kind = rng.choice(["state", "command", "command", "arm", "hold", "estop"], p=[0.35, 0.25, 0.25, 0.07,
                                                                                        0.04, 0.04])
            if kind == "state":
                q = combine(values, int(rng.integers(2**32)), 7, wild)
                stamp = now - rng.choice([0.0, 0.02, 0.15, 0.5]) if rng.random() < 0.9 else wild[rng.integers(16)]
                supervisor.on_joint_state(q, stamp)
                if q.shape == (7,) and np.all(np.isfinite(q)) and stamp >= t_state:
                    q_state, t_state = q, stamp
            elif kind == "command":
                target = combine(values, int(rng.integers(2**32)), 7, wild)
                stamp = now - rng.choice([0.0, 0.0, 0.05, 0.2])
                state_before = supervisor.state
                decision = supervisor.on_joint_command(target, PERIOD, now, stamp)
                if decision.q is not None:
                    q = decision.q
                    assert state_before == ARMED and not estopped
                    assert now - t_state <= WATCHDOG and now - stamp <= WATCHDOG
                    assert np.all(np.isfinite(q))
                    lo, hi = np.minimum(BAND_LO, q_state), np.maximum(BAND_HI, q_state)
                    assert np.all(q >= lo - 1e-9) and np.all(q <= hi + 1e-9)
                    assert np.all(np.abs(q - q_state) <= VMAX * PERIOD * (1 + 1e-9) + 1e-12)
            elif kind == "arm":
                ok, _ = supervisor.arm(now)
                assert ok == (now - t_state <= WATCHDOG)
                if ok:
                    estopped = False
            elif kind == "hold":
                supervisor.hold()
                assert supervisor.state == (ESTOP if estopped else HOLD)
            else:
                supervisor.estop()
                estopped = True
                assert supervisor.state == ESTOP


def test_a_sequence_with_fresh_inputs_forwards_and_stale_ones_do_not():
    """Guard against a vacuous property: the same machinery forwards when everything is healthy."""
    supervisor = SafetySupervisor(SafetyFilter(LIMITS), watchdog_s=WATCHDOG)
    q = np.array([0.0, 0.5, 0.0, -1.2, 0.0, 0.8, 0.0])
    supervisor.on_joint_state(q, 1.0)
    assert supervisor.arm(1.0)[0]
    assert supervisor.on_joint_command(q + 0.01, PERIOD, 1.02, 1.02).q is not None
    assert supervisor.on_joint_command(q + 0.01, PERIOD, 1.02, 0.9).q is None  # made 120 ms ago
    assert supervisor.on_joint_command(q + 0.01, PERIOD, 1.15, 1.15).q is None  # joint state 150 ms old
    supervisor.on_joint_state(q, 1.16)
    supervisor.on_joint_state(q + 1.0, 1.10)  # a late, older state does not replace the newer one
    decision = supervisor.on_joint_command(q + 0.01, PERIOD, 1.17, 1.17)
    np.testing.assert_allclose(decision.q, q + 0.01)
    assert supervisor.counters["stale_command"] == 1 and supervisor.counters["stale_joint_states"] == 1
    assert supervisor.counters.get("command_gap", 0) == 1 and 5 < supervisor.command_rate_hz < 100


def test_a_joint_pushed_past_the_band_is_pulled_back_instead_of_following_the_command():
    supervisor = SafetySupervisor(SafetyFilter(LIMITS), watchdog_s=WATCHDOG)
    q = np.array([0.0, 0.5, 0.0, -1.2, 0.0, np.radians(118.0), 0.0])  # A6: limit 120, band 115 deg
    supervisor.on_joint_state(q, 1.0)
    assert supervisor.arm(1.0)[0]
    decision = supervisor.on_joint_command(q + 0.01, PERIOD, 1.01, 1.01)
    assert decision.reasons == ("joint_outside_band",)
    np.testing.assert_allclose(np.degrees(decision.q[5]), 115.0)  # 3 deg back, within 135 deg/s x 50 ms
    np.testing.assert_array_equal(np.delete(decision.q, 5), np.delete(q, 5))
