"""ament_python package of the LEGION rclpy nodes; every node is a console script run by `ros2 run legion_nodes <name>`."""
from setuptools import setup

PACKAGE = "legion_nodes"
NODES = ["speech_node", "task_sequencer_node", "embedding_node", "perception_node", "real2sim_node", "policy_node", "sim2real_node",
         "safety_node", "mujoco_plant_node", "control_chain_node"]

setup(
    name=PACKAGE,
    version="0.5.0",
    packages=[PACKAGE],
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="LEGION stack maintainers",
    maintainer_email="legion-stack@users.noreply.github.com",
    description="rclpy nodes of the LEGION deployment (thin shells over the legion-stack package)",
    license="Apache-2.0",
    entry_points={"console_scripts": [f"{node} = {PACKAGE}.{node}:main" for node in NODES]},
)
