"""policy: frozen encoder + DPMM + actor, acting on each new observation at most at ``rate_hz`` (20 Hz).

Logic: :class:`legion_policy.checkpoint.LegionPolicy` (``act(obs, embedding) -> (action, component)``).
The policy acts when an observation arrives (real2sim publishes one per joint state), so an action follows
the joint state it answers within one chain of callbacks, not after a timer's phase (up to a whole period
late). A faster joint-state stream (FRI at 100 Hz and up) is thinned to ``rate_hz`` by a fixed schedule:
an observation is acted on once it arrives no earlier than half a period before the next due step.
At most ``max_steps_per_subtask`` steps per subtask; a new subtask description resets the step count and
an empty one (idle) stops acting. Nothing is published until both an observation and an embedding have
arrived. Periods with no observation newer than ``max_observation_age_s`` (real2sim stopped: object not seen,
joint states stale), in which the driver holds its last target, are counted when the next observation arrives
and logged by a 1 Hz watchdog while they last (a 20 Hz timer woke the node once more every period, in the middle of
the control chain). A non-finite action is logged and not published. A retry (the same subtask description again)
draws its actions from the policy (``explore_retries``; :class:`legion_runtime.runner.Exploring`): its mean actions
from the same start repeat the failure.
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
        self.period = 1.0 / self.param("rate_hz")
        self.obs = self.embedding = None
        self.obs_time = -float("inf")
        self.next_due = -float("inf")  # ROS time, s, of the next scheduled step
        self.stale_cycles = self.bad_actions = 0
        self.active, self.steps, self.subtask, self.subtask_seen = False, 0, "", False
        self.retry, self.rng = False, np.random.default_rng()
        self.subscribe("observation", self.on_observation)
        self.subscribe("embedding", self.on_embedding)
        self.subscribe("subtask", self.on_subtask)
        self.create_timer(1.0, self.on_watchdog)

    def on_observation(self, msg) -> None:
        now = self.now_s()
        if self.active and self.obs is not None and now - self.obs_time > self.param("max_observation_age_s"):
            self.stale_cycles += max(int((now - self.obs_time) / self.period) - 1, 0)  # periods with no observation
        self.obs, self.obs_time = m.observation_from_msg(msg), now
        self.step(now)

    def on_embedding(self, msg) -> None:
        self.embedding = m.embedding_from_msg(msg)

    def on_subtask(self, msg) -> None:
        text = m.text_from_msg(msg)
        # a new description: wait for its embedding. A retry (the same text again) keeps it: the embedding node may
        # already have answered before this callback ran. So does the first subtask a (re)started node hears: the
        # latched embedding may reach it before the latched subtask, and it is that subtask's
        if self.subtask_seen and text != self.subtask:
            self.embedding = None
        self.retry = self.subtask_seen and bool(text) and text == self.subtask
        self.subtask, self.active, self.steps, self.subtask_seen = text, bool(text), 0, True
        self.obs, self.next_due = None, -float("inf")  # act on this subtask's observations only

    def step(self, now: float) -> None:
        """One policy step on the newest observation, if a subtask runs and a step is due at ``now`` (ROS time, s)."""
        if not self.active or self.obs is None or self.embedding is None:
            return
        if self.steps >= self.param("max_steps_per_subtask") or now < self.next_due - 0.5 * self.period:
            return
        # the schedule advances by whole periods (no drift at 20 Hz in), never into the past (no burst after a pause)
        self.next_due = max(self.next_due + self.period, now)
        if self.retry and self.param("explore_retries"):
            action, component = self.policy.sample(self.obs, self.embedding, self.rng)
        else:
            action, component = self.policy.act(self.obs, self.embedding)
        self.steps += 1
        if not np.all(np.isfinite(action)):  # publish nothing: sim2real gets no action and the arm holds
            self.bad_actions += 1
            self.get_logger().error(f"policy output {action} is not finite: not published", throttle_duration_sec=1.0)
            return
        self.publish("action", m.action_to_msg(action))
        self.publish("component", m.component_to_msg(int(component)))

    def on_watchdog(self) -> None:
        age = self.now_s() - self.obs_time
        if self.active and self.embedding is not None and self.steps < self.param("max_steps_per_subtask") \
                and age > self.param("max_observation_age_s"):
            self.get_logger().warning(f"observation stale for {age:.2f} s: not acting")


def main(args=None):
    run(PolicyNode, args)
