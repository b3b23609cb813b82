"""Policy-Paced Learning (PPL): selection and scheduling of world-model (synthetic) transitions.

Selection
    Each synthetic transition gets a trust score in [0, 1]::

        trust = exp(-u / uncertainty_scale) * exp(-v / value_risk_scale)

    ``u`` is the world model's per-step uncertainty; ``v`` the value-inflation risk: the critic
    ensemble's disagreement (std over critics) on the transition plus how far its mean Q lies
    above the largest Q the critic gives real data, both in units of the real-data Q spread.
    A transition enters training only when ``trust >= admission_threshold``. Rejections are
    counted by reason: "invalid" (non-finite inputs), "uncertainty" (the uncertainty factor is
    the smaller one) or "value_inflation" (the value factor is), and "disabled" in rl-only mode.

Scheduling
    ``progress`` = recent real success rate + ``trend_gain`` x its rising trend (clipped to [0, 1]);
    ``pace`` = weighted mean of progress and the newest world-model fidelity, damped by
    ``penalty = clip(overestimation / overestimation_tolerance, 0, 1)`` where ``overestimation``
    = (mean Q on synthetic - mean Q on real) / real Q spread. Then::

        synthetic_share = (share_min + (share_max - share_min) * pace) * (1 - penalty)
        rollout_horizon = horizon_min + round((horizon_max - horizon_min) * pace * (1 - penalty))
        admission_threshold = threshold_max - (threshold_max - threshold_min) * pace * (1 - penalty)

Ablation modes (``PPLConfig.mode``)
    rl-only: share 0, nothing admitted, no synthetic requested; naive: fixed share and horizon,
    every valid transition admitted; selection: fixed share and horizon, fixed trust threshold;
    schedule: paced share and horizon, every valid transition admitted; ppl: both.
"""

from __future__ import annotations

import csv
from collections import Counter, deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .config import PPLConfig

REASONS: tuple[str, ...] = ("uncertainty", "value_inflation", "invalid", "disabled")


@dataclass
class TrustScores:
    trust: np.ndarray  # (B,) in [0, 1]; 0 where invalid
    uncertainty_factor: np.ndarray  # (B,)
    value_factor: np.ndarray  # (B,)
    valid: np.ndarray  # (B,) bool


def q_scale_of(q_real: np.ndarray) -> float:
    """Spread of Q on real data used to normalise value quantities (never below 1e-3)."""
    q = np.asarray(q_real, np.float64)
    q = q[np.isfinite(q)]
    if q.size == 0:
        return 1.0
    return float(max(q.std(), 0.1 * abs(q.mean()), 1e-3))


class PPLController:
    def __init__(self, cfg: PPLConfig | None = None) -> None:
        self.cfg = cfg if cfg is not None else PPLConfig()
        self.cfg.validate()
        self._successes: deque[float] = deque(maxlen=self.cfg.success_window)
        self.fidelity = float(self.cfg.initial_fidelity)
        self.q_real = float("nan")
        self.q_synthetic = float("nan")
        self.q_scale = 1.0
        self.admitted = 0
        self.rejected: Counter = Counter()

    @property
    def mode(self) -> str:
        return self.cfg.mode

    # ------------------------------------------------------------------ signals
    def observe_real_episode(self, success: bool) -> None:
        self._successes.append(1.0 if success else 0.0)

    def observe_fidelity(self, score: float) -> None:
        """Newest world-model fidelity in [0, 1] on the latest real rollouts (e.g. SSIM)."""
        if not np.isfinite(score) or not 0.0 <= score <= 1.0:
            raise ValueError(f"world-model fidelity must be a number in [0, 1], got {score!r}")
        self.fidelity = float(score)

    def observe_q(self, q_real: float, q_synthetic: float, q_scale: float | None = None) -> None:
        """Mean critic estimates on real and synthetic training data of the last window."""
        if np.isfinite(q_real):
            self.q_real = float(q_real)
        if np.isfinite(q_synthetic):
            self.q_synthetic = float(q_synthetic)
        if q_scale is not None and np.isfinite(q_scale) and q_scale > 0:
            self.q_scale = float(q_scale)

    # ------------------------------------------------------------------ derived signals
    @property
    def real_success_rate(self) -> float:
        return float(np.mean(self._successes)) if self._successes else 0.0

    def progress(self) -> float:
        s = list(self._successes)
        if not s:
            return 0.0
        rate = float(np.mean(s))
        trend = 0.0
        if len(s) >= 4:
            half = len(s) // 2
            trend = float(np.mean(s[half:]) - np.mean(s[:half]))
        return float(np.clip(rate + self.cfg.trend_gain * max(0.0, trend), 0.0, 1.0))

    def overestimation(self) -> float:
        if not (np.isfinite(self.q_real) and np.isfinite(self.q_synthetic)):
            return 0.0
        return float((self.q_synthetic - self.q_real) / self.q_scale)

    def penalty(self) -> float:
        return float(np.clip(self.overestimation() / self.cfg.overestimation_tolerance, 0.0, 1.0))

    def pace(self) -> float:
        c = self.cfg
        w = c.progress_weight + c.fidelity_weight
        p = (c.progress_weight * self.progress() + c.fidelity_weight * self.fidelity) / w if w > 0 else 0.0
        return float(np.clip(p, 0.0, 1.0))

    # ------------------------------------------------------------------ decisions
    def synthetic_share(self) -> float:
        c = self.cfg
        if c.mode == "rl-only":
            return 0.0
        if c.mode in ("naive", "selection"):
            return float(c.naive_share)
        return float((c.share_min + (c.share_max - c.share_min) * self.pace()) * (1.0 - self.penalty()))

    def rollout_horizon(self) -> int:
        c = self.cfg
        if c.mode == "rl-only":
            return 0
        if c.mode in ("naive", "selection"):
            return int(c.naive_horizon)
        return int(c.horizon_min + round((c.horizon_max - c.horizon_min) * self.pace() * (1.0 - self.penalty())))

    def admission_threshold(self) -> float:
        c = self.cfg
        if c.mode in ("naive", "schedule"):
            return 0.0
        if c.mode == "selection":
            return float(c.fixed_threshold)
        if c.mode == "rl-only":
            return 1.0
        return float(c.threshold_max - (c.threshold_max - c.threshold_min) * self.pace() * (1.0 - self.penalty()))

    # ------------------------------------------------------------------ selection
    def score(self, uncertainty: np.ndarray, q_ensemble: np.ndarray | None, q_real_max: float) -> TrustScores:
        """Trust of synthetic transitions from their uncertainty (B,) and critic-ensemble Q (N, B)."""
        u = np.asarray(uncertainty, np.float64).reshape(-1)
        b = u.shape[0]
        valid = np.isfinite(u) & (u >= 0)
        u_factor = np.exp(-np.where(valid, u, 0.0) / self.cfg.uncertainty_scale)
        if q_ensemble is None:
            v_factor = np.ones(b)
        else:
            q = np.asarray(q_ensemble, np.float64)
            if q.ndim != 2 or q.shape[1] != b:
                raise ValueError(f"PPL score: q_ensemble must be (num_critics, {b}), got {q.shape}")
            finite = np.isfinite(q).all(axis=0)
            valid &= finite
            q = np.where(finite[None], q, 0.0)
            disagreement = q.std(axis=0) / self.q_scale
            excess = np.maximum(0.0, q.mean(axis=0) - q_real_max) / self.q_scale if np.isfinite(q_real_max) else 0.0
            v_factor = np.exp(-(disagreement + excess) / self.cfg.value_risk_scale)
        trust = np.where(valid, u_factor * v_factor, 0.0)
        return TrustScores(trust.astype(np.float32), u_factor.astype(np.float32), np.asarray(v_factor, np.float32), valid)

    def admit(self, scores: TrustScores) -> tuple[np.ndarray, Counter]:
        """Admission mask for scored transitions; counts (also kept cumulatively) by rejection reason."""
        n = len(scores.trust)
        reasons: Counter = Counter()
        if self.cfg.mode == "rl-only":
            reasons["disabled"] = n
            self.rejected.update(reasons)
            return np.zeros(n, bool), reasons
        thr = self.admission_threshold()
        ok = scores.valid & (scores.trust >= thr)
        reasons["invalid"] = int((~scores.valid).sum())
        low = scores.valid & ~ok
        by_unc = low & (scores.uncertainty_factor <= scores.value_factor)
        reasons["uncertainty"] = int(by_unc.sum())
        reasons["value_inflation"] = int((low & ~by_unc).sum())
        reasons = Counter({k: v for k, v in reasons.items() if v})
        self.rejected.update(reasons)
        self.admitted += int(ok.sum())
        return ok, reasons

    # ------------------------------------------------------------------ reporting
    def status(self, learner_step: int) -> dict[str, Any]:
        """A dict with the fields of worldsample_msgs/PPLStatus (header aside)."""
        names = [r for r in REASONS if self.rejected.get(r, 0)]
        return {
            "mode": self.cfg.mode,
            "learner_step": int(learner_step),
            "synthetic_share": self.synthetic_share(),
            "admission_threshold": self.admission_threshold(),
            "rollout_horizon": self.rollout_horizon(),
            "admitted": int(self.admitted),
            "rejected": int(sum(self.rejected.values())),
            "rejection_reasons": names,
            "rejection_counts": [int(self.rejected[r]) for r in names],
            "q_real": self.q_real,
            "q_synthetic": self.q_synthetic,
            "real_success_rate": self.real_success_rate,
            "world_model_fidelity": self.fidelity,
            "overestimation": self.overestimation(),
        }


def flat_status(status: dict[str, Any]) -> dict[str, Any]:
    """PPLStatus dict -> one CSV row (rejection counts as rejected_<reason> columns)."""
    row = {k: v for k, v in status.items() if k not in ("rejection_reasons", "rejection_counts")}
    counts = dict(zip(status["rejection_reasons"], status["rejection_counts"], strict=True))
    for r in REASONS:
        row[f"rejected_{r}"] = counts.get(r, 0)
    return row


class CsvLog:
    """Append rows (dicts with a fixed set of keys, from the first row) to a CSV file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fields: list[str] | None = None
        self.rows: list[dict[str, Any]] = []

    def write(self, row: dict[str, Any]) -> None:
        if self._fields is None:
            self._fields = list(row)
            with open(self.path, "w", newline="") as f:
                csv.DictWriter(f, self._fields).writeheader()
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, self._fields, extrasaction="ignore").writerow(row)
        self.rows.append(dict(row))
