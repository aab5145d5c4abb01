"""LEGION's neural modules: input normalisation, task encoder, decoders, SAC actor and twin critic.

Shapes use B for the batch size; S = 12 (observation, :mod:`sim2real.observation`), A = 4 (action),
L = language-embedding size (384 for all-MiniLM-L6-v2, 768 for RoBERTa), Z = latent size (10).
All tensors are float32.

Sizes: the paper's official code uses three 400-unit encoder layers and three 300-unit SAC layers
(first one LayerNorm + tanh) with batch 512 (``AgentConfig.paper()``); this project defaults to two
256-unit layers everywhere and batch 128 (``AgentConfig()``), which fits a two-task run into about
half an hour on a 2-core CPU.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

#: Per-dimension bounds used to normalise the 12-d observation: Meta-World's hand workspace
#: (``SawyerXYZEnv._HAND_SPACE``: x -0.525..0.525, y 0.348..1.025, z -0.0525..0.7 m) for the
#: end-effector, object and goal positions; the zero-padded orientation slot (6:9) is left as is.
_HAND_LOW = np.array([-0.525, 0.348, -0.0525])
_HAND_HIGH = np.array([0.525, 1.025, 0.7])
OBS_LOC = np.concatenate([(_HAND_LOW + _HAND_HIGH) / 2] * 2 + [np.zeros(3)] + [(_HAND_LOW + _HAND_HIGH) / 2])
OBS_SCALE = np.concatenate([(_HAND_HIGH - _HAND_LOW) / 2] * 2 + [np.ones(3)] + [(_HAND_HIGH - _HAND_LOW) / 2])

LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0  # SAC actor log-std range (CleanRL / SB3 convention)
_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def standard_normal_like(x: torch.Tensor) -> torch.Tensor:
    """N(0, 1) noise shaped as ``x``, always drawn from the CPU generator (``torch.manual_seed``) and moved to
    ``x``'s device: a run on CUDA draws the same noise as on the CPU, so both give the same results up to float
    tolerance (the GPU's own generator would give another stream)."""
    if x.device.type == "cpu":
        return torch.randn_like(x)
    return torch.randn(x.shape, dtype=x.dtype).to(x.device, non_blocking=True)


def mlp(in_dim: int, hidden: int, out_dim: int, n_hidden: int = 2, layer_norm: bool = False) -> nn.Sequential:
    """Multilayer perceptron ``in_dim -> hidden (x n_hidden) -> out_dim`` with a linear output.

    Hidden layers use ReLU. With ``layer_norm`` the first hidden layer is Linear -> LayerNorm -> tanh
    instead (the SAC trunk of the paper's official code, built on mtrl), which keeps the scale of
    the first features bounded whatever the input.
    """
    if n_hidden < 1 or hidden < 1:
        raise ValueError(f"an MLP needs n_hidden >= 1 and hidden >= 1, got n_hidden={n_hidden}, hidden={hidden}")
    layers: list[nn.Module] = []
    d = in_dim
    for i in range(n_hidden):
        layers.append(nn.Linear(d, hidden))
        # in place: Linear's backward keeps its input, not its output (one allocation less per layer)
        layers += [nn.LayerNorm(hidden), nn.Tanh()] if (layer_norm and i == 0) else [nn.ReLU(inplace=True)]
        d = hidden
    layers.append(nn.Linear(d, out_dim))
    return nn.Sequential(*layers)


class InputNormalizer(nn.Module):
    """Fixed per-dimension affine normalisation of (s, l).

    s_n = (s - loc) / scale with the workspace bounds :data:`OBS_LOC`, :data:`OBS_SCALE` (so positions in
    the hand workspace map to [-1, 1]); l_n = sqrt(L) * l, so a unit-norm sentence embedding has
    entries of unit scale. Fixed rather than running statistics so that inputs of earlier tasks do
    not drift while later tasks are learned (lifelong setting). Buffers are saved with checkpoints.

    Args:
        obs_dim: S (12).
        embed_dim: L.
    """

    def __init__(self, obs_dim: int, embed_dim: int):
        super().__init__()
        if obs_dim != OBS_LOC.shape[0]:
            raise ValueError(f"InputNormalizer expects the {OBS_LOC.shape[0]}-d observation, got obs_dim={obs_dim}")
        self.register_buffer("obs_loc", torch.as_tensor(OBS_LOC, dtype=torch.float32))
        self.register_buffer("obs_scale", torch.as_tensor(OBS_SCALE, dtype=torch.float32))
        self.register_buffer("embed_gain", torch.tensor(math.sqrt(embed_dim), dtype=torch.float32))

    def obs(self, s: torch.Tensor) -> torch.Tensor:
        """(B, S) raw sim-frame observation (m) -> (B, S) normalised."""
        return (s - self.obs_loc) / self.obs_scale

    def embed(self, l: torch.Tensor) -> torch.Tensor:
        """(B, L) unit-norm embedding -> (B, L) unit-scale entries."""
        return l * self.embed_gain


class TaskEncoder(nn.Module):
    """Task encoder q(z | s, l) = N(mu, diag(sigma^2)) (paper Methods; official code 780->400x3->10).

    Args:
        obs_dim: S; embed_dim: L; latent_dim: Z; hidden: width of the hidden layers; n_hidden: their number.

    forward(s_n (B,S), l_n (B,L)) -> (mu (B,Z), log_var (B,Z)), both normalised inputs.
    """

    def __init__(self, obs_dim: int, embed_dim: int, latent_dim: int = 10, hidden: int = 256, n_hidden: int = 2):
        super().__init__()
        self.trunk = mlp(obs_dim + embed_dim, hidden, 2 * latent_dim, n_hidden)
        self.latent_dim = latent_dim

    def forward(self, s_n: torch.Tensor, l_n: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, log_var = self.trunk(torch.cat([s_n, l_n], -1)).chunk(2, -1)
        return mu, log_var.clamp(-10.0, 4.0)

    def mean_of_phrasings(self, s_n: torch.Tensor, l_n: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """mu for rows whose language input repeats: s_n (N,S), l_n (U,L) the distinct embeddings, index (N,) int64
        into them -> mu (N,Z).

        The first layer's language part, W_l l + b, is computed once per distinct embedding and gathered, instead of
        once per row (a SAC batch has a few phrasings over 2 x 128 rows; the (N, 396) x (396, H) product was about
        a tenth of a LEGION update, issue 18). Equal to ``forward(s_n, l_n[index])[0]`` up to float rounding.
        """
        first, S = self.trunk[0], s_n.shape[-1]
        language = torch.addmm(first.bias, l_n, first.weight[:, S:].t())  # (U,H)
        h = torch.addmm(language[index], s_n, first.weight[:, :S].t())
        layers = iter(self.trunk)
        next(layers)  # the first layer, done above
        for layer in layers:
            h = layer(h)
        return h[:, :self.latent_dim]

    @staticmethod
    def sample(mu: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
        """Reparameterised z = mu + eps * sigma, eps ~ N(0, I) (Kingma & Welling 2014). (B,Z) -> (B,Z)."""
        return mu + standard_normal_like(mu) * (0.5 * log_var).exp()


class LanguageDecoder(nn.Module):
    """Language decoder p(l | z): (B,Z) -> (B,L) reconstruction of the (unit-norm) embedding."""

    def __init__(self, latent_dim: int, embed_dim: int, hidden: int = 256):
        super().__init__()
        self.net = mlp(latent_dim, hidden, embed_dim, n_hidden=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class DynamicsDecoder(nn.Module):
    """Dynamics decoder p(s' | s, a, z): (B,S),(B,A),(B,Z) -> (B,S) prediction of the normalised s'."""

    def __init__(self, obs_dim: int, action_dim: int, latent_dim: int, hidden: int = 256, n_hidden: int = 2):
        super().__init__()
        self.net = mlp(obs_dim + action_dim + latent_dim, hidden, obs_dim, n_hidden)

    def forward(self, s_n: torch.Tensor, a: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        # Predict the change: s' = s + f(s, a, z), which is small for one 12.5 ms step.
        return s_n + self.net(torch.cat([s_n, a, z], -1))


class Actor(nn.Module):
    """SAC squashed-Gaussian actor pi(a | s, z) (Haarnoja et al. 2018; CleanRL's layout).

    forward(s_n (B,S), z (B,Z)) -> (mean (B,A), log_std (B,A)), log_std in [LOG_STD_MIN, LOG_STD_MAX].
    ``n_hidden`` hidden layers of width ``hidden``; ``layer_norm``: LayerNorm + tanh first layer (see :func:`mlp`).
    """

    def __init__(self, obs_dim: int, latent_dim: int, action_dim: int, hidden: int = 256, n_hidden: int = 2,
                 layer_norm: bool = False):
        super().__init__()
        self.net = mlp(obs_dim + latent_dim, hidden, 2 * action_dim, n_hidden, layer_norm)

    def forward(self, s_n: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_std = self.net(torch.cat([s_n, z], -1)).chunk(2, -1)
        log_std = LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (torch.tanh(log_std) + 1)
        return mean, log_std

    def sample(self, s_n: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Reparameterised a = tanh(u), u ~ N(mean, std); returns (a (B,A) in (-1,1), log pi(a|s,z) (B,)).

        The Gaussian log-density is written out rather than built with ``torch.distributions.Normal``
        (same values, tested against it) because this runs several times in every SAC update.
        """
        mean, log_std = self(s_n, z)
        eps = standard_normal_like(mean)
        u = mean + eps * log_std.exp()
        a = torch.tanh(u)
        # log N(u; mean, std) = -eps^2/2 - log std - log(2 pi)/2, then the change of variables for tanh
        # (SAC paper appendix C) in its numerically stable form.
        log_prob = (-0.5 * eps.pow(2) - log_std - _HALF_LOG_2PI).sum(-1) \
            - (2 * (math.log(2) - u - nn.functional.softplus(-2 * u))).sum(-1)
        return a, log_prob

    def deterministic(self, s_n: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Deterministic action tanh(mean): (B,A) in (-1, 1)."""
        return torch.tanh(self(s_n, z)[0])


class TwinCritic(nn.Module):
    """Twin soft Q-functions Q1, Q2(s, a, z) (clipped double Q, Fujimoto et al. 2018), computed as one batched MLP.

    forward(s_n (B,S), a (B,A), z (B,Z)) -> (q1 (B,), q2 (B,)). ``n_hidden`` hidden layers of width ``hidden`` with
    ReLU; ``layer_norm``: the first one is Linear -> LayerNorm -> tanh (the paper's official code, as
    :class:`Actor`); ``layer_norm_all``: LayerNorm after every hidden layer's Linear (RLPD, Ball et al. 2023).

    The two critics are independent networks (own initialisation, own weights) whose layers are stored stacked,
    ``weights[k]`` (2, in, out) and ``biases[k]`` (2, 1, out), so each layer of both is one ``torch.baddbmm``: half
    the operator calls of two ``nn.Sequential``. LayerNorm gains and offsets are ``norm_weight`` / ``norm_bias``
    (N, 2, 1, hidden), one row per normalised layer. Checkpoints and states written with the two ``nn.Sequential``
    (``q1.0.weight``, ...) load unchanged: their tensors are stacked on load.
    """

    def __init__(self, obs_dim: int, latent_dim: int, action_dim: int, hidden: int = 256, n_hidden: int = 2,
                 layer_norm: bool = False, layer_norm_all: bool = False):
        super().__init__()
        if n_hidden < 1 or hidden < 1:
            raise ValueError(f"a critic needs n_hidden >= 1 and hidden >= 1, got n_hidden={n_hidden}, hidden={hidden}")
        dims = [obs_dim + latent_dim + action_dim] + [hidden] * n_hidden + [1]
        self.tanh_first = layer_norm
        self.normed = list(range(n_hidden)) if layer_norm_all else ([0] if layer_norm else [])
        # nn.Linear's default initialisation (U(-1/sqrt(in), 1/sqrt(in)) for weights and biases), per critic
        self.weights = nn.ParameterList([nn.Parameter(_uniform((2, i, o), i)) for i, o in zip(dims[:-1], dims[1:])])
        self.biases = nn.ParameterList([nn.Parameter(_uniform((2, 1, o), i)) for i, o in zip(dims[:-1], dims[1:])])
        if self.normed:
            self.norm_weight = nn.Parameter(torch.ones(len(self.normed), 2, 1, hidden))
            self.norm_bias = nn.Parameter(torch.zeros(len(self.normed), 2, 1, hidden))
        self._register_load_state_dict_pre_hook(_stack_sequential_critics)

    def forward(self, s_n: torch.Tensor, a: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.cat([s_n, z, a], -1)
        h = x.expand(2, *x.shape)
        last = len(self.weights) - 1
        for k, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = torch.baddbmm(b, h, w)
            if k == last:
                break
            if k in self.normed:
                n = self.normed.index(k)
                h = torch.addcmul(self.norm_bias[n], nn.functional.layer_norm(h, h.shape[-1:]), self.norm_weight[n])
            # in place: baddbmm's backward keeps its inputs, not its output
            h = torch.tanh(h) if (k == 0 and self.tanh_first) else h.relu_()
        return h[0, :, 0], h[1, :, 0]


def _uniform(shape: tuple[int, ...], fan_in: int) -> torch.Tensor:
    bound = 1.0 / math.sqrt(fan_in)
    return torch.empty(shape).uniform_(-bound, bound)


def _stack_sequential_critics(state_dict, prefix, *_args) -> None:
    """Load hook: rewrite ``{prefix}q1.<i>.weight`` ... (two ``nn.Sequential`` of :func:`mlp`, the layout before the
    batched critic) as ``{prefix}weights.<k>`` (2, in, out), ``biases.<k>`` (2, 1, out) and the LayerNorm's
    ``norm_weight`` / ``norm_bias`` (1, 2, 1, hidden)."""
    old = sorted({k for k in state_dict if k.startswith(prefix + "q1.") or k.startswith(prefix + "q2.")})
    if not old:
        return
    tensors = {k[len(prefix):]: state_dict.pop(k) for k in old}
    index = sorted({int(k.split(".")[1]) for k in tensors})  # module positions in the Sequential
    linear = [i for i in index if tensors[f"q1.{i}.weight"].dim() == 2]
    for k, i in enumerate(linear):
        state_dict[f"{prefix}weights.{k}"] = torch.stack([tensors[f"q{n}.{i}.weight"].T for n in (1, 2)])
        state_dict[f"{prefix}biases.{k}"] = torch.stack([tensors[f"q{n}.{i}.bias"][None] for n in (1, 2)])
    norm = [i for i in index if i not in linear]  # mlp(): only the first layer has a LayerNorm
    if norm:
        state_dict[f"{prefix}norm_weight"] = torch.stack([tensors[f"q{n}.{norm[0]}.weight"][None] for n in (1, 2)])[None]
        state_dict[f"{prefix}norm_bias"] = torch.stack([tensors[f"q{n}.{norm[0]}.bias"][None] for n in (1, 2)])[None]
