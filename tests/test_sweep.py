"""`legion sweep`: (method, order, seed) runs in parallel on the local backend (a process pool, no network)."""
import json

from typer.testing import CliRunner

from legion_runtime.cli import app


def test_sweep_runs_every_combination_in_parallel(tmp_path):
    result = CliRunner().invoke(app, [
        "sweep", "--methods", "finetune", "--orders", "given,reverse", "--seeds", "0", "--tasks", "reach-v3,push-v3",
        "--steps-per-task", "150", "--eval-every", "150", "--eval-episodes", "1", "--random-steps", "100",
        "--hidden", "16", "--batch-size", "16", "--num-cpus", "2", "--out", str(tmp_path)])
    assert result.exit_code == 0, repr(result.exception)
    assert "sweep: 2 runs, backend local" in result.output
    runs = {p.name: json.loads((p / "metrics.json").read_text()) for p in tmp_path.iterdir()}
    assert set(runs) == {"finetune-given-s0", "finetune-reverse-s0"}
    assert runs["finetune-given-s0"]["visits"] == ["reach-v3", "push-v3"]
    assert runs["finetune-reverse-s0"]["visits"] == ["push-v3", "reach-v3"]
    assert all(r["visits_completed"] == 2 for r in runs.values())


def test_sweep_refuses_an_invalid_combination_before_starting(tmp_path):
    result = CliRunner().invoke(app, ["sweep", "--orders", "sideways", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "order must be one of" in result.output
    assert not any(tmp_path.iterdir())
