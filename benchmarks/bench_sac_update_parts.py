"""Where a SAC update's time goes on this CPU, against what SBX (JAX/XLA) spends (docs/performance.md).

Prints, one thread each, best of 5 repeats:
- a 128 x 256 x 256 matrix product in torch (MKL) and in jitted JAX (XLA; skipped without jax, the 'bench' extra);
- the twin critic's loss forward + gradients with autograd and with a hand-written backward (same gradients);
- fused Adam over the SAC parameters, and over one flat buffer of the same size;
- the task encoder's pass that gives z and z' (``LegionAgent._sac_inputs``) against a whole ``update_sac``;
- two of the 2026-12-08 cuts inside whole updates, each alternating with what it replaced in this process (medians of
  8 runs of 300 updates): ``adam_step`` / ``zero_grad`` against ``torch.optim``'s ``step`` / ``zero_grad`` (fine-tuning
  update), and z from the replay's ``phrase`` ids against one encoder row per sample (LEGION update, LayerNorm critics
  and BC as the recipe).

    .venv/bin/python benchmarks/bench_sac_update_parts.py
"""
from __future__ import annotations

import itertools
import os
import statistics
import time

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")

import torch  # noqa: E402

from legion_policy.agent import AgentConfig, LegionAgent  # noqa: E402
from legion_policy.networks import Actor, TwinCritic  # noqa: E402

B = 128


def best_us(fn, n: int = 500, repeats: int = 5) -> float:
    """Best mean time of ``fn`` over ``repeats`` runs of ``n`` calls, microseconds."""
    for _ in range(50):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        times.append((time.perf_counter() - t0) / n)
    return min(times) * 1e6


def products() -> None:
    a, w = torch.randn(B, 256), torch.randn(256, 256)
    flop = 2 * B * 256 * 256
    t = best_us(lambda: torch.mm(a, w), 2000)
    print(f"product 128x256x256, torch: {t:.0f} us, {flop / t / 1e3:.0f} GFLOP/s")
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        print("product, JAX: skipped (pip install -e '.[bench]')")
        return
    ja, jw = jnp.asarray(a.numpy()), jnp.asarray(w.numpy())
    mm = jax.jit(lambda x, y: x @ y)
    t = best_us(lambda: mm(ja, jw).block_until_ready(), 2000)
    print(f"product 128x256x256, JAX (XLA): {t:.0f} us, {flop / t / 1e3:.0f} GFLOP/s")


def critic_backward() -> None:
    """The critic loss's gradients by autograd and by hand (ReLU critic, no LayerNorm), checked equal."""
    critic = TwinCritic(12, 10, 4, 256, 2)
    x, target = torch.randn(B, 26), torch.randn(B)
    weights, biases = [w.detach() for w in critic.weights], [b.detach() for b in critic.biases]

    def autograd():
        critic.zero_grad(set_to_none=True)
        q1, q2 = critic(x[:, :12], x[:, 22:], x[:, 12:22])
        (((q1 - target) ** 2).mean() + ((q2 - target) ** 2).mean()).backward()
        return [w.grad for w in critic.weights]

    def by_hand():
        h0 = x.expand(2, B, 26)
        a1 = torch.baddbmm(biases[0], h0, weights[0]).relu_()
        a2 = torch.baddbmm(biases[1], a1, weights[1]).relu_()
        d = (torch.baddbmm(biases[2], a2, weights[2]) - target[None, :, None]).mul_(2.0 / B)  # dL/dq
        g2 = torch.bmm(a2.transpose(1, 2), d)
        d = torch.bmm(d, weights[2].transpose(1, 2)).mul_(a2 > 0)
        g1 = torch.bmm(a1.transpose(1, 2), d)
        d = torch.bmm(d, weights[1].transpose(1, 2)).mul_(a1 > 0)
        g0 = torch.bmm(h0.transpose(1, 2), d)
        return [g0, g1, g2]

    worst = max(float((a - b).abs().max()) for a, b in zip(autograd(), by_hand()))
    print(f"twin critic loss + gradients: autograd {best_us(autograd):.0f} us, by hand {best_us(by_hand):.0f} us "
          f"(largest gradient difference {worst:.1e})")


def adam() -> None:
    params = list(TwinCritic(12, 10, 4, 256, 2).parameters()) + list(Actor(12, 10, 4, 256, 2).parameters())
    for p in params:
        p.grad = torch.randn_like(p)
    n = sum(p.numel() for p in params)
    per_tensor = torch.optim.Adam(params, lr=3e-4, fused=True)
    flat = torch.zeros(n, requires_grad=True)
    flat.grad = torch.randn(n)
    one = torch.optim.Adam([flat], lr=3e-4, fused=True)
    print(f"fused Adam, {n} parameters: {best_us(per_tensor.step):.0f} us in {len(params)} tensors, "
          f"{best_us(one.step):.0f} us in one flat buffer")


def encoder_share() -> None:
    agent = LegionAgent(AgentConfig(obs_dim=12, action_dim=4, embed_dim=384, hidden=256, batch_size=B))
    batches = [{"obs": torch.randn(B, 12), "next_obs": torch.randn(B, 12), "embed": torch.randn(B, 384),
                "action": torch.rand(B, 4) * 2 - 1, "reward": torch.randn(B), "done": torch.zeros(B),
                "task": torch.zeros(B, dtype=torch.long)} for _ in range(20)]
    batch = itertools.cycle(batches)
    update = best_us(lambda: agent.update_sac(next(batch)), 200)

    def encoder():
        with torch.no_grad():
            agent._sac_inputs(batches[0])

    print(f"update_sac {update / 1e3:.2f} ms, of which the encoder pass for z, z' {best_us(encoder) / 1e3:.2f} ms")


def alternating_ms(update, variants: dict, runs: int = 8, n: int = 300) -> dict[str, float]:
    """Median ms per call of ``update()`` under each variant (a callable that switches it on), alternating."""
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(runs):
        for name, switch in variants.items():
            switch()
            t0 = time.perf_counter()
            for _ in range(n):
                update()
            times[name].append((time.perf_counter() - t0) / n * 1e3)
    return {name: statistics.median(t) for name, t in times.items()}


def cuts() -> None:
    import legion_policy.agent as agent_module
    from legion_policy.baselines import SACAgent
    from legion_policy.optim import adam_step, zero_grad

    table = torch.nn.functional.normalize(torch.randn(30, 384), dim=-1)

    def batch(phrases: bool) -> dict:
        ph = torch.randint(0, 6, (B,))
        b = {"obs": torch.randn(B, 12), "next_obs": torch.randn(B, 12), "action": torch.rand(B, 4) * 2 - 1,
             "reward": torch.randn(B), "done": torch.zeros(B), "task": torch.randint(0, 3, (B,)), "embed": table[ph],
             "embed_target": table[ph], "demo": torch.rand(B) < 0.5}
        return {**b, "phrase": ph} if phrases else b

    sac = SACAgent(AgentConfig(hidden=256, batch_size=B), seed=0)
    plain = itertools.cycle([batch(False) for _ in range(20)])

    def use(step, clear):
        return lambda: (setattr(agent_module, "adam_step", step), setattr(agent_module, "zero_grad", clear))

    ms = alternating_ms(lambda: sac.update_sac(next(plain)), {
        "adam_step": use(adam_step, zero_grad),
        "torch.optim": use(lambda o: o.step(), lambda o: o.zero_grad(set_to_none=True))})
    use(adam_step, zero_grad)()
    print(f"fine-tuning update: adam_step {ms['adam_step']:.2f} ms, torch.optim step {ms['torch.optim']:.2f} ms "
          f"({ms['adam_step'] / ms['torch.optim'] - 1:+.1%})")
    legion = LegionAgent(AgentConfig(hidden=256, batch_size=B, critic_layer_norm=True, bc_weight=0.4), seed=0)
    current = {}
    streams = {k: itertools.cycle([batch(k) for _ in range(20)]) for k in (True, False)}
    ms = alternating_ms(lambda: legion.update_sac(next(current["s"])), {
        "phrase ids": lambda: current.update(s=streams[True]), "per row": lambda: current.update(s=streams[False])})
    print(f"LEGION update (recipe): z from phrase ids {ms['phrase ids']:.2f} ms, one encoder row per sample "
          f"{ms['per row']:.2f} ms ({ms['phrase ids'] / ms['per row'] - 1:+.1%})")


def main() -> None:
    torch.set_num_threads(1)
    products()
    critic_backward()
    adam()
    encoder_share()
    cuts()


if __name__ == "__main__":
    main()
