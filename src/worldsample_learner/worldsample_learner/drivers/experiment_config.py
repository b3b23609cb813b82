"""`worldsample experiment`'s configuration: run variants, the presets (`CONFIGS`) and the command line.

A preset is a few overrides of `ExperimentConfig`'s defaults; the learner, PPL and world-model
settings it does not name come from their own config dataclasses (`AgentConfig`, `PPLConfig`,
`WorldModelConfig`), so one default exists for each.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..core.config import LearnConfig

MODES = ("rl-only", "naive", "ppl")  # the default comparison (any of worldsample_learner's PPL_MODES may be asked for)
BASELINE = MODES[0]  # what the others are compared against (the paper's RL-only baseline)
ORACLE_PREFIX = "oracle-"  # a run variant "oracle-ppl": synthetic data from the perfect world model
UTD_SUFFIX = "-utd"  # a run variant "ppl-utd4": this many critic updates per real step instead of the config's


def parse_variant(variant: str) -> tuple[str, str, int | None]:
    """A run variant -> (PPL mode, synthetic source "video" | "oracle", UTD or None for the config's).

    ``ppl`` (the video world model), ``oracle-ppl`` (the oracle), ``rl-only-utd4``, ``oracle-naive-utd4``:
    the variant names the run's directory and its row in every table."""
    from worldsample_learner.core.ppl import PPL_MODES

    rest, source, utd = variant, "video", None
    if rest.startswith(ORACLE_PREFIX):
        rest, source = rest[len(ORACLE_PREFIX):], "oracle"
    if UTD_SUFFIX in rest:
        rest, _, n = rest.rpartition(UTD_SUFFIX)
        if not n.isdigit() or int(n) < 1:
            raise ValueError(f"run variant {variant!r}: '{UTD_SUFFIX}N' needs an int N >= 1")
        utd = int(n)
    if rest not in PPL_MODES:
        raise ValueError(f"run variant {variant!r}: mode {rest!r} unknown; expected [oracle-]MODE[-utdN] with MODE "
                         f"one of {PPL_MODES}")
    if source == "oracle" and rest == BASELINE:
        raise ValueError(f"run variant {variant!r}: {BASELINE} uses no synthetic data, so no oracle")
    return rest, source, utd


def uses_video_model(variant: str) -> bool:
    from worldsample_learner.core.ppl import uses_synthetic

    mode, source, _ = parse_variant(variant)
    return uses_synthetic(mode) and source == "video"


@dataclass
class ExperimentConfig:
    """One configuration of both comparisons. ``small`` fits a 2-core CPU in < 30 min; ``full`` wants a GPU."""

    name: str = "small"
    tasks: tuple[str, ...] = ("push", "peg_insertion")
    modes: tuple[str, ...] = MODES  # run variants [oracle-]MODE[-utdN] (`parse_variant`)
    # the RL-only variant the report compares every other variant against ("vs RL-only", steps to its final, the
    # paper's figures): rl-only at the config's UTD, or e.g. rl-only-utd4, RL-only at the synthetic modes' UTD
    baseline: str = BASELINE
    seeds: tuple[int, ...] = (0, 1, 2)
    env_steps: int = 4000  # real environment steps per run
    eval_every: int = 1000  # real steps between evaluations (deterministic policy)
    eval_episodes: int = 10  # episodes per evaluation, on fixed seeds
    demos: int = 10  # scripted-expert demonstrations, the same for every run of a task
    max_steps: int = 40  # episode length (0: the task default)
    image_size: int = 32  # camera frames the world model learns from [px]
    cameras: tuple[str, ...] = ("front",)
    # learner (state-based SAC; the rest is AgentConfig's)
    batch_size: int = 128
    num_critics: int = 2  # critic ensemble size
    utd_ratio: int = 2  # critic updates per real step (a variant's -utdN overrides it)
    hidden_dim: int = 256  # MLP width
    synthetic_every: int = 250  # real steps between synthetic requests
    synthetic_branches: int = 32  # branches per request (their horizon is PPL's)
    # world model (the rest is WorldModelConfig's / WorldModelServiceConfig's)
    wm_pretrain_steps: int = 400  # on the demos, once per task
    wm_posttrain_steps: int = 150  # per post-training on real episodes
    wm_min_new_episodes: int = 20  # new real episodes that trigger a post-training
    wm_latent_channels: int = 16
    wm_batch_size: int = 16
    wm_rollout_steps: int = 4  # open-loop steps in the training loss
    # label an imagined step by the task's success detector and reward on its predicted state (the rule every
    # real step gets, `judge_states`); False: by the world model's own outcome head
    wm_judge: bool = True
    wm_state_model: str = "video"  # VideoSourceConfig.state_model: "video" (its own head) or "mlp" (MBPO's ensemble)
    audit_synthetic: bool = False  # video runs: replay every branch in the simulator, log its error (`SyntheticAudit`)
    # video runs, a diagnostic: the audit's replay also relabels every branch, which keeps the model's imagined states
    # but takes the simulator's reward, success and termination for the same actions from the same real start (is
    # what is left between the model and the oracle in the states or in the labels?); implies audit_synthetic
    oracle_labels: bool = False
    # the degraded oracle (`core.sim.oracle`; oracle- variants): model error of one kind, everything else exact
    oracle_object_noise: float = 0.0  # std [m] of the per-step noise on the objects' x, y in imagined steps
    oracle_motion_scale: float = 1.0  # fraction of each imagined step's object motion that happens
    ppl: dict[str, Any] = field(default_factory=dict)  # PPLConfig fields for every run (`--set ppl.FIELD=VALUE`)
    # the MLP state model does not see the task's placement entries (`Task.placement_labels`: absolute x, y on the
    # table, offsets to a drawn target), so it learns one law for the whole table (`tasks.model_blind_dims`), and
    # its loss leaves out the reward and termination, which the runs never read from it (wm_mlp reward_weight and
    # done_weight 0 unless set)
    wm_mlp_translation_free: bool = False
    # MLPDynamicsConfig fields of the MLP state model (wm_state_model "mlp"; `--set wm_mlp.FIELD=VALUE`)
    wm_mlp: dict[str, Any] = field(default_factory=dict)
    # VideoSourceConfig fields (`--set wm_source.FIELD=VALUE`, e.g. uncertainty_over=branch_mean)
    wm_source: dict[str, Any] = field(default_factory=dict)
    wm_proprio_step_scaled: bool = False  # WorldModelConfig.proprio_step_scaled (the measured trade-off is documented there)
    wm_real_episodes: int = 20  # worldmodel experiment: "real" rollouts (noisy expert) arriving during the loop
    wm_real_noise: float = 0.6  # their action noise (std on dx, dy, dz)
    wm_heldout_noise: float = 0.3  # the held-out policy's action noise (a policy neither model trained on)
    heldout_episodes: int = 8  # held-out rollouts the world models are scored on
    horizons: tuple[int, ...] = (1, 4, 8)  # fidelity / state-error horizons [steps]
    # real steps between snapshots of a run (`drivers.snapshot`): a run stopped part-way (a sitting's end) goes on
    # from its last one when the experiment is started again; 0: a stopped run starts over
    snapshot_every: int = LearnConfig.snapshot_every_env_steps
    jobs: int = 2  # runs in parallel (processes, one torch thread each)
    device: str = "cpu"

    def runs(self) -> list[dict[str, Any]]:
        """Seed-major: every variant's first seed runs before any second seed, so an experiment stopped
        part-way (and resumed later) already has a comparison, on fewer seeds."""
        return [{"task": t, "mode": m, "seed": s} for t in self.tasks for s in self.seeds for m in self.modes]


CONFIGS: dict[str, ExperimentConfig] = {
    "small": ExperimentConfig(),
    # the RL-only baseline at the issue-10 budget: full-length episodes, 20k real steps, 3 seeds (~1 h here)
    "rl": ExperimentConfig(name="rl", modes=(BASELINE,), env_steps=20_000, eval_every=2_000, max_steps=0,
                           batch_size=256),
    # issue 22's recipe where synthetic data pays (docs/results.md, fifth sitting): MBPO's lever, ~5x the synthetic
    # volume of "rl" (64 branches every 100 real steps, ~6 imagined transitions per real step) and the update budget it
    # makes safe (UTD 4 for every mode, RL-only included), the MLP state model; 10k real steps (a PPL run ~25-30 min
    # with two sharing the 2 cores). The variants name their UTD, so their runs and rows read like the other presets'.
    "mbpo": ExperimentConfig(name="mbpo", modes=("rl-only-utd4", "naive-utd4", "ppl-utd4"), env_steps=10_000,
                             eval_every=1_000, max_steps=0, batch_size=256, utd_ratio=4, synthetic_every=100,
                             synthetic_branches=64, wm_state_model="mlp"),
    # issue 22's must-show budget with the recipe that met push's target (docs/results.md, "Translation-free
    # inputs"): 20k real steps evaluated every 1k; MBPO's volume (64 branches every 100 real steps) at UTD 4; RL-only
    # at UTD 2 (the baseline, its better UTD on push) and at PPL's UTD 4; the MLP state model re-fitted with weight
    # decay 1e-3 and blind to where the scene sits. ~50 min a PPL run, ~15 min an RL-only one, here. Peg insertion's
    # runs also take --set wm_source.imagined_success=bootstrap (docs/results.md, "Why PPL plateaued on peg").
    "ppl20k": ExperimentConfig(name="ppl20k", tasks=("push",), modes=(BASELINE, "rl-only-utd4", "ppl-utd4"),
                               env_steps=20_000, eval_every=1_000, max_steps=0, batch_size=256, synthetic_every=100,
                               synthetic_branches=64, wm_state_model="mlp", wm_mlp={"weight_decay": 1e-3},
                               wm_mlp_translation_free=True, jobs=1),
    # the world-model comparison at the issue-13 size: 64 px, both cameras, 2 loop iterations (~40 min here)
    "wm": ExperimentConfig(name="wm", demos=20, max_steps=0, image_size=64, cameras=("front", "wrist"),
                           wm_pretrain_steps=800, wm_posttrain_steps=200, wm_min_new_episodes=10,
                           wm_latent_channels=32, wm_batch_size=12, wm_rollout_steps=8, heldout_episodes=8),
    "full": ExperimentConfig(name="full", tasks=("push", "peg_insertion", "pick_place"), seeds=(0, 1, 2, 3, 4),
                             env_steps=30_000, eval_every=2_000, eval_episodes=20, demos=20, max_steps=0,
                             image_size=64, cameras=("front", "wrist"), batch_size=256, num_critics=10, utd_ratio=2,
                             synthetic_every=1_000, synthetic_branches=64, wm_pretrain_steps=3000,
                             wm_posttrain_steps=600, wm_min_new_episodes=10, wm_latent_channels=32, wm_batch_size=32,
                             heldout_episodes=20,
                             jobs=1, device="auto"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("which", choices=("policy", "worldmodel", "modelerror"),
                        help="which comparison (modelerror: the world model's error on the state, issue 22)")
    parser.add_argument("--config", choices=tuple(CONFIGS), default="small")
    parser.add_argument("--out", required=True, type=Path, help="experiment directory")
    parser.add_argument("--jobs", type=int, default=None, help="parallel runs (default: the config's)")
    parser.add_argument("--env-steps", type=int, default=None, help="override the config's real steps per run")
    parser.add_argument("--eval-every", type=int, default=None, help="override the real steps between evaluations")
    parser.add_argument("--seeds", default=None, help="override the seeds, e.g. 0,1,2")
    parser.add_argument("--tasks", default=None, help="override the tasks, e.g. push,peg_insertion")
    parser.add_argument("--modes", default=None,
                        help="override the run variants, e.g. rl-only,ppl,oracle-ppl,rl-only-utd4: [oracle-]MODE[-utdN], "
                             "MODE one of worldsample_learner's PPL modes; oracle- = the perfect world model as the "
                             "synthetic source; -utdN = N critic updates per real step")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override any ExperimentConfig field, e.g. --set wm_judge=false --set "
                             "synthetic_branches=64 (repeatable; tuples comma-separated)")
    parser.add_argument("--report", action="store_true",
                        help="policy: only render the tables and plots from the runs finished so far (an experiment "
                             "spanning several sittings; unfinished runs are listed, not run)")
    parser.add_argument("--report-from", action="append", default=[], type=Path, metavar="DIR",
                        help="with --report: a run not finished under --out is taken from this experiment directory "
                             "when it finished there (the same experiment run as several commands, e.g. one per "
                             "seed; repeatable)")


def config_from_args(args: argparse.Namespace) -> ExperimentConfig:
    cfg = CONFIGS[args.config]
    over: dict[str, Any] = {}
    if args.jobs is not None:
        over["jobs"] = max(1, args.jobs)
    if args.env_steps is not None:
        over["env_steps"] = args.env_steps
        over["eval_every"] = min(cfg.eval_every, args.env_steps)
    if args.eval_every is not None:
        over["eval_every"] = max(1, args.eval_every)
    if args.seeds:
        over["seeds"] = tuple(int(s) for s in args.seeds.split(","))
    if args.tasks:
        over["tasks"] = tuple(t.strip() for t in args.tasks.split(",") if t.strip())
    if getattr(args, "modes", None):
        modes = tuple(m.strip() for m in args.modes.split(",") if m.strip())
        for m in modes:
            parse_variant(m)  # a clear error for a bad one
        over["modes"] = modes
    for item in getattr(args, "set", None) or []:
        key, value = parse_override(item)
        group, dot, name = key.partition(".")
        if dot:
            over[group] = {**over.get(group, getattr(cfg, group)), name: value}
        else:
            over[key] = value
    out = replace(cfg, **over)
    if parse_variant(out.baseline)[:2] != (BASELINE, "video"):
        raise ValueError(f"--set baseline={out.baseline}: the baseline is an RL-only variant ({BASELINE}[-utdN])")
    own = {"wm_source": {"state_model": out.wm_state_model, "state_in_proprio": True}}  # as `run_one` builds it
    for group, make in _sub_configs().items():  # a bad value fails here, not in every run
        if getattr(out, group):
            make(**{**getattr(out, group), **own.get(group, {})}).validate()
    if out.wm_source.get("frames", True) is False and not out.wm_judge:
        raise ValueError("--set wm_source.frames=false needs wm_judge (the state model predicts no reward)")
    return out


def _sub_configs() -> dict[str, type]:
    """The ExperimentConfig dict fields that hold another config's fields (``--set GROUP.FIELD=VALUE``)."""
    from worldsample_worldmodel.core.mlp_dynamics import MLPDynamicsConfig
    from worldsample_worldmodel.core.source import VideoSourceConfig

    from worldsample_learner.core.config import PPLConfig

    return {"ppl": PPLConfig, "wm_mlp": MLPDynamicsConfig, "wm_source": VideoSourceConfig}


# sub-config fields the run sets itself (its variant, seed, the fields with their own ExperimentConfig entry)
_RUN_OWN = {("ppl", "mode"), ("wm_mlp", "seed"), ("wm_mlp", "ignore_inputs"), ("wm_source", "seed"),
            ("wm_source", "state_model"), ("wm_source", "state_in_proprio")}


def parse_override(item: str) -> tuple[str, Any]:
    """``FIELD=VALUE`` -> (field, value typed like the field's default in `ExperimentConfig`); ``GROUP.FIELD=VALUE``
    (``ppl.``: a `PPLConfig` field, ``wm_mlp.``: an `MLPDynamicsConfig` one, ``wm_source.``: a
    `VideoSourceConfig` one) -> ("GROUP.FIELD", value typed like that config's default)."""
    from dataclasses import fields

    subs = _sub_configs()
    key, sep, raw = item.partition("=")
    key, raw = key.strip(), raw.strip()
    base = ExperimentConfig()
    kinds = {f.name: type(getattr(base, f.name)) for f in fields(base) if f.name not in subs}
    for group, make in subs.items():
        defaults = make()
        sub_kinds = {f.name: type(getattr(defaults, f.name)) for f in fields(defaults)}
        kinds.update({f"{group}.{name}": kind for name, kind in sub_kinds.items()
                      if (group, name) not in _RUN_OWN and kind in (bool, int, float, str)})
    if not sep or key not in kinds:
        raise ValueError(f"--set {item!r}: expected FIELD=VALUE with FIELD one of {sorted(kinds)}")
    kind = kinds[key]
    try:
        if kind is bool:
            if raw.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError("expected true or false")
            return key, raw.lower() in ("true", "1", "yes")
        if kind is tuple:
            return key, tuple(v.strip() for v in raw.split(",") if v.strip())
        return key, kind(raw)
    except ValueError as exc:
        raise ValueError(f"--set {item!r}: {key} takes a {kind.__name__} ({exc})") from None


def command_line(args: argparse.Namespace) -> str:
    parts = ["worldsample experiment", args.which, "--config", args.config, "--out", str(args.out)]
    for flag in ("jobs", "env_steps", "eval_every", "seeds", "tasks", "modes"):
        v = getattr(args, flag)
        if v is not None:
            parts += [f"--{flag.replace('_', '-')}", str(v)]
    for item in getattr(args, "set", None) or []:
        parts += ["--set", item]
    if getattr(args, "report", False):
        parts.append("--report")
    for d in getattr(args, "report_from", None) or []:
        parts += ["--report-from", str(d)]
    return " ".join(parts)
