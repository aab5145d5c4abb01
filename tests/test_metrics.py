"""The paper's lifelong metrics (eqs. 1-4) on hand-made evaluation curves with known answers."""
import numpy as np
import pytest

from legion_policy import metrics as lm

TASKS = ["a", "b", "c"]
D = 100  # steps per visit


def curve_from(points):
    """points: {step: (P_a, P_b, P_c)} -> the trainer's curve format."""
    return [{"step": s, "success": dict(zip(TASKS, p))} for s, p in sorted(points.items())]


# evaluations every 50 steps; end of visit i at 100 i
CURVE = curve_from({50: (0.5, 0.0, 0.0), 100: (1.0, 0.2, 0.0),
                    150: (0.8, 0.6, 0.0), 200: (0.6, 1.0, 0.4),
                    250: (0.4, 0.8, 0.6), 300: (0.4, 0.6, 0.8)})


def test_average_success_eq1():
    assert lm.average_success(CURVE, TASKS)[1] == (100, pytest.approx(0.4))


def test_success_matrix_has_the_table1_layout():
    m = lm.success_matrix(CURVE, TASKS, TASKS, D)
    np.testing.assert_allclose(m, [[1.0, 0.6, 0.4], [0.2, 1.0, 0.6], [0.0, 0.4, 0.8]])


def test_forgetting_eq2():
    f = lm.forgetting(CURVE, TASKS, D)
    assert f == {"a": pytest.approx(0.6), "b": pytest.approx(0.4)}  # last task excluded


def test_forward_transfer_eq3_as_printed():
    # FT_2 = P_a(100) = 1.0; FT_3 = mean(P_a(100), P_b(200)) = 1.0
    assert lm.forward_transfer_printed(CURVE, TASKS, D) == pytest.approx(1.0)
    assert lm.forward_transfer_printed(CURVE[:2], ["a"], D) is None


def test_visit_auc_trapezoid_from_the_previous_evaluation():
    # task b during visit 2 (steps 100..200): points (100, .2) (150, .6) (200, 1.0) -> mean 0.6
    assert lm.visit_auc(CURVE, "b", 1, D) == pytest.approx(0.6)
    # task a during visit 1 starts from 0 success: (0,0) (50,.5) (100,1) -> 0.5
    assert lm.visit_auc(CURVE, "a", 0, D) == pytest.approx(0.5)


def test_forward_transfer_continual_world_form():
    ft = lm.forward_transfer_cw(CURVE, TASKS, D, {"b": 0.2, "c": 1.0})
    assert ft == {"b": pytest.approx((0.6 - 0.2) / 0.8), "c": 0.0}


def test_few_shot_improvement_eq4():
    visits = ["a", "b", "a"]
    # a: visit 0 mean 0.5; visit 2 (200..300): (200,.6) (250,.4) (300,.4) -> 0.45
    few = lm.few_shot_improvement(CURVE, visits, D)
    assert few == {"a": {"loop1->loop2": pytest.approx(-0.05)}}


def test_summarise_partial_and_looped_runs():
    s = lm.summarise(CURVE[:3], TASKS, TASKS, D)  # killed during visit 2
    assert s["visits_completed"] == 1 and s["success_matrix"]["columns_trained_after"] == ["a"]
    looped = lm.summarise(CURVE, TASKS, ["a", "b", "a"], D)
    assert "forgetting" not in looped and looped["mean_few_shot_improvement"] == {"loop1->loop2": pytest.approx(-0.05)}
    with pytest.raises(KeyError, match="no evaluation at step 400"):
        lm.success_at(CURVE, 400)
