"""Self-describing, versioned policy checkpoints and the `Policy` object the actor and world model use.

A checkpoint (``policy-000004.pt``, written atomically) holds the agent config, the observation
spec, the encoder + actor weights and free-form metadata; `load_policy` rebuilds the network
from that alone (no optimiser, replay or critic needed).
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from worldsample_common.core.env_protocol import Observation

from .config import AgentConfig
from .networks import Actor, ObsEncoder
from .replay import ObsSpec

FORMAT = "worldsample-policy/1"
_VERSION_RE = re.compile(r"^policy-(\d+)$")


def version_name(version: int | str) -> str:
    """``4`` or ``"policy-000004"`` -> ``"policy-000004"``."""
    if isinstance(version, str):
        if not _VERSION_RE.match(version):
            raise ValueError(f"policy version {version!r} must look like 'policy-000004' or be an int")
        return version
    if not isinstance(version, int | np.integer) or version < 0:
        raise ValueError(f"policy version must be an int >= 0, got {version!r}")
    return f"policy-{int(version):06d}"


def checkpoint_path(directory: str | Path, version: int | str) -> Path:
    return Path(directory) / f"{version_name(version)}.pt"


def save_policy(agent: Any, path: str | Path, version: int | str, meta: dict[str, Any] | None = None) -> Path:
    """Write ``agent``'s policy. ``path`` is a directory (then ``policy-NNNNNN.pt`` inside it) or a file."""
    path = Path(path)
    if path.is_dir() or path.suffix != ".pt":
        path = checkpoint_path(path, version)
    path.parent.mkdir(parents=True, exist_ok=True)
    cfg: AgentConfig = agent.cfg
    payload = {
        "format": FORMAT,
        "version": version_name(version),
        "agent_config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(cfg).items()},
        "obs_spec": agent.spec.to_dict(),
        "obs_mode": cfg.obs_mode,
        "encoder": {k: v.detach().cpu() for k, v in agent.encoder.state_dict().items()},
        "actor": {k: v.detach().cpu() for k, v in agent.actor.state_dict().items()},
        "meta": dict(meta or {}),
    }
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        torch.save(payload, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


class Policy:
    """A loaded policy: deterministic mean action at ``noise_std=0``, Gaussian noise (clipped) otherwise."""

    def __init__(self, cfg: AgentConfig, spec: ObsSpec, encoder: ObsEncoder, actor: Actor, version: str,
                 meta: dict[str, Any], device: torch.device) -> None:
        self.cfg, self.spec, self.encoder, self.actor = cfg, spec, encoder, actor
        self.version, self.meta, self.device = version, meta, device
        self._rng = np.random.default_rng(cfg.seed)

    @property
    def obs_mode(self) -> str:
        return self.cfg.obs_mode

    def __call__(self, obs: Observation) -> np.ndarray:
        return self.act(obs)

    def act(self, obs: Observation, noise_std: float = 0.0) -> np.ndarray:
        images = {c: np.asarray(obs.images[c])[None] for c in self.spec.cameras if c in obs.images}
        state = None if obs.state is None else np.asarray(obs.state, np.float32)[None]
        return self.act_batch(images, np.asarray(obs.proprio, np.float32)[None], noise_std, state=state)[0]

    @torch.no_grad()
    def act_batch(self, images: dict[str, np.ndarray], proprio: np.ndarray, noise_std: float = 0.0,
                  rng: np.random.Generator | None = None, state: np.ndarray | None = None) -> np.ndarray:
        """Actions float32 (B, action_dim) in [-1, 1] for a batch of observations."""
        proprio = np.asarray(proprio, np.float32)
        if proprio.ndim != 2 or proprio.shape[1] != self.spec.proprio_dim:
            raise ValueError(f"policy {self.version}: proprio must be (B, {self.spec.proprio_dim}), got {proprio.shape}")
        b = proprio.shape[0]
        obs: dict[str, Any] = {"proprio": torch.as_tensor(proprio, device=self.device), "images": {}}
        if self.spec.state_dim:
            if state is None:
                raise ValueError(f"policy {self.version} is state-based (obs_mode='state'): it needs the privileged "
                                 f"sim state (B, {self.spec.state_dim}); got none (real robot? use a pixels policy)")
            state = np.asarray(state, np.float32)
            if state.shape != (b, self.spec.state_dim):
                raise ValueError(f"policy {self.version}: state must be ({b}, {self.spec.state_dim}), got {state.shape}")
            obs["state"] = torch.as_tensor(state, device=self.device)
        for cam in self.spec.cameras:
            if cam not in images:
                raise ValueError(f"policy {self.version}: camera {cam!r} missing from images (has {sorted(images)})")
            frames = np.asarray(images[cam])
            want = (b, self.spec.image_size, self.spec.image_size, 3)
            if frames.dtype != np.uint8 or frames.shape != want:
                raise ValueError(f"policy {self.version}: images[{cam!r}] must be uint8 {want}, got {frames.dtype} {frames.shape}")
            obs["images"][cam] = torch.as_tensor(np.ascontiguousarray(frames), device=self.device)
        a = self.actor.mean_action(self.encoder(obs)).cpu().numpy().astype(np.float32)
        if noise_std > 0:
            rng = rng if rng is not None else self._rng
            a = a + rng.normal(0.0, noise_std, size=a.shape).astype(np.float32)
        return np.clip(a, -1.0, 1.0).astype(np.float32)

    @property
    def reads_pixel_features(self) -> bool:
        """Whether this policy reads its frames through a frozen pixel encoder (`features`) that has been
        pre-trained (an encoder that never was reads nothing yet)."""
        return bool(getattr(self.encoder, "frozen", False)) and int(self.encoder.keypoints.version) > 0

    @torch.no_grad()
    def features(self, images: dict[str, np.ndarray]) -> np.ndarray | None:
        """What this policy reads of uint8 frames (N, S, S, 3) per camera: its frozen pixel encoder's features
        (N, F), as its actor gets them; None for a policy without one (state, or the end-to-end conv encoder).
        The world model scores its predicted frames with it (`fidelity.feature_skill`)."""
        if not self.reads_pixel_features:
            return None
        return self.encoder.keypoints.features({c: np.asarray(images[c]) for c in self.spec.cameras}, self.device)


def load_policy(path: str | Path, device: str = "cpu") -> Policy:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"policy checkpoint {str(path)!r} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001
        raise ValueError(f"policy checkpoint {str(path)!r} is not a readable torch file: {e}") from e
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"policy checkpoint {str(path)!r}: expected format {FORMAT!r}, "
                         f"got {payload.get('format') if isinstance(payload, dict) else type(payload).__name__!r}")
    raw = dict(payload["agent_config"])
    raw["cameras"] = tuple(raw["cameras"])
    known = {f.name for f in dataclasses.fields(AgentConfig)}
    # checkpoints from before issue 23 name no pixel encoder: theirs was the end-to-end conv encoder
    raw.setdefault("pixel_encoder", "conv")
    raw.setdefault("frozen_color_blobs", 0)  # and none from before the colour blobs has any
    cfg = AgentConfig(**{k: v for k, v in raw.items() if k in known})
    cfg.device = device
    dev = torch.device(device)
    encoder = ObsEncoder(cfg)
    encoder.load_state_dict(payload["encoder"])
    actor = Actor(encoder.out_dim, cfg)
    actor.load_state_dict(payload["actor"])
    return Policy(cfg, ObsSpec.from_dict(payload["obs_spec"]), encoder.to(dev), actor.to(dev), payload["version"],
                  payload.get("meta", {}), dev)


def latest_checkpoint(directory: str | Path) -> Path | None:
    files = sorted(Path(directory).glob("policy-*.pt"))
    return files[-1] if files else None


def policy_from_agent(agent: Any, version: int | str = 0, meta: dict[str, Any] | None = None) -> Policy:
    """A `Policy` view of a live agent (shares its weights; no copy, no file)."""
    return Policy(agent.cfg, agent.spec, agent.encoder, agent.actor, version_name(version), dict(meta or {}),
                  agent.device)
