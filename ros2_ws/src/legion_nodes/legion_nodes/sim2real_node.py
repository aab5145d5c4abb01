"""sim2real: policy action -> Cartesian TCP target -> IK joint targets for the driver's trajectory controller.

Logic: :class:`sim2real.transforms.Sim2Real` (accumulated TCP target, 1 action unit = ``action_scale_m``
per step, gripper fraction) and its damped-least-squares IK, and the Cartesian checks of
:class:`sim2real.safety.SafetyFilter` (workspace box, step cap, non-finite values). Each joint command
is a one-point ``JointTrajectory`` reached after one policy period: the joint_trajectory_controller
interpolates to it at its own rate, so 20 Hz actions become a smooth
100 Hz (lbr_fri_ros2_stack) or 225 Hz (iiwa_ros2) stream. The safety node decides what reaches the arm.
"""
import numpy as np

from legion_nodes._ros import LegionNode, run
from legion_runtime import messages as m
from legion_runtime.main_job import make_chain
from sim2real.drivers import driver

GRIPPER_CLOSED_RAD = m.GRIPPER_CLOSED_RAD
#: Largest distance, m, between the accumulated TCP target and the measured TCP before the target is re-anchored on
#: the measured one: two step caps (2 x 2.5 cm), i.e. the arm is more than a cycle behind.
TRACKING_LIMIT_M = 0.05


class Sim2RealNode(LegionNode):
    def __init__(self):
        super().__init__("sim2real")
        self.real2sim, self.sim2real, self.safety = make_chain()
        self.real2sim.joint_names = list(driver(self.param("driver")).joint_names)
        self.q = None
        self.joint_names: list[str] = []
        self.last_sent = None
        self.subscribe("joint_states", self.on_joint_states)
        self.subscribe("subtask", self.on_subtask)
        self.subscribe("action", self.on_action)

    def on_joint_states(self, msg) -> None:
        state = m.joint_state_from_msg(msg)
        self.q = self.real2sim.joint_positions(state.names, state.position)
        self.joint_names = list(self.real2sim.joint_names)

    def on_subtask(self, msg) -> None:
        self.last_sent = None  # re-anchor the accumulated target on the measured TCP

    def on_action(self, msg) -> None:
        if self.q is None:
            self.get_logger().warning("action before any joint state: ignored")
            return
        action = m.action_from_msg(msg)
        tcp_base = self.real2sim.kinematics.forward_kinematics(self.q)[0]
        if self.last_sent is not None and np.linalg.norm(self.last_sent - tcp_base) > TRACKING_LIMIT_M:
            # the arm did not follow (the safety node refused or held): re-anchor on the measured TCP, as the
            # in-process runner does on a HOLD, so the target never runs away from the arm
            self.last_sent = None
        if self.last_sent is None:
            self.sim2real.reset(self.real2sim.frame.to_sim(tcp_base))
            self.last_sent = tcp_base
        stamp = self.now_s()
        cmd = self.sim2real.command(action, stamp=stamp)
        verdict = self.safety.filter_cartesian(cmd.position_base, self.last_sent, cmd.gripper)
        if not verdict.accepted:
            self.get_logger().warning(f"Cartesian target refused: {verdict.reasons}")
            self.last_sent = None
            return
        ik = self.sim2real.kinematics.solve_ik(verdict.position, self.q, self.sim2real.target_rot_base,
                                               max_iterations=self.sim2real.ik_iterations)
        self.last_sent = verdict.position
        period = 1.0 / self.param("policy_rate_hz")
        self.publish("cartesian_target", m.cartesian_target_to_msg(verdict.position, stamp, self.param("base_frame")))
        self.publish("joint_command", m.joint_trajectory_to_msg(np.asarray(ik.q), self.joint_names, stamp, period))
        self.publish("gripper_request", m.gripper_command_to_msg(verdict.gripper * GRIPPER_CLOSED_RAD))


def main(args=None):
    run(Sim2RealNode, args)
