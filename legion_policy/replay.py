"""Replay buffers for lifelong training: unbounded, FIFO over the last N task visits, and reservoir.

Transitions store the index of the phrasing heard (a row of a fixed embedding table), not the
embedding itself, so a 1M-step buffer stays small. A "visit" is one stay on a task in the stream
(a task revisited in a later loop is a new visit).

Regimes (``regime``):

* ``"unbounded"``: every transition of the run is kept (the paper's official code: a 10M buffer).
* ``"fifo"``: only the transitions of the last ``fifo_visits`` visits; the oldest visit is evicted
  when a new one starts (``fifo_visits=1`` is fine-tuning: the current task only; the paper's
  few-shot protocol keeps 3).
* ``"reservoir"``: at most ``capacity`` transitions, a uniform sample of everything seen so far
  (reservoir sampling, Vitter 1985, algorithm R).

Demonstrations (``add(..., demo=True)``) are stored with the online transitions and evicted with their visit.
:meth:`ReplayBuffer.sample` draws uniformly over both, or, with ``demo_fraction``, that share of every batch from
the demonstrations and the rest from online data (RLPD's symmetric sampling, Ball et al. 2023: 0.5).
"""
from __future__ import annotations

import numpy as np
import torch

REGIMES = ("unbounded", "fifo", "reservoir")
_FIELDS = ("obs", "next_obs", "action", "reward", "done", "phrase", "task", "visit", "demo")


class ReplayBuffer:
    """Transitions of a task stream, sampled uniformly in the agent's batch format.

    Args:
        capacity: maximum number of transitions (for ``unbounded``: the run's total steps; for
            ``fifo``: ``fifo_visits`` x steps per visit).
        obs_dim: S. action_dim: A.
        embeddings: (P, L) float32 table of phrase embeddings; transitions refer to its rows.
        canonical: (P,) row of each phrase's canonical task description (the language decoder's
            target); default: each phrase is its own target.
        regime: ``"unbounded"``, ``"fifo"`` or ``"reservoir"`` (module docstring).
        fifo_visits: visits kept by ``fifo``.
        seed: seeds the reservoir's replacement draws.
        device: where :meth:`batch` puts the batch's tensors (the agent's device); rows stay in numpy, on the CPU.

    Raises:
        ValueError: unknown regime or non-positive sizes.
    """

    def __init__(self, capacity: int, obs_dim: int, action_dim: int, embeddings: np.ndarray,
                 canonical: np.ndarray | None = None, regime: str = "unbounded", fifo_visits: int = 1,
                 seed: int = 0, device: str | torch.device = "cpu"):
        if regime not in REGIMES:
            raise ValueError(f"unknown replay regime {regime!r}; choose one of {REGIMES}")
        if capacity < 1 or fifo_visits < 1:
            raise ValueError(f"capacity and fifo_visits must be >= 1, got {capacity}, {fifo_visits}")
        self.regime, self.fifo_visits, self.capacity = regime, int(fifo_visits), int(capacity)
        self.obs = np.zeros((capacity, obs_dim), np.float32)
        self.next_obs = np.zeros((capacity, obs_dim), np.float32)
        self.action = np.zeros((capacity, action_dim), np.float32)
        self.reward = np.zeros(capacity, np.float32)
        self.done = np.zeros(capacity, np.float32)
        self.phrase = np.zeros(capacity, np.int64)
        self.task = np.zeros(capacity, np.int64)
        self.visit = np.zeros(capacity, np.int64)
        self.demo = np.zeros(capacity, np.bool_)
        self._demo_rows: np.ndarray | None = None  # cached rows holding demonstrations (None: recompute)
        self.device = torch.device(device)
        self.embeddings = torch.as_tensor(embeddings, dtype=torch.float32, device=self.device)
        self.canonical = torch.as_tensor(np.arange(len(embeddings)) if canonical is None else canonical,
                                         device=self.device)
        self.size = 0
        self.seen = 0  # transitions offered so far (reservoir's n)
        self.current_visit = -1
        self._rng = np.random.default_rng(seed)

    def start_visit(self, visit: int) -> None:
        """Mark the start of visit ``visit`` (increasing); ``fifo`` evicts the oldest visit if full."""
        self.current_visit = int(visit)
        if self.regime == "fifo" and self.size:
            visits = np.unique(self.visit[: self.size])
            if len(visits) >= self.fifo_visits:
                keep = np.flatnonzero(np.isin(self.visit[: self.size], visits[len(visits) - self.fifo_visits + 1:]))
                for name in _FIELDS:
                    arr = getattr(self, name)
                    arr[: len(keep)] = arr[keep]
                self.size, self._demo_rows = len(keep), None

    def add(self, obs, action, reward, next_obs, done, phrase: int, task: int, demo: bool = False) -> None:
        """Store one transition (obs/next_obs (S,) m, action (A,), reward, done 1.0 on termination; ``demo``: a
        demonstration's, not the learner's)."""
        self.seen += 1
        if self.size < self.capacity:
            i = self.size
            self.size += 1
        elif self.regime == "reservoir":
            i = int(self._rng.integers(self.seen))
            if i >= self.capacity:
                return  # not selected into the reservoir
        else:
            raise RuntimeError(f"replay buffer full ({self.capacity} transitions, regime {self.regime!r}); "
                               "size it for the run (unbounded) or for fifo_visits visits (fifo)")
        self.obs[i], self.action[i], self.reward[i], self.next_obs[i] = obs, action, reward, next_obs
        if demo or self.demo[i]:  # a demonstration row written or overwritten
            self._demo_rows = None
        self.done[i], self.phrase[i], self.task[i], self.visit[i] = done, phrase, task, self.current_visit
        self.demo[i] = demo

    @property
    def demo_rows(self) -> np.ndarray:
        """Indices of the stored demonstration transitions, (D,) int64."""
        if self._demo_rows is None:
            self._demo_rows = np.flatnonzero(self.demo[: self.size])
        return self._demo_rows

    def indices_of_task(self, task: int) -> np.ndarray:
        """Indices of stored transitions of stream task ``task``."""
        return np.flatnonzero(self.task[: self.size] == task)

    def batch(self, idx: np.ndarray) -> dict[str, torch.Tensor]:
        """The agent's batch dict for stored rows ``idx`` (see :mod:`legion_policy.agent`), on ``device``."""
        rows = {name: torch.from_numpy(getattr(self, name)[idx])
                for name in ("obs", "next_obs", "action", "reward", "done", "task", "phrase", "demo")}
        if self.device.type != "cpu":
            rows = {k: v.to(self.device, non_blocking=True) for k, v in rows.items()}
        phrase = rows["phrase"]
        return {**rows, "embed": self.embeddings[phrase], "embed_target": self.embeddings[self.canonical[phrase]]}

    def sample(self, batch_size: int, rng: np.random.Generator,
               demo_fraction: float | None = None) -> dict[str, torch.Tensor]:
        """A batch drawn with replacement: uniformly over every stored transition (``demo_fraction`` None), or
        ``round(demo_fraction * batch_size)`` rows from the demonstrations and the rest from online transitions
        (RLPD; while either kind is absent, all rows come from the other).

        Raises:
            RuntimeError: the buffer is empty.
        """
        if self.size == 0:
            raise RuntimeError("cannot sample from an empty replay buffer")
        demos = self.demo_rows
        if demo_fraction is None or len(demos) in (0, self.size):
            return self.batch(rng.integers(0, self.size, batch_size))
        n_demo = int(round(demo_fraction * batch_size))
        n_online = batch_size - n_demo
        if 2 * len(demos) > self.size:  # mostly demonstrations (a visit's start): list the online rows
            rows = np.flatnonzero(~self.demo[: self.size])
            online = rows[rng.integers(0, len(rows), n_online)]
        else:  # rejection sampling: no O(size) pass per batch in a 1M-row buffer
            online = np.empty(0, np.int64)
            while len(online) < n_online:
                draw = rng.integers(0, self.size, 2 * n_online)
                online = np.concatenate([online, draw[~self.demo[draw]]])
        return self.batch(np.concatenate([demos[rng.integers(0, len(demos), n_demo)], online[:n_online]]))

    def state_dict(self) -> dict:
        """Stored rows (numpy arrays), counters and the reservoir's generator state (for resumable training)."""
        state = {name: getattr(self, name)[: self.size].copy() for name in _FIELDS}
        state["counters"] = np.array([self.size, self.seen, self.current_visit], np.int64)
        state["rng"] = self._rng.bit_generator.state
        return state

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Restore :meth:`state_dict` into a buffer built with the same arguments.

        Raises:
            ValueError: the saved rows do not fit this buffer.
        """
        size, seen, visit = (int(v) for v in state["counters"])
        if size > self.capacity or state["obs"].shape[1:] != self.obs.shape[1:]:
            raise ValueError(f"saved replay ({size} rows of {state['obs'].shape[1:]}) does not fit this buffer "
                             f"({self.capacity} rows of {self.obs.shape[1:]})")
        for name in _FIELDS:
            if name in state:  # "demo" is absent from states saved before demonstrations were marked
                getattr(self, name)[:size] = state[name]
        self.size, self.seen, self.current_visit, self._demo_rows = size, seen, visit, None
        self._rng.bit_generator.state = state["rng"]
