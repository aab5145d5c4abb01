"""Writes tests/data/checkpoint_v1 with the format-1 code (run from a checkout of commit 8d5d97b)."""
import json, sys
import numpy as np, torch
from legion_policy.agent import AgentConfig, LegionAgent
from legion_policy.checkpoint import save_checkpoint, FORMAT_VERSION
from legion_language.tasks import load_task_library
assert FORMAT_VERSION == 1
out = sys.argv[1]
agent = LegionAgent(AgentConfig(hidden=16, batch_size=8), seed=3)
rng = np.random.default_rng(0)
obs = rng.uniform([-0.3, 0.5, 0.05] * 4, [0.3, 0.9, 0.3] * 4, (200, 12)).astype(np.float32); obs[:, 6:9] = 0
emb = rng.normal(size=(2, 384)); emb /= np.linalg.norm(emb, axis=1, keepdims=True)
e = emb[np.arange(200) % 2].astype(np.float32)
agent.fit_knowledge_space(obs, e)
save_checkpoint(out, agent, embedding_model="all-MiniLM-L6-v2", embedding_dim=384,
                task_library=load_task_library().to_dict(),
                provenance={"note": "format-1 test fixture written by tests/data/make_checkpoint_v1.py at commit 8d5d97b"})
probe = {"obs": obs[:4].tolist(), "embedding": e[:4].tolist(), "actions": [], "components": []}
for o, l in zip(obs[:4], e[:4]):
    a = agent.act(o, l, deterministic=True)
    z = agent.latent(torch.as_tensor(o)[None], torch.as_tensor(l)[None])
    probe["actions"].append(a.tolist()); probe["components"].append(int(agent.knowledge_space.predict(z.double().numpy())[0]))
json.dump(probe, open(out + "/../checkpoint_v1_probe.json", "w"))
print("K", agent.knowledge_space.K)
