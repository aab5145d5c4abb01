"""control_chain: the real2sim, policy and sim2real nodes in one process, on one executor (ROS 2 composition).

The three nodes are unchanged (names, parameters, topics); composed, a joint state becomes an observation, an
action and a joint command without leaving the process. The safety node stays a process of its own, between this
one and the arm: when this process dies or is restarted (``ros2 run legion_nodes control_chain_node``, with the
launch's parameter files) it forwards nothing and holds.
"""
from legion_nodes._ros import run
from legion_nodes.policy_node import PolicyNode
from legion_nodes.real2sim_node import Real2SimNode
from legion_nodes.sim2real_node import Sim2RealNode


def main(args=None):
    run((Real2SimNode, PolicyNode, Sim2RealNode), args)
