"""task_sequencer: recognised command -> subtasks one at a time (std_msgs/String), with a JSON status.

Logic: :class:`legion_language.sequencer.TaskSequencer` over the task library (``task_library``: a YAML
file; default the shipped one; ``order``: library, random or spoken). Each observation counts one control step
of the running subtask, judged by its library success test on the TCP (below the observed ee point 0:3), the
object (3:6) and the goal (9:12), sim frame. A command that is no library phrasing is matched in the language model's
embedding space (``match_free_wording``; the model at ``embedding_model_path``, default the packaged all-MiniLM-L6-v2,
loaded at the first such command): the status then says what it was ``understood`` as, with the score. A command not
understood publishes a status with the closest known commands (``closest``) and the known ones, and starts nothing.

Steps are counted on observations, so an attempt whose observations stop (the policy or perception stalls) would
never end: each attempt also has a time limit, ``max_steps_per_subtask / control_rate_hz + attempt_time_margin_s``
of ROS time (150 / 20 Hz + 1 s = 8.5 s), after which it ends failed with the reason (:meth:`TaskSequencer.expire`).
The final status (state "done") says whether the command succeeded and why each subtask ended.
"""
import json

from legion_nodes._ros import LegionNode, run
from legion_language.sequencer import TaskSequencer
from legion_language.tasks import UnknownCommandError, load_task_library
from legion_runtime import messages as m
from sim2real.transforms import tcp_from_ee


class TaskSequencerNode(LegionNode):
    def __init__(self):
        super().__init__("task_sequencer")
        library = load_task_library(self.param("task_library") or None)
        self.sequencer = TaskSequencer(library, max_steps=self.param("max_steps_per_subtask"),
                                       retries=self.param("retries"), order=self.param("order"),
                                       matcher=self.make_matcher if self.param("match_free_wording") else None)
        self.subscribe("command_text", self.on_command)
        self.subscribe("observation", self.on_observation)
        self.time_limit_s = (self.param("max_steps_per_subtask") / self.param("control_rate_hz")
                             + self.param("attempt_time_margin_s"))
        self.attempt_started: tuple[int, float] | None = None  # (attempt number in the command, ROS time it began)
        self.create_timer(0.1, self.check_time_limit)

    def make_matcher(self):
        from legion_language.embedding import TextEmbedder
        from legion_language.matching import CommandMatcher

        embedder = TextEmbedder(self.param("embedding_model_path") or None)
        return CommandMatcher(self.sequencer.library, embedder.embed)

    def check_time_limit(self) -> None:
        """End the running attempt once its time is up, whether or not observations came."""
        if self.sequencer.current_subtask() is None:
            return
        now, key = self.now_s(), len(self.sequencer.attempts)
        if self.attempt_started is None or self.attempt_started[0] != key:
            self.attempt_started = (key, now)  # a new attempt (a retry or the next subtask)
            return
        if now - self.attempt_started[1] > self.time_limit_s:
            steps = self.sequencer.attempts[-1].steps
            self.sequencer.expire(f"time limit {self.time_limit_s:.1f} s: {steps} of "
                                  f"{self.sequencer.max_steps} steps observed")
            self.publish("subtask", m.text_to_msg(self.sequencer.current()))
            self.publish_status()

    def on_command(self, msg) -> None:
        text = m.text_from_msg(msg)
        if not text.strip():  # a blank command is refused with a status, never a crash
            self.get_logger().warning("blank command on command_text ignored")
            self.publish("task_status", m.text_to_msg(json.dumps({"command": text, "state": "blank command"})))
            return
        try:
            subtask = self.sequencer.command(text)
        except UnknownCommandError as exc:
            self.get_logger().warning(str(exc))
            closest = getattr(exc, "understanding", None)
            self.publish("task_status", m.text_to_msg(json.dumps(
                {"command": text, "state": "unknown task", "known": exc.known}
                | ({} if closest is None else {"closest": [[p, round(s, 3)] for p, s in closest.closest]}))))
            return
        for u in self.sequencer.understood:
            self.get_logger().info(u.describe())
        self.publish("subtask", m.text_to_msg(subtask))
        self.publish_status()

    def on_observation(self, msg) -> None:
        obs = m.observation_from_msg(msg)
        # success tests take the TCP; the observation carries the ee point above it
        if self.sequencer.step(tcp_from_ee(obs[0:3]), obs[3:6], obs[9:12]):
            self.publish("subtask", m.text_to_msg(self.sequencer.current()))
            self.publish_status()

    def publish_status(self) -> None:
        self.publish("task_status", m.text_to_msg(json.dumps(self.sequencer.status())))


def main(args=None):
    run(TaskSequencerNode, args)
