"""Progress of a closed-loop run: what the loop prints, its CSV, and its plots (no rclpy here).

`LoopProgress` is fed by the loop monitor with the events the nodes publish (recorded
episodes, world-model status, PPL status, policy checkpoints) and keeps the numbers a person
watches: iteration (policy version in use), real episodes, recent success rate, world-model
fidelity, synthetic share. Rows go to ``progress.csv``; `plot_progress` draws PNGs.
"""

from __future__ import annotations

import csv
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path

FIELDS = ["wall_s", "iteration", "policy_version", "episodes", "env_steps", "success_rate", "last_return",
          "wm_version", "wm_psnr", "wm_ssim", "wm_copy_psnr", "wm_copy_ssim", "synthetic_share", "admission_threshold", "admitted", "rejected",
          "q_real", "q_synthetic"]


@dataclass
class LoopProgress:
    window: int = 10
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
        if version != self.policy_version:
            self.policy_version = version
            self.iteration += 1

    def on_world_model(self, version: str, psnr: list[float], ssim: list[float], training: bool = False,
                       copy_psnr: list[float] | None = None, copy_ssim: list[float] | None = None) -> None:
        """Horizon-1 fidelity of the current version and of copy-last-frame on the same held-out starts."""
        self.wm_version = version
        self.wm_training = bool(training)
        if psnr:
            self.wm_psnr, self.wm_ssim = float(psnr[0]), float(ssim[0])
        if copy_psnr and copy_ssim:
            self.wm_copy_psnr, self.wm_copy_ssim = float(copy_psnr[0]), float(copy_ssim[0])

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
        return (f"iter {self.iteration:3d} | policy {self.policy_version or '-':>14} | episodes {self.episodes:4d} "
                f"| success {_pct(self.success_rate)} | wm {self.wm_version or '-'}{'*' if self.wm_training else ''} "
                f"PSNR {self.wm_psnr:5.1f} dB (copy {self.wm_copy_psnr:4.1f}) "
                f"SSIM {self.wm_ssim:.2f} (copy {self.wm_copy_ssim:.2f}) | synthetic share {self.synthetic_share:.2f} "
                f"(admitted {self.admitted}, rejected {self.rejected})")


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


def plot_progress(csv_path: Path, out_png: Path) -> Path:
    """Success rate, world-model PSNR and synthetic share against real environment steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_progress(csv_path)
    if not rows:
        raise ValueError(f"{csv_path}: no progress rows to plot")
    steps = [r["env_steps"] for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for ax, key, label in zip(axes, ("success_rate", "wm_psnr", "synthetic_share"),
                              ("success rate (last episodes)", "world model PSNR h=1 [dB]", "synthetic share"),
                              strict=True):
        ax.plot(steps, [r[key] for r in rows])
        ax.set_xlabel("real environment steps")
        ax.set_title(label)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=90)
    plt.close(fig)
    return out_png
