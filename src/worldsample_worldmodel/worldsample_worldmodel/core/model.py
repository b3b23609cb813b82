"""The action-conditioned world model: conv autoencoders per camera + an MLP dynamics ensemble.

State of the model at step t ("latent state"): for every camera the latents of the last
``history`` frames, plus normalised proprioception. One step:

    z_{t+1}^m, p_{t+1}^m = (z_t, p_t) + f_m([z_{t-H+1..t}, p_t, a_t])      for ensemble members m
    r_t, success_t, terminated_t = g([z_t, p_t, a_t, z_{t+1}, p_{t+1}])

Uncertainty of a transition (``raw_uncertainty``): the variance across ensemble members of the
predicted next camera latents, averaged over latent dimensions and cameras. Reported
uncertainty is ``raw / uncertainty_ref`` where ``uncertainty_ref`` is the median raw
uncertainty of one-step predictions from *real held-out* (or, lacking those, training)
transitions, computed when the version is saved: 1.0 means "as unsure as on typical real
data", so PPL can compare values across model versions.
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

MODEL_FORMAT = "worldsample-wm-1"


def _channels(cfg: WorldModelConfig) -> list[int]:
    n = int(math.log2(cfg.image_size // 4))
    return [min(cfg.base_channels * 2**i, cfg.max_channels) for i in range(n)]


class Encoder(nn.Module):
    def __init__(self, cfg: WorldModelConfig) -> None:
        super().__init__()
        chans = _channels(cfg)
        layers: list[nn.Module] = []
        cin = 3
        for c in chans:
            layers += [nn.Conv2d(cin, c, 4, stride=2, padding=1), nn.GroupNorm(min(8, c), c), nn.SiLU()]
            cin = c
        self.conv = nn.Sequential(*layers)
        self.fc = nn.Linear(cin * 16, cfg.latent_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, 3, S, S) float in [-1, 1]
        return self.fc(self.conv(x).flatten(1))


class Decoder(nn.Module):
    def __init__(self, cfg: WorldModelConfig) -> None:
        super().__init__()
        chans = _channels(cfg)[::-1]
        self.c0 = chans[0]
        self.fc = nn.Linear(cfg.latent_dim, chans[0] * 16)
        layers: list[nn.Module] = []
        for i, c in enumerate(chans):
            if i + 1 < len(chans):
                cout = chans[i + 1]
                layers += [nn.SiLU(), nn.ConvTranspose2d(c, cout, 4, stride=2, padding=1),
                           nn.GroupNorm(min(8, cout), cout)]
            else:  # last stage straight to RGB: no wide layer at full resolution (the CPU cost)
                layers += [nn.SiLU(), nn.ConvTranspose2d(c, 3, 4, stride=2, padding=1)]
        self.deconv = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:  # -> (N, 3, S, S) in about [-1, 1]
        return self.deconv(self.fc(z).view(len(z), self.c0, 4, 4))


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


class WorldModel(nn.Module):
    def __init__(self, cfg: WorldModelConfig, proprio_dim: int, action_dim: int = 4) -> None:
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.cameras = tuple(cfg.cameras)
        self.proprio_dim = int(proprio_dim)
        self.action_dim = int(action_dim)
        self.encoders = nn.ModuleDict({c: Encoder(cfg) for c in self.cameras})
        self.decoders = nn.ModuleDict({c: Decoder(cfg) for c in self.cameras})
        nc, d, h, n = len(self.cameras), cfg.latent_dim, cfg.hidden_dim, cfg.ensemble_size
        self.state_dim = nc * d + self.proprio_dim
        din = nc * d * cfg.history + self.proprio_dim + self.action_dim
        self.dyn = nn.ModuleList([EnsembleLinear(n, din, h), EnsembleLinear(n, h, h), EnsembleLinear(n, h, self.state_dim)])
        self.head = nn.Sequential(nn.Linear(2 * self.state_dim + self.action_dim, h), nn.SiLU(),
                                  nn.Linear(h, h // 2), nn.SiLU(), nn.Linear(h // 2, 3))
        self.register_buffer("proprio_mean", torch.zeros(self.proprio_dim))
        self.register_buffer("proprio_std", torch.ones(self.proprio_dim))
        self.register_buffer("uncertainty_ref", torch.ones(()))
        self.version = ""

    # ------------------------------------------------------------------ normalisation
    def set_proprio_stats(self, proprio: np.ndarray) -> None:
        self.proprio_mean.copy_(torch.as_tensor(proprio.mean(0), dtype=torch.float32))
        self.proprio_std.copy_(torch.as_tensor(proprio.std(0) + 1e-3, dtype=torch.float32))

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
        """(..., 3, S, S) -> (..., D)."""
        lead = x.shape[:-3]
        return self.encoders[cam](x.reshape(-1, *x.shape[-3:])).view(*lead, -1)

    def decode(self, cam: str, z: torch.Tensor) -> torch.Tensor:
        """(..., D) -> (..., 3, S, S)."""
        lead = z.shape[:-1]
        y = self.decoders[cam](z.reshape(-1, z.shape[-1]))
        return y.view(*lead, *y.shape[1:])

    def dynamics(self, hist: dict[str, torch.Tensor], p: torch.Tensor, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """All members' next state.

        hist[cam]: (B, H, D) latents (oldest first); p: (B, P) normalised; a: (B, A).
        Returns (next latents (N, B, C, D), next normalised proprio (N, B, P)).
        """
        b = p.shape[0]
        zin = torch.cat([hist[c].reshape(b, -1) for c in self.cameras] + [p, a.clamp(-1, 1)], dim=-1)
        x = zin.unsqueeze(0).expand(self.cfg.ensemble_size, -1, -1)
        x = F.silu(self.dyn[0](x))
        x = F.silu(self.dyn[1](x))
        delta = self.dyn[2](x)  # (N, B, state_dim)
        cur = torch.cat([hist[c][:, -1] for c in self.cameras] + [p], dim=-1)
        nxt = cur.unsqueeze(0) + delta
        nc, d = len(self.cameras), self.cfg.latent_dim
        return nxt[..., : nc * d].reshape(self.cfg.ensemble_size, b, nc, d), nxt[..., nc * d:]

    def outcome(self, z: torch.Tensor, p: torch.Tensor, a: torch.Tensor, z1: torch.Tensor, p1: torch.Tensor) -> torch.Tensor:
        """(reward, success logit, terminated logit) (B, 3) from state (B, C, D), (B, P), action, next state."""
        b = p.shape[0]
        return self.head(torch.cat([z.reshape(b, -1), p, a.clamp(-1, 1), z1.reshape(b, -1), p1], dim=-1))

    @staticmethod
    def raw_disagreement(z_members: torch.Tensor) -> torch.Tensor:
        """(N, B, C, D) -> (B,) variance across members averaged over cameras and dims."""
        if z_members.shape[0] < 2:
            return torch.zeros(z_members.shape[1], device=z_members.device)
        return z_members.var(dim=0, unbiased=False).mean(dim=(-1, -2))

    # ------------------------------------------------------------------ inference API
    @torch.no_grad()
    def encode_history(self, frames: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        """frames[cam] uint8 (B, H, S, S, 3) -> latents (B, H, D)."""
        return {c: self.encode(c, self.frames_to_tensor(frames[c])) for c in self.cameras}

    @torch.no_grad()
    def step(self, hist: dict[str, torch.Tensor], proprio: torch.Tensor, actions: np.ndarray | torch.Tensor,
             generator: torch.Generator | None = None) -> dict[str, Any]:
        """One imagined step for a batch.

        hist[cam] (B, H, D); proprio (B, P) *raw* (not normalised); actions (B, A).
        Returns new ``hist``, ``proprio`` (raw), ``reward``, ``success_prob``, ``terminated_prob``,
        ``raw_uncertainty`` and ``uncertainty`` (normalised by ``uncertainty_ref``), all tensors.
        """
        a = torch.as_tensor(actions, dtype=torch.float32, device=self.device)
        pn = self.norm_proprio(proprio)
        zs, ps = self.dynamics(hist, pn, a)
        raw = self.raw_disagreement(zs)
        if self.cfg.rollout_mode == "random_member":
            idx = torch.randint(0, zs.shape[0], (zs.shape[1],), generator=generator,
                                device="cpu").to(self.device)
            ar = torch.arange(zs.shape[1], device=self.device)
            z1, p1 = zs[idx, ar], ps[idx, ar]
        else:
            z1, p1 = zs.mean(0), ps.mean(0)
        z0 = torch.stack([hist[c][:, -1] for c in self.cameras], dim=1)
        out = self.outcome(z0, pn, a, z1, p1)
        new_hist = {c: torch.cat([hist[c][:, 1:], z1[:, i: i + 1]], dim=1) for i, c in enumerate(self.cameras)}
        return {
            "hist": new_hist,
            "proprio": self.denorm_proprio(p1),
            "reward": out[:, 0],
            "success_prob": torch.sigmoid(out[:, 1]),
            "terminated_prob": torch.sigmoid(out[:, 2]),
            "raw_uncertainty": raw,
            "uncertainty": raw / self.uncertainty_ref.clamp_min(1e-12),
        }

    @torch.no_grad()
    def render(self, hist: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
        """Decode the newest latent of every camera: uint8 (B, S, S, 3) per camera."""
        return {c: self.tensor_to_frames(self.decode(c, hist[c][:, -1])) for c in self.cameras}

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
            raise ValueError(f"{where}: not a WorldSample world-model checkpoint (expected format {MODEL_FORMAT!r})")
        cfg = WorldModelConfig.from_dict(ckpt["config"])
        if device is not None:
            cfg.device = device
        model = cls(cfg, ckpt["proprio_dim"], ckpt["action_dim"])
        model.load_state_dict(ckpt["state_dict"])
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
