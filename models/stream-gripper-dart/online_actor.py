"""Write the trained (online) actor of a run with --actor-average as a checkpoint of its own (actor_average 0), so the
two actors of one training run are evaluated through the same chain. usage: online_actor.py RUN OUT"""
import sys
from dataclasses import replace
from legion_policy.agent import AgentConfig, LegionAgent
from legion_policy.checkpoint import load_agent, save_checkpoint
from sim2real.observation import layout_name

agent, m = load_agent(sys.argv[1])
plain = LegionAgent(replace(agent.config, actor_average=0.0), seed=agent.seed)
plain.load_tensors({k: v for k, v in agent.tensors().items() if not k.startswith("actor_average.")})
plain.knowledge_space = agent.knowledge_space
prov = dict(m["provenance"], note=f"the online actor of {sys.argv[1]} (trained with actor_average "
                                  f"{agent.config.actor_average}; this checkpoint deploys the trained actor)")
save_checkpoint(sys.argv[2], plain, embedding_model=m["embedding"]["model"], embedding_dim=m["embedding"]["dim"],
                task_library=m["task_library"], provenance=prov, observation_layout=m["observation"]["name"])
print("wrote", sys.argv[2])
