"""Safety filter and supervisor: per-call latency of both filters and invariant checks over random hostile inputs.

Prints median / p99 latency of ``filter_cartesian`` and ``filter_joints`` (nominal inputs, and the
hostile mix below), then runs ``--cases`` random cases (half Cartesian, half joint) and prints how
many outputs break an invariant (must be 0) and the interventions by reason.

Inputs mix plausible values with hostile ones per entry (10%): NaN, ±inf, huge (up to 1e308), tiny, zero,
the limits themselves and their float neighbours. ``dt`` is > 0 or non-finite (dt <= 0 raises).
Log output is switched off: this measures the filter, not the logging handler.

Then the supervisor (``sim2real/supervisor.py``, the safety node's state machine): ``--supervisor-events`` random
events in sequences of 200, generated and checked by ``run_events`` of ``tests/test_supervisor.py`` (the property
test's generator and invariants, here with numpy-drawn pools instead of hypothesis'): joint states that move the arm
plausibly or are sensor faults (a jump, a joint far past its limit, NaN / inf / huge entries such as 3.52e13 rad,
a wrong shape, a non-finite or future stamp), commands (near the posture, or anything), arm / hold / e-stop and
time jumps. Prints the events, commands forwarded, refusals by reason, faults by kind and the invariant violations
(must be 0): nothing forwarded outside the band or faster than the velocity limit, on stale inputs, unarmed, after
an e-stop, or after a sensor fault before a re-arm.

    .venv/bin/python benchmarks/bench_safety.py [--cases 1000000] [--supervisor-events 1000000] [--seed 0]
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

from sim2real.safety import SafetyFilter, SafetyLimits

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

LIMITS = SafetyLimits.iiwa14(workspace_min=[0.3, -0.4, 0.05], workspace_max=[0.8, 0.4, 0.6])
BOX_LO, BOX_HI, CAP = LIMITS.workspace_min, LIMITS.workspace_max, LIMITS.max_step_m
BAND_LO = LIMITS.joint_position_min + LIMITS.joint_position_margin
BAND_HI = LIMITS.joint_position_max - LIMITS.joint_position_margin
VMAX = LIMITS.joint_velocity_max
TOL = 1e-9


def hostile(rng: np.random.Generator, shape, low, high, edges) -> np.ndarray:
    """Uniform in [low, high] for 90% of the entries; 1/60 each NaN, +inf, -inf, huge, a limit value, tiny/0."""
    x = rng.uniform(low, high, shape)
    kind = rng.integers(0, 60, shape) - 40  # kind < 14: plausible; 14..19: the hostile kinds below
    huge = np.sign(rng.standard_normal(shape)) * 10.0 ** rng.uniform(0, 308, shape)
    edges = np.concatenate([edges, np.nextafter(edges, -np.inf), np.nextafter(edges, np.inf)])
    for k, value in [(14, np.nan), (15, np.inf), (16, -np.inf), (17, huge), (18, rng.choice(edges, shape)),
                     (19, rng.choice([0.0, -0.0, 5e-324, 1e-300], shape))]:
        x = np.where(kind == k, value, x)
    return x


def cartesian_violations(targets, currents, grippers, verdicts) -> int:
    """Number of verdicts breaking an invariant of ``filter_cartesian`` (see tests/test_safety.py)."""
    pos = np.array([v.position for v in verdicts])
    grip = np.array([v.gripper for v in verdicts])
    acc = np.array([v.accepted for v in verdicts])
    bad = ~np.isfinite(pos).all(1) | ~np.isfinite(grip) | (grip < LIMITS.gripper_min) | (grip > LIMITS.gripper_max)
    bad |= acc & ~(np.isfinite(targets).all(1) & np.isfinite(currents).all(1) & np.isfinite(grippers))
    known = np.isfinite(currents).all(1)
    p, c = np.where(known[:, None], pos, 0.0), np.where(known[:, None], currents, 0.0)
    dist_p = np.maximum(BOX_LO - p, 0) + np.maximum(p - BOX_HI, 0)
    dist_c = np.maximum(BOX_LO - c, 0) + np.maximum(c - BOX_HI, 0)
    bad |= known & (np.linalg.norm(p - c, axis=1) > CAP + TOL)  # step cap
    bad |= known & (dist_p > dist_c).any(1)  # inside the box, or no farther from it than now
    bad |= known & ~acc & (p != c).any(1)  # HOLD returns the current position
    return int(bad.sum())


def joint_violations(targets, currents, dts, verdicts) -> int:
    """Number of verdicts breaking an invariant of ``filter_joints``."""
    q = np.array([v.q for v in verdicts])
    acc = np.array([v.accepted for v in verdicts])
    bad = ~np.isfinite(q).all(1)
    bad |= acc & ~(np.isfinite(targets).all(1) & np.isfinite(currents).all(1) & np.isfinite(dts))
    known = np.isfinite(currents).all(1)
    qk, c = np.where(known[:, None], q, 0.0), np.where(known[:, None], currents, 0.0)
    bad |= known & ((qk < np.minimum(BAND_LO, c)) | (qk > np.maximum(BAND_HI, c))).any(1)  # position band
    timed = known & np.isfinite(dts)
    with np.errstate(over="ignore"):
        cap = VMAX * np.where(timed, dts, 0.0)[:, None] * (1 + TOL)
    bad |= timed & (np.abs(qk - c) > cap).any(1)  # velocity
    bad |= known & ~acc & (qk != c).any(1)  # HOLD returns q_current
    return int(bad.sum())


def latency(call, args) -> str:
    ns = np.empty(len(args))
    for i, a in enumerate(args):
        t = time.perf_counter_ns()
        call(*a)
        ns[i] = time.perf_counter_ns() - t
    us = ns / 1e3
    return f"median {np.median(us):6.1f} us   p99 {np.percentile(us, 99):6.1f} us   (n={us.size})"


def supervisor_events(rng: np.random.Generator, events: int) -> None:
    """Run ``events`` supervisor events (sequences of 200) through ``run_events`` and print the figures."""
    from test_supervisor import EVENTS, STEPS, run_events

    edges = np.concatenate([BAND_LO, BAND_HI, LIMITS.joint_position_min, LIMITS.joint_position_max])
    totals: Counter = Counter()
    faults: Counter = Counter()
    counters: Counter = Counter()
    violations: list[str] = []
    t = time.perf_counter()
    done = 0
    while done < events:
        n = min(EVENTS, events - done)
        values = np.concatenate([rng.uniform(-2.2, 2.2, 48), rng.choice(np.concatenate(
            [edges, np.nextafter(edges, -np.inf), np.nextafter(edges, np.inf)]), 16)])
        wild = hostile(rng, 16, -1e3, 1e3, np.array([3.52e13, -3.52e13]))
        wild[rng.integers(16)] = 3.52e13  # the value hypothesis found (issue 15) in every sequence
        steps = rng.choice(STEPS, 16)
        stats = run_events(values, wild, int(rng.integers(2**32)), steps, events=n)
        totals.update({k: v for k, v in stats.items() if isinstance(v, int)})
        faults.update(stats["faults"])
        counters.update(stats["counters"])
        violations += stats["violations"]
        done += n
    wall = time.perf_counter() - t
    refused = {k: v for k, v in sorted(counters.items()) if k not in ("command_gap", "estop", "velocity_scaled",
                                                                       "joint_outside_band", "joint_state_fault")}
    print(f"supervisor: {done} random events in {wall:.1f} s ({wall / done * 1e6:.1f} us/event, invariants included)")
    print(f"  events     states {totals['states']}, commands {totals['commands']}, arm {totals['arms']}, "
          f"hold {totals['holds']}, e-stop {totals['estops']}")
    print(f"  forwarded  {totals['forwarded']} commands (of which {totals['pulled_back']} joint_outside_band "
          f"pull-backs, {counters['velocity_scaled']} velocity_scaled)")
    print(f"  refused by reason: {refused}")
    print(f"  sensor faults (joint_state_fault) {counters['joint_state_fault']}: by kind {dict(faults)}; "
          f"re-armed after a fault {totals['rearmed_after_fault']} times")
    print(f"  violations {len(violations)}" + (f": {violations[:5]}" if violations else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=1_000_000, help="random cases, half per filter")
    parser.add_argument("--supervisor-events", type=int, default=1_000_000,
                        help="random supervisor events, in sequences of 200 (0: skip)")
    parser.add_argument("--latency-calls", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for name in ("sim2real.safety", "sim2real.supervisor"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    rng = np.random.default_rng(args.seed)
    f = SafetyFilter(LIMITS)

    n = args.latency_calls
    c = rng.uniform(BOX_LO, BOX_HI, (n, 3))
    nominal_cart = [(ci + rng.uniform(-0.01, 0.01, 3), ci, 0.5) for ci in c]
    q = rng.uniform(BAND_LO / 2, BAND_HI / 2, (n, 7))
    nominal_joint = [(qi + rng.uniform(-0.02, 0.02, 7), qi, 0.05) for qi in q]
    print("latency, nominal inputs (no intervention):")
    print(f"  filter_cartesian  {latency(f.filter_cartesian, nominal_cart)}")
    print(f"  filter_joints     {latency(f.filter_joints, nominal_joint)}")

    half = args.cases // 2
    cart = [hostile(rng, (half, 3), BOX_LO - 0.1, BOX_HI + 0.1, np.concatenate([BOX_LO, BOX_HI]))
            for _ in range(2)]
    grippers = hostile(rng, half, -0.5, 1.5, np.array([0.0, 1.0]))
    joint = [hostile(rng, (half, 7), BAND_LO - 0.2, BAND_HI + 0.2, np.concatenate([BAND_LO, BAND_HI]))
             for _ in range(2)]
    dts = hostile(rng, half, 1e-3, 0.2, np.array([1e-3, 0.05]))
    dts = np.where(np.isfinite(dts) & (dts <= 0), 0.05, dts)
    print(f"latency, hostile mix (first {n} cases):")
    print(f"  filter_cartesian  {latency(f.filter_cartesian, list(zip(cart[0][:n], cart[1][:n], grippers[:n])))}")
    print(f"  filter_joints     {latency(f.filter_joints, list(zip(joint[0][:n], joint[1][:n], dts[:n])))}")

    f = SafetyFilter(LIMITS)
    t = time.perf_counter()
    verdicts = [f.filter_cartesian(a, b, g) for a, b, g in zip(cart[0], cart[1], grippers)]
    bad_cart = cartesian_violations(cart[0], cart[1], grippers, verdicts)
    verdicts = [f.filter_joints(a, b, dt) for a, b, dt in zip(joint[0], joint[1], dts)]
    bad_joint = joint_violations(joint[0], joint[1], dts, verdicts)
    print(f"invariants: {2 * half} random cases in {time.perf_counter() - t:.1f} s")
    print(f"  filter_cartesian  {half} cases, violations {bad_cart}")
    print(f"  filter_joints     {half} cases, violations {bad_joint}")
    print(f"  interventions by reason: {f.counters}")
    if args.supervisor_events > 0:
        supervisor_events(rng, args.supervisor_events)


if __name__ == "__main__":
    main()
