"""Record scripted-expert demonstrations as rosbag2 DEMO bags, and check expert success rates.

``record_demos`` runs the task's scripted expert (`core.experts`) in the MuJoCo task
(`core.sim`), writes each kept episode as one bag ``<out_dir>/<task>_demo_s<seed>`` through
`core.bag_io.write_episode_bag` (source DEMO), and writes ``demos_summary.json`` (per-episode
seed, success, length, return, bag) next to them. Only successful episodes are kept unless
``keep_failures``.
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from worldsample_common.core.episode import Source
from worldsample_common.core.files import json_dumps

from .sim.config import TASKS, EnvConfig


@dataclass
class DemoReport:
    task: str
    episodes: int
    success_rate: float
    n_written: int
    bag_dirs: list[Path] = field(default_factory=list)
    mean_length: float = 0.0
    seconds: float = 0.0


class ExpertPolicy:
    """Adapts an `Expert` (``act(obs, env)``) to the ``policy(obs)`` signature of `run_episode`.

    ``action_noise`` > 0 adds Gaussian noise of that standard deviation to the translation part
    of every action (more varied demonstrations, e.g. for world-model training).
    """

    def __init__(self, task: str, env: Any, action_noise: float = 0.0, seed: int = 0) -> None:
        import numpy as np

        from .experts import make_expert

        if not (action_noise >= 0.0 and np.isfinite(action_noise)):
            raise ValueError(f"action_noise must be a finite value >= 0, got {action_noise!r}")
        self.expert = make_expert(task)
        self.env = env
        self.action_noise = float(action_noise)
        self._rng = np.random.default_rng(seed)

    def reset(self) -> None:
        self.expert.reset()

    def __call__(self, obs):
        a = self.expert.act(obs, self.env)
        if self.action_noise > 0.0:
            a = a.copy()
            a[:3] += self._rng.normal(0.0, self.action_noise, 3)
        return a


def _check_args(task: str, episodes: int) -> None:
    if task not in TASKS:
        raise ValueError(f"task {task!r} is unknown; expected one of {TASKS}")
    if not isinstance(episodes, int) or episodes < 1:
        raise ValueError(f"episodes must be a positive int, got {episodes!r}")


def expert_episodes(task: str, episodes: int, render: bool = False, seed0: int = 500, *,
                    env_cfg: EnvConfig | None = None, action_noise: float = 0.0, source=None,
                    successes_only: bool = False) -> list:
    """``episodes`` scripted-expert rollouts in memory (seeds ``seed0, seed0 + 1, ...``; no bags).

    ``env_cfg``: the environment (default: ``EnvConfig(render=render)``); ``action_noise``: N(0, that) on
    the expert's dx, dy, dz (`ExpertPolicy`, seeded with the episode's seed); ``source``: the episodes'
    `Source` (default DEMO); ``successes_only``: keep only successful episodes, trying up to 5x as many
    seeds, and raise if fewer succeed.
    """
    from .rollout import run_episode
    from .sim import make_env

    _check_args(task, episodes)
    env = make_env(task, env_cfg if env_cfg is not None else EnvConfig(render=render))
    out, seed, last = [], seed0, seed0 + (5 * episodes if successes_only else episodes)
    try:
        while len(out) < episodes and seed < last:
            ep = run_episode(env, ExpertPolicy(task, env, action_noise=action_noise, seed=seed), seed=seed,
                             source=Source.DEMO if source is None else source)
            seed += 1
            if ep.success or not successes_only:
                out.append(ep)
    finally:
        env.close()
    if len(out) < episodes:
        raise RuntimeError(f"the {task} expert succeeded only {len(out)} times in {last - seed0} tries")
    return out


def bag_name(task: str, seed: int) -> str:
    return f"{task}_demo_s{seed:06d}"


def record_demos(
    task: str,
    episodes: int,
    out_dir: Path | str,
    cfg: EnvConfig | None = None,
    seed0: int = 0,
    keep_failures: bool = False,
    log=sys.stderr,
    action_noise: float = 0.0,
) -> DemoReport:
    """Run the expert for ``episodes`` episodes (seeds ``seed0 ..``) and write DEMO bags.

    ``action_noise``: standard deviation of Gaussian noise on the expert's translation actions.
    """
    from worldsample_common.core.bag_io import write_episode_bag

    from .rollout import run_episode
    from .sim import make_env

    _check_args(task, episodes)
    out = Path(out_dir)
    clashes = [out / bag_name(task, seed0 + i) for i in range(episodes) if (out / bag_name(task, seed0 + i)).exists()]
    if clashes:
        raise FileExistsError(
            f"out_dir {out}: {len(clashes)} bag(s) already exist, e.g. {clashes[0]}; "
            "bags are never overwritten: choose another --out or --seed"
        )
    out.mkdir(parents=True, exist_ok=True)
    cfg = cfg if cfg is not None else EnvConfig()
    env = make_env(task, cfg)
    try:
        policy = ExpertPolicy(task, env, action_noise=action_noise, seed=seed0)
    except ValueError:
        env.close()
        raise
    t0 = time.time()
    rows: list[dict[str, Any]] = []
    bag_dirs: list[Path] = []
    try:
        for i in range(episodes):
            seed = seed0 + i
            ep = run_episode(env, policy, seed=seed, source=Source.DEMO,
                             episode_id=f"{task}-demo-{seed}", policy_version=f"expert:{task}")
            ep.extras["expert"] = type(policy.expert).__name__
            ep.extras["action_noise"] = str(action_noise)
            bag = None
            if ep.success or keep_failures:
                bag = write_episode_bag(ep, out / bag_name(task, seed))
                bag_dirs.append(bag)
            rows.append({"seed": seed, "success": ep.success, "length": ep.length,
                         "return": ep.episode_return, "bag": str(bag) if bag else None})
            if log is not None:
                ok = sum(r["success"] for r in rows)
                print(f"[demos] {task} episode {i + 1}/{episodes} seed={seed} success={ep.success} "
                      f"len={ep.length} (success so far {ok}/{i + 1})", file=log, flush=True)
    finally:
        env.close()
    n = len(rows)
    report = DemoReport(
        task=task, episodes=n, success_rate=sum(r["success"] for r in rows) / n, n_written=len(bag_dirs),
        bag_dirs=bag_dirs, mean_length=sum(r["length"] for r in rows) / n, seconds=time.time() - t0,
    )
    summary = {**{k: v for k, v in asdict(report).items() if k != "bag_dirs"},
               "bag_dirs": [str(p) for p in bag_dirs], "seed0": seed0, "image_size": cfg.image_size,
               "action_noise": action_noise,
               "cameras": list(cfg.cameras) if cfg.render else [], "episodes_detail": rows}
    summary_path = out / f"demos_summary_{task}_s{seed0:06d}.json"
    summary_path.write_text(json_dumps(summary, indent=2))
    return report


def check_expert(
    task: str, episodes: int, seed0: int = 0, cfg: EnvConfig | None = None, action_noise: float = 0.0
) -> dict[str, Any]:
    """Expert success rate over ``episodes`` randomised episodes, nothing written (state-only by default)."""
    from .rollout import evaluate
    from .sim import make_env

    _check_args(task, episodes)
    cfg = cfg if cfg is not None else EnvConfig(render=False)
    env = make_env(task, cfg)
    try:
        t0 = time.time()
        res = evaluate(env, ExpertPolicy(task, env, action_noise=action_noise, seed=seed0), episodes, seed0)
        res["seconds"] = time.time() - t0
    finally:
        env.close()
    res["task"] = task
    res["episodes"] = episodes
    return res
