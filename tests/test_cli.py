"""The `legion` command as a newcomer meets it: help that reads, answers without loading torch, and a command list
that says what each phrase is and where it is documented (issue 15, items 8 and 10)."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "models" / "legion-reach-drawer"
CHECKPOINTS = sorted(ROOT.glob("models/*/checkpoint"))

# Runs `legion ARGS` in a fresh interpreter (as the console script does), then prints which heavy modules it loaded.
PROBE = """
import sys
from legion_runtime.cli import app
try:
    app(sys.argv[1:], prog_name="legion")
except SystemExit as exc:
    code = exc.code
import json
print("HEAVY", json.dumps(sorted(m for m in ("torch", "mujoco", "transformers", "metaworld") if m in sys.modules)))
print("EXIT", code)
"""


def legion_fresh(*args: str, columns: int = 80) -> tuple[str, list[str], int]:
    """(output, heavy modules imported, exit status) of `legion ARGS` in a new Python process."""
    proc = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=120,
                          cwd=ROOT, env={"PATH": "/usr/bin:/bin", "COLUMNS": str(columns), "HOME": "/tmp"})
    lines = proc.stdout.splitlines()
    heavy = json.loads(lines[-2].removeprefix("HEAVY "))
    return "\n".join(lines[:-2]) + proc.stderr, heavy, int(lines[-1].removeprefix("EXIT "))


@pytest.mark.parametrize("args", [
    ["--help"], ["train", "--help"], ["run", "--help"], ["commands"],
    ["run", "--checkpoint", str(SHIPPED)],  # neither --wav nor --text
    ["run", "--text", "clean the table", "--checkpoint", str(SHIPPED)],  # skills the checkpoint lacks
    ["run", "--text", "reach the goal", "--checkpoint", "no/such/checkpoint"],
])
def test_help_commands_and_input_errors_do_not_load_torch_or_mujoco(args):
    """`legion --help` took 3.2 s and every error path 3-5 s, 1.25 s of it importing torch through cli.py's top-level
    import of the trainer. The times are in benchmarks/bench_cli.py; here: none of the heavy modules is loaded."""
    output, heavy, code = legion_fresh(*args)
    assert heavy == [], f"legion {' '.join(args)} imported {heavy}"
    assert code in (0, 2, 3), output
    assert "Traceback" not in output


def test_an_unknown_command_loads_only_the_language_model_and_is_refused():
    """A command that is no library phrasing is matched in the language model's embedding space (transformers, torch),
    and refused with the closest known commands before the policy, the simulator or Meta-World are loaded."""
    output, heavy, code = legion_fresh("run", "--text", "wash the dishes", "--checkpoint", str(SHIPPED))
    assert code in (2, 3) and "not understood 'wash the dishes'" in output and "nothing moves" in output, output
    assert "mujoco" not in heavy and "metaworld" not in heavy and "Traceback" not in output


def test_help_shows_no_type_placeholders_and_whole_option_names_at_80_columns():
    """`--help` showed `--help <bool>`; `legion train --help` cut option names at 80 columns."""
    output, _, code = legion_fresh("--help")
    assert code == 0 and "<bool>" not in output and "--help" in output
    output, _, code = legion_fresh("train", "--help")
    assert code == 0
    from legion_runtime.train_command import train

    import inspect

    for name in inspect.signature(train).parameters:
        option = "--" + name.replace("_", "-")
        assert re.search(rf"(^|\s){re.escape(option)}(\s|$|/)", output, re.M), f"{option} missing or cut"
    assert all(len(line) <= 80 for line in output.splitlines()), "help wider than the terminal"


def test_commands_marks_long_horizon_tasks_and_the_skills_a_checkpoint_lacks():
    output, _, code = legion_fresh("commands", "--checkpoint", str(SHIPPED), columns=200)
    assert code == 0, output
    subtasks, long_horizon, lacking = re.split(r"\n(?=Long-horizon tasks)", output.split("Subtasks", 1)[1])
    assert "reach the goal" in subtasks and "close the drawer" in subtasks and "tidy the desk" not in subtasks
    assert "tidy the desk: chain of drawer-close, reach" in long_horizon
    assert "clean the table: needs push, pick-place" in lacking and "models/legion-table-kuka/checkpoint" in lacking
    assert "make the coffee: needs faucet-open, pick-place, button-press-topdown" in lacking


@pytest.mark.parametrize("checkpoint", CHECKPOINTS, ids=[c.parent.name for c in CHECKPOINTS])
def test_every_phrase_a_shipped_checkpoint_accepts_is_documented(checkpoint):
    """`legion commands` listed "tidy the desk", which no document mentioned."""
    from legion_runtime.commands import read_task_library

    docs = " ".join((ROOT / "README.md").read_text().split() +
                    [w for page in sorted((ROOT / "docs").glob("*.md")) for w in page.read_text().split()])
    docs = docs.replace("*", "").lower()
    library = read_task_library(checkpoint)
    undocumented = [p for p in library.phrasings() if p not in docs]
    # every subtask is documented by one phrasing at least, every long-horizon task by each of its phrasings
    by_subtask = {st.name: [p for p in st.phrasings if p in docs] for st in library.subtasks.values()}
    assert all(by_subtask.values()), f"subtasks of {checkpoint} with no documented phrasing: {by_subtask}"
    long_horizon = [p for t in library.long_horizon.values() for p in t.phrasings]
    assert not [p for p in long_horizon if p in undocumented], f"undocumented long-horizon commands: {undocumented}"
