"""embedding: subtask description (std_msgs/String) -> language embedding (Float32MultiArray).

Logic: :class:`legion_language.embedding.TextEmbedder` (all-MiniLM-L6-v2 by default, or ``model_path``:
the checkpoint's language model). An empty description (idle) publishes nothing.
"""
from legion_nodes._ros import LegionNode, run
from legion_language.embedding import TextEmbedder
from legion_runtime import messages as m


class EmbeddingNode(LegionNode):
    def __init__(self):
        super().__init__("embedding")
        self.embedder = TextEmbedder(self.param("model_path") or None)
        self.get_logger().info(f"language model {self.embedder.name} ({self.embedder.dim}-d)")
        self.subscribe("subtask", self.on_subtask)

    def on_subtask(self, msg) -> None:
        text = m.text_from_msg(msg)
        if text:
            self.publish("embedding", m.embedding_to_msg(self.embedder.embed([text])[0]))


def main(args=None):
    run(EmbeddingNode, args)
