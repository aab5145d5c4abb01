"""LEGION agent: module shapes, the soft-assignment KL (eq. 11), gradient isolation, and that each loss learns."""
import numpy as np
import pytest
import torch

from legion_policy.agent import AgentConfig, LegionAgent, gaussian_kl, soft_kl
from legion_policy.networks import Actor, DynamicsDecoder, InputNormalizer, LanguageDecoder, TaskEncoder, TwinCritic

torch.set_num_threads(1)
B, S, A, L, Z = 16, 12, 4, 384, 10


def make_batch(n=B, seed=0, n_tasks=2):
    g = torch.Generator().manual_seed(seed)
    obs = torch.tensor([0.0, 0.6, 0.2] * 4) + 0.1 * torch.randn(n, S, generator=g)
    obs[:, 6:9] = 0
    embed = torch.nn.functional.normalize(torch.randn(n_tasks, L, generator=g), dim=-1)
    task = torch.arange(n) % n_tasks
    return {"obs": obs, "next_obs": obs + 0.01 * torch.randn(n, S, generator=g),
            "action": torch.rand(n, A, generator=g) * 2 - 1, "reward": torch.rand(n, generator=g) * 10,
            "done": torch.zeros(n), "embed": embed[task], "task": task}


@pytest.fixture(params=["default", "paper-layout"])
def agent(request):
    """The default networks, and the paper's layout (3 layers, LayerNorm + tanh SAC trunk) at a test width."""
    extra = {"encoder_layers": 3, "sac_layers": 3, "sac_layer_norm": True} if request.param == "paper-layout" else {}
    return LegionAgent(AgentConfig(hidden=64, batch_size=B, **extra), seed=0)


def test_module_shapes_and_dtypes():
    s, l, a, z = torch.randn(B, S), torch.randn(B, L), torch.rand(B, A) * 2 - 1, torch.randn(B, Z)
    mu, log_var = TaskEncoder(S, L, Z, 32)(s, l)
    assert mu.shape == log_var.shape == (B, Z) and mu.dtype == torch.float32
    assert TaskEncoder.sample(mu, log_var).shape == (B, Z)
    assert LanguageDecoder(Z, L, 32)(z).shape == (B, L)
    assert DynamicsDecoder(S, A, Z, 32)(s, a, z).shape == (B, S)
    actor = Actor(S, Z, A, 32)
    act, logp = actor.sample(s, z)
    assert act.shape == (B, A) and logp.shape == (B,) and act.abs().max() < 1
    assert actor.deterministic(s, z).shape == (B, A)
    q1, q2 = TwinCritic(S, Z, A, 32)(s, a, z)
    assert q1.shape == q2.shape == (B,)


def test_normalizer_maps_workspace_to_unit_box():
    norm = InputNormalizer(S, L)
    corners = torch.tensor([[-0.525, 0.348, -0.0525] * 2 + [0, 0, 0] + [-0.525, 0.348, -0.0525],
                            [0.525, 1.025, 0.7] * 2 + [0, 0, 0] + [0.525, 1.025, 0.7]])
    out = norm.obs(corners)
    np.testing.assert_allclose(out[0, [0, 1, 2, 3, 4, 5, 9, 10, 11]], -1, atol=1e-6)
    np.testing.assert_allclose(out[1, [0, 1, 2, 3, 4, 5, 9, 10, 11]], 1, atol=1e-6)
    unit = torch.nn.functional.normalize(torch.randn(3, L), dim=-1)
    np.testing.assert_allclose(norm.embed(unit).pow(2).sum(-1), L, rtol=1e-5)
    with pytest.raises(ValueError, match="12-d"):
        InputNormalizer(10, L)


def test_soft_kl_equals_weighted_torch_distributions_kl():
    g = torch.Generator().manual_seed(1)
    K = 3
    mu, log_var = torch.randn(B, Z, generator=g), torch.randn(B, Z, generator=g) * 0.5
    means, variances = torch.randn(K, Z, generator=g), torch.rand(K, Z, generator=g) + 0.1
    resp = torch.softmax(torch.randn(B, K, generator=g), -1)
    q = torch.distributions.Normal(mu, (0.5 * log_var).exp())
    expected = torch.zeros(B)
    for k in range(K):
        p = torch.distributions.Normal(means[k], variances[k].sqrt())
        expected += resp[:, k] * torch.distributions.kl_divergence(q, p).sum(-1)
    torch.testing.assert_close(soft_kl(mu, log_var, resp, means, variances), expected, rtol=1e-5, atol=1e-5)
    # Before the first DPMM fit the prior is N(0, I).
    std = torch.distributions.kl_divergence(q, torch.distributions.Normal(0.0, 1.0)).sum(-1)
    torch.testing.assert_close(gaussian_kl(mu, log_var, torch.zeros(Z), torch.ones(Z)), std, rtol=1e-5, atol=1e-5)


def test_no_rl_gradient_reaches_the_encoder(agent):
    batch = make_batch()
    critic_loss, _ = agent.critic_loss(batch)
    actor_loss, alpha_loss, _ = agent.actor_alpha_loss(batch)
    (critic_loss + actor_loss + alpha_loss).backward()
    assert all(p.grad is None for p in agent.encoder.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in agent.critic.parameters())
    assert all(p.grad is not None for p in agent.actor.parameters())
    # The actor loss must not train the critics.
    agent.zero_grad(set_to_none=True)
    agent.actor_alpha_loss(batch)[0].backward()
    assert all(p.grad is None for p in agent.critic.parameters())
    # The upstream loss does train the encoder.
    agent.upstream_loss(batch)[0].backward()
    assert all(p.grad is not None for p in agent.encoder.parameters())


def _loss_after_one_step(agent, batch, loss_fn, optimizer):
    torch.manual_seed(5)
    before = loss_fn()
    optimizer.zero_grad(set_to_none=True)
    before.backward()
    optimizer.step()
    torch.manual_seed(5)  # same reparameterisation noise
    return before.item(), loss_fn().item()


@pytest.mark.parametrize("which", ["critic", "actor", "alpha", "upstream"])
def test_one_update_lowers_each_loss_on_a_fixed_batch(agent, which):
    batch = make_batch(n=64)
    fns = {"critic": (lambda: agent.critic_loss(batch)[0], agent.critic_optimizer),
           "actor": (lambda: agent.actor_alpha_loss(batch)[0], agent.actor_optimizer),
           "alpha": (lambda: agent.actor_alpha_loss(batch)[1], agent.alpha_optimizer),
           "upstream": (lambda: agent.upstream_loss(batch)[0], agent.upstream_optimizer)}
    before, after = _loss_after_one_step(agent, batch, *fns[which])
    assert after < before, f"{which} loss did not decrease: {before} -> {after}"


def test_update_sac_moves_targets_by_polyak_rate(agent):
    before = [p.clone() for p in agent.critic_target.parameters()]
    info = agent.update_sac(make_batch())
    assert {"loss/critic", "loss/actor", "loss/alpha", "alpha", "entropy"} <= set(info)
    for p_old, p_t, p in zip(before, agent.critic_target.parameters(), agent.critic.parameters()):
        torch.testing.assert_close(p_t, p_old + agent.config.tau * (p - p_old), rtol=1e-5, atol=1e-6)


def test_reset_optimizers_clears_adam_state(agent):
    agent.update_sac(make_batch())
    assert len(agent.critic_optimizer.state) > 0
    agent.reset_optimizers()
    assert len(agent.critic_optimizer.state) == 0 and len(agent.upstream_optimizer.state) == 0


def test_act_returns_bounded_float32_action(agent):
    obs, emb = make_batch()["obs"][0].numpy(), make_batch()["embed"][0].numpy()
    a = agent.act(obs, emb)
    assert a.shape == (A,) and a.dtype == np.float32 and np.all(np.abs(a) <= 1)
    np.testing.assert_array_equal(agent.act(obs, emb, deterministic=True), agent.act(obs, emb, deterministic=True))


def test_knowledge_space_fit_switches_kl_to_soft_assignment(agent):
    pytest.importorskip("legion_policy.knowledge_space")
    batch = make_batch(n=300)
    assert agent.upstream_loss(batch)[1]["loss/kl"] > 0
    agent.fit_knowledge_space(batch["obs"].numpy(), batch["embed"].numpy())
    ks = agent.knowledge_space
    assert ks.fitted and ks.K >= 1 and ks.means.shape == (ks.K, Z)
    torch.manual_seed(0)
    loss, info = agent.upstream_loss(batch)
    # Recompute eq. 11 by hand from the fitted mixture with the same noise.
    torch.manual_seed(0)
    mu, log_var = agent.posterior(batch["obs"], batch["embed"])
    z = TaskEncoder.sample(mu, log_var)
    resp = torch.as_tensor(ks.responsibilities(z.detach().double().numpy()), dtype=torch.float32)
    expected = soft_kl(mu, log_var, resp, torch.as_tensor(ks.means, dtype=torch.float32),
                       torch.as_tensor(ks.variances, dtype=torch.float32)).mean()
    assert info["loss/kl"] == pytest.approx(expected.item(), rel=1e-4)


def test_language_decoder_reconstructs_the_task_description(agent):
    """L_embed is measured against ``embed_target`` (the task's canonical description) when given."""
    batch = make_batch()
    torch.manual_seed(0)
    own = agent.upstream_loss(batch)[1]["loss/embed"]
    torch.manual_seed(0)
    mu, log_var = agent.posterior(batch["obs"], batch["embed"])
    target = torch.nn.functional.normalize(torch.ones(B, L), dim=-1)
    expected = ((agent.language_decoder(TaskEncoder.sample(mu, log_var)) - target) ** 2).sum(-1).mean()
    torch.manual_seed(0)
    other = agent.upstream_loss({**batch, "embed_target": target})[1]["loss/embed"]
    assert other == pytest.approx(expected.item(), rel=1e-5) and other != pytest.approx(own)


def test_phrasings_of_one_task_converge_to_one_task_code():
    """With the description as decoder target, two phrasings of a task get (nearly) the same z."""
    g = torch.Generator().manual_seed(0)
    base = torch.nn.functional.normalize(torch.randn(2, L, generator=g), dim=-1)
    # phrasings 0, 1 -> task 0; phrasings 2, 3 -> task 1; each phrasing has cosine ~0.7 to its description
    noise = torch.nn.functional.normalize(torch.randn(4, L, generator=g), dim=-1)
    table = torch.nn.functional.normalize(base[[0, 0, 1, 1]] + noise, dim=-1)
    canonical = torch.tensor([0, 0, 2, 2])
    agent = LegionAgent(AgentConfig(hidden=64, batch_size=64), seed=0)
    for i in range(300):
        batch = make_batch(n=64, seed=i)
        phrase = torch.randint(0, 4, (64,), generator=g)
        batch.update(embed=table[phrase], embed_target=table[canonical[phrase]])
        agent.update_encoder(batch)
    obs = make_batch(n=1)["obs"].repeat(4, 1)
    d = torch.cdist(agent.latent(obs, table), agent.latent(obs, table))
    within, between = max(d[0, 1], d[2, 3]), d[:2, 2:].min()
    assert within < 0.2 * between, f"within-task distance {within:.3f}, between-task {between:.3f}"


@pytest.mark.parametrize("field, value", [("hidden", 0), ("encoder_layers", 0), ("sac_hidden", -3), ("lr", 0.0),
                                          ("gamma", 1.0), ("tau", 0.0), ("xi", -1.0), ("dpmm_sF", 0.0)])
def test_config_out_of_range_is_refused_with_the_field_name(field, value):
    with pytest.raises(ValueError, match=field):
        LegionAgent(AgentConfig(**{field: value}))


def test_layer_sizes_follow_the_config():
    agent = LegionAgent(AgentConfig(hidden=32, encoder_hidden=48, encoder_layers=3, sac_hidden=24, sac_layers=1,
                                    sac_layer_norm=True, decoder_hidden=16), seed=0)
    widths = lambda m: [x.out_features for x in m.modules() if isinstance(x, torch.nn.Linear)]
    assert widths(agent.encoder) == [48, 48, 48, 2 * Z]
    assert widths(agent.actor) == [24, 2 * A] and [tuple(w.shape) for w in agent.critic.weights] == [(2, S + Z + A, 24),
                                                                                                    (2, 24, 1)]
    assert agent.critic.tanh_first and agent.critic.norm_weight.shape == (1, 2, 1, 24)
    assert widths(agent.language_decoder) == [16, L] and widths(agent.dynamics_decoder) == [16, 16, S]
    assert isinstance(agent.actor.net[1], torch.nn.LayerNorm) and isinstance(agent.actor.net[2], torch.nn.Tanh)
    info = agent.update_sac(make_batch())  # the LayerNorm trunk trains like the plain one
    assert np.isfinite(info["loss/critic"]) and np.isfinite(info["loss/actor"])


def test_actor_log_prob_equals_torch_distributions_with_tanh_correction():
    from legion_policy.networks import Actor

    actor = Actor(12, 10, 4, 32)
    s, z = torch.randn(64, 12), torch.randn(64, 10)
    torch.manual_seed(3)
    a, logp = actor.sample(s, z)
    torch.manual_seed(3)
    mean, log_std = actor(s, z)
    u = mean + torch.randn_like(mean) * log_std.exp()
    expected = (torch.distributions.Normal(mean, log_std.exp()).log_prob(u) - torch.log1p(-torch.tanh(u) ** 2)).sum(-1)
    torch.testing.assert_close(a, torch.tanh(u))
    torch.testing.assert_close(logp, expected, atol=1e-3, rtol=1e-4)


@pytest.mark.parametrize("layer_norm", [False, True])
def test_twin_critic_is_two_independent_networks_and_loads_the_sequential_layout(layer_norm):
    """The batched twin critic equals two separate MLPs (mlp()) with the same weights, and a state written with
    those (``critic.q1.0.weight``: checkpoints and states from before the batched layout) loads into it."""
    from legion_policy.networks import TwinCritic, mlp

    torch.manual_seed(0)
    q1, q2 = mlp(S + Z + A, 32, 1, 2, layer_norm), mlp(S + Z + A, 32, 1, 2, layer_norm)
    old = {**{f"q1.{k}": v for k, v in q1.state_dict().items()}, **{f"q2.{k}": v for k, v in q2.state_dict().items()}}
    critic = TwinCritic(S, Z, A, 32, 2, layer_norm)
    critic.load_state_dict(old)
    s_n, a, z = torch.randn(7, S), torch.rand(7, A) * 2 - 1, torch.randn(7, Z)
    x = torch.cat([s_n, z, a], -1)
    o1, o2 = critic(s_n, a, z)
    torch.testing.assert_close(o1, q1(x).squeeze(-1))
    torch.testing.assert_close(o2, q2(x).squeeze(-1))
    fresh = TwinCritic(S, Z, A, 32, 2, layer_norm)
    assert not torch.equal(fresh.weights[0][0], fresh.weights[0][1])  # each critic its own initialisation


def test_critic_layer_norm_normalises_every_hidden_layer(monkeypatch):
    """critic_layer_norm (RLPD): each hidden layer's features have zero mean and unit variance before the ReLU."""
    from legion_policy.networks import TwinCritic

    critic = TwinCritic(S, Z, A, 32, 3, layer_norm_all=True)
    assert critic.normed == [0, 1, 2] and critic.norm_weight.shape == (3, 2, 1, 32)
    seen = []  # the real layer_norm, its outputs recorded
    real = torch.nn.functional.layer_norm
    monkeypatch.setattr(torch.nn.functional, "layer_norm", lambda h, shape: seen.append(real(h, shape)) or seen[-1])
    q1, q2 = critic(torch.randn(9, S) * 50, torch.rand(9, A), torch.randn(9, Z))
    monkeypatch.undo()
    assert len(seen) == 3 and q1.shape == q2.shape == (9,)
    for h in seen:
        torch.testing.assert_close(h.mean(-1), torch.zeros(2, 9), atol=1e-5, rtol=0)
    agent = LegionAgent(AgentConfig(hidden=32, critic_layer_norm=True), seed=0)
    info = agent.update_sac(make_batch())
    assert agent.critic.normed == [0, 1] and np.isfinite(info["loss/critic"])


def test_behaviour_cloning_pulls_the_mean_action_to_the_demonstrations_only_on_their_rows():
    """bc_weight > 0: SAC updates move tanh(mean) toward the demonstrated actions on the demo rows; without it the
    actor ignores them (pure SAC); with no demo rows in the batch there is no cloning term."""
    batch = make_batch(n=32)
    batch["demo"] = demo = torch.arange(32) < 16
    ratio = {}
    for weight in (0.0, 4.0):
        agent = LegionAgent(AgentConfig(hidden=64, batch_size=32, bc_weight=weight), seed=0)

        def demo_error():
            s_n, _, z, _ = agent._sac_inputs(batch)
            with torch.no_grad():
                return ((agent.actor.deterministic(s_n, z) - batch["action"]) ** 2).sum(-1)[demo].mean().item()

        before = demo_error()
        for _ in range(300):
            info = agent.update_sac(batch)
        ratio[weight] = demo_error() / before
        assert ("loss/bc" in info) == (weight > 0)
    assert ratio[4.0] < 0.5 and ratio[0.0] > 0.8, ratio  # measured: 0.31 and 1.68
    agent = LegionAgent(AgentConfig(hidden=64, batch_size=32, bc_weight=4.0), seed=0)
    no_demo = {k: v for k, v in batch.items() if k != "demo"}
    assert "loss/bc" not in agent.update_sac({**no_demo, "demo": torch.zeros(32, dtype=torch.bool)})
    assert "loss/bc" not in agent.update_sac(no_demo)


def test_behaviour_cloning_needs_demonstrations():
    from legion_policy.train_config import TrainConfig, TrainConfigError

    with pytest.raises(ValueError, match="bc_weight must be >= 0"):
        AgentConfig(bc_weight=-1.0).validate()
    with pytest.raises(TrainConfigError, match="clones demonstrations, and none are given"):
        TrainConfig(tasks=["reach-v3"], agent=AgentConfig(bc_weight=0.4)).validate()


def test_actor_average_follows_the_actor_at_its_rate_and_is_what_acts_deterministically():
    """actor_average r > 0: after every update theta_avg <- (1 - r) theta_avg + r theta; the deterministic action
    (evaluation, deployment) is the average's, a sampled one (collection) comes from the trained actor."""
    agent = LegionAgent(AgentConfig(hidden=64, batch_size=B, actor_average=0.05), seed=0)
    batch = make_batch()
    for _ in range(3):
        before = [p.clone() for p in agent.actor_average.parameters()]
        agent.update_sac(batch)
        for p_old, p_avg, p in zip(before, agent.actor_average.parameters(), agent.actor.parameters()):
            torch.testing.assert_close(p_avg, p_old + 0.05 * (p - p_old), rtol=1e-5, atol=1e-6)
    assert agent.policy_actor is agent.actor_average
    assert not any(p.requires_grad for p in agent.actor_average.parameters())
    obs, emb = batch["obs"][:4], batch["embed"][:4]
    with torch.no_grad():
        s_n, z = agent.normalizer.obs(obs), agent.latent(obs, emb)
        averaged, trained = agent.actor_average.deterministic(s_n, z), agent.actor.deterministic(s_n, z)
    assert (averaged - trained).abs().max() > 1e-4  # three updates apart: they differ
    np.testing.assert_allclose(agent.act(obs.numpy(), emb.numpy(), deterministic=True), averaged.numpy(), atol=1e-6)
    plain = LegionAgent(AgentConfig(hidden=64, batch_size=B), seed=0)
    assert plain.actor_average is None and plain.policy_actor is plain.actor
    assert not any(k.startswith("actor_average.") for k in plain.state_dict())


def test_actor_average_out_of_range_or_for_a_baseline_is_refused():
    from legion_policy.train_config import TrainConfig, TrainConfigError

    for bad in (-1e-3, 1.0):
        with pytest.raises(ValueError, match=r"actor_average is the rate .* in \[0, 1\)"):
            AgentConfig(actor_average=bad).validate()
    with pytest.raises(TrainConfigError, match="actor_average .* is a LEGION option; method 'finetune'"):
        TrainConfig(tasks=["reach-v3"], method="finetune", agent=AgentConfig(actor_average=2e-4)).validate()


@pytest.mark.parametrize("layer_norm", [False, True])
def test_sac_updates_through_adam_step_equal_torch_optim_adam_to_the_bit(monkeypatch, layer_norm):
    """legion_policy.optim.adam_step / zero_grad (the direct fused kernel) against torch.optim.Adam.step() /
    zero_grad(): twenty SAC and encoder updates, then an optimiser state saved and loaded (a resumed run), then five
    more; every weight and every Adam moment equal to the bit."""
    import legion_policy.agent as agent_module
    from legion_policy.optim import adam_step

    def run(direct: bool) -> LegionAgent:
        if not direct:
            monkeypatch.setattr(agent_module, "adam_step", lambda opt: opt.step())
            monkeypatch.setattr(agent_module, "zero_grad", lambda opt: opt.zero_grad(set_to_none=True))
        a = LegionAgent(AgentConfig(hidden=32, batch_size=B, critic_layer_norm=layer_norm), seed=3)
        for i in range(20):
            a.update_sac(make_batch(seed=i))
            a.update_encoder(make_batch(seed=100 + i))
        states = [o.state_dict() for o in (a.critic_optimizer, a.actor_optimizer, a.alpha_optimizer)]
        a.reset_optimizers()
        for o, s in zip((a.critic_optimizer, a.actor_optimizer, a.alpha_optimizer), states):
            o.load_state_dict(s)
        for i in range(5):
            a.update_sac(make_batch(seed=50 + i))
        monkeypatch.undo()
        return a

    direct, reference = run(True), run(False)
    for (name, p), q in zip(direct.state_dict().items(), reference.state_dict().values()):
        assert torch.equal(p, q), name
    for o, r in ((direct.critic_optimizer, reference.critic_optimizer), (direct.upstream_optimizer,
                                                                        reference.upstream_optimizer)):
        for s, t in zip(o.state.values(), r.state.values()):
            assert all(torch.equal(s[k], t[k]) for k in ("step", "exp_avg", "exp_avg_sq"))
    assert float(direct.critic_optimizer.state[direct.critic.weights[0]]["step"]) == 25

    # a setting the direct call does not carry goes through torch.optim (here amsgrad), with the same result
    p1, p2 = torch.nn.Parameter(torch.ones(3)), torch.nn.Parameter(torch.ones(3))
    o1 = torch.optim.Adam([p1], lr=0.1, amsgrad=True, fused=True)
    o2 = torch.optim.Adam([p2], lr=0.1, amsgrad=True, fused=True)
    for k in range(3):
        p1.grad, p2.grad = torch.full((3,), k - 1.0), torch.full((3,), k - 1.0)
        adam_step(o1)
        o2.step()
    assert torch.equal(p1, p2) and "max_exp_avg_sq" in o1.state[p1]


def test_sac_latents_computed_once_per_phrasing_equal_the_plain_encoder_pass():
    """LegionAgent._sac_inputs with the replay's phrase ids (the language part of the encoder's first layer once per
    distinct phrasing) against the encoder run on every row: same z and z' to float rounding, for the default
    encoder and the paper's three-layer one, with phrasings repeated and interleaved as in a replay batch."""
    for extra in ({}, {"encoder_layers": 3, "encoder_hidden": 48}):
        agent = LegionAgent(AgentConfig(hidden=32, batch_size=B, **extra), seed=1)
        batch = make_batch(n=40, n_tasks=5)
        batch["phrase"] = torch.tensor([7, 3, 7, 9, 3] * 8)  # ids of the 5 embeddings, rows 0..4 repeated
        batch["embed"] = batch["embed"][torch.tensor([0, 1, 0, 2, 1] * 8)]
        s_n, next_n, z, z_next = agent._sac_inputs(batch)
        plain = {k: v for k, v in batch.items() if k != "phrase"}
        s_ref, next_ref, z_ref, z_next_ref = agent._sac_inputs(plain)
        assert torch.equal(s_n, s_ref) and torch.equal(next_n, next_ref)
        torch.testing.assert_close(z, z_ref, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(z_next, z_next_ref, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(z, agent.latent(batch["obs"], batch["embed"]), rtol=1e-5, atol=1e-6)
        assert not z.requires_grad and z.shape == (40, agent.config.latent_dim)
