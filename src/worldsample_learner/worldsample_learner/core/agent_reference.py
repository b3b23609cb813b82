"""The SAC update as it was before issue 23 (one critic-network pass per use, per-tensor Adam and
Polyak loops, the actor loss back-propagated into the critic's weights as well).

Kept only so that `worldsample bench learner` can time the previous implementation beside
`SACAgent.update` in the same run (``SACAgent(cfg, reference_update=True)``) and so that a test can
check that both compute the same update. Not used in training.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from .agent import SACAgent


def reference_update(agent: SACAgent, batches: list[dict[str, Any]]) -> dict[str, float]:
    """One critic step per batch (the UTD steps), then one actor and temperature step on the last."""
    self = agent
    cfg = self.cfg
    info: dict[str, float] = {}
    for batch in batches:
        obs = self.obs_to_torch(batch["obs"])
        nxt = self.obs_to_torch(batch["next_obs"])
        act = torch.as_tensor(batch["action"], device=self.device)
        rew = torch.as_tensor(batch["reward"], device=self.device)
        boot = self._bootstrap(batch)
        with torch.no_grad():
            nfeat = self.encoder(nxt, augment=True)
            na, nlogp = self.actor.sample(nfeat)
            tq = self.target_critic(self.target_encoder(nxt, augment=True), na)
            sub = torch.randperm(cfg.num_critics, generator=self._gen)[: cfg.num_min_critics].to(self.device)
            tq = tq[sub].min(0).values - self.alpha * nlogp
            target = rew + boot * tq
        q = self.critic(self.encoder(obs, augment=True), act)
        critic_loss = F.mse_loss(q, target.unsqueeze(0).expand_as(q))
        self.critic_opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_opt.step()
        with torch.no_grad():
            for p, tp in zip(self.critic.parameters(), self.target_critic.parameters(), strict=True):
                tp.lerp_(p, cfg.tau)
            for p, tp in zip(self.encoder.parameters(), self.target_encoder.parameters(), strict=True):
                tp.lerp_(p, cfg.tau)
        self.updates += 1
    # actor + temperature on the last batch
    with torch.no_grad():
        feat = self.encoder(obs, augment=True)
    a, logp = self.actor.sample(feat)
    qa = self.critic(feat, a).mean(0)
    actor_loss = (self.alpha.detach() * logp - qa).mean()
    bc = self._bc_loss(feat, qa, batches[-1]["source"], act)
    if bc is not None:
        actor_loss = actor_loss + bc
        info["bc_loss"] = float(bc.detach())
    self.actor_opt.zero_grad(set_to_none=True)
    actor_loss.backward()
    self.actor_opt.step()
    alpha_loss = -(self.log_alpha * (logp.detach() + self.target_entropy)).mean()
    self.alpha_opt.zero_grad(set_to_none=True)
    alpha_loss.backward()
    self.alpha_opt.step()
    info.update(critic_loss=float(critic_loss.detach()), actor_loss=float(actor_loss.detach()),
                alpha=float(self.alpha.detach()), entropy=float(-logp.detach().mean()), q_mean=float(q.detach().mean()))
    src = np.asarray(batches[-1]["source"])
    qm = q.detach().mean(0).cpu().numpy()
    for name, code in (("q_real", 0), ("q_synthetic", 1), ("q_demo", 2)):
        m = src == code
        info[name] = float(qm[m].mean()) if m.any() else float("nan")
    return info
