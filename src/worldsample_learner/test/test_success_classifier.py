import numpy as np
import pytest
from point_env import PointEnv
from worldsample_common.core.episode import Source
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


def _constant_classifier(logit: float, image_size: int = 16) -> SuccessClassifier:
    """A real classifier whose output is fixed by its weights: sigmoid(logit) for every frame."""
    import torch

    clf = SuccessClassifier(SuccessClassifierConfig(image_size=image_size, channels=4))
    with torch.no_grad():
        for p in clf.net.parameters():
            p.zero_()
        clf.net.conv[-1].bias.fill_(logit)
    return clf


def test_detector_needs_consecutive_frames_and_human_override_wins():
    from worldsample_learner.core.success_classifier import SuccessDetector, SuccessDetectorConfig

    frame = {c: np.zeros((16, 16, 3), np.uint8) for c in ("front", "wrist")}
    det = SuccessDetector(_constant_classifier(4.0), SuccessDetectorConfig(confirm_frames=3))
    seq = [det.step(frame) for _ in range(4)]
    assert [d.success for d in seq] == [False, False, True, True]
    # the simulator's reward convention (core.reward, sparse): -1 per step, 0 on success
    assert [d.reward for d in seq] == [-1.0, -1.0, 0.0, 0.0] and seq[2].terminated and seq[0].source == "classifier"
    assert seq[0].probability == pytest.approx(1 / (1 + np.exp(-4.0)), rel=1e-5)
    # a human "failure" overrides the classifier's success and ends the episode, until reset
    det.override(False)
    d = det.step(frame)
    assert (d.success, d.terminated, d.reward, d.source) == (False, True, -1.0, "human")
    det.reset()
    assert not det.override_pending and not det.step(frame).success  # the streak starts again
    # a classifier that says "no" never ends the episode; the human's "success" does
    no = SuccessDetector(_constant_classifier(-4.0))
    assert not any(no.step(frame).success for _ in range(5))
    no.override(True)
    d = no.step(frame)
    assert (d.success, d.terminated, d.reward, d.source) == (True, True, 0.0, "human") and no.overrides == 1
    # human-only mode: nothing until the key press
    human = SuccessDetector(None)
    d = human.step(None)
    assert (d.success, d.terminated, d.source) == (False, False, "none") and np.isnan(d.probability)
    human.override(True)
    assert human.step(None).success
    with pytest.raises(ValueError, match="needs images of cameras"):
        det.step(None)
    with pytest.raises(ValueError, match="camera 'wrist' missing"):
        det.step({"front": frame["front"]})
    with pytest.raises(ValueError, match="confirm_frames"):
        SuccessDetector(None, SuccessDetectorConfig(confirm_frames=0))


def test_classifier_command_reports_heldout_accuracy(tmp_path, capsys):
    import json

    from worldsample_common.core.bag_io import write_episode_bag
    from worldsample_learner.commands import success_classifier as cmd

    for i, ep in enumerate(_episodes(6, 6)):
        write_episode_bag(ep, tmp_path / "bags" / f"ep{i}")
    (tmp_path / "bags" / "broken").mkdir()
    (tmp_path / "bags" / "broken" / "metadata.yaml").write_text("{{{")
    out = tmp_path / "clf.pt"
    assert cmd.main(["--bags", str(tmp_path / "bags"), "--out", str(out), "--image-size", "32", "--epochs", "3",
                     "--holdout", "0.34"]) == 0
    cap = capsys.readouterr()
    assert "held-out accuracy" in cap.out and "12 episodes (6 successful, 6 failed)" in cap.out
    assert "skipping bag" in cap.err and "broken" in cap.err
    r = json.loads(out.with_suffix(".json").read_text())
    assert r["heldout_episodes"] == 4 and 0.0 <= r["heldout_accuracy"] <= 1.0
    assert SuccessClassifier.load(out).cfg.image_size == 32
    # wrong size for these bags: named error, exit 2
    assert cmd.main(["--bags", str(tmp_path / "bags"), "--out", str(tmp_path / "x.pt")]) == 2
    assert "expected (64, 64, 3)" in capsys.readouterr().err
    assert cmd.main(["--bags", str(tmp_path / "nope"), "--out", str(tmp_path / "x.pt")]) == 2
