"""Lifelong-RL baselines on LEGION's SAC backbone (same actor, twin critics, sizes and SAC updates).

The baselines have no task inference: the actor and critics are conditioned on a one-hot code of
the task's index in the stream (Continual World's setting, Wołczyk et al., NeurIPS 2021) in place
of LEGION's z, so their networks are exactly LEGION's with a 10-d one-hot instead of a 10-d latent.

* :class:`SACAgent`: fine-tuning SAC; with a FIFO-1 replay it is "fine-tuning", with an unbounded
  replay "perfect memory", with a reservoir replay "reservoir" (the trainer picks the replay).
* :class:`AGEMAgent`: A-GEM (Chaudhry et al., ICLR 2019): the gradient of each SAC loss is projected
  so that it does not increase the same loss on an episodic memory of earlier tasks.
* :class:`EWCAgent`: EWC (Kirkpatrick et al., PNAS 2017): a quadratic penalty
  (lambda / 2) sum_i F_i (theta_i - theta*_i)^2 on actor and critic weights, F the diagonal empirical
  Fisher of the SAC losses at the end of each task, accumulated over tasks.
* :class:`PackNetAgent`: PackNet (Mallya & Lazebnik, CVPR 2018): after each task the largest free
  weights are kept for it and frozen, the rest are zeroed and left free for later tasks; task j is
  run with the weights of tasks <= j only.

The trainer calls ``on_task_end(task, replay, rng)`` after each task visit.
"""
from __future__ import annotations

import numpy as np
import torch

from legion_policy.agent import AgentConfig, LegionAgent
from legion_policy.optim import adam_step, zero_grad


class SACAgent(LegionAgent):
    """SAC conditioned on a one-hot task code (no encoder, no knowledge space in the RL path).

    Args:
        config: :class:`AgentConfig`; ``latent_dim`` must be >= ``max_tasks`` (one-hot width).
        seed: torch seed.

    Raises:
        ValueError: ``latent_dim < max_tasks``.
    """

    uses_task_id = True

    def __init__(self, config: AgentConfig | None = None, seed: int = 0):
        config = config or AgentConfig()
        if config.latent_dim < config.max_tasks:
            raise ValueError(f"one-hot task codes need latent_dim >= max_tasks, got {config.latent_dim} < "
                             f"{config.max_tasks}")
        super().__init__(config, seed)

    def task_code(self, task: torch.Tensor) -> torch.Tensor:
        """(B,) int64 stream indices -> (B, Z) float32 one-hot codes."""
        return torch.nn.functional.one_hot(task, self.config.latent_dim).float()

    def _sac_inputs(self, batch):
        z = self.task_code(batch["task"])
        return self.normalizer.obs(batch["obs"]), self.normalizer.obs(batch["next_obs"]), z, z

    @torch.no_grad()
    def act(self, obs: np.ndarray, embed: np.ndarray, deterministic: bool = False, task=None):
        """Actions (A,) or (N,A) float32 for obs (S,) or (N,S) of stream task(s) ``task`` (int or (N,) ints;
        required). ``embed`` is unused."""
        if task is None:
            raise ValueError(f"{type(self).__name__} is conditioned on the task index: pass task=")
        o = torch.as_tensor(obs, dtype=torch.float32, device=self.device)
        single = o.dim() == 1
        o = o.reshape(-1, o.shape[-1])
        t = torch.as_tensor(task, dtype=torch.int64, device=self.device).reshape(-1).expand(o.shape[0])
        s_n, z = self.normalizer.obs(o), self.task_code(t)
        a = self.actor.deterministic(s_n, z) if deterministic else self.actor.sample(s_n, z)[0]
        return (a[0] if single else a).cpu().numpy().astype(np.float32)

    def update_encoder(self, batch):
        """No upstream module: nothing to update."""
        return {}

    def fit_knowledge_space(self, obs, embed):
        """No knowledge space."""
        return None

    def on_task_end(self, task: int, replay, rng: np.random.Generator) -> None:
        """Hook after each task visit (fine-tuning SAC: nothing)."""


def _flat_grad(params) -> torch.Tensor:
    return torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params])


def _set_grad(params, flat: torch.Tensor) -> None:
    i = 0
    for p in params:
        n = p.numel()
        p.grad = flat[i:i + n].view_as(p).clone()
        i += n


class AGEMAgent(SACAgent):
    """A-GEM on the actor and critic losses; memory of ``memory_per_task`` transitions per finished task.

    Args:
        memory_per_task: transitions copied from the replay into the episodic memory at each task end
            (Continual World: 10,000).
    """

    def __init__(self, config: AgentConfig | None = None, seed: int = 0, memory_per_task: int = 10_000):
        super().__init__(config, seed)
        self.memory_per_task = int(memory_per_task)
        self.memory: list[dict[str, torch.Tensor]] = []  # one batch dict per finished task
        self.projections = 0  # updates whose gradient was projected (for logging)
        self._rng = np.random.default_rng(seed)

    def on_task_end(self, task, replay, rng):
        idx = replay.indices_of_task(task)
        if len(idx):
            self.memory.append(replay.batch(rng.choice(idx, min(self.memory_per_task, len(idx)), replace=False)))

    def _reference(self, batch_size: int):
        """A batch drawn uniformly from the episodic memory of all earlier tasks, or None."""
        if not self.memory:
            return None
        sizes = np.array([len(m["obs"]) for m in self.memory])
        which = self._rng.choice(len(self.memory), batch_size, p=sizes / sizes.sum())
        parts = [{k: v[self._rng.integers(0, sizes[i], (which == i).sum())] for k, v in self.memory[i].items()}
                 for i in range(len(self.memory)) if (which == i).any()]
        return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}

    def _projected_step(self, loss_fn, params, optimizer, reference) -> None:
        zero_grad(optimizer)
        if reference is not None:
            loss_fn(reference).backward()
            g_ref = _flat_grad(params)
            zero_grad(optimizer)
        loss_fn(None).backward()
        if reference is not None:
            g = _flat_grad(params)
            dot = torch.dot(g, g_ref)
            if dot < 0:  # the step would increase the loss on earlier tasks: remove that component
                _set_grad(params, g - dot / torch.dot(g_ref, g_ref).clamp_min(1e-12) * g_ref)
                self.projections += 1
        adam_step(optimizer)

    def update_sac(self, batch):
        reference = self._reference(len(batch["obs"]))
        info: dict[str, float] = {}

        def critic(b):
            loss, i = self.critic_loss(batch if b is None else b)
            if b is None:
                info.update(i)
            return loss

        def actor(b):
            a_loss, _, i = self.actor_alpha_loss(batch if b is None else b)
            if b is None:
                info.update(i)
            return a_loss

        self._projected_step(critic, list(self.critic.parameters()), self.critic_optimizer, reference)
        self._projected_step(actor, list(self.actor.parameters()), self.actor_optimizer, reference)
        _, alpha_loss, _ = self.actor_alpha_loss(batch)
        zero_grad(self.alpha_optimizer)
        alpha_loss.backward()
        adam_step(self.alpha_optimizer)
        self._polyak()
        info["agem/projections"] = float(self.projections)
        return info


class EWCAgent(SACAgent):
    """EWC on actor and critic weights.

    Args:
        ewc_lambda: penalty weight lambda (Continual World: 1e4).
        fisher_batches: batches of the finished task's replay averaged for the diagonal Fisher.
    """

    def __init__(self, config: AgentConfig | None = None, seed: int = 0, ewc_lambda: float = 1e4,
                 fisher_batches: int = 50):
        super().__init__(config, seed)
        self.ewc_lambda, self.fisher_batches = float(ewc_lambda), int(fisher_batches)
        self._params = [*self.actor.parameters(), *self.critic.parameters()]
        self.fisher = [torch.zeros_like(p) for p in self._params]
        self.anchor = [p.detach().clone() for p in self._params]

    def on_task_end(self, task, replay, rng):
        idx = replay.indices_of_task(task)
        if not len(idx):
            return
        fisher = [torch.zeros_like(p) for p in self._params]
        for _ in range(self.fisher_batches):
            batch = replay.batch(rng.choice(idx, self.config.batch_size))
            self.zero_grad(set_to_none=True)
            loss = self.critic_loss(batch)[0] + self.actor_alpha_loss(batch)[0]
            loss.backward()
            for f, p in zip(fisher, self._params):
                if p.grad is not None:
                    f += p.grad.detach() ** 2 / self.fisher_batches
        self.zero_grad(set_to_none=True)
        self.fisher = [a + b for a, b in zip(self.fisher, fisher)]
        self.anchor = [p.detach().clone() for p in self._params]

    def penalty(self, which: str = "all") -> torch.Tensor:
        """(lambda / 2) sum_i F_i (theta_i - theta*_i)^2 over ``which`` weights ("actor", "critic", "all").

        A scalar tensor, 0 before the first task ends.
        """
        n_actor = sum(1 for _ in self.actor.parameters())
        part = {"actor": slice(0, n_actor), "critic": slice(n_actor, None), "all": slice(None)}[which]
        return 0.5 * self.ewc_lambda * sum((f * (p - a) ** 2).sum() for f, p, a in
                                           zip(self.fisher[part], self._params[part], self.anchor[part]))

    def regulariser(self, which):
        return self.penalty(which)


class PackNetAgent(SACAgent):
    """PackNet on actor and critic weight matrices (biases are trained on the first task, then frozen).

    After task k, of the weights still free it keeps the ``1 / (n_tasks - k)`` fraction of largest
    magnitude for task k (so every task of the stream gets a share) and zeroes the others, then
    retrains only the kept weights of task k for ``retrain_steps`` SAC updates on task k's replay
    (Continual World's PackNet: 100k retraining steps after 1M training steps). Single-loop streams
    only (a revisited task would train weights it cannot use).

    Args:
        n_tasks: tasks in the stream (the capacity is split between them).
        retrain_steps: SAC updates after each pruning (0: none).
    """

    def __init__(self, config: AgentConfig | None = None, seed: int = 0, n_tasks: int = 10, retrain_steps: int = 0):
        super().__init__(config, seed)
        self.n_tasks = int(n_tasks)
        self.retrain_steps = int(retrain_steps)
        self._retraining: int | None = None  # the task whose kept weights are being retrained
        named = [*self.actor.named_parameters(prefix="actor"), *self.critic.named_parameters(prefix="critic")]
        # weight matrices: the actor's (2-d) and the critics' stacked ones ((2, in, out)); the rest are biases and
        # LayerNorm gains
        is_weight = lambda name, p: name.startswith("critic.weights.") or (name.startswith("actor") and p.dim() > 1)  # noqa: E731
        self._weights = [p for n, p in named if is_weight(n, p)]
        self._biases = [p for n, p in named if not is_weight(n, p)]
        self._n_actor = sum(1 for n, p in named if n.startswith("actor") and is_weight(n, p))
        self.owner = [torch.full(p.shape, -1, dtype=torch.int64, device=p.device) for p in self._weights]  # -1: free
        self.current = 0  # the task being trained (all earlier tasks are packed)

    def _apply(self, fn, recurse: bool = True):
        # the owner masks are plain tensors, not buffers: move them with the weights (agent.to(device))
        module = super()._apply(fn, recurse)
        if hasattr(self, "owner"):
            self.owner = [o.to(p.device) for o, p in zip(self.owner, self._weights)]
        return module

    def mask_gradients(self) -> None:
        """Zero the gradients of weights packed by earlier tasks (and of biases after the first task);
        while retraining task k, of every weight not kept for task k."""
        for p, owner in zip(self._weights, self.owner):
            if p.grad is not None:
                p.grad[(owner != self._retraining) if self._retraining is not None else (owner >= 0)] = 0.0
        if self.current > 0:
            for p in self._biases:
                if p.grad is not None:
                    p.grad.zero_()

    @torch.no_grad()
    def act(self, obs, embed, deterministic: bool = False, task=None):
        """As :meth:`SACAgent.act`, with the actor reduced to the weights task ``task`` may use.

        ``task`` is an int, or (N,) ints that must all be the same task (one weight mask per call).
        """
        if task is None:
            raise ValueError("PackNetAgent is conditioned on the task index: pass task=")
        distinct = np.unique(np.asarray(task))
        if len(distinct) != 1:
            raise ValueError(f"PackNetAgent acts for one task per call, got tasks {distinct.tolist()}")
        k = int(distinct[0])
        saved = [p.detach().clone() for p in self._weights[: self._n_actor]]
        for p, owner in zip(self._weights[: self._n_actor], self.owner):
            allowed = (owner >= 0) & (owner <= k) if k < self.current else (owner <= k)
            p.mul_(allowed)
        try:
            return super().act(obs, embed, deterministic, task)
        finally:
            for p, w in zip(self._weights[: self._n_actor], saved):
                p.copy_(w)

    def on_task_end(self, task, replay, rng):
        """Prune to task ``task``'s share of the free weights, retrain what it kept, then freeze it."""
        with torch.no_grad():
            free = torch.cat([p[o < 0].abs() for p, o in zip(self._weights, self.owner)])
            keep = max(1, int(round(len(free) / max(self.n_tasks - task, 1))))
            if len(free):
                threshold = torch.topk(free, min(keep, len(free))).values[-1]
                for p, owner in zip(self._weights, self.owner):
                    mine = (owner < 0) & (p.abs() >= threshold)
                    owner[mine] = task
                    p[owner < 0] = 0.0  # pruned: free again for later tasks, restarting from zero
        rows = replay.indices_of_task(task)
        if self.retrain_steps and len(rows):
            # fresh Adam: zero moments, so weights whose gradient is masked (free, earlier tasks') stay put
            self.reset_optimizers()
            self._retraining = task
            try:
                for _ in range(self.retrain_steps):
                    self.update_sac(replay.batch(rows[rng.integers(0, len(rows), self.config.batch_size)]))
            finally:
                self._retraining = None
        self.current = task + 1
        self.reset_optimizers()  # Adam moments of the packed weights would otherwise keep moving them


METHODS = {"sac": SACAgent, "agem": AGEMAgent, "ewc": EWCAgent, "packnet": PackNetAgent}
