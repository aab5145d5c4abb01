"""Knowledge space (DPMM, memoized VB with birth/merge) on synthetic latents with known clusters."""
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.numpy import load as st_load
from safetensors.numpy import save as st_save
from sklearn.metrics import adjusted_rand_score

from legion_policy.knowledge_space import FitReport, KnowledgeSpace


def blobs(rng, n_clusters, dim, n_per, spread=1.0, std=0.1):
    """Gaussian clusters: means ~ N(0, spread^2 I), isotropic within-cluster std. Returns z, labels, means."""
    means = rng.normal(0.0, spread, (n_clusters, dim))
    labels = np.repeat(np.arange(n_clusters), n_per)
    return means[labels] + std * rng.normal(size=(len(labels), dim)), labels, means


def assert_non_decreasing(history):
    h = np.asarray(history)
    assert np.all(np.diff(h) >= -1e-9 * np.abs(h[1:])), np.diff(h).min()


def test_components_grow_as_tasks_arrive_and_earlier_ones_survive():
    rng = np.random.default_rng(0)
    z, labels, means = blobs(rng, 4, 10, 300)
    ks = KnowledgeSpace(10)
    assert not ks.fitted and ks.K == 0
    for task in range(4):  # lifelong stream: each fit sees only the newest task's latents
        n_hist = len(ks.elbo_history)
        report = ks.fit(z[labels == task])
        assert isinstance(report, FitReport) and report.K == ks.K == task + 1
        assert_non_decreasing(ks.elbo_history[n_hist:])
    # every earlier task still maps to its own component, whose mean is still where that task was
    assigned = [np.bincount(ks.predict(z[labels == t]), minlength=ks.K) for t in range(4)]
    owners = [int(np.argmax(a)) for a in assigned]
    assert sorted(owners) == [0, 1, 2, 3]
    assert all(a.max() == 300 for a in assigned)
    np.testing.assert_allclose(ks.means[owners], means, atol=0.03)


def test_two_tasks_from_one_gaussian_end_as_one_component():
    rng = np.random.default_rng(1)
    ks = KnowledgeSpace(10)
    for _ in range(2):
        ks.fit(0.5 + 0.2 * rng.normal(size=(1500, 10)))
    assert ks.K == 1
    np.testing.assert_allclose(ks.means[0], 0.5, atol=0.03)


def test_merge_moves_undo_over_segmentation():
    rng = np.random.default_rng(2)
    z = 0.2 * rng.normal(size=(2000, 10))
    ks = KnowledgeSpace(10, k_init=4, births=False)
    report = ks.fit(z)
    assert (report.K, report.n_merges) == (1, 3)
    assert_non_decreasing(ks.elbo_history)


@pytest.mark.parametrize("dim, n_per", [(10, 300), (768, 40)])
def test_recovers_well_separated_clusters_from_one_component(dim, n_per):
    rng = np.random.default_rng(3)
    z, labels, _ = blobs(rng, 10, dim, n_per)
    ks = KnowledgeSpace(dim)  # K_init = 1: every other component comes from birth moves
    report = ks.fit(z)
    assert report.K == 10 and report.n_births >= 1
    assert adjusted_rand_score(labels, ks.predict(z)) >= 0.99
    r = ks.responsibilities(z)
    assert r.shape == (len(z), 10) and r.dtype == np.float64
    np.testing.assert_allclose(r.sum(1), 1.0, rtol=1e-12)


def test_delete_move_removes_redundant_components():
    rng = np.random.default_rng(9)
    z, labels, _ = blobs(rng, 3, 10, 400)
    # 8 k-means++ seeds on 3 clusters; births and merges off, so only deletes (or slow ascent) can shrink K
    with_delete = KnowledgeSpace(10, k_init=8, births=False, merges=False, deletes=True, n_laps=2)
    report = with_delete.fit(z)
    assert (report.K, report.n_deletes) == (3, 2) and adjusted_rand_score(labels, with_delete.predict(z)) == 1.0
    assert_non_decreasing(with_delete.elbo_history)
    without = KnowledgeSpace(10, k_init=8, births=False, merges=False, n_laps=2).fit(z)
    assert without.K == 8 and without.elbo < report.elbo  # two laps of plain ascent leave 8 occupied components
    # emptied components are dropped at the end of a fit, so K counts only components with data
    assert KnowledgeSpace(10, k_init=8, births=False, merges=False, n_laps=10).fit(z).K == 3


def test_delete_never_removes_components_of_earlier_tasks():
    rng = np.random.default_rng(10)
    z, labels, means = blobs(rng, 3, 10, 300)
    ks = KnowledgeSpace(10, deletes=True)
    for task in range(3):
        ks.fit(z[labels == task])
    ks.fit(z[labels == 2][:50])  # a later fit that sees only a little of the newest task
    assert ks.K == 3
    owners = [np.bincount(ks.predict(z[labels == t]), minlength=3).argmax() for t in range(3)]
    np.testing.assert_allclose(ks.means[owners], means, atol=0.03)


def test_elbo_never_decreases_in_fixed_k_coordinate_ascent():
    rng = np.random.default_rng(4)
    z, _, _ = blobs(rng, 5, 10, 200, spread=0.3, std=0.15)  # overlapping: ascent has work to do
    ks = KnowledgeSpace(10, k_init=5, births=False, merges=False, n_laps=8)
    report = ks.fit(z)
    assert report.K == 5 and report.n_births == report.n_merges == 0
    assert len(ks.elbo_history) == 1 + report.laps * 5  # init + one entry per batch visit
    assert ks.elbo_history[-1] > ks.elbo_history[0]
    assert_non_decreasing(ks.elbo_history)


def test_agrees_with_sklearn_dirichlet_process_mixture():
    from sklearn.mixture import BayesianGaussianMixture

    rng = np.random.default_rng(5)
    z, labels, _ = blobs(rng, 6, 10, 250, spread=0.6, std=0.15)
    ks = KnowledgeSpace(10)
    ours = ks.fit(z)
    oracle = BayesianGaussianMixture(n_components=15, covariance_type="diag",
                                     weight_concentration_prior_type="dirichlet_process",
                                     weight_concentration_prior=5.0, max_iter=500, n_init=2,
                                     random_state=0).fit(z)
    sk_labels = oracle.predict(z)
    assert ours.K == len(np.unique(sk_labels)) == 6
    assert adjusted_rand_score(sk_labels, ks.predict(z)) >= 0.99
    assert adjusted_rand_score(labels, ks.predict(z)) >= adjusted_rand_score(labels, sk_labels) - 0.01
    # matched component means agree
    match = [np.bincount(sk_labels[ks.predict(z) == k]).argmax() for k in range(ks.K)]
    np.testing.assert_allclose(ks.means, oracle.means_[match], atol=0.02)


def test_posterior_summaries():
    rng = np.random.default_rng(6)
    z = np.concatenate([1.0 + 0.2 * rng.normal(size=(2000, 10)), -1.0 + 0.2 * rng.normal(size=(1000, 10))])
    ks = KnowledgeSpace(10)
    ks.fit(z)
    assert ks.K == 2 and ks.means.shape == ks.variances.shape == (2, 10)
    np.testing.assert_allclose(np.sort(ks.means.mean(1)), [-1.0, 1.0], atol=0.02)
    np.testing.assert_allclose(ks.variances, 0.04, rtol=0.1)  # true within-cluster variance 0.2^2
    w = ks.weights
    assert w.shape == (2,) and np.all(w > 0) and w.sum() < 1.0
    np.testing.assert_allclose(np.sort(w) / w.sum(), [1 / 3, 2 / 3], atol=0.01)
    assert ks.predict(z).dtype == np.int64


def test_state_dict_round_trip_through_safetensors_is_exact():
    rng = np.random.default_rng(7)
    z, labels, _ = blobs(rng, 3, 10, 200)
    ks = KnowledgeSpace(10, gamma0=3.0, sF=0.05, n_batches=4, n_laps=6, seed=11)
    ks.fit(z[labels < 2])
    state = ks.state_dict()
    assert all(isinstance(v, np.ndarray) for v in state.values())
    restored = KnowledgeSpace.from_state_dict(st_load(st_save(state)))
    np.testing.assert_array_equal(restored.responsibilities(z), ks.responsibilities(z))
    assert (restored.gamma0, restored.sF, restored.n_batches, restored.n_laps) == (3.0, 0.05, 4, 6)
    assert restored.elbo_history == ks.elbo_history and restored.fitted
    # continuing from the restored copy is identical to continuing the original
    assert restored.fit(z).elbo == ks.fit(z).elbo
    np.testing.assert_array_equal(restored.means, ks.means)
    empty = KnowledgeSpace.from_state_dict(st_load(st_save(KnowledgeSpace(4).state_dict())))
    assert empty.K == 0 and not empty.fitted
    assert KnowledgeSpace.from_state_dict(KnowledgeSpace(4, deletes=True).state_dict()).deletes
    older = {k: v for k, v in state.items() if k != "deletes"}  # saved before the delete move existed
    assert not KnowledgeSpace.from_state_dict(older).deletes


def test_bad_input_raises_clear_errors():
    ks = KnowledgeSpace(3)
    with pytest.raises(RuntimeError, match="call fit"):
        ks.responsibilities(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"shape \(N, 3\)"):
        ks.fit(np.zeros((5, 4)))
    with pytest.raises(ValueError, match=r"z\[None\]"):
        ks.fit(np.zeros(3))
    with pytest.raises(ValueError, match="empty"):
        ks.fit(np.zeros((0, 3)))
    z = np.zeros((5, 3))
    z[2, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        ks.fit(z)
    with pytest.raises(ValueError, match="real array"):
        ks.fit([["a", "b", "c"]])
    with pytest.raises(ValueError, match="dim"):
        KnowledgeSpace(0)
    with pytest.raises(ValueError, match="gamma0"):
        KnowledgeSpace(3, gamma0=-1.0)
    with pytest.raises(ValueError, match="missing"):
        KnowledgeSpace.from_state_dict({"dim": np.array(3)})
    ks.fit(np.random.default_rng(0).normal(size=(20, 3)))
    with pytest.raises(ValueError, match=r"shape \(N, 3\)"):
        ks.responsibilities(np.zeros((2, 2)))


def test_single_component_elbo_equals_exact_log_evidence():
    """With K = 1 the bound is tight: ELBO = log p(z) + stick term log B(1 + N, gamma0) / B(1, gamma0),
    log p(z) (Normal-Gamma evidence) computed here as a chain of Student-t predictives."""
    from scipy.special import betaln
    from scipy.stats import t as student_t

    rng = np.random.default_rng(8)
    z = 0.3 + 0.2 * rng.normal(size=(200, 3))
    ks = KnowledgeSpace(3, gamma0=5.0, sF=0.1, births=False, merges=False)
    ks.fit(z)
    m, kappa, a, b = np.zeros(3), 1e-4, (3 + 2) / 2, np.full(3, 0.1 * 3) / 2  # bnpy prior, see module doc
    log_evidence = 0.0
    for x in z:  # predictive of a Normal-Gamma: Student-t, 2a dof, scale^2 = b (kappa + 1) / (a kappa)
        log_evidence += student_t.logpdf(x, 2 * a, loc=m, scale=np.sqrt(b * (kappa + 1) / (a * kappa))).sum()
        b = b + kappa * (x - m) ** 2 / (2 * (kappa + 1))
        m, kappa, a = (kappa * m + x) / (kappa + 1), kappa + 1, a + 0.5
    stick = betaln(1 + len(z), 5.0) - betaln(1, 5.0)
    assert ks.elbo_history[-1] == pytest.approx(log_evidence + stick, rel=1e-9)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(0.0, 1e4), min_size=2, max_size=12), st.floats(0.1, 20.0))
def test_merge_scoring_of_the_stick_terms_matches_recomputation(N, gamma0):
    """The vectorised allocation-term change used to rank merges equals recomputing it after the merge."""
    ks, N = KnowledgeSpace(2, gamma0=gamma0), np.array(N)
    gains = ks._merge_alloc_gains(N)
    for j in range(len(N)):
        for k in range(j + 1, len(N)):
            merged = np.delete(N + np.eye(len(N))[j] * N[k], k)
            assert gains[j, k] == pytest.approx(ks._alloc(merged) - ks._alloc(N), abs=1e-8 * (1 + N.sum()))


@pytest.mark.parametrize("run, visit, tasks", [("stream10/legion", 9, 10), ("legion-table-kuka", 6, 7),
                                              ("legion-table-kuka", 1, 2)])
def test_legions_prior_finds_one_component_per_task_in_trained_latents(run, visit, tasks):
    """AgentConfig's sF (1e-4) on encoder means recorded by real training runs: one component per task (ARI 1.0);
    the unit-scale prior (0.1) lumps tasks together (docs/agent.md#knowledge-space-prior)."""
    from legion_policy.agent import AgentConfig

    d = np.load(Path(__file__).resolve().parents[1] / "models" / run / "latents" / f"visit_{visit:02d}.npz")
    z, task = d["z"].astype(np.float64), d["task"]
    assert len(np.unique(task)) == tasks
    ks = KnowledgeSpace(10, sF=AgentConfig().dpmm_sF)
    ks.fit(z)
    assert ks.K == tasks and adjusted_rand_score(task, ks.predict(z)) == 1.0
    if tasks > 2:
        unit = KnowledgeSpace(10, sF=0.1)
        unit.fit(z)
        assert unit.K < tasks
