"""At the stall states of a run's final policy: the critics' Q for the policy's action and for lifting."""
import sys, torch, numpy as np
from legion_runtime.main_job import load_policy, make_chain
from legion_runtime.runner import ControlLoop
from legion_sim.plant import KukaPlant
from legion_language.embedding import TextEmbedder
from legion_language.tasks import library_from_dict
run, task = sys.argv[1], sys.argv[2]
state = torch.load(f"{run}/state.pt", weights_only=False)
policy = load_policy(run)
agent = policy.agent
agent.load_state_dict(state["agent"])  # the critics too (a checkpoint holds what deployment needs)
emb = TextEmbedder().embed(library_from_dict(policy.task_library).by_env_id(task).description)
class Rec:
    def __init__(s): s.rows = []
    def act(s, obs, e):
        a, k = policy.act(obs, e); s.rows.append((obs.copy(), a.copy())); return a, k
rec = Rec(); loop = ControlLoop(rec, *make_chain())
plant = KukaPlant(task, seed=7000)
for i in range(3):
    plant.reset(7000 + i); rec.rows = []
    out = loop.run_subtask(plant, task, emb, 150)
    obs, act = rec.rows[-1]
    o = torch.tensor(obs)[None]; e = torch.tensor(emb)[None]
    with torch.no_grad():
        z = agent.latent(o, e); s = agent.normalizer.obs(o)
        for name, a in (("policy", act), ("lift closed", [0, 0, 1, 1]), ("lift open", [0, 0, 1, -1]),
                        ("down closed", [0, 0, -1, 1]), ("open", [0, 0, 0, -1])):
            q1, q2 = agent.critic(s, torch.tensor(np.asarray(a, np.float32))[None], z)
            print(i, out.success, f"{name:12s} a={np.round(a, 2)} Q={float(torch.min(q1, q2)):.1f}")
