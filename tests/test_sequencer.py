"""The task sequencer on the shipped task library: success judged from perceived positions with the library's
success tests, one retry, chain stop, set orders (library, seeded random), spoken order, skips, the report."""
from __future__ import annotations

import random

import numpy as np
import pytest

from legion_language.sequencer import CHAIN_FAILED, TaskSequencer
from legion_language.tasks import UnknownCommandError, load_task_library

GOAL = np.array([0.0, 0.7, 0.1])
FAR = GOAL + [0.3, -0.3, 0.3]  # 30 cm from the goal along every axis: no success test of the library passes


@pytest.fixture(scope="module")
def library():
    return load_task_library()


def at_goal(sequencer: TaskSequencer) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(tcp, obj, goal) that pass the running subtask's success test and only just (1 mm inside)."""
    test = sequencer.current_subtask().success
    offset = np.zeros(3)
    offset[{"object_to_goal_x": 0, "object_to_goal_y": 1}.get(test.measure, 2)] = test.threshold_m - 0.001
    point = GOAL + offset
    if test.uses_object:
        return FAR, point - test.object_offset_m, GOAL
    return point, FAR, GOAL


def fail_attempt(sequencer: TaskSequencer) -> None:
    for _ in range(sequencer.max_steps):
        sequencer.step(FAR, FAR, GOAL)


def names(sequencer: TaskSequencer) -> list[str]:
    return [s["subtask"] for s in sequencer.report()["subtasks"]]


def test_success_is_judged_from_the_perceived_positions_with_the_library_test(library):
    seq = TaskSequencer(library, max_steps=5)
    seq.command("close the drawer")  # object_to_goal <= 0.065 m
    assert not seq.step(GOAL, GOAL + [0, 0, 0.066], GOAL), "the hand at the goal does not close the drawer"
    assert not seq.step(FAR, None, GOAL), "an object not seen cannot pass an object test"
    assert seq.step(FAR, GOAL + [0, 0, 0.064], GOAL)
    report = seq.report()
    assert report["done"] and report["success"] and report["attempts"] == [
        {"subtask": "drawer-close", "attempt": 1, "steps": 3, "success": True, "skipped": None, "why": "success"}]
    seq.command("reach the goal")  # tcp_to_goal <= 0.05 m: the object does not matter
    assert seq.step(GOAL + [0.0, 0.049, 0.0], None, GOAL)


def test_each_subtask_passes_exactly_at_its_own_threshold(library):
    seq = TaskSequencer(library, max_steps=1, retries=0)
    seq.command("clean the table")
    while seq.current_subtask() is not None:
        seq.step(*at_goal(seq))
    assert seq.report()["success"] and [a["steps"] for a in seq.report()["attempts"]] == [1] * 7


def test_confirm_steps_needs_that_many_passing_steps_in_a_row(library):
    sequencer = TaskSequencer(library, confirm_steps=3)
    sequencer.command("close the drawer then press the button")
    passing = at_goal(sequencer)
    assert not sequencer.step(*passing) and not sequencer.step(*passing)
    assert not sequencer.step(FAR, FAR, GOAL)  # a failing step starts the count again
    assert not sequencer.step(*passing) and not sequencer.step(*passing)
    assert sequencer.step(*passing)  # the third in a row
    first = sequencer.attempts[0]
    assert first.success and first.steps == 6
    with pytest.raises(ValueError, match="confirm_steps >= 1"):
        TaskSequencer(library, confirm_steps=0)


def test_the_report_lists_every_planned_subtask_from_the_start(library):
    seq = TaskSequencer(library)
    seq.command("make the coffee")
    report = seq.report()
    assert names(seq) == ["faucet-open", "pick-place", "button-press-topdown"]
    assert not report["done"] and not report["success"] and [s["attempts"] for s in report["subtasks"]] == [1, 0, 0]


def test_a_failed_attempt_is_retried_once_then_the_sequencer_moves_on(library):
    seq = TaskSequencer(library, max_steps=4, retries=1, order="spoken")
    seq.command("press the button then open the door")
    fail_attempt(seq)
    assert seq.current() == "press the button" and seq.attempts[-1].attempt == 2
    fail_attempt(seq)
    assert seq.current() == "open the door", "after one retry the sequencer moves on"
    seq.step(*at_goal(seq))
    report = seq.report()
    assert [(a["subtask"], a["attempt"], a["steps"], a["success"]) for a in report["attempts"]] == [
        ("button-press-topdown", 1, 4, False), ("button-press-topdown", 2, 4, False), ("door-open", 1, 1, True)]
    assert [(s["subtask"], s["success"], s["attempts"]) for s in report["subtasks"]] == [
        ("button-press-topdown", False, 2), ("door-open", True, 1)]
    assert report["done"] and not report["success"]


def test_a_failed_subtask_stops_a_chain(library):
    seq = TaskSequencer(library, max_steps=3, retries=1)
    assert seq.command("make the coffee") == "open the faucet"
    seq.step(*at_goal(seq))
    fail_attempt(seq)
    fail_attempt(seq)  # pick-place fails twice
    assert seq.current() == "" and seq.status()["state"] == "done"
    report = seq.report()
    assert report["order"] == "chain" and not report["success"]
    assert [(s["subtask"], s["success"], s["skipped"]) for s in report["subtasks"]] == [
        ("faucet-open", True, None), ("pick-place", False, None), ("button-press-topdown", False, CHAIN_FAILED)]


def test_a_failed_subtask_does_not_stop_a_set(library):
    seq = TaskSequencer(library, max_steps=2, retries=0)
    seq.command("clean the table")
    fail_attempt(seq)
    while seq.current_subtask() is not None:
        seq.step(*at_goal(seq))
    assert [s["success"] for s in seq.report()["subtasks"]] == [False] + [True] * 6


def test_random_order_shuffles_a_set_reproducibly_and_never_a_chain(library):
    set_names = [s.name for s in library.plan("clean the table").subtasks]
    orders = []
    for seed in (0, 0, 1):
        seq = TaskSequencer(library, order="random", rng=random.Random(seed))
        seq.command("clean the table")
        orders.append(names(seq))
        assert seq.report()["order"] == "random"
    assert sorted(orders[0]) == sorted(set_names), "a permutation of the set"
    assert orders[0] == orders[1] and orders[0] != orders[2] and orders[0] != set_names
    seq = TaskSequencer(library, order="random", rng=random.Random(0))
    seq.command("make the coffee")
    assert seq.queue == list(library.plan("make the coffee").subtasks) and seq.report()["order"] == "chain"
    assert "chain" in seq.status()["note"]
    seq = TaskSequencer(library, order="library")
    seq.command("clean the table")
    assert [s.name for s in seq.queue] == set_names


def test_spoken_order_follows_the_utterance_library_order_does_not(library):
    text = "press the button and then close the drawer"
    spoken = TaskSequencer(library, order="spoken")
    assert spoken.command(text) == "press the button"
    assert [s.name for s in spoken.queue] == ["button-press-topdown", "drawer-close"]
    assert spoken.report()["order"] == "spoken"
    listed = TaskSequencer(library, order="library")
    assert listed.command(text) == "close the drawer", "the library lists drawer-close first"
    assert spoken.command("clean the table") == "push the puck"  # not a compound: library order


def test_skip_records_the_reason_without_attempting_and_moves_on(library):
    seq = TaskSequencer(library, max_steps=3, retries=1)
    seq.command("unplug the peg then close the window")
    assert seq.skip("'peg' is not detected")
    assert seq.current() == "close the window"
    seq.step(*at_goal(seq))
    assert not seq.skip("nothing left"), "nothing to skip once done"
    report = seq.report()
    assert report["attempts"][0] == {"subtask": "peg-unplug-side", "attempt": 1, "steps": 0, "success": False,
                                     "skipped": "'peg' is not detected", "why": ""}
    assert len(report["attempts"]) == 2, "a skipped subtask is not retried"
    assert not report["success"]


def test_a_skipped_chain_subtask_stops_the_chain(library):
    seq = TaskSequencer(library)
    seq.command("make the coffee")
    seq.skip("'faucet_handle' is not detected")
    assert [s["skipped"] for s in seq.report()["subtasks"]] == ["'faucet_handle' is not detected",
                                                                CHAIN_FAILED, CHAIN_FAILED]


def test_unknown_commands_and_bad_settings(library):
    seq = TaskSequencer(library)
    with pytest.raises(UnknownCommandError, match="make me a sandwich"):
        seq.command("make me a sandwich")
    assert seq.status()["state"] == "idle" and not seq.step(FAR, FAR, GOAL)
    with pytest.raises(ValueError, match="order"):
        TaskSequencer(library, order="alphabetical")
    with pytest.raises(ValueError, match="max_steps"):
        TaskSequencer(library, max_steps=0)


def test_an_attempt_whose_time_ran_out_ends_failed_with_the_reason_and_the_status_says_why():
    """Issue 16.4: the node counts steps on observations only, so a subtask whose observations stopped never ended.
    expire() ends it; the final status says success or failure and why, per subtask."""
    seq = TaskSequencer(load_task_library(), max_steps=3, retries=1)
    seq.command("reach the goal then close the drawer")
    assert seq.expire("time limit 8.2 s: 40 of 150 steps observed")
    assert seq.current() == "reach the goal", "an expired attempt is retried like a failed one"
    for _ in range(3):
        seq.step(FAR, None, GOAL)
    seq.step(*at_goal(seq))
    status = seq.status()
    assert status["state"] == "done" and status["success"] is False
    assert [(s["subtask"], s["success"], s["why"]) for s in status["subtasks"]] == [
        ("reach", False, "max_steps"), ("drawer-close", True, "success")]
    assert status["attempts"][0]["why"] == "time limit 8.2 s: 40 of 150 steps observed"
    assert not seq.expire("nothing runs"), "nothing to expire once done"


def test_with_a_matcher_a_command_in_ones_own_words_runs_and_the_status_says_what_it_understood(library):
    """The matcher is built at the first command that is no library phrasing (the language model loads then), never
    for a library phrasing; a refused command starts nothing and keeps the running one's state."""
    from legion_language.embedding import TextEmbedder
    from legion_language.matching import CommandMatcher, NotUnderstoodError

    built = []

    def make():
        built.append(CommandMatcher(library, TextEmbedder().embed))
        return built[-1]

    seq = TaskSequencer(library, max_steps=3, order="spoken", matcher=make)
    assert seq.command("reach the goal") == "reach the goal" and built == [] and "understood" not in seq.status()
    assert seq.command("shut the drawer please then get to the goal") == "close the drawer"
    assert [(u["meaning"], u["score"] >= 0.82) for u in seq.status()["understood"]] == \
        [("drawer-close", True), ("reach", True)]
    assert [s.name for s in seq.queue] == ["drawer-close", "reach"] and len(built) == 1
    with pytest.raises(NotUnderstoodError, match="closest known commands"):
        seq.command("turn off the tap")
    assert seq.current() == "close the drawer", "a refused command leaves the running one as it was"
    with pytest.raises(UnknownCommandError):
        TaskSequencer(library).command("get to the goal")  # without a matcher: library phrasings only
