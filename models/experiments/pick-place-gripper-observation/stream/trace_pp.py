"""Trace pick-place episodes of a checkpoint through the deployed chain: how each failure ends."""
import sys
import numpy as np
from legion_runtime.main_job import load_policy, make_chain
from legion_runtime.runner import ControlLoop
from legion_sim.plant import KukaPlant
from legion_language.embedding import TextEmbedder
from legion_language.tasks import library_from_dict

ckpt, n = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 20
TASK = sys.argv[3] if len(sys.argv) > 3 else "pick-place-v3"
policy = load_policy(ckpt)
lay = getattr(policy, "observation_layout", "paper")
sub = library_from_dict(policy.task_library).by_env_id(TASK)
emb = TextEmbedder().embed(sub.description)
class Rec:
    def __init__(s): s.rows = []
    def act(s, obs, e):
        a, k = policy.act(obs, e); s.rows.append((obs.copy(), a.copy())); return a, k
rec = Rec()
if lay != "paper":
    rec.observation_layout = lay
loop = ControlLoop(rec, *make_chain(**({"observation_layout": lay} if lay != "paper" else {})))
plant = KukaPlant(TASK, seed=7000)
kinds = {}
for i in range(n):
    plant.reset(7000 + i); rec.rows = []
    out = loop.run_subtask(plant, TASK, emb, 150)
    obs = np.array([r[0] for r in rec.rows]); act = np.array([r[1] for r in rec.rows])
    hand, puck, goal = obs[-1, 0:3], obs[-1, 3:6], obs[-1, 9:12]
    lifted = puck[2] > 0.04
    kind = "success" if out.success else ("carried, not at goal" if lifted else
            ("stall closed" if act[-20:, 3].mean() > 0 else "stall open"))
    kinds[kind] = kinds.get(kind, 0) + 1
    print(i, kind, "steps", out.steps, "hand-puck z %.3f" % (hand[2] - puck[2]), "xy %.3f" % np.linalg.norm(hand[:2] - puck[:2]),
          "puck z %.3f" % puck[2], "puck-goal %.3f" % np.linalg.norm(puck - goal), "grip act %.2f" % act[-20:, 3].mean(),
          "slot6 %.2f" % obs[-1, 6])
print(kinds)
