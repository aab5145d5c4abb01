"""The LEGION agent: upstream task inference (encoder + knowledge space + decoders) and downstream SAC.

Method (../shared/docs/method.md section 3; paper Methods, eqs. 11-12):

* task encoder q(z | s, l) -> (mu, log sigma^2), z = mu + eps * sigma (latent size 10);
* knowledge space: a Dirichlet-process mixture over z (:class:`legion_policy.knowledge_space.KnowledgeSpace`),
  refitted with warm start on encoder means of replay states (alternating optimisation);
* upstream loss L = zeta * L_dyn + eta * L_embed + xi * L_KL (eq. 12), with the soft-assignment KL of
  eq. 11, sum_k p_ik KL(q(z_i) || N(mu_k, Sigma_k)), or KL to N(0, I) before the first fit;
* SAC (twin critics, Polyak targets, automatic entropy tuning with target -|A|, one log alpha per task
  as in the official code) with actor pi(a | s, z) and Q(s, a, z). The RL side takes z = mu(s, l)
  detached: no RL gradient reaches the encoder, and training sees the same z as deployment, where the
  policy is deterministic.

Batches are dicts of float32 tensors: ``obs`` (B,12) and ``next_obs`` (B,12) in metres (sim frame),
``action`` (B,4) in [-1,1], ``reward`` (B,), ``done`` (B,) 1.0 on termination (not truncation),
``embed`` (B,L) unit-norm language embeddings of the phrasing heard, ``task`` (B,) int64 stream index
of the task, optionally ``phrase`` (B,) int64 ids of the phrasings (rows with one id have one embedding), and optionally ``embed_target`` (B,L): the embedding of the task's canonical description,
which the language decoder reconstructs (default: ``embed``). Reconstructing the task's description
rather than the phrasing keeps z a task code: every phrasing of a task is mapped to the same region
of the latent space, so the actor does not have to learn one skill per phrasing.
"""
from __future__ import annotations

import copy
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from legion_policy.networks import (
    Actor, DynamicsDecoder, InputNormalizer, LanguageDecoder, TaskEncoder, TwinCritic,
)
from legion_policy.optim import adam_step, zero_grad


@dataclass
class AgentConfig:
    """Hyper-parameters (defaults: official code where a 2-core CPU allows; :meth:`paper` gives all of it).

    Attributes:
        obs_dim: S = 12. action_dim: A = 4. embed_dim: L (384 MiniLM, 768 RoBERTa). latent_dim: Z = 10.
        hidden: width of every hidden layer not set below (default 256).
        encoder_hidden, encoder_layers: task encoder width (None: ``hidden``) and depth (official: 400, 3).
        sac_hidden, sac_layers: actor and critic width (None: ``hidden``) and depth (official: 300, 3).
        sac_layer_norm: first actor/critic layer is Linear -> LayerNorm -> tanh (official: yes).
        critic_layer_norm: LayerNorm after every hidden layer of the critics (RLPD, Ball et al. 2023: it keeps the
            Q-values bounded at high update-to-data ratios); off in the paper.
        bc_weight: lambda of a behaviour-cloning term on the demonstration rows of each batch, added to the actor
            loss: ``lambda * mean|Q| * mean_demo ||tanh(mean(s, z)) - a_demo||^2`` (TD3+BC's form, Fujimoto & Gu
            2021, with its Q-scale normalisation, on demonstrations as Nair et al. 2018; lambda 0.4 is TD3+BC's
            alpha 2.5). 0: off, as the paper. Needs demonstrations in the replay (``legion train --demos``).
        actor_average: rate of a Polyak (exponential moving) average of the actor's weights, updated after every actor
            step: theta_avg <- (1 - rate) theta_avg + rate theta (Polyak & Juditsky 1992; in deep RL as Nikishin et al.
            2018, "Improving stability in deep RL with weight averaging"). The average acts where the policy is
            deterministic (evaluation, the checkpoint's deployed actor); the online actor collects and is what the
            losses train. 0: off, as the paper.
        decoder_hidden: width of the language and dynamics decoders (None: ``hidden``).
        batch_size: SAC and encoder mini-batch (paper: 512).
        lr: Adam learning rate for all modules (3e-4). gamma: discount (0.99). tau: Polyak rate (0.005).
        zeta, eta, xi: weights of L_dyn, L_embed, L_KL in eq. 12 (official code: 0.5, 1.0, 0.001).
        max_tasks: size of the per-task log-alpha table (the paper's stream has 10 tasks).
        init_alpha: initial entropy temperature.
        dpmm_gamma0, dpmm_sF, dpmm_n_batches, dpmm_n_laps: knowledge-space parameters (bnpy names). dpmm_sF, the
            prior variance of a component, is 1e-4 (inside the official code's 1e-5...0.1): trained encoders put each
            task's latents within ~1e-3 of one point, and with 0.1 the prior's variance outweighs them, so one
            component explained seven tasks (K = 1 all through the first efficient-recipe stream); 1e-4 recovers the
            task count with ARI 1.0 on every visit of three recorded runs, 1e-3 and 1e-5 do not
            (docs/agent.md#knowledge-space-prior). Checkpoints keep the value they were trained with.
        dpmm_deletes: enable the knowledge space's delete move (the official code: off).

    Checkpoints written before a field existed load with that field's default, which reproduces the
    network they were trained with (every default here is the earlier fixed behaviour).

    Raises:
        ValueError (from :meth:`validate`): a size or weight out of range.
    """

    obs_dim: int = 12
    action_dim: int = 4
    embed_dim: int = 384
    latent_dim: int = 10
    hidden: int = 256
    encoder_hidden: int | None = None
    encoder_layers: int = 2
    sac_hidden: int | None = None
    sac_layers: int = 2
    sac_layer_norm: bool = False
    critic_layer_norm: bool = False
    bc_weight: float = 0.0
    actor_average: float = 0.0
    decoder_hidden: int | None = None
    batch_size: int = 128
    lr: float = 3e-4
    gamma: float = 0.99
    tau: float = 0.005
    zeta: float = 0.5
    eta: float = 1.0
    xi: float = 0.001
    max_tasks: int = 10
    init_alpha: float = 1.0
    dpmm_gamma0: float = 5.0
    dpmm_sF: float = 1e-4
    dpmm_n_batches: int = 5
    dpmm_n_laps: int = 10
    dpmm_deletes: bool = False

    @classmethod
    def paper(cls, embed_dim: int = 768, **overrides) -> "AgentConfig":
        """The paper's official configuration (Ghiara/LEGION configs; ../shared/docs/method.md section 3).

        Encoder 3 x 400, actor and critics 3 x 300 with a LayerNorm + tanh first layer, batch 512,
        RoBERTa-size embeddings by default; ``overrides`` set any other field.
        """
        values = dict(embed_dim=embed_dim, encoder_hidden=400, encoder_layers=3, sac_hidden=300, sac_layers=3,
                      sac_layer_norm=True, decoder_hidden=400, batch_size=512)
        return cls(**{**values, **overrides})

    def validate(self) -> None:
        """Raise ValueError naming the field when a size, weight or rate is out of range."""
        positive = ("obs_dim", "action_dim", "embed_dim", "latent_dim", "hidden", "encoder_layers", "sac_layers",
                    "batch_size", "max_tasks", "dpmm_n_batches", "dpmm_n_laps")
        for name in positive:
            if int(getattr(self, name)) < 1:
                raise ValueError(f"AgentConfig.{name} must be >= 1, got {getattr(self, name)!r}")
        for name in ("encoder_hidden", "sac_hidden", "decoder_hidden"):
            if getattr(self, name) is not None and int(getattr(self, name)) < 1:
                raise ValueError(f"AgentConfig.{name} must be >= 1 or None (use `hidden`), got {getattr(self, name)!r}")
        for name in ("lr", "init_alpha", "dpmm_gamma0", "dpmm_sF"):
            if not getattr(self, name) > 0:
                raise ValueError(f"AgentConfig.{name} must be > 0, got {getattr(self, name)!r}")
        if not 0 <= self.actor_average < 1:
            raise ValueError(f"AgentConfig.actor_average is the rate of the actor's weight average, in [0, 1) "
                             f"(0: off; e.g. 2e-4), got {self.actor_average!r}")
        if not self.bc_weight >= 0:
            raise ValueError(f"AgentConfig.bc_weight must be >= 0 (0: no behaviour cloning), got {self.bc_weight!r}")
        for name in ("zeta", "eta", "xi"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"AgentConfig.{name} (eq. 12 weight) must be >= 0, got {getattr(self, name)!r}")
        if not (0 <= self.gamma < 1 and 0 < self.tau <= 1):
            raise ValueError(f"need 0 <= gamma < 1 and 0 < tau <= 1, got gamma={self.gamma}, tau={self.tau}")

    def to_dict(self) -> dict:
        return asdict(self)


def gaussian_kl(mu_q: torch.Tensor, log_var_q: torch.Tensor, mu_p: torch.Tensor, var_p: torch.Tensor) -> torch.Tensor:
    """KL(N(mu_q, diag e^log_var_q) || N(mu_p, diag var_p)) for diagonal Gaussians, summed over the last axis.

    Shapes broadcast: e.g. q (B,1,Z) against p (1,K,Z) gives (B,K).
    """
    var_q = log_var_q.exp()
    return 0.5 * (torch.log(var_p) - log_var_q + (var_q + (mu_q - mu_p) ** 2) / var_p - 1.0).sum(-1)


def soft_kl(mu: torch.Tensor, log_var: torch.Tensor, resp: torch.Tensor, means: torch.Tensor,
            variances: torch.Tensor) -> torch.Tensor:
    """Soft-assignment KL of eq. 11: L_KL,i = sum_k p_ik KL(q(z_i) || N(mu_k, Sigma_k)).

    Args:
        mu, log_var: (B,Z) encoder posterior. resp: (B,K) responsibilities p_ik (rows sum to 1).
        means, variances: (K,Z) component means and diagonal variances of the knowledge space.

    Returns:
        (B,) per-sample KL.
    """
    kl = gaussian_kl(mu[:, None, :], log_var[:, None, :], means[None], variances[None])  # (B,K)
    return (resp * kl).sum(-1)


class LegionAgent(nn.Module):
    """LEGION: encoder, knowledge space, language/dynamics decoders, SAC actor and twin critics.

    Args:
        config: :class:`AgentConfig`.
        seed: seeds torch and the knowledge space.

    Attributes:
        knowledge_space: the fitted DPMM, or ``None`` before the first :meth:`fit_knowledge_space`.
    """

    def __init__(self, config: AgentConfig | None = None, seed: int = 0):
        super().__init__()
        self.config = c = config or AgentConfig()
        c.validate()
        self.seed = seed
        torch.manual_seed(seed)
        enc_h, sac_h, dec_h = (c.encoder_hidden or c.hidden), (c.sac_hidden or c.hidden), (c.decoder_hidden or c.hidden)
        self.normalizer = InputNormalizer(c.obs_dim, c.embed_dim)
        self.encoder = TaskEncoder(c.obs_dim, c.embed_dim, c.latent_dim, enc_h, c.encoder_layers)
        self.language_decoder = LanguageDecoder(c.latent_dim, c.embed_dim, dec_h)
        self.dynamics_decoder = DynamicsDecoder(c.obs_dim, c.action_dim, c.latent_dim, dec_h)
        self.actor = Actor(c.obs_dim, c.latent_dim, c.action_dim, sac_h, c.sac_layers, c.sac_layer_norm)
        self.critic = TwinCritic(c.obs_dim, c.latent_dim, c.action_dim, sac_h, c.sac_layers, c.sac_layer_norm,
                                 c.critic_layer_norm)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        # the deployed actor when AgentConfig.actor_average > 0 (a Polyak average of self.actor's weights)
        self.actor_average = copy.deepcopy(self.actor).requires_grad_(False) if c.actor_average > 0 else None
        self.log_alpha = nn.Parameter(torch.full((c.max_tasks,), float(np.log(c.init_alpha))))
        self.target_entropy = -float(c.action_dim)
        self.knowledge_space = None
        self.reset_optimizers()

    # ----------------------------------------------------------------------------------------- setup
    def reset_optimizers(self) -> None:
        """Fresh Adam optimisers (paper: optimiser state is reset at the start of every task)."""
        lr = self.config.lr
        upstream = [*self.encoder.parameters(), *self.language_decoder.parameters(),
                    *self.dynamics_decoder.parameters()]
        # fused: one kernel per step for all parameters (measured 15% faster SAC updates on CPU)
        self.upstream_optimizer = torch.optim.Adam(upstream, lr=lr, fused=True)
        self.actor_optimizer = torch.optim.Adam(self.actor.parameters(), lr=lr, fused=True)
        self.critic_optimizer = torch.optim.Adam(self.critic.parameters(), lr=lr, fused=True)
        self.alpha_optimizer = torch.optim.Adam([self.log_alpha], lr=lr, fused=True)

    def _new_knowledge_space(self):
        from legion_policy.knowledge_space import KnowledgeSpace

        c = self.config
        return KnowledgeSpace(c.latent_dim, gamma0=c.dpmm_gamma0, sF=c.dpmm_sF, n_batches=c.dpmm_n_batches,
                              n_laps=c.dpmm_n_laps, seed=self.seed, deletes=c.dpmm_deletes)

    @property
    def device(self) -> torch.device:
        """Where the networks live (``agent.to(device)``); numpy inputs of :meth:`act` are moved there."""
        return self.log_alpha.device

    # ------------------------------------------------------------------------------------- inference
    def posterior(self, obs: torch.Tensor, embed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z | s, l): raw obs (B,S) m and unit-norm embeddings (B,L) -> (mu (B,Z), log_var (B,Z))."""
        return self.encoder(self.normalizer.obs(obs), self.normalizer.embed(embed))

    @torch.no_grad()
    def latent(self, obs: torch.Tensor, embed: torch.Tensor) -> torch.Tensor:
        """The z the RL side sees: posterior mean mu(s, l), (B,Z), without gradient."""
        return self.posterior(obs, embed)[0]

    @property
    def policy_actor(self) -> "Actor":
        """The actor whose deterministic action is evaluated and deployed: the weight average when
        ``AgentConfig.actor_average`` > 0, else the trained actor."""
        return self.actor if self.actor_average is None else self.actor_average

    #: False: the task is inferred from (s, l); baselines conditioned on the task index set True.
    uses_task_id = False

    @torch.no_grad()
    def act(self, obs: np.ndarray, embed: np.ndarray, deterministic: bool = False, task=None) -> np.ndarray:
        """Actions for one observation or a batch (one actor pass for all rows of a vector environment).

        Args:
            obs: (S,) or (N,S) sim-frame observations, m. embed: (L,) or (N,L) unit-norm language embeddings.
            deterministic: tanh(mean) of :attr:`policy_actor` instead of a sample from pi (the trained actor).
            task: ignored (LEGION infers the task from the state and the language input).

        Returns:
            (A,) or (N,A) float32 actions in [-1, 1], matching ``obs``.
        """
        o = torch.as_tensor(obs, dtype=torch.float32, device=self.device)
        single = o.dim() == 1
        o = o.reshape(-1, o.shape[-1])
        e = torch.as_tensor(embed, dtype=torch.float32, device=self.device).reshape(o.shape[0], -1)
        s_n, z = self.normalizer.obs(o), self.latent(o, e)
        a = self.policy_actor.deterministic(s_n, z) if deterministic else self.actor.sample(s_n, z)[0]
        return (a[0] if single else a).cpu().numpy().astype(np.float32)

    # -------------------------------------------------------------------------------------- upstream
    def upstream_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """Eq. 12: zeta * L_dyn + eta * L_embed + xi * L_KL on a batch (means over the batch).

        L_embed: sum of squared errors of the language decoder's reconstruction of l (``embed_target``
        if the batch has it, else ``embed``).
        L_dyn: sum of squared errors of the predicted normalised s_{t+1}.
        L_KL: eq. 11 with the current knowledge space (responsibilities of the sampled z, held fixed),
        or KL(q(z|s,l) || N(0, I)) before its first fit.
        """
        c = self.config
        s_n = self.normalizer.obs(batch["obs"])
        mu, log_var = self.encoder(s_n, self.normalizer.embed(batch["embed"]))
        z = TaskEncoder.sample(mu, log_var)
        target = batch.get("embed_target", batch["embed"])
        l_embed = ((self.language_decoder(z) - target) ** 2).sum(-1).mean()
        next_n = self.normalizer.obs(batch["next_obs"])
        l_dyn = ((self.dynamics_decoder(s_n, batch["action"], z) - next_n) ** 2).sum(-1).mean()
        ks = self.knowledge_space
        if ks is not None and ks.fitted:
            resp = torch.as_tensor(ks.responsibilities(z.detach().double().cpu().numpy()), dtype=torch.float32,
                                   device=mu.device)
            means = torch.as_tensor(ks.means, dtype=torch.float32, device=mu.device)
            variances = torch.as_tensor(ks.variances, dtype=torch.float32, device=mu.device)
            l_kl = soft_kl(mu, log_var, resp, means, variances).mean()
        else:
            l_kl = gaussian_kl(mu, log_var, torch.zeros_like(mu), torch.ones_like(mu)).mean()
        loss = c.zeta * l_dyn + c.eta * l_embed + c.xi * l_kl
        return loss, {"loss/upstream": loss.item(), "loss/dyn": l_dyn.item(), "loss/embed": l_embed.item(),
                      "loss/kl": l_kl.item()}

    def update_encoder(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """One Adam step on the upstream loss (encoder + decoders; the DPMM is held fixed)."""
        loss, info = self.upstream_loss(batch)
        zero_grad(self.upstream_optimizer)
        loss.backward()
        adam_step(self.upstream_optimizer)
        return info

    @torch.no_grad()
    def fit_knowledge_space(self, obs: np.ndarray | torch.Tensor, embed: np.ndarray | torch.Tensor):
        """Refit the DPMM (warm start) on encoder means of the given states (alternating optimisation).

        Args:
            obs: (N,S) observations, e.g. 3000 states drawn from the replay buffer. embed: (N,L).

        Returns:
            The knowledge space's ``FitReport``.
        """
        mu = self.latent(torch.as_tensor(obs, dtype=torch.float32, device=self.device),
                         torch.as_tensor(embed, dtype=torch.float32, device=self.device))
        if self.knowledge_space is None:
            self.knowledge_space = self._new_knowledge_space()
        return self.knowledge_space.fit(mu.double().cpu().numpy())

    # ------------------------------------------------------------------------------------------- SAC
    @torch.no_grad()
    def _sac_inputs(self, batch: dict[str, torch.Tensor]):
        """Normalised s, s' and detached z = mu(s, l), z' = mu(s', l) for a batch (one encoder pass). With the
        batch's ``phrase`` ids (B,) int64 (the replay's batches have them) the language part of the encoder's first
        layer is computed once per distinct phrasing (:meth:`TaskEncoder.mean_of_phrasings`)."""
        n = batch["obs"].shape[0]
        s_n, next_n = self.normalizer.obs(batch["obs"]), self.normalizer.obs(batch["next_obs"])
        rows = torch.arange(n, device=s_n.device)
        if "phrase" in batch:  # one row per distinct phrasing, and each row's index into them
            distinct, index = torch.unique(batch["phrase"], return_inverse=True)
            first_row = torch.empty_like(distinct).scatter_(0, index, rows)
        else:  # every row its own
            first_row = index = rows
        l_n = self.normalizer.embed(batch["embed"][first_row])
        z_both = self.encoder.mean_of_phrasings(torch.cat([s_n, next_n]), l_n, index.repeat(2))
        return s_n, next_n, z_both[:n], z_both[n:]

    def critic_loss(self, batch: dict[str, torch.Tensor], inputs=None) -> tuple[torch.Tensor, dict[str, float]]:
        """Soft Bellman residual of both critics against the clipped double-Q target (SAC, eq. 5 of Haarnoja 2018)."""
        s_n, next_n, z, z_next = inputs or self._sac_inputs(batch)
        with torch.no_grad():
            alpha = self.log_alpha[batch["task"]].exp()
            a_next, logp_next = self.actor.sample(next_n, z_next)
            q1_t, q2_t = self.critic_target(next_n, a_next, z_next)
            soft_v = torch.min(q1_t, q2_t) - alpha * logp_next
            target = batch["reward"] + self.config.gamma * (1.0 - batch["done"]) * soft_v
        q1, q2 = self.critic(s_n, batch["action"], z)
        loss = ((q1 - target) ** 2).mean() + ((q2 - target) ** 2).mean()
        return loss, {"loss/critic": loss.item(), "q": q1.mean().item()}

    def actor_alpha_loss(self, batch: dict[str, torch.Tensor], inputs=None):
        """(actor_loss, alpha_loss, info): E[alpha log pi - min Q] and the temperature loss with target -|A|.

        alpha is the log-alpha entry of each sample's task; the critics are not updated by the actor loss. With
        ``bc_weight`` > 0 the actor loss also has the behaviour-cloning term on the batch's demonstration rows
        (``batch["demo"]``, (B,) bool; see :class:`AgentConfig`).
        """
        s_n, _, z, _ = inputs or self._sac_inputs(batch)
        alpha = self.log_alpha[batch["task"]].exp()
        a_pi, logp = self.actor.sample(s_n, z)
        critic_params = self._critic_params()
        for p in critic_params:  # gradient flows through Q to the action only
            p.requires_grad_(False)
        q1_pi, q2_pi = self.critic(s_n, a_pi, z)
        for p in critic_params:
            p.requires_grad_(True)
        q_pi = torch.min(q1_pi, q2_pi)
        actor_loss = (alpha.detach() * logp - q_pi).mean()
        alpha_loss = (-alpha * (logp.detach() + self.target_entropy)).mean()
        info = {"loss/actor": actor_loss.item(), "loss/alpha": alpha_loss.item(), "alpha": alpha.mean().item(),
                "entropy": -logp.mean().item()}
        if self.config.bc_weight > 0 and "demo" in batch and bool(batch["demo"].any()):
            demo = batch["demo"]
            bc = ((self.actor.deterministic(s_n[demo], z[demo]) - batch["action"][demo]) ** 2).sum(-1).mean()
            actor_loss = actor_loss + self.config.bc_weight * q_pi.abs().mean().detach() * bc
            info["loss/bc"] = bc.item()
        return actor_loss, alpha_loss, info

    def update_sac(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """One SAC update: critics, then actor and temperature, then Polyak averaging of the target critics (and of
        the actor's weight average, when on).

        Baselines hook in through :meth:`regulariser` (a loss added to the critic or actor loss) and
        :meth:`mask_gradients` (called between backward and the optimiser step).
        """
        inputs = self._sac_inputs(batch)
        critic_loss, info = self.critic_loss(batch, inputs)
        zero_grad(self.critic_optimizer)
        (critic_loss + self.regulariser("critic")).backward()
        self.mask_gradients()
        adam_step(self.critic_optimizer)
        actor_loss, alpha_loss, info_pi = self.actor_alpha_loss(batch, inputs)
        zero_grad(self.actor_optimizer)
        zero_grad(self.alpha_optimizer)
        # disjoint parameters: one backward pass for both
        (actor_loss + self.regulariser("actor") + alpha_loss).backward()
        self.mask_gradients()
        adam_step(self.actor_optimizer)
        adam_step(self.alpha_optimizer)
        self._polyak()
        return {**info, **info_pi}

    def regulariser(self, which: str) -> torch.Tensor | float:
        """Extra loss on the ``"actor"`` or ``"critic"`` weights (LEGION: none; EWC's penalty)."""
        return 0.0

    def mask_gradients(self) -> None:
        """Edit gradients before an optimiser step (LEGION: nothing; PackNet freezes packed weights)."""

    def _critic_params(self) -> list[torch.Tensor]:
        # cached: walking the module tree twice per update is a measurable share of a small SAC update
        if getattr(self, "_critic_param_cache", None) is None:
            self._critic_param_cache = (list(self.critic.parameters()), list(self.critic_target.parameters()))
        return self._critic_param_cache[0]

    @torch.no_grad()
    def _polyak(self) -> None:
        """Target critics <- (1 - tau) target + tau critics (one fused foreach kernel over all tensors); the actor's
        average likewise at ``actor_average``."""
        self._critic_params()
        params, targets = self._critic_param_cache
        torch._foreach_lerp_(targets, params, self.config.tau)
        if self.actor_average is not None:
            if getattr(self, "_actor_param_cache", None) is None:  # cached as the critics' (one walk, not one per update)
                self._actor_param_cache = (list(self.actor.parameters()), list(self.actor_average.parameters()))
            actor, average = self._actor_param_cache
            torch._foreach_lerp_(average, actor, self.config.actor_average)

    def on_task_end(self, task: int, replay, rng: np.random.Generator) -> None:
        """Hook the trainer calls after each task visit (LEGION: nothing; baselines store memories/Fishers)."""

    # -------------------------------------------------------------------------------------- persist
    def tensors(self) -> dict[str, torch.Tensor]:
        """Every weight and buffer as a flat name -> tensor dict (safetensors-ready, contiguous copies)."""
        return {k: v.detach().cpu().clone().contiguous() for k, v in self.state_dict().items()}

    def load_tensors(self, tensors: dict[str, torch.Tensor], strict: bool = True) -> list[str]:
        """Inverse of :meth:`tensors`; returns the names of tensors that were absent (``strict=False`` only,
        e.g. a deployment subset without critics). Raises RuntimeError on unknown names or wrong shapes."""
        result = self.load_state_dict(tensors, strict=strict)
        if result.unexpected_keys:
            raise RuntimeError(f"unexpected tensors {result.unexpected_keys[:5]}")
        return list(result.missing_keys)
