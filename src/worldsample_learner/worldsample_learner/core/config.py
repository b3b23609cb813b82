"""Typed configuration of the learner: agent (SAC), replay, PPL and the in-process driver.

No torch import here: cheap to import from the CLI.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import ClassVar

from worldsample_common.core.franka_interface import WorldSampleTopics
from worldsample_common.core.params import require_non_negative, require_positive

OBS_MODES: tuple[str, ...] = ("state", "pixels")
PIXEL_ENCODERS: tuple[str, ...] = ("frozen", "conv")  # AgentConfig.pixel_encoder
HIDDEN_DTYPES: tuple[str, ...] = ("float32", "bfloat16")  # AgentConfig.hidden_dtype


def _unit(owner: str, name: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and 0.0 <= value <= 1.0):
        raise ValueError(f"{owner}.{name} must be in [0, 1], got {value!r}")


@dataclass
class AgentConfig:
    """SAC with a LayerNorm critic ensemble (RLPD / HIL-SERL style).

    ``obs_mode="pixels"``: the cameras' frames + proprio, encoded by ``pixel_encoder``:
    ``"frozen"`` = per-camera spatial-softmax keypoints pre-trained once on frames alone (a spatial
    autoencoder on the demos' and the first real episodes' frames, `core/pixel_encoder.py`) and colour
    blobs fitted on the same frames, then held
    fixed, with its features cached per transition in the replay (an update costs about what a state
    update costs); ``"conv"`` = a conv encoder over the stacked frames (shared by actor and critic,
    trained through the critic loss, random-shift augmented; ~10x the update cost on a CPU).
    ``obs_mode="state"``: an MLP over proprio + privileged sim state (fast CPU experiments).
    """

    obs_mode: str = "state"
    cameras: tuple[str, ...] = ("front", "wrist")
    image_size: int = 64
    proprio_dim: int = 7
    state_dim: int = 0  # privileged state size (state mode); 0 = proprio only
    action_dim: int = 4
    hidden_dim: int = 256
    hidden_layers: int = 2
    pixel_encoder: str = "frozen"  # pixels: "frozen" (pre-trained keypoints, cached) or "conv" (end-to-end)
    feature_dim: int = 64  # conv encoder output per camera set (pixel_encoder "conv")
    encoder_channels: int = 32  # conv encoder channels (pixel_encoder "conv")
    # pixel_encoder "frozen": conv channels and keypoints per camera (features: 2 * keypoints per camera),
    # pre-training (Adam steps, frames per step, learning rate) and the most frames it is given
    frozen_channels: int = 16
    frozen_keypoints: int = 16
    frozen_pretrain_steps: int = 1500
    frozen_pretrain_batch: int = 32
    frozen_pretrain_lr: float = 1e-3
    frozen_pretrain_frames: int = 5000
    # colour-blob keypoints per camera beside the learned ones (3 numbers each: where, how much; 0 = none):
    # fitted on the same frames (`pixel_encoder.ColorBlobs`)
    frozen_color_blobs: int = 8
    # 2 critics and UTD 2: a 20k-step state run of push in ~8 min on a 2-core CPU (`worldsample bench
    # learner` prints the cost of 10 critics / UTD 4: ~5x / ~1.8x per update); RLPD's 10 critics and
    # high UTD are for a GPU
    num_critics: int = 2
    num_min_critics: int = 2  # min over a random subset of this many for the target
    discount: float = 0.97
    # n-step returns in the critic target (1 = plain SAC): values propagate n times faster over
    # the 15-100 step horizons of these tasks; chains stop at episode ends (replay.ReplayStore.gather)
    n_step: int = 3
    tau: float = 0.005
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    alpha_lr: float = 3e-4
    init_alpha: float = 0.1
    # None: -action_dim (SAC's default). -action_dim / 2 kept the policy so wide that its mean
    # action settled at ~0 short of the goal (push: 0.6 success exploring, 0.1 deterministic at 10k)
    target_entropy: float | None = None
    batch_size: int = 256
    utd_ratio: int = 2  # critic updates per environment step
    augment_pad: int = 4  # random-shift padding [px] (pixels)
    demo_fraction: float = 0.5  # of the non-synthetic part of a batch (symmetric sampling)
    # behaviour cloning on demo rows in the actor loss (0 = off, pure RLPD-style SAC), scaled by
    # mean |Q| (TD3+BC); with ``bc_q_filter`` only where the critic rates the demo action higher
    bc_weight: float = 0.0
    bc_q_filter: bool = True
    # the dtype of the actor's and the critics' hidden layers (the 256x256 products, LayerNorms, ReLUs):
    # "float32", or "bfloat16" (input and output layers, weights, losses and optimiser stay float32)
    hidden_dtype: str = "float32"
    device: str = "auto"  # "auto" = cuda if available else cpu
    seed: int = 0

    def validate(self) -> None:
        o = "AgentConfig"
        if self.hidden_dtype not in HIDDEN_DTYPES:
            raise ValueError(f"{o}.hidden_dtype must be one of {HIDDEN_DTYPES}, got {self.hidden_dtype!r}")
        if self.obs_mode not in OBS_MODES:
            raise ValueError(f"{o}.obs_mode must be one of {OBS_MODES}, got {self.obs_mode!r}")
        if self.obs_mode == "pixels" and not self.cameras:
            raise ValueError(f"{o}.cameras must name at least one camera for obs_mode='pixels'")
        if self.pixel_encoder not in PIXEL_ENCODERS:
            raise ValueError(f"{o}.pixel_encoder must be one of {PIXEL_ENCODERS}, got {self.pixel_encoder!r}")
        for name in ("proprio_dim", "action_dim", "hidden_dim", "hidden_layers", "batch_size", "utd_ratio", "n_step",
                     "num_critics", "num_min_critics", "image_size", "feature_dim", "encoder_channels",
                     "frozen_channels", "frozen_keypoints", "frozen_pretrain_steps", "frozen_pretrain_batch",
                     "frozen_pretrain_frames"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{o}.{name} must be an int >= 1, got {v!r}")
        if not isinstance(self.frozen_color_blobs, int) or self.frozen_color_blobs < 0:
            raise ValueError(f"{o}.frozen_color_blobs must be an int >= 0, got {self.frozen_color_blobs!r}")
        if not isinstance(self.state_dim, int) or self.state_dim < 0:
            raise ValueError(f"{o}.state_dim must be an int >= 0, got {self.state_dim!r}")
        if self.num_min_critics > self.num_critics:
            raise ValueError(f"{o}.num_min_critics ({self.num_min_critics}) must be <= num_critics ({self.num_critics})")
        require_positive(o, **{n: getattr(self, n) for n in ("actor_lr", "critic_lr", "alpha_lr", "init_alpha", "tau",
                                                             "frozen_pretrain_lr")})
        _unit(o, "discount", self.discount)
        require_non_negative(o, bc_weight=self.bc_weight)
        _unit(o, "demo_fraction", self.demo_fraction)
        if self.device not in ("auto", "cpu", "cuda") and not str(self.device).startswith("cuda:"):
            raise ValueError(f"{o}.device must be 'auto', 'cpu' or 'cuda[:N]', got {self.device!r}")


@dataclass
class ReplayConfig:
    capacity: int = 200_000  # per store, in memory (oldest dropped first; the disk keeps everything)
    synthetic_capacity: int = 50_000  # synthetic data goes stale: a smaller window
    chunk_size: int = 2_000  # transitions per npz chunk on disk
    store_images: bool | None = None  # None: only when obs_mode == "pixels"


OVERESTIMATION_REFERENCES = ("branch_return", "branch_start", "batch")  # PPLConfig.overestimation_reference
SHARE_BY = ("pace", "fidelity")  # PPLConfig.share_by
PROGRESS_BY = ("success", "return")  # PPLConfig.progress_by


@dataclass
class PPLConfig:
    """Policy-Paced Learning: which synthetic transitions are trusted and how many are used.

    Trust of a synthetic transition = ``exp(-u / uncertainty_scale) * exp(-v / value_risk_scale)``
    with ``u`` the world model's uncertainty and ``v`` the value-inflation risk (critic-ensemble
    disagreement + excess of its Q over the largest Q on real data, both normalised by the real
    Q spread). Admission needs ``trust >= threshold``. The pace ``p`` in [0, 1] combines real
    progress (recent success rate and its trend) and world-model fidelity, and is damped by the
    overestimation indicator; the threshold falls, and the synthetic share and rollout horizon
    grow, with ``p``.
    """

    mode: str = "ppl"
    # selection
    # the world model reports uncertainty normalised so that 1.0 = as uncertain as on typical real
    # transitions; with scale 4.5 such a transition keeps exp(-1/4.5) = 0.80 of its trust, so the strictest
    # threshold (threshold_max, pace 0) admits what the model is as sure of as typical real data and the loosest
    # (threshold_min) up to 5.4x that. Scale 2 (before issue 22's fourth sitting) admitted only u <= 0.45 at
    # pace 0: 26 % of the MLP state model's branches on push, where admitting all of them paid (docs/results.md)
    uncertainty_scale: float = 4.5
    value_risk_scale: float = 1.0
    threshold_max: float = 0.8  # admission threshold at pace 0 (strict)
    threshold_min: float = 0.3  # admission threshold at pace 1
    fixed_threshold: float = 0.5  # "selection" mode (no pacing)
    # schedule
    share_min: float = 0.05
    share_max: float = 0.5
    # what sets the synthetic share: "pace" (share_min..share_max with the pace: progress and fidelity) or "fidelity"
    # (share_max x the world model's fidelity: its skill over doing nothing bounds how much of the batch its data
    # takes, so a model no better than copying adds nothing; progress then paces the horizon and the threshold)
    share_by: str = "pace"
    naive_share: float = 0.5  # "naive" and "selection" modes
    horizon_min: int = 3
    horizon_max: int = 15
    naive_horizon: int = 10
    progress_weight: float = 0.6
    fidelity_weight: float = 0.4
    trend_gain: float = 2.0  # success-rate slope per window added to progress
    success_window: int = 20  # real episodes in the progress estimate
    # what progress reads: "success" (the recent real success rate and its rising trend) or "return" (the larger of
    # that and how far the recent real episodes' mean per-step reward has come from the first ones' towards the
    # demos': (r_recent - r_first) / (r_demo - r_first), clipped to [0, 1]). "return" paces a task whose first
    # successes have to come from the synthetic data (sort: with "success" the pace stays at fidelity's weight)
    progress_by: str = "success"
    return_baseline_episodes: int = 5  # real episodes whose mean per-step reward is r_first ("return")
    overestimation_tolerance: float = 0.5  # normalised q_syn - q_real at which the share reaches 0
    # how the overestimation signal (q_synthetic - q_real) / real Q spread is measured, with the current critic on
    # the newest ``reference_window`` admitted synthetic transitions (`Learner.branch_q`), so a stopped share is
    # re-measured every window. "branch_return": per imagined step k, q_real = Q(s_0, a_0) of its branch's real
    # start, q_synthetic = the branch's discounted imagined rewards to k plus discount^k Q(s_k, a_k): an exact
    # model reads ~0 whatever the policy's progress along the branch, a model whose imagined states pay more
    # than reality reads > 0, one that pays less reads < 0. "branch_start" (issue 22, second sitting): mean Q of
    # the starts vs mean Q of the imagined steps; a policy that makes progress within its branches reads > 0
    # with exact data too (measured on push with the MLP state: +0.54, share damped; docs/results.md). "batch"
    # (before issue 22): the mean Q on the real and on the synthetic rows of the training batches; exact
    # on-policy branches read as inflated and at share 0 the penalty cannot fall
    overestimation_reference: str = "branch_return"
    reference_window: int = 2000
    initial_fidelity: float = 0.0  # until the world model reports one

    def validate(self) -> None:
        o = "PPLConfig"
        from .ppl import PPL_MODES  # the registered strategies (ppl.py imports this module)

        if self.mode not in PPL_MODES:
            raise ValueError(f"{o}.mode must be one of {PPL_MODES}, got {self.mode!r}")
        require_positive(o, **{n: getattr(self, n)
                                for n in ("uncertainty_scale", "value_risk_scale", "overestimation_tolerance")})
        for name in ("threshold_max", "threshold_min", "fixed_threshold", "share_min", "share_max",
                     "naive_share", "progress_weight", "fidelity_weight", "initial_fidelity"):
            _unit(o, name, getattr(self, name))
        if self.threshold_min > self.threshold_max:
            raise ValueError(f"{o}.threshold_min ({self.threshold_min}) must be <= threshold_max ({self.threshold_max})")
        if self.share_min > self.share_max:
            raise ValueError(f"{o}.share_min ({self.share_min}) must be <= share_max ({self.share_max})")
        if self.progress_by not in PROGRESS_BY:
            raise ValueError(f"{o}.progress_by must be one of {PROGRESS_BY}, got {self.progress_by!r}")
        if self.share_by not in SHARE_BY:
            raise ValueError(f"{o}.share_by must be one of {SHARE_BY}, got {self.share_by!r}")
        if self.overestimation_reference not in OVERESTIMATION_REFERENCES:
            raise ValueError(f"{o}.overestimation_reference must be one of {OVERESTIMATION_REFERENCES}, "
                             f"got {self.overestimation_reference!r}")
        for name in ("horizon_min", "horizon_max", "naive_horizon", "success_window", "reference_window",
                     "return_baseline_episodes"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{o}.{name} must be an int >= 1, got {v!r}")
        if self.horizon_min > self.horizon_max:
            raise ValueError(f"{o}.horizon_min ({self.horizon_min}) must be <= horizon_max ({self.horizon_max})")


@dataclass
class LearnConfig:
    """The in-process training driver (`train_in_process`)."""

    agent: AgentConfig = field(default_factory=AgentConfig)
    replay: ReplayConfig = field(default_factory=ReplayConfig)
    ppl: PPLConfig = field(default_factory=PPLConfig)
    env_steps: int = 20_000  # real environment steps
    warmup_steps: int = 500  # env steps before updates start (random actions if no demos)
    eval_every: int = 2_000  # env steps
    eval_episodes: int = 10
    synthetic_every: int = 1_000  # env steps between synthetic-branch requests
    synthetic_branches: int = 16
    synthetic_noise: float = 0.1  # action noise for synthetic branches
    checkpoint_every_env_steps: int = 5_000  # environment steps between policy checkpoints; 0 = only at the end
    log_every: int = 500  # env steps between metric rows / PPL windows
    # env steps between snapshots of the whole run (at the next episode end; `drivers.snapshot`), which
    # ``worldsample learn --resume`` and a resumed experiment go on from; 0 = none
    snapshot_every_env_steps: int = 2_000
    seed: int = 0

    def validate(self) -> None:
        self.agent.validate()
        self.ppl.validate()
        for name in ("env_steps", "eval_every", "eval_episodes", "synthetic_every", "synthetic_branches", "log_every"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"LearnConfig.{name} must be an int >= 1, got {v!r}")
        for name in ("warmup_steps", "checkpoint_every_env_steps", "snapshot_every_env_steps"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 0:
                raise ValueError(f"LearnConfig.{name} must be an int >= 0, got {v!r}")


@dataclass
class LearnerNodeConfig:
    """The learner node's parameters (``learner`` in launch/config/loop.yaml), one per field; nested
    ``ppl`` gives ``ppl.threshold_max`` etc. (every `PPLConfig` field; its mode is ``mode``)."""

    PARAM_SKIP: ClassVar[tuple[str, ...]] = ("ppl.mode",)  # the learner's `mode` parameter decides it

    task: str = "push"
    mode: str = PPLConfig.mode  # learner mode (ablations): rl-only, naive, selection, schedule, ppl
    obs_mode: str = "pixels"  # pixels: the cameras' frames + proprio (see pixel_encoder); state: MLP over proprio + state
    # pixels: "frozen" = keypoints pre-trained on the demos' and first real episodes' frames at the first update
    # (frozen_pretrain_steps; the node does nothing else meanwhile), then fixed, features cached in the replay;
    # "conv" = a conv encoder trained end-to-end by the critic (~10x the update cost on a CPU)
    pixel_encoder: str = AgentConfig.pixel_encoder
    frozen_pretrain_steps: int = AgentConfig.frozen_pretrain_steps  # frozen pixel encoder: pre-training Adam steps
    cameras: tuple[str, ...] = ("front", "wrist")
    image_size: int = 64  # camera image size [px]
    proprio_dim: int = 7
    state_dim: int = 0  # privileged sim state size (state mode); 0 = proprio only
    batch_size: int = 256  # SAC batch size
    utd_ratio: int = 1  # critic updates per environment step
    out_dir: str = "runs/loop/learner"  # checkpoints/, replay/, ppl.csv, config.json
    demos_dir: str = ""  # demo bags loaded at start-up
    # the run's real-episode bags (RUN/bags): every complete bag there is loaded at start-up and on
    # each rescan, exactly once (the replay's keys skip what it already holds), so the learner gets
    # every real episode even when it missed the volatile `episodes/recorded` event or restarted
    real_dir: str = ""
    rescan_period_s: float = 3.0  # seconds between rescans of real_dir
    min_transitions: int = 200  # real + demo transitions before training starts
    updates_per_tick: int = 1  # learner updates per work tick
    train_period_s: float = 0.05  # work tick period [s]
    status_period_s: float = 2.0  # ppl/status period [s]
    checkpoint_every_updates: int = 500  # learner updates between policy checkpoints
    # learner updates between saves of out_dir/learner_state.pt (agent, optimisers, normaliser, replay
    # flush, PPL state): a learner killed outright resumes at most this many updates back
    state_every_updates: int = 200
    log_decisions: bool = True  # out_dir/ppl_decisions.csv: PPL's trust and admission of every synthetic transition
    device: str = "auto"  # torch device: auto, cpu, cuda[:N]
    seed: int = 0
    # this run's id: real transitions and episode events of another run (their ``run_id`` differs) are
    # dropped and counted, like arm control and the recorder do ("" = take every run's)
    run_id: str = ""
    ppl: PPLConfig = field(default_factory=PPLConfig)  # Policy-Paced Learning (thresholds, scales, share, horizon)
    # topic names: defaults from the one topic table (worldsample_common.core.franka_interface)
    topic_synthetic_bags: str = WorldSampleTopics.synthetic_bags
    topic_episodes: str = WorldSampleTopics.episodes
    topic_episodes_recorded: str = WorldSampleTopics.episodes_recorded
    topic_world_model_status: str = WorldSampleTopics.world_model_status
    topic_policy_checkpoint: str = WorldSampleTopics.policy_checkpoint
    topic_ppl_status: str = WorldSampleTopics.ppl_status

    def agent_config(self) -> AgentConfig:
        return AgentConfig(obs_mode=self.obs_mode, cameras=tuple(self.cameras), image_size=self.image_size,
                           proprio_dim=self.proprio_dim, state_dim=self.state_dim, batch_size=self.batch_size,
                           utd_ratio=self.utd_ratio, device=self.device, seed=self.seed,
                           pixel_encoder=self.pixel_encoder, frozen_pretrain_steps=self.frozen_pretrain_steps)

    def ppl_config(self) -> PPLConfig:
        return replace(self.ppl, mode=self.mode)

    def validate(self) -> None:
        self.agent_config().validate()
        self.ppl_config().validate()
        o = "LearnerNodeConfig"
        if not isinstance(self.min_transitions, int) or self.min_transitions < 0:
            raise ValueError(f"{o}.min_transitions must be an int >= 0, got {self.min_transitions!r}")
        for name in ("updates_per_tick", "checkpoint_every_updates", "state_every_updates"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{o}.{name} must be an int >= 1, got {v!r}")
        require_positive(o, **{n: getattr(self, n) for n in ("rescan_period_s", "train_period_s", "status_period_s")})


@dataclass
class SuccessNodeConfig:
    """``success_detector`` (real arm / Gazebo): reward and success from the success classifier and the
    human override (`worldsample_learner.core.success_classifier.SuccessDetector`)."""

    classifier: str = ""  # success classifier checkpoint; "" = human override only
    confirm_frames: int = 2  # consecutive positive frames before success is declared
    terminate_on_success: bool = True  # success ends the episode (the reward convention's terminal step)
    cameras: tuple[str, ...] = ("front", "wrist")  # used when there is no classifier (publish on their frames)
    device: str = "cpu"  # torch device of the classifier
    topic_override: str = "success/override"  # std_msgs/Bool from a key press or button
    topic_reward: str = "success/reward"  # published in the simulator's sim/reward format
    topic_episodes: str = WorldSampleTopics.episodes

    def validate(self) -> None:
        if self.confirm_frames < 1:
            raise ValueError(f"SuccessNodeConfig.confirm_frames must be >= 1, got {self.confirm_frames}")
