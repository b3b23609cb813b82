"""Progress of a closed-loop run: what the loop prints, its CSV, and its plots (no rclpy here).

`LoopProgress` is fed by the loop monitor with the events the nodes publish (recorded
episodes, world-model status, PPL status, policy checkpoints) and keeps the numbers a person
watches: iteration (policy version in use), real episodes, recent success rate, world-model
fidelity, synthetic share. Rows go to ``progress.csv``; `plot_progress` draws PNGs.

Numbers mean what they say: the iteration is the number of the policy checkpoint in use
(``policy-000012`` -> 12), so it continues across ``--resume``; the synthetic share is the share
of each training batch actually drawn from synthetic data (0 while nothing was admitted); a PSNR
of infinity (a world model from before identical frames got a finite PSNR,
`worldsample_worldmodel.core.fidelity.identical_frames_psnr`: one such start made the mean infinite) is
shown as ``static`` and written as ``"static"`` in summary.json, a PSNR not measured yet as ``-`` / ``null``.
"""

from __future__ import annotations

import csv
import math
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path

FIELDS = ["wall_s", "iteration", "policy_version", "episodes", "env_steps", "success_rate", "last_return",
          "wm_version", "wm_psnr", "wm_ssim", "wm_copy_psnr", "wm_copy_ssim", "synthetic_share", "admission_threshold", "admitted", "rejected",
          "q_real", "q_synthetic", "wm_feature_skill"]


@dataclass
class LoopProgress:
    window: int = 10
    total: int = 0  # real episodes of the whole run (0: open-ended)
    start: float = field(default_factory=time.monotonic)
    iteration: int = 0
    policy_version: str = ""
    policy_versions_used: list[str] = field(default_factory=list)
    episodes: int = 0
    env_steps: int = 0
    last_return: float = 0.0
    wm_version: str = ""
    wm_training: bool = False
    wm_psnr: float = float("nan")
    wm_ssim: float = float("nan")
    wm_copy_psnr: float = float("nan")  # copy-last-frame on the same held-out starts (the baseline)
    wm_copy_ssim: float = float("nan")
    # h=1: 1 - error of the model's frames / copy-last-frame's in the pixel policy's encoder features (nan: not read)
    wm_feature_skill: float = float("nan")
    synthetic_share: float = 0.0
    admission_threshold: float = float("nan")
    admitted: int = 0
    rejected: int = 0
    q_real: float = float("nan")
    q_synthetic: float = float("nan")
    _recent: deque = field(default_factory=lambda: deque(maxlen=10))

    def __post_init__(self) -> None:
        self._recent = deque(maxlen=self.window)

    @property
    def success_rate(self) -> float:
        return sum(self._recent) / len(self._recent) if self._recent else float("nan")

    def on_episode(self, length: int, episode_return: float, success: bool, policy_version: str) -> None:
        self.episodes += 1
        self.env_steps += int(length)
        self.last_return = float(episode_return)
        self._recent.append(1.0 if success else 0.0)
        if policy_version and policy_version not in self.policy_versions_used:
            self.policy_versions_used.append(policy_version)

    def on_checkpoint(self, version: str) -> None:
        """The policy in use is ``version``; the iteration is its checkpoint number (``policy-000012``:
        12), or one more than before for a version without a number."""
        if version != self.policy_version:
            self.policy_version = version
            self.iteration = iteration_of(version, self.iteration + 1)

    def on_world_model(self, version: str, psnr: list[float], ssim: list[float], training: bool = False,
                       copy_psnr: list[float] | None = None, copy_ssim: list[float] | None = None,
                       feature_skill: list[float] | None = None) -> None:
        """Horizon-1 fidelity of the current version and of copy-last-frame on the same held-out starts (and, when
        the world model read its frames with the pixel policy's encoder, the feature skill)."""
        self.wm_version = version
        self.wm_training = bool(training)
        if psnr:
            self.wm_psnr, self.wm_ssim = float(psnr[0]), float(ssim[0])
        if copy_psnr and copy_ssim:
            self.wm_copy_psnr, self.wm_copy_ssim = float(copy_psnr[0]), float(copy_ssim[0])
        if feature_skill:
            self.wm_feature_skill = float(feature_skill[0])

    def on_ppl(self, share: float, threshold: float, admitted: int, rejected: int, q_real: float,
               q_synthetic: float) -> None:
        self.synthetic_share, self.admission_threshold = float(share), float(threshold)
        self.admitted, self.rejected = int(admitted), int(rejected)
        self.q_real, self.q_synthetic = float(q_real), float(q_synthetic)

    def row(self) -> dict[str, float | int | str]:
        values = asdict(self)
        values["wall_s"] = round(time.monotonic() - self.start, 1)
        values["success_rate"] = self.success_rate
        return {k: values[k] for k in FIELDS}

    def line(self) -> str:
        of = f"/{self.total}" if self.total else ""
        return (f"iter {self.iteration:3d} | policy {self.policy_version or '-':>14} | episodes {self.episodes:4d}{of} "
                f"| success {_pct(self.success_rate)} | wm {self.wm_version or '-'}{'*' if self.wm_training else ''} "
                f"PSNR {psnr_text(self.wm_psnr, 5)} dB (copy {psnr_text(self.wm_copy_psnr, 4)}) "
                f"SSIM {_num(self.wm_ssim)} (copy {_num(self.wm_copy_ssim)})"
                + (f", encoder-feature skill {self.wm_feature_skill:+.2f}" if math.isfinite(self.wm_feature_skill) else "")
                + " | synthetic share "
                f"{self.synthetic_share:.2f}, admitted {self.admitted}, rejected {self.rejected}")


def iteration_of(version: str, default: int) -> int:
    """The number of a checkpoint version (``policy-000012`` -> 12), else ``default``."""
    tail = version.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else default


def psnr_text(x: float, width: int = 0) -> str:
    """A PSNR for people: ``static`` for infinity (identical frames), ``-`` when not measured yet."""
    if math.isinf(x):
        text = "static"
    elif x != x:
        text = "-"
    else:
        text = f"{x:.1f}"
    return f"{text:>{width}}"


def psnr_value(x: float) -> float | str | None:
    """A PSNR for summary.json: the number, ``"static"`` for infinity, None when not measured yet."""
    if math.isinf(x):
        return "static"
    return None if x != x else float(x)


def _num(x: float) -> str:
    return "   -" if x != x else f"{x:.2f}"


def _pct(x: float) -> str:
    return "  - " if x != x else f"{100 * x:3.0f}%"


class ProgressCSV:
    """Append-only CSV (survives --resume: rows are appended, the header written once)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.path.parent.mkdir(parents=True, exist_ok=True)
        new = not self.path.exists() or self.path.stat().st_size == 0
        names = FIELDS
        if not new:  # a resumed run keeps the columns its file was started with
            with self.path.open(newline="") as f:
                names = next(csv.reader(f), None) or FIELDS
        self._f = self.path.open("a", newline="")
        self._w = csv.DictWriter(self._f, fieldnames=names, extrasaction="ignore")
        if new:
            self._w.writeheader()

    def append(self, row: dict) -> None:
        self._w.writerow(row)
        self._f.flush()

    def close(self) -> None:
        self._f.close()


def read_progress(path: Path) -> list[dict[str, float]]:
    with path.open() as f:
        rows = list(csv.DictReader(f))
    out = []
    for r in rows:
        parsed = {}
        for k, v in r.items():
            try:
                parsed[k] = float(v)
            except (TypeError, ValueError):
                parsed[k] = v
        out.append(parsed)
    return out


SMOOTH_EPISODES = 50  # the success panel's smoothed line: the rolling rate averaged over this many episodes
MAX_ITERATION_LABELS = 15


def _episode_smoothed(rows: list[dict], rate: list[float]) -> list[tuple[float, float]]:
    """(env steps, mean of the rolling success rate over the last ``SMOOTH_EPISODES`` episodes) at each new
    episode: a steadier line than the rolling window's, for a long run; [] before there are that many."""
    per_episode: dict[float, tuple[float, float]] = {}
    for r, v in zip(rows, rate, strict=True):
        if isinstance(r.get("episodes"), float) and r["episodes"] > 0 and math.isfinite(v):
            per_episode[r["episodes"]] = (r["env_steps"], v)  # the rate after the episode's last event
    points = [per_episode[e] for e in sorted(per_episode)]
    return [(points[i][0], sum(v for _, v in points[i + 1 - SMOOTH_EPISODES:i + 1]) / SMOOTH_EPISODES)
            for i in range(SMOOTH_EPISODES - 1, len(points))]


def plot_progress(csv_path: Path, out_png: Path) -> Path:
    """Success rate, world-model PSNR beside copy-last-frame's, and the synthetic share actually used, against
    real environment steps; a dotted line where each policy iteration begins (labelled with its number)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_progress(csv_path)
    if not rows:
        raise ValueError(f"{csv_path}: no progress rows to plot")
    steps = [r["env_steps"] for r in rows]

    def col(key: str) -> list[float]:  # missing (an older file) or infinite (static frames): not drawn
        return [v if isinstance(v := r.get(key), float) and math.isfinite(v) else math.nan for r in rows]

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    rate = col("success_rate")
    axes[0].plot(steps, rate, lw=0.8, alpha=0.6, label="last episodes")
    smooth = _episode_smoothed(rows, rate)
    if smooth:
        axes[0].plot(*zip(*smooth, strict=True), lw=2, color="C1", label=f"mean over {SMOOTH_EPISODES} episodes")
        axes[0].legend(fontsize=8, loc="center left")
    axes[0].set_title("success rate (last episodes)")
    axes[1].plot(steps, col("wm_psnr"), ".-", label="world model")  # dots: a lone measurement shows too
    axes[1].plot(steps, col("wm_copy_psnr"), ".--", label="copy last frame")
    if any(isinstance(r.get("wm_copy_psnr"), float) and math.isinf(r["wm_copy_psnr"]) for r in rows):
        axes[1].text(0.02, 0.04, "copy last frame: static frames (exact)", transform=axes[1].transAxes, fontsize=8)
    axes[1].margins(y=0.25)  # two flat lines stay off the frame
    axes[1].legend(fontsize=8, loc="best")
    axes[1].set_title("world model PSNR h=1 [dB] (held out)")
    axes[2].plot(steps, col("synthetic_share"))
    axes[2].set_title("synthetic share of each batch (used)")
    marks = []  # (env steps, iteration) where a new iteration begins
    for r, prev in zip(rows, [None, *rows[:-1]], strict=True):
        it = r.get("iteration")
        if isinstance(it, float) and it > 0 and (prev is None or prev.get("iteration") != it):
            marks.append((r["env_steps"], int(it)))
    for ax in axes:
        for x, _ in marks:
            ax.axvline(x, color="grey", lw=0.7, ls=":")
        ax.set_xlabel("real environment steps")
        ax.grid(alpha=0.3)
    every = max(1, math.ceil(len(marks) / MAX_ITERATION_LABELS))  # a long run: every k-th number, readable
    for x, it in marks[::every]:  # the iteration's number at the top of the first panel
        axes[0].text(x, 0.98, f" {it}", fontsize=7, color="grey", va="top", transform=axes[0].get_xaxis_transform())
    if marks:
        fig.text(0.995, 0.005, "dotted lines: a policy iteration starts (its number in the first panel)",
                 fontsize=7, ha="right", va="bottom", color="grey")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=90)
    plt.close(fig)
    return out_png
