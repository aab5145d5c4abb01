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
"""
from __future__ import annotations

import numpy as np
import torch

REGIMES = ("unbounded", "fifo", "reservoir")
_FIELDS = ("obs", "next_obs", "action", "reward", "done", "phrase", "task", "visit")


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

    Raises:
        ValueError: unknown regime or non-positive sizes.
    """

    def __init__(self, capacity: int, obs_dim: int, action_dim: int, embeddings: np.ndarray,
                 canonical: np.ndarray | None = None, regime: str = "unbounded", fifo_visits: int = 1,
                 seed: int = 0):
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
        self.embeddings = torch.as_tensor(embeddings, dtype=torch.float32)
        self.canonical = torch.as_tensor(np.arange(len(embeddings)) if canonical is None else canonical)
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
                self.size = len(keep)

    def add(self, obs, action, reward, next_obs, done, phrase: int, task: int) -> None:
        """Store one transition (obs/next_obs (S,) m, action (A,), reward, done 1.0 on termination)."""
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
        self.done[i], self.phrase[i], self.task[i], self.visit[i] = done, phrase, task, self.current_visit

    def indices_of_task(self, task: int) -> np.ndarray:
        """Indices of stored transitions of stream task ``task``."""
        return np.flatnonzero(self.task[: self.size] == task)

    def batch(self, idx: np.ndarray) -> dict[str, torch.Tensor]:
        """The agent's batch dict for stored rows ``idx`` (see :mod:`legion_policy.agent`)."""
        phrase = torch.from_numpy(self.phrase[idx])
        return {
            "obs": torch.from_numpy(self.obs[idx]), "next_obs": torch.from_numpy(self.next_obs[idx]),
            "action": torch.from_numpy(self.action[idx]), "reward": torch.from_numpy(self.reward[idx]),
            "done": torch.from_numpy(self.done[idx]), "task": torch.from_numpy(self.task[idx]),
            "embed": self.embeddings[phrase], "embed_target": self.embeddings[self.canonical[phrase]],
        }

    def sample(self, batch_size: int, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        """Uniform sample (with replacement) over every stored transition."""
        if self.size == 0:
            raise RuntimeError("cannot sample from an empty replay buffer")
        return self.batch(rng.integers(0, self.size, batch_size))

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
            getattr(self, name)[:size] = state[name]
        self.size, self.seen, self.current_visit = size, seen, visit
        self._rng.bit_generator.state = state["rng"]
