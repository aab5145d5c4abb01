"""`legion report` figures on a real one-task run: at least MIN_PX pixels, nothing cut off, the slow step announced."""
import matplotlib

matplotlib.use("Agg")
import pytest
import torch
from matplotlib.figure import Figure
from PIL import Image

from legion_policy.agent import AgentConfig
from legion_policy.trainer import TrainConfig, train
from legion_runtime.report import draw_figures, load_run

torch.set_num_threads(1)
MIN_PX = (640, 480)  # the minimum, written out (not read from report.py)


@pytest.fixture(scope="module")
def one_task_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "run"
    train(TrainConfig(tasks=["reach-v3"], steps_per_task=300, eval_every=150, eval_episodes=1, random_steps=100,
                      dpmm_first=150, dpmm_samples=200, encoder_every=10, log_every=100, seed=0, out=str(out),
                      agent=AgentConfig(hidden=16, batch_size=16)))
    return load_run(out)


def outside(fig):
    """Texts and axes decorations (titles, labels, tick labels, legends) that reach outside the figure."""
    renderer = fig.canvas.get_renderer()
    width, height = fig.bbox.width, fig.bbox.height
    boxes = [(f"axes {ax.get_title()!r}", ax.get_tightbbox(renderer)) for ax in fig.axes]
    boxes += [(f"text {t.get_text()!r}", t.get_window_extent(renderer)) for t in fig.texts if t.get_text()]
    boxes += [("legend", leg.get_window_extent(renderer)) for leg in fig.legends]
    return [(name, box) for name, box in boxes
            if box.x0 < -1 or box.y0 < -1 or box.x1 > width + 1 or box.y1 > height + 1]


@pytest.fixture
def checked_savefig(monkeypatch):
    """Figure.savefig that first draws the figure and records what lies outside it."""
    cut, save = {}, Figure.savefig

    def savefig(fig, path, *args, **kwargs):
        fig.canvas.draw()
        cut[str(path)] = outside(fig)
        return save(fig, path, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", savefig)
    return cut


def test_figures_are_large_enough_and_nothing_is_cut(one_task_run, checked_savefig, tmp_path, capsys):
    paths = draw_figures([one_task_run], tmp_path / "fig")
    assert sorted(p.name for p in paths) == ["average_success.png", "success_matrix_0_legion_s0.png",
                                             "tsne_0_legion_s0.png"]
    assert len(checked_savefig) == len(paths)
    problems = [f"{p.name}: {Image.open(p).size} px" for p in paths
                if Image.open(p).size[0] < MIN_PX[0] or Image.open(p).size[1] < MIN_PX[1]]
    problems += [f"{path}: {name} cut off at {box}" for path, cut in checked_savefig.items() for name, box in cut]
    assert not problems, "\n".join(problems)
    assert "t-SNE 1/1: 300 latents after visit 1 of" in capsys.readouterr().out  # the slow step says what it does
    messages = []
    draw_figures([one_task_run], tmp_path / "fig2", log=messages.append)
    assert messages and all("t-SNE" in m or "done in" in m for m in messages), messages


def test_many_tasks_and_long_names_fit(checked_savefig, tmp_path):
    """A 10-task stream in 2 loops: the success matrix grows with it and keeps every label inside."""
    tasks = ["reach-v3", "push-v3", "pick-place-v3", "door-open-v3", "faucet-open-v3", "drawer-close-v3",
             "button-press-topdown-v3", "peg-unplug-side-v3", "window-open-v3", "window-close-v3"]
    visits = tasks * 2
    run = {"method": "perfect-memory", "seed": 12, "tasks": tasks, "visits": visits, "curve": [], "path": str(tmp_path),
           "success_matrix": {"columns_trained_after": visits, "rows_evaluated_task": tasks,
                              "values": [[(r + c) % 11 / 10 for c in range(20)] for r in range(10)]}}
    paths = draw_figures([run], tmp_path / "fig")
    sizes = {p.name: Image.open(p).size for p in paths}
    assert sizes["success_matrix_0_perfect-memory_s12.png"][0] > 1200  # grows with the visits
    assert all(not cut for cut in checked_savefig.values()), checked_savefig
