"""The main job: a spoken (or typed) command → LEGION policy → simulated KUKA iiwa 14, with a run folder.

Order matters for safety: every input is checked (checkpoint, audio, command, embedding model) before
the plant is built, so bad input never moves anything.
"""
from __future__ import annotations

import functools
import json
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np
from rich.console import Console

from legion_runtime.graph import MAX_STEPS_PER_SUBTASK, TOPICS, recorded_topics
from legion_runtime.paths import project_path
from legion_language.tasks import Plan, UnknownCommandError, library_from_dict
from legion_runtime.commands import (  # noqa: F401 - BadInput and read_task_library are part of this module's API
    BadInput, plan_command, read_task_library,
)

if TYPE_CHECKING:  # the runner imports MuJoCo: loaded when a run starts, not when an input is refused
    from legion_runtime.runner import ControlLoop, SubtaskOutcome


@dataclass
class RunResult:
    """What ``legion run`` did: the text heard, each subtask's outcome, and the run folder."""

    text: str
    outcomes: list[SubtaskOutcome]
    run_dir: Path | None


def load_policy(checkpoint: Path):
    """Load the frozen policy, turning checkpoint errors into :class:`BadInput`."""
    from legion_policy.checkpoint import CheckpointError, LegionPolicy

    try:
        return LegionPolicy.load(project_path(checkpoint))
    except CheckpointError as exc:
        raise BadInput(f"cannot use checkpoint {checkpoint}: {exc}") from exc


def recognise(wav: Path, library, backend: str, vosk_model: Path | None, free: bool = False) -> tuple[str, float]:
    """Speech → text with the grammar of a task library (compound commands included), or free-form (``free``:
    :func:`legion_language.speech.make_recognizer`). Returns (text, seconds). Raises :class:`BadInput`."""
    from legion_language.speech import SpeechError, make_recognizer, read_wav

    try:
        pcm = read_wav(wav)
        recognizer = make_recognizer(backend, phrases=library.phrasings(), model_path=vosk_model, library=library,
                                     free=free)
        result = recognizer.transcribe(pcm)
    except SpeechError as exc:
        raise BadInput(str(exc)) from exc
    return result.text, result.seconds


def make_chain(frame=None, observation_layout: str = "paper", **limits):
    """Real2Sim, Sim2Real and the safety filter with the default frames and limits of the KUKA scene.

    ``observation_layout``: what Real2Sim builds (the deployed policy's ``observation_layout``); ``limits`` override
    :class:`sim2real.safety.SafetyLimits` fields (e.g. ``max_step_m``).
    """
    from sim2real.safety import SafetyFilter, SafetyLimits
    from sim2real.transforms import (
        METAWORLD_EE_OFFSET_M, METAWORLD_HAND_HIGH, METAWORLD_HAND_LOW, FrameTransform, Real2Sim, Sim2Real,
    )

    frame = frame or FrameTransform.default()
    # Workspace box of the TCP (base frame): Meta-World's hand bounds moved down to the TCP (top-down, the ee
    # point is METAWORLD_EE_OFFSET_M above it), plus 2 cm except below, where the hand's lowest point already
    # puts the TCP 5 mm above the table. Sim2Real's own clipping keeps the policy inside; the filter catches
    # anything that is not. (A box of the ee bounds applied to the TCP kept it 3 cm up: no puck could be grasped.)
    corners = np.array([frame.to_base(np.array([x, y, z - METAWORLD_EE_OFFSET_M]))
                        for x in (METAWORLD_HAND_LOW[0], METAWORLD_HAND_HIGH[0])
                        for y in (METAWORLD_HAND_LOW[1], METAWORLD_HAND_HIGH[1])
                        for z in (METAWORLD_HAND_LOW[2], METAWORLD_HAND_HIGH[2])])
    limits = SafetyLimits.iiwa14(corners.min(0) - [0.02, 0.02, 0.0], corners.max(0) + 0.02, **limits)
    return Real2Sim(frame, observation_layout=observation_layout), Sim2Real(frame), SafetyFilter(limits)


def _camera_perception(perception: str, calibration: Path | None, plan: Plan, table: bool = False):
    """The run's camera perception (None for ``"simulator"``), checked against every subtask of the plan; on the
    table the two table cameras' (:func:`legion_runtime.long_horizon.table_camera_perception`)."""
    if perception == "simulator":
        return None
    if perception != "camera":
        raise BadInput(f"perception must be 'camera' or 'simulator', got {perception!r}")
    if table:
        if calibration is not None:
            raise BadInput("--calibration gives the single camera's extrinsics; the table's two cameras read "
                           "calibration/sim_table_camera_*_extrinsics.yaml (legion calibrate-sim --camera NAME)")
        from legion_runtime.long_horizon import table_camera_perception

        return table_camera_perception()
    from legion_runtime.sim_perception import SIM_CALIBRATION, CameraPerception
    from sim2real.perception import PerceptionError

    try:
        camera = CameraPerception(calibration or SIM_CALIBRATION)
        for subtask in plan.subtasks:
            camera.rule(subtask.env_id)
    except PerceptionError as exc:
        raise BadInput(f"camera perception: {exc}") from exc
    return camera


def require_rendering() -> None:
    """:func:`legion_sim.gl.check_rendering`, as :class:`BadInput` (one line, exit status 2)."""
    from legion_sim.gl import RenderingUnavailable, check_rendering

    try:
        check_rendering()
    except RenderingUnavailable as exc:
        raise BadInput(str(exc)) from None


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "command"


def run_main_job(*, wav: Path | None, text: str | None, checkpoint: Path, speech_backend: str = "pocketsphinx",
                 vosk_model: Path | None = None, embedding_model: Path | None = None, seed: int = 0,
                 max_steps: int = MAX_STEPS_PER_SUBTASK, out_dir: Path = Path("runs"), video: bool = True,
                 perception: str = "camera", calibration: Path | None = None, free_wording: bool = False,
                 console: Console | None = None) -> RunResult:
    """Run a command end to end and write the run folder.

    Args:
        perception: ``"camera"``: objects and goals come from the virtual RealSense through the AprilTag
            detector and the camera calibration (as on the robot); ``"simulator"``: read from the simulator.
        calibration: camera extrinsics for ``"camera"`` (default: calibration/sim_camera_extrinsics.yaml).
        free_wording: decode ``wav`` free-form (the matcher then understands or refuses it) instead of with the
            closed grammar of the library's commands.

    Raises:
        BadInput: unusable checkpoint, audio, speech model or embedding model, or no working OpenGL back-end for
            the video or the camera (checked before the run folder is made).
        legion_language.tasks.MissingSkillsError: the command needs skills the checkpoint lacks (a shipped one has them).
        legion_language.tasks.UnknownCommandError: the command is not in the checkpoint's task library, and the
            matcher does not understand it (legion_language.matching.NotUnderstoodError: the closest known commands).
    """
    console = console or Console()
    library = read_task_library(checkpoint)  # the manifest alone: bad input is refused before the weights load

    if wav is not None:
        heard, seconds = recognise(wav, library, speech_backend, vosk_model, free_wording)
        console.print(f"[bold]heard[/] {heard!r} ({speech_backend}, {seconds * 1e3:.0f} ms)")
        if not heard:
            raise UnknownCommandError(f"<no command recognised in {wav}>", library.phrasings())
    else:
        heard = text
    from legion_language.embedding import EmbeddingModelError, TextEmbedder

    @functools.cache
    def load_embedder() -> TextEmbedder:  # once: the matcher's, when the command is no library phrasing, and the run's
        try:
            return TextEmbedder(embedding_model)
        except EmbeddingModelError as exc:
            raise BadInput(str(exc)) from exc

    def matcher():
        from legion_language.matching import CommandMatcher
        from legion_language.tasks import load_task_library

        return CommandMatcher(load_task_library(), load_embedder().embed)

    # a library command needs no model to be refused for missing skills; other wordings are matched
    plan = plan_command(heard, library, checkpoint, matcher=matcher, say=console.print)
    embedder = load_embedder()
    policy = load_policy(checkpoint)
    try:
        policy.check_embedder(embedder.name, embedder.dim)
    except ValueError as exc:
        raise BadInput(str(exc)) from exc
    table = _on_table(plan, camera=perception == "camera")
    camera = _camera_perception(perception, calibration, plan, table)

    if video or camera is not None:  # a set-up problem, before a run folder exists or anything moves
        require_rendering()
    run_dir = out_dir / f"{time.strftime('%Y%m%d-%H%M%S')}-{_slug(plan.text)}"
    run_dir.mkdir(parents=True, exist_ok=False)
    from legion_runtime import messages as m
    from legion_runtime.bag import BagRecorder
    from legion_sim.plant import KukaPlant

    from legion_runtime.runner import ControlLoop, SubtaskOutcome

    outcomes: list[SubtaskOutcome] = []
    transfers: dict | None = None
    frames: list[np.ndarray] = []
    t_ns = time.time_ns()
    with BagRecorder(run_dir / "bag", recorded_topics()) as bag:
        def publish(key: str, msg, stamp_ns: int) -> None:
            bag.write(TOPICS[key].name, msg, stamp_ns)

        publish("command_text", m.command_to_msg(plan.text), t_ns)
        real2sim, sim2real, safety = make_chain(observation_layout=policy.observation_layout)
        loop = ControlLoop(policy, real2sim, sim2real, safety, publish)
        if table:
            outcomes, transfers = _run_on_table(plan, library, loop, embedder, seed, max_steps, frames if video else None,
                                                console, t_ns, camera)
        for i, subtask in enumerate(() if table else plan.subtasks):
            embedding = embedder.embed(subtask.description)
            publish("subtask", m.command_to_msg(subtask.description), t_ns)
            publish("embedding", m.embedding_to_msg(embedding), t_ns)
            plant = KukaPlant(subtask.env_id, seed=seed + i, render=video, layout=policy.layout)
            plant.reset(seed + i)
            on_step = frame_recorder(plant, frames) if video else None
            objects = None
            if camera is not None:
                from sim2real.goals import ObjectNotSeenError

                objects = camera.for_subtask(plant, subtask.env_id)
                try:
                    goal = objects.start(t_ns * 1e-9)
                except ObjectNotSeenError as exc:
                    outcomes.append(SubtaskOutcome(subtask.name, False, 0, skipped=str(exc)))
                    plant.close()
                    console.print(f"subtask {i + 1}/{len(plan.subtasks)} {subtask.name!r}: [yellow]skipped[/]: {exc}")
                    continue
                console.print(f"goal from the camera: {np.round(goal, 3).tolist()} (sim frame, m); "
                              f"simulator's goal {np.round(plant.goal_position(), 3).tolist()}")
            outcome = loop.run_subtask(plant, subtask.name, embedding, max_steps, t0_ns=t_ns, on_step=on_step,
                                       objects=objects)
            t_ns += outcome.steps * int(plant.dt * 1e9)
            outcomes.append(outcome)
            plant.close()
            status = "[green]success[/]" if outcome.success else (
                f"[red]stopped by a joint-state sensor fault[/] ({outcome.fault})" if outcome.fault else "[red]failed[/]")
            component = max(set(outcome.components), key=outcome.components.count) if outcome.components else "none"
            console.print(f"subtask {i + 1}/{len(plan.subtasks)} {subtask.name!r} ({subtask.env_id}): {status} "
                          f"in {outcome.steps} steps ({outcome.steps * plant.dt:.2f} s), "
                          f"DPMM component {component}, "
                          f"safety interventions {outcome.interventions or 'none'}, holds {outcome.holds}")
    if video and frames:
        _write_video(run_dir, frames)
    summary = {"command": plan.text, "checkpoint": str(checkpoint), "seed": seed, "perception": perception,
               "outcomes": [{k: v for k, v in asdict(o).items() if k != "components"} for o in outcomes],
               "topics": recorded_topics()}
    if transfers is not None:
        summary["transfers"] = transfers
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    ok = sum(o.success for o in outcomes)
    console.print(f"[bold]{ok}/{len(outcomes)} subtasks succeeded[/]; run folder: {run_dir}")
    return RunResult(plan.text, outcomes, run_dir)


def _on_table(plan: Plan, camera: bool = False) -> bool:
    """Whether ``plan`` runs on the table scene: several subtasks all on the table, or one the single-task plant
    lacks, or (``camera``) one whose single-task scene has no tags for its camera (the table's two cameras see all
    seven of its sets; the single-task scenes' camera reads reach's and drawer-close's tags only).

    Raises:
        BadInput: a subtask exists in neither scene, or ``camera`` and a subtask's only scene has no tags for it.
    """
    from legion_sim.camera import TAG_MOUNTS
    from legion_sim.plant import TASKS
    from legion_sim.table_scene import TASKS_BY_ID

    env_ids = [st.env_id for st in plan.subtasks]
    missing = [e for e in env_ids if e not in TASKS and e not in TASKS_BY_ID]
    if missing:
        raise BadInput(f"no simulated scene has {missing}: the single-task plant has {sorted(TASKS)}, the table "
                       f"{sorted(TASKS_BY_ID)}")
    untagged = [e for e in env_ids if camera and e not in TASKS_BY_ID and e not in TAG_MOUNTS]
    if untagged:
        tagged = sorted(e for e in TAG_MOUNTS if e in TASKS)
        raise BadInput(f"camera perception: the simulated scene of {untagged} has no tags for its camera (the "
                       f"single-task scenes tag {tagged}, the table {sorted(TASKS_BY_ID)}); run it with "
                       "--perception simulator")
    if not all(e in TASKS_BY_ID for e in env_ids):
        return False  # each subtask in its own single-task scene (e.g. reach, which the table lacks)
    return len(env_ids) > 1 or env_ids[0] not in TASKS or (camera and env_ids[0] not in TAG_MOUNTS)


def _run_on_table(plan: Plan, library, loop: ControlLoop, embedder, seed: int, max_steps: int,
                  frames: list | None, console: Console, t0_ns: int,
                  camera=None) -> tuple[list[SubtaskOutcome], dict | None]:
    """Run the plan's subtasks with the task sequencer on one table scene, stamps from ``t0_ns``; the objects seen
    by the table's cameras through ``camera`` (a :class:`legion_runtime.sim_perception.CameraPerception` with their
    calibrations), or read from the simulator (None).

    Returns:
        one outcome per planned subtask (steps, holds and safety interventions summed over its attempts), and the
        safety record of the transfer moves between subtasks (``{"steps", "holds", "interventions"}``; None if
        none ran).
    """
    import random

    from legion_runtime.long_horizon import run_trial, table_frames
    from legion_runtime.runner import SubtaskOutcome
    from legion_runtime.sim_perception import TableCameraPerception
    from legion_sim.table_scene import TablePlant

    plant = TablePlant(seed=seed, render=frames is not None)
    perception = None if camera is None else TableCameraPerception(plant, camera=camera)
    on_step = None if frames is None else frame_recorder(plant, frames)
    result = run_trial(plan.text, plant=plant, loop=loop, library=library, controller=loop.policy,
                       embed=embedder.embed, order="spoken" if plan.order == "spoken" else "random",
                       rng=random.Random(seed), max_steps=max_steps, on_step=on_step,
                       log=lambda line: console.print(f"  {line}"), t0_ns=t0_ns,
                       **table_frames(plant, loop.policy.layout),  # each skill in its training frame and start
                       perception=perception)
    plant.close()
    steps = {}
    for a in result.report["attempts"]:
        steps[a["subtask"]] = steps.get(a["subtask"], 0) + a["steps"]
    none = {"holds": 0, "interventions": {}}
    outcomes = [SubtaskOutcome(s["subtask"], s["success"], steps.get(s["subtask"], 0),
                               holds=result.safety.get(s["subtask"], none)["holds"],
                               interventions=dict(result.safety.get(s["subtask"], none)["interventions"]),
                               skipped=s["skipped"] or "")
                for s in result.report["subtasks"]]
    for o in outcomes:
        status = "[green]success[/]" if o.success else (f"[yellow]skipped[/]: {o.skipped}" if o.skipped else "[red]failed[/]")
        console.print(f"subtask {o.subtask!r}: {status} ({o.steps} steps), "
                      f"safety interventions {o.interventions or 'none'}, holds {o.holds}")
    if "transfer" in result.safety:
        t = result.safety["transfer"]
        console.print(f"transfers between subtasks: {t['steps']} steps, safety interventions "
                      f"{t['interventions'] or 'none'}, holds {t['holds']}")
    return outcomes, result.safety.get("transfer")


def frame_recorder(plant, frames: list, width: int = 320, height: int = 240) -> Callable[[int], None]:
    """Append a first frame of ``plant`` to ``frames`` now, and return the loop's ``on_step`` that appends one every
    other 20 Hz step (a 10 frames/s video)."""
    frames.append(plant.render(width, height))

    def on_step(step: int) -> None:
        if step % 2 == 1:
            frames.append(plant.render(width, height))
    return on_step


def _write_video(run_dir: Path, frames: list[np.ndarray]) -> None:
    """video.mp4 at 10 frames/s (every other 20 Hz step) and frames.png, a strip of 6 evenly spaced frames."""
    import imageio.v3 as iio

    iio.imwrite(run_dir / "video.mp4", np.stack(frames), fps=10, codec="libx264", macro_block_size=8)
    pick = np.linspace(0, len(frames) - 1, 6).round().astype(int)
    iio.imwrite(run_dir / "frames.png", np.concatenate([frames[i] for i in pick], axis=1))


def evaluate_policy(*, task: str, episodes: int, checkpoint: Path, seed: int = 1000, plant: str = "kuka",
                    perception: str = "simulator", calibration: Path | None = None, robot: str = "sawyer",
                    control: str = "mocap",
                    console: Console | None = None) -> tuple[float, int]:
    """Success rate of the checkpoint's policy on one subtask over randomised episodes.

    Args:
        task: Meta-World environment of the subtask (``reach-v3``).
        plant: ``"kuka"``: the whole deployment chain on the KUKA plant; ``"metaworld"``: a Meta-World
            environment (the trainer's evaluation) with ``robot`` and ``control``.
        robot, control: for ``"metaworld"``: ``"sawyer"`` (mocap) or ``"kuka"`` with ``"mocap"`` or ``"joint"``
            (:mod:`legion_sim.kuka_metaworld`).
        perception: for ``"kuka"``: ``"simulator"`` (ground-truth object and goal) or ``"camera"`` (virtual
            RealSense through the tag detector; an episode whose object is not seen at the start counts as failed).

    Returns:
        (success rate in [0, 1], number of episodes).
    """
    from legion_language.embedding import TextEmbedder

    if plant not in ("kuka", "metaworld"):
        raise BadInput(f"plant must be 'kuka' or 'metaworld', got {plant!r}")
    policy = load_policy(checkpoint)
    library = library_from_dict(policy.task_library)
    try:
        subtask = library.by_env_id(task)
    except KeyError as exc:
        raise BadInput(str(exc)) from exc
    embedder = TextEmbedder()
    policy.check_embedder(embedder.name, embedder.dim)
    embedding = embedder.embed(subtask.description)
    if plant == "metaworld":  # the trainer's own evaluation: placements from one stream seeded by `seed`
        from legion_policy.trainer import evaluate
        from legion_sim.metaworld_env import MetaWorldTaskEnv

        try:
            env = MetaWorldTaskEnv(task, seed=seed, robot=robot, control=control, layout=policy.layout,
                                   observation_layout=policy.observation_layout)
        except ValueError as exc:
            raise BadInput(str(exc)) from exc
        return evaluate(policy.agent, env, embedding[None], episodes), episodes

    camera = _camera_perception(perception, calibration, Plan(subtask.description, (subtask,)))
    if camera is not None:
        require_rendering()
    outcomes = kuka_episodes(policy, subtask, embedding, episodes, seed, camera)
    return sum(o is not None and o.success for o in outcomes) / episodes, episodes


def kuka_episodes(policy, subtask, embedding: np.ndarray, episodes: int, seed: int = 1000, camera=None) -> list:
    """Randomised episodes of one subtask through the whole deployment chain on the KUKA plant.

    Args:
        policy: the frozen policy (:func:`load_policy`).
        subtask: the task library's subtask (its ``env_id`` picks the scene).
        embedding: (D,) float32 language embedding the policy is conditioned on (the library phrasing's, or any
            other text's: ``benchmarks/paraphrase_policy.py``).
        episodes, seed: episode i is placed by seed + i.
        camera: :class:`legion_runtime.sim_perception.CameraPerception`, or None for the simulator's points.

    Returns:
        per episode, the :class:`legion_runtime.runner.SubtaskOutcome` (``success``, ``components``), or None
        where the camera did not see the object at the start (a failed episode).

    Raises:
        BadInput: the plant does not run ``subtask.env_id``.
    """
    from legion_runtime.runner import ControlLoop
    from legion_sim.plant import KukaPlant
    from sim2real.goals import ObjectNotSeenError

    loop = ControlLoop(policy, *make_chain(observation_layout=policy.observation_layout))
    try:
        kuka = KukaPlant(subtask.env_id, seed=seed, layout=policy.layout)
    except ValueError as exc:  # a library task the plant does not run: one line
        raise BadInput(str(exc)) from exc
    outcomes = []
    for i in range(episodes):
        kuka.reset(seed + i)
        objects = None if camera is None else camera.for_subtask(kuka, subtask.env_id)
        try:
            if objects is not None:
                objects.start(0.0)
        except ObjectNotSeenError:
            outcomes.append(None)
            continue
        outcomes.append(loop.run_subtask(kuka, subtask.name, embedding, objects=objects))
    kuka.close()
    return outcomes
