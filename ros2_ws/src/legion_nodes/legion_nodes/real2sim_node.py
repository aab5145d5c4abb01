"""real2sim: joint states + object poses -> the policy's 12-d sim-frame observation, at the joint-state rate.

Logic: :class:`sim2real.transforms.Real2Sim` (FK of the iiwa 14, frame transform, ee offset). The
object and goal positions come from ``object_poses`` (children ``object`` and ``goal``, robot base
frame). A pose older than ``max_object_age_s`` is stale: no observation is published and the reason
is logged, never a stale pose silently reused.
"""
from legion_nodes._ros import LegionNode, run
from legion_runtime import messages as m
from legion_runtime.main_job import make_chain
from sim2real.drivers import driver


class Real2SimNode(LegionNode):
    def __init__(self):
        super().__init__("real2sim")
        self.real2sim = make_chain()[0]
        self.real2sim.joint_names = list(driver(self.param("driver")).joint_names)
        self.objects: dict = {}
        self.subscribe("object_poses", self.on_object_poses)
        self.subscribe("joint_states", self.on_joint_states)

    def on_object_poses(self, msg) -> None:
        for name, (position, stamp, frame) in m.object_poses_from_msg(msg).items():
            if frame != self.param("base_frame"):
                self.get_logger().error(f"pose of {name!r} is in frame {frame!r}, expected {self.param('base_frame')!r}")
                continue
            self.objects[name] = (position, stamp)

    def on_joint_states(self, msg) -> None:
        state = m.joint_state_from_msg(msg)
        now = state.stamp
        missing = [k for k in ("object", "goal") if k not in self.objects]
        stale = [k for k, (_, t) in self.objects.items() if now - t > self.param("max_object_age_s")]
        if missing or stale:
            self.get_logger().warning(f"no observation: missing {missing}, stale {stale}")
            return
        q = self.real2sim.joint_positions(state.names, state.position)
        obs = self.real2sim.observation(q, self.objects["object"][0], self.objects["goal"][0], frame="base")
        self.publish("observation", m.observation_to_msg(obs))


def main(args=None):
    run(Real2SimNode, args)
