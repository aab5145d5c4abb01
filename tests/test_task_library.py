"""The task library against real Meta-World v3: every subtask's goal rule reproduces ``_target_pos`` and its
success test agrees with ``info["success"]`` along Meta-World's own scripted policy; plus the schema's errors,
long-horizon orders and compound commands."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import mujoco
import numpy as np
import pytest
import yaml
from metaworld import policies

from legion_language.tasks import (DEFAULT_LIBRARY_PATH, TaskLibraryError, UnknownCommandError, library_from_dict,
                                 load_task_library)
from legion_sim.metaworld_env import MetaWorldTaskEnv

#: env_id -> Meta-World's scripted expert (obs39 -> action)
EXPERTS = {
    "reach-v3": policies.SawyerReachV3Policy, "push-v3": policies.SawyerPushV3Policy,
    "pick-place-v3": policies.SawyerPickPlaceV3Policy, "door-open-v3": policies.SawyerDoorOpenV3Policy,
    "faucet-open-v3": policies.SawyerFaucetOpenV3Policy, "drawer-close-v3": policies.SawyerDrawerCloseV3Policy,
    "button-press-topdown-v3": policies.SawyerButtonPressTopdownV3Policy,
    "peg-unplug-side-v3": policies.SawyerPegUnplugSideV3Policy,
    "window-open-v3": policies.SawyerWindowOpenV3Policy, "window-close-v3": policies.SawyerWindowCloseV3Policy,
}
SEEDS = range(5)
STEPS = 150


@pytest.fixture(scope="module")
def library():
    return load_task_library()


def test_the_library_holds_the_ten_subtasks(library):
    assert sorted(s.env_id for s in library.subtasks.values()) == sorted(EXPERTS)


@pytest.mark.parametrize("env_id", sorted(EXPERTS))
def test_goal_rule_and_success_test_reproduce_metaworld(env_id, library):
    subtask = library.by_env_id(env_id)
    env = MetaWorldTaskEnv(env_id, seed=0)
    mw = env.unwrapped_metaworld
    agree = total = successes = 0
    for seed in SEEDS:
        env.reset(seed=seed)
        mujoco.mj_forward(mw.model, mw.data)  # reset_model moves bodies without updating site positions
        obj0 = mw._get_pos_objects()[:3].copy()
        marker = subtask.goal_rule.goal_object
        goal = subtask.goal_rule.goal({subtask.object: obj0} | ({marker: mw._target_pos.copy()} if marker else {}))
        np.testing.assert_allclose(goal, mw._target_pos, atol=1e-6, err_msg=f"{env_id} seed {seed}")
        expert = EXPERTS[env_id]()
        obs39 = env.last_obs39
        for _ in range(STEPS):
            _, _, _, _, info = env.step(expert.get_action(obs39))
            obs39 = env.last_obs39
            passed = subtask.success.passed(mw.tcp_center, mw._get_pos_objects()[:3], mw._target_pos)
            agree += passed == info["success"]
            successes += info["success"]
            total += 1
    assert 0 < successes < total, f"{env_id}: the expert must cross the success boundary for the check to mean much"
    assert agree / total >= 0.99, f"{env_id}: library success test agrees at {agree}/{total} steps"


@pytest.mark.parametrize("env_id", ["push-v3", "pick-place-v3"])
def test_a_loose_objects_resting_height_is_where_metaworld_settles_it(env_id, library):
    """``object_rest_z_m`` (perception holds a puck read near it on the table) is the height Meta-World's puck rests
    at: after its reset drop, over 20 idle steps, at 5 placements."""
    rest = library.by_env_id(env_id).goal_rule.rest_z_m
    env = MetaWorldTaskEnv(env_id, seed=0)
    mw = env.unwrapped_metaworld
    for seed in SEEDS:
        env.reset(seed=seed)
        for _ in range(20):
            env.step(np.zeros(4, np.float32))
            assert abs(mw._get_pos_objects()[2] - rest) < 5e-4, (seed, mw._get_pos_objects())
    assert all(s.goal_rule.rest_z_m is None for s in library.subtasks.values()
               if s.env_id not in ("push-v3", "pick-place-v3")), "only the pucks lie loose on the table"


def _shipped() -> dict:
    return yaml.safe_load(DEFAULT_LIBRARY_PATH.read_text())


@pytest.mark.parametrize("edit, words", [
    (lambda d: d["subtasks"]["push"].pop("object"), ["'push'", "'object'"]),
    (lambda d: d["subtasks"]["reach"].pop("goal"), ["'reach'", "'goal'"]),
    (lambda d: d["subtasks"]["door-open"].pop("success"), ["'door-open'", "'success'"]),
    (lambda d: d["subtasks"]["peg-unplug-side"]["goal"].update(offset_m=[0.1, 0.0]), ["'peg-unplug-side'",
                                                                                     "goal.offset_m"]),
    (lambda d: d["subtasks"]["window-open"]["success"].update(measure="hand_to_goal"), ["'window-open'",
                                                                                       "hand_to_goal"]),
    (lambda d: d["subtasks"]["button-press-topdown"]["success"].update(threshold_m=-1), ["'button-press-topdown'",
                                                                                         "threshold_m"]),
    (lambda d: d["long_horizon"]["make the coffee"].update(order="sometimes"), ["'make the coffee'", "order"]),
    (lambda d: d["subtasks"]["push"].update(object_rest_z_m=-0.02), ["'push'", "object_rest_z_m"]),
])
def test_bad_or_missing_fields_name_the_subtask_and_field(edit, words):
    data = _shipped()
    edit(data)
    with pytest.raises(TaskLibraryError) as err:
        library_from_dict(data)
    for w in words:
        assert w in str(err.value)


def test_to_dict_round_trips_and_format_1_checkpoints_still_load(library):
    assert library_from_dict(library.to_dict()).to_dict() == library.to_dict()
    old = {"format_version": 1, "subtasks": {"reach": {"env_id": "reach-v3", "phrasings": ["reach the goal"]}},
           "long_horizon": {"go": {"subtasks": ["reach"], "phrasings": ["go"]}}}
    restored = library_from_dict(old)
    assert restored.subtasks["reach"].success == library.subtasks["reach"].success
    assert restored.plan("go").order == "chain"


def test_long_horizon_tasks(library):
    clean = library.plan("Clean up the table!")
    assert clean.order == "set" and sorted(s.env_id for s in clean.subtasks) == sorted(
        ["push-v3", "pick-place-v3", "drawer-close-v3", "button-press-topdown-v3", "peg-unplug-side-v3",
         "window-close-v3", "faucet-open-v3"])
    coffee = library.plan("brew the coffee")
    assert coffee.order == "chain"
    assert [s.env_id for s in coffee.subtasks] == ["faucet-open-v3", "pick-place-v3", "button-press-topdown-v3"]
    assert library.plan("reach the goal").order == "single"


def test_compound_commands_run_in_the_spoken_order(library):
    plan = library.plan("close the drawer then pick and place the puck and then press the button and open the door")
    assert plan.order == "spoken"
    assert [s.name for s in plan.subtasks] == ["drawer-close", "pick-place", "button-press-topdown", "door-open"]


@pytest.mark.parametrize("text, part", [("close the drawer and dance then press the button", "dance"),
                                        ("pick and place the pack then press the button", "pick and place the pack"),
                                        ("make me a sandwich", None)])
def test_unknown_commands_name_the_unknown_part(library, text, part):
    with pytest.raises(UnknownCommandError) as err:
        library.plan(text)
    assert err.value.text == text and err.value.part == part and err.value.known == library.phrasings()
    assert "close the drawer" in str(err.value)


def _library_with(tmp_path, subtask: str, phrase: str):
    """A copy of the shipped library file with ``phrase`` added to ``subtask``'s phrasings."""
    data = _shipped()
    data["subtasks"][subtask]["phrasings"].append(phrase)
    path = tmp_path / "library.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_grammars_follow_the_library_file(tmp_path):
    from typer.testing import CliRunner

    from legion_language.speech import PocketSphinxRecognizer, library_jsgf, read_wav, vosk_grammar
    from legion_runtime.cli import app

    wav = Path(__file__).parent / "data" / "tidy_the_desk.wav"  # a phrase the shipped library does not know
    assert "tidy the desk" not in load_task_library().phrasings()
    path = _library_with(tmp_path, "reach", "tidy the desk")
    library = load_task_library(path)
    assert "( tidy the desk )" in library_jsgf(library)
    assert json.loads(vosk_grammar(library.phrasings()))[-1] == "[unk]"
    assert "tidy the desk" in json.loads(vosk_grammar(library.phrasings()))
    for fmt in ("jsgf", "vosk"):
        out = tmp_path / f"grammar.{fmt}"
        result = CliRunner().invoke(app, ["grammar", "--format", fmt, "--library", str(path), "--out", str(out)])
        assert result.exit_code == 0, result.output
        assert "tidy the desk" in out.read_text()
    heard = PocketSphinxRecognizer.from_library(library).transcribe(read_wav(wav))
    assert heard.text == "tidy the desk"
    assert [s.name for s in library.plan(heard.text).subtasks] == ["reach"]


@pytest.mark.skipif(not (shutil.which("espeak-ng") and shutil.which("sox")), reason="needs espeak-ng and sox")
def test_a_spoken_compound_command_is_decoded_and_planned_in_order(tmp_path):
    from legion_language.speech import PocketSphinxRecognizer, read_wav

    phrase = "close the drawer then press the button"
    subprocess.run([sys.executable, str(Path(__file__).parents[1] / "scripts" / "make_command_wavs.py"),
                    "--out", str(tmp_path), "--phrase", phrase], check=True, capture_output=True)
    library = load_task_library()
    heard = PocketSphinxRecognizer.from_library(library).transcribe(read_wav(tmp_path / ("_".join(phrase.split())
                                                                                          + ".wav")))
    assert heard.text == phrase
    assert [s.name for s in library.plan(heard.text).subtasks] == ["drawer-close", "button-press-topdown"]
