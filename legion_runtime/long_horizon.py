"""Long-horizon commands on the table scene: the task sequencer driving the deployment chain, subtask after subtask.

One command ("clean the table", "make the coffee", "close the drawer then press the button") runs on one
:class:`legion_sim.table_scene.TablePlant`, without resets between subtasks:

    sequencer (order: spoken / random / library) ─► subtask k
        perception: is its object seen? no ─► (from the start pose, if the arm is elsewhere) skipped, with the
                    reason; never attempted blind
        move to the start pose (up, across at a safe height, down) through the same chain
        goal ─► the library's goal rule on the positions perceived when the command was given (an object first
                seen later: its first sighting)
        controller ─► ControlLoop (Real2Sim → policy → Sim2Real → safety → IK → safety → plant), ≤ 150 steps
        success ─► the library's success test on the perceived object, goal and measured TCP; a failure is
                   retried once
    report: per attempt and per subtask, whole-task success

Perception: the table's two RealSenses through the AprilTag detector and each camera's calibration
(:class:`legion_runtime.sim_perception.TableCameraPerception`, as on the robot), or object points read from the
simulator (``TablePerception``); either with objects that can be hidden to stand for what the camera does not see. Controllers: a LEGION checkpoint (subtasks it was not trained on are
skipped with that reason) or the reference controllers (:class:`legion_sim.reference.ReferenceController`, scripted
for the KUKA and the 2F-85 on the same 12-d observation), a reference that isolates the scene, sequencer and chain
from the quality of the learned skills.
"""
from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from legion_language.sequencer import TaskSequencer
from legion_language.tasks import Subtask, TaskLibrary
from legion_runtime.runner import ControlLoop, Exploring, SubtaskOutcome
from sim2real.goals import ObjectNotSeenError
from sim2real.transforms import tcp_from_ee

#: Height at which the arm crosses the table between subtasks (ee point, sim frame), m.
SAFE_HEIGHT_M = 0.25
#: A waypoint of the move between subtasks is reached when the ee point is this close, m.
WAYPOINT_TOLERANCE_M = 0.015
#: A Cartesian move to a subtask's start (where IK finds no start posture) ends this close to it, m: a start 1 cm off
#: the training start can stall a skill (LEGION's drawer-close on the table stalled 0.8 cm high).
START_TOLERANCE_M = 0.002
#: Control steps allowed per waypoint of the move between subtasks.
WAYPOINT_STEPS = 80
#: Where the arm looks from when the start pose does not show a subtask's object (ee point, sim frame, m): over the
#: table's left and right halves, clear of both cameras' lines to the sets. At the start pose the hand hides the
#: pick-place puck from the right camera at 3 of 20 resets (the plug hides it from the left one); from the first
#: pose below the cameras see it at 20 of 20, and from the three poses every object (seeds 100-119,
#: benchmarks/bench_table_look_poses.py).
LOOK_POSES = ((-0.15, 0.5, 0.3), (0.15, 0.5, 0.3))


@dataclass
class TablePerception:
    """Perceived object points of the table scene, read from the simulator, minus the ``hidden`` objects.

    Args:
        plant: the table scene.
        hidden: object names (task library ``object`` / goal-marker names) that perception does not see.
    """

    plant: object
    hidden: frozenset[str] = frozenset()
    #: the sequencer's ``confirm_steps``: the simulator's points are exact, success is judged at once
    confirm_steps = 1

    def seen(self, stamp_s: float = 0.0) -> dict[str, np.ndarray]:
        """{object name: (3,) sim frame, m} of every object perception sees now (``stamp_s`` unused)."""
        return {name: p for name, p in self.plant.objects().items() if name not in self.hidden}

    def tracker(self, subtask: Subtask, initial: dict[str, np.ndarray],
                stamp_s: float = 0.0) -> "Callable[[float], tuple[np.ndarray, np.ndarray] | None]":
        """The control loop's ``objects`` for ``subtask``: its goal from the library rule on ``initial`` (what was
        seen when the command was given; objects seen now for the first time are added), then (object, goal) at every
        cycle, or None while the object is not seen. ``stamp_s``: unused (the simulator has no frames).

        Raises:
            ObjectNotSeenError: the object is not seen now, or the goal's source was never seen.
        """
        seen = self.seen()
        if subtask.object not in seen:
            raise ObjectNotSeenError(f"{subtask.object!r} is not seen by the camera")
        for name, position in seen.items():
            initial.setdefault(name, position)
        goal = subtask.goal_rule.goal(initial)

        def objects(_stamp_s: float, _tcp: np.ndarray | None = None, _holding: bool = False):
            position = self.plant.objects()[subtask.object] if subtask.object not in self.hidden else None
            return None if position is None else (position, goal)
        objects.goal = goal
        return objects


class MoveTo:
    """Moves the ee point in a straight line to ``target`` (sim frame, m) at up to one action unit per step,
    gripper open: the transfer between subtasks, sent through the same Sim2Real, safety and IK chain."""

    def __init__(self, target: np.ndarray):
        self.target = np.asarray(target, dtype=np.float64)

    def act(self, obs: np.ndarray, embedding: np.ndarray) -> tuple[np.ndarray, int]:
        step = np.clip((self.target - obs[0:3]) / 0.01, -1.0, 1.0)
        return np.r_[step, -1.0], -1


@dataclass
class TrialResult:
    """One long-horizon trial: the sequencer's report plus what the chain did.

    Attributes:
        report: :meth:`legion_language.sequencer.TaskSequencer.report`.
        holds: HOLD cycles per attempt, in attempt order.
        interventions: safety interventions per attempt, in attempt order.
        safety: per subtask name, and ``"transfer"`` for the moves between subtasks: ``{"steps", "holds",
            "interventions"}`` summed over its attempts (what the subtask's ``/diagnostics`` records say).
        steps: control steps in total, transfers included.
        wall_s: wall-clock time of the trial, s.
        truth: per attempt, the simulator's own success test at the end (a check on perception's verdict).
    """

    report: dict
    holds: list[int] = field(default_factory=list)
    interventions: list[dict] = field(default_factory=list)
    safety: dict[str, dict] = field(default_factory=dict)
    steps: int = 0
    wall_s: float = 0.0
    truth: list[bool] = field(default_factory=list)


    def add_safety(self, name: str, outcome: SubtaskOutcome) -> None:
        """Add one run's steps, holds and interventions to :attr:`safety` under ``name``."""
        row = self.safety.setdefault(name, {"steps": 0, "holds": 0, "interventions": {}})
        row["steps"] += outcome.steps
        row["holds"] += outcome.holds
        for reason, n in outcome.interventions.items():
            row["interventions"][reason] = row["interventions"].get(reason, 0) + n


def _transfer(loop: ControlLoop, plant, start: np.ndarray, on_step, t0_ns: int, result: TrialResult) -> int:
    """Up to :data:`SAFE_HEIGHT_M`, across to above ``start`` (ee point, sim frame; each within
    :data:`WAYPOINT_TOLERANCE_M`), then down into the posture training starts a skill at ``start`` in
    (:func:`start_posture`) by a joint move; where IK finds no such posture, down by a Cartesian move to within
    :data:`START_TOLERANCE_M`. From stamp ``t0_ns``; returns the steps used and adds their safety record to
    ``result`` under ``"transfer"``."""
    policy, steps = loop.policy, 0
    ee = loop.real2sim.ee_position(plant.joint_state()[0])  # measured, as on the robot
    height = max(SAFE_HEIGHT_M, ee[2], start[2])
    q_start = start_posture(loop.sim2real, start)
    legs = [(np.r_[ee[:2], height], WAYPOINT_TOLERANCE_M), (np.r_[start[:2], height], WAYPOINT_TOLERANCE_M)]
    if q_start is None:
        legs.append((start, START_TOLERANCE_M))
    for waypoint, tolerance in legs:
        loop.policy = MoveTo(waypoint)
        outcome = loop.run_subtask(plant, "transfer", np.zeros(1, np.float32), WAYPOINT_STEPS, on_step=on_step,
                                   t0_ns=t0_ns + int(round(steps * plant.dt * 1e9)),
                                   until=lambda tcp, seen, w=tcp_from_ee(waypoint), tol=tolerance: bool(
                                       np.linalg.norm(tcp - w) < tol))
        steps += outcome.steps
        result.add_safety("transfer", outcome)
    loop.policy = policy
    if q_start is not None:
        outcome = loop.move_joints(plant, "transfer", q_start, WAYPOINT_STEPS, on_step=on_step,
                                   t0_ns=t0_ns + int(round(steps * plant.dt * 1e9)))
        steps += outcome.steps
        result.add_safety("transfer", outcome)
    return steps


def start_posture(sim2real, start: np.ndarray) -> np.ndarray | None:
    """(7,) joints, rad, that put the ee point at ``start`` (sim frame, m) top-down, solved from the nominal posture
    as the KUKA training envs solve their reset pose (:func:`legion_sim.kuka_metaworld.start_pose`); None where IK
    does not converge."""
    from legion_sim.plant import Q_NOMINAL

    ik = sim2real.kinematics.solve_ik(sim2real.frame.to_base(tcp_from_ee(start)), Q_NOMINAL, sim2real.target_rot_base,
                                      max_iterations=300)
    return ik.q if ik.converged else None


#: Extra attempts of a failed subtask on the table. LEGION's stream skills do "clean the table" (simulator perception,
#: seeds 200-219) in 7/20 trials with one retry of the mean actions, 15/20 with one retry drawing its actions from the
#: policy and 18/20 with two (docs/long-horizon.md); a failed attempt costs its 150 steps (7.5 s).
DEFAULT_RETRIES = 2


def run_trial(command: str, *, plant, loop: ControlLoop, library: TaskLibrary, controller, embed: Callable[[str], np.ndarray],
              order: str = "library", rng: random.Random | None = None, hidden: frozenset[str] = frozenset(),
              known_env_ids: set[str] | None = None, max_steps: int = 150, retries: int = DEFAULT_RETRIES,
              starts: dict[str, np.ndarray] | None = None, on_step: Callable[[int], None] | None = None,
              log: Callable[[str], None] = lambda _line: None, t0_ns: int = 0,
              workspace_offsets: dict[str, np.ndarray] | None = None, perception=None,
              explore_retries: bool = True) -> TrialResult:
    """Run one long-horizon (or single, or compound) command on a reset table scene.

    Args:
        command: the command text (a library phrasing or a compound of subtask phrasings).
        plant: a reset :class:`legion_sim.table_scene.TablePlant`.
        loop: the deployment chain (its ``policy`` is replaced by ``controller`` for each subtask).
        library: the task library (the checkpoint's).
        controller: ``act(obs (12,), embedding) -> (action (4,), component)``; a reference controller is told the
            subtask (``select``) before each one.
        embed: subtask description -> (D,) language embedding.
        order: the sequencer's order: ``"library"``, ``"random"`` or ``"spoken"``.
        rng: for ``"random"``.
        hidden: objects perception does not see (the arm looks for them from the start pose and each of
            :data:`LOOK_POSES`, then their subtasks are skipped with the reason).
        perception: ``seen(stamp_s)``, ``tracker(subtask, initial, stamp_s)`` and ``confirm_steps`` as
            :class:`TablePerception` (which is the default, with ``hidden``);
            :class:`legion_runtime.sim_perception.TableCameraPerception` for the cameras.
        known_env_ids: subtasks the controller has learned (None: all); the others are skipped with the reason.
        workspace_offsets: per subtask env id, (3,) sim frame, m: where its object set stands minus where its skill
            was trained; the controller's observations are shifted by it (:class:`ControlLoop`). None: no shift.
        max_steps, retries: per attempt (paper: 150) and extra attempts of a failed subtask.
        explore_retries: a retry draws its actions from the policy (:class:`legion_runtime.runner.Exploring`, for
            a controller with ``sample``; seeded from ``rng``) instead of repeating the mean actions that failed.
        starts: per subtask env id, (3,) ee point, sim frame, m: where the arm goes before the subtask
            (:meth:`TablePlant.skill_starts`: where its skill started in training, moved with its set). None or a
            missing env id: the table's hand start :data:`legion_sim.table_scene.HAND_INIT_POS`.
        on_step: called after every plant step (video frames).
        log: one line per event.
        t0_ns: stamp of the first cycle, ns; the plant's clock advances by ``plant.dt`` per step (the messages the
            loop publishes, and each subtask's description and embedding, carry these stamps).

    Raises:
        legion_language.tasks.UnknownCommandError: the command is not in the library.
    """
    from legion_runtime import messages as m
    from legion_sim.table_scene import HAND_INIT_POS

    def stamp() -> int:
        return t0_ns + int(round(result.steps * plant.dt * 1e9))

    t0 = time.perf_counter()
    perception = perception or TablePerception(plant, hidden)
    sequencer = TaskSequencer(library, max_steps=max_steps, retries=retries, order=order, rng=rng,
                              confirm_steps=perception.confirm_steps)
    sequencer.command(command)
    explore_rng = np.random.default_rng(rng.getrandbits(64) if rng is not None else 0)  # after the order's draws
    result = TrialResult(report={})
    # Goals come from the scene as seen when the command is given: a drawer or window nudged by an earlier
    # subtask keeps its true closed position (a goal derived from its handle later would lie beyond it).
    initial = perception.seen(stamp() * 1e-9)
    while (subtask := sequencer.current_subtask()) is not None:
        if known_env_ids is not None and subtask.env_id not in known_env_ids:
            sequencer.skip(f"the policy has not learned {subtask.env_id} ({subtask.description!r})")
            log(f"{subtask.name}: skipped, not learned")
            continue
        plant.select(subtask.env_id)
        start = np.asarray((starts or {}).get(subtask.env_id, HAND_INIT_POS), dtype=np.float64)
        # The subtask starts from the start pose. Where the object is not seen from there (the arm hides it), the
        # arm looks from each look pose in turn; seen from one, it goes back to the start (the skill's own, through
        # free space: nothing is touched), where the object stands as seen until the cameras see it again. Nowhere
        # seen: skipped (the arm only looked)
        objects = None
        for k, pose in enumerate((start, *map(np.asarray, LOOK_POSES))):
            result.steps += _transfer(loop, plant, pose, on_step, stamp(), result)
            try:
                objects = perception.tracker(subtask, initial, stamp() * 1e-9)
            except ObjectNotSeenError as exc:
                why = exc
                continue
            if k:
                log(f"{subtask.name}: {subtask.object!r} not seen from the start pose; seen from look pose {pose}, "
                    "back to the start")
                result.steps += _transfer(loop, plant, start, on_step, stamp(), result)
                if hasattr(objects, "reaffirm"):
                    objects.reaffirm(stamp() * 1e-9)
            break
        if objects is None:
            sequencer.skip(str(why))
            log(f"{subtask.name}: skipped: {why} (looked from the start pose and {len(LOOK_POSES)} look poses)")
            continue
        if hasattr(controller, "select"):
            controller.select(subtask.env_id)
        attempt = sequencer.attempts[-1]
        explore = explore_retries and attempt.attempt > 1 and hasattr(controller, "sample")
        loop.policy = Exploring(controller, explore_rng) if explore else controller

        def until(tcp, seen):
            obj, goal = seen if seen is not None else (None, objects.goal)
            if getattr(objects, "predicted", False):  # success is judged on a measurement, never on a prediction
                obj = None
            sequencer.step(tcp, obj, goal)
            return attempt.success

        embedding = embed(subtask.description)
        if loop.publish is not None:  # what the sequencer and embedding nodes publish at a subtask's start
            loop.publish("subtask", m.command_to_msg(subtask.description), stamp())
            loop.publish("embedding", m.embedding_to_msg(embedding), stamp())
        outcome = loop.run_subtask(plant, subtask.name, embedding, max_steps, on_step=on_step, t0_ns=stamp(),
                                   objects=objects, until=until,
                                   workspace_offset=(workspace_offsets or {}).get(subtask.env_id))
        result.steps += outcome.steps
        result.holds.append(outcome.holds)
        result.interventions.append(outcome.interventions)
        result.add_safety(subtask.name, outcome)
        result.truth.append(plant.success())
        log(f"{subtask.name} attempt {attempt.attempt}{' (actions drawn from the policy)' if explore else ''}: "
            f"{'success' if attempt.success else 'failed'} in {attempt.steps} steps, holds {outcome.holds}")
    result.report = sequencer.report()
    result.wall_s = time.perf_counter() - t0
    return result


def table_frames(plant, layout: str) -> dict:
    """``workspace_offsets`` and ``starts`` of :func:`run_trial` for skills trained at ``layout``: Meta-World's
    (``"metaworld"``: each set mapped into the frame its skill was trained in, and the start moved with it,
    :meth:`TablePlant.workspace_offsets`, :meth:`TablePlant.skill_starts`) or the table's (``"table"``: no mapping,
    each subtask from the start it was trained from, :func:`legion_sim.table_scene.layout_start`).

    Raises:
        ValueError: an unknown layout.
    """
    from legion_sim.table_scene import layout_start

    if layout == "metaworld":
        return {"workspace_offsets": plant.workspace_offsets(), "starts": plant.skill_starts()}
    if layout == "table":
        return {"workspace_offsets": None, "starts": {env_id: layout_start(env_id) for env_id in plant.placements()}}
    raise ValueError(f"layout must be 'metaworld' or 'table', got {layout!r}")


def summarise(trials: list[TrialResult]) -> dict:
    """Per-subtask and whole-task success rates over trials of one command.

    Returns:
        ``trials``, ``task_success`` (rate), ``subtasks`` {name: {success, attempted, skipped, retried_success}}
        (rates over trials), ``mean_steps``, ``mean_wall_s``, ``perception_vs_simulator`` (fraction of attempts
        where perception's verdict equals the simulator's success test at the end).
    """
    n = len(trials)
    names = [s["subtask"] for s in trials[0].report["subtasks"]] if trials else []
    per = {}
    for name in dict.fromkeys(sorted(names)):
        rows = [s for t in trials for s in t.report["subtasks"] if s["subtask"] == name]
        per[name] = {"success": sum(r["success"] for r in rows) / n,
                     "attempted": sum(r["attempts"] > 0 and r["skipped"] is None for r in rows) / n,
                     "skipped": sum(r["skipped"] is not None for r in rows) / n,
                     "success_on_retry": sum(r["success"] and r["attempts"] == 2 for r in rows) / n}
    verdicts = [(a["success"], truth) for t in trials
                for a, truth in zip([a for a in t.report["attempts"] if a["skipped"] is None], t.truth)]
    return {"trials": n, "task_success": sum(t.report["success"] for t in trials) / max(n, 1), "subtasks": per,
            "mean_steps": float(np.mean([t.steps for t in trials])) if trials else 0.0,
            "mean_wall_s": float(np.mean([t.wall_s for t in trials])) if trials else 0.0,
            "perception_vs_simulator": (sum(a == b for a, b in verdicts) / len(verdicts)) if verdicts else None}


#: Controllers of ``legion long-horizon``.
CONTROLLERS = ("reference", "legion")
#: Where ``legion long-horizon`` gets the objects from: the table's cameras, or the simulator.
PERCEPTIONS = ("camera", "simulator")


def table_camera_perception():
    """The table cameras' :class:`legion_runtime.sim_perception.CameraPerception` (their calibration files), as
    ``BadInput`` when one is missing or unreadable."""
    from legion_runtime.main_job import BadInput
    from legion_runtime.sim_perception import TABLE_MAX_PREDICT_S, CameraPerception, table_calibrations
    from sim2real.perception import PerceptionError

    try:
        return CameraPerception(table_calibrations(), max_predict_s=TABLE_MAX_PREDICT_S)
    except PerceptionError as exc:
        raise BadInput(f"table camera perception: {exc}; calibrate with `legion calibrate-sim --camera NAME`") from exc


def run_trials(command: str, *, trials: int, controller: str = "reference", checkpoint=None, order: str = "random",
               seed: int = 0, hidden: frozenset[str] = frozenset(), video=None, max_steps: int = 150,
               retries: int = DEFAULT_RETRIES, workspace_offset: bool = True, perception: str = "camera",
               explore_retries: bool = True, log: Callable[[str], None] = print) -> dict:
    """``trials`` randomised trials of one command on the table scene (placements and random orders seeded by
    ``seed + i``); what ``legion long-horizon`` runs.

    Args:
        controller: ``"reference"`` (:class:`legion_sim.reference.ReferenceController`) or ``"legion"`` (the
            checkpoint's policy; subtasks it has not learned are skipped).
        checkpoint: checkpoint folder for ``"legion"``.
        video: write the first trial as an MP4 here (640 x 480, 10 frames/s), or None.
        workspace_offset: run each subtask as its skill was trained (:func:`table_frames` of the checkpoint's
            layout): for Meta-World's layout, its observations shifted by where its object set stands on the table
            minus where Meta-World places it and its start moved likewise (LEGION's faucet-open on the table: 0/20
            without, 16/20 with, in "clean the table"); for the table's, from the start it was trained from.
            False: no shift, every subtask from :data:`legion_sim.table_scene.HAND_INIT_POS`.
        perception: ``"camera"``: the table's two RealSenses through the tag detector and their calibrations
            (:class:`legion_runtime.sim_perception.TableCameraPerception`); ``"simulator"``: object points read from
            the simulator (:class:`TablePerception`).
        explore_retries: a retry draws its actions from the policy (:func:`run_trial`).

    Returns:
        :func:`summarise` of the trials plus ``command``, ``controller``, ``order``, ``seed``, ``hidden`` and the
        per-trial reports.

    Raises:
        ValueError: unknown controller or perception.
        legion_runtime.main_job.BadInput: unusable checkpoint, a missing camera calibration, or a video or the cameras
            asked for and no OpenGL back-end works.
        legion_language.tasks.UnknownCommandError: the command is not in the library.
    """
    from legion_language.tasks import library_from_dict, load_task_library
    from legion_runtime.main_job import frame_recorder, load_policy, make_chain, require_rendering
    from legion_runtime.sim_perception import TableCameraPerception
    from legion_sim.reference import ReferenceController
    from legion_sim.table_scene import TablePlant

    if controller not in CONTROLLERS:
        raise ValueError(f"controller must be one of {CONTROLLERS}, got {controller!r}")
    if perception not in PERCEPTIONS:
        raise ValueError(f"perception must be one of {PERCEPTIONS}, got {perception!r}")
    known = None
    if controller == "legion":
        from legion_language.embedding import TextEmbedder

        policy = load_policy(checkpoint)
        library = library_from_dict(policy.task_library)
        embedder = TextEmbedder()
        policy.check_embedder(embedder.name, embedder.dim)
        embed = embedder.embed
        full = load_task_library()  # the checkpoint may know fewer subtasks than the command needs
        known = {s.env_id for s in library.subtasks.values()}
        library = full
    else:
        library, policy, embed = load_task_library(), None, (lambda _text: np.zeros(1, np.float32))
    layout = policy.layout if policy is not None else "metaworld"  # the reference controllers act on displacements
    library.plan(command)  # UnknownCommandError before anything is built
    if video is not None or perception == "camera":
        require_rendering()  # BadInput: one line, before the scene is built
    camera = table_camera_perception() if perception == "camera" else None
    plant = TablePlant(seed=seed, render=video is not None)
    agent = ReferenceController() if controller == "reference" else policy
    results, frames = [], []
    for i in range(trials):
        plant.reset(seed + i)
        loop = ControlLoop(agent, *make_chain(observation_layout=getattr(agent, "observation_layout", "paper")))
        on_step = frame_recorder(plant, frames, 640, 480) if video is not None and i == 0 else None
        how = table_frames(plant, layout) if workspace_offset else {}
        result = run_trial(command, plant=plant, loop=loop, library=library, controller=agent, embed=embed,
                           order=order, rng=random.Random(seed + i), hidden=hidden, known_env_ids=known,
                           max_steps=max_steps, retries=retries, on_step=on_step, **how,
                           explore_retries=explore_retries,
                           perception=None if camera is None else TableCameraPerception(plant, hidden, camera))
        results.append(result)
        rep = result.report
        done = [f"{s['subtask']}{'+' if s['success'] else '-'}" for s in rep["subtasks"]]
        log(f"trial {i + 1}/{trials}: {'SUCCESS' if rep['success'] else 'failed'} ({rep['order']}) "
            f"{' '.join(done)}  {result.steps} steps, {result.wall_s:.1f} s")
    plant.close()
    if frames:
        import imageio.v3 as iio

        video.parent.mkdir(parents=True, exist_ok=True)
        iio.imwrite(video, np.stack(frames), fps=10, codec="libx264", macro_block_size=8)
    summary = summarise(results)
    summary.update(command=command, controller=controller, checkpoint=str(checkpoint) if checkpoint else None,
                   perception=perception, order=order, seed=seed, hidden=sorted(hidden), workspace_offset=workspace_offset,
                   explore_retries=explore_retries,
                   reports=[{**r.report, "holds": r.holds, "interventions": r.interventions, "steps": r.steps,
                             "simulator_success": r.truth} for r in results])
    return summary
