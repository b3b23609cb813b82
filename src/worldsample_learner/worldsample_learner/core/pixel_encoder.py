"""The frozen pixel encoder (``AgentConfig.pixel_encoder="frozen"``): keypoints pre-trained from frames alone.

Why: on a 2-core CPU the end-to-end conv encoder (``"conv"``) costs ~1 s per env step at batch 256 /
UTD 2, because every critic step runs the conv net forward and backward over 2 x 256 x UTD frames
(docs/results.md, "Pixels"). A pixel encoder that is trained once and then held fixed lets the replay
cache its output per transition (`ReplayStore.set_featurizer`): the SAC update then runs on feature
vectors, like a state update.

What it computes, per camera (own weights each): a small conv net (``frozen_channels`` channels, stride
2, so the last map is ``image_size / 2`` wide), ``frozen_keypoints`` feature maps, a spatial softmax
over each (the expected image coordinates in [-1, 1], as in Levine et al. 2016 and HIL-SERL's
encoder) -> ``2 * frozen_keypoints`` numbers; the cameras' keypoints are concatenated and
standardised with a per-entry mean / std fixed after pre-training. Beside them, per camera,
``frozen_color_blobs`` colour blobs (`ColorBlobs`: where each foreground colour is and how much of it;
fitted, not trained, on the same frames), 3 numbers each: the keypoints gather on the arm and place push's
small target to ~30 mm, the blobs to ~10 mm (`worldsample bench encoder`).

How it is trained (`pretrain_keypoints`): as the deep spatial autoencoder of Finn et al. (2016) — a
decoder (pre-training only, thrown away afterwards) reconstructs each camera's frame at half
resolution from that camera's keypoints alone; the per-pixel loss is weighted by how much the pixel
varies over the training frames, so that the few pixels of a moving object count as much as the
large static background. Targets are the frames themselves: no simulator state, no reward, no action
(what a real arm has). Frames: the demos' and the run's own recorded ones (`Learner.pretrain_encoder`).

``version`` (a buffer saved with the weights) counts pre-trainings: 0 = never trained. Features cached
under another version are stale (`Learner.sync_features` re-encodes them).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .config import AgentConfig


class SpatialSoftmax(nn.Module):
    """(B, K, H, W) maps -> (B, 2K) expected (x, y) of each map's softmax, in [-1, 1]."""

    def __init__(self, h: int, w: int) -> None:
        super().__init__()
        ys, xs = torch.meshgrid(torch.linspace(-1.0, 1.0, h), torch.linspace(-1.0, 1.0, w), indexing="ij")
        self.register_buffer("grid", torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=-1))  # (HW, 2)
        self.log_temperature = nn.Parameter(torch.zeros(()))

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        b, k = maps.shape[:2]
        p = torch.softmax(maps.flatten(2) / self.log_temperature.exp(), dim=-1)  # (B, K, HW)
        return (p @ self.grid).reshape(b, 2 * k)


class ColorBlobs(nn.Module):
    """Colour-blob keypoints of one camera: (B, 3, H, W) frames in [-0.5, 0.5] -> (B, 3K).

    Fitted, not trained by gradient (`fit`): the camera's background is the per-pixel median of the
    training frames; a pixel is foreground as far as its colour is away from that background (a soft
    threshold); the foreground colours are clustered into K colour prototypes (k-means over the distinct
    colours, so that a 12-pixel target counts as much as the 500-pixel arm). Per prototype, the output
    is where its foreground pixels are (the weighted mean image coordinate, in [-1, 1]) and how many
    there are (log(1 + pixel mass)). A prototype with no pixels in a frame reads (0, 0, 0).

    Why: the spatial autoencoder's keypoints gather on the arm, the biggest moving thing, and place
    push's 3-4-pixel target disc to ~31 mm (`worldsample bench encoder`), where success is 30 mm.
    """

    FG_THRESHOLD = 0.08  # colour distance to the background (RGB in [-0.5, 0.5]) at which a pixel is half foreground
    FG_SOFTNESS = 0.02
    MIN_SIGMA = 0.04  # smallest colour spread of a prototype

    def __init__(self, h: int, w: int, k: int) -> None:
        super().__init__()
        ys, xs = torch.meshgrid(torch.linspace(-1.0, 1.0, h), torch.linspace(-1.0, 1.0, w), indexing="ij")
        self.register_buffer("grid", torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=-1))  # (HW, 2)
        self.register_buffer("background", torch.zeros(3, h, w))
        self.register_buffer("prototypes", torch.zeros(k, 3))
        self.register_buffer("inv_two_var", torch.ones(k))
        self.k = k

    def foreground(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, H, W) in [0, 1]."""
        d = (x - self.background).square().sum(1).sqrt()
        return torch.sigmoid((d - self.FG_THRESHOLD) / self.FG_SOFTNESS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        fg = self.foreground(x).flatten(1)  # (B, HW)
        col = x.flatten(2).transpose(1, 2)  # (B, HW, 3)
        d2 = (col.unsqueeze(2) - self.prototypes).square().sum(-1)  # (B, HW, K)
        w = fg.unsqueeze(-1) * torch.exp(-d2 * self.inv_two_var)  # (B, HW, K)
        mass = w.sum(1)  # (B, K)
        xy = (w.transpose(1, 2) @ self.grid) / (mass.unsqueeze(-1) + 1.0)  # (B, K, 2)
        return torch.cat([xy, torch.log1p(mass).unsqueeze(-1)], dim=-1).reshape(b, 3 * self.k)

    @torch.no_grad()
    def fit(self, x: torch.Tensor, seed: int = 0, iters: int = 30) -> None:
        """Background, colour prototypes and spreads from training frames (N, 3, H, W) in [-0.5, 0.5]."""
        self.background.copy_(x.median(0).values)
        fg = self.foreground(x) > 0.5  # (N, H, W)
        cols = x.permute(0, 2, 3, 1)[fg].numpy().astype(np.float64)  # (M, 3)
        rng = np.random.default_rng(seed)
        if len(cols) < self.k:  # (almost) nothing moves: prototypes that match nothing
            self.prototypes.fill_(10.0)
            return
        # distinct colours (1/64 bins), each weighted by the square root of its pixel count
        q, inv, cnt = np.unique(np.round(cols * 64), axis=0, return_inverse=True, return_counts=True)
        pts = np.zeros((len(q), 3))
        np.add.at(pts, inv.reshape(-1), cols)
        pts /= cnt[:, None]
        wt = np.sqrt(cnt)
        k = min(self.k, len(pts))
        centers = [pts[rng.choice(len(pts), p=wt / wt.sum())]]  # k-means++ seeding
        for _ in range(1, k):
            d2 = np.min(((pts[:, None] - np.asarray(centers)[None]) ** 2).sum(-1), axis=1)
            p = wt * d2
            centers.append(pts[rng.choice(len(pts), p=p / p.sum())] if p.sum() > 0 else pts[rng.integers(len(pts))])
        c = np.asarray(centers)
        for _ in range(iters):
            lab = ((pts[:, None] - c[None]) ** 2).sum(-1).argmin(1)
            for j in range(k):
                m = lab == j
                if m.any():
                    c[j] = np.average(pts[m], axis=0, weights=wt[m])
        lab = ((pts[:, None] - c[None]) ** 2).sum(-1).argmin(1)
        var = np.array([np.average(((pts[lab == j] - c[j]) ** 2).sum(-1), weights=wt[lab == j]) / 3
                        if (lab == j).any() else 0.0 for j in range(k)])
        var = np.maximum(var, self.MIN_SIGMA ** 2)
        proto = np.full((self.k, 3), 10.0)
        proto[:k] = c
        ivar = np.ones(self.k)
        ivar[:k] = 1.0 / (2.0 * var)
        self.prototypes.copy_(torch.as_tensor(proto, dtype=torch.float32))
        self.inv_two_var.copy_(torch.as_tensor(ivar, dtype=torch.float32))


def _trunk(c: int, k: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(3, c, 5, stride=2, padding=2), nn.ReLU(),
                         nn.Conv2d(c, c, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(c, k, 3, padding=1))


def frames_to_float(frames: torch.Tensor) -> torch.Tensor:
    """uint8 (B, H, W, 3) -> float (B, 3, H, W) in [-0.5, 0.5]."""
    return frames.permute(0, 3, 1, 2).float() / 255.0 - 0.5


class KeypointEncoder(nn.Module):
    """Frames of ``cfg.cameras`` -> standardised keypoints (B, ``out_dim``); see the module text."""

    def __init__(self, cfg: AgentConfig) -> None:
        super().__init__()
        self.cameras = tuple(cfg.cameras)
        k, c, s = cfg.frozen_keypoints, cfg.frozen_channels, cfg.image_size
        self.trunks = nn.ModuleDict({cam: _trunk(c, k) for cam in self.cameras})
        side = (s + 1) // 2
        self.softmax = nn.ModuleDict({cam: SpatialSoftmax(side, side) for cam in self.cameras})
        nb = cfg.frozen_color_blobs
        self.n_keypoints, self.n_blobs = k, nb
        self.blobs = nn.ModuleDict({cam: ColorBlobs(s, s, nb) for cam in self.cameras}) if nb else None
        self.out_dim = (2 * k + 3 * nb) * len(self.cameras)
        self.register_buffer("feat_mean", torch.zeros(self.out_dim))
        self.register_buffer("feat_std", torch.ones(self.out_dim))
        self.register_buffer("version", torch.zeros((), dtype=torch.int64))

    def raw(self, images: dict[str, torch.Tensor]) -> torch.Tensor:
        """Unstandardised keypoints (and colour blobs) of uint8 (B, H, W, 3) frames per camera."""
        out = []
        for c in self.cameras:
            x = frames_to_float(images[c])
            out.append(self.softmax[c](self.trunks[c](x)))
            if self.blobs is not None:
                out.append(self.blobs[c](x))
        return torch.cat(out, dim=-1)

    def forward(self, images: dict[str, torch.Tensor]) -> torch.Tensor:
        return (self.raw(images) - self.feat_mean) / self.feat_std

    def parts(self) -> dict[str, list[int]]:
        """Which feature entries are learned keypoints and which colour blobs (all cameras)."""
        out: dict[str, list[int]] = {"keypoints": [], "color blobs": []}
        i = 0
        for _ in self.cameras:
            for name, n in (("keypoints", 2 * self.n_keypoints), ("color blobs", 3 * self.n_blobs)):
                out[name] += list(range(i, i + n))
                i += n
        return out

    @torch.no_grad()
    def features(self, images: dict[str, np.ndarray], device: torch.device | str = "cpu",
                 chunk: int = 512) -> np.ndarray:
        """float32 (N, out_dim) of numpy uint8 frames (N, H, W, 3) per camera, in chunks (the replay's featurizer)."""
        n = len(images[self.cameras[0]])
        out = np.empty((n, self.out_dim), np.float32)
        for a in range(0, n, chunk):
            t = {c: torch.as_tensor(np.ascontiguousarray(images[c][a:a + chunk]), device=device) for c in self.cameras}
            out[a:a + chunk] = self(t).cpu().numpy()
        return out


class _Decoder(nn.Module):
    """Keypoints of one camera -> that camera's frame at half resolution (pre-training only)."""

    def __init__(self, k: int, side: int, hidden: int = 256) -> None:
        super().__init__()
        self.side = side
        self.net = nn.Sequential(nn.Linear(2 * k, hidden), nn.ReLU(), nn.Linear(hidden, 3 * side * side))

    def forward(self, kp: torch.Tensor) -> torch.Tensor:
        return self.net(kp).reshape(-1, 3, self.side, self.side)


def pretrain_keypoints(enc: KeypointEncoder, frames: dict[str, np.ndarray], cfg: AgentConfig,
                       device: torch.device | str = "cpu", seed: int = 0, log_every: int = 0) -> dict[str, Any]:
    """Train ``enc`` (and a throw-away decoder) to reconstruct ``frames`` (uint8 (N, H, W, 3) per camera,
    the same N) from keypoints; then fix its standardisation from the frames' keypoints and bump its
    ``version``. Returns the loss curve and the time spent. Leaves ``enc`` without gradients (frozen)."""
    missing = [c for c in enc.cameras if c not in frames]
    if missing:
        raise ValueError(f"pretrain_keypoints: frames of cameras {missing} missing (have {sorted(frames)})")
    n = len(frames[enc.cameras[0]])
    if n < 2 or any(len(frames[c]) != n for c in enc.cameras):
        raise ValueError(f"pretrain_keypoints: need >= 2 frames, the same number per camera; got "
                         f"{ {c: len(frames[c]) for c in enc.cameras} }")
    t0 = time.perf_counter()
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    enc.requires_grad_(True).train()
    side = (cfg.image_size + 1) // 2
    decoders = nn.ModuleDict({c: _Decoder(cfg.frozen_keypoints, side) for c in enc.cameras}).to(device)
    data = {c: torch.as_tensor(np.ascontiguousarray(frames[c])) for c in enc.cameras}  # uint8 on the host
    # per-pixel weight: the pixel's std over the frames (+ its mean, so that static pixels still count a little)
    weights = {}
    for c in enc.cameras:
        small = F.avg_pool2d(frames_to_float(data[c][: min(n, 2000)]), 2, ceil_mode=True)
        w = small.std(0, keepdim=True) + 0.02
        weights[c] = (w / w.mean()).to(device)
    opt = torch.optim.Adam([*enc.parameters(), *decoders.parameters()], lr=cfg.frozen_pretrain_lr)
    losses: list[float] = []
    bs = min(cfg.frozen_pretrain_batch, n)
    for step in range(cfg.frozen_pretrain_steps):
        idx = torch.randint(0, n, (bs,), generator=gen)
        loss = torch.zeros((), device=device)
        for c in enc.cameras:
            x = frames_to_float(data[c][idx].to(device))
            kp = enc.softmax[c](enc.trunks[c](x))
            target = F.avg_pool2d(x, 2, ceil_mode=True)
            loss = loss + (weights[c] * (decoders[c](kp) - target) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        if log_every and (step + 1) % log_every == 0:
            print(f"  [pixel encoder] pre-training step {step + 1}/{cfg.frozen_pretrain_steps} "
                  f"loss {np.mean(losses[-log_every:]):.5f}", flush=True)
    enc.requires_grad_(False).eval()
    if enc.blobs is not None:
        for c in enc.cameras:
            enc.blobs[c].fit(frames_to_float(data[c][: cfg.frozen_pretrain_frames]), seed=seed)
    with torch.no_grad():
        enc.feat_mean.zero_()
        enc.feat_std.fill_(1.0)
        raw = torch.as_tensor(enc.features({c: frames[c] for c in enc.cameras}, device))
        enc.feat_mean.copy_(raw.mean(0))
        enc.feat_std.copy_(raw.std(0).clamp_min(1e-2))
        enc.version += 1
    return {"losses": losses, "frames": n, "seconds": time.perf_counter() - t0, "version": int(enc.version)}
