"""Grounded synthetic rollouts: branch from real states, roll the world model under a policy.

Each branch starts at a real state (frame history of every camera + proprioception) sampled
from recent real episodes, then runs ``horizon`` imagined steps: the policy acts on the
model's *predicted* frames and proprioception (the real ones at step 0), Gaussian exploration
noise is added, and the model predicts the next frames, proprio, reward, success and
termination. All branches run as one batch. A branch ends early at the first step whose
predicted termination probability exceeds ``cfg.done_threshold`` and leaves the batch there (no
step is computed for a branch that has ended).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from worldsample_common.core.env_protocol import ACTION_DIM
from worldsample_common.core.episode import Episode, Source
from worldsample_common.core.policy_registry import load_checkpoint

from .data import WindowSampler, filter_episodes

# (proprio (B, P), actions (B, A)) -> (next proprio (B, P), uncertainty (B,) or None), raw, numpy
StateModel = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray | None]]


class BatchPolicy(Protocol):
    def act_batch(self, images: dict[str, np.ndarray], proprio: np.ndarray, noise_std: float = 0.0,
                  rng: np.random.Generator | None = None) -> np.ndarray: ...


class RandomPolicy:
    """Uniform random actions in [-1, 1] (a legitimate exploration policy; same API as the learner's)."""

    version = "random"

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)

    def act_batch(self, images: dict[str, np.ndarray], proprio: np.ndarray, noise_std: float = 0.0,
                  rng: np.random.Generator | None = None) -> np.ndarray:
        r = rng if rng is not None else self.rng
        return r.uniform(-1.0, 1.0, size=(len(proprio), ACTION_DIM)).astype(np.float32)


def load_any_policy(spec: str, seed: int = 0) -> Any:
    """``"random"`` -> `RandomPolicy`; otherwise a checkpoint path, loaded by `policy_registry`."""
    if spec == "random":
        return RandomPolicy(seed)
    if not Path(spec).exists():
        raise FileNotFoundError(f"policy {spec!r}: expected 'random' or the path of a policy checkpoint")
    return load_checkpoint(spec)


def generate_branches(
    model,
    start_episodes: list[Episode],
    policy: BatchPolicy,
    num_branches: int,
    horizon: int,
    action_noise: float = 0.1,
    rng: np.random.Generator | None = None,
    policy_version: str | None = None,
    batch_size: int = 256,
    state_model: StateModel | None = None,
) -> list[Episode]:
    """``num_branches`` synthetic episodes of up to ``horizon`` steps branched from real states.

    Returns Episodes with ``source=Source.SYNTHETIC``, per-step ``uncertainty`` (normalised
    ensemble disagreement, see `model`), ``world_model_version=model.version``,
    ``policy_version`` (default: ``policy.version``) and predicted frames as uint8 images.
    ``extras`` name the real start (``start_episode``, ``start_step``, ``start_bag``).
    ``state_model``: ``(proprio (B, P), actions (B, A)) -> (next proprio (B, P), uncertainty (B,) or None)`` (raw,
    numpy), a separate model of the low-dimensional state (MBPO's MLP ensemble,
    `source.VideoSourceConfig.state_model`); the world model then decodes the frames for its prediction, its
    own proprio head is not used, and the state model's uncertainty (when given) is the step's.
    """
    import torch

    _check_rollout_args(policy, action_noise, num_branches=num_branches, horizon=horizon, batch_size=batch_size)
    rng = rng if rng is not None else np.random.default_rng()
    cfg = model.cfg
    kept, rejected = filter_episodes(list(start_episodes), model.cameras, cfg.image_size, model.proprio_dim)
    if not kept:
        detail = "; ".join(f"{n}: {r}" for n, r in rejected[:5]) or "the list is empty"
        raise ValueError(f"no usable start episodes for synthetic rollouts ({detail})")
    pver = policy_version if policy_version is not None else str(getattr(policy, "version", ""))
    sampler = WindowSampler(kept, model.cameras, cfg.history, 1)
    pick = rng.integers(0, sampler.num_transitions, size=num_branches)
    gen = torch.Generator().manual_seed(int(rng.integers(0, 2**31 - 1)))
    out: list[Episode] = []
    model.eval()
    for s in range(0, num_branches, batch_size):
        idx = pick[s: s + batch_size]
        out.extend(_rollout_batch(model, kept, sampler, idx, policy, horizon, action_noise, rng, gen, pver,
                                  state_model))
    return out


def _check_rollout_args(policy: Any, action_noise: float, **counts: Any) -> None:
    """ValueError naming what is wrong: a policy without ``act_batch``, a count (``counts``) that is not a positive int,
    a negative or non-finite ``action_noise``."""
    if not hasattr(policy, "act_batch"):
        raise ValueError(f"policy must have act_batch(images, proprio, ...), got {type(policy).__name__}")
    for name, v in counts.items():
        if not isinstance(v, int | np.integer) or v < 1:
            raise ValueError(f"{name} must be a positive int, got {v!r}")
    if not (np.isfinite(action_noise) and action_noise >= 0):
        raise ValueError(f"action_noise must be a finite number >= 0, got {action_noise!r}")


def _noisy_actions(policy: Any, images: dict[str, np.ndarray], proprio: np.ndarray, action_noise: float,
                   rng: np.random.Generator) -> np.ndarray:
    """The policy's actions (B, A) for a batch, checked, plus Gaussian ``action_noise``, clipped to [-1, 1]."""
    a = np.asarray(policy.act_batch(images, proprio, noise_std=0.0, rng=rng), dtype=np.float32)
    if a.shape != (len(proprio), ACTION_DIM) or not np.isfinite(a).all():
        raise ValueError(f"policy.act_batch returned {a.shape} (finite={np.isfinite(a).all()}), "
                         f"expected finite ({len(proprio)}, {ACTION_DIM})")
    if action_noise > 0:
        a = a + rng.normal(0.0, action_noise, size=a.shape).astype(np.float32)
    return np.clip(a, -1.0, 1.0)


def _rollout_batch(model, kept, sampler, idx, policy, horizon, action_noise, rng, gen, pver,
                   state_model=None) -> list[Episode]:
    """Roll the branches ``idx`` as one batch; a branch leaves the batch at its predicted termination (the
    model only steps the branches still running)."""
    import torch

    cfg = model.cfg
    h = cfg.history
    nb = len(idx)
    win = sampler.window(sampler.anchor_ep[idx], sampler.anchor_t[idx])
    hist = model.encode_history({c: win.frames[c][:, :h] for c in model.cameras}, win.proprio[:, 0])
    proprio = torch.as_tensor(win.proprio[:, 0], device=model.device)
    cur_images = {c: win.frames[c][:, h - 1] for c in model.cameras}  # real frame at the start
    # per branch: frames per camera, proprio (one more than the steps), then one entry per step
    frames = {c: [[cur_images[c][b]] for b in range(nb)] for c in model.cameras}
    props = [[win.proprio[b, 0]] for b in range(nb)]
    acts: list[list] = [[] for _ in range(nb)]
    rews: list[list] = [[] for _ in range(nb)]
    sucs: list[list] = [[] for _ in range(nb)]
    uncs: list[list] = [[] for _ in range(nb)]
    ended = np.zeros(nb, bool)
    alive = np.arange(nb)  # the branches still running, in batch order
    for _ in range(horizon):
        a = _noisy_actions(policy, cur_images, proprio.cpu().numpy().astype(np.float32), action_noise, rng)
        nxt, s_unc = (None, None) if state_model is None else state_model(proprio.cpu().numpy(), a)
        res = model.step(hist, proprio, a, generator=gen,
                         next_proprio=None if nxt is None else np.asarray(nxt, np.float32))
        hist, proprio = res["hist"], res["proprio"]
        cur_images = model.render(hist)
        p_np = proprio.cpu().numpy()
        r_np = res["reward"].cpu().numpy()
        s_np = res["success_prob"].cpu().numpy() > cfg.done_threshold
        t_np = res["terminated_prob"].cpu().numpy() > cfg.done_threshold
        u_np = res["uncertainty"].cpu().numpy() if s_unc is None else np.asarray(s_unc, np.float32)
        for j, b in enumerate(alive):
            for c in model.cameras:
                frames[c][b].append(cur_images[c][j])
            props[b].append(p_np[j])
            acts[b].append(a[j])
            rews[b].append(r_np[j])
            sucs[b].append(s_np[j])
            uncs[b].append(u_np[j])
        ended[alive[t_np]] = True
        if t_np.all():
            break
        if t_np.any():  # drop the ended branches from the batch
            keep = ~t_np
            alive = alive[keep]
            hist = model.select(hist, torch.as_tensor(keep, device=model.device))
            proprio = proprio[torch.as_tensor(keep, device=model.device)]
            cur_images = {c: v[keep] for c, v in cur_images.items()}
    eps: list[Episode] = []
    for b, i in enumerate(idx):
        src = kept[int(sampler.anchor_ep[i])]
        t0 = int(sampler.anchor_t[i])
        n = len(acts[b])
        terminated = np.zeros(n, bool)
        terminated[-1] = bool(ended[b])
        truncated = np.zeros(n, bool)
        truncated[-1] = not terminated[-1]
        eps.append(Episode(
            episode_id=f"{src.task}-syn-{model.version or 'wm'}-{uuid.uuid4().hex[:10]}",
            task=src.task,
            source=Source.SYNTHETIC,
            images={c: np.stack(frames[c][b]) for c in model.cameras},
            proprio=np.stack(props[b]).astype(np.float32),
            actions=np.stack(acts[b]),
            rewards=np.array(rews[b], np.float32),
            terminated=terminated,
            truncated=truncated,
            successes=np.array(sucs[b], bool),
            uncertainty=np.array(uncs[b], np.float32),
            policy_version=pver,
            world_model_version=model.version,
            extras={"start_episode": src.episode_id, "start_step": str(t0),
                    "start_bag": src.extras.get("bag", "") if src.extras else ""},
        ))
    return eps


def generate_state_branches(
    start_episodes: list[Episode],
    policy: BatchPolicy,
    num_branches: int,
    horizon: int,
    state_model: StateModel,
    action_noise: float = 0.1,
    rng: np.random.Generator | None = None,
    policy_version: str | None = None,
    model_version: str = "",
) -> list[Episode]:
    """MBPO's model rollouts, without frames: ``num_branches`` synthetic episodes of ``horizon`` steps, each from a
    real [proprio, state] (``proprio`` of ``start_episodes``, uniform over their steps) stepped by ``state_model``
    alone, under ``policy`` (acting on that vector, ``images`` empty) with Gaussian ``action_noise``.

    For a state learner the frames of `generate_branches` feed nothing it eats (`source.VideoSourceConfig.frames`).
    The episodes have no images, zero rewards and no success (the caller judges the predicted states:
    `source.judged`), ``uncertainty`` = the state model's, and every branch runs the whole horizon (truncated).
    """
    _check_rollout_args(policy, action_noise, num_branches=num_branches, horizon=horizon)
    starts = [e for e in start_episodes if e.length >= 1]
    if not starts:
        raise ValueError("no start episodes with a step for synthetic rollouts")
    rng = rng if rng is not None else np.random.default_rng()
    pver = policy_version if policy_version is not None else str(getattr(policy, "version", ""))
    lengths = np.array([e.length for e in starts])
    flat = rng.integers(0, int(lengths.sum()), size=num_branches)  # uniform over every step of every start episode
    ep_of = np.searchsorted(np.cumsum(lengths), flat, side="right")
    t_of = flat - np.concatenate([[0], np.cumsum(lengths)[:-1]])[ep_of]
    obs = np.stack([starts[e].proprio[t] for e, t in zip(ep_of, t_of, strict=True)]).astype(np.float32)
    traj, acts, uncs = [obs], [], []
    for _ in range(horizon):
        a = _noisy_actions(policy, {}, obs, action_noise, rng)
        nxt, unc = state_model(obs, a)
        obs = np.asarray(nxt, np.float32)
        traj.append(obs)
        acts.append(a)
        uncs.append(np.full(num_branches, np.nan, np.float32) if unc is None else np.asarray(unc, np.float32))
    traj_a, acts_a, uncs_a = np.stack(traj, 1), np.stack(acts, 1), np.stack(uncs, 1)
    truncated = np.zeros(horizon, bool)
    truncated[-1] = True
    eps = []
    for b in range(num_branches):
        src = starts[int(ep_of[b])]
        eps.append(Episode(
            episode_id=f"{src.task}-syn-{model_version or 'state'}-{uuid.uuid4().hex[:10]}", task=src.task,
            source=Source.SYNTHETIC, images={}, proprio=traj_a[b], actions=acts_a[b],
            rewards=np.zeros(horizon, np.float32), terminated=np.zeros(horizon, bool), truncated=truncated.copy(),
            successes=np.zeros(horizon, bool), uncertainty=uncs_a[b], policy_version=pver,
            world_model_version=model_version,
            extras={"start_episode": src.episode_id, "start_step": str(int(t_of[b])),
                    "start_bag": src.extras.get("bag", "") if src.extras else ""}))
    return eps


def write_synthetic_bags(episodes: list[Episode], out_dir: Path | str, name: str | None = None) -> Path:
    """Write synthetic episodes as one rosbag2 (MCAP) directory ``out_dir/name``; returns its path."""
    from worldsample_common.core.bag_io import write_episodes_bag

    if not episodes:
        raise ValueError("write_synthetic_bags: no episodes to write")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    name = name or f"synthetic_{episodes[0].world_model_version or 'wm'}_{uuid.uuid4().hex[:8]}"
    bag = out / name
    if bag.exists():
        raise FileExistsError(f"synthetic bag {bag} already exists; bags are never overwritten")
    return write_episodes_bag(episodes, bag)
