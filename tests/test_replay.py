"""Replay regimes: unbounded, FIFO over task visits, reservoir; state round trip for resuming."""
import numpy as np
import pytest

from legion_policy.replay import ReplayBuffer

TABLE = np.eye(4, 8, dtype=np.float32)


def fill(buf, visit, task, n, start=0):
    buf.start_visit(visit)
    for i in range(n):
        x = np.full(12, start + i, np.float32)
        buf.add(x, np.zeros(4), float(start + i), x + 1, 0.0, phrase=task, task=task)


def test_fifo_keeps_only_the_last_visits():
    buf = ReplayBuffer(30, 12, 4, TABLE, regime="fifo", fifo_visits=3)
    for v in range(5):
        fill(buf, v, task=v % 4, n=10, start=100 * v)
    assert buf.size == 30 and sorted(set(buf.visit[:30])) == [2, 3, 4]
    assert sorted(buf.reward[:buf.size] // 100) == [2] * 10 + [3] * 10 + [4] * 10  # rows kept whole, in order
    finetune = ReplayBuffer(10, 12, 4, TABLE, regime="fifo", fifo_visits=1)
    fill(finetune, 0, 0, 10)
    fill(finetune, 1, 1, 10)
    assert set(finetune.task[:finetune.size]) == {1}


def test_reservoir_is_a_uniform_sample_of_the_stream():
    buf = ReplayBuffer(1000, 12, 4, TABLE, regime="reservoir", seed=0)
    for v in range(4):
        fill(buf, v, task=v, n=5000, start=5000 * v)
    counts = np.bincount(buf.task[:buf.size], minlength=4)
    assert buf.size == 1000 and buf.seen == 20000
    assert np.all(np.abs(counts - 250) < 60), counts  # each task ~1/4 of the reservoir


def test_unbounded_refuses_to_overflow_and_sampling_needs_data():
    buf = ReplayBuffer(5, 12, 4, TABLE)
    with pytest.raises(RuntimeError, match="empty"):
        buf.sample(2, np.random.default_rng(0))
    fill(buf, 0, 0, 5)
    with pytest.raises(RuntimeError, match="full"):
        fill(buf, 1, 1, 1)
    with pytest.raises(ValueError, match="unknown replay regime 'lifo'"):
        ReplayBuffer(5, 12, 4, TABLE, regime="lifo")


def test_state_round_trip_continues_identically():
    a = ReplayBuffer(50, 12, 4, TABLE, regime="reservoir", seed=3)
    fill(a, 0, 1, 80)
    b = ReplayBuffer(50, 12, 4, TABLE, regime="reservoir", seed=99)
    b.load_state_dict(a.state_dict())
    fill(a, 1, 2, 40, start=1000)
    fill(b, 1, 2, 40, start=1000)
    np.testing.assert_array_equal(a.obs, b.obs)
    batch = b.sample(16, np.random.default_rng(0))
    assert batch["obs"].shape == (16, 12) and batch["embed"].shape == (16, 8)
    with pytest.raises(ValueError, match="does not fit"):
        ReplayBuffer(10, 12, 4, TABLE).load_state_dict(a.state_dict())


@pytest.mark.parametrize("n_online", [100, 5000])  # demonstrations the majority, then a small minority
def test_demo_fraction_draws_that_share_of_each_batch_from_demonstrations(n_online):
    buf = ReplayBuffer(6000, 12, 4, TABLE, regime="fifo", fifo_visits=1)
    buf.start_visit(0)
    for i in range(300):  # demonstrations first, as the trainer adds them at a visit's start
        buf.add(np.full(12, -1, np.float32), np.zeros(4), -1.0, np.zeros(12), 0.0, phrase=0, task=0, demo=True)
    for i in range(n_online):
        buf.add(np.full(12, i, np.float32), np.zeros(4), float(i), np.zeros(12), 0.0, phrase=0, task=0)
    rng = np.random.default_rng(0)
    rewards = np.concatenate([buf.sample(256, rng, demo_fraction=0.5)["reward"].numpy() for _ in range(20)])
    assert np.mean(rewards == -1.0) == 0.5  # exactly half of every batch
    uniform = np.concatenate([buf.sample(256, rng)["reward"].numpy() for _ in range(20)])
    assert abs(np.mean(uniform == -1.0) - 300 / (300 + n_online)) < 0.03  # without it: their share of the rows
    assert len(np.unique(rewards[rewards >= 0])) > min(n_online, 256) // 2  # online rows spread over the buffer
    buf.start_visit(1)  # the next visit evicts the demonstrations with their visit
    buf.add(np.zeros(12, np.float32), np.zeros(4), 7.0, np.zeros(12), 0.0, phrase=0, task=0)
    assert len(buf.demo_rows) == 0
    assert set(buf.sample(64, rng, demo_fraction=0.5)["reward"].numpy()) == {7.0}  # no demonstrations: all online
