"""Baselines on LEGION's SAC backbone: one-hot task conditioning, A-GEM's projection, EWC's penalty."""
import numpy as np
import pytest
import torch

from legion_policy.agent import AgentConfig
from legion_policy.baselines import AGEMAgent, EWCAgent, SACAgent
from legion_policy.replay import ReplayBuffer

torch.set_num_threads(1)
CONFIG = AgentConfig(hidden=32, batch_size=32, embed_dim=8)


def replay_with_two_tasks(n=200):
    rng = np.random.default_rng(0)
    buf = ReplayBuffer(2 * n, 12, 4, np.eye(2, 8, dtype=np.float32))
    for task in (0, 1):
        buf.start_visit(task)
        for _ in range(n):
            obs = rng.uniform(-0.3, 0.9, 12).astype(np.float32)
            buf.add(obs, rng.uniform(-1, 1, 4), float(task * 5 + obs[0]), obs + 0.01, 0.0, phrase=task, task=task)
    return buf


def test_sac_baseline_is_conditioned_on_the_task_index():
    agent = SACAgent(CONFIG)
    obs, emb = np.full(12, 0.2, np.float32), np.zeros(8, np.float32)
    a0, a1 = (agent.act(obs, emb, deterministic=True, task=t) for t in (0, 1))
    assert a0.shape == (4,) and not np.allclose(a0, a1)
    with pytest.raises(ValueError, match="pass task="):
        agent.act(obs, emb)
    assert agent.update_encoder({}) == {} and agent.fit_knowledge_space(None, None) is None
    with pytest.raises(ValueError, match="latent_dim >= max_tasks"):
        SACAgent(AgentConfig(latent_dim=4))


def test_agem_step_never_increases_the_memory_loss_to_first_order():
    buf = replay_with_two_tasks()
    agent = AGEMAgent(CONFIG, memory_per_task=100)
    rng = np.random.default_rng(1)
    agent.on_task_end(0, buf, rng)
    assert len(agent.memory) == 1 and set(agent.memory[0]["task"].tolist()) == {0}
    params = list(agent.critic.parameters())
    sgd = torch.optim.SGD(params, lr=1e-3)  # plain gradient steps: the projection's guarantee is first order
    current = buf.batch(buf.indices_of_task(1)[:64])
    reference = agent._reference(64)
    torch.manual_seed(0)  # the critic loss samples next actions: same noise here as inside the step
    agent.zero_grad(set_to_none=True)
    agent.critic_loss(reference)[0].backward()
    g_ref = torch.cat([p.grad.reshape(-1) for p in params])
    agent.zero_grad(set_to_none=True)
    agent.critic_loss(current)[0].backward()
    g = torch.cat([p.grad.reshape(-1) for p in params])
    before = [p.detach().clone() for p in params]
    torch.manual_seed(0)
    agent._projected_step(lambda b: agent.critic_loss(current if b is None else b)[0], params, sgd, reference)
    step = torch.cat([(p.detach() - b).reshape(-1) for p, b in zip(params, before)])
    assert torch.dot(g, g_ref) < 0 and agent.projections == 1  # the tasks' critic gradients conflict here
    assert torch.dot(step, g_ref) <= 1e-6 * step.norm() * g_ref.norm()  # -lr * g_proj . g_ref <= 0
    info = agent.update_sac(current)
    assert "agem/projections" in info and np.isfinite(info["loss/critic"])


def test_ewc_penalty_anchors_weights_after_a_task():
    buf = replay_with_two_tasks()
    agent = EWCAgent(CONFIG, ewc_lambda=1e4, fisher_batches=5)
    assert float(agent.penalty().detach()) == 0.0
    agent.on_task_end(0, buf, np.random.default_rng(0))
    assert float(agent.penalty().detach()) == 0.0  # at the anchor
    assert sum(float(f.sum()) for f in agent.fisher) > 0
    free = EWCAgent(CONFIG, ewc_lambda=0.0, fisher_batches=5)
    free.load_state_dict(agent.state_dict())
    free.on_task_end(0, buf, np.random.default_rng(0))
    batch = buf.batch(buf.indices_of_task(1)[:64])
    for _ in range(20):
        agent.update_sac(batch)
        free.update_sac(batch)
    drift = lambda a: sum(float(((p.detach() - q) ** 2).sum()) for p, q in zip(a._params, a.anchor))
    assert float(agent.penalty().detach()) > 0 and drift(agent) < drift(free)


def test_packnet_freezes_a_finished_task_exactly():
    from legion_policy.baselines import PackNetAgent

    buf = replay_with_two_tasks()
    agent = PackNetAgent(CONFIG, n_tasks=4)
    obs, emb = np.full(12, 0.3, np.float32), np.zeros(8, np.float32)
    for _ in range(5):
        agent.update_sac(buf.batch(buf.indices_of_task(0)[:64]))
    agent.on_task_end(0, buf, np.random.default_rng(0))
    owned = sum(int((o == 0).sum()) for o in agent.owner)
    total = sum(o.numel() for o in agent.owner)
    assert abs(owned / total - 0.25) < 0.01  # a quarter of the capacity for the first of 4 tasks
    assert all(float(p.detach()[o < 0].abs().sum()) == 0.0 for p, o in zip(agent._weights, agent.owner))  # pruned
    action_after_task0 = agent.act(obs, emb, deterministic=True, task=0)
    biases = [p.detach().clone() for p in agent._biases]
    for _ in range(10):  # train task 1 on the free weights
        agent.update_sac(buf.batch(buf.indices_of_task(1)[:64]))
    np.testing.assert_array_equal(agent.act(obs, emb, deterministic=True, task=0), action_after_task0)
    assert all(torch.equal(a, b) for a, b in zip(agent._biases, biases))
    assert any(float(p.detach()[o < 0].abs().sum()) > 0 for p, o in zip(agent._weights, agent.owner))  # task 1 learned
    assert not np.array_equal(agent.act(obs, emb, deterministic=True, task=1), action_after_task0)


def test_packnet_retrains_only_the_weights_it_kept():
    from legion_policy.baselines import PackNetAgent

    buf = replay_with_two_tasks()
    agent = PackNetAgent(CONFIG, n_tasks=4, retrain_steps=0)
    for _ in range(5):
        agent.update_sac(buf.batch(buf.indices_of_task(0)[:64]))
    retrained = PackNetAgent(CONFIG, n_tasks=4, retrain_steps=20)
    retrained.load_state_dict(agent.state_dict())
    agent.on_task_end(0, buf, np.random.default_rng(0))  # prune only
    retrained.on_task_end(0, buf, np.random.default_rng(0))  # prune, then 20 updates on the kept weights
    for p, q, o, o2 in zip(agent._weights, retrained._weights, agent.owner, retrained.owner):
        assert torch.equal(o, o2), "same weights kept"
        assert float(q.detach()[o < 0].abs().sum()) == 0.0, "pruned weights stay zero while retraining"
    moved = sum(int((p.detach() != q.detach())[o == 0].sum()) for p, q, o in zip(agent._weights, retrained._weights, agent.owner))
    # (inputs that are always zero, e.g. the other tasks' one-hot dims, give some weights no gradient)
    assert moved > sum(int((o == 0).sum()) for o in agent.owner) / 3, "the kept weights were retrained"
    assert retrained.current == 1 and retrained._retraining is None
