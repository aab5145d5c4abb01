"""control_chain: the real2sim, sim2real and safety nodes in one process, on one executor (ROS 2 composition).

The three nodes are unchanged (names, parameters, topics, services); composed, a joint state wakes one process
instead of three and a joint command reaches the safety node without leaving the process, which takes two
cross-process hops off the chain from joint state to joint target. The policy stays a process of its own: a new
checkpoint or a crash restarts it alone (``ros2 run legion_nodes policy_node``) while the safety node holds.
"""
from legion_nodes._ros import run
from legion_nodes.real2sim_node import Real2SimNode
from legion_nodes.safety_node import SafetyNode
from legion_nodes.sim2real_node import Sim2RealNode


def main(args=None):
    run((SafetyNode, Real2SimNode, Sim2RealNode), args)
