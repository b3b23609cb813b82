"""A world-model service restarted in a resumed run: its cut post-training goes on, open bags are not damage."""

from __future__ import annotations

import logging

import torch
from worldsample_common.core.bag_io import EpisodeBagWriter, write_episode_bag
from worldsample_common.core.episode import Source
from worldsample_worldmodel.core.config import WorldModelConfig
from worldsample_worldmodel.core.service import WorldModelService, WorldModelServiceConfig
from worldsample_worldmodel.core.toy import toy_episode
from worldsample_worldmodel.core.train import TrainingStopped

torch.set_num_threads(1)


def service_cfg(tmp_path, pretrain_steps: int) -> WorldModelServiceConfig:
    """Three toy demo bags and a small service over them (post-train every 2 real episodes)."""
    for i in range(3):
        write_episode_bag(toy_episode(i, steps=10), tmp_path / "demos" / f"demo_{i}")
    model = WorldModelConfig(image_size=16, latent_channels=8, base_channels=8, hidden_dim=32, ensemble_size=3,
                             batch_size=8, rollout_steps=2, log_every=5, device="cpu")
    return WorldModelServiceConfig(run_dir=str(tmp_path / "run"), demos_dir=str(tmp_path / "demos"),
                                   min_new_episodes=2, pretrain_steps=pretrain_steps, posttrain_steps=4,
                                   heldout_every=3, fidelity_horizons=(1, 2), device="cpu", model=model)


class _StopAfter:
    """A stop event that is set after ``n`` checks (one per training step)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def is_set(self) -> bool:
        self.n -= 1
        return self.n < 0

    def set(self) -> None:
        self.n = -1


def test_cut_posttraining_completes_its_steps_across_restarts_that_deal_the_pools_anew(tmp_path, caplog):
    cfg = service_cfg(tmp_path, pretrain_steps=4)
    cfg.posttrain_steps, cfg.model.train_state_every = 9, 1
    svc = WorldModelService(cfg)
    assert svc.train() == "wm-000001"
    # the bags arrive in an order other than their names' (a restart deals them in name order): the
    # first session holds out real_0, a restart holds out real_2, which the first session trains on
    bags = {i: write_episode_bag(toy_episode(10 + i, steps=10, source=Source.REAL, policy="random"),
                                 tmp_path / "real" / f"real_{i}") for i in range(3)}
    for i in (2, 1, 0):
        assert svc.add_bag(str(bags[i])) is None
    assert [e.episode_id for e in svc.heldout] == ["toy-real-10"]
    svc.stop_event = _StopAfter(3)
    try:
        svc.train()
        raise AssertionError("the training was not cut")
    except TrainingStopped:
        pass
    steps = []
    with caplog.at_level(logging.INFO):
        for _ in range(5):  # restarts, each cut after 2 steps, until the 9 steps are done in total
            again = WorldModelService(cfg)
            again.add_recorded(tmp_path / "real")
            assert [e.episode_id for e in again.heldout] == ["toy-real-12"]
            assert again.should_train()
            again.stop_event = _StopAfter(2)
            try:
                version = again.train()
                break
            except TrainingStopped as exc:
                steps.append(str(exc))
    assert "another training job" not in caplog.text, caplog.text
    assert "stopped at step 5/9" in steps[0], steps  # the first restart went on from step 3
    man = again.store.manifest(version)
    assert version == "wm-000002" and man["steps"] == 9 and man["metrics"]["resumed_from"] == 7
    assert {e["episode_id"] for e in man["trained_on"] if e["source"] == "REAL"} == {"toy-real-11", "toy-real-12"}


def test_a_bag_still_being_recorded_is_no_warning_and_joins_when_announced(tmp_path, caplog):
    cfg = service_cfg(tmp_path, pretrain_steps=2)
    write_episode_bag(toy_episode(10, steps=10, source=Source.REAL), tmp_path / "real" / "done")
    writer = EpisodeBagWriter(tmp_path / "real" / "recording")  # the live recorder's bag, open
    writer.write_episode(toy_episode(11, steps=10, source=Source.REAL))
    svc = WorldModelService(cfg)
    with caplog.at_level(logging.WARNING):
        added, skipped = svc.add_recorded(tmp_path / "real")
    assert (added, skipped, svc.open_bags_at_start) == (1, [], 1)
    assert "recorder killed" not in caplog.text and "skipping" not in caplog.text, caplog.text
    writer.close()  # the recorder closes it and announces it on episodes/recorded
    assert svc.add_bag(str(tmp_path / "real" / "recording")) is None and svc.real_count == 2
