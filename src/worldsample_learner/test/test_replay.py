import numpy as np
from helpers import make_episode
from worldsample_common.core.episode import Source
from worldsample_learner.core.replay import ObsSpec, ReplayStore, Transition

SPEC = ObsSpec(proprio_dim=7, state_dim=2, cameras=("front", "wrist"), image_size=8)


def _tr(eid="e", step=0, **kw):
    rng = np.random.default_rng(step)
    d = dict(episode_id=eid, step=step, source=Source.REAL, proprio=rng.normal(size=7).astype(np.float32),
             action=np.zeros(4, np.float32), reward=0.5, next_proprio=np.zeros(7, np.float32),
             images={c: np.zeros((8, 8, 3), np.uint8) for c in SPEC.cameras},
             next_images={c: np.ones((8, 8, 3), np.uint8) for c in SPEC.cameras},
             state=np.zeros(2, np.float32), next_state=np.ones(2, np.float32))
    d.update(kw)
    return Transition(**d)


def test_persistence_round_trip_no_loss_no_duplicates(tmp_path):
    eps = [make_episode(f"ep{i}", t=7, seed=i) for i in range(5)]
    store = ReplayStore("real", SPEC, capacity=1000, directory=tmp_path, chunk_size=10)
    for ep in eps:
        assert store.add_episode(ep).added == 7
    for s in range(3):
        assert store.add_transition(_tr("single", s)).added == 1
    before = {k: None for k in store.keys()}
    snapshot = store.gather(np.arange(len(store)))
    store.close()
    sizes = [len(np.load(p)["step"]) for p in sorted(tmp_path.glob("chunk-*.npz"))]
    assert sum(sizes) == 38 and all(s >= 10 for s in sizes[:-1])
    again = ReplayStore("real", SPEC, capacity=1000, directory=tmp_path, chunk_size=10)
    assert len(again) == 38 and again.keys() == set(before)
    reloaded = again.gather(np.arange(len(again)))
    for k in ("action", "reward", "terminated"):
        np.testing.assert_array_equal(reloaded[k], snapshot[k])
    np.testing.assert_array_equal(reloaded["obs"]["images"]["wrist"], snapshot["obs"]["images"]["wrist"])
    np.testing.assert_array_equal(reloaded["next_obs"]["state"], snapshot["next_obs"]["state"])
    # the same bags / messages again after the restart: nothing added, all counted as duplicates
    rep = again.add_episode(eps[2])
    assert rep.added == 0 and rep.duplicates == 7
    assert again.add_transition(_tr("single", 1)).duplicates == 1
    # a new one still goes in, and survives another restart
    assert again.add_episode(make_episode("ep-new", t=4)).added == 4
    again.close()
    third = ReplayStore("real", SPEC, capacity=1000, directory=tmp_path, chunk_size=10)
    assert len(third) == 42


def test_same_key_other_source_is_not_a_duplicate():
    store = ReplayStore("mixed", SPEC, capacity=100)
    assert store.add_transition(_tr("e", 0)).added == 1
    assert store.add_transition(_tr("e", 0, source=Source.DEMO)).added == 1
    assert store.add_transition(_tr("e", 0)).duplicates == 1


def test_bad_transitions_rejected_with_reasons():
    store = ReplayStore("real", SPEC, capacity=100)
    nan = np.zeros(7, np.float32)
    nan[3] = np.nan
    assert store.add_transition(_tr(step=0, proprio=nan)).rejected == {"nan_or_inf": 1}
    assert store.add_transition(_tr(step=1, reward=float("inf"))).rejected == {"nan_or_inf": 1}
    assert store.add_transition(_tr(step=2, action=np.array([0, 1.5, 0, 0], np.float32))).rejected == {"action_range": 1}
    assert store.add_transition(_tr(step=3, action=np.zeros(3, np.float32))).rejected == {"shape": 1}
    assert store.add_transition(_tr(step=4, images={"front": np.zeros((8, 8, 3), np.uint8)})).rejected == {"missing_camera": 1}
    assert store.add_transition(_tr(step=5, state=None)).rejected == {"missing_state": 1}
    big = {c: np.zeros((9, 8, 3), np.uint8) for c in SPEC.cameras}
    assert store.add_transition(_tr(step=6, images=big)).rejected == {"shape": 1}
    assert store.add_transition(_tr(step=7, proprio="x")).rejected  # unconvertible: rejected, not raised
    assert store.add_transition(_tr(step=8)).added == 1
    assert len(store) == 1
    assert store.stats()["rejected"] == {"nan_or_inf": 2, "action_range": 1, "shape": 2, "missing_camera": 1,
                                         "missing_state": 1, "invalid": 1}


def test_episode_with_some_bad_steps_keeps_the_good_ones():
    ep = make_episode("bad", t=5, cams=())
    ep.actions[2, 0] = 3.0  # outside [-1, 1]
    store = ReplayStore("real", ObsSpec(proprio_dim=7, state_dim=2), capacity=100)
    rep = store.add_episode(ep)
    assert rep.added == 4 and rep.rejected == {"action_range": 1}
    assert not store.contains("bad", 2, Source.REAL) and store.contains("bad", 3, Source.REAL)


def test_ring_capacity_keeps_newest_in_memory_but_all_on_disk(tmp_path):
    store = ReplayStore("real", ObsSpec(7, 2), capacity=10, directory=tmp_path, chunk_size=100)
    for i in range(4):
        store.add_episode(make_episode(f"e{i}", t=6, cams=(), seed=i))
    assert len(store) == 10 and store.total_added == 24
    store.close()
    assert len(ReplayStore("real", ObsSpec(7, 2), capacity=100, directory=tmp_path)) == 24


def test_corrupt_chunk_is_skipped_not_fatal(tmp_path):
    store = ReplayStore("real", ObsSpec(7, 2), capacity=100, directory=tmp_path, chunk_size=3)
    store.add_episode(make_episode("a", t=3, cams=()))
    store.add_episode(make_episode("b", t=3, cams=()))
    store.close()
    (tmp_path / "chunk-000000.npz").write_bytes(b"not an npz")
    again = ReplayStore("real", ObsSpec(7, 2), capacity=100, directory=tmp_path, chunk_size=3)
    assert len(again) == 3
    again.add_episode(make_episode("c", t=2, cams=()))
    again.close()
    assert (tmp_path / "chunk-000002.npz").exists()  # never overwrites an existing chunk


def _chain_episode(eid: str, t: int, terminated: bool):
    from worldsample_common.core.episode import Episode

    ends, never = np.zeros(t, bool), np.zeros(t, bool)
    ends[-1] = True
    return Episode(episode_id=eid, task="point", source=Source.REAL, images={},
                   proprio=np.repeat(np.arange(t + 1, dtype=np.float32)[:, None], 2, axis=1),
                   actions=np.zeros((t, 4), np.float32), rewards=-np.ones(t, np.float32),
                   terminated=ends if terminated else never, truncated=never if terminated else ends,
                   successes=ends if terminated else never)


def test_n_step_sampling_stops_at_episode_ends_and_overwritten_slots():
    """n-step returns (AgentConfig.n_step) from consecutive slots; chains never cross episodes."""
    store = ReplayStore("real", ObsSpec(proprio_dim=2), capacity=8)
    store.add_episode(_chain_episode("a", 5, terminated=True))  # a0..a4, a4 terminal
    store.add_episode(_chain_episode("b", 4, terminated=False))  # b0..b3, b3 truncated; b3 overwrites a0
    b = store.gather(np.arange(8), n_step=3, discount=0.9)
    # slots: 0=b3 1=a1 2=a2 3=a3 4=a4 5=b0 6=b1 7=b2
    np.testing.assert_allclose(b["reward"], [-1, -2.71, -2.71, -1.9, -1, -2.71, -2.71, -1.9], rtol=1e-6)
    np.testing.assert_allclose(b["discount"], [0.9, 0.729, 0, 0, 0, 0.729, 0.729, 0.81], rtol=1e-6)
    np.testing.assert_array_equal(b["next_obs"]["proprio"][:, 0], [4, 4, 5, 5, 5, 3, 4, 4])
    one = store.gather(np.arange(8), n_step=1, discount=0.9)  # plain one-step targets
    np.testing.assert_allclose(one["reward"], -1.0)
    np.testing.assert_allclose(one["discount"], [0.9, 0.9, 0.9, 0.9, 0, 0.9, 0.9, 0.9], rtol=1e-6)


def test_pickled_store_keeps_only_the_rows_it_holds_and_samples_alike():
    """A run snapshot pickles the replay: a store not yet full is pickled without its empty capacity, and the
    unpickled store (full capacity again) samples the same batches and keeps filling, wrapping as before."""
    import pickle

    store = ReplayStore("real", SPEC, capacity=1000)
    for i in range(4):
        store.add_episode(make_episode(f"ep{i}", t=7, seed=i))
    blob = pickle.dumps(store)
    empty = pickle.dumps(ReplayStore("real", SPEC, capacity=1000))
    assert len(blob) < 0.2 * len(pickle.dumps(store.__dict__["_data"]))  # not the 1000-row arrays
    again = pickle.loads(blob)
    assert len(again) == 28 and again.capacity == 1000 and again.keys() == store.keys()
    assert all(v.shape[0] == 1000 for v in again._data.values()) and len(again._ids) == 1000
    a = store.sample(16, np.random.default_rng(3), n_step=3, discount=0.9)
    b = again.sample(16, np.random.default_rng(3), n_step=3, discount=0.9)
    np.testing.assert_array_equal(a["reward"], b["reward"])
    np.testing.assert_array_equal(a["next_obs"]["images"]["front"], b["next_obs"]["images"]["front"])
    assert len(pickle.loads(empty)) == 0
    small = ReplayStore("real", SPEC, capacity=10)
    small.add_episode(make_episode("a", t=7, seed=1))
    small = pickle.loads(pickle.dumps(small))
    assert small.add_episode(make_episode("b", t=7, seed=2)).added == 7 and len(small) == 10  # wraps as before
