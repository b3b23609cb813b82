"""Success classifier: a small CNN on camera frames that says "task solved" (reward on a real robot).

Labels come from episodes: the frames after the first ``last_k`` success steps of successful
episodes (and their final frame) are positives; frames of failed episodes and the first half
of successful ones are negatives. `fit` splits by episode and reports held-out accuracy.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from worldsample_common.core.episode import Episode
from worldsample_control.core.reward import step_reward

from .networks import random_shift

FORMAT = "worldsample-success-classifier/1"


@dataclass
class SuccessClassifierConfig:
    cameras: tuple[str, ...] = ("front", "wrist")
    image_size: int = 64
    channels: int = 16
    epochs: int = 15
    batch_size: int = 64
    lr: float = 1e-3
    last_k: int = 3  # positive frames per successful episode
    threshold: float = 0.5
    holdout_fraction: float = 0.25  # of episodes
    seed: int = 0
    device: str = "cpu"


def labelled_frames(episodes: list[Episode], cfg: SuccessClassifierConfig) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Frames per camera (N, H, W, 3), labels (N,) and the episode index of each frame."""
    imgs: dict[str, list[np.ndarray]] = {c: [] for c in cfg.cameras}
    labels: list[np.ndarray] = []
    owner: list[np.ndarray] = []
    for i, ep in enumerate(episodes):
        missing = [c for c in cfg.cameras if c not in ep.images]
        if missing:
            raise ValueError(f"success classifier: episode {ep.episode_id!r} has no camera(s) {missing}")
        t = ep.length
        if ep.success:
            first = int(np.flatnonzero(ep.successes)[0]) + 1  # frame index after the first success step
            pos = sorted(set(range(first, min(first + cfg.last_k, t + 1))) | {t})
            neg = list(range(0, max(1, (t + 1) // 2)))
            neg = [j for j in neg if j < first]
        else:
            pos, neg = [], list(range(t + 1))
        idx = np.asarray(pos + neg, int)
        lab = np.asarray([1] * len(pos) + [0] * len(neg), np.float32)
        for c in cfg.cameras:
            frames = ep.images[c][idx]
            if frames.shape[1:] != (cfg.image_size, cfg.image_size, 3):
                raise ValueError(f"success classifier: episode {ep.episode_id!r} camera {c!r} frames are "
                                 f"{frames.shape[1:]}, expected ({cfg.image_size}, {cfg.image_size}, 3)")
            imgs[c].append(frames)
        labels.append(lab)
        owner.append(np.full(len(idx), i))
    if not labels:
        raise ValueError("success classifier: no episodes given")
    return {c: np.concatenate(v) for c, v in imgs.items()}, np.concatenate(labels), np.concatenate(owner)


class _Net(nn.Module):
    def __init__(self, cfg: SuccessClassifierConfig) -> None:
        super().__init__()
        c = cfg.channels
        self.conv = nn.Sequential(
            nn.Conv2d(3 * len(cfg.cameras), c, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(c, c, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(c, c, 3, stride=2, padding=1), nn.ReLU(),
            nn.AdaptiveMaxPool2d(2), nn.Flatten(), nn.Linear(4 * c, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x).squeeze(-1)


class SuccessClassifier:
    def __init__(self, cfg: SuccessClassifierConfig | None = None) -> None:
        self.cfg = cfg or SuccessClassifierConfig()
        torch.manual_seed(self.cfg.seed)
        self.net = _Net(self.cfg).to(self.cfg.device)

    def _x(self, images: dict[str, np.ndarray]) -> torch.Tensor:
        for c in self.cfg.cameras:
            if c not in images:
                raise ValueError(f"success classifier: camera {c!r} missing (got {sorted(images)})")
        s = self.cfg.image_size
        for c in self.cfg.cameras:
            shape = np.shape(images[c])
            if len(shape) != 4 or shape[1:] != (s, s, 3):
                raise ValueError(f"success classifier: camera {c!r} frames are {shape}, expected (N, {s}, {s}, 3)")
        x = np.concatenate([np.asarray(images[c]) for c in self.cfg.cameras], axis=-1)
        if x.dtype != np.uint8 or x.ndim != 4:
            raise ValueError(f"success classifier: images must be uint8 (N, H, W, 3) per camera, got {x.dtype} {x.shape}")
        return torch.as_tensor(x, device=self.cfg.device).permute(0, 3, 1, 2).float() / 255.0 - 0.5

    def fit(self, episodes: list[Episode]) -> dict[str, Any]:
        """Train on a by-episode split; returns train / held-out accuracy and counts."""
        cfg = self.cfg
        images, labels, owner = labelled_frames(episodes, cfg)
        rng = np.random.default_rng(cfg.seed)
        ep_ids = rng.permutation(len(episodes))
        n_hold = int(round(len(episodes) * cfg.holdout_fraction)) if len(episodes) > 1 else 0
        held = np.isin(owner, ep_ids[:n_hold])
        tr = np.flatnonzero(~held)
        if labels[tr].min() == labels[tr].max():
            raise ValueError("success classifier: training episodes must contain both successful and failed "
                             f"frames (got only label {int(labels[tr][0])})")
        # class-balanced batches: positives (rare: a few frames per successful episode) oversampled
        pos, neg = tr[labels[tr] == 1], tr[labels[tr] == 0]
        opt = torch.optim.Adam(self.net.parameters(), lr=cfg.lr)
        y_all = torch.as_tensor(labels, device=cfg.device)
        half = max(1, cfg.batch_size // 2)
        for _ in range(cfg.epochs * max(1, len(tr) // cfg.batch_size)):
            b = np.concatenate([rng.choice(pos, half), rng.choice(neg, half)])
            x = random_shift(self._x({c: v[b] for c, v in images.items()}), max(1, cfg.image_size // 16))
            loss = F.binary_cross_entropy_with_logits(self.net(x), y_all[b])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        def acc(idx: np.ndarray, balanced: bool = False) -> float:
            if len(idx) == 0:
                return float("nan")
            p = self.predict_proba({c: v[idx] for c, v in images.items()})
            right = (p >= cfg.threshold) == (labels[idx] == 1)
            if not balanced:
                return float(right.mean())
            per_class = [right[labels[idx] == k].mean() for k in (0, 1) if (labels[idx] == k).any()]
            return float(np.mean(per_class))

        hold = np.flatnonzero(held)
        return {"train_accuracy": acc(tr), "heldout_accuracy": acc(hold),
                "heldout_balanced_accuracy": acc(hold, balanced=True),
                "n_train": int(len(tr)), "n_heldout": int(held.sum()), "heldout_episodes": int(n_hold),
                "positives": int(labels.sum())}

    @torch.no_grad()
    def predict_proba(self, images: dict[str, np.ndarray]) -> np.ndarray:
        out = []
        n = len(next(iter(images.values())))
        for i in range(0, n, 512):
            out.append(torch.sigmoid(self.net(self._x({c: v[i:i + 512] for c, v in images.items()}))).cpu().numpy())
        return np.concatenate(out) if out else np.zeros(0, np.float32)

    def is_success(self, images: dict[str, np.ndarray]) -> bool:
        """One observation (camera -> (H, W, 3) uint8) -> success?"""
        p = self.predict_proba({c: np.asarray(images[c])[None] for c in self.cfg.cameras})[0]
        return bool(p >= self.cfg.threshold)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        cfg = {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self.cfg).items()}
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        torch.save({"format": FORMAT, "config": cfg, "net": self.net.state_dict()}, tmp)
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> SuccessClassifier:
        payload = torch.load(Path(path), map_location="cpu", weights_only=False)
        if not isinstance(payload, dict) or payload.get("format") != FORMAT:
            raise ValueError(f"{str(path)!r} is not a success-classifier checkpoint ({FORMAT})")
        raw = dict(payload["config"])
        raw["cameras"] = tuple(raw["cameras"])
        raw["device"] = device
        clf = cls(SuccessClassifierConfig(**raw))
        clf.net.load_state_dict(payload["net"])
        return clf


# --------------------------------------------------------------------------- on the robot
@dataclass
class SuccessDetectorConfig:
    confirm_frames: int = 2  # consecutive frames the classifier must call "success" before it counts
    terminate_on_success: bool = True  # a detected success ends the episode (HIL-SERL style)

    def validate(self) -> None:
        if int(self.confirm_frames) < 1:
            raise ValueError(f"SuccessDetectorConfig.confirm_frames must be >= 1, got {self.confirm_frames}")


@dataclass
class SuccessDecision:
    reward: float
    success: bool
    terminated: bool
    source: str  # "human" (override), "classifier", or "none" (no classifier, no override yet)
    probability: float  # classifier probability (nan without a classifier)


class SuccessDetector:
    """Reward / success of each step on a real arm: the classifier, overridden by a human.

    `step(images)` judges one observation. The classifier must call success on
    ``confirm_frames`` consecutive frames (one blurry frame does not end an episode). A human
    override (`override(True/False)`, from a key press or button) wins over the classifier and
    ends the episode: it stays in force until `reset()` at the start of the next episode.
    Without a classifier only the human decides (the human-labelling mode for a new task).
    Rewards follow the simulator's convention (`worldsample_control.core.reward`, sparse mode):
    0 on the success step, -1 on every other step.
    """

    def __init__(self, classifier: SuccessClassifier | None, cfg: SuccessDetectorConfig | None = None) -> None:
        self.cfg = cfg or SuccessDetectorConfig()
        self.cfg.validate()
        self.classifier = classifier
        self.overrides = 0
        self.reset()

    @property
    def cameras(self) -> tuple[str, ...]:
        return tuple(self.classifier.cfg.cameras) if self.classifier is not None else ()

    @property
    def override_pending(self) -> bool:
        return self._override is not None

    def reset(self) -> None:
        self._override: bool | None = None
        self._streak = 0

    def override(self, success: bool) -> None:
        self._override = bool(success)
        self.overrides += 1

    def step(self, images: dict[str, np.ndarray] | None) -> SuccessDecision:
        prob = float("nan")
        if self.classifier is not None:
            if images is None:
                raise ValueError(f"success detector: the classifier needs images of cameras {list(self.cameras)}")
            missing = [c for c in self.cameras if c not in images]
            if missing:
                raise ValueError(f"success classifier: camera {missing[0]!r} missing (got {sorted(images)})")
            prob = float(self.classifier.predict_proba({c: np.asarray(images[c])[None] for c in self.cameras})[0])
            self._streak = self._streak + 1 if prob >= self.classifier.cfg.threshold else 0
        if self._override is not None:
            ok = self._override
            return SuccessDecision(step_reward(ok, 0.0, "sparse"), ok, True, "human", prob)
        if self.classifier is None:
            return SuccessDecision(0.0, False, False, "none", prob)
        ok = self._streak >= self.cfg.confirm_frames
        return SuccessDecision(step_reward(ok, 0.0, "sparse"), ok, ok and self.cfg.terminate_on_success,
                               "classifier", prob)
