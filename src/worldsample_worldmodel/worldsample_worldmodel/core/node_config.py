"""The world-model node's parameters as one config tree (ROS-free, no torch).

`WorldModelNodeConfig` is `WorldModelServiceConfig` (``run_dir``, ``min_new_episodes``, ...,
``model.*`` = every `WorldModelConfig` field) plus what the node itself schedules. The node
declares one ROS parameter per field (`worldsample_common.nodes.support.declare_config`) and
``worldsample loop`` / the launch files validate parameter files against the same tree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import ClassVar

from worldsample_common.core.franka_interface import WorldSampleTopics

from .service import WorldModelServiceConfig


@dataclass
class WorldModelNodeConfig(WorldModelServiceConfig):
    # model.device / model.num_threads are the service's `device` / `threads`; progress bars are for terminals
    PARAM_SKIP: ClassVar[tuple[str, ...]] = ("progress", "model.device", "model.num_threads")

    status_period_s: float = 2.0  # world_model/status period [s]
    generate_period_s: float = 0.0  # scheduled synthetic batches for the newest policy (0: on request only)
    generate_branches: int = 8  # branches per scheduled batch
    generate_horizon: int = 5  # steps per branch until PPL asks for another horizon on ppl/status
    generate_action_noise: float = 0.1  # Gaussian noise on the policy's actions in synthetic branches
    # the policy scheduled batches are for until policy/checkpoint announces a newer one: "random" or a
    # checkpoint path (a resumed loop passes the newest checkpoint, the one its actor starts with)
    policy: str = "random"
    real_dir: str = ""  # real-episode bags already recorded (a resumed run) join the pools at start-up
    run_id: str = ""  # this run's id: episode events of another run are ignored ("" = every run's)
    # topic names: defaults from the one topic table (worldsample_common.core.franka_interface)
    topic_episodes_recorded: str = WorldSampleTopics.episodes_recorded
    topic_episodes: str = WorldSampleTopics.episodes
    topic_status: str = WorldSampleTopics.world_model_status
    topic_synthetic: str = WorldSampleTopics.synthetic_bags  # EpisodeInfo END per bag of generated branches
    topic_generate: str = WorldSampleTopics.world_model_generate
    topic_policy_checkpoint: str = WorldSampleTopics.policy_checkpoint
    topic_ppl_status: str = WorldSampleTopics.ppl_status

    def validate(self) -> None:
        super().validate()
        replace(self.model, device=self.device, num_threads=self.threads).validate()  # as the service sets them
        o = "WorldModelNodeConfig"
        for name in ("status_period_s", "generate_period_s", "generate_action_noise"):
            v = getattr(self, name)
            lo_ok = v > 0 if name == "status_period_s" else v >= 0
            if not (isinstance(v, int | float) and math.isfinite(v) and lo_ok):
                raise ValueError(f"{o}.{name} must be a finite number {'> 0' if name == 'status_period_s' else '>= 0'}, "
                                 f"got {v!r}")
        for name in ("generate_branches", "generate_horizon"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{o}.{name} must be an int >= 1, got {v!r}")

    def service_config(self) -> WorldModelServiceConfig:
        """The part the core `WorldModelService` takes."""
        from dataclasses import fields

        return WorldModelServiceConfig(**{f.name: getattr(self, f.name) for f in fields(WorldModelServiceConfig)})
