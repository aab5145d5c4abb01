"""The phrasing -> knowledge-space component table (legion knowledge-table) on a shipped checkpoint: real encoder,
real DPMM, real language model, real Meta-World start states."""
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from legion_policy.checkpoint import LegionPolicy
from legion_language.embedding import TextEmbedder
from legion_runtime.cli import app
from legion_runtime.knowledge_table import phrasing_table, start_states, summary

ROOT = Path(__file__).resolve().parents[1]
STREAM = ROOT / "models" / "stream10" / "legion"  # 10 tasks, 3 phrasings each


@pytest.fixture(scope="module")
def rows():
    return phrasing_table(STREAM, states=4)


def test_every_phrasing_of_every_trained_task_gets_a_row(rows):
    manifest = json.loads((STREAM / "checkpoint" / "manifest.json").read_text())
    trained = manifest["provenance"]["tasks_trained"]
    assert [r.task for r in rows][::3] == trained and len(rows) == 3 * len(trained)
    assert all(0 < r.share <= 1 for r in rows)
    for k in range(0, len(rows), 3):  # the description's own row always agrees with itself
        assert rows[k].as_description
    counts = summary(rows)
    assert counts["tasks"] == 10 and counts["phrasings"] == 30
    assert counts["phrasings_on_own_component"] <= counts["phrasings_as_description"] <= 30
    for r in rows:  # own: as the description, and no other task's description on that component
        assert r.own == (r.as_description and not r.shared_with)


def test_the_component_is_the_one_the_deployed_policy_reports(rows):
    """Cross-check against LegionPolicy.act, the policy node's path: same states, same phrasing, same component."""
    policy = LegionPolicy.load(STREAM)
    embedder = TextEmbedder()
    row = next(r for r in rows if r.share == 1.0)
    task_index = json.loads((STREAM / "checkpoint" / "manifest.json").read_text())["provenance"]["tasks_trained"]
    obs = start_states(row.task, 4, 9000 + 100 * task_index.index(row.task))
    e = embedder.embed(row.phrasing)
    assert {policy.act(o, e)[1] for o in obs} == {row.component}


def test_the_command_prints_the_table_and_writes_json(tmp_path):
    out = tmp_path / "table.json"
    result = CliRunner().invoke(app, ["knowledge-table", str(ROOT / "models" / "legion-reach-drawer"), "--states", "2",
                                      "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "reach the goal" in result.output and "phrasings as description" in result.output
    data = json.loads(out.read_text())
    assert data["summary"]["tasks"] == 2 and len(data["rows"]) == data["summary"]["phrasings"]
    bad = CliRunner().invoke(app, ["knowledge-table", str(tmp_path), "--states", "2"])
    assert bad.exit_code != 0 and "checkpoint" in bad.output.lower()
    assert np.isfinite(data["rows"][0]["share"])


def test_a_refit_with_legions_prior_gives_every_task_its_own_component():
    """--refit-sF 1e-4 on the run's last latents: each task's phrasings all select one component of its own."""
    rows = phrasing_table(STREAM, states=2, refit_sF=1e-4)
    counts = summary(rows)
    assert counts["distinct_task_components"] == counts["tasks"] == 10
    assert counts["phrasings_on_own_component"] == counts["phrasings"] == 30
    with pytest.raises(ValueError, match="no latents"):
        phrasing_table(ROOT / "models" / "legion-reach-drawer", states=1, refit_sF=1e-4)
