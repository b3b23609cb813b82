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
    with ``progress_by = "return"`` the larger of that and the recent real episodes' mean per-step reward's
    way from the first episodes' to the demos' (``(r_recent - r_first) / (r_demo - r_first)``, clipped);
    ``pace`` = weighted mean of progress and the newest world-model fidelity, damped by
    ``penalty = clip(overestimation / overestimation_tolerance, 0, 1)`` where ``overestimation``
    = (mean Q on synthetic - mean Q on real) / real Q spread. Then::

        synthetic_share = (share_min + (share_max - share_min) * pace) * (1 - penalty)    (share_by "pace")
        synthetic_share = share_max * fidelity * (1 - penalty)                          (share_by "fidelity")
        rollout_horizon = horizon_min + round((horizon_max - horizon_min) * pace * (1 - penalty))
        admission_threshold = threshold_max - (threshold_max - threshold_min) * pace * (1 - penalty)

Modes (``PPLConfig.mode``) are strategy objects registered by name (`STRATEGIES`), each one
volume rule x one admission rule::

    mode        volume (share, horizon)          admission threshold
    rl-only     none (uses no synthetic data)    everything rejected as "disabled"
    naive       fixed (naive_share/_horizon)     0 (every valid transition)
    selection   fixed                            fixed_threshold
    schedule    paced (above)                    0
    ppl         paced                            paced (above)

A strategy keeps no state: it reads the controller's signals (`pace`, `penalty`) and config, and
`PPLController` owns every counter. Callers ask the registry (`uses_synthetic(mode)`) instead of
comparing mode names.
"""

from __future__ import annotations

import csv
from collections import Counter, deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

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


# ---------------------------------------------------------------------------- modes as strategies
class PPLStrategy:
    """One PPL mode: how much synthetic data, how long its branches, which transitions enter training."""

    name: ClassVar[str]
    uses_synthetic: ClassVar[bool] = True  # False: no synthetic data is requested, generated or admitted

    def synthetic_share(self, ppl: PPLController) -> float:
        raise NotImplementedError

    def rollout_horizon(self, ppl: PPLController) -> int:
        raise NotImplementedError

    def admission_threshold(self, ppl: PPLController) -> float:
        raise NotImplementedError


class FixedVolume(PPLStrategy):
    """A fixed synthetic share and branch length (``naive_share``, ``naive_horizon``)."""

    def synthetic_share(self, ppl: PPLController) -> float:
        return float(ppl.cfg.naive_share)

    def rollout_horizon(self, ppl: PPLController) -> int:
        return int(ppl.cfg.naive_horizon)


class PacedVolume(PPLStrategy):
    """Share and branch length grow with the pace and shrink with the overestimation penalty."""

    def synthetic_share(self, ppl: PPLController) -> float:
        c = ppl.cfg
        if c.share_by == "fidelity":
            return float(c.share_max * ppl.fidelity * (1.0 - ppl.penalty()))
        return float((c.share_min + (c.share_max - c.share_min) * ppl.pace()) * (1.0 - ppl.penalty()))

    def rollout_horizon(self, ppl: PPLController) -> int:
        c = ppl.cfg
        return int(c.horizon_min + round((c.horizon_max - c.horizon_min) * ppl.pace() * (1.0 - ppl.penalty())))


class AdmitValid:
    """Every valid transition enters training (threshold 0)."""

    def admission_threshold(self, ppl: PPLController) -> float:
        return 0.0


class FixedThreshold:
    """A fixed trust threshold (``fixed_threshold``)."""

    def admission_threshold(self, ppl: PPLController) -> float:
        return float(ppl.cfg.fixed_threshold)


class PacedThreshold:
    """The threshold falls from ``threshold_max`` to ``threshold_min`` as the pace rises."""

    def admission_threshold(self, ppl: PPLController) -> float:
        c = ppl.cfg
        return float(c.threshold_max - (c.threshold_max - c.threshold_min) * ppl.pace() * (1.0 - ppl.penalty()))


STRATEGIES: dict[str, type[PPLStrategy]] = {}


def register_strategy(cls: type[PPLStrategy]) -> type[PPLStrategy]:
    """Class decorator: make ``cls`` the strategy of ``PPLConfig.mode == cls.name``."""
    if cls.name in STRATEGIES:
        raise ValueError(f"PPL mode {cls.name!r} is registered twice ({STRATEGIES[cls.name].__name__}, {cls.__name__})")
    STRATEGIES[cls.name] = cls
    return cls


@register_strategy
class RLOnly(PPLStrategy):
    """RL on real (and demo) data only: no synthetic data is asked for; any that arrives is rejected."""

    name = "rl-only"
    uses_synthetic = False

    def synthetic_share(self, ppl: PPLController) -> float:
        return 0.0

    def rollout_horizon(self, ppl: PPLController) -> int:
        return 0

    def admission_threshold(self, ppl: PPLController) -> float:
        return 1.0


@register_strategy
class Naive(AdmitValid, FixedVolume):
    name = "naive"


@register_strategy
class Selection(FixedThreshold, FixedVolume):
    name = "selection"


@register_strategy
class Schedule(AdmitValid, PacedVolume):
    name = "schedule"


@register_strategy
class PPL(PacedThreshold, PacedVolume):
    name = "ppl"


PPL_MODES: tuple[str, ...] = tuple(STRATEGIES)  # in registration order: the ablation ladder


def strategy_for(mode: str) -> PPLStrategy:
    try:
        return STRATEGIES[mode]()
    except KeyError:
        raise ValueError(f"PPL mode {mode!r} is not registered; expected one of {tuple(STRATEGIES)}") from None


def uses_synthetic(mode: str) -> bool:
    """Whether ``mode`` trains on synthetic data at all (drivers skip generation when it does not)."""
    return strategy_for(mode).uses_synthetic


class PPLController:
    """PPL's state (signals and counters) and its decisions, through the strategy of ``cfg.mode``."""

    def __init__(self, cfg: PPLConfig | None = None) -> None:
        self.cfg = cfg if cfg is not None else PPLConfig()
        self.cfg.validate()
        self.strategy = strategy_for(self.cfg.mode)
        self._successes: deque[float] = deque(maxlen=self.cfg.success_window)
        # mean per-step rewards: the recent real episodes', the first ones' (r_first) and the demos' (r_demo)
        self._returns: deque[float] = deque(maxlen=self.cfg.success_window)
        self._first_returns: list[float] = []
        self._demo_returns: list[float] = []
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
    def observe_real_episode(self, success: bool, mean_reward: float | None = None) -> None:
        """A real episode ended; ``mean_reward``: its return / length (progress_by "return" reads it)."""
        self._successes.append(1.0 if success else 0.0)
        if mean_reward is not None and np.isfinite(mean_reward):
            self._returns.append(float(mean_reward))
            if len(self._first_returns) < self.cfg.return_baseline_episodes:
                self._first_returns.append(float(mean_reward))

    def observe_demo_episode(self, mean_reward: float) -> None:
        """A demonstration's return / length: the reference of progress_by "return"."""
        if np.isfinite(mean_reward):
            self._demo_returns.append(float(mean_reward))

    def observe_fidelity(self, score: float) -> None:
        """Newest world-model fidelity in [0, 1] on held-out real rollouts (`worldsample_common.core.stats.fidelity_skill`:
        past copy-last-frame in SSIM and PSNR; 0 = no better than copying the last frame)."""
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

    def observe_q_scale(self, q_real: np.ndarray) -> None:
        """The spread of Q on a sample of real data (`q_scale_of`) normalises value quantities."""
        self.q_scale = q_scale_of(q_real)

    def reject_invalid(self, n: int) -> None:
        """``n`` synthetic transitions never reached scoring (unreadable, malformed, a broken branch)."""
        self.rejected["invalid"] += int(n)

    def withdraw(self, n: int) -> None:
        """``n`` admitted transitions did not enter training after all (already held: duplicates)."""
        self.admitted -= int(n)

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
        by_success = float(np.clip(rate + self.cfg.trend_gain * max(0.0, trend), 0.0, 1.0))
        if self.cfg.progress_by == "return":
            return max(by_success, self.return_progress())
        return by_success

    def return_progress(self) -> float:
        """How far the recent real episodes' mean per-step reward has come from the first ones' (once
        ``return_baseline_episodes`` have ended) towards the demos', in [0, 1]; 0 while either is unknown, or where
        the first episodes already did as well as the demos."""
        if len(self._first_returns) < self.cfg.return_baseline_episodes or not self._demo_returns:
            return 0.0
        first, demo = float(np.mean(self._first_returns)), float(np.mean(self._demo_returns))
        if not demo > first:
            return 0.0
        return float(np.clip((np.mean(self._returns) - first) / (demo - first), 0.0, 1.0))

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
    @property
    def uses_synthetic(self) -> bool:
        return self.strategy.uses_synthetic

    def synthetic_share(self) -> float:
        return float(self.strategy.synthetic_share(self))

    def rollout_horizon(self) -> int:
        return int(self.strategy.rollout_horizon(self))

    def admission_threshold(self) -> float:
        return float(self.strategy.admission_threshold(self))

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
        if not self.strategy.uses_synthetic:
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

    # ------------------------------------------------------------------ state (resuming a run)
    def state_dict(self) -> dict[str, Any]:
        """Every signal and counter (plain Python values): what a resumed learner continues from."""
        return {"successes": list(self._successes), "returns": list(self._returns),
                "first_returns": list(self._first_returns), "demo_returns": list(self._demo_returns),
                "fidelity": self.fidelity, "q_real": self.q_real,
                "q_synthetic": self.q_synthetic, "q_scale": self.q_scale, "admitted": int(self.admitted),
                "rejected": dict(self.rejected)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._successes.clear()
        self._successes.extend(float(s) for s in state["successes"])
        self._returns.clear()  # the reward lists are absent from snapshots taken before progress_by existed
        self._returns.extend(float(r) for r in state.get("returns", ()))
        self._first_returns = [float(r) for r in state.get("first_returns", ())]
        self._demo_returns = [float(r) for r in state.get("demo_returns", ())]
        self.fidelity = float(state["fidelity"])
        self.q_real, self.q_synthetic = float(state["q_real"]), float(state["q_synthetic"])
        self.q_scale = float(state["q_scale"])
        self.admitted = int(state["admitted"])
        self.rejected = Counter({str(k): int(v) for k, v in state["rejected"].items()})

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
    """Rows (dicts) appended to a CSV file, the header written once.

    ``append=True`` (a resumable run, e.g. the learner node's ``ppl.csv``): an existing file is
    continued under its own header (its columns win: a key it lacks is dropped, a column the row
    lacks stays empty), so the rows of every session can be read as one table. ``append=False`` (a
    one-shot run): the file is started afresh on the first row. The columns of a new file are the
    keys of its first row.
    """

    def __init__(self, path: str | Path, append: bool = False) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fields: list[str] | None = None
        self.rows: list[dict[str, Any]] = []  # the rows of this session
        if append and self.path.exists() and self.path.stat().st_size > 0:
            with open(self.path, newline="") as f:
                self._fields = next(csv.reader(f), None) or None

    def write(self, row: dict[str, Any]) -> None:
        if self._fields is None:
            self._fields = list(row)
            with open(self.path, "w", newline="") as f:
                csv.DictWriter(f, self._fields).writeheader()
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, self._fields, extrasaction="ignore").writerow(row)
        self.rows.append(dict(row))
