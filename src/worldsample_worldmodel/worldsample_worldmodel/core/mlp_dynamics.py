"""MBPO's model: a small MLP dynamics ensemble on vector observations (no frames).

Each of ``ensemble_size`` members maps the standardised (observation, action) to the standardised
change of the observation, the standardised reward and a termination logit:

    x = [(o - mu_o) / sd_o, a]   ->   member m: (d_o, r, logit)      o' = o + d_o * sd_d + mu_d

``num_layers`` hidden layers of ``hidden_dim`` (SiLU), all members in one batched matmul
(`model.EnsembleLinear`). Loss: MSE on the standardised targets plus the termination's binary
cross-entropy; every member draws its own minibatches (so the members differ), Adam. A fixed
``holdout_fraction`` of the transitions (`held_out`, by index) is kept aside and the ensemble with the lowest held-out
loss (checked every ``eval_every`` steps) is the one returned, as in MBPO; training stops early once
``patience`` checks in a row have not improved it (MBPO's rule; the fits here peaked at 400-600 of 2,000
steps, so the rest was spent for nothing). ``train_mlp_dynamics(data, cfg, init=previous)`` continues from a
previous ensemble's weights (MBPO re-fits its model every 250 real steps the same way) with the
standardisation re-computed on the new data. A prediction is the member mean (and the members' spread as
``disagreement``).

Used as the baseline world model of the state learner's data (`state_error`): the same transitions
the video world model post-trains on, without the frames.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from worldsample_common.core.episode import Episode

from .model import EnsembleLinear


@dataclass
class MLPDynamicsConfig:
    ensemble_size: int = 5
    hidden_dim: int = 200
    num_layers: int = 3
    lr: float = 1e-3
    weight_decay: float = 1e-5
    batch_size: int = 256
    steps: int = 2000
    holdout_fraction: float = 0.1
    eval_every: int = 100
    patience: int = 3  # stop after this many held-out checks without improvement (0: run all ``steps``)
    done_weight: float = 1.0
    # the reward's share in the loss (1: one more output beside the change of each observation dimension). 0 where
    # nothing reads the model's reward and termination (the experiment's source takes only its next state and
    # disagreement) and its inputs cannot tell them (translation-free push hides the block-to-target offset)
    reward_weight: float = 1.0
    # MBPO's probabilistic ensemble: each member also predicts the log-variance of its standardised delta and reward
    # (soft-bounded to [min_logvar, max_logvar]) and is trained by the Gaussian negative log-likelihood instead of
    # the MSE; `MLPDynamics.predict`'s ``disagreement`` then adds the members' mean predicted variance (aleatoric:
    # contact, noise) to their spread (epistemic). The held-out loss that picks the ensemble stays the MSE
    probabilistic: bool = False
    min_logvar: float = -10.0
    max_logvar: float = 1.0
    # multi-step loss: each training row starts an open loop of this many steps through the member's own predictions,
    # scored against the recorded steps at every one of them (1: the one-step loss). On a policy run's push data
    # (docs/mlpwd22), with weight_decay 1e-3, 4 steps cut the runs' warm-started chain's block error at h = 8 by 24 %
    # early in a run and 12 % late, at 5-7x the fitting time (each training step costs this many forward passes).
    # Rows run on only while the next row continues them (its observation is this row's next observation) and none
    # is held out
    rollout_steps: int = 1
    # observation dimensions the members do not see (their standardised input is held at 0; they are still predicted)
    ignore_inputs: tuple[int, ...] = ()
    seed: int = 0

    def validate(self) -> None:
        """Raise ValueError naming the first bad field."""
        for name in ("ensemble_size", "hidden_dim", "num_layers", "batch_size", "steps", "eval_every", "rollout_steps"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"MLPDynamicsConfig.{name} must be an int >= 1, got {v!r}")
        for name in ("lr",):
            v = getattr(self, name)
            if not (isinstance(v, int | float) and math.isfinite(v) and v > 0):
                raise ValueError(f"MLPDynamicsConfig.{name} must be a positive number, got {v!r}")
        if not isinstance(self.patience, int) or isinstance(self.patience, bool) or self.patience < 0:
            raise ValueError(f"MLPDynamicsConfig.patience must be an int >= 0, got {self.patience!r}")
        for name in ("weight_decay", "done_weight", "reward_weight"):
            v = getattr(self, name)
            if not (isinstance(v, int | float) and math.isfinite(v) and v >= 0):
                raise ValueError(f"MLPDynamicsConfig.{name} must be a number >= 0, got {v!r}")
        if not (math.isfinite(self.min_logvar) and math.isfinite(self.max_logvar) and self.min_logvar < self.max_logvar):
            raise ValueError(f"MLPDynamicsConfig: min_logvar ({self.min_logvar}) must be below max_logvar "
                             f"({self.max_logvar}), both finite")
        if not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in self.ignore_inputs):
            raise ValueError(f"MLPDynamicsConfig.ignore_inputs must hold observation indices (ints >= 0), got "
                             f"{self.ignore_inputs!r}")
        if not 0.0 <= self.holdout_fraction < 1.0:
            raise ValueError(f"MLPDynamicsConfig.holdout_fraction must be in [0, 1), got {self.holdout_fraction!r}")


@dataclass
class Transitions:
    """Flat transitions: obs (N, O), actions (N, A), next_obs (N, O), rewards (N,), terminated (N,)."""

    obs: np.ndarray
    actions: np.ndarray
    next_obs: np.ndarray
    rewards: np.ndarray
    terminated: np.ndarray

    def __len__(self) -> int:
        return len(self.obs)


def episode_vectors(ep: Episode, with_states: bool = True) -> np.ndarray:
    """The vector observation (T+1, O) of an episode: proprio, then its privileged state when asked."""
    if not with_states:
        return ep.proprio
    if ep.states is None:
        raise ValueError(f"episode {ep.episode_id!r} carries no privileged states (needed for the state model)")
    return np.concatenate([ep.proprio, ep.states], 1).astype(np.float32)


def transitions_from_episodes(episodes: list[Episode], with_states: bool = True) -> Transitions:
    """Every step of every episode as one transition (observation = `episode_vectors`)."""
    if not episodes:
        raise ValueError("transitions_from_episodes: no episodes")
    obs, act, nxt, rew, term = [], [], [], [], []
    dims = None
    for ep in episodes:
        v = episode_vectors(ep, with_states)
        if dims is not None and v.shape[1] != dims:
            raise ValueError(f"episode {ep.episode_id!r}: observation has {v.shape[1]} dims, others have {dims}")
        dims = v.shape[1]
        obs.append(v[:-1])
        nxt.append(v[1:])
        act.append(ep.actions)
        rew.append(ep.rewards)
        term.append(ep.terminated)
    return Transitions(np.concatenate(obs), np.concatenate(act).astype(np.float32), np.concatenate(nxt),
                       np.concatenate(rew).astype(np.float32), np.concatenate(term).astype(np.float32))


class DynamicsNet(nn.Module):
    """The ensemble (a module-level class, so that a run snapshot can pickle it)."""

    def __init__(self, obs_dim: int, action_dim: int, cfg: MLPDynamicsConfig) -> None:
        super().__init__()
        if any(i >= obs_dim for i in cfg.ignore_inputs):
            raise ValueError(f"MLPDynamicsConfig.ignore_inputs {cfg.ignore_inputs} reaches past the {obs_dim}-dim observation")
        self.obs_dim, self.cfg = obs_dim, cfg
        n, hd = cfg.ensemble_size, cfg.hidden_dim
        dims = [obs_dim + action_dim] + [hd] * cfg.num_layers
        self.hidden = nn.ModuleList([EnsembleLinear(n, i, o) for i, o in zip(dims[:-1], dims[1:], strict=True)])
        # delta, reward, termination logit (+ the log-variance of delta and reward: ``probabilistic``)
        self.out = EnsembleLinear(n, hd, obs_dim + 2 + (obs_dim + 1 if cfg.probabilistic else 0))
        for name in ("obs_mean", "obs_std", "delta_mean", "delta_std"):
            self.register_buffer(name, torch.zeros(obs_dim) if "mean" in name else torch.ones(obs_dim))
        self.register_buffer("rew_mean", torch.zeros(()))
        self.register_buffer("rew_std", torch.ones(()))

    def standardise(self, o: torch.Tensor) -> torch.Tensor:
        """The members' view of observations o (..., O): standardised, ``cfg.ignore_inputs`` held at 0."""
        z = (o - self.obs_mean) / self.obs_std
        if self.cfg.ignore_inputs:
            z = z.clone()
            z[..., list(self.cfg.ignore_inputs)] = 0.0
        return z

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, B, O + A) standardised -> (N, B, O + 2): delta, reward (standardised), termination logit."""
        for layer in self.hidden:
            x = torch.nn.functional.silu(layer(x))
        return self.out(x)

    def logvar(self, out: torch.Tensor) -> torch.Tensor:
        """The soft-bounded log-variance (N, B, O + 1) of the standardised delta and reward in ``out``."""
        sp = torch.nn.functional.softplus
        lv = self.cfg.max_logvar - sp(self.cfg.max_logvar - out[..., self.obs_dim + 2:])
        return self.cfg.min_logvar + sp(lv - self.cfg.min_logvar)


class MLPDynamics:
    """A trained ensemble (see `train_mlp_dynamics`); `predict` steps a batch of observations."""

    def __init__(self, net, cfg: MLPDynamicsConfig, obs_dim: int, action_dim: int) -> None:
        self.net, self.cfg, self.obs_dim, self.action_dim = net, cfg, obs_dim, action_dim

    def _inputs(self, obs, actions):
        import torch

        o = torch.as_tensor(np.asarray(obs, np.float32))
        a = torch.as_tensor(np.asarray(actions, np.float32)).clamp(-1, 1)
        if o.ndim != 2 or o.shape[1] != self.obs_dim or a.shape != (o.shape[0], self.action_dim):
            raise ValueError(f"MLPDynamics.predict: obs must be (B, {self.obs_dim}) and actions (B, {self.action_dim}),"
                             f" got {tuple(o.shape)} and {tuple(a.shape)}")
        x = torch.cat([self.net.standardise(o), a], -1)
        return o, x.unsqueeze(0).expand(self.cfg.ensemble_size, -1, -1)

    def predict(self, obs: np.ndarray, actions: np.ndarray, members: bool = False) -> dict[str, np.ndarray]:
        """One step for a batch: ``next_obs`` (B, O), ``reward`` (B,), ``terminated_prob`` (B,) (member means) and
        ``disagreement`` (B,): the members' variance of the standardised change, averaged over dimensions. With
        ``members``, also ``member_next_obs`` (E, B, O): each member's own prediction of the next observation."""
        import torch

        with torch.no_grad():
            o, x = self._inputs(obs, actions)
            y = self.net(x)
            d = y[..., :self.obs_dim]
            nxt = o + d.mean(0) * self.net.delta_std + self.net.delta_mean
            rew = y[..., self.obs_dim].mean(0) * self.net.rew_std + self.net.rew_mean
            term = torch.sigmoid(y[..., self.obs_dim + 1]).mean(0)
            dis = d.var(0, unbiased=False).mean(-1) if self.cfg.ensemble_size > 1 else torch.zeros(len(o))
            if self.cfg.probabilistic:  # + the members' mean predicted variance of the standardised delta
                dis = dis + self.net.logvar(y)[..., :self.obs_dim].exp().mean(0).mean(-1)
            out = {"next_obs": nxt.numpy(), "reward": rew.numpy(), "terminated_prob": term.numpy(),
                   "disagreement": dis.numpy()}
            if members:
                out["member_next_obs"] = (o + d * self.net.delta_std + self.net.delta_mean).numpy()
        return out


def _std(x: np.ndarray) -> np.ndarray:
    return x.std(0) + 1e-6 * (1.0 + np.abs(x).mean(0))


def held_out(n: int, fraction: float) -> np.ndarray:
    """Which of ``n`` transitions are held out (bool (n,)): a fixed pseudo-random ``fraction`` by index, so the
    transitions a fit held out stay held out in every later (warm-started) fit on the same data grown at the end."""
    h = (np.arange(n, dtype=np.uint64) * np.uint64(2654435761)) % np.uint64(1 << 32)
    return h.astype(np.float64) / float(1 << 32) < fraction


def rollout_starts(data: Transitions, held: np.ndarray, steps: int) -> np.ndarray:
    """The rows that start ``steps`` consecutive training rows: each one's next row continues it (its observation
    is this row's next observation) and none of them is ``held`` out (bool (N,))."""
    n = len(data)
    ok = ~held
    follows = np.zeros(n, bool)  # row i + 1 continues row i
    follows[:-1] = (data.obs[1:] == data.next_obs[:-1]).all(1)
    good = ok.copy()
    for j in range(1, steps):  # row i + j is a training row and continues row i + j - 1
        step_j = np.zeros(n, bool)
        step_j[:n - j] = ok[j:] & follows[j - 1:n - 1]
        good &= step_j
    return np.flatnonzero(good)


def train_mlp_dynamics(data: Transitions, cfg: MLPDynamicsConfig | None = None,
                       init: MLPDynamics | None = None) -> tuple[MLPDynamics, dict[str, Any]]:
    """Fit an ensemble to ``data`` (from ``init``'s weights when given: same sizes); returns it and
    ``{"steps", "best_step", "holdout_loss", "train_loss", "num_train", "num_holdout", "holdout_disagreement"}``
    (losses on the standardised targets; ``steps``: the steps run, fewer than ``cfg.steps`` when it stopped early;
    ``holdout_disagreement``: the median `predict` disagreement on the held-out transitions, NaN without any;
    ``num_train``: the rows training draws from, with ``rollout_steps`` > 1 those that start a rollout). The held-out
    loss that picks the ensemble is the one-step loss whatever ``rollout_steps`` is."""
    import torch

    cfg = cfg or MLPDynamicsConfig()
    cfg.validate()
    n_all = len(data)
    if n_all < 2:
        raise ValueError(f"train_mlp_dynamics: need at least 2 transitions, got {n_all}")
    for name in ("actions", "next_obs", "rewards", "terminated"):
        if len(getattr(data, name)) != n_all:
            raise ValueError(f"train_mlp_dynamics: {name} has {len(getattr(data, name))} rows, obs has {n_all}")
    if not all(np.isfinite(getattr(data, k)).all() for k in ("obs", "actions", "next_obs", "rewards")):
        raise ValueError("train_mlp_dynamics: transitions contain NaN or inf")
    torch.manual_seed(cfg.seed)
    obs_dim, action_dim = data.obs.shape[1], data.actions.shape[1]
    net = DynamicsNet(obs_dim, action_dim, cfg)
    if init is not None:
        shape = (init.obs_dim, init.action_dim, init.cfg.ensemble_size, init.cfg.hidden_dim, init.cfg.num_layers,
                 init.cfg.probabilistic)
        want = (obs_dim, action_dim, cfg.ensemble_size, cfg.hidden_dim, cfg.num_layers, cfg.probabilistic)
        if shape != want:
            raise ValueError(f"train_mlp_dynamics: init is a (obs, action, members, width, layers, probabilistic) = {shape} "
                             f"ensemble, this fit needs {want}")
        net.load_state_dict(init.net.state_dict())
    delta = data.next_obs - data.obs
    net.obs_mean.copy_(torch.as_tensor(data.obs.mean(0)))
    net.obs_std.copy_(torch.as_tensor(_std(data.obs)))
    net.delta_mean.copy_(torch.as_tensor(delta.mean(0)))
    net.delta_std.copy_(torch.as_tensor(_std(delta)))
    net.rew_mean.fill_(float(data.rewards.mean()))
    net.rew_std.fill_(float(data.rewards.std() + 1e-6))
    x = torch.cat([net.standardise(torch.as_tensor(data.obs)),
                   torch.as_tensor(data.actions).clamp(-1, 1)], -1)
    y = torch.cat([(torch.as_tensor(delta) - net.delta_mean) / net.delta_std,
                   ((torch.as_tensor(data.rewards) - net.rew_mean) / net.rew_std)[:, None]], -1)
    done = torch.as_tensor(data.terminated, dtype=torch.float32)
    held = held_out(n_all, cfg.holdout_fraction) if n_all >= 20 else np.zeros(n_all, bool)
    hold, train = np.flatnonzero(held), np.flatnonzero(~held)
    n_hold = len(hold)
    # fused: one kernel for every parameter instead of ~8 small ops each (a fifth of a training step's time here)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
    m = cfg.ensemble_size

    out_weight = torch.ones(obs_dim + 1)
    out_weight[obs_dim] = cfg.reward_weight

    def step_loss(out: torch.Tensor, target: torch.Tensor, rows: torch.Tensor, nll: bool) -> torch.Tensor:
        err2 = (out[..., :obs_dim + 1] - target) ** 2
        if nll:
            lv = net.logvar(out)
            err2 = err2 * (-lv).exp() + lv
        err2 = err2 * out_weight
        bce = torch.nn.functional.binary_cross_entropy_with_logits(out[..., obs_dim + 1], done[rows],
                                                                   reduction="none").mean(-1)
        return err2.mean(-1).mean(-1) + cfg.done_weight * bce

    def loss_of(idx: torch.Tensor, nll: bool = False) -> torch.Tensor:
        """Per-member loss (N,) of the rows idx (N, B): the MSE of delta and reward, or with ``nll`` (a probabilistic
        ensemble's training) their Gaussian negative log-likelihood; plus the termination's cross-entropy."""
        return step_loss(net(x[idx]), y[idx], idx, nll)

    obs_t, next_t = torch.as_tensor(data.obs), torch.as_tensor(data.next_obs)

    def rollout_loss_of(idx: torch.Tensor, nll: bool = False) -> torch.Tensor:
        """`loss_of` averaged over ``cfg.rollout_steps`` steps from the rows idx (N, B), each step from the members'
        own previous prediction (each member rolls its own), scored against the recorded step."""
        o, total = obs_t[idx], 0.0
        for j in range(cfg.rollout_steps):
            rows = idx + j
            out = net(torch.cat([net.standardise(o), x[rows, obs_dim:]], -1))  # x: [obs, actions]
            target = torch.cat([(next_t[rows] - o - net.delta_mean) / net.delta_std, y[rows, obs_dim:]], -1)
            total = total + step_loss(out, target, rows, nll)
            o = o + out[..., :obs_dim] * net.delta_std + net.delta_mean
        return total / cfg.rollout_steps

    def holdout_loss() -> float:
        if not n_hold:
            return float("nan")
        with torch.no_grad():
            return float(loss_of(torch.as_tensor(hold)[None].expand(m, -1)).mean())

    best, best_loss, best_step, last = copy.deepcopy(net.state_dict()), math.inf, 0, math.nan
    if cfg.rollout_steps > 1:
        train = rollout_starts(data, held, cfg.rollout_steps)
        if not len(train):
            raise ValueError(f"train_mlp_dynamics: rollout_steps={cfg.rollout_steps} needs runs of that many "
                             "consecutive transitions (each row's observation the previous row's next one); none")
    train_t = torch.as_tensor(train)
    bs = min(cfg.batch_size, len(train))
    since_best, step = 0, 0
    train_loss = rollout_loss_of if cfg.rollout_steps > 1 else loss_of
    for step in range(1, cfg.steps + 1):
        idx = train_t[torch.randint(0, len(train), (m, bs))]
        loss = train_loss(idx, nll=cfg.probabilistic).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        last = float(loss.detach()) / m
        if n_hold and (step % cfg.eval_every == 0 or step == cfg.steps):
            h = holdout_loss()
            if h < best_loss:
                best, best_loss, best_step, since_best = copy.deepcopy(net.state_dict()), h, step, 0
            else:
                since_best += 1
                if cfg.patience and since_best >= cfg.patience:
                    break
    if n_hold:
        net.load_state_dict(best)
    else:
        best_step = step
    net.eval()
    model = MLPDynamics(net, cfg, obs_dim, action_dim)
    hold_dis = (float(np.median(model.predict(data.obs[hold], data.actions[hold])["disagreement"]))
                if n_hold else float("nan"))
    return model, {
        "holdout_disagreement": hold_dis,
        "steps": step, "best_step": best_step, "holdout_loss": holdout_loss(), "train_loss": last,
        "num_train": int(len(train)), "num_holdout": int(n_hold)}
