"""mujoco_plant: the KUKA iiwa 14 + Robotiq 2F-85 MuJoCo scene standing in for the arm driver and gripper.

It takes the driver's place with the driver's interface: joint targets on the trajectory-controller
topic, the gripper action (control_msgs GripperCommand), ``joint_states`` with the driver's joint
names (and the 2F-85's knuckle on the gripper's ``joint_states``), stepping :class:`legion_sim.plant.KukaPlant` (Meta-World's task scene, joint-position servos)
every 50 ms of wall time. It stands in for the camera too: with ``camera: true`` it publishes the virtual
RealSense's colour image and camera_info on realsense-ros' topics at ``camera_rate_hz`` (15 Hz, a D435 colour
mode), rendered on a thread of its own (:class:`legion_sim.camera_stream.CameraStream`, at a lower CPU priority) so the
joint states keep their 20 Hz while a frame renders; the node's executor publishes each frame (a guard condition),
so the low-priority thread never holds the interpreter lock through the 0.9 MB message (the perception node detects
the tags);
with ``camera: false`` it publishes the simulator's object positions on ``object_poses`` (robot base frame,
tag-map names: the task's object and, where the task has one, its goal marker). ``task: table`` runs the
"clean the table" scene (:class:`legion_sim.table_scene.TablePlant`) and publishes all its objects, so the
task sequencer can run long-horizon commands through the graph. ``/mujoco_plant/reset`` (std_srvs/Trigger) starts
a new episode: a new placement, the arm at its start posture.
"""
import threading

import numpy as np
from rclpy.action import ActionServer

from legion_nodes._ros import LegionNode, run
from legion_language.tasks import load_task_library
from legion_runtime import graph
from legion_runtime import messages as m
from legion_sim.plant import KukaPlant
from sim2real.drivers import driver
from sim2real.gripper import KNUCKLE_JOINT

GRIPPER_CLOSED_RAD = m.GRIPPER_CLOSED_RAD


class MujocoPlantNode(LegionNode):
    def __init__(self):
        super().__init__("mujoco_plant")
        self.driver = driver(self.param("driver"))
        self.table = self.param("task") == "table"
        if self.table:
            from legion_sim.table_scene import TablePlant

            self.plant, self.rule = TablePlant(seed=self.param("seed")), None
        else:
            self.plant = KukaPlant(self.param("task"), seed=self.param("seed"))
            self.rule = load_task_library().by_env_id(self.param("task")).goal_rule  # which objects to publish
        self.plant.reset()
        self.q_target, _ = self.plant.joint_state()
        self.gripper = 0.0  # closing fraction
        self.subscribe("joint_targets", self.on_joint_targets)
        from control_msgs.action import GripperCommand

        ActionServer(self, GripperCommand, graph.ACTIONS["gripper"].name, self.on_gripper_goal)
        from std_srvs.srv import Trigger

        self.create_service(Trigger, graph.SERVICES["plant_reset"].name, self.on_reset)
        self.create_timer(self.plant.dt, self.on_timer)
        self.camera = None
        if self.param("camera"):
            from legion_sim.camera_stream import CameraStream

            self._frame, self._frame_lock = None, threading.Lock()
            self._frame_ready = self.create_guard_condition(self.publish_frame)
            self.camera = CameraStream(self.plant.camera(), self.on_frame)
            self.create_timer(1.0 / self.param("camera_rate_hz"), self.on_camera_timer)

    def on_joint_targets(self, msg) -> None:
        q, names, _, _ = m.joint_trajectory_from_msg(msg)
        index = {n: i for i, n in enumerate(names)}
        missing = [n for n in self.driver.joint_names if n not in index]
        if missing:
            self.get_logger().error(f"joint targets lack {missing}: ignored")
            return
        self.q_target = np.array([q[index[n]] for n in self.driver.joint_names])

    def on_reset(self, request, response):
        """std_srvs/Trigger: a new placement (the seeded stream goes on), arm at its start posture, gripper open."""
        self.plant.reset()
        self.q_target, _ = self.plant.joint_state()
        self.gripper = 0.0
        response.success, response.message = True, "new placement; the arm is at its start posture"
        return response

    def on_gripper_goal(self, goal_handle):
        from control_msgs.action import GripperCommand

        position = float(goal_handle.request.command.position)
        self.gripper = float(np.clip(position / GRIPPER_CLOSED_RAD, 0.0, 1.0))
        goal_handle.succeed()
        result = GripperCommand.Result()
        result.position, result.reached_goal = position, True
        return result

    def destroy_node(self) -> None:
        """Free the renderers' EGL contexts first: after the interpreter's exit tore EGL down, the garbage collector's
        attempt printed EGL_NOT_INITIALIZED tracebacks."""
        if self.camera is not None:
            self.camera.close()
        self.plant.close()
        super().destroy_node()

    def on_timer(self) -> None:
        self.plant.step(self.q_target, self.gripper)
        q, qd = self.plant.joint_state()
        now = self.now_s()
        self.publish("joint_states", m.joint_state_to_msg(list(self.driver.joint_names), q, qd, stamp=now))
        self.publish("gripper_joint_states", m.joint_state_to_msg([KNUCKLE_JOINT], [self.plant.gripper_position()], [0.0],
                                                                  stamp=now))
        if self.camera is not None:
            return  # objects are seen through the camera
        to_base = self.plant.frame.to_base
        if self.table:
            poses = {name: to_base(p) for name, p in self.plant.objects().items()}
        else:
            poses = {self.rule.object: to_base(self.plant.object_position())}
            if self.rule.goal_object is not None:
                poses[self.rule.goal_object] = to_base(self.plant.goal_position())
        self.publish("object_poses", m.object_poses_to_msg(poses, now, self.param("base_frame")))


    def on_camera_timer(self) -> None:
        if self.camera.error is not None:
            self.get_logger().error(f"virtual RealSense stopped: {self.camera.error}", throttle_duration_sec=5.0)
        elif not self.camera.capture(self.now_s()):
            self.get_logger().warning("camera frame dropped: the previous one is still rendering",
                                      throttle_duration_sec=5.0)

    def on_frame(self, image: np.ndarray, stamp: float) -> None:
        """On the camera thread: hand the rendered frame to the executor (a frame not yet published is replaced)."""
        with self._frame_lock:
            self._frame = (image, stamp)
        self._frame_ready.trigger()

    def publish_frame(self) -> None:
        """The newest rendered frame and its camera_info, stamped when the scene was captured."""
        with self._frame_lock:
            ready, self._frame = self._frame, None
        if ready is None:
            return
        image, stamp = ready
        k, frame = self.plant.camera().intrinsics, self.param("camera_frame")
        self.publish("camera_info", m.camera_info_to_msg(k.fx, k.fy, k.cx, k.cy, k.width, k.height, stamp, frame))
        self.publish("image", m.image_to_msg(image, "rgb8", stamp, frame))


def main(args=None):
    run(MujocoPlantNode, args)
