"""policy: frozen encoder + DPMM + actor at ``rate_hz`` (20 Hz), at most ``max_steps_per_subtask`` steps.

Logic: :class:`legion_policy.checkpoint.LegionPolicy` (``act(obs, embedding) -> (action, component)``).
A new subtask description resets the step count; an empty one (idle) stops acting. Nothing is
published until both an observation and an embedding have arrived, nor while the last observation is older
than ``max_observation_age_s`` (real2sim stopped: object not seen, joint states stale): the policy never acts
on an old observation, and the driver holds its last target. A non-finite action is logged and not published.
"""
import numpy as np

from legion_nodes._ros import LegionNode, run
from legion_policy.checkpoint import LegionPolicy
from legion_runtime import messages as m
from legion_runtime.paths import project_path


class PolicyNode(LegionNode):
    def __init__(self):
        super().__init__("policy")
        self.policy = LegionPolicy.load(project_path(self.param("checkpoint")))
        self.obs = self.embedding = None
        self.obs_time = -float("inf")
        self.stale_cycles = self.bad_actions = 0
        self.active, self.steps, self.subtask = False, 0, ""
        self.subscribe("observation", self.on_observation)
        self.subscribe("embedding", self.on_embedding)
        self.subscribe("subtask", self.on_subtask)
        self.create_timer(1.0 / self.param("rate_hz"), self.on_timer)

    def on_observation(self, msg) -> None:
        self.obs, self.obs_time = m.observation_from_msg(msg), self.now_s()

    def on_embedding(self, msg) -> None:
        self.embedding = m.embedding_from_msg(msg)

    def on_subtask(self, msg) -> None:
        text = m.text_from_msg(msg)
        if text != self.subtask:  # a new description: wait for its embedding. A retry (the same text again) keeps
            self.embedding = None  # it: the embedding node may already have answered before this callback ran
        self.subtask, self.active, self.steps = text, bool(text), 0

    def on_timer(self) -> None:
        if not self.active or self.obs is None or self.embedding is None:
            return
        if self.steps >= self.param("max_steps_per_subtask"):
            return
        if self.now_s() - self.obs_time > self.param("max_observation_age_s"):
            self.stale_cycles += 1
            self.get_logger().warning("observation stale: not acting", throttle_duration_sec=1.0)
            return
        action, component = self.policy.act(self.obs, self.embedding)
        self.steps += 1
        if not np.all(np.isfinite(action)):  # publish nothing: sim2real gets no action and the arm holds
            self.bad_actions += 1
            self.get_logger().error(f"policy output {action} is not finite: not published", throttle_duration_sec=1.0)
            return
        self.publish("action", m.action_to_msg(action))
        self.publish("component", m.component_to_msg(int(component)))


def main(args=None):
    run(PolicyNode, args)
