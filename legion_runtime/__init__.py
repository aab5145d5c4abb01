"""The deployment graph in one process: graph description, runner, rosbag2 recording, the `legion` CLI."""
