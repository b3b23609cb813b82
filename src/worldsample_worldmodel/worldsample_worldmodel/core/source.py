"""The video world model as a learner `SyntheticSource` for the in-process experiment driver.

`worldsample_learner.drivers.learn.train_in_process` calls, when present:
``observe_real(episode)`` after each real episode, ``fidelity()`` (a number in [0, 1]) and
``generate(policy, num_branches, horizon)``. `VideoWorldModelSource` answers them with the same
`WorldModelService` the ROS node owns: real episodes are pooled (every ``heldout_every``-th held
out), every ``min_new_episodes`` new ones trigger post-training (synchronously: the driver is
single-threaded), branches start from recent real states. ``fidelity()`` is the mean SSIM over
the configured horizons on held-out real episodes of the newest version (None before any).

``state_in_proprio`` (simulation experiments with a state-based learner): the privileged sim
state of each episode rides through the world model appended to the proprioception, so the
model predicts it like proprio (from frames + vector + action) and a state-based policy can act
in imagined branches; generated episodes are split back into ``proprio`` and ``states``. The
frames are still modelled and the uncertainty is still the ensemble's disagreement on them.

``carry_static_state``: state dimensions that never changed within any episode the source has seen
(the goal's or the hole's position: fixed for an episode, set at reset) are carried over from the
branch's real start instead of taken from the model, which lets them drift by millimetres
(`static_state_dims`, `carry_static`; measured in docs/results.md, "The world model's error on the
learner's state").
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from worldsample_common.core.episode import Episode

from .service import WorldModelService, WorldModelServiceConfig


@dataclass
class VideoSourceConfig:
    service: WorldModelServiceConfig = field(default_factory=WorldModelServiceConfig)
    action_noise: float = 0.1
    write_bags: bool = False  # also write every synthetic batch as a bag under the run dir
    state_in_proprio: bool = False  # see the module docstring
    carry_static_state: bool = True  # with state_in_proprio: see the module docstring
    seed: int = 0


STATIC_TOLERANCE = 1e-6  # a state dimension whose range within every episode stays below this is static


def static_state_dims(episodes: list[Episode], static: np.ndarray | None = None) -> np.ndarray | None:
    """Bool mask of the state dimensions constant within every one of ``episodes`` and static in ``static``
    (the mask so far, None for none yet); None while no episode carried states."""
    for e in episodes:
        if e.states is not None and len(e.states):
            still = np.ptp(e.states, axis=0) <= STATIC_TOLERANCE
            static = still if static is None else static & still
    return static


def carry_static(states: np.ndarray, start: np.ndarray, static: np.ndarray | None) -> np.ndarray:
    """``states`` (..., S) with the ``static`` dimensions set to those of ``start`` (..., S) (broadcast over
    the time axis of ``states`` when ``start`` has one fewer)."""
    if static is None or not static.any():
        return states
    out = np.array(states, copy=True)
    out[..., static] = np.asarray(start)[..., static] if np.ndim(start) == out.ndim else \
        np.expand_dims(np.asarray(start), -2)[..., static]
    return out


class VideoWorldModelSource:
    def __init__(self, cfg: VideoSourceConfig | None = None) -> None:
        self.cfg = cfg or VideoSourceConfig()
        self.service = WorldModelService(self.cfg.service)
        self.rng = np.random.default_rng(self.cfg.seed)
        self.rejected: list[str] = []
        self._proprio_dim: int | None = None
        self._static: np.ndarray | None = None  # `static_state_dims` of every episode seen

    def to_model(self, ep: Episode) -> Episode:
        """The episode as the world model sees it (with ``state_in_proprio``: state appended to proprio)."""
        if not self.cfg.state_in_proprio:
            return ep
        if ep.states is None:
            raise ValueError(f"state_in_proprio: episode {ep.episode_id!r} carries no privileged states")
        self._proprio_dim = int(ep.proprio.shape[1])
        self._static = static_state_dims([ep], self._static)
        return replace(ep, proprio=np.concatenate([ep.proprio, ep.states], 1).astype(np.float32), states=None)

    def _from_model(self, ep: Episode) -> Episode:
        if not self.cfg.state_in_proprio:
            return ep
        p = self._proprio_dim
        states = ep.proprio[:, p:]
        if self.cfg.carry_static_state:
            states = carry_static(states, states[0], self._static)
        return replace(ep, proprio=ep.proprio[:, :p], states=states)

    def add_demos(self, episodes: list[Episode]) -> None:
        """Demonstrations for pre-training and for staying in the mix (in-process; the node reads demos_dir)."""
        self.service.demos.extend(self.to_model(e) for e in episodes)

    @property
    def version(self) -> str:
        m = self.service.model
        return m.version if m is not None else ""

    def observe_real(self, episode: Episode) -> None:
        reason = self.service.add_episode(self.to_model(episode))
        if reason:
            self.rejected.append(reason)
        if self.service.should_train():
            self.service.train()

    def fidelity(self) -> float | None:
        fid = self.service.fidelity
        if not fid or not fid.get("ssim"):
            return None
        return float(np.clip(np.mean(fid["ssim"]), 0.0, 1.0))

    def generate(self, policy: Any, num_branches: int, horizon: int) -> list[Episode]:
        if self.service.model is None:
            return []
        if self.cfg.state_in_proprio:
            policy = _StateFromProprio(policy, self._proprio_dim)
        eps, _ = self.service.generate(policy, num_branches, horizon, self.cfg.action_noise,
                                       seed=int(self.rng.integers(1 << 31)), write_bag=self.cfg.write_bags)
        return [self._from_model(e) for e in eps]


class _StateFromProprio:
    """A state-based policy seen by the world model: splits its extended proprio into proprio + state."""

    def __init__(self, policy: Any, proprio_dim: int | None) -> None:
        if proprio_dim is None:
            raise ValueError("state_in_proprio: no real episode observed yet, the proprio size is unknown")
        self.policy, self.p = policy, proprio_dim
        self.version = getattr(policy, "version", "")

    def act_batch(self, images, proprio, noise_std: float = 0.0, rng=None):
        proprio = np.asarray(proprio, np.float32)
        return self.policy.act_batch(images, proprio[:, :self.p], noise_std=noise_std, rng=rng,
                                     state=proprio[:, self.p:])
