"""Checkpoints: bit-exact round trip, deployment policy API, and refusal of missing/corrupt/tampered files."""
import json
import shutil

import numpy as np
import pytest
import torch

from legion_policy.agent import AgentConfig, LegionAgent
from legion_policy.checkpoint import (
    FORMAT_VERSION, KNOWLEDGE_SPACE, MANIFEST, WEIGHTS, CheckpointError, EmbeddingMismatchError, LegionPolicy,
    load_agent, load_checkpoint, save_checkpoint, sha256_file,
)
from legion_language.tasks import load_task_library
from sim2real.observation import OBS_LAYOUT

torch.set_num_threads(1)
L = 384
MODEL = "sentence-transformers/all-MiniLM-L6-v2"


def _obs(n, seed):
    rng = np.random.default_rng(seed)
    obs = np.tile(np.array([0.0, 0.6, 0.2] * 4, np.float32), (n, 1)) + rng.normal(0, 0.1, (n, 12)).astype(np.float32)
    obs[:, 6:9] = 0
    return obs


def _embeds(n, seed):
    e = np.random.default_rng(seed).normal(size=(n, L)).astype(np.float32)
    return e / np.linalg.norm(e, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small agent with a fitted knowledge space, saved once for the whole module."""
    agent = LegionAgent(AgentConfig(hidden=32, embed_dim=L), seed=3)
    # Two "tasks" = two embeddings, so the mixture has structure to find.
    emb = np.repeat(_embeds(2, 1), 150, axis=0)
    agent.fit_knowledge_space(_obs(300, 2), emb)
    path = tmp_path_factory.mktemp("ckpt") / "checkpoint"
    save_checkpoint(path, agent, embedding_model=MODEL, embedding_dim=L,
                    task_library=load_task_library().to_dict(),
                    provenance={"tasks": ["reach-v3"], "steps_per_task": 0, "seed": 3})
    return agent, path


def _copy(trained, tmp_path):
    dst = tmp_path / "copy"
    shutil.copytree(trained[1], dst)
    return dst


def _rehash(path, name):
    """Record the current hash and size of ``name`` in the manifest (a consistent but edited checkpoint)."""
    m = json.loads((path / MANIFEST).read_text())
    m["files"][name] = {"sha256": sha256_file(path / name), "bytes": (path / name).stat().st_size}
    (path / MANIFEST).write_text(json.dumps(m))


def test_manifest_records_what_deployment_needs(trained):
    _, path = trained
    m = json.loads((path / MANIFEST).read_text())
    assert m["format_version"] == FORMAT_VERSION == 2
    assert m["observation"]["layout"] == OBS_LAYOUT and m["action"]["scale_m_per_unit"] == 0.01
    assert m["embedding"] == {"model": MODEL, "dim": L, "pooling": "attention-masked mean, L2-normalised"}
    assert m["task_library"] == load_task_library().to_dict()
    ks = m["knowledge_space"]
    assert ks["K"] >= 1 and len(ks["weights"]) == ks["K"]
    assert np.array(ks["means"]).shape == np.array(ks["variances"]).shape == (ks["K"], 10)
    assert (ks["gamma0"], ks["sF"], ks["latent_dim"], ks["deletes"]) == (5.0, 1e-4, 10, False)
    assert {"date", "git_commit", "tasks", "seed"} <= set(m["provenance"])
    assert m["software"]["torch"].startswith("2.") and m["software"]["python"].startswith("3.")
    assert set(m["files"]) == {WEIGHTS, KNOWLEDGE_SPACE}
    for name, entry in m["files"].items():
        assert len(entry["sha256"]) == 64 and entry["bytes"] == (path / name).stat().st_size
    assert not list(path.parent.glob(".*tmp-*")), "temporary folder left behind"


def test_round_trip_is_bit_exact(trained):
    agent, path = trained
    policy = LegionPolicy.load(path)
    for name, t in agent.tensors().items():
        assert torch.equal(policy.agent.state_dict()[name], t), name
    ks, ks2 = agent.knowledge_space, policy.agent.knowledge_space
    assert ks2.K == ks.K
    np.testing.assert_array_equal(ks2.means, ks.means)
    np.testing.assert_array_equal(ks2.variances, ks.variances)
    obs, emb = _obs(20, 7), _embeds(20, 8)
    for o, e in zip(obs, emb):
        action, component = policy.act(o, e)
        assert action.dtype == np.float32 and action.shape == (4,) and np.all(np.abs(action) <= 1)
        np.testing.assert_array_equal(action, agent.act(o, e, deterministic=True))
        z = agent.latent(torch.from_numpy(o)[None], torch.from_numpy(e)[None])
        assert component == int(ks.predict(z.double().numpy())[0])
        assert 0 <= component < ks.K
    assert policy.embedding_model == MODEL and policy.embedding_dim == L
    assert policy.task_library["subtasks"]["reach"]["env_id"] == "reach-v3"


def test_saving_again_replaces_the_checkpoint_atomically(trained, tmp_path):
    agent, _ = trained
    path = tmp_path / "ck"
    for seed in (0, 1):
        save_checkpoint(path, agent, embedding_model=MODEL, embedding_dim=L,
                        task_library=load_task_library().to_dict(), provenance={"seed": seed})
    assert load_checkpoint(path).manifest["provenance"]["seed"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"]


def test_save_refuses_unfitted_knowledge_space_and_wrong_dim(trained, tmp_path):
    with pytest.raises(ValueError, match="fit the knowledge space"):
        save_checkpoint(tmp_path / "x", LegionAgent(AgentConfig(hidden=8)), embedding_model=MODEL,
                        embedding_dim=L, task_library={}, provenance={})
    with pytest.raises(ValueError, match="embedding_dim 768"):
        save_checkpoint(tmp_path / "x", trained[0], embedding_model=MODEL, embedding_dim=768,
                        task_library={}, provenance={})
    with pytest.raises(ValueError, match="task_library is not a valid task library"):
        save_checkpoint(tmp_path / "x", trained[0], embedding_model=MODEL, embedding_dim=L,
                        task_library={"subtasks": {"reach": {}}}, provenance={})
    assert not (tmp_path / "x").exists()


def test_run_folder_resolves_to_its_checkpoint(trained):
    _, path = trained  # .../checkpoint inside a run folder
    assert load_checkpoint(path.parent).path == path


def test_missing_folder_is_refused(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint folder"):
        LegionPolicy.load(tmp_path / "nothing-here")


@pytest.mark.parametrize("name", [MANIFEST, WEIGHTS, KNOWLEDGE_SPACE])
def test_missing_file_is_refused(trained, tmp_path, name):
    path = _copy(trained, tmp_path)
    (path / name).unlink()
    with pytest.raises(CheckpointError, match="missing"):
        load_checkpoint(path)


@pytest.mark.parametrize("name", [WEIGHTS, KNOWLEDGE_SPACE])
def test_tampered_file_is_refused(trained, tmp_path, name):
    path = _copy(trained, tmp_path)
    data = bytearray((path / name).read_bytes())
    data[-1] ^= 0xFF  # flip bits in the last tensor's payload
    (path / name).write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="sha256"):
        LegionPolicy.load(path)


def test_corrupt_weights_with_matching_hash_are_refused(trained, tmp_path):
    path = _copy(trained, tmp_path)
    (path / WEIGHTS).write_bytes(b"not a safetensors file")
    _rehash(path, WEIGHTS)
    with pytest.raises(CheckpointError, match="cannot read the safetensors"):
        load_checkpoint(path)


def test_corrupt_manifest_and_unknown_version_are_refused(trained, tmp_path):
    path = _copy(trained, tmp_path)
    good = (path / MANIFEST).read_text()
    (path / MANIFEST).write_text(good[: len(good) // 2])
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_checkpoint(path)
    m = json.loads(good)
    m["format_version"] = 99
    (path / MANIFEST).write_text(json.dumps(m))
    with pytest.raises(CheckpointError, match="format_version 99 was written by a newer version"):
        load_checkpoint(path)
    m["format_version"] = 0
    (path / MANIFEST).write_text(json.dumps(m))
    with pytest.raises(CheckpointError, match="unknown checkpoint format_version 0"):
        load_checkpoint(path)
    m["format_version"] = 2
    del m["embedding"]
    (path / MANIFEST).write_text(json.dumps(m))
    with pytest.raises(CheckpointError, match="'embedding' is missing"):
        load_checkpoint(path)


def test_act_rejects_bad_inputs_with_clear_messages(trained):
    policy = LegionPolicy.load(trained[1])
    obs, emb = _obs(1, 0)[0], _embeds(1, 0)[0]
    with pytest.raises(ValueError, match=r"\(384,\) from language model 'sentence-transformers/all-MiniLM-L6-v2'"):
        policy.act(obs, np.zeros(768, np.float32))
    with pytest.raises(ValueError, match=r"obs must have shape \(12,\)"):
        policy.act(obs[:9], emb)
    bad = obs.copy()
    bad[0] = np.nan
    with pytest.raises(ValueError, match="finite"):
        policy.act(bad, emb)


def test_sample_draws_from_the_actors_squashed_gaussian_and_a_seeded_rng_repeats_it(trained):
    """``sample``: tanh(mean + std * eps), eps from the generator: the same seed the same action; the draws spread
    around ``act``'s tanh(mean) with the actor's std (checked against the actor run directly), and bad inputs are
    refused as by ``act``."""
    policy = LegionPolicy.load(trained[1])
    obs, emb = _obs(1, 0)[0], _embeds(1, 0)[0]
    a1, c1 = policy.sample(obs, emb, np.random.default_rng(3))
    a2, c2 = policy.sample(obs, emb, np.random.default_rng(3))
    np.testing.assert_array_equal(a1, a2)
    mean_action, component = policy.act(obs, emb)
    assert c1 == c2 == component and a1.dtype == np.float32 and np.all(np.abs(a1) < 1)
    rng = np.random.default_rng(4)
    draws = np.stack([policy.sample(obs, emb, rng)[0] for _ in range(2000)])
    agent = policy.agent
    with torch.no_grad():
        o, e = torch.from_numpy(obs)[None], torch.from_numpy(emb)[None]
        mean, log_std = agent.actor(agent.normalizer.obs(o), agent.latent(o, e))
    u = np.arctanh(np.clip(draws.astype(np.float64), -1 + 1e-6, 1 - 1e-6))
    np.testing.assert_allclose(np.tanh(mean[0].numpy()), mean_action, atol=1e-6)
    np.testing.assert_allclose(u.mean(0), mean[0].numpy(), atol=float(5 * log_std[0].exp().max() / np.sqrt(2000)) + 1e-3)
    np.testing.assert_allclose(u.std(0), log_std[0].exp().numpy(), rtol=0.1)
    with pytest.raises(ValueError, match=r"obs must have shape \(12,\)"):
        policy.sample(obs[:9], emb, rng)


def test_check_embedder(trained):
    policy = LegionPolicy.load(trained[1])
    policy.check_embedder(MODEL, L)
    with pytest.raises(EmbeddingMismatchError, match="trained with language model .*384-d.*roberta-base.*768-d"):
        policy.check_embedder("roberta-base", 768)
    with pytest.raises(EmbeddingMismatchError):
        policy.check_embedder(MODEL, 768)


def test_weights_missing_a_deployment_tensor_are_refused(trained, tmp_path):
    from safetensors.torch import load_file, save_file

    path = _copy(trained, tmp_path)
    tensors = load_file(str(path / WEIGHTS))
    del tensors["actor.net.0.weight"]
    save_file(tensors, str(path / WEIGHTS))
    _rehash(path, WEIGHTS)
    with pytest.raises(CheckpointError, match=r"lacks tensors the policy needs: \['actor.net.0.weight'\]"):
        LegionPolicy.load(path)


def test_truncated_file_is_refused_by_size(trained, tmp_path):
    path = _copy(trained, tmp_path)
    data = (path / WEIGHTS).read_bytes()
    (path / WEIGHTS).write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=rf"has {len(data) // 2} bytes, the manifest says {len(data)}"):
        load_checkpoint(path)


@pytest.mark.parametrize("edit, match", [
    (lambda m: m["observation"].update(dim=39), "observation dim is 39"),
    (lambda m: m["observation"]["layout"]["goal_position"].update(slice=[36, 39]),
     r"observation layout .*'goal_position': \[36, 39\].* is none of this code's \(paper, gripper\)"),
    (lambda m: m["observation"].update(name="gripper"), "observation name 'gripper' disagrees with its layout"),
    (lambda m: m["action"].update(scale_m_per_unit=0.02), "scale_m_per_unit is 0.02"),
    (lambda m: m["knowledge_space"].update(K=7), "the manifest says K = 7 components but"),
    (lambda m: m["knowledge_space"].update(latent_dim=8), "knowledge_space.latent_dim is 8"),
    (lambda m: m["embedding"].update(dim=768), "disagrees with agent_config.embed_dim 384"),
    (lambda m: m["agent_config"].update(hidden_units=5), "unexpected keyword argument 'hidden_units'"),
    (lambda m: m["agent_config"].update(gamma=1.5), "gamma=1.5"),
    (lambda m: m["task_library"].update(subtasks={}), "recorded task library is invalid"),
    (lambda m: m.update(provenance=[]), "provenance must be an object"),
])
def test_manifest_that_disagrees_with_this_code_or_its_files_is_refused(trained, tmp_path, edit, match):
    """Interface (observation layout, action scale) or contents differ: refused even with valid hashes."""
    path = _copy(trained, tmp_path)
    m = json.loads((path / MANIFEST).read_text())
    edit(m)
    (path / MANIFEST).write_text(json.dumps(m))
    with pytest.raises(CheckpointError, match=match):
        load_checkpoint(path)


ACTION_ATOL = 8 * float(np.finfo(np.float32).eps)  # 9.5e-7: see the test below


def test_format_1_checkpoint_still_loads_and_acts_as_when_it_was_written():
    """tests/data/checkpoint_v1 was written by the format-1 code (tests/data/make_checkpoint_v1.py at
    commit 8d5d97b), together with the actions and components it produced then, on another machine.

    The actions are compared with a tolerance, not bit for bit: float32 matrix kernels differ between CPUs
    (AVX2, AVX-512, AMX sum in different orders), and the actions recorded on one machine differ on another by
    ~1.5e-8. ACTION_ATOL is 8 float32 ulps of 1.0 (8 x 1.19e-7): the actor's pre-activations carry a relative
    rounding error of a few ulps, and tanh (slope <= 1) does not enlarge it. A real change of the loading code
    (a wrong tensor, a missing normaliser, a different layer) moves actions by 1e-3 or more."""
    from pathlib import Path

    data = Path(__file__).parent / "data"
    assert json.loads((data / "checkpoint_v1" / MANIFEST).read_text())["format_version"] == 1
    policy = LegionPolicy.load(data / "checkpoint_v1")
    assert policy.manifest["format_version"] == FORMAT_VERSION
    assert policy.manifest["files"][WEIGHTS]["bytes"] is None  # format 1 recorded no sizes
    probe = json.loads((data / "checkpoint_v1_probe.json").read_text())
    for obs, emb, action, component in zip(probe["obs"], probe["embedding"], probe["actions"], probe["components"]):
        a, k = policy.act(np.array(obs, np.float32), np.array(emb, np.float32))
        np.testing.assert_allclose(a, np.array(action, np.float32), rtol=0, atol=ACTION_ATOL)
        assert k == component
    assert not policy.agent.knowledge_space.deletes and not policy.agent.config.sac_layer_norm
    assert policy.observation_layout == "paper"  # written before layouts had names


def test_observation_layout_is_recorded_and_read_back(trained, tmp_path):
    """A checkpoint names the observation it was trained on; the policy reports it, so deployment builds the same;
    an unknown layout is refused before anything is written."""
    from sim2real.observation import GRIPPER_OBS_LAYOUT

    agent, path = trained
    assert LegionPolicy.load(path).observation_layout == "paper"
    kwargs = dict(embedding_model=MODEL, embedding_dim=L, task_library=load_task_library().to_dict(),
                  provenance={"tasks": ["pick-place-v3"], "steps_per_task": 0, "seed": 3})
    save_checkpoint(tmp_path / "grip", agent, observation_layout="gripper", **kwargs)
    m = json.loads((tmp_path / "grip" / MANIFEST).read_text())
    assert m["observation"]["name"] == "gripper" and m["observation"]["layout"] == GRIPPER_OBS_LAYOUT
    assert m["observation"]["layout"]["gripper_opening"]["slice"] == [6, 7]
    policy = LegionPolicy.load(tmp_path / "grip")
    assert policy.observation_layout == "gripper"
    obs = _obs(1, 5)[0]
    obs[6] = 0.93
    assert policy.act(obs, _embeds(1, 1)[0])[0].shape == (4,)
    with pytest.raises(ValueError, match=r"observation layout must be one of \['paper', 'gripper'\], got 'sawyer'"):
        save_checkpoint(tmp_path / "bad", agent, observation_layout="sawyer", **kwargs)
    assert not (tmp_path / "bad").exists()


def test_paper_configuration_round_trips(tmp_path):
    """AgentConfig.paper(): encoder 3 x 400, SAC 3 x 300 with LayerNorm + tanh first layer, batch 512."""
    config = AgentConfig.paper(embed_dim=L)
    agent = LegionAgent(config, seed=0)
    assert [m.out_features for m in agent.encoder.modules() if isinstance(m, torch.nn.Linear)] == [400, 400, 400, 20]
    assert [m.out_features for m in agent.actor.modules() if isinstance(m, torch.nn.Linear)] == [300, 300, 300, 8]
    assert agent.critic.tanh_first and [w.shape[-1] for w in agent.critic.weights] == [300, 300, 300, 1]
    agent.fit_knowledge_space(_obs(200, 0), np.repeat(_embeds(2, 0), 100, axis=0))
    save_checkpoint(tmp_path / "paper", agent, embedding_model=MODEL, embedding_dim=L,
                    task_library=load_task_library().to_dict(), provenance={})
    loaded, manifest = load_agent(tmp_path / "paper")
    assert manifest["agent_config"] == config.to_dict()
    for name, t in agent.tensors().items():
        assert torch.equal(loaded.tensors()[name], t), name


def test_the_actor_average_is_the_deployed_actor(tmp_path):
    """A checkpoint of an agent with actor_average > 0 deploys the average: LegionPolicy's mean action and its
    sampled retries come from it, and a checkpoint without the average's tensors is refused."""
    from safetensors.torch import load_file, save_file

    agent = LegionAgent(AgentConfig(hidden=32, embed_dim=L, actor_average=0.5), seed=3)
    agent.fit_knowledge_space(_obs(200, 0), np.repeat(_embeds(2, 0), 100, axis=0))
    with torch.no_grad():  # an average that differs from the trained actor
        for p in agent.actor_average.parameters():
            p.mul_(0.5)
    kwargs = dict(embedding_model=MODEL, embedding_dim=L, task_library=load_task_library().to_dict(), provenance={})
    save_checkpoint(tmp_path / "avg", agent, **kwargs)
    policy = LegionPolicy.load(tmp_path / "avg")
    obs, emb = _obs(1, 7)[0], _embeds(1, 1)[0]
    o, e = torch.as_tensor(obs)[None], torch.as_tensor(emb)[None]
    with torch.no_grad():
        s_n, z = agent.normalizer.obs(o), agent.latent(o, e)
        averaged = agent.actor_average.deterministic(s_n, z)[0].numpy()
        trained = agent.actor.deterministic(s_n, z)[0].numpy()
    assert np.abs(averaged - trained).max() > 1e-3
    np.testing.assert_allclose(policy.act(obs, emb)[0], averaged, atol=1e-6)
    rng = np.random.default_rng(0)
    mean, log_std = agent.actor_average(s_n, z)
    u = mean[0].double().numpy() + np.random.default_rng(0).standard_normal(4) * log_std[0].double().exp().numpy()
    np.testing.assert_allclose(policy.sample(obs, emb, rng)[0], np.tanh(u), atol=1e-6)
    weights = tmp_path / "avg" / WEIGHTS
    save_file({k: v for k, v in load_file(weights).items() if not k.startswith("actor_average.")}, weights)
    _rehash(tmp_path / "avg", WEIGHTS)
    with pytest.raises(CheckpointError, match="lacks tensors the policy needs: .*actor_average"):
        load_agent(tmp_path / "avg")
