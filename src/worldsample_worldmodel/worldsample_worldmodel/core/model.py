"""The action-conditioned world model: spatial latent grids, flow-warp decoding, ensemble dynamics.

Per camera ``c`` (all convolutions; ``g = image_size / 4``, ``C = latent_channels``):

    encoder      E_c: frame (3, S, S) -> latent grid z (C, g, g)                 two stride-2 convs + one 3x3
    dynamics     z_{t+1}^m = z_t + D_m(trunk_c([z_{t-H+1..t}], FiLM(p_t, a_t)))  members m: 1x1 heads on a shared trunk
    decoder      frame_{t+k} = w0 * anchor + w1 * warp(anchor, flow) + w2 * rgb    from [z_{t+k}, z_anchor],
                 FiLM-conditioned on the anchor's proprio and the (predicted) proprio displacement since it

The decoder does not paint frames from scratch: it composes three layers with per-pixel softmax
weights predicted at half resolution (bilinearly upsampled): the *anchor* frame itself (the last
real frame at the start of a rollout, or the last predicted frame every ``rollout_steps`` steps),
the anchor warped by a homography of the whole view (camera ego-motion, from the proprio
displacement) plus a predicted local flow field, and a painted RGB layer (two transposed convs to
full size) for what is revealed or changes colour. A static background is therefore copied pixel
for pixel (no resampling blur), and a fresh model (copy layer dominant) already equals the
copy-last-frame baseline; training only has to learn what moves. Proprioception is
predicted by an MLP ensemble from (proprio, action, pooled trunk features of every camera) as the
change of the normalised proprio; with ``cfg.proprio_step_scaled`` (off by default) that change is in
units of its per-step spread ``proprio_delta_std`` (measured on the training episodes by
`set_delta_stats`, MBPO's parameterisation) and so is its loss (off, the spread stays 1: the loss is on
the normalised proprio itself; the measured trade-off is at the config field).
Reward, success and termination by a small head.

Uncertainty of a predicted step (``raw_uncertainty``): an *error head* predicts the log pixel MSE
of the frames it just decoded (trained on the detached real errors), fed with pooled features,
the log ensemble disagreement of the latent step, the steps since the anchor, how far the decoded
frame moved from the anchor (log MSE) and how much of it is not copied; reported
uncertainty is ``exp(predicted log MSE) / uncertainty_ref`` where ``uncertainty_ref`` is the
median over one-step predictions from real (held-out where available) transitions, computed when
the version is saved: 1.0 = "as unsure as on typical real data", comparable across versions.
``disagreement`` (variance across ensemble members of the latent step) is returned too.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .config import WorldModelConfig, resolve_device

MODEL_FORMAT = "worldsample-wm-3"
DELTA_STD_FLOOR = 1e-3  # normalised units: a dimension that never changes keeps a tiny, finite step scale
# raw units (m, rad): the least spread a proprio / state dimension is standardised by. A dimension that never varied in
# the data the stats came from (a pushed block's height in the demos: 1.1 mm with the old +1e-3 alone) otherwise turns
# a later value off that level into hundreds of standard deviations: a block 0.5 m lower made every training batch's
# loss non-finite, 0.1 m made the error head's loss ~1000x its usual size (docs/results.md, issue 22, fifth sitting).
# The learner's observation standardisation uses the same floor (`SACAgent.fit_normalizer`, min_std).
PROPRIO_STD_FLOOR = 1e-2


class EnsembleLinear(nn.Module):
    """N independent linear layers applied in one batched matmul: (N, B, I) -> (N, B, O)."""

    def __init__(self, n: int, fin: int, fout: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n, fin, fout))
        self.bias = nn.Parameter(torch.zeros(n, 1, fout))
        bound = 1.0 / math.sqrt(fin)
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias, x, self.weight)


class CameraNet(nn.Module):
    """Encoder, latent-grid dynamics ensemble and flow-warp decoder of one camera."""

    def __init__(self, cfg: WorldModelConfig, cond_dim: int) -> None:
        super().__init__()
        c, c0, n, h = cfg.latent_channels, cfg.base_channels, cfg.ensemble_size, cfg.history
        self.c, self.n = c, n
        self.enc = nn.Sequential(nn.Conv2d(3, c0, 4, 2, 1), nn.SiLU(), nn.Conv2d(c0, c, 4, 2, 1), nn.SiLU(),
                                 nn.Conv2d(c, c, 3, 1, 1))
        self.dyn_in = nn.Conv2d(c * h, c, 3, 1, 1)
        self.dyn_film = nn.Linear(cond_dim, 2 * c)
        self.dyn_mid = nn.Conv2d(c, c, 3, 1, 1)
        self.dyn_heads = nn.Conv2d(c, c * n, 1)
        self.dec_in = nn.Conv2d(2 * c, c, 3, 1, 1)
        self.dec_film = nn.Linear(cond_dim, 2 * c)
        # ego-motion: a homography of the whole view from the proprio displacement (a wrist camera over a
        # table sees the table plane move by a homography); zero-initialised = identity
        self.ego = nn.Linear(cond_dim, 8)
        nn.init.zeros_(self.ego.weight)
        nn.init.zeros_(self.ego.bias)
        self.dec_mid = nn.Conv2d(c, c, 3, 1, 1)
        self.dec_up = nn.ConvTranspose2d(c, c0, 4, 2, 1)  # grid -> half resolution
        self.dec_geo = nn.Conv2d(c0, 5, 3, 1, 1)  # flow x, flow y, logits of the layers (copy, warped, painted)
        self.dec_rgb = nn.ConvTranspose2d(c0, 3, 4, 2, 1)
        for m in (self.dyn_heads, self.dec_geo):  # a fresh model: no latent change, no flow, (almost) no mask
            nn.init.normal_(m.weight, std=1e-3)
            nn.init.zeros_(m.bias)
        with torch.no_grad():
            self.dec_geo.bias[2] = 4.0  # the copy layer dominates at first

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.enc(x)

    def trunk(self, hist: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """hist (B, H, C, g, g), cond (B, cond_dim) -> features (B, C, g, g)."""
        x = F.silu(self.dyn_in(hist.flatten(1, 2)))
        s, b = self.dyn_film(cond).chunk(2, dim=-1)
        x = x * (1 + s[..., None, None]) + b[..., None, None]
        return x + F.silu(self.dyn_mid(x))

    def deltas(self, feat: torch.Tensor) -> torch.Tensor:
        """features (B, C, g, g) -> latent steps of every member (N, B, C, g, g)."""
        b, _, g, _ = feat.shape
        return self.dyn_heads(feat).view(b, self.n, self.c, g, g).transpose(0, 1)

    def mean_and_spread(self, feat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The member-mean latent step (B, C, g, g) and the member variance averaged over channels and grid
        (B,), without computing every member: the heads are one 1x1 conv, linear per grid cell, so with
        W_m = W̄ + D_m, b_m = b̄ + e_m the spread is the quadratic form sum_m |D_m f + e_m|^2 of the
        features. Same values as `deltas` + variance (to float rounding), a fraction of the work."""
        n, c = self.n, self.c
        w = self.dyn_heads.weight.view(n, c, -1)  # (N, C_out, C_in): output channel m * C + j is member m's j
        b = self.dyn_heads.bias.view(n, c)
        wm, bm = w.mean(0), b.mean(0)
        dmean = F.conv2d(feat, wm[..., None, None], bm)
        d, e = w - wm, b - bm
        q = torch.einsum("nci,ncj->ij", d, d)  # (C_in, C_in)
        lin = 2.0 * torch.einsum("nc,nci->i", e, d)
        quad = (F.conv2d(feat, q[..., None, None]) * feat).sum(1) + F.conv2d(feat, lin[None, :, None, None])[:, 0]
        spread = (quad + (e * e).sum()).mean(dim=(-1, -2)) / (n * c)
        return dmean, spread.clamp_min(0.0)

    def ego_grid(self, dcond: torch.Tensor, size: int) -> torch.Tensor:
        """Sampling grid (B, S, S, 2) of the ego-motion homography from the decoder conditioning."""
        return _homography_grid(0.1 * self.ego(dcond), size)

    def ego_warp(self, anchor: torch.Tensor, dcond: torch.Tensor) -> torch.Tensor:
        """The anchor (B, 3, S, S) warped by the ego-motion homography alone (its training signal, see `train`)."""
        return F.grid_sample(anchor, _finite(self.ego_grid(dcond, anchor.shape[-1])), mode="bilinear",
                             padding_mode="border", align_corners=False)

    def decode(self, z: torch.Tensor, anchor_z: torch.Tensor, anchor: torch.Tensor,
               dcond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Latent z (B, C, g, g) relative to the anchor (latent, frame (B, 3, S, S)), conditioned on the
        proprio displacement since the anchor (``dcond``, see `WorldModel.decoder_cond`) -> (frame, pooled features)."""
        x = F.silu(self.dec_in(torch.cat([z, anchor_z], dim=1)))
        s, b = self.dec_film(dcond).chunk(2, dim=-1)
        x = x * (1 + s[..., None, None]) + b[..., None, None]
        x = x + F.silu(self.dec_mid(x))
        size = anchor.shape[-1]
        # channels-last from here: the transposed convolutions take oneDNN's fast path (generation +8 %, training
        # no slower, measured on CPU); the same values
        up = F.silu(self.dec_up(x.contiguous(memory_format=torch.channels_last)))
        geo = F.interpolate(self.dec_geo(up), size=(size, size), mode="bilinear", align_corners=False)
        w = torch.softmax(geo[:, 2:], dim=1)  # (B, 3, S, S): copy, warped, painted
        warped = F.grid_sample(anchor, _finite(self.ego_grid(dcond, size) + geo[:, :2].permute(0, 2, 3, 1)),
                               mode="bilinear", padding_mode="border", align_corners=False)
        frame = w[:, :1] * anchor + w[:, 1:2] * warped + w[:, 2:] * torch.tanh(self.dec_rgb(up))
        # error-head features: pooled grid features, how far the frame moved from the anchor (log MSE), how much
        # of it is not copied
        change = torch.log(((frame - anchor) ** 2).mean(dim=(1, 2, 3)) + 1e-6)[:, None] / 10
        moved = 1.0 - w[:, 0].mean(dim=(-1, -2))[:, None]
        return frame, torch.cat([x.mean(dim=(-1, -2)), change, moved], dim=-1)


_GRIDS: dict[tuple[int, str, torch.dtype], torch.Tensor] = {}


def _finite(grid: torch.Tensor) -> torch.Tensor:
    """A sampling grid with NaN / inf replaced (0 / +-2, outside [-1, 1]: the border). PyTorch's CPU grid_sample
    *backward* reads out of bounds at a NaN grid point and kills the process (segfault in libtorch_cpu; the forward
    returns finite values, so the loss does not show it); a diverged model must fail as a training error instead
    (`train.TrainingDiverged`)."""
    return torch.nan_to_num(grid, nan=0.0, posinf=2.0, neginf=-2.0)


def _homography_grid(h: torch.Tensor, size: int) -> torch.Tensor:
    """(B, 8) offsets from the identity homography -> (B, S, S, 2) sampling grid in [-1, 1] coordinates."""
    base = _identity_grid(size, h.device, h.dtype)
    x, y = base[..., 0], base[..., 1]  # (1, S, S)
    hh = [h[:, i, None, None] for i in range(8)]
    gx = (1 + hh[0]) * x + hh[1] * y + hh[2]
    gy = hh[3] * x + (1 + hh[4]) * y + hh[5]
    gw = (hh[6] * x + hh[7] * y + 1).clamp_min(0.1)
    return torch.stack([gx / gw, gy / gw], dim=-1)


def _identity_grid(size: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """(1, S, S, 2) sampling grid of the identity warp (x, y in [-1, 1], pixel centres)."""
    key = (size, str(device), dtype)
    if key not in _GRIDS:
        r = (torch.arange(size, device=device, dtype=dtype) * 2 + 1) / size - 1
        yy, xx = torch.meshgrid(r, r, indexing="ij")
        _GRIDS[key] = torch.stack([xx, yy], dim=-1)[None]
    return _GRIDS[key]


class WorldModel(nn.Module):
    def __init__(self, cfg: WorldModelConfig, proprio_dim: int, action_dim: int = 4) -> None:
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.cameras = tuple(cfg.cameras)
        self.proprio_dim = int(proprio_dim)
        self.action_dim = int(action_dim)
        hd, n, c = cfg.hidden_dim, cfg.ensemble_size, cfg.latent_channels
        self.cond = nn.Sequential(nn.Linear(self.proprio_dim + self.action_dim, hd), nn.SiLU(), nn.Linear(hd, hd))
        self.dcond = nn.Sequential(nn.Linear(2 * self.proprio_dim, hd), nn.SiLU(), nn.Linear(hd, hd))
        self.nets = nn.ModuleDict({cam: CameraNet(cfg, hd) for cam in self.cameras})
        feat = len(self.cameras) * c
        din = self.proprio_dim + self.action_dim + feat
        self.prop = nn.ModuleList([EnsembleLinear(n, din, hd), EnsembleLinear(n, hd, self.proprio_dim)])
        self.head = nn.Sequential(nn.Linear(din + self.proprio_dim, hd), nn.SiLU(), nn.Linear(hd, 3))
        # error head (per camera): pooled trunk + decoder features, log disagreement, steps since anchor
        self.err = nn.Sequential(nn.Linear(2 * c + 2 + self.proprio_dim + self.action_dim + 2, hd), nn.SiLU(),
                                 nn.Linear(hd, 1))
        self.register_buffer("proprio_mean", torch.zeros(self.proprio_dim))
        self.register_buffer("proprio_std", torch.ones(self.proprio_dim))
        # per-step spread of the normalised proprio (1 = the older unscaled parameterisation)
        self.register_buffer("proprio_delta_std", torch.ones(self.proprio_dim))
        self.register_buffer("uncertainty_ref", torch.ones(()))
        self.version = ""

    # ------------------------------------------------------------------ normalisation
    def set_proprio_stats(self, proprio: np.ndarray) -> None:
        self.proprio_mean.copy_(torch.as_tensor(proprio.mean(0), dtype=torch.float32))
        self.proprio_std.copy_(torch.as_tensor(np.maximum(proprio.std(0) + 1e-3, PROPRIO_STD_FLOOR),
                                               dtype=torch.float32))

    def set_delta_stats(self, proprio_per_episode: list[np.ndarray]) -> None:
        """``proprio_delta_std`` from the per-step changes of the normalised proprio within each episode
        (call after `set_proprio_stats`); floored at ``DELTA_STD_FLOOR`` (dimensions that never change)."""
        d = [np.diff(np.asarray(p, np.float64), axis=0) for p in proprio_per_episode if len(p) > 1]
        if not d or not self.cfg.proprio_step_scaled:  # unscaled: delta_std stays 1
            return
        std = np.concatenate(d).std(0) / self.proprio_std.double().cpu().numpy()
        self.proprio_delta_std.copy_(torch.as_tensor(np.maximum(std, DELTA_STD_FLOOR), dtype=torch.float32))

    def norm_proprio(self, p: torch.Tensor) -> torch.Tensor:
        return (p - self.proprio_mean) / self.proprio_std

    def denorm_proprio(self, p: torch.Tensor) -> torch.Tensor:
        return p * self.proprio_std + self.proprio_mean

    @property
    def device(self) -> torch.device:
        return self.proprio_mean.device

    # ------------------------------------------------------------------ pieces
    def frames_to_tensor(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 (..., S, S, 3) -> float (..., 3, S, S) in [-1, 1] on the model's device."""
        x = torch.as_tensor(frames, device=self.device)
        x = x.movedim(-1, -3).float()
        return x / 127.5 - 1.0

    @staticmethod
    def tensor_to_frames(x: torch.Tensor) -> np.ndarray:
        """float (..., 3, S, S) in [-1, 1] -> uint8 (..., S, S, 3)."""
        y = ((x.detach().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)
        return y.movedim(-3, -1).cpu().numpy()

    def encode(self, cam: str, x: torch.Tensor) -> torch.Tensor:
        """(..., 3, S, S) -> (..., C, g, g)."""
        lead = x.shape[:-3]
        z = self.nets[cam].encode(x.reshape(-1, *x.shape[-3:]))
        return z.view(*lead, *z.shape[1:])

    def transition(self, z_hist: dict[str, torch.Tensor], p: torch.Tensor, a: torch.Tensor,
                   members: bool = True) -> dict[str, Any]:
        """One latent step for every member.

        z_hist[cam] (B, H, C, g, g) oldest first; p (B, P) normalised; a (B, A).
        Returns ``z`` {cam: (N, B, C, g, g)} and their mean ``z_mean`` {cam: (B, C, g, g)}, ``p`` (N, B, P)
        next normalised proprio, ``feat`` (B, cams*C),
        ``outcome`` (B, 3) logits from the member-mean next proprio, ``disagreement`` (B,).
        ``members=False`` (generation with the member mean): ``z`` is None and the mean and the spread
        come from `CameraNet.mean_and_spread` (the same values, without materialising the members).
        """
        a = a.clamp(-1, 1)
        cond = self.cond(torch.cat([p, a], dim=-1))
        zs, zmean, feats, dis = {}, {}, [], []
        for cam in self.cameras:
            net = self.nets[cam]
            f = net.trunk(z_hist[cam], cond)
            last = z_hist[cam][:, -1]
            feats.append(f.mean(dim=(-1, -2)))
            if not members:
                dmean, spread = net.mean_and_spread(f)
                zmean[cam] = last + dmean
                dis.append(spread)  # exactly 0 with one member (every weight equals the mean)
                continue
            d = net.deltas(f)
            zs[cam] = last.unsqueeze(0) + d
            dmean = d.mean(dim=0)
            zmean[cam] = last + dmean
            # member variance, averaged over the grid; written out because torch's var over the (small,
            # outer) member axis was 45 % of generation time on CPU (5x slower than this)
            dev = d - dmean.unsqueeze(0)
            dis.append((dev * dev).mean(dim=(0, 2, 3, 4)) if d.shape[0] > 1
                       else torch.zeros(d.shape[1], device=d.device))
        feat = torch.cat(feats, dim=-1)
        x = torch.cat([p, a, feat], dim=-1)
        xn = x.unsqueeze(0).expand(self.cfg.ensemble_size, -1, -1)
        p1 = p.unsqueeze(0) + self.proprio_delta_std * self.prop[1](F.silu(self.prop[0](xn)))
        out = self.head(torch.cat([x, p1.mean(0)], dim=-1))
        return {"z": zs if members else None, "z_mean": zmean, "p": p1, "feat": feats, "outcome": out,
                "disagreement": torch.stack(dis, -1).mean(-1), "cam_disagreement": dis}

    def decoder_cond(self, anchor_p: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        """Decoder conditioning from the anchor's and the current normalised proprio (how far the arm moved)."""
        return self.dcond(torch.cat([anchor_p, p - anchor_p], dim=-1))

    def error_logit(self, feat: torch.Tensor, dec_feat: torch.Tensor, p: torch.Tensor, a: torch.Tensor,
                    dis: torch.Tensor, k: torch.Tensor | float) -> torch.Tensor:
        """Predicted log pixel MSE (B,) of one camera's decoded frame."""
        kk = torch.as_tensor(k, dtype=feat.dtype, device=feat.device).expand(feat.shape[0]) / self.cfg.rollout_steps
        x = torch.cat([feat.detach(), dec_feat.detach(), p, a.clamp(-1, 1), torch.log(dis.detach() + 1e-8)[:, None] / 10,
                       kk[:, None]], dim=-1)
        return self.err(x)[:, 0]

    # ------------------------------------------------------------------ inference API
    @torch.no_grad()
    def encode_history(self, frames: dict[str, np.ndarray], proprio: np.ndarray | torch.Tensor) -> dict[str, Any]:
        """frames[cam] uint8 (B, H, S, S, 3), raw proprio (B, P) of the newest frame -> rollout state
        (latent history, anchor frame/latent/proprio, last frame)."""
        x = {c: self.frames_to_tensor(frames[c]) for c in self.cameras}
        z = {c: self.encode(c, x[c]) for c in self.cameras}
        p = self.norm_proprio(torch.as_tensor(proprio, dtype=torch.float32, device=self.device))
        return {"z": z, "anchor": {c: x[c][:, -1] for c in self.cameras},
                "anchor_z": {c: z[c][:, -1] for c in self.cameras}, "anchor_p": p,
                "frame": {c: x[c][:, -1] for c in self.cameras}, "k": 0}

    @torch.no_grad()
    def step(self, hist: dict[str, Any], proprio: torch.Tensor, actions: np.ndarray | torch.Tensor,
             generator: torch.Generator | None = None,
             next_proprio: np.ndarray | torch.Tensor | None = None) -> dict[str, Any]:
        """One imagined step for a batch.

        ``hist`` from `encode_history` or a previous step; proprio (B, P) *raw* (not normalised); actions (B, A).
        ``next_proprio`` (B, P) raw: the next proprio from another model (`generate_branches`' ``state_model``);
        the frames are then decoded for it, and it is returned as ``proprio``, instead of the own head's.
        Returns the new state ``hist`` (its frames via `render`), ``proprio`` (raw), ``reward``,
        ``success_prob``, ``terminated_prob``, ``raw_uncertainty`` (predicted pixel MSE),
        ``uncertainty`` (normalised by ``uncertainty_ref``) and ``disagreement``, all tensors.
        """
        a = torch.as_tensor(actions, dtype=torch.float32, device=self.device).clamp(-1, 1)
        pn = self.norm_proprio(proprio)
        tr = self.transition(hist["z"], pn, a, members=self.cfg.rollout_mode == "random_member")
        b = pn.shape[0]
        if self.cfg.rollout_mode == "random_member":
            idx = torch.randint(0, self.cfg.ensemble_size, (b,), generator=generator, device="cpu").to(self.device)
            ar = torch.arange(b, device=self.device)
            z1 = {c: tr["z"][c][idx, ar] for c in self.cameras}
            p1 = tr["p"][idx, ar]
        else:
            z1 = tr["z_mean"]
            p1 = tr["p"].mean(0)
        if next_proprio is not None:
            p1 = self.norm_proprio(torch.as_tensor(next_proprio, dtype=torch.float32, device=self.device))
        k = hist["k"] + 1
        frames, errs = {}, []
        dcond = self.decoder_cond(hist["anchor_p"], p1)
        for i, c in enumerate(self.cameras):
            frames[c], dec_feat = self.nets[c].decode(z1[c], hist["anchor_z"][c], hist["anchor"][c], dcond)
            errs.append(self.error_logit(tr["feat"][i], dec_feat, pn, a, tr["cam_disagreement"][i], k))
        raw = torch.exp(torch.stack(errs, -1)).mean(-1)
        new = {"z": {c: torch.cat([hist["z"][c][:, 1:], z1[c][:, None]], dim=1) for c in self.cameras},
               "anchor": hist["anchor"], "anchor_z": hist["anchor_z"], "anchor_p": hist["anchor_p"],
               "frame": frames, "k": k}
        if k >= self.cfg.rollout_steps:  # re-anchor on the newest prediction (training covers k <= rollout_steps)
            new.update(anchor=frames, anchor_z=z1, anchor_p=p1, k=0)
        out = tr["outcome"]
        return {
            "hist": new,
            "proprio": self.denorm_proprio(p1),
            "reward": out[:, 0],
            "success_prob": torch.sigmoid(out[:, 1]),
            "terminated_prob": torch.sigmoid(out[:, 2]),
            "raw_uncertainty": raw,
            "uncertainty": raw / self.uncertainty_ref.clamp_min(1e-12),
            "disagreement": tr["disagreement"],
        }

    @staticmethod
    def select(hist: dict[str, Any], rows: torch.Tensor) -> dict[str, Any]:
        """The rollout state of the batch rows ``rows`` (an index or boolean mask) only."""
        return {key: ({c: v[rows] for c, v in val.items()} if isinstance(val, dict)
                      else val[rows] if isinstance(val, torch.Tensor) else val) for key, val in hist.items()}

    @torch.no_grad()
    def render(self, hist: dict[str, Any]) -> dict[str, np.ndarray]:
        """The newest frame of every camera: uint8 (B, S, S, 3) per camera."""
        return {c: self.tensor_to_frames(hist["frame"][c]) for c in self.cameras}

    # ------------------------------------------------------------------ persistence
    def to_checkpoint(self) -> dict[str, Any]:
        return {
            "format": MODEL_FORMAT,
            "config": self.cfg.to_dict(),
            "proprio_dim": self.proprio_dim,
            "action_dim": self.action_dim,
            "version": self.version,
            "state_dict": {k: v.detach().cpu() for k, v in self.state_dict().items()},
        }

    @classmethod
    def from_checkpoint(cls, ckpt: dict[str, Any], device: str | None = None, where: str = "checkpoint") -> WorldModel:
        if not isinstance(ckpt, dict) or ckpt.get("format") != MODEL_FORMAT:
            fmt = ckpt.get("format") if isinstance(ckpt, dict) else None
            hint = " (saved by an older WorldSample; retrain it with `worldsample wm train`)" if fmt else ""
            raise ValueError(f"{where}: not a WorldSample world-model checkpoint (expected format {MODEL_FORMAT!r}, "
                             f"found {fmt!r}){hint}")
        cfg = WorldModelConfig.from_dict(ckpt["config"])
        if device is not None:
            cfg.device = device
        model = cls(cfg, ckpt["proprio_dim"], ckpt["action_dim"])
        state = dict(ckpt["state_dict"])
        # saved before the standardised proprio step: the old parameterisation is delta_std = 1
        state.setdefault("proprio_delta_std", torch.ones(model.proprio_dim))
        model.load_state_dict(state)
        model.version = ckpt.get("version", "")
        model.to(resolve_device(cfg.device))
        model.eval()
        return model

    def save(self, path: Path | str) -> None:
        torch.save(self.to_checkpoint(), path)

    @classmethod
    def load(cls, path: Path | str, device: str | None = None) -> WorldModel:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"world model file {path} does not exist")
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as exc:  # noqa: BLE001 - any unpickling failure means a damaged file
            raise ValueError(f"{path}: cannot read world model ({type(exc).__name__}: {exc})") from exc
        return cls.from_checkpoint(ckpt, device, where=str(path))


def build_model(cfg: WorldModelConfig, proprio_dim: int, action_dim: int = 4) -> WorldModel:
    torch.manual_seed(cfg.seed)
    model = WorldModel(cfg, proprio_dim, action_dim)
    return model.to(resolve_device(cfg.device))
