"""Knowledge space: Dirichlet-process mixture of diagonal Gaussians over task latents z.

Fitted by memoized online variational Bayes (memoVB; Hughes & Sudderth, NeurIPS 2013) with birth and
merge moves, as in LEGION (Meng et al., Nat. Mach. Intell. 2025, eqs. 5-10). Our own numpy code: no
maintained library does memoVB with birth/merge (bnpy, the paper's library, does not install on
Python 3.11 / numpy 2; sklearn's BayesianGaussianMixture is batch-only with fixed truncation).

Model (eq. 5), truncated at K components:
    beta_k ~ Beta(1, gamma0),  pi_k = beta_k prod_{l<k} (1 - beta_l)      (stick breaking, GEM)
    lambda_kd ~ Gamma(nu0/2, rate beta0_d/2),  mu_kd ~ N(m0_d, 1/(kappa0 lambda_kd))  (Normal-Gamma)
    v_i ~ Cat(pi),  z_id ~ N(mu_{v_i d}, 1/lambda_{v_i d})
Prior as bnpy's DiagGauss defaults: m0 = 0, kappa0 = 1e-4, nu0 = D + 2, beta0 = sF (nu0 - 2), so the
prior expected variance E[1/lambda] is sF in every dimension.

Variational posterior (eq. 9): q(v_i) = Cat(r_i), q(beta_k) = Beta(u_k1, u_k0) with
u_k1 = 1 + N_k, u_k0 = gamma0 + sum_{l>k} N_l, and a Normal-Gamma q(mu_k, lambda_k) from the summary
statistics N_k = sum_i r_ik, S_k(x) = sum_i r_ik z_i, S_k(x^2) = sum_i r_ik z_i^2. With the global
factors at their optimum the ELBO (eq. 10) is, in closed form from those statistics,
    sum_k [log Z(post_k) - log Z(prior)] - (D/2) log(2 pi) sum_k N_k          (data + theta terms)
  + sum_k [log B(u_k1, u_k0) - log B(1, gamma0)]                              (allocation + stick terms)
  + sum_k H_k,  H_k = -sum_i r_ik log r_ik                                    (entropy of q(v))
where log Z is the Normal-Gamma log normaliser and B the Beta function.

Memoized VB: the data are cut into ``n_batches`` fixed batches; each batch keeps its statistics, and a
visit replaces them (subtract old, add new) before the global step, so every recorded ELBO is the
full-data ELBO and never decreases.

Moves (accepted only when the full ELBO increases):
- birth (from lap 1): for each component k, k-means (k-means++ seeds, up to BIRTH_K_FRESH = 10
  children, bnpy's Kfresh) splits the latents assigned to k; the child nearest k's mean stays in k
  (with k's memory), the others become fresh components. Children that do not pay for themselves
  are merged back (scored on statistics alone while assignments are hard), two memoized laps refine
  the rest, and a final exact merge pass cleans up. A component whose birth failed is not retried in
  the same fit unless its mass N_k changed by > 10 %.
- merge (from lap 2): every pair (j, k) is scored exactly from the stored statistics and
  responsibilities; the best improving pair is merged into the older index, repeated while any helps.
- delete (optional, bnpy's delete move; off by default as in the paper's code): a component that
  carries no memory from earlier fits is removed, its latents are re-assigned to the others by a local
  step, two memoized laps refine the proposal, and it is kept if the full ELBO increases. Components
  of earlier tasks (those with memory) are never deleted, so a delete cannot erase knowledge.

Knowledge preservation across fits (streaming variational Bayes, Broderick et al., NeurIPS 2013): at
the end of a fit the total statistics (memory + this fit's data) become the "memory", a fixed extra
batch that stays attached to its components in every later fit (merges add memories together). So
components of earlier tasks keep their means, variances and mass when later fits see only new data.
Consequence, by design: data replayed in a later fit is counted again (the memory only grows).
"""
from __future__ import annotations

import functools
import time
from dataclasses import dataclass

import numpy as np
from scipy.special import betaln, digamma, entr, gammaln
from threadpoolctl import ThreadpoolController

KAPPA0 = 1e-4  # prior pseudo-count on the component means (bnpy Gauss default)
BIRTH_REFINE_LAPS = 2  # memoized laps run on a birth proposal before its ELBO is compared
BIRTH_K_FRESH = 10  # at most this many children per birth proposal (bnpy's Kfresh)
MIN_BIRTH_POINTS = 10  # latents per child a birth needs (a target needs 2x this to be split)
CONVERGED_RTOL = 1e-6  # stop when a lap without accepted moves raises the ELBO by less than this
_EMPTY_MASS = 1e-8  # a component with less total mass N_k than this (no memory, no data) is dropped
_ELBO_ATOL = 1e-9  # a move must raise the ELBO by more than this x max(1, |ELBO|) (round-off guard)
_LOG_2PI = float(np.log(2.0 * np.pi))


_blas_controller: ThreadpoolController | None = None


def _one_blas_thread(method):
    """Run method with BLAS limited to one thread: the products here are small, and multi-threaded
    OpenBLAS on a busy CPU made them ~50x slower (measured: 17 ms vs 0.3 ms for (19x100)@(100x768))."""

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        global _blas_controller
        if _blas_controller is None:
            _blas_controller = ThreadpoolController()
        with _blas_controller.limit(limits=1, user_api="blas"):
            return method(*args, **kwargs)

    return wrapper


@dataclass
class FitReport:
    """Summary of one :meth:`KnowledgeSpace.fit` call.

    Attributes:
        K: number of components after the fit.
        elbo: final evidence lower bound (nats, eq. 10, memory batch included).
        n_births: accepted birth moves.
        n_merges: accepted merge moves.
        n_deletes: accepted delete moves.
        laps: memoized passes over the data that were run (<= n_laps).
        seconds: wall-clock time of the fit (s).
    """

    K: int
    elbo: float
    n_births: int
    n_merges: int
    laps: int
    seconds: float
    n_deletes: int = 0


@dataclass
class _Posterior:
    """Global variational factors for K components (derived from total statistics)."""

    N: np.ndarray  # (K,) expected counts
    kappa: np.ndarray  # (K,)
    m: np.ndarray  # (K, D) posterior mean of mu
    nu: np.ndarray  # (K,)
    beta: np.ndarray  # (K, D)
    u1: np.ndarray  # (K,) Beta(u1, u0) stick posterior
    u0: np.ndarray  # (K,)


class _FitState:
    """Per-batch data, responsibilities r (N_b, K), statistics (K, 2D+1) and entropies (K,)."""

    def __init__(self, X, R, SS, H, memory):
        self.X, self.R, self.SS, self.H, self.memory = X, R, SS, H, memory

    def copy(self) -> "_FitState":
        return _FitState(self.X, [r.copy() for r in self.R], [s.copy() for s in self.SS],
                         [h.copy() for h in self.H], self.memory.copy())

    def total(self) -> np.ndarray:
        return self.memory + np.sum(self.SS, axis=0)

    def entropy(self) -> float:
        return float(np.sum(self.H))


def _stats(X: np.ndarray, R: np.ndarray) -> np.ndarray:
    """Packed summary statistics [N_k, S_k(x), S_k(x^2)] of shape (K, 2D+1)."""
    return np.hstack([R.sum(0)[:, None], R.T @ X, R.T @ (X * X)])


def _entropy(R: np.ndarray) -> np.ndarray:
    """-sum_i r_ik log r_ik per component, (K,) (0 log 0 = 0)."""
    return entr(R).sum(0)


class KnowledgeSpace:
    """DP mixture of diagonal Gaussians over latents z (N, dim), fitted by memoVB with birth/merge.

    Args:
        dim: latent size D (10 in LEGION's official code).
        gamma0: DP concentration of the stick-breaking prior Beta(1, gamma0) (bnpy default 5.0).
        sF: prior expected variance of every component in every dimension (bnpy's ``sF`` with
            ``ECovMat = eye``). 0.1 suits latents of unit scale (an encoder regularised towards
            N(0, I)); smaller values let the model resolve tighter clusters.
        n_batches: memoVB batches per fit (bnpy ``nBatch`` 5); fewer if a fit gets fewer latents.
        n_laps: maximum passes over the data per fit; a fit stops earlier once converged.
        seed: seeds batch splits and k-means++ (fit number i uses ``default_rng([seed, i])``).
        k_init: components of the first fit (bnpy ``K_init`` 1); > 1 seeds them by k-means++.
        births, merges: enable the moves (turn off for plain fixed-K coordinate ascent).
        deletes: enable the delete move (from lap 2; only components without memory of earlier fits).

    Attributes:
        elbo_history: ELBO (nats) after every step of every fit: initialisation, each batch visit,
            each accepted birth and merge.
        fitted: False before the first fit.

    Raises:
        ValueError: a hyper-parameter is out of range.
    """

    def __init__(self, dim: int, gamma0: float = 5.0, sF: float = 0.1, n_batches: int = 5,
                 n_laps: int = 10, seed: int = 0, *, k_init: int = 1, births: bool = True,
                 merges: bool = True, deletes: bool = False):
        if int(dim) != dim or dim < 1:
            raise ValueError(f"dim must be a positive integer (the latent size), got {dim!r}")
        for name, value in (("gamma0", gamma0), ("sF", sF)):
            if not np.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be a positive finite number, got {value!r}")
        for name, value in (("n_batches", n_batches), ("n_laps", n_laps), ("k_init", k_init)):
            if int(value) != value or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        self.dim, self.gamma0, self.sF = int(dim), float(gamma0), float(sF)
        self.n_batches, self.n_laps, self.seed = int(n_batches), int(n_laps), int(seed)
        self.k_init, self.births, self.merges = int(k_init), bool(births), bool(merges)
        self.deletes = bool(deletes)
        self.nu0 = self.dim + 2.0
        self.beta0 = np.full(self.dim, self.sF * (self.nu0 - 2.0))
        self.m0 = np.zeros(self.dim)
        self.elbo_history: list[float] = []
        self.n_fits = 0
        self._stats = np.zeros((0, 2 * self.dim + 1))  # total statistics of all fits so far
        self._post = self._global(self._stats)

    # ----------------------------------------------------------------------------- public API
    @property
    def fitted(self) -> bool:
        return self.n_fits > 0

    @property
    def K(self) -> int:
        """Number of components (0 before the first fit)."""
        return int(self._stats.shape[0])

    @property
    def means(self) -> np.ndarray:
        """(K, dim) float64: posterior mean of each component's mean mu_k."""
        return self._post.m.copy()

    @property
    def variances(self) -> np.ndarray:
        """(K, dim) float64 > 0: posterior expected variance E[1/lambda_kd] = beta_kd / (nu_k - 2)."""
        return self._post.beta / (self._post.nu[:, None] - 2.0)

    @property
    def weights(self) -> np.ndarray:
        """(K,) float64: expected stick-breaking weights E[pi_k]; sum < 1 (rest: unseen components)."""
        Ev = self._post.u1 / (self._post.u1 + self._post.u0)
        return Ev * np.concatenate([[1.0], np.cumprod(1.0 - Ev)[:-1]])

    @_one_blas_thread
    def responsibilities(self, z: np.ndarray) -> np.ndarray:
        """Soft assignments p_ik (eq. 11): the memoVB local step for latents z.

        Args:
            z: (N, dim) latents (any real dtype; N >= 1).
        Returns:
            (N, K) float64, rows sum to 1.
        Raises:
            RuntimeError: called before the first fit. ValueError: bad z (see :meth:`fit`).
        """
        if not self.fitted:
            raise RuntimeError("the knowledge space has no components yet: call fit(z) first "
                               "(before the first fit LEGION uses a N(0, I) prior instead)")
        X = self._check(z)
        return self._log_resp(X, self._post)[0]

    def predict(self, z: np.ndarray) -> np.ndarray:
        """(N,) int64 index of the most responsible component for each latent in z (N, dim)."""
        return self.responsibilities(z).argmax(1).astype(np.int64)

    @_one_blas_thread
    def fit(self, z: np.ndarray) -> FitReport:
        """Fit (or warm-start refit) the mixture on latents z with memoVB, births and merges.

        The first fit starts from ``k_init`` components. Later fits keep every earlier component
        with its statistics as a fixed memory batch (streaming VB, see the module docstring) and
        add this fit's latents to it.

        Args:
            z: (N, dim) finite real latents, N >= 1.
        Returns:
            FitReport of this fit.
        Raises:
            ValueError: z is empty, not (N, dim), or holds NaN/inf.
        """
        X = self._check(z)
        t0 = time.perf_counter()
        rng = np.random.default_rng([self.seed, self.n_fits])
        parts = np.array_split(rng.permutation(len(X)), min(self.n_batches, len(X)))
        Xb = [X[p] for p in parts]
        if self.fitted:  # warm start: local step of every batch under the previous posterior
            memory = self._stats.copy()
            R = [self._log_resp(x, self._post)[0] for x in Xb]
        else:  # cold start: hard assignment to k_init k-means++ seeds (all to one if k_init = 1)
            centers = _kmeans_pp(X, min(self.k_init, len(X)), rng)
            memory = np.zeros((len(centers), 2 * self.dim + 1))
            R = [np.eye(len(centers))[_nearest(x, centers)] for x in Xb]
        state = _FitState(Xb, R, [_stats(x, r) for x, r in zip(Xb, R)],
                          [_entropy(r) for r in R], memory)
        post = self._global(state.total())
        elbo = self._elbo(state, post)
        self.elbo_history.append(elbo)

        n_births = n_merges = n_deletes = 0
        failed: dict[int, float] = {}  # component -> its N_k when a birth on it was last rejected
        lap = 0
        for lap in range(1, self.n_laps + 1):
            elbo_lap_start = elbo
            for b in range(len(Xb)):
                post = self._visit(state, b, post)
                elbo = self._elbo(state, post)
                self.elbo_history.append(elbo)
            moved = False
            if self.births:  # bnpy: births from lap 1
                for k in range(state.memory.shape[0]):
                    if k in failed and abs(post.N[k] - failed[k]) <= 0.1 * failed[k]:
                        continue  # failed before and has barely changed since
                    proposal = self._birth_proposal(state, post, k, rng)
                    if proposal is not None and proposal[2] > elbo + _ELBO_ATOL * max(1.0, abs(elbo)):
                        state, post, elbo = proposal
                        self.elbo_history.append(elbo)
                        n_births += 1
                        moved = True
                    else:
                        failed[k] = post.N[k]
            if self.merges and lap >= 2:  # bnpy: merges from lap 2
                while (merged := self._best_merge(state, post, elbo)) is not None:
                    state, post, elbo = merged
                    self.elbo_history.append(elbo)
                    n_merges += 1
                    moved = True
                    failed.clear()  # indices above the merged pair shift down
            if self.deletes and lap >= 2:
                while (deleted := self._best_delete(state, post, elbo)) is not None:
                    state, post, elbo = deleted
                    self.elbo_history.append(elbo)
                    n_deletes += 1
                    moved = True
                    failed.clear()
            if lap >= 2 and not moved and elbo - elbo_lap_start <= CONVERGED_RTOL * abs(elbo):
                break

        empty = np.flatnonzero(state.total()[:, 0] < _EMPTY_MASS)
        if len(empty) and len(empty) < post.N.shape[0]:  # local steps left these with no data
            state = _drop_components(state, empty)
            post = self._global(state.total())
            elbo = self._elbo(state, post)  # unchanged (trailing) or higher (their stick cost is gone)
            self.elbo_history.append(elbo)
        self._stats, self._post = state.total(), post
        self.n_fits += 1
        return FitReport(K=self.K, elbo=float(elbo), n_births=n_births, n_merges=n_merges, laps=lap,
                         seconds=time.perf_counter() - t0, n_deletes=n_deletes)

    def state_dict(self) -> dict[str, np.ndarray]:
        """Everything needed to rebuild this knowledge space, as numpy arrays only (safetensors).

        Keys: hyper-parameters as 0-d arrays (dim, gamma0, sF, n_batches, n_laps, seed, k_init,
        births, merges, deletes, n_fits); ``stats`` (K, 2*dim+1) float64 total summary statistics
        [N_k, S_k(x), S_k(x^2)] from which the posterior is recomputed; ``elbo_history`` (T,).
        """
        scalars = dict(dim=self.dim, n_batches=self.n_batches, n_laps=self.n_laps, seed=self.seed,
                       k_init=self.k_init, births=int(self.births), merges=int(self.merges),
                       deletes=int(self.deletes), n_fits=self.n_fits)
        state = {k: np.array(v, dtype=np.int64) for k, v in scalars.items()}
        state["gamma0"] = np.array(self.gamma0, dtype=np.float64)
        state["sF"] = np.array(self.sF, dtype=np.float64)
        state["stats"] = self._stats.copy()
        state["elbo_history"] = np.array(self.elbo_history, dtype=np.float64)
        return state

    @classmethod
    def from_state_dict(cls, state: dict[str, np.ndarray]) -> "KnowledgeSpace":
        """Rebuild a knowledge space saved by :meth:`state_dict` (exact round trip).

        States saved before the delete move existed (no ``deletes`` key) load with deletes off.

        Raises:
            ValueError: a key is missing or ``stats`` has the wrong shape or non-finite values.
        """
        required = ("dim", "gamma0", "sF", "n_batches", "n_laps", "seed", "k_init", "births",
                    "merges", "n_fits", "stats", "elbo_history")
        missing = [k for k in required if k not in state]
        if missing:
            raise ValueError(f"knowledge-space state is missing {missing}; save it with state_dict()")
        ks = cls(int(state["dim"]), float(state["gamma0"]), float(state["sF"]),
                 int(state["n_batches"]), int(state["n_laps"]), int(state["seed"]),
                 k_init=int(state["k_init"]), births=bool(state["births"]),
                 merges=bool(state["merges"]), deletes=bool(state.get("deletes", 0)))
        stats = np.asarray(state["stats"], dtype=np.float64)
        if stats.ndim != 2 or stats.shape[1] != 2 * ks.dim + 1 or not np.isfinite(stats).all():
            raise ValueError(f"state['stats'] must be finite with shape (K, {2 * ks.dim + 1}), "
                             f"got shape {stats.shape}")
        ks._stats, ks._post = stats.copy(), ks._global(stats)
        ks.n_fits = int(state["n_fits"])
        ks.elbo_history = [float(e) for e in np.asarray(state["elbo_history"]).ravel()]
        return ks

    # ----------------------------------------------------------------------------- internals
    def _check(self, z) -> np.ndarray:
        try:
            X = np.asarray(z, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"z must be a real array of shape (N, {self.dim}): {exc}") from exc
        if X.ndim != 2 or X.shape[1] != self.dim:
            raise ValueError(f"z must have shape (N, {self.dim}), got {X.shape}"
                             + (" (use z[None] for a single latent)" if X.shape == (self.dim,) else ""))
        if X.shape[0] == 0:
            raise ValueError("z is empty (N = 0): pass at least one latent")
        bad = ~np.isfinite(X).all(1)
        if bad.any():
            raise ValueError(f"z holds NaN or inf in {bad.sum()} rows (first: {np.flatnonzero(bad)[:5]}); "
                             "drop or fix them before fitting")
        return X

    def _global(self, S: np.ndarray) -> _Posterior:
        """Global step: optimal q(theta_k), q(beta_k) for total statistics S (K, 2D+1)."""
        D = self.dim
        N, Sx, Sxx = S[:, 0], S[:, 1:D + 1], S[:, D + 1:]
        kappa = KAPPA0 + N
        m = (KAPPA0 * self.m0 + Sx) / kappa[:, None]
        # beta_k = beta0 + scatter + shrinkage term >= beta0 exactly; the clip only guards round-off
        beta = np.maximum(self.beta0 + Sxx + KAPPA0 * self.m0 ** 2 - kappa[:, None] * m ** 2, self.beta0)
        n_after = np.maximum(np.cumsum(N[::-1])[::-1] - N, 0.0)  # sum_{l>k} N_l
        return _Posterior(N=N, kappa=kappa, m=m, nu=self.nu0 + N, beta=beta, u1=1.0 + N,
                          u0=self.gamma0 + n_after)

    def _log_resp(self, X: np.ndarray, post: _Posterior) -> tuple[np.ndarray, np.ndarray]:
        """Local step: r_ik ∝ exp(E[log pi_k] + E[log N(z_i | mu_k, 1/lambda_k)]).

        Returns r (N, K) and the entropy per component (K,).
        """
        dsum = digamma(post.u1 + post.u0)
        Elog1mv = digamma(post.u0) - dsum
        Elogpi = digamma(post.u1) - dsum + np.concatenate([[0.0], np.cumsum(Elog1mv)[:-1]])
        a = post.nu / 2.0
        Elam = a[:, None] / (post.beta / 2.0)  # (K, D)
        Eloglam = digamma(a) * self.dim - np.log(post.beta / 2.0).sum(1)
        const = (Elogpi + 0.5 * Eloglam - 0.5 * self.dim * (_LOG_2PI + 1.0 / post.kappa)
                 - 0.5 * (Elam * post.m ** 2).sum(1))
        logits = const - 0.5 * (X * X) @ Elam.T + X @ (Elam * post.m).T
        logR = logits - logits.max(1, keepdims=True)
        logR -= np.log(np.exp(logR).sum(1, keepdims=True))
        R = np.exp(logR)
        return R, -(R * logR).sum(0)

    def _log_z(self, post: _Posterior) -> np.ndarray:
        """Normal-Gamma log normaliser per component, summed over dimensions, (K,)."""
        a = post.nu / 2.0
        return (self.dim * (gammaln(a) + 0.5 * _LOG_2PI) - a * np.log(post.beta / 2.0).sum(1)
                - 0.5 * self.dim * np.log(post.kappa))

    def _log_z0(self) -> float:
        a = self.nu0 / 2.0
        return float(self.dim * (gammaln(a) + 0.5 * _LOG_2PI) - a * np.log(self.beta0 / 2.0).sum()
                     - 0.5 * self.dim * np.log(KAPPA0))

    def _alloc(self, N: np.ndarray) -> float:
        """Allocation + stick terms of the ELBO: sum_k log B(u_k1, u_k0) - log B(1, gamma0)."""
        n_after = np.maximum(np.cumsum(N[::-1])[::-1] - N, 0.0)
        return float((betaln(1.0 + N, self.gamma0 + n_after) - betaln(1.0, self.gamma0)).sum())

    def _elbo(self, state: _FitState, post: _Posterior) -> float:
        """Full ELBO (eq. 10) with the global factors at their optimum for the current statistics."""
        data = (self._log_z(post) - self._log_z0()).sum() - 0.5 * self.dim * _LOG_2PI * post.N.sum()
        return float(data + self._alloc(post.N) + state.entropy())

    def _visit(self, state: _FitState, b: int, post: _Posterior) -> _Posterior:
        """Memoized step on batch b: replace its statistics, then the global step."""
        R, H = self._log_resp(state.X[b], post)
        state.R[b], state.SS[b], state.H[b] = R, _stats(state.X[b], R), H
        return self._global(state.total())

    def _birth_proposal(self, state: _FitState, post: _Posterior, k: int, rng: np.random.Generator):
        """Split the latents assigned to component k by k-means; return (state, post, elbo) or None.

        bnpy-style birth: up to BIRTH_K_FRESH fresh components from k-means++ / Lloyd on the target's
        latents; the child nearest the current mean stays in k (with k's memory), the others are
        appended. The proposal is refined by BIRTH_REFINE_LAPS memoized laps, then redundant children
        are merged away. None if no new component survives.
        """
        masks = [r.argmax(1) == k for r in state.R]
        Xk = np.concatenate([x[m] for x, m in zip(state.X, masks)])
        n_fresh = min(BIRTH_K_FRESH, len(Xk) // MIN_BIRTH_POINTS)
        if n_fresh < 2:
            return None
        labels = _kmeans(Xk, n_fresh, rng)
        n_children = labels.max() + 1
        if n_children < 2:
            return None
        centers = np.stack([Xk[labels == c].mean(0) for c in range(n_children)])
        stay = int(np.argmin(((centers - post.m[k]) ** 2).sum(1)))
        K = state.memory.shape[0]
        target = np.array([K + c - (c > stay) for c in range(n_children)])  # child -> new index
        target[stay] = k
        new = state.copy()
        new.memory = np.vstack([new.memory, np.zeros((n_children - 1, new.memory.shape[1]))])
        start = 0
        for b, m in enumerate(masks):
            rows = np.flatnonzero(m)
            R = np.hstack([new.R[b], np.zeros((len(m), n_children - 1))])
            R[rows] = 0.0
            R[rows, target[labels[start:start + len(rows)]]] = 1.0
            start += len(rows)
            new.R[b], new.SS[b], new.H[b] = R, _stats(new.X[b], R), _entropy(R)
        # Merges among the hard-assigned children change no entropy, so statistics alone score them.
        groups = self._hard_merge_groups(new.total(), [k, *range(K, K + n_children - 1)])
        if len(groups) == 1:
            return None
        dropped = sorted(c for g in groups for c in g[1:])
        to_new = np.delete(np.arange(K + n_children - 1), dropped)  # surviving columns, in order
        M = np.zeros((K + n_children - 1, len(to_new)))  # column map old -> new
        for g in groups:
            M[g, np.searchsorted(to_new, g[0])] = 1.0
        M[to_new, np.arange(len(to_new))] = 1.0
        new.memory = M.T @ new.memory
        for b in range(len(new.X)):
            new.R[b] = new.R[b] @ M
            new.SS[b], new.H[b] = M.T @ new.SS[b], _entropy(new.R[b])
        post = self._global(new.total())
        for _ in range(BIRTH_REFINE_LAPS):
            for b in range(len(new.X)):
                post = self._visit(new, b, post)
        new, post, among = self._merge_among(new, post, [k, *range(K, K + len(groups) - 1)])
        return (new, post, self._elbo(new, post)) if len(among) > 1 else None

    def _hard_merge_groups(self, S: np.ndarray, among: list[int]) -> list[list[int]]:
        """Greedy merges within ``among`` scored by data + allocation terms of statistics S (K, 2D+1).

        Returns the groups of original indices (each led by its lowest index) that remain.
        """
        S, among, groups = S.copy(), list(among), [[i] for i in among]
        log_z0 = self._log_z0()
        while len(among) > 1:
            post = self._global(S)
            log_z, d_alloc = self._log_z(post), self._merge_alloc_gains(post.N)
            best_gain, best = 0.0, None
            for a, j in enumerate(among[:-1]):
                ks = np.array(among[a + 1:])
                gains = (self._log_z(self._global(S[j] + S[ks])) - log_z[j] - log_z[ks] + log_z0
                         + d_alloc[j, ks])
                i = int(np.argmax(gains))
                if gains[i] > best_gain:
                    best_gain, best = gains[i], (a, a + 1 + i)
            if best is None:
                break
            a, c = best
            j, k = among[a], among[c]
            S[j] += S[k]
            S = np.delete(S, k, axis=0)
            groups[a] += groups.pop(c)
            among.pop(c)
            among = [i - (i > k) for i in among]
        return groups

    def _merge_among(self, state: _FitState, post: _Posterior, among: list[int]):
        """Greedy ELBO-improving merges within ``among`` = [k, K, K+1, ...] (a birth's children)."""
        elbo = self._elbo(state, post)
        while (merged := self._best_merge(state, post, elbo, among)) is not None:
            state, post, elbo = merged
            among = among[:-1]  # a merge keeps the lower index and drops the higher one
        return state, post, among

    def _merge_alloc_gains(self, N: np.ndarray) -> np.ndarray:
        """(K, K) change of the allocation term when k is merged into j (entries j < k valid).

        Merging k into j (j < k) changes u_j = (1 + N_j + N_k, gamma0 + A_j - N_k), lowers u_i0 by
        N_k for j < i < k (A_i = sum_{l>i} N_l), and drops component k; the rest is unchanged.
        """
        A = np.maximum(np.cumsum(N[::-1])[::-1] - N, 0.0)
        b_old = betaln(1.0 + N, self.gamma0 + A)
        u0_less = np.maximum(self.gamma0 + A[:, None] - N[None, :], self.gamma0)  # [i, k]: u_i0 - N_k
        T = np.triu(betaln(1.0 + N[:, None], u0_less) - b_old[:, None], 1)  # [i, k], i < k
        C = np.cumsum(T, axis=0)
        middle = np.concatenate([[0.0], np.diagonal(C, offset=1)])[None, :] - C  # sum_{j<i<k} T[i, k]
        first = betaln(1.0 + N[:, None] + N[None, :], u0_less) - b_old[:, None]
        last = b_old - betaln(1.0, self.gamma0)
        return first + middle - last[None, :]

    def _best_merge(self, state: _FitState, post: _Posterior, elbo: float, among=None):
        """Best ELBO-improving merge of a pair (j < k) into j; return (state, post, elbo) or None.

        Exact: statistics and responsibility columns add, so the merged ELBO needs no refit.
        The entropy can only drop on a merge, so pairs whose data + allocation gain is not above the
        best so far are skipped without computing it. ``among``: only pairs within these indices.
        """
        S, K = state.total(), post.N.shape[0]
        if K < 2:
            return None
        idx = np.arange(K) if among is None else np.unique(among)
        log_z, log_z0 = self._log_z(post), self._log_z0()
        d_alloc = self._merge_alloc_gains(post.N)
        R = np.vstack(state.R)
        best_gain, best_pair = 0.0, None
        for a, j in enumerate(idx[:-1]):
            ks = idx[a + 1:]
            gains = (self._log_z(self._global(S[j] + S[ks])) - log_z[j] - log_z[ks] + log_z0
                     + d_alloc[j, ks])
            hopeful = gains > best_gain
            if not hopeful.any():
                continue
            # entropy change H(r_j + r_k) - H(r_j) - H(r_k) <= 0; rows with r_ij = 0 add exactly 0
            ks, gains = ks[hopeful], gains[hopeful]
            rows = R[:, j] > 0
            Rj, Rk = R[rows, j, None], R[rows][:, ks]
            gains += (entr(Rj + Rk) - entr(Rj) - entr(Rk)).sum(0)
            i = int(np.argmax(gains))
            if gains[i] > best_gain:
                best_gain, best_pair = gains[i], (j, ks[i])
        if best_pair is None:
            return None
        j, k = best_pair
        new = state.copy()
        for b in range(len(new.R)):
            new.R[b][:, j] += new.R[b][:, k]
            new.R[b] = np.delete(new.R[b], k, axis=1)
            new.SS[b][j] += new.SS[b][k]
            new.SS[b] = np.delete(new.SS[b], k, axis=0)
            new.H[b][j] = _entropy(new.R[b][:, j])
            new.H[b] = np.delete(new.H[b], k)
        new.memory[j] += new.memory[k]
        new.memory = np.delete(new.memory, k, axis=0)
        post = self._global(new.total())
        new_elbo = self._elbo(new, post)
        return (new, post, new_elbo) if new_elbo > elbo + _ELBO_ATOL * max(1.0, abs(elbo)) else None

    def _best_delete(self, state: _FitState, post: _Posterior, elbo: float):
        """First ELBO-improving delete of a memory-free component (smallest N_k first), or None.

        The candidate's column is dropped, every batch gets a local step under the remaining
        components, BIRTH_REFINE_LAPS memoized laps refine the proposal, and the full ELBO decides.
        Returns (state, post, elbo) of the accepted proposal.
        """
        K = post.N.shape[0]
        if K < 2:
            return None
        no_memory = np.flatnonzero(state.memory[:, 0] <= 0.0)
        for k in no_memory[np.argsort(post.N[no_memory], kind="stable")]:
            new = _drop_components(state, [k])
            rest = self._global(new.total())  # the other components as they are now
            for b in range(len(new.X)):
                new.R[b], new.H[b] = self._log_resp(new.X[b], rest)
                new.SS[b] = _stats(new.X[b], new.R[b])
            prop = self._global(new.total())
            for _ in range(BIRTH_REFINE_LAPS):
                for b in range(len(new.X)):
                    prop = self._visit(new, b, prop)
            new_elbo = self._elbo(new, prop)
            if new_elbo > elbo + _ELBO_ATOL * max(1.0, abs(elbo)):
                return new, prop, new_elbo
        return None


def _drop_components(state: _FitState, ks) -> _FitState:
    """Copy of ``state`` without components ``ks`` (their columns, statistics and memory rows)."""
    keep = np.delete(np.arange(state.memory.shape[0]), ks)
    return _FitState(state.X, [r[:, keep] for r in state.R], [s[keep] for s in state.SS],
                     [h[keep] for h in state.H], state.memory[keep])


def _nearest(X: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """Index of the nearest center (squared Euclidean) for each row of X."""
    d = (X * X).sum(1)[:, None] - 2.0 * X @ centers.T + (centers * centers).sum(1)
    return d.argmin(1)


def _kmeans_pp(X: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding (Arthur & Vassilvitskii 2007): (k, D) centers drawn from the rows of X."""
    centers = [X[rng.integers(len(X))]]
    d2 = ((X - centers[0]) ** 2).sum(1)
    for _ in range(1, k):
        if d2.sum() <= 0.0:  # fewer distinct points than k
            break
        centers.append(X[rng.choice(len(X), p=d2 / d2.sum())])
        d2 = np.minimum(d2, ((X - centers[-1]) ** 2).sum(1))
    return np.stack(centers)


def _kmeans(X: np.ndarray, k: int, rng: np.random.Generator, max_iter: int = 20) -> np.ndarray:
    """Lloyd's k-means from k-means++ seeds: labels (N,) in 0..k'-1, k' <= k (empty clusters dropped)."""
    labels = _nearest(X, _kmeans_pp(X, k, rng))
    for _ in range(max_iter):
        labels = np.unique(labels, return_inverse=True)[1]
        onehot = np.zeros((len(X), labels.max() + 1))
        onehot[np.arange(len(X)), labels] = 1.0
        new = _nearest(X, (onehot.T @ X) / onehot.sum(0)[:, None])
        if np.array_equal(new, labels):
            break
        labels = new
    return np.unique(labels, return_inverse=True)[1]
