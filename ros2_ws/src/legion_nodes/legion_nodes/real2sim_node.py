"""real2sim: joint states + object poses -> the policy's 12-d sim-frame observation, at the joint-state rate.

Logic: :class:`sim2real.transforms.Real2Sim` (FK of the iiwa 14, frame transform, ee offset) and the running
subtask's :class:`sim2real.goals.GoalRule` (which tag-map object the subtask acts on, and how its goal follows
from the initial detections). ``object_poses`` carries tag-map object names in the robot base frame. When a
subtask starts (``subtask`` topic), its goal is derived from the first fresh poses and then held fixed, as in
the paper. An object pose older than ``max_object_age_s`` is stale: no observation is published and the reason
is logged, never a stale pose silently reused. One exception, for deriving a goal only: a goal marker (the rule's
``goal_object``) last seen up to ``max_goal_age_s`` ago counts, because after one reach the gripper stands on the
marker and hides it, and "reach the goal" again must still find the goal where it was seen. A loose object's
measured height near its resting height is taken as lying on the table (:func:`sim2real.object_state.on_table`, as
when the gripper holds nothing).

The observation's layout is the one the deployed checkpoint's manifest names (parameter ``checkpoint``, the policy
node's; read without loading weights). The ``gripper`` layout adds the 2F-85's opening, from the knuckle joint
(``gripper_joint``) of the gripper's joint states: one older than ``max_gripper_age_s`` is stale, and then no
observation is published, as for a stale object pose.
"""
from legion_nodes._ros import LegionNode, run
from legion_language.tasks import load_task_library
from legion_policy.manifest import observation_layout, read_manifest
from legion_runtime import messages as m
from legion_runtime.main_job import make_chain
from legion_runtime.paths import project_path
from sim2real.drivers import driver
from sim2real.goals import ObjectNotSeenError
from sim2real.object_state import on_table


class Real2SimNode(LegionNode):
    def __init__(self):
        super().__init__("real2sim")
        layout = observation_layout(read_manifest(project_path(self.param("checkpoint"))))
        self.real2sim = make_chain(observation_layout=layout)[0]
        self.real2sim.joint_names = list(driver(self.param("driver")).joint_names)
        self.knuckle: tuple[float, float] | None = None  # (position rad, stamp s) of the 2F-85's knuckle
        self.library = load_task_library(self.param("task_library") or None)
        self.rule, self.goal = None, None
        self.objects: dict = {}
        self.subscribe("subtask", self.on_subtask)
        self.subscribe("object_poses", self.on_object_poses)
        self.subscribe("joint_states", self.on_joint_states)
        self.subscribe("gripper_joint_states", self.on_gripper_joint_states)
        self.get_logger().info(f"observation layout {layout!r} (checkpoint {self.param('checkpoint')})")

    def on_subtask(self, msg) -> None:
        text = m.text_from_msg(msg).strip()  # "" is the idle subtask between commands, not an error
        self.rule, self.goal = None, None
        if not text:
            return
        try:
            self.rule = self.library.plan(text).subtasks[0].goal_rule
        except ValueError as exc:
            self.get_logger().error(f"subtask {text!r}: no goal rule ({exc}); known: {sorted(self.library.subtasks)}")

    def on_object_poses(self, msg) -> None:
        for name, (position, stamp, frame) in m.object_poses_from_msg(msg).items():
            if frame != self.param("base_frame"):
                self.get_logger().error(f"pose of {name!r} is in frame {frame!r}, expected {self.param('base_frame')!r}")
                continue
            self.objects[name] = (position, stamp)

    def on_gripper_joint_states(self, msg) -> None:
        state = m.joint_state_from_msg(msg)
        if self.param("gripper_joint") in state.names:
            self.knuckle = float(state.position[state.names.index(self.param("gripper_joint"))]), state.stamp

    def on_joint_states(self, msg) -> None:
        if self.rule is None:
            return  # idle: no subtask, nothing to observe
        state = m.joint_state_from_msg(msg)
        fresh = {k: self.real2sim.frame.to_sim(p) for k, (p, t) in self.objects.items()
                 if state.stamp - t <= self.param("max_object_age_s")}
        if self.goal is None:
            initial = dict(fresh)
            known = self.objects.get(self.rule.goal_object)
            if self.rule.goal_object not in initial and known is not None \
                    and state.stamp - known[1] <= self.param("max_goal_age_s"):
                # a goal marker unseen now but seen lately: the arm that reached it hides it from the camera
                initial[self.rule.goal_object] = self.real2sim.frame.to_sim(known[0])
            try:
                self.goal = self.rule.goal(initial)
            except ObjectNotSeenError as exc:
                self.get_logger().warning(f"no observation: {exc}")
                return
        if self.rule.object not in fresh:
            stale = sorted(set(self.objects) - set(fresh))
            self.get_logger().warning(f"no observation: {self.rule.object!r} not seen (stale {stale})")
            return
        knuckle = None
        if self.real2sim.observation_layout == "gripper":
            if self.knuckle is None or state.stamp - self.knuckle[1] > self.param("max_gripper_age_s"):
                self.get_logger().warning(f"no observation: no 2F-85 joint state ({self.param('gripper_joint')!r}) "
                                          f"within {self.param('max_gripper_age_s')} s")
                return
            knuckle = self.knuckle[0]
        q = self.real2sim.joint_positions(state.names, state.position)
        position = on_table(fresh[self.rule.object], self.rule.rest_z_m, holding=False)
        obs = self.real2sim.observation(q, position, self.goal, knuckle_rad=knuckle)
        self.publish("observation", m.observation_to_msg(obs))


def main(args=None):
    run(Real2SimNode, args)
