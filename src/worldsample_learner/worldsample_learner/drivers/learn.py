"""In-process training driver: policy on a sim env, updates, evaluation, PPL-scheduled synthetic data.

`train_in_process` alternates one environment step with one learner step (``utd_ratio``
critic updates; timed per phase into ``results.json["time_s"]``), evaluates the deterministic policy every ``eval_every`` env steps, asks the
synthetic source for branches every ``synthetic_every`` env steps (horizon and admission per
PPL), and writes ``metrics.csv``, ``eval.csv``, ``ppl.csv``, ``ppl_decisions.csv`` (PPL's decision on every
synthetic transition; ``bag`` names the generation call), ``plots.png`` and policy checkpoints under ``out_dir``.
Every ``snapshot_every_env_steps`` it snapshots the whole run (`snapshot`), and ``resume=True`` goes on from the
last snapshot, step for step as if the run had never stopped.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from worldsample_common.core.env_protocol import Env, Observation
from worldsample_common.core.episode import Episode, Source
from worldsample_common.core.files import json_dumps, json_safe
from worldsample_control.core.rollout import evaluate

from ..core.config import LearnConfig
from ..core.learner import DECISIONS, Learner, SyntheticSource, log_decisions
from ..core.policy import checkpoint_path, policy_from_agent, save_policy
from ..core.ppl import CsvLog, flat_status
from .snapshot import SNAPSHOT, load_snapshot, remove_snapshot, save_snapshot

log = logging.getLogger(__name__)


class StaticSyntheticSource:
    """A fixed pool of synthetic episodes (e.g. loaded from bags); hands out slices cut to ``horizon``."""

    def __init__(self, episodes: list[Episode]) -> None:
        if not episodes:
            raise ValueError("StaticSyntheticSource: the pool of synthetic episodes is empty")
        self.episodes = episodes
        self._next = 0

    def generate(self, policy: Any, num_branches: int, horizon: int) -> list[Episode]:
        out = []
        for _ in range(num_branches):
            ep = self.episodes[self._next % len(self.episodes)]
            self._next += 1
            out.append(truncate_episode(ep, horizon))
        return out


def truncate_episode(ep: Episode, horizon: int) -> Episode:
    if horizon >= ep.length:
        return ep
    h = max(1, int(horizon))
    return Episode(
        episode_id=ep.episode_id, task=ep.task, source=ep.source,
        images={c: v[: h + 1] for c, v in ep.images.items()}, proprio=ep.proprio[: h + 1], actions=ep.actions[:h],
        rewards=ep.rewards[:h], terminated=ep.terminated[:h], truncated=ep.truncated[:h], successes=ep.successes[:h],
        uncertainty=ep.uncertainty[:h], trust=ep.trust[:h], policy_version=ep.policy_version,
        world_model_version=ep.world_model_version, seed=ep.seed,
        states=None if ep.states is None else ep.states[: h + 1],
    )


def _episode_from_buffer(env: Env, buf: dict[str, list], seed: int, version: str) -> Episode:
    return Episode(
        episode_id=f"{env.task}-real-{seed}-{uuid.uuid4().hex[:8]}", task=env.task, source=Source.REAL,
        images={c: np.stack(v) for c, v in buf["images"].items()} if buf["images"] else {},
        proprio=np.stack(buf["proprio"]), actions=np.stack(buf["actions"]),
        rewards=np.asarray(buf["rewards"], np.float32), terminated=np.asarray(buf["terminated"], bool),
        truncated=np.asarray(buf["truncated"], bool), successes=np.asarray(buf["successes"], bool),
        states=None if any(s is None for s in buf["states"]) else np.stack(buf["states"]),
        sim_states=np.stack(buf["sim_states"]) if buf.get("sim_states") else None,
        policy_version=version, seed=seed,
    )


def _new_buffer(obs: Observation, cams: tuple[str, ...], env: Env, keep_sim_state: bool) -> dict[str, list]:
    """An episode's buffer; with ``keep_sim_state`` also the env's full simulator state per observation
    (what the oracle source restores)."""
    return {"images": {c: [obs.images[c]] for c in cams}, "proprio": [obs.proprio], "states": [obs.state],
            "actions": [], "rewards": [], "terminated": [], "truncated": [], "successes": [],
            "sim_states": [env.sim_state()] if keep_sim_state else []}


def _obs_batch(obs: Observation, cams: tuple[str, ...], state: bool) -> dict[str, Any]:
    d: dict[str, Any] = {"proprio": np.asarray(obs.proprio, np.float32)[None],
                         "images": {c: obs.images[c][None] for c in cams}}
    if state:
        d["state"] = np.asarray(obs.state, np.float32)[None]
    return d


def train_in_process(env: Env, cfg: LearnConfig, demos: list[Episode],
                     synthetic_source: SyntheticSource | None, out_dir: str | Path,
                     eval_env: Env | None = None, progress: bool = True, resume: bool = False) -> dict[str, Any]:
    """Train a policy on ``env`` (evaluated on ``eval_env``, default ``env``); returns final/best success,
    curves and paths. The driver chooses the environments (`commands.learn.make_task_env` for a sim task).

    ``resume``: go on from ``out_dir``'s snapshot (`snapshot`) when it has one (``synthetic_source`` is then
    filled with its state at the snapshot, in place, and the snapshot's ``demos`` replace the ones given); without
    a snapshot, or without ``resume``, the run starts at step 1 (a stale snapshot is removed)."""
    cfg.validate()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if eval_env is None:
        eval_env = env
    a = cfg.agent
    obs = env.reset(seed=cfg.seed)
    a.proprio_dim = int(np.asarray(obs.proprio).shape[0])
    a.action_dim = int(env.action_dim)
    if a.obs_mode == "state":
        if obs.state is None and a.state_dim:
            raise ValueError(f"obs_mode='state' needs Observation.state from env {env.task!r}, which gives none")
        a.state_dim = 0 if obs.state is None else int(np.asarray(obs.state).shape[0])
    else:
        missing = [c for c in a.cameras if c not in obs.images]
        if missing:
            raise ValueError(f"obs_mode='pixels' needs cameras {missing} that env {env.task!r} does not render")
        a.image_size = int(obs.images[a.cameras[0]].shape[0])
    a.seed = cfg.seed
    snap = (load_snapshot(out, synthetic_source, json_safe(asdict(cfg)), json_safe(asdict(LearnConfig())))
            if resume else None)  # checks cfg first
    (out / "config.json").write_text(json_dumps(asdict(cfg), indent=2))
    if snap is None:
        remove_snapshot(out)
        learner = Learner(a, cfg.ppl, cfg.replay, None)
        for ep in demos:
            rep = learner.add_demo_episode(ep)
            if rep.rejected:
                log.warning("demo %s: %s", ep.episode_id, dict(rep.rejected))
        if demos and len(learner.demo) == 0:
            raise ValueError("none of the demo episodes could be used (see the warnings above for reasons)")
    else:
        learner = snap["learner"]
    pixels = a.obs_mode == "pixels"
    cams = tuple(a.cameras) if pixels else ()
    # real episodes keep every frame the env renders (a world model learns from them even when the
    # agent itself is state-based); the agent sees only ``cams``
    record_cams = tuple(obs.images) if obs.images else cams
    state_mode = a.obs_mode == "state" and a.state_dim > 0
    keep_sim_state = bool(getattr(synthetic_source, "needs_sim_state", False))
    if keep_sim_state and not callable(getattr(env, "sim_state", None)):
        raise ValueError(f"the synthetic source needs the simulator state of every real step; env {env.task!r} "
                         "has no sim_state()")
    metrics = CsvLog(out / "metrics.csv")
    evals = CsvLog(out / "eval.csv")
    ppl_log = CsvLog(out / "ppl.csv")
    rng = np.random.default_rng(cfg.seed)
    policy = policy_from_agent(learner.agent, 0)
    ep_seed = cfg.seed * 100_000
    ep_returns: list[float] = []
    ep_return = 0.0
    version = 0
    t_start = time.time()
    synthetic_calls = 0

    def run_eval(step: int) -> dict[str, Any]:
        r = evaluate(eval_env, policy, cfg.eval_episodes, seed0=1_000_000 + cfg.seed * 1000)
        row = {"env_steps": step, "success_rate": r["success_rate"], "mean_return": r["mean_return"],
               "mean_length": r["mean_length"], "updates": learner.agent.updates, "wall_s": time.time() - t_start}
        evals.write(row)
        if progress:
            print(f"[learn {cfg.ppl.mode}] env_steps={step} success={r['success_rate']:.2f} "
                  f"return={r['mean_return']:.2f} updates={learner.agent.updates} "
                  f"share={learner.ppl.synthetic_share():.2f} ({time.time() - t_start:.0f}s)", flush=True)
        return row

    # where the time goes: policy inference, simulator step, learner update, evaluation, the world model's
    # training (inside observe_real), synthetic generation and PPL's scoring/admission of it, the rest
    timers = {"act": 0.0, "env_step": 0.0, "update": 0.0, "eval": 0.0}
    if synthetic_source is not None and learner.ppl.uses_synthetic:
        timers.update(world_model=0.0, generate=0.0, admit=0.0)
    frozen = learner.agent.encoder.frozen
    if frozen:  # the frozen pixel encoder's one pre-training, before the first update
        timers["encoder_pretrain"] = 0.0
    every = cfg.snapshot_every_env_steps
    if every:
        timers["snapshot"] = 0.0
    first = 1
    if snap is not None:  # the loop's own state at the snapshot (taken at an episode's end)
        loop = snap["loop"]
        policy = snap["policy"]
        first, ep_seed, ep_returns, version = loop["step"] + 1, loop["ep_seed"], loop["ep_returns"], loop["version"]
        synthetic_calls, timers, rng = loop["synthetic_calls"], loop["timers"], loop["rng"]
        # the run's own (a resumed command need not record or load them again); a snapshot written before they
        # were kept in it (2026-12-06) falls back to the caller's, which is what an experiment hands in
        demos = loop.get("demos", demos)
        metrics, evals, ppl_log = loop["logs"]
        t_start = time.time() - loop["elapsed_s"]
        if progress:
            print(f"[learn {cfg.ppl.mode}] resuming from {out / SNAPSHOT} after env step {loop['step']}",
                  flush=True)
    obs = env.reset(seed=ep_seed)
    buf = _new_buffer(obs, record_cams, env, keep_sim_state)
    for step in range(first, cfg.env_steps + 1):
        ended = False
        t0 = time.perf_counter()
        if step <= cfg.warmup_steps and not demos:
            action = rng.uniform(-1, 1, size=a.action_dim).astype(np.float32)
        else:
            action = learner.agent.act(_obs_batch(obs, cams, state_mode), deterministic=False)[0]
        t1 = time.perf_counter()
        res = env.step(action)
        timers["act"] += t1 - t0
        timers["env_step"] += time.perf_counter() - t1
        executed = np.asarray(res.info.get("clipped_action", np.clip(action, -1, 1)), np.float32)
        buf["actions"].append(executed)
        buf["rewards"].append(res.reward)
        buf["terminated"].append(res.terminated)
        ep_len = len(buf["actions"])
        trunc = bool(res.truncated or (ep_len >= env.max_episode_steps and not res.terminated))
        buf["truncated"].append(trunc)
        buf["successes"].append(res.success)
        obs = res.observation
        for c in record_cams:
            buf["images"][c].append(obs.images[c])
        buf["proprio"].append(obs.proprio)
        buf["states"].append(obs.state)
        if keep_sim_state:
            buf["sim_states"].append(env.sim_state())
        ep_return += float(res.reward)
        if res.terminated or trunc:
            real_ep = _episode_from_buffer(env, buf, ep_seed, policy.version)
            learner.add_real_episode(real_ep)
            observe = getattr(synthetic_source, "observe_real", None)
            if callable(observe) and learner.ppl.uses_synthetic:
                t1 = time.perf_counter()
                observe(real_ep)  # the world model's post-training runs in here when it is due
                timers["world_model"] += time.perf_counter() - t1
            ep_returns.append(ep_return)
            ep_return = 0.0
            ep_seed += 1
            ended = True
            obs = env.reset(seed=ep_seed)
            buf = _new_buffer(obs, record_cams, env, keep_sim_state)
        if step > cfg.warmup_steps and learner.can_train():
            if frozen and learner.agent.encoder_version == 0:
                t1 = time.perf_counter()
                if progress:
                    print(f"[learn {cfg.ppl.mode}] pre-training the frozen pixel encoder on the frames of "
                          f"{len(learner.demo)} demo and {len(learner.real)} real transitions ...", flush=True)
                learner.pretrain_encoder(log_every=250 if progress else 0)
                timers["encoder_pretrain"] += time.perf_counter() - t1
            t1 = time.perf_counter()
            learner.train_step()
            timers["update"] += time.perf_counter() - t1
        if (synthetic_source is not None and learner.ppl.uses_synthetic and step % cfg.synthetic_every == 0
                and step > cfg.warmup_steps and len(learner.real)):
            fid = getattr(synthetic_source, "fidelity", None)
            if callable(fid):
                f = fid()
                if f is not None and math.isfinite(f):
                    learner.ppl.observe_fidelity(float(np.clip(f, 0.0, 1.0)))
            horizon = learner.ppl.rollout_horizon()
            if horizon > 0:
                t1 = time.perf_counter()
                branches = synthetic_source.generate(policy, cfg.synthetic_branches, horizon)
                t2 = time.perf_counter()
                admitted: list[np.ndarray] = []
                learner.add_synthetic_episodes(branches, admitted)
                timers["generate"] += t2 - t1
                timers["admit"] += time.perf_counter() - t2
                log_decisions(out / DECISIONS, branches, admitted, bag=f"generate-{synthetic_calls}")
                synthetic_calls += 1
        if step % cfg.log_every == 0:
            status = learner.close_window()
            ppl_log.write(flat_status(status))
            n_scored = status["admitted"] + status["rejected"]
            metrics.write({
                "env_steps": step, "updates": learner.agent.updates, "episodes": len(ep_returns),
                "train_return": float(np.mean(ep_returns[-10:])) if ep_returns else float("nan"),
                "train_success_rate": status["real_success_rate"], "q_real": status["q_real"],
                "q_demo_minus_mc": demo_q_gap(learner, demos) if learner.agent.updates else float("nan"),
                "q_synthetic": status["q_synthetic"], "synthetic_share": status["synthetic_share"],
                "admission_threshold": status["admission_threshold"], "rollout_horizon": status["rollout_horizon"],
                "admission_rate": status["admitted"] / n_scored if n_scored else float("nan"),
                "synthetic_size": len(learner.synthetic), "critic_loss": status["critic_loss"],
                "alpha": status["alpha"], "wall_s": time.time() - t_start,
            })
        if step % cfg.eval_every == 0:
            t1 = time.perf_counter()
            run_eval(step)
            timers["eval"] += time.perf_counter() - t1
        if cfg.checkpoint_every_env_steps and step % cfg.checkpoint_every_env_steps == 0:
            version += 1
            save_policy(learner.agent, out / "checkpoints", version, {"env_steps": step, "mode": cfg.ppl.mode})
        if every and ended and step < cfg.env_steps and step // every > (first - 1) // every:
            # the first episode end past a multiple of ``every`` since the run (or its resume) began
            t1 = time.perf_counter()
            loop = {"step": step, "ep_seed": ep_seed, "ep_returns": ep_returns, "version": version,
                    "synthetic_calls": synthetic_calls, "timers": timers, "rng": rng,
                    "logs": (metrics, evals, ppl_log), "elapsed_s": time.time() - t_start,
                    "config": json_safe(asdict(cfg)), "demos": demos}
            save_snapshot(out, loop, learner, policy, synthetic_source)
            first = step + 1
            timers["snapshot"] += time.perf_counter() - t1
    if cfg.env_steps % cfg.eval_every != 0:
        run_eval(cfg.env_steps)
    version += 1
    final_ckpt = save_policy(learner.agent, out / "checkpoints", version,
                             {"env_steps": cfg.env_steps, "mode": cfg.ppl.mode})
    plot_run(out)
    curve = [(r["env_steps"], r["success_rate"]) for r in evals.rows]
    results = {
        "mode": cfg.ppl.mode, "final_success_rate": curve[-1][1], "best_success_rate": max(s for _, s in curve),
        "success_curve": curve, "updates": learner.agent.updates, "env_steps": cfg.env_steps,
        "synthetic_calls": synthetic_calls, "ppl_status": learner.ppl.status(learner.agent.updates),
        "replay": {s.name: s.stats() for s in (learner.demo, learner.real, learner.synthetic)},
        "checkpoint": str(final_ckpt), "wall_s": time.time() - t_start,
        "steps_to_success": steps_to(curve, 0.5),
        "time_s": {**timers, "other": max(0.0, time.time() - t_start - sum(timers.values()))},
    }
    if frozen:
        results["encoder_pretrain"] = learner.pretrain_info
    (out / "results.json").write_text(json_dumps(results, indent=2))
    remove_snapshot(out)
    assert checkpoint_path(out / "checkpoints", version) == final_ckpt
    return results


def demo_q_gap(learner: Learner, demos: list[Episode]) -> float:
    """Mean of Q(s, a) - G over every demo step, G the exact discounted return-to-go (demos end in
    success, so G needs no bootstrap): > 0 over-estimates, < 0 under-estimates the demonstrated
    behaviour. NaN without demos."""
    if not demos or not len(learner.demo):
        return float("nan")
    from ..core.replay import episode_rows

    g = learner.cfg.discount
    gaps = []
    for ep in demos:
        if not ep.terminated[-1]:
            continue
        rows, problems = episode_rows(ep, learner.agent.spec)
        if problems:
            continue
        obs = {"proprio": rows["proprio"], "images": {c: rows[f"img_{c}"] for c in learner.agent.spec.cameras}}
        if learner.agent.spec.state_dim:
            obs["state"] = rows["state"]
        q = learner.agent.q_values(obs, rows["action"]).mean(0)
        ret = np.zeros(ep.length)
        acc = 0.0
        for t in range(ep.length - 1, -1, -1):
            acc = float(ep.rewards[t]) + g * acc
            ret[t] = acc
        gaps.append(q - ret)
    return float(np.mean(np.concatenate(gaps))) if gaps else float("nan")


def steps_to(curve: list[tuple[int, float]], level: float) -> int | None:
    """First evaluated env step with success rate >= level (None if never)."""
    for s, v in curve:
        if v >= level:
            return int(s)
    return None


def _read_csv(path: Path) -> dict[str, np.ndarray]:
    import csv

    if not path.exists():
        return {}
    with open(path) as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return {}

    def num(x: str) -> float:
        try:
            return float(x)
        except ValueError:
            return float("nan")

    return {k: np.asarray([num(r[k]) for r in rows]) for k in rows[0]}


def plot_run(out_dir: str | Path) -> Path:
    """plots.png: success vs env steps, returns, Q real vs synthetic, synthetic share, admission rate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    m, e = _read_csv(out / "metrics.csv"), _read_csv(out / "eval.csv")
    fig, axes = plt.subplots(1, 5, figsize=(22, 3.8))
    if e:
        axes[0].plot(e["env_steps"], e["success_rate"], marker="o")
    axes[0].set(title="eval success rate", xlabel="env steps", ylim=(-0.05, 1.05))
    if m:
        axes[1].plot(m["env_steps"], m["train_return"], label="train (last 10)")
        if e:
            axes[1].plot(e["env_steps"], e["mean_return"], marker="o", label="eval")
        axes[1].legend()
        axes[2].plot(m["env_steps"], m["q_real"], label="Q real")
        axes[2].plot(m["env_steps"], m["q_synthetic"], label="Q synthetic")
        axes[2].legend()
        axes[3].plot(m["env_steps"], m["synthetic_share"], label="share")
        axes[3].plot(m["env_steps"], m["admission_threshold"], label="threshold")
        axes[3].legend()
        axes[4].plot(m["env_steps"], m["admission_rate"])
    axes[1].set(title="returns", xlabel="env steps")
    axes[2].set(title="critic estimates", xlabel="env steps")
    axes[3].set(title="PPL schedule", xlabel="env steps")
    axes[4].set(title="synthetic admission rate (cumulative)", xlabel="env steps", ylim=(-0.05, 1.05))
    fig.tight_layout()
    path = out / "plots.png"
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
