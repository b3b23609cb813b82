"""Soft actor-critic with a LayerNorm critic ensemble, in the spirit of RLPD / HIL-SERL.

- critic target: ``r + discount * (1 - terminated) * (min over a random subset of
  num_min_critics target critics of Q(s', a') - alpha * log pi(a'|s'))``; with n-step sampling
  (``n_step``) ``r`` is the discounted n-step return and the factor ``discount^n (1 - terminated)``
- ``utd_ratio`` critic updates per call of `update`, one actor + temperature update
- actor: ``alpha log pi - Q`` plus, on the demo rows of the batch, a Q-filtered behaviour-cloning
  term (``bc_weight``; see `_bc_loss`)
- pixels, ``pixel_encoder="conv"``: the conv encoder is trained by the critic loss only (actor sees
  detached features), random-shift augmentation on every image batch, a Polyak-averaged target encoder.
- pixels, ``pixel_encoder="frozen"``: pre-trained keypoints (`pretrain_encoder`) that SAC never
  changes; batches carry them cached (``obs["features"]``), and the update is the state update's.

`SACAgent.update` computes that with as little work as the math allows (issue 23): state
observations have a weight-free encoder and the actor does not change during the critic steps, so
the next actions of all UTD batches come from one actor pass; the target critics compute only the
random subset the min is taken over; the actor loss does not back-propagate into the critic's
weights (their gradients were discarded); fused Adam and one multi-tensor Polyak step; one
device-to-host copy for the logged numbers. ``SACAgent(cfg, reference_update=True)`` runs the
previous implementation (`agent_reference.py`) for the benchmark and the equivalence test.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from worldsample_common.core.episode import Source

from .agent_reference import reference_update as _reference_update
from .config import AgentConfig
from .networks import Actor, CriticEnsemble, ObsEncoder
from .replay import ObsSpec


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def obs_spec_of(cfg: AgentConfig) -> ObsSpec:
    cams = tuple(cfg.cameras) if cfg.obs_mode == "pixels" else ()
    return ObsSpec(cfg.proprio_dim, cfg.state_dim if cfg.obs_mode == "state" else 0, cams, cfg.image_size,
                   cfg.action_dim)


class SACAgent:
    def __init__(self, cfg: AgentConfig, reference_update: bool = False) -> None:
        cfg.validate()
        self.cfg = cfg
        self.device = resolve_device(cfg.device)
        torch.manual_seed(cfg.seed)
        self.spec = obs_spec_of(cfg)
        self.encoder = ObsEncoder(cfg).to(self.device)
        d = self.encoder.out_dim
        self.reference_update = bool(reference_update)
        if self.reference_update:  # the previous update computed in float32, its networks as they were
            cfg = self.cfg = replace(cfg, hidden_dtype="float32")
        self.actor = Actor(d, cfg).to(self.device)
        self.critic = CriticEnsemble(d, cfg, plain=self.reference_update).to(self.device)
        self.target_encoder = copy.deepcopy(self.encoder).requires_grad_(False)
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_alpha = torch.tensor(float(np.log(cfg.init_alpha)), device=self.device, requires_grad=True)
        self.target_entropy = cfg.target_entropy if cfg.target_entropy is not None else -float(cfg.action_dim)
        # the previous update (per-tensor Adam) only for measuring it beside this one (`agent_reference.py`)
        fused = {} if self.reference_update else {"fused": True}
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=cfg.actor_lr, **fused)
        # the frozen pixel encoder's weights take no gradient: outside every optimiser and Polyak step
        enc_params = [p for p in self.encoder.parameters() if p.requires_grad]
        tgt_params = [t for p, t in zip(self.encoder.parameters(), self.target_encoder.parameters(), strict=True)
                      if p.requires_grad]
        self.critic_opt = torch.optim.Adam(list(self.critic.parameters()) + enc_params, lr=cfg.critic_lr, **fused)
        self.alpha_opt = torch.optim.Adam([self.log_alpha], lr=cfg.alpha_lr)
        # Polyak pairs (online, target) of the critic and the encoder, for one multi-tensor lerp
        self._online = [*self.critic.parameters(), *enc_params]
        self._target = [*self.target_critic.parameters(), *tgt_params]
        self.updates = 0
        self._gen = torch.Generator(device="cpu").manual_seed(cfg.seed)

    # ------------------------------------------------------------------ tensors
    def obs_to_torch(self, obs: dict[str, Any]) -> dict[str, Any]:
        dev = self.device
        out: dict[str, Any] = {"proprio": torch.as_tensor(np.asarray(obs["proprio"], np.float32), device=dev)}
        if self.spec.state_dim:
            out["state"] = torch.as_tensor(np.asarray(obs["state"], np.float32), device=dev)
        if obs.get("features") is not None and self.encoder.frozen:  # cached frozen-encoder features: no frames needed
            out["features"] = torch.as_tensor(np.asarray(obs["features"], np.float32), device=dev)
            out["images"] = {}
            return out
        out["images"] = {c: torch.as_tensor(np.ascontiguousarray(obs["images"][c]), device=dev) for c in self.spec.cameras}
        return out

    # ------------------------------------------------------------------ frozen pixel encoder
    @property
    def encoder_version(self) -> int:
        """How often the frozen pixel encoder was pre-trained (0 = never); -1 without one."""
        return int(self.encoder.keypoints.version) if self.encoder.frozen else -1

    def pretrain_encoder(self, frames: dict[str, np.ndarray], log_every: int = 0) -> dict[str, Any]:
        """Pre-train the frozen pixel encoder on ``frames`` (uint8 (N, H, W, 3) per camera; frames only,
        `pixel_encoder.pretrain_keypoints`) and give the target encoder the same weights. Features cached
        under the previous version are stale afterwards (`Learner.sync_features`)."""
        if not self.encoder.frozen:
            raise ValueError(f"pretrain_encoder: pixel_encoder={self.cfg.pixel_encoder!r} with obs_mode="
                             f"{self.cfg.obs_mode!r} has no frozen encoder to pre-train")
        from .pixel_encoder import pretrain_keypoints

        info = pretrain_keypoints(self.encoder.keypoints, frames, self.cfg, self.device, seed=self.cfg.seed + self.encoder_version,
                                  log_every=log_every)
        self.target_encoder.keypoints.load_state_dict(self.encoder.keypoints.state_dict())
        return info

    def features(self, images: dict[str, np.ndarray]) -> np.ndarray:
        """The frozen encoder's features (N, F) of numpy uint8 frames per camera (the replay's featurizer)."""
        return self.encoder.keypoints.features(images, self.device)

    @property
    def normalizer_fitted(self) -> bool:
        return bool(self.encoder.vec_fitted)

    @torch.no_grad()
    def fit_normalizer(self, obs: dict[str, Any], min_std: float = 1e-2) -> None:
        """Fix the observation standardisation from a batch of numpy observations (e.g. all demos).

        ``min_std`` keeps entries that do not vary in the data (a constant hole height) from
        being blown up. Call before the first update; encoder and target encoder get the same.
        """
        t = {k: torch.as_tensor(np.asarray(obs[k], np.float32), device=self.device)
             for k in ("proprio", "state") if k in obs}
        self.encoder.vec_mean.zero_()
        self.encoder.vec_std.fill_(1.0)
        v = self.encoder.vector(t)
        mean = v.mean(0)
        std = v.std(0).clamp_min(min_std) if len(v) > 1 else torch.ones_like(mean)
        for enc in (self.encoder, self.target_encoder):
            enc.vec_mean.copy_(mean)
            enc.vec_std.copy_(std)
            enc.vec_fitted.fill_(True)

    @property
    def alpha(self) -> torch.Tensor:
        return self.log_alpha.exp()

    # ------------------------------------------------------------------ acting
    @torch.no_grad()
    def act(self, obs: dict[str, Any], deterministic: bool = False) -> np.ndarray:
        """Actions (B, A) in [-1, 1] for a batch of numpy observations."""
        feat = self.encoder(self.obs_to_torch(obs))
        a = self.actor.mean_action(feat) if deterministic else self.actor.sample(feat)[0]
        return a.cpu().numpy().astype(np.float32)

    @torch.no_grad()
    def q_values(self, obs: dict[str, Any], action: np.ndarray) -> np.ndarray:
        """Q of every critic (N, B) for numpy observations and actions."""
        feat = self.encoder(self.obs_to_torch(obs))
        return self.critic(feat, torch.as_tensor(np.asarray(action, np.float32), device=self.device)).cpu().numpy()

    @torch.no_grad()
    def target_values(self, batch: dict[str, Any]) -> np.ndarray:
        """Bootstrapped critic target (B,) of a batch (same formula as training, mean over critics)."""
        nxt = self.obs_to_torch(batch["next_obs"])
        feat = self.encoder(nxt)
        a, logp = self.actor.sample(feat)
        q = self.target_critic(self.target_encoder(nxt), a).mean(0) - self.alpha * logp
        r = torch.as_tensor(batch["reward"], device=self.device)
        return (r + self._bootstrap(batch) * q).cpu().numpy()

    def _bootstrap(self, batch: dict[str, Any]) -> torch.Tensor:
        """Factor of the next value in the critic target: the batch's ``discount`` (n-step sampling
        gives ``discount^K (1 - terminated)``), else ``discount * (1 - terminated)``."""
        if "discount" in batch:
            return torch.as_tensor(np.asarray(batch["discount"], np.float32), device=self.device)
        done = torch.as_tensor(batch["terminated"], device=self.device).float()
        return self.cfg.discount * (1.0 - done)

    # ------------------------------------------------------------------ learning
    def update(self, batches: list[dict[str, Any]]) -> dict[str, float]:
        """One critic step per batch (the UTD steps), then one actor and temperature step on the last."""
        if not batches:
            raise ValueError("SACAgent.update: no batches given")
        if self.reference_update:
            return _reference_update(self, batches)
        cfg, dev = self.cfg, self.device
        obs = [self.obs_to_torch(b["obs"]) for b in batches]
        nxt = [self.obs_to_torch(b["next_obs"]) for b in batches]
        act = [torch.as_tensor(b["action"], device=dev) for b in batches]
        boot = [self._bootstrap(b) for b in batches]
        alpha = self.log_alpha.detach().exp()  # the temperature only changes after the critic steps
        pixels = self.encoder.pixels and not self.encoder.frozen  # an encoder the critic steps train
        if not pixels:
            # no trained encoder weights (a fixed standardisation, frozen keypoints) and an actor that the critic
            # steps leave alone:
            # the next actions of every UTD batch from one pass, each batch's features once
            sizes = [len(a) for a in act]
            with torch.no_grad():
                nxt_all = _cat_obs(nxt)
                na_all, nlogp_all = self.actor.sample(self.encoder(nxt_all))
                next_s = list(zip(na_all.split(sizes), nlogp_all.split(sizes),
                                  self.target_encoder(nxt_all).split(sizes), strict=True))
                feat_s = self.encoder(_cat_obs(obs)).split(sizes)
        for k, batch in enumerate(batches):
            with torch.no_grad():
                if pixels:  # the encoder changes with every critic step: batch by batch, as in the formula
                    na, nlogp = self.actor.sample(self.encoder(nxt[k], augment=True))
                    tfeat = self.target_encoder(nxt[k], augment=True)
                else:
                    na, nlogp, tfeat = next_s[k]
                sub = torch.randperm(cfg.num_critics, generator=self._gen)[: cfg.num_min_critics]
                # min over all critics when the subset is all of them (any order): no gather of weights
                members = None if cfg.num_min_critics == cfg.num_critics else sub.to(dev)
                tq = self.target_critic(tfeat, na, members).min(0).values - alpha * nlogp
                target = torch.as_tensor(batch["reward"], device=dev) + boot[k] * tq
            feat = self.encoder(obs[k], augment=True) if pixels else feat_s[k]
            q = self.critic(feat, act[k])
            critic_loss = F.mse_loss(q, target.unsqueeze(0).expand_as(q))
            self.critic_opt.zero_grad(set_to_none=True)
            critic_loss.backward()
            self.critic_opt.step()
            with torch.no_grad():
                torch._foreach_lerp_(self._target, self._online, cfg.tau)
            self.updates += 1
        # actor + temperature on the last batch
        if pixels:
            with torch.no_grad():
                feat = self.encoder(obs[-1], augment=True)
        mu, log_std = self.actor(feat)
        a, logp = self.actor.sample_from(mu, log_std)
        self.critic.requires_grad_(False)  # the actor loss needs d/da only, not the critic's weight gradients
        try:
            qa = self.critic(feat, a).mean(0)
            actor_loss = (alpha * logp - qa).mean()
            bc = self._bc_loss(feat, qa, batches[-1]["source"], act[-1], mean_action=torch.tanh(mu))
            if bc is not None:
                actor_loss = actor_loss + bc
            self.actor_opt.zero_grad(set_to_none=True)
            actor_loss.backward()
        finally:
            self.critic.requires_grad_(True)
        self.actor_opt.step()
        # alpha loss -(log_alpha * (logp + target_entropy)).mean(): its gradient in closed form
        logp = logp.detach()
        self.log_alpha.grad = -(logp.mean() + self.target_entropy)
        self.alpha_opt.step()
        # every logged number in one device-to-host copy
        scalars = [critic_loss, actor_loss, self.log_alpha.exp(), -logp.mean(), q.mean()] + ([bc] if bc is not None else [])
        qm = q.detach().mean(0)
        vals = torch.cat([torch.stack([x.detach() for x in scalars]), qm]).cpu().numpy().astype(np.float64)
        info = dict(zip(("critic_loss", "actor_loss", "alpha", "entropy", "q_mean", "bc_loss"), vals[:len(scalars)].tolist(),
                        strict=False))
        qm_np, src = vals[len(scalars):], np.asarray(batches[-1]["source"])
        for name, code in (("q_real", 0), ("q_synthetic", 1), ("q_demo", 2)):
            m = src == code
            info[name] = float(qm_np[m].mean()) if m.any() else float("nan")
        return info

    def _bc_loss(self, feat: torch.Tensor, q_pi: torch.Tensor, source: Any, act: torch.Tensor,
                 mean_action: torch.Tensor | None = None) -> torch.Tensor | None:
        """Behaviour cloning on the batch's demo rows (``source``: the batch's source codes), or None.

        ``||mean_action(s) - a_demo||^2``; with ``bc_q_filter`` (Nair et al. 2018) it counts only where
        the critic values the demo action above the policy's own (the demos lead while the policy is
        worse and stop holding it back once it is better); scaled by ``bc_weight * mean |Q|`` so that it keeps its weight against the Q term
        whatever the reward scale (the TD3+BC normalisation). ``mean_action``: the actor's mean action
        on every row of ``feat`` when the caller has it already (else one more actor pass).
        """
        if self.cfg.bc_weight <= 0:
            return None
        demo = torch.as_tensor(np.asarray(source) == int(Source.DEMO), device=self.device)
        if not bool(demo.any()):
            return None
        f, a_demo = feat[demo], act[demo]
        with torch.no_grad():
            if self.cfg.bc_q_filter:
                keep = (self.critic(f, a_demo).mean(0) > q_pi[demo].detach()).float()
            else:
                keep = torch.ones(len(a_demo), device=self.device)
        mean = self.actor.mean_action(f) if mean_action is None else mean_action[demo]
        mse = ((mean - a_demo) ** 2).sum(-1)
        scale = q_pi.detach().abs().mean().clamp_min(1.0)
        return self.cfg.bc_weight * scale * (keep * mse).sum() / len(feat)  # mean over the whole batch

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        return {"encoder": self.encoder.state_dict(), "actor": self.actor.state_dict(),
                "critic": self.critic.state_dict(), "target_encoder": self.target_encoder.state_dict(),
                "target_critic": self.target_critic.state_dict(), "log_alpha": self.log_alpha.detach().cpu(),
                "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` saved (weights, alpha, update count; optimisers start afresh)."""
        for name in ("encoder", "actor", "critic", "target_encoder", "target_critic"):
            getattr(self, name).load_state_dict(state[name])
        with torch.no_grad():
            self.log_alpha.copy_(torch.as_tensor(state["log_alpha"], device=self.device))
        self.updates = int(state["updates"])


def _cat_obs(obs: list[dict[str, Any]]) -> dict[str, Any]:
    """Torch observation dicts concatenated along the batch axis."""
    return {k: ({c: torch.cat([o[k][c] for o in obs]) for c in v} if k == "images" else torch.cat([o[k] for o in obs]))
            for k, v in obs[0].items()}
