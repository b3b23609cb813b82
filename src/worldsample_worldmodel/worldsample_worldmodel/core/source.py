"""The video world model as a learner `SyntheticSource` for the in-process experiment driver.

`worldsample_learner.core.train.train_in_process` calls, when present:
``observe_real(episode)`` after each real episode, ``fidelity()`` (a number in [0, 1]) and
``generate(policy, num_branches, horizon)``. `VideoWorldModelSource` answers them with the same
`WorldModelService` the ROS node owns: real episodes are pooled (every ``heldout_every``-th held
out), every ``min_new_episodes`` new ones trigger post-training (synchronously: the driver is
single-threaded), branches start from recent real states. ``fidelity()`` is the mean SSIM over
the configured horizons on held-out real episodes of the newest version (None before any).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from worldsample_control.core.episode import Episode

from .service import WorldModelService, WorldModelServiceConfig


@dataclass
class VideoSourceConfig:
    service: WorldModelServiceConfig = field(default_factory=WorldModelServiceConfig)
    action_noise: float = 0.1
    write_bags: bool = False  # also write every synthetic batch as a bag under the run dir
    seed: int = 0


class VideoWorldModelSource:
    def __init__(self, cfg: VideoSourceConfig | None = None) -> None:
        self.cfg = cfg or VideoSourceConfig()
        self.service = WorldModelService(self.cfg.service)
        self.rng = np.random.default_rng(self.cfg.seed)
        self.rejected: list[str] = []

    @property
    def version(self) -> str:
        m = self.service.model
        return m.version if m is not None else ""

    def observe_real(self, episode: Episode) -> None:
        reason = self.service.add_episode(episode)
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
        eps, _ = self.service.generate(policy, num_branches, horizon, self.cfg.action_noise,
                                       seed=int(self.rng.integers(1 << 31)), write_bag=self.cfg.write_bags)
        return eps
