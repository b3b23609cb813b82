"""Typed configuration of the world model (no torch import: cheap to import)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

ROLLOUT_MODES = ("mean", "random_member")
PIXEL_LOSSES = ("log", "mse")


@dataclass
class WorldModelConfig:
    """Sizes and training settings of the world model. Defaults train on 2 CPU cores at 64x64 in minutes.

    Architecture (see `model`): per camera a conv encoder maps a frame to a latent grid of
    ``latent_channels`` x (image_size/4)^2; the dynamics (a conv trunk conditioned on proprio and
    action, ``ensemble_size`` 1x1 member heads) predicts the change of the grid from the last
    ``history`` grids; the decoder blends the anchor frame, the anchor warped by a predicted flow
    and a painted RGB layer with per-pixel softmax weights. An MLP ensemble predicts proprioception, a head
    reward/success/termination, an error head the log pixel MSE of each decoded frame (the
    uncertainty). Training unrolls ``rollout_steps`` steps open loop under the real actions;
    generation re-anchors every ``rollout_steps`` steps. ``device="auto"`` picks CUDA when present.
    """

    image_size: int = 64
    cameras: tuple[str, ...] = ("front", "wrist")
    history: int = 2  # frames of context per camera
    latent_channels: int = 32  # channels of each camera's latent grid (image_size/4 square)
    base_channels: int = 16  # first encoder stage / last decoder stage
    ensemble_size: int = 5
    hidden_dim: int = 128
    # training
    batch_size: int = 12
    rollout_steps: int = 8  # open-loop steps in the loss (and the re-anchoring period of long branches)
    lr: float = 1e-3
    lr_final_fraction: float = 0.1  # cosine decay of the learning rate over each training call to lr * this (1 = constant)
    weight_decay: float = 0.0
    grad_clip: float = 10.0
    pixel_loss: str = "log"  # "log": per-frame log MSE (what mean PSNR measures; near-static frames count) | "mse"
    recon_weight: float = 1.0  # pixel loss on frames decoded from the encoded real latents (teacher forced)
    ssim_weight: float = 0.5  # 1 - SSIM of the rolled-out frames (sharpness the pixel loss does not reward)
    pred_weight: float = 1.0  # pixel loss on frames decoded from the rolled-out latents
    latent_weight: float = 1.0  # every member's predicted latent vs the encoded (stop-grad) real one
    error_weight: float = 0.1  # error head: predicted vs actual log pixel MSE
    ego_weight: float = 1.0  # the ego-motion homography alone vs the target frame, coarse (see train)
    proprio_weight: float = 1.0
    # proprio predicted and scored as standardised per-step changes (`WorldModel.set_delta_stats`, MBPO's
    # parameterisation); False: as the normalised proprio itself. Measured (docs/results.md, issue 22 second
    # sitting): on push lower object RMSE (3.8 / 8.8 / 13.3 vs 4.5 / 10.0 / 14.2 mm at h = 1 / 4 / 8) and a goal
    # that stays put, but a more sluggish object (motion gain 0.58-0.75 vs 0.66-0.80) and twice the ee-velocity
    # error; on peg insertion worse everywhere that matters (gain 0.45-0.88 vs 0.91-1.06, object 7.2 vs 5.5 mm at
    # h = 1). Off by default; the issue-22 comparison of that sitting ran with it on
    proprio_step_scaled: bool = False
    reward_weight: float = 1.0
    done_weight: float = 0.5
    real_fraction: float = 0.7  # share of each batch drawn from REAL episodes when demos are mixed in
    log_every: int = 25
    train_state_every: int = 200  # training steps between train_state.pt saves (resume after a kill)
    seed: int = 0
    device: str = "auto"  # "auto" | "cpu" | "cuda" | "cuda:N"
    num_threads: int = 0  # torch CPU threads; 0 leaves torch's default
    # generation
    rollout_mode: str = "mean"  # "mean" of the ensemble or a "random_member" per step and branch
    done_threshold: float = 0.5

    def validate(self) -> None:
        """Raise ValueError naming the first bad field."""

        def pos_int(name: str, lo: int = 1) -> None:
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < lo:
                raise ValueError(f"WorldModelConfig.{name} must be an int >= {lo}, got {v!r}")

        for name in ("history", "latent_channels", "base_channels", "ensemble_size",
                     "hidden_dim", "batch_size", "rollout_steps", "log_every", "train_state_every"):
            pos_int(name)
        pos_int("image_size", 8)
        pos_int("num_threads", 0)
        if self.image_size & (self.image_size - 1) or self.image_size < 8:  # the latent grid is image_size/4
            raise ValueError(f"WorldModelConfig.image_size must be a power of two >= 8, got {self.image_size!r}")
        cams = tuple(self.cameras)
        if not cams or len(set(cams)) != len(cams) or not all(isinstance(c, str) and c for c in cams):
            raise ValueError(f"WorldModelConfig.cameras must be distinct non-empty names, got {self.cameras!r}")
        for name in ("lr", "grad_clip"):
            v = getattr(self, name)
            if not (isinstance(v, int | float) and math.isfinite(v) and v > 0):
                raise ValueError(f"WorldModelConfig.{name} must be a positive number, got {v!r}")
        for name in ("weight_decay", "recon_weight", "pred_weight", "latent_weight", "proprio_weight",
                     "reward_weight", "done_weight", "error_weight", "ego_weight", "ssim_weight"):
            v = getattr(self, name)
            if not (isinstance(v, int | float) and math.isfinite(v) and v >= 0):
                raise ValueError(f"WorldModelConfig.{name} must be a number >= 0, got {v!r}")
        if not (isinstance(self.lr_final_fraction, int | float) and 0.0 < self.lr_final_fraction <= 1.0):
            raise ValueError(f"WorldModelConfig.lr_final_fraction must be in (0, 1], got {self.lr_final_fraction!r}")
        if not 0.0 <= self.real_fraction <= 1.0:
            raise ValueError(f"WorldModelConfig.real_fraction must be in [0, 1], got {self.real_fraction!r}")
        if not 0.0 < self.done_threshold < 1.0:
            raise ValueError(f"WorldModelConfig.done_threshold must be in (0, 1), got {self.done_threshold!r}")
        if self.pixel_loss not in PIXEL_LOSSES:
            raise ValueError(f"WorldModelConfig.pixel_loss must be one of {PIXEL_LOSSES}, got {self.pixel_loss!r}")
        if self.rollout_mode not in ROLLOUT_MODES:
            raise ValueError(f"WorldModelConfig.rollout_mode must be one of {ROLLOUT_MODES}, got {self.rollout_mode!r}")
        if not (self.device in ("auto", "cpu", "cuda") or str(self.device).startswith("cuda:")):
            raise ValueError(f"WorldModelConfig.device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {self.device!r}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["cameras"] = list(self.cameras)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> WorldModelConfig:
        """Build from a dict (e.g. a saved manifest); unknown keys are an error naming them."""
        names = {f.name for f in fields(cls)}
        d = {RENAMED.get(k, k): v for k, v in d.items()}  # models saved before a field was renamed
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"WorldModelConfig: unknown field(s) {unknown}; expected a subset of {sorted(names)}")
        d = dict(d)
        if "cameras" in d:
            d["cameras"] = tuple(d["cameras"])
        cfg = cls(**d)
        cfg.validate()
        return cfg


RENAMED = {"checkpoint_every": "train_state_every"}  # old field name -> new, for saved configs


def resolve_device(device: str) -> str:
    """'auto' -> 'cuda' when available else 'cpu'."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available on this machine")
    return device
