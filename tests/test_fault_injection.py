"""Fault injection in MuJoCo-in-the-loop: the ROS 2 node files (rclpy test double) around the MuJoCo plant.

The whole deployment graph runs in lockstep at 20 Hz: mujoco_plant (arm driver, gripper and the virtual
RealSense) → perception (AprilTags) → real2sim → policy → sim2real → safety → mujoco_plant, the bytes routed by
topic. After arming, each scenario injects one fault for 20 cycles (1 s) while the arm reaches for the goal:

* tag occlusion (a card between the camera and the puck's tag), dropped camera frames;
* a 200 ms latency spike on the joint states (they arrive 4 cycles late, with their true stamps);
* a policy that outputs NaN, or saturated actions (every component at +1);
* the policy process stopping, then a new one starting (it learns the subtask from the latched topics);
* a joint state no iiwa can be in (issue 15): one message with A5 at 3.52e13 rad, or with A1 0.5 rad away from the
  previous state 50 ms earlier. The safety node latches FAULT: it forwards nothing, reports the joint and why on
  /diagnostics (ERROR), and moves again only after the arm service is called.

Every cycle the measured joints must be inside the iiwa 14 limits and the TCP inside the workspace box (1 cm of
servo overshoot allowed), and no TCP step exceeds the 2.5 cm cap (+1 cm). While inputs are unhealthy the arm holds
(its TCP moves < 5 mm over the fault once the age limits have passed), and once they recover it finishes the
reach. Saturated actions are not detectable as unhealthy: the filters keep the arm in the box at capped steps.

The in-process runner (legion_runtime/runner.py, the main job's control loop) is checked on the MuJoCo plant with a
joint sensor that starts reading wrong: it stops before computing anything from that state, sends nothing more,
and stays latched until armed.
"""
import dataclasses

import numpy as np
import pytest
from ros_graph import CHECKPOINT, ROOT, Bus, call, deliver, make, sent

from legion_runtime import graph
from legion_runtime import messages as m
from legion_runtime.main_job import make_chain
from legion_sim.camera import OCCLUDER_BODY, OCCLUDER_PARKED_POS, sim_tag_map_path
from sim2real.kinematics import JOINT_LIMITS_RAD

FAULT_START, FAULT_CYCLES, MAX_CYCLES = 4, 20, 150
#: cycles after the fault starts before the arm must be still: the age limits (objects 0.15 s, observations
#: 0.1 s, joint states 0.1 s) plus the motion still in flight
SETTLE = {"occlusion": 6, "dropped_frames": 6, "latency_spike": 3, "nan_policy": 2, "policy_restart": 3}


def _edit_joint_state(edit):
    """A bus corruption: the JointState message (CDR bytes) with its positions passed through ``edit``."""
    def corrupt(data: bytes) -> bytes:
        msg = m.deserialize(data, graph.TOPICS["joint_states"].msgtype)
        return m.serialize(dataclasses.replace(msg, position=edit(np.array(msg.position, dtype=np.float64))))
    return corrupt


def _set(q, j, value):
    q[j] = value
    return q


#: one joint-state message that no iiwa can send: A5 at 3.52e13 rad (what hypothesis found), A1 0.5 rad in 50 ms
CORRUPT_JOINT_STATE = {"joint_state_corrupt": _edit_joint_state(lambda q: _set(q, 4, 3.52e13)),
                       "joint_state_jump": _edit_joint_state(lambda q: _set(q, 0, q[0] + 0.5))}


class FaultyBus(Bus):
    """The bus with faults: topics whose messages are dropped, and topics whose messages are held back."""

    def __init__(self, nodes):
        super().__init__(nodes)
        self.drop: set[str] = set()
        self.delay: dict[str, int] = {}  # topic -> cycles
        self.held: list[tuple[int, str, bytes]] = []  # (release cycle, topic, data)
        self.corrupt: dict[str, object] = {}  # topic -> function(bytes) -> bytes, applied to its next message
        self.cycle = 0

    def route(self, topic, data) -> int:
        if topic in self.corrupt:
            data = self.corrupt.pop(topic)(data)
        if topic in self.drop:
            return 0
        if topic in self.delay:
            self.held.append((self.cycle + self.delay[topic], topic, data))
            return 0
        return super().route(topic, data)

    def pump(self) -> int:
        moved = super().pump()
        due = [h for h in self.held if h[0] <= self.cycle]
        self.held = [h for h in self.held if h[0] > self.cycle]
        return moved + sum(super(FaultyBus, self).route(topic, data) for _, topic, data in due)


def run(fault: str):
    """Arm, reach with ``fault`` injected over cycles [FAULT_START, FAULT_START + FAULT_CYCLES); per-cycle records."""
    from legion_policy.embedding import TextEmbedder
    from legion_runtime.sim_perception import SIM_CALIBRATION

    plant = make("mujoco_plant", seed=3, camera=True)
    perception = make("perception", tag_map=sim_tag_map_path(), calibration=str(ROOT / SIM_CALIBRATION))
    policy = make("policy", checkpoint=CHECKPOINT)
    safety = make("safety")
    nodes = [plant, perception, make("real2sim"), policy, make("sim2real"), safety]
    bus = FaultyBus(nodes)
    subtask = m.command_to_msg("reach the goal")
    embedding = m.embedding_to_msg(TextEmbedder().embed(["reach the goal"])[0])

    def start_policy(node):  # the latched subtask and embedding reach a (re)started node at once
        deliver(node, "subtask", subtask)
        deliver(node, "embedding", embedding)

    for node in nodes[2:5]:
        if any(s.topic == graph.TOPICS["subtask"].name for s in node.subscriptions_):
            deliver(node, "subtask", subtask)
    start_policy(policy)
    kin = make_chain()[0].kinematics
    limits = make_chain()[2].limits
    mocap = plant.plant.model.body_mocapid[plant.plant.model.body(OCCLUDER_BODY).id]
    records = []
    for i in range(MAX_CYCLES):
        t = i * plant.plant.dt
        bus.cycle = i
        for node in nodes:
            node.get_clock().set(t)
        k = i - FAULT_START
        active = 0 <= k < FAULT_CYCLES
        if fault == "occlusion":
            if k == 0:
                cam = plant.plant.camera().pose_sim()[:3, 3]
                tag = plant.plant.data.site_xpos[plant.plant.model.site("tag0").id]
                plant.plant.data.mocap_pos[mocap] = cam + 0.3 * (tag - cam) / np.linalg.norm(tag - cam)
            elif k == FAULT_CYCLES:
                plant.plant.data.mocap_pos[mocap] = OCCLUDER_PARKED_POS
        elif fault == "dropped_frames":
            bus.drop = {graph.TOPICS["image"].name, graph.TOPICS["camera_info"].name} if active else set()
        elif fault == "latency_spike":
            bus.delay = {graph.TOPICS["joint_states"].name: 4} if active else {}
        elif fault in ("nan_policy", "saturated_policy"):
            if k == 0:
                real_act = policy.policy.act
                bad = np.full(4, np.nan) if fault == "nan_policy" else np.ones(4)
                policy.policy.act = lambda obs, emb: (bad.copy(), 0)
            elif k == FAULT_CYCLES:
                policy.policy.act = real_act
        elif fault in CORRUPT_JOINT_STATE:
            if k == 0:
                bus.corrupt = {graph.TOPICS["joint_states"].name: CORRUPT_JOINT_STATE[fault]}
        elif fault == "policy_restart":
            if k == 0:
                nodes.remove(policy)  # the process dies: its timer stops, nothing more is published
            elif k == FAULT_CYCLES:
                policy = make("policy", checkpoint=CHECKPOINT)
                start_policy(policy)
                nodes.insert(3, policy)
                for node in nodes:
                    node.get_clock().set(t)
        plant.on_timer()
        bus.pump()
        if policy in nodes:
            policy.on_timer()
        bus.pump()
        if i == 0 or (fault in CORRUPT_JOINT_STATE and k == FAULT_CYCLES):  # a latched fault needs a re-arm
            assert call(safety, "arm").success
        q = plant.plant.joint_state()[0]
        records.append({"q": q, "tcp": kin.forward_kinematics(q)[0], "active": active, "k": k,
                        "success": plant.plant.success(), "forwarded": len(sent(safety, "joint_targets")),
                        "state": safety.supervisor.state})
        if fault in CORRUPT_JOINT_STATE and k == 1:
            safety.publish_diagnostics()
        if records[-1]["success"] and k >= FAULT_CYCLES:
            break
    return records, limits, safety


@pytest.mark.parametrize("fault", ["occlusion", "dropped_frames", "latency_spike", "nan_policy", "saturated_policy",
                                   "policy_restart"])
def test_the_arm_stays_safe_holds_through_the_fault_and_recovers(fault):
    records, limits, safety = run(fault)
    q = np.array([r["q"] for r in records])
    tcp = np.array([r["tcp"] for r in records])
    assert np.all(np.abs(q) <= JOINT_LIMITS_RAD), "a joint passed its limit"
    assert np.all(tcp >= limits.workspace_min - 0.01) and np.all(tcp <= limits.workspace_max + 0.01), "left the box"
    steps = np.linalg.norm(np.diff(tcp, axis=0), axis=1)
    assert steps.max() <= limits.max_step_m + 0.01, f"a TCP step of {steps.max():.3f} m"
    window = [r["tcp"] for r in records if SETTLE.get(fault, FAULT_CYCLES) <= r["k"] < FAULT_CYCLES]
    moved = np.ptp(np.array(window), axis=0).max() if window else 0.0
    print(f"{fault}: {len(records)} cycles, success {records[-1]['success']}, TCP travel while held "
          f"{moved * 1e3:.1f} mm, safety counters {safety.supervisor.counters}")
    if fault in SETTLE:
        assert window and moved < 0.005, f"the arm moved {moved * 1e3:.1f} mm while its inputs were unhealthy"
        assert records[-1]["success"], "did not finish the reach after the fault"


@pytest.mark.parametrize("fault, words", [("joint_state_corrupt", "A5 measured 3.52e+13 rad"),
                                          ("joint_state_jump", "A1 moved 0.5")])
def test_a_joint_state_no_iiwa_can_be_in_latches_the_safety_node_until_it_is_re_armed(fault, words):
    records, limits, safety = run(fault)
    q = np.array([r["q"] for r in records])
    assert np.all(np.abs(q) <= JOINT_LIMITS_RAD), "a joint passed its limit"
    before = records[FAULT_START - 1]["forwarded"]
    latched = [r for r in records if 0 <= r["k"] < FAULT_CYCLES]
    assert all(r["state"] == "FAULT" for r in latched)
    assert all(r["forwarded"] == before for r in latched), "a command was forwarded after the fault, before the re-arm"
    (diag,) = sent(safety, "diagnostics")
    name, level, message, values = m.diagnostics_from_msg(diag)[0][:4]
    assert level == m.DIAG_ERROR and message.startswith("FAULT") and "joint_state_fault" in message and words in message
    tcp = np.array([r["tcp"] for r in latched[1:]])
    print(f"{fault}: {len(records)} cycles, success {records[-1]['success']}, TCP travel while latched "
          f"{np.ptp(tcp, axis=0).max() * 1e3:.1f} mm, safety counters {safety.supervisor.counters}")
    assert np.ptp(tcp, axis=0).max() < 0.005, "the arm moved while latched"
    assert records[-1]["forwarded"] > before and records[-1]["state"] == "ARMED"
    assert records[-1]["success"], "did not finish the reach after the re-arm"


class FaultySensorPlant:
    """A MuJoCo plant whose joint sensor reads ``corrupt(q)`` once ``at`` plant steps have run (None: correct)."""

    def __init__(self, plant, at: int, corrupt):
        self.plant, self.at, self.corrupt, self.steps = plant, at, corrupt, 0

    def __getattr__(self, name):
        return getattr(self.plant, name)

    def joint_state(self):
        q, qd = self.plant.joint_state()
        if self.corrupt is not None and self.steps >= self.at:
            q = self.corrupt(q.copy())
        return q, qd

    def step(self, q_target, gripper):
        self.steps += 1
        self.plant.step(q_target, gripper)


class Forward:
    """A stand-in policy: move the TCP along +x, gripper open."""

    def act(self, obs, embedding):
        return np.array([0.5, 0.0, 0.0, -1.0]), 0


@pytest.mark.parametrize("corrupt, words, arm_refused", [
    (lambda q: _set(q, 4, 3.52e13), "A5 measured 3.52e+13 rad", True),  # the sensor keeps reading it: arm is refused
    (lambda q: _set(q, 0, q[0] + 0.5), "A1 moved", False),  # an offset from then on: plausible on its own
])
def test_the_in_process_runner_stops_on_a_joint_state_no_iiwa_can_be_in(corrupt, words, arm_refused):
    from legion_runtime.runner import ControlLoop
    from legion_sim.plant import KukaPlant

    plant = KukaPlant("reach-v3", seed=0)
    plant.reset(0)
    faulty = FaultySensorPlant(plant, at=5, corrupt=corrupt)
    published = []
    loop = ControlLoop(Forward(), *make_chain(), publish=lambda key, msg, stamp: published.append((key, msg)))
    embedding = np.zeros(384, np.float32)
    outcome = loop.run_subtask(faulty, "reach", embedding, max_steps=150)
    assert faulty.steps == 5 and outcome.steps == 5 and not outcome.success, "the plant was stepped after the fault"
    assert words in outcome.fault and loop.fault == outcome.fault
    assert outcome.interventions["joint_state_fault"] == 1
    assert sum(key == "joint_targets" for key, _ in published) == 5, "a joint target was sent for the faulty state"
    (diag,) = [msg for key, msg in published if key == "diagnostics"]
    level, message = m.diagnostics_from_msg(diag)[0][1:3]
    assert level == m.DIAG_ERROR and "joint_state_fault" in message and words in message

    again = loop.run_subtask(faulty, "reach", embedding, max_steps=150)  # latched: the next subtask sends nothing
    assert again.steps == 0 and faulty.steps == 5 and again.fault == outcome.fault and "latched" in again.skipped
    ok, why = loop.arm(faulty)
    assert ok != arm_refused, why
    faulty.corrupt = None  # the sensor is repaired
    assert loop.arm(faulty)[0] and loop.fault is None
    plant.reset(1)
    resumed = loop.run_subtask(faulty, "reach", embedding, max_steps=10)
    assert resumed.steps == 10 and not resumed.fault and faulty.steps == 15
    plant.close()
