"""safety: the only node that talks to the arm driver. Starts in HOLD; moves only after ``arm``.

Logic: :class:`sim2real.supervisor.SafetySupervisor` (HOLD / ARMED / ESTOP / FAULT, joint-state watchdog, and a
latched sensor fault on a joint state no iiwa can be in: ERROR on /diagnostics with the joint and why) over
:class:`sim2real.safety.SafetyFilter` (iiwa 14 joint position limits with a margin, velocity limits,
non-finite rejection; the commanded TCP inside the workspace box and within ``max_step_m`` of the last
command, which allows 5 mm over sim2real's 2 cm step cap for IK error). Services ``arm`` / ``hold`` / ``estop`` are std_srvs/srv/Trigger. Accepted joint
commands go to the driver's trajectory controller (``topics.joint_targets``; joint names of ``driver``:
lbr_fri_ros2_stack or iiwa_ros2); the gripper goes to the Robotiq 2F-85 action (control_msgs
GripperCommand, or ParallelGripperCommand on Jazzy+: ``gripper_action``). State and intervention
counters are published on /diagnostics once per second.
"""
from rclpy.action import ActionClient
from std_srvs.srv import Trigger

from legion_nodes._ros import LegionNode, run
from legion_runtime import graph
from legion_runtime import messages as m
from legion_runtime.main_job import make_chain
from sim2real.drivers import driver
from sim2real.gripper import KNUCKLE_JOINT
from sim2real.supervisor import ARMED, SafetySupervisor


class SafetyNode(LegionNode):
    def __init__(self):
        super().__init__("safety")
        self.driver = driver(self.param("driver"))
        self.real2sim, _, safety = make_chain(max_step_m=self.param("max_step_m"))
        self.real2sim.joint_names = list(self.driver.joint_names)
        fk = self.real2sim.kinematics.forward_kinematics
        self.supervisor = SafetySupervisor(safety, watchdog_s=self.param("watchdog_s"),
                                           start_in_hold=self.param("start_in_hold"), fk=lambda q: fk(q)[0])
        for key, handler in (("arm", self.supervisor_arm), ("hold", self.supervisor.hold),
                             ("estop", self.supervisor.estop)):
            self.create_service(Trigger, graph.SERVICES[key].name, self._trigger(handler))
        kind = self.param("gripper_action")
        if kind not in ("GripperCommand", "ParallelGripperCommand"):
            raise ValueError(f"gripper_action must be GripperCommand or ParallelGripperCommand, got {kind!r}")
        from control_msgs import action as control_actions

        self.gripper_type = getattr(control_actions, kind)
        self.gripper = ActionClient(self, self.gripper_type, graph.ACTIONS["gripper"].name)
        self.last_gripper = None
        self.subscribe("joint_states", self.on_joint_states)
        self.subscribe("joint_command", self.on_joint_command)
        self.subscribe("gripper_request", self.on_gripper_request)
        self.create_timer(1.0, self.publish_diagnostics)

    def supervisor_arm(self):
        return self.supervisor.arm(self.now_s())

    @staticmethod
    def _trigger(handler):
        def callback(request, response):
            response.success, response.message = handler()
            return response
        return callback

    def on_joint_states(self, msg) -> None:
        state = m.joint_state_from_msg(msg)
        now = self.now_s()
        stamp = state.stamp if state.stamp > 0 else now  # an unstamped state: its arrival time
        try:
            q = self.real2sim.joint_positions(state.names, state.position)
        except ValueError as exc:  # a joint missing, a NaN: a sensor fault, latched by the supervisor
            self.supervisor.sensor_fault(f"unreadable joint state: {exc}")
            return
        self.supervisor.on_joint_state(q, stamp, now)

    def on_joint_command(self, msg) -> None:
        q, names, stamp, period = m.joint_trajectory_from_msg(msg)
        if sorted(names) != sorted(self.driver.joint_names):  # never guess which joint a value is for
            self.get_logger().error(f"joint command for {names}, expected {list(self.driver.joint_names)}: refused")
            return
        q = self.real2sim.joint_positions(names, q)  # into A1..A7 order
        decision = self.supervisor.on_joint_command(q, period, self.now_s(), stamp if stamp > 0 else None)
        if decision.q is not None:
            self.publish("joint_targets", m.joint_trajectory_to_msg(decision.q, self.driver.joint_names, 0.0, period))

    def on_gripper_request(self, msg) -> None:
        position = m.gripper_command_from_msg(msg)
        if self.supervisor.state != ARMED or position == self.last_gripper:
            return
        goal = self.gripper_type.Goal()
        if hasattr(goal.command, "max_effort"):  # GripperCommand
            goal.command.position, goal.command.max_effort = position, self.param("gripper_max_effort")
        else:  # ParallelGripperCommand: a JointState for the knuckle joint
            goal.command.name, goal.command.position = [KNUCKLE_JOINT], [position]
        self.gripper.send_goal_async(goal)
        self.last_gripper = position
        self.publish("gripper_command", m.gripper_command_to_msg(position))

    def publish_diagnostics(self) -> None:
        now = self.now_s()
        s = self.supervisor
        level = m.DIAG_OK if s.state == ARMED and s.healthy(now) else m.DIAG_WARN
        message = s.state + ("" if s.healthy(now) else ", joint states stale")
        values = {**s.counters, "command_rate_hz": f"{s.command_rate_hz:.1f}"}
        if s.fault is not None:  # a latched sensor fault: which joint and why, until arm
            level, message, values["fault"] = m.DIAG_ERROR, f"{message}, joint_state_fault: {s.fault}", s.fault
        self.publish("diagnostics", m.diagnostics_to_msg("legion: safety", level, message, values, now,
                                                          hardware_id=self.driver.name))


def main(args=None):
    run(SafetyNode, args)
