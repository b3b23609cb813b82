import numpy as np
import pytest
from point_env import PointEnv
from worldsample_control.core.episode import Source
from worldsample_control.core.rollout import run_episode
from worldsample_learner.core.success_classifier import (
    SuccessClassifier,
    SuccessClassifierConfig,
    labelled_frames,
)


def _episodes(n_success=16, n_fail=16):
    env = PointEnv(render=True, image_size=32)

    def expert(o):
        d = o.state - o.proprio[:2]
        return np.concatenate([np.clip(d / 0.15, -1, 1), [0.0, 0.0]]).astype(np.float32)

    rng = np.random.default_rng(0)

    def wander(o):
        return rng.uniform(-0.3, 0.3, 4).astype(np.float32)

    good = [run_episode(env, expert, seed=i, source=Source.DEMO) for i in range(n_success)]
    bad = [e for e in (run_episode(env, wander, seed=100 + i) for i in range(n_fail + 5)) if not e.success][:n_fail]
    assert all(e.success for e in good) and len(bad) == n_fail
    return good + bad


def test_classifier_learns_success_frames_and_reports_heldout_accuracy(tmp_path):
    eps = _episodes()
    cfg = SuccessClassifierConfig(image_size=32, channels=8, epochs=30, batch_size=32)
    images, labels, _ = labelled_frames(eps, cfg)
    base = max(labels.mean(), 1 - labels.mean())  # always predicting the majority label
    clf = SuccessClassifier(cfg)
    r = clf.fit(eps)
    assert r["heldout_episodes"] == 8 and r["n_heldout"] > 0
    assert r["heldout_accuracy"] >= 0.9 and r["heldout_balanced_accuracy"] >= 0.8, (r, base)
    # the final frame of a fresh successful episode is recognised, its first frame is not
    fresh = _episodes(4, 0)
    finals = {c: np.stack([e.images[c][-1] for e in fresh]) for c in cfg.cameras}
    firsts = {c: np.stack([e.images[c][0] for e in fresh]) for c in cfg.cameras}
    assert (clf.predict_proba(finals) >= 0.5).mean() >= 0.75
    assert (clf.predict_proba(firsts) < 0.5).mean() >= 0.75
    again = SuccessClassifier.load(clf.save(tmp_path / "clf.pt"))
    np.testing.assert_array_equal(again.predict_proba(finals), clf.predict_proba(finals))
    assert again.is_success({c: v[0] for c, v in finals.items()}) == clf.is_success({c: v[0] for c, v in finals.items()})


def test_classifier_bad_input_named():
    eps = _episodes(2, 2)
    with pytest.raises(ValueError, match="expected \\(64, 64, 3\\)"):
        SuccessClassifier(SuccessClassifierConfig(image_size=64)).fit(eps)
    with pytest.raises(ValueError, match="both successful and failed"):
        SuccessClassifier(SuccessClassifierConfig(image_size=32, holdout_fraction=0.0)).fit(eps[2:])
