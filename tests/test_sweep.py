"""`legion sweep`: (method, order, seed) runs in parallel on the local backend (a process pool, no network)."""
import json

from typer.testing import CliRunner

from legion_runtime.cli import app


def test_sweep_runs_every_combination_in_parallel(tmp_path):
    result = CliRunner().invoke(app, [
        "sweep", "--recipe", "paper", "--methods", "finetune", "--orders", "given,reverse", "--seeds", "0",
        "--tasks", "reach-v3,push-v3",
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


def _isolated_loopback_namespace() -> str | None:
    """Why a private network namespace with only loopback cannot be made here (None: it can)."""
    import shutil
    import subprocess

    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return "needs unshare (util-linux) and ip (iproute2)"
    probe = subprocess.run(["unshare", "-rn", "sh", "-c", "ip link set lo up"], capture_output=True, text=True)
    return None if probe.returncode == 0 else f"unprivileged network namespaces are not allowed: {probe.stderr.strip()}"


def test_sweep_on_a_local_ray_cluster(tmp_path):
    """The Ray backend end to end: a local Ray head, one Ray task per run. Ray's servers listen on every
    interface, so the sweep runs in a private network namespace whose only interface is loopback."""
    import subprocess
    import sys
    from pathlib import Path

    import pytest

    pytest.importorskip("ray", reason="Ray is the optional 'ray' extra")
    reason = _isolated_loopback_namespace()
    if reason:
        pytest.skip(reason)
    legion = str(Path(sys.executable).with_name("legion"))
    cmd = [legion, "sweep", "--recipe", "paper", "--backend", "ray", "--num-cpus", "2", "--methods", "finetune", "--orders", "given",
           "--seeds", "0,1", "--tasks", "reach-v3", "--steps-per-task", "150", "--eval-every", "150",
           "--eval-episodes", "1", "--random-steps", "100", "--hidden", "16", "--batch-size", "16", "--out", str(tmp_path)]
    script = "ip link set lo up && exec " + " ".join(cmd)
    result = subprocess.run(["unshare", "-rn", "sh", "-c", script], capture_output=True, text=True, timeout=600,
                            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(tmp_path), "RAY_USAGE_STATS_ENABLED": "0"})
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "sweep: 2 runs, backend ray" in result.stdout
    runs = {p.name: json.loads((p / "metrics.json").read_text()) for p in tmp_path.iterdir() if p.name.startswith("finetune")}
    assert set(runs) == {"finetune-given-s0", "finetune-given-s1"}
    assert [r["seed"] for r in (runs["finetune-given-s0"], runs["finetune-given-s1"])] == [0, 1]
