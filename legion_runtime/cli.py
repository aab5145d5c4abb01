"""The ``legion`` command: ``legion run`` (the main job), ``legion train``, ``legion evaluate``, ``legion report``,
``legion commands``, ``legion grammar``."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from legion_runtime.train_command import train

# Plain click help (rich_markup_mode=None): rich's panels printed "--help <bool>" and cut long option names at 80
# columns. Each command imports what it needs (torch, MuJoCo) inside, so --help and input errors answer at once.
app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None, pretty_exceptions_enable=False,
                  help="LEGION lifelong RL on a (simulated) KUKA iiwa 14 + Robotiq 2F-85.")
app.command("train")(train)
console = Console(soft_wrap=True)  # long paths and messages stay on one line (greppable)

#: The stream checkpoint of the efficient recipe: all ten skills ("clean the table", "make the coffee": docs/long-horizon.md)
DEFAULT_CHECKPOINT = Path("models/stream-efficient/legion")

# Exit statuses of `legion run` (documented in the README).
EXIT_FAILED_SUBTASK, EXIT_BAD_INPUT, EXIT_UNKNOWN_COMMAND = 1, 2, 3


def _fail(message: str, code: int = EXIT_BAD_INPUT) -> None:
    console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


@app.command()
def run(
    wav: Annotated[Optional[Path], typer.Option(help="spoken command, 16 kHz mono 16-bit WAV")] = None,
    text: Annotated[Optional[str], typer.Option(help="typed command instead of --wav")] = None,
    checkpoint: Annotated[Path, typer.Option(help="checkpoint folder written by `legion train`")] = DEFAULT_CHECKPOINT,
    speech_backend: Annotated[str, typer.Option(help="pocketsphinx (embedded default) or vosk")] = "pocketsphinx",
    vosk_model: Annotated[Optional[Path], typer.Option(help="vosk model folder (for --speech-backend vosk)")] = None,
    embedding_model: Annotated[Optional[Path], typer.Option(
        help="transformers model folder; default: the packaged all-MiniLM-L6-v2")] = None,
    seed: Annotated[int, typer.Option(help="seed of the object and goal placement")] = 0,
    max_steps: Annotated[int, typer.Option(help="control steps per subtask (20 Hz)")] = 150,
    out: Annotated[Path, typer.Option(help="folder that receives the run folder")] = Path("runs"),
    video: Annotated[bool, typer.Option(help="render video.mp4 and frames.png")] = True,
    perception: Annotated[str, typer.Option(
        help="camera: objects from the virtual RealSense through AprilTag detection; simulator: ground truth")] = "camera",
    calibration: Annotated[Optional[Path], typer.Option(
        help="camera extrinsics (easy_handeye2 YAML); default calibration/sim_camera_extrinsics.yaml (the table's "
             "two cameras read calibration/sim_table_camera_*_extrinsics.yaml)")] = None,
    free_wording: Annotated[bool, typer.Option(
        help="--wav: decode free-form and let the matcher understand or refuse it (default: the closed grammar of "
             "the library's commands)")] = False,
) -> None:
    """Speak (or type) a command and watch the simulated KUKA iiwa carry it out with the LEGION policy."""
    if (wav is None) == (text is None):
        _fail("give exactly one of --wav PATH or --text \"...\"")
    from legion_language.tasks import UnknownCommandError
    from legion_runtime.main_job import BadInput, run_main_job

    try:
        result = run_main_job(wav=wav, text=text, checkpoint=checkpoint, speech_backend=speech_backend,
                              vosk_model=vosk_model, embedding_model=embedding_model, seed=seed,
                              max_steps=max_steps, out_dir=out, video=video, perception=perception,
                              calibration=calibration, free_wording=free_wording, console=console)
    except UnknownCommandError as exc:
        _fail(str(exc), EXIT_UNKNOWN_COMMAND)
    except BadInput as exc:
        _fail(str(exc))
    if not all(o.success for o in result.outcomes):
        raise typer.Exit(EXIT_FAILED_SUBTASK)


@app.command()
def evaluate(
    task: Annotated[str, typer.Option(help="Meta-World task of the subtask, e.g. reach-v3")] = "reach-v3",
    episodes: Annotated[int, typer.Option(help="randomised episodes")] = 20,
    checkpoint: Annotated[Path, typer.Option(help="checkpoint folder")] = DEFAULT_CHECKPOINT,
    seed: Annotated[int, typer.Option(help="seed of the first episode; episode i uses seed + i")] = 1000,
    plant: Annotated[str, typer.Option(help="kuka (whole chain, joint targets) or metaworld (the trainer's env)")] = "kuka",
    robot: Annotated[str, typer.Option(help="metaworld plant: sawyer or kuka (iiwa 14 + 2F-85)")] = "sawyer",
    control: Annotated[str, typer.Option(help="metaworld plant with kuka: mocap or joint (Sim2Real + IK)")] = "mocap",
    perception: Annotated[str, typer.Option(
        help="kuka plant: simulator (ground truth) or camera (virtual RealSense + AprilTags)")] = "simulator",
) -> None:
    """Success rate of the shipped policy on one subtask, through the whole chain (kuka) or on Meta-World."""
    from legion_runtime.main_job import BadInput, evaluate_policy

    try:
        rate, n = evaluate_policy(task=task, episodes=episodes, checkpoint=checkpoint, seed=seed, plant=plant,
                                  perception=perception, robot=robot, control=control, console=console)
    except BadInput as exc:
        _fail(str(exc))
    where = perception if plant == "kuka" else f"{robot}, {control}"
    console.print(f"{task} on {plant} ({where}): success {rate:.2f} "
                  f"({round(rate * n)}/{n} episodes)")


@app.command()
def demos(
    tasks: Annotated[str, typer.Option(help="comma-separated Meta-World v3 tasks (default: the paper's ten; "
                                           "--layout table: the table's seven)")] = "",
    episodes: Annotated[int, typer.Option(help="randomised episodes per task")] = 50,
    out: Annotated[Path, typer.Option(help="folder of the demonstration files (<task>.npz)")] = Path("demos"),
    seed: Annotated[int, typer.Option(help="placement seed of the first episode; episode i uses seed + i")] = 0,
    max_steps: Annotated[int, typer.Option(help="step limit per episode (20 Hz)")] = 150,
    layout: Annotated[str, typer.Option(help="metaworld (Meta-World's placements) | table (the long-horizon table's, "
                                             "for `legion train --layout table`)")] = "metaworld",
    observation_layout: Annotated[str, typer.Option(help="paper (the paper's 12-d observation) | gripper (the "
                                                         "2F-85's opening in slot 6), for `legion train "
                                                         "--observation-layout`")] = "paper",
    action_noise: Annotated[float, typer.Option(help="DART: Gaussian noise (sigma, action units: 1 = 1 cm per step) "
                                                     "on the executed TCP displacement; the controller corrects it "
                                                     "(0: none)")] = 0.0,
) -> None:
    """Write demonstrations of the reference controllers through the deployed chain (docs/reference-controllers.md)."""
    from legion_runtime.demos import record_task
    from legion_policy.demonstrations import path_for, write_demonstrations
    from legion_sim.metaworld_env import PAPER_TASKS
    from legion_sim.reference import PLANS

    from legion_sim.table_scene import LAYOUTS, TASKS_BY_ID
    from sim2real.observation import OBS_LAYOUTS

    names = [t.strip() for t in tasks.split(",") if t.strip()] or list(TASKS_BY_ID if layout == "table" else PAPER_TASKS)
    unknown = [t for t in names if t not in PLANS]
    if unknown:
        _fail(f"no reference controller for {unknown}; there is one for {', '.join(PLANS)}")
    if episodes < 1 or max_steps < 1:
        _fail(f"--episodes and --max-steps must be >= 1, got {episodes} and {max_steps}")
    if layout not in LAYOUTS or (layout == "table" and set(names) - set(TASKS_BY_ID)):
        _fail(f"--layout must be one of {LAYOUTS}; 'table' takes the table's tasks ({', '.join(TASKS_BY_ID)}), got "
              f"{layout!r} with {names}")
    if observation_layout not in OBS_LAYOUTS:
        _fail(f"--observation-layout must be one of {list(OBS_LAYOUTS)}, got {observation_layout!r}")
    if not 0.0 <= action_noise <= 1.0:
        _fail(f"--action-noise is DART's sigma in action units (1 unit = 1 cm per step), in [0, 1]; got {action_noise}")
    for task in names:
        demo = record_task(task, episodes, seed, max_steps, layout, observation_layout, action_noise)
        path = write_demonstrations(path_for(out, task), demo)
        console.print(f"{task}: {demo.meta['successes']}/{episodes} episodes succeeded, {len(demo)} transitions "
                      f"-> {path}")


@app.command()
def grammar(
    fmt: Annotated[str, typer.Option("--format", help="jsgf (pocketsphinx) or vosk (JSON list)")] = "jsgf",
    library: Annotated[Optional[Path], typer.Option(help="task library YAML (default: the shipped one)")] = None,
    out: Annotated[Optional[Path], typer.Option(help="write the grammar here instead of printing it")] = None,
) -> None:
    """Print (or write) the speech grammar generated from the task library."""
    from legion_language.speech import library_jsgf, vosk_grammar
    from legion_language.tasks import TaskLibraryError, load_task_library

    if fmt not in ("jsgf", "vosk"):
        _fail(f"--format must be jsgf or vosk, got {fmt!r}")
    try:
        lib = load_task_library(library)
    except TaskLibraryError as exc:
        _fail(str(exc))
    text = library_jsgf(lib) if fmt == "jsgf" else vosk_grammar(lib.phrasings()) + "\n"
    if out is None:
        print(text, end="")
    else:
        out.write_text(text)


@app.command()
def commands(
    checkpoint: Annotated[Path, typer.Option(help="checkpoint folder whose task library to list")] = DEFAULT_CHECKPOINT,
) -> None:
    """List the commands a checkpoint understands: its subtasks, its long-horizon tasks, and the shipped library's
    commands it lacks skills for."""
    from legion_language.tasks import load_task_library
    from legion_runtime.commands import BadInput, read_task_library, shipped_checkpoints_with

    try:
        library = read_task_library(checkpoint)
    except BadInput as exc:
        _fail(str(exc))
    print(f"Commands of checkpoint {checkpoint} (its recorded task library):")
    print("Other wordings of these are matched to them through the language model, or refused with the closest ones "
          "(docs/speech-and-tasks.md).")
    print("\nSubtasks (one learned skill each; join several with 'then' or 'and', run in the spoken order):")
    for st in library.subtasks.values():
        print(f"  {st.name} ({st.env_id}): {' | '.join(st.phrasings)}")
    print("\nLong-horizon tasks (a sequence of the subtasks above; 'chain': in this order, stops at a failure; "
          "'set': any order):")
    for task in library.long_horizon.values():
        print(f"  {' | '.join(task.phrasings)}: {task.order} of {', '.join(task.subtasks)}")
    if not library.long_horizon:
        print("  (none)")
    have = {st.env_id for st in library.subtasks.values()}
    full = load_task_library()
    lacking = [t for t in full.long_horizon.values()
               if t.name not in library.long_horizon and not {full.subtasks[s].env_id for s in t.subtasks} <= have]
    if lacking:
        print("\nLong-horizon tasks of the shipped library this checkpoint lacks skills for:")
        for task in lacking:
            envs = {full.subtasks[s].env_id for s in task.subtasks}
            holders = shipped_checkpoints_with(envs)
            missing = [s for s in task.subtasks if full.subtasks[s].env_id not in have]
            print(f"  {task.phrasings[0]}: needs {', '.join(missing)}; "
                  + (f"use --checkpoint {holders[0]}" if holders else "no shipped checkpoint has them all"))


@app.command()
def report(
    runs: Annotated[list[Path], typer.Argument(help="run folders written by `legion train` (methods, seeds)")],
    figures: Annotated[Optional[Path], typer.Option(help="write PNG figures (P(t), success matrices, t-SNE) here")] = None,
    reference: Annotated[Optional[list[Path]], typer.Option(
        help="single-task reference runs for Continual World's forward transfer (repeatable)")] = None,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="also write the summary rows as JSON here")] = None,
) -> None:
    """Compare lifelong runs side by side: P(T), forgetting, forward transfer, few-shot recall (mean ± std)."""
    from legion_runtime.report import ReportError, draw_figures, load_run, print_report, reference_aucs

    try:
        loaded = [load_run(r) for r in runs]
        ref = reference_aucs(reference) if reference else None
    except ReportError as exc:
        _fail(str(exc))
    wide = Console(width=max(console.width, 150), soft_wrap=True)  # tables of 10 tasks need the room
    rows = print_report(loaded, ref, wide)
    if json_out:
        import json

        json_out.write_text(json.dumps(rows, indent=2))
    if figures:
        for path in draw_figures(loaded, figures):
            console.print(f"wrote {path}")


@app.command("knowledge-table")
def knowledge_table(
    checkpoint: Annotated[Path, typer.Argument(help="checkpoint folder or run folder holding checkpoint/")],
    states: Annotated[int, typer.Option(help="randomised start states per task")] = 20,
    seed: Annotated[int, typer.Option(help="placement seed of the first task (task k: seed + 100 k)")] = 9000,
    embedding_model: Annotated[Optional[Path], typer.Option(
        help="the checkpoint's language model folder (default: the packaged all-MiniLM-L6-v2)")] = None,
    refit_sf: Annotated[Optional[float], typer.Option(
        "--refit-sF", help="refit the DPMM with this prior variance on the run's last recorded latents (analysis)")] = None,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="also write the rows and counts as JSON here")] = None,
) -> None:
    """Which knowledge-space component each phrasing of each trained task selects (docs/lifelong.md)."""
    import json

    from rich.table import Table

    from legion_policy.checkpoint import CheckpointError
    from legion_runtime.knowledge_table import phrasing_table, rows_as_dicts, summary

    try:
        rows = phrasing_table(checkpoint, states=states, seed=seed, embedding_model=embedding_model,
                              refit_sF=refit_sf)
    except (CheckpointError, ValueError) as exc:
        _fail(str(exc))
    table = Table("task", "phrasing", "component", "share of states", "as description", "own component",
                  "description shares it with")
    for r in rows:
        table.add_row(r.task, r.phrasing, str(r.component), f"{r.share:.2f}", "yes" if r.as_description else "no",
                      "yes" if r.own else "no", ", ".join(r.shared_with) or "-")
    Console(width=max(console.width, 150), soft_wrap=True).print(table)
    counts = summary(rows)
    console.print(", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in counts.items()))
    if json_out:
        json_out.write_text(json.dumps({"checkpoint": str(checkpoint), "states": states, "seed": seed,
                                        "refit_sF": refit_sf, "summary": counts, "rows": rows_as_dicts(rows)},
                                       indent=2))


@app.command()
def sweep(
    methods: Annotated[str, typer.Option(help="comma-separated methods (see `legion train --help`)")] = "legion,finetune",
    orders: Annotated[str, typer.Option(help="comma-separated task orders: paper, given, reverse, random")] = "paper",
    seeds: Annotated[str, typer.Option(help="comma-separated seeds")] = "0,1,2",
    tasks: Annotated[str, typer.Option(help="comma-separated Meta-World v3 tasks (default: the paper's ten)")] = "",
    steps_per_task: Annotated[int, typer.Option(help="environment steps per task visit")] = 60_000,
    eval_every: Annotated[int, typer.Option(help="evaluate every task every N steps")] = 10_000,
    eval_episodes: Annotated[int, typer.Option(help="episodes per task and evaluation")] = 10,
    random_steps: Annotated[int, typer.Option(help="random-action steps at the start of each visit")] = 1500,
    hidden: Annotated[int, typer.Option(help="hidden-layer width")] = 256,
    batch_size: Annotated[int, typer.Option(help="batch size")] = 128,
    out: Annotated[Path, typer.Option(help="sweep folder; each run goes to <method>-<order>-s<seed>/")] = Path("runs/sweep"),
    backend: Annotated[str, typer.Option(help="local (process pool, no network) or ray")] = "local",
    address: Annotated[Optional[str], typer.Option(help="Ray cluster address, e.g. ray://head:10001 (ray backend)")] = None,
    num_cpus: Annotated[Optional[int], typer.Option(help="parallel runs (default: all CPUs)")] = None,
    recipe: Annotated[str, typer.Option(
        help="efficient (the sample-efficient recipe on the deployed KUKA, as `legion train`'s default) | paper "
             "(pure RL on Meta-World's Sawyer)")] = "efficient",
) -> None:
    """Run every (method, order, seed) of a lifelong experiment in parallel (process pool or Ray), then report."""
    from legion_policy.agent import AgentConfig
    from legion_policy.sweep import run_sweep, sweep_configs
    from legion_language.tasks import PAPER_STREAM
    from legion_policy.train_config import with_recipe
    from legion_policy.trainer import TrainConfig, TrainConfigError
    from legion_runtime.report import load_run, print_report
    from legion_runtime.train_command import split_list as split

    base = TrainConfig(tasks=split(tasks) or list(PAPER_STREAM), steps_per_task=steps_per_task, eval_every=eval_every,
                       eval_episodes=eval_episodes, random_steps=random_steps,
                       agent=AgentConfig(hidden=hidden, batch_size=batch_size))
    try:
        base = with_recipe(base, recipe)
        configs = sweep_configs(base, split(methods), split(orders), [int(s) for s in split(seeds)], out)
    except (TrainConfigError, ValueError) as exc:
        _fail(str(exc))
    if backend not in ("local", "ray"):
        _fail(f"--backend must be 'local' or 'ray', got {backend!r}")
    console.print(f"sweep: {len(configs)} runs, backend {backend}" + (f" at {address}" if address else ""))
    for row in run_sweep(configs, backend=backend, address=address, num_cpus=num_cpus):
        console.print(f"  {row['out']}: P(T) {row['average_success_final']}")
    print_report([load_run(c.out) for c in configs], None, Console(width=max(console.width, 150)))


@app.command()
def calibrate(
    samples: Annotated[Path, typer.Option(help="YAML of paired samples: base_from_gripper (robot FK) and camera_from_tag (detector)")],
    out: Annotated[Path, typer.Option(help="easy_handeye2-style calibration to write")] = Path("calibration/camera_extrinsics.yaml"),
    method: Annotated[str, typer.Option(help="tsai | park | horaud | andreff | daniilidis (OpenCV calibrateHandEye)")] = "park",
) -> None:
    """Eye-on-base hand-eye calibration: T_base<-camera from robot poses and tag detections (OpenCV)."""
    import numpy as np

    from sim2real.calibration import CalibrationError, calibrate_eye_on_base, load_samples, write_calibration

    try:
        base_from_gripper, camera_from_tag = load_samples(samples)
        result = calibrate_eye_on_base(base_from_gripper, camera_from_tag, method)
    except CalibrationError as exc:
        _fail(str(exc))
    write_calibration(out, result)
    t = result.base_from_camera[:3, 3]
    console.print(f"T_base<-camera from {len(base_from_gripper)} samples ({method}): translation "
                  f"[{t[0]:.4f}, {t[1]:.4f}, {t[2]:.4f}] m")
    console.print(f"residuals of the gripper-to-tag transform: translation median "
                  f"{np.median(result.translation_residuals_m) * 1e3:.1f} mm, max {result.translation_residuals_m.max() * 1e3:.1f} mm; "
                  f"rotation median {np.median(result.rotation_residuals_deg):.2f} deg, max {result.rotation_residuals_deg.max():.2f} deg")
    console.print(f"wrote {out}")


@app.command("calibrate-sim")
def calibrate_sim(
    n: Annotated[int, typer.Option(help="robot poses that show the gripper tag to the camera")] = 25,
    seed: Annotated[int, typer.Option(help="seed of the random poses")] = 0,
    camera: Annotated[str, typer.Option(
        help="realsense_color (the single-task scenes') or table_camera_right | table_camera_left (the table's)")]
        = "realsense_color",
    samples_out: Annotated[Optional[Path], typer.Option(
        help="where to write the samples (default calibration/sim_samples.yaml, or sim_<camera>_samples.yaml)")] = None,
    out: Annotated[Optional[Path], typer.Option(
        help="calibration to write (default calibration/sim_camera_extrinsics.yaml, or sim_<camera>_extrinsics.yaml)")]
        = None,
    method: Annotated[str, typer.Option(help="OpenCV calibrateHandEye method")] = "park",
) -> None:
    """Calibrate a simulated RealSense as the real one: collect samples, run `legion calibrate`, compare with the truth."""
    import numpy as np
    from scipy.spatial.transform import Rotation

    from legion_runtime.sim_perception import SIM_CALIBRATION, sim_calibration
    from legion_sim.calibration_rig import collect_samples, sim_camera, true_base_from_camera
    from legion_sim.camera import CALIBRATION_TAG_SIZE_M
    from sim2real.calibration import write_samples

    default = camera == "realsense_color"
    out = out or sim_calibration(camera)
    samples_out = samples_out or (SIM_CALIBRATION.parent / ("sim_samples.yaml" if default else f"sim_{camera}_samples.yaml"))
    try:
        base_from_flange, camera_from_tag, plant = collect_samples(n, seed, camera=camera)
    except (ValueError, RuntimeError) as exc:
        _fail(str(exc))
    write_samples(samples_out, base_from_flange, camera_from_tag, sim_camera(plant, camera).intrinsics,
                  CALIBRATION_TAG_SIZE_M)
    console.print(f"wrote {n} samples to {samples_out}")
    calibrate(samples=samples_out, out=out, method=method)
    from sim2real.perception import load_extrinsics

    truth, found = true_base_from_camera(plant, camera), load_extrinsics(out)
    plant.close()
    dt = np.linalg.norm(found[:3, 3] - truth[:3, 3])
    dr = np.degrees(Rotation.from_matrix(found[:3, :3].T @ truth[:3, :3]).magnitude())
    console.print(f"error against the simulated camera's true pose: {dt * 1e3:.2f} mm, {dr:.3f} deg")


@app.command("camera-offset")
def camera_offset(
    xyz: Annotated[tuple[float, float, float], typer.Option(help="colour lens position in the robot base frame, m")],
    rpy: Annotated[tuple[float, float, float], typer.Option(
        help="camera_link roll pitch yaw about the base's fixed axes, rad (0 0 0: level, looking along +x)")],
    out: Annotated[Path, typer.Option(help="extrinsics to write")] = Path("calibration/camera_extrinsics.yaml"),
) -> None:
    """Camera offset set-up: write the extrinsics from a measured camera pose (no hand-eye calibration)."""
    from sim2real.calibration import CalibrationError, camera_from_measurement, write_extrinsics

    try:
        write_extrinsics(out, camera_from_measurement(xyz, rpy))
    except CalibrationError as exc:
        _fail(str(exc))
    console.print(f"wrote {out}; check it with `legion calibrate-check` on a few samples")


@app.command("calibrate-check")
def calibrate_check(
    calibration: Annotated[Path, typer.Option(help="calibration written by legion calibrate")],
    samples: Annotated[Path, typer.Option(help="new samples (with intrinsics and tag_size_m)")],
) -> None:
    """Reprojection error of a saved calibration on new samples: predicted vs detected tag corners (px)."""
    import numpy as np

    from sim2real.calibration import CalibrationError, check_calibration

    try:
        result = check_calibration(calibration, samples)
    except CalibrationError as exc:
        _fail(str(exc))
    px, mm = result.reprojection_px, result.position_error_m * 1e3
    console.print(f"{len(px)} samples: reprojection error median {np.median(px):.2f} px, max {px.max():.2f} px; "
                  f"tag position error median {np.median(mm):.1f} mm, max {mm.max():.1f} mm")


@app.command("ros-params")
def ros_params(
    out: Annotated[Path, typer.Option(help="folder of the parameter files")] = Path("launch/config"),
    check: Annotated[bool, typer.Option(help="exit 1 if a file differs from the graph instead of writing")] = False,
) -> None:
    """Write the ROS 2 parameter files (legion.yaml, one per arm driver) from legion_runtime/graph.py."""
    from legion_runtime.graph import parameter_files

    stale = []
    for name, text in parameter_files().items():
        path = out / name
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path))
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        console.print(f"wrote {path}")
    if stale:
        console.print(f"{', '.join(stale)} differ from legion_runtime/graph.py: run `legion ros-params`")
        raise typer.Exit(1)
    if check:
        console.print(f"the parameter files in {out} match the graph")


if __name__ == "__main__":
    app()


@app.command("long-horizon")
def long_horizon(
    command: Annotated[str, typer.Option(help="long-horizon command, e.g. 'clean the table' or 'make the coffee'")],
    trials: Annotated[int, typer.Option(help="randomised trials (placements and random orders seeded by seed + i)")] = 20,
    controller: Annotated[str, typer.Option(
        help="reference (the scripted reference controllers of legion_sim/reference.py) or legion (the checkpoint's "
             "policy)")] = "legion",
    checkpoint: Annotated[Path, typer.Option(help="checkpoint folder for --controller legion")] = DEFAULT_CHECKPOINT,
    order: Annotated[str, typer.Option(help="random | library | spoken (random shuffles set tasks only)")] = "random",
    seed: Annotated[int, typer.Option(help="seed of the first trial")] = 0,
    hide: Annotated[str, typer.Option(help="comma-separated objects the camera does not see (their subtasks are skipped)")] = "",
    video: Annotated[Optional[Path], typer.Option(help="write the first trial as an MP4 here")] = None,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="write the summary and every trial's report here")] = None,
    workspace_offset: Annotated[bool, typer.Option(
        help="shift each subtask's observations by where its object set stands minus where Meta-World trains it "
             "(docs/long-horizon.md: measured)")] = True,
    perception: Annotated[str, typer.Option(
        help="camera (the table's two RealSenses through the AprilTag detector and their calibrations) or "
             "simulator (object points read from the simulator)")] = "camera",
    explore_retries: Annotated[bool, typer.Option(
        help="a retry draws its actions from the policy instead of repeating its mean actions "
             "(docs/long-horizon.md: measured)")] = True,
    retries: Annotated[int, typer.Option(help="extra attempts of a failed subtask")] = 2,
) -> None:
    """Run a long-horizon command on the table scene N times: per-subtask and whole-task success rates."""
    import json

    from legion_language.tasks import UnknownCommandError
    from legion_runtime.long_horizon import run_trials
    from legion_runtime.main_job import BadInput

    if trials < 1:
        _fail(f"--trials must be >= 1, got {trials}")
    if retries < 0:
        _fail(f"--retries must be >= 0, got {retries}")
    try:
        summary = run_trials(command, trials=trials, controller=controller, checkpoint=checkpoint, order=order,
                             seed=seed, hidden=frozenset(h for h in hide.split(",") if h), video=video,
                             workspace_offset=workspace_offset, perception=perception,
                             explore_retries=explore_retries, retries=retries, log=console.print)
    except UnknownCommandError as exc:
        _fail(str(exc), EXIT_UNKNOWN_COMMAND)
    except (BadInput, ValueError) as exc:
        _fail(str(exc))
    console.print(f"[bold]{summary['command']}[/] ({controller}, {perception} perception, order {order}): whole task "
                  f"{summary['task_success']:.2f} over {summary['trials']} trials")
    for name, row in summary["subtasks"].items():
        console.print(f"  {name:24s} success {row['success']:.2f}  skipped {row['skipped']:.2f}  "
                      f"succeeded on the retry {row['success_on_retry']:.2f}")
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(summary, indent=1))
