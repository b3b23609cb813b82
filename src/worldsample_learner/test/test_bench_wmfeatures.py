"""`worldsample bench wmfeatures`: imagined frames scored through the policy's frozen encoder."""

import argparse

import numpy as np
import pytest
from worldsample_learner.core.config import AgentConfig
from worldsample_learner.core.pixel_encoder import KeypointEncoder, pretrain_keypoints

from worldsample_learner import bench_wmfeatures


@pytest.fixture(scope="module")
def encoder():
    """A small frozen encoder fitted on frames with a moving red square (keypoints + 2 colour blobs)."""
    cfg = AgentConfig(obs_mode="pixels", cameras=("front",), image_size=16, frozen_keypoints=2, frozen_channels=4,
                      frozen_color_blobs=2, frozen_pretrain_steps=20, seed=0)
    frames = _frames(np.random.default_rng(0), 64)
    enc = KeypointEncoder(cfg)
    pretrain_keypoints(enc, {"front": frames}, cfg, seed=0)
    return enc


def _frames(rng, n: int) -> np.ndarray:
    out = np.full((n, 16, 16, 3), 40, np.uint8)
    for i, (y, x, k) in enumerate(zip(*rng.integers(1, 12, (2, n)), rng.integers(2, 5, n), strict=True)):
        out[i, y:y + k, x:x + k] = (220, 30, 30)  # a red square of 2-4 px
    return out


def _predictions(real, copy, pred):
    return {"horizons": (1,), "real": {1: {"front": real}}, "pred": {1: {"front": pred}}, "copy": {"front": copy},
            "uncertainty": {1: np.arange(len(real), dtype=np.float64)}}


def test_feature_parts_split_blob_positions_from_masses(encoder):
    parts, unit = bench_wmfeatures.feature_parts(encoder, 16)
    assert set(parts) == {"keypoints", "blob positions", "blob masses"}
    assert len(parts["keypoints"]) == 4 and len(parts["blob positions"]) == 4 and len(parts["blob masses"]) == 2
    assert sorted(sum(parts.values(), [])) == list(range(encoder.out_dim))
    assert np.all(unit[parts["blob masses"]] == 1.0) and np.all(unit[parts["keypoints"]] == 8.0)


def test_a_model_that_predicts_the_real_frame_has_skill_one_and_copy_has_skill_zero(encoder):
    rng = np.random.default_rng(1)
    real, copy = _frames(rng, 24), _frames(rng, 24)
    fit = encoder.features({"front": _frames(rng, 64)})

    def readout(f):  # stands for the fitted MLP: any function of the features
        return np.asarray(f)[:, :2] * 0.01

    pos = {"thing": [0, 1]}
    exact = bench_wmfeatures.score_predictions(_predictions(real, copy, real.copy()), encoder, readout, pos, 16, fit)[1]
    assert exact["mm"]["thing"]["model"] < 1e-3 * exact["mm"]["thing"]["copy"]
    assert all(v["model"] < 1e-3 * v["copy"] and v["skill"] > 0.999 for v in exact["features"].values()), exact
    frozen = bench_wmfeatures.score_predictions(_predictions(real, copy, copy.copy()), encoder, readout, pos, 16, fit)[1]
    assert frozen["mm"]["thing"]["model"] == pytest.approx(frozen["mm"]["thing"]["copy"])
    assert all(v["skill"] == pytest.approx(0.0, abs=1e-6) for v in frozen["features"].values())
    # a model whose frames lose the square reads worse than copying: negative skill on the blobs
    blank = np.full_like(real, 40)
    lost = bench_wmfeatures.score_predictions(_predictions(real, copy, blank), encoder, readout, pos, 16, fit)[1]
    assert lost["features"]["blob masses"]["skill"] < 0.0


def test_a_run_without_a_world_model_is_a_clear_error(tmp_path, capsys):
    args = argparse.Namespace(run=tmp_path, version=None, policy=None, horizons="1,4", max_starts=8, stride=2,
                              readout_episodes=4, readout_steps=10, seed=0, out=None)
    assert bench_wmfeatures.run(args) == 2
    assert "holds no world-model version" in capsys.readouterr().err
    args.horizons = "0"
    assert bench_wmfeatures.run(args) == 2
    assert "--horizons must be positive" in capsys.readouterr().err

