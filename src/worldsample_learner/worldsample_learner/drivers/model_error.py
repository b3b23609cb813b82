"""The world model's error on what the state learner eats (issue 22, item 2).

    worldsample experiment modelerror --config small --tasks push,peg_insertion,sort --out runs/exp

Per task, the data of the world-model experiment (`experiment.run_worldmodel`): ``demos`` scripted-expert
demonstrations, real rollouts of the expert with N(0, ``wm_real_noise``) action noise, and held out
``heldout_episodes`` rollouts of the expert with N(0, ``wm_heldout_noise``) on other seeds. Three
predictors of the next [proprio, privileged state], reward and termination, scored open loop under the
held-out episodes' recorded actions (`worldsample_worldmodel.core.state_error`):

- **copy-state**: nothing moves;
- **MLP ensemble** (`mlp_dynamics`, MBPO's model): fitted to the transitions the video model trains on; and
  the same with each member predicting its variance (``probabilistic``, MBPO's own kind of ensemble);
- **video world model** as the policy experiment builds it: `experiment.pretrain_world_model` on the demos,
  then a `VideoWorldModelSource` (``state_in_proprio``, `experiment.wm_service_config`) that observes the
  real rollouts one by one and post-trains itself when ``wm_min_new_episodes`` have reached its training
  pool (every ``heldout_every``-th one it keeps for its fidelity, as in the policy experiment; so
  ``wm_min_new_episodes * k / (k - 1)`` rollouts are recorded and exactly one post-training happens);
  the pre-trained version (demos only) is scored too.

The MLP ensemble fits the very episodes the post-trained version was trained on (its manifest's
``trained_on``: demos + the pool). Writes ``OUT/modelerror/results.json`` and
``OUT/modelerror/results.md`` (the table).
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Any

from .experiment import (
    ExperimentConfig,
    _json_dumps,
    _load_pickle,
    _save_pickle,
    env_config,
    expert_demos,
    noisy_expert_episodes,
    pretrain_world_model,
    wm_service_config,
)

REAL_SEED0, HELD_SEED0 = 10_000, 900_000  # the seeds of the world-model experiment's real / held-out rollouts


def real_rollouts_needed(cfg: ExperimentConfig) -> int:
    """Rollouts the source must observe until its pool holds ``wm_min_new_episodes`` (one post-training)."""
    every = wm_service_config(cfg, Path("."), 0).heldout_every
    return math.ceil(cfg.wm_min_new_episodes * every / (every - 1)) if every > 1 else cfg.wm_min_new_episodes


def task_data(task: str, cfg: ExperimentConfig, tdir: Path) -> dict[str, list]:
    """Demos, real and held-out rollouts of ``task`` (recorded once, then read from ``tdir/data.pkl``)."""
    from worldsample_common.core.episode import Source

    path = tdir / "data.pkl"
    if path.exists():
        return _load_pickle(path)
    n_real = real_rollouts_needed(cfg)
    print(f"[modelerror] {task}: recording {cfg.demos} demos, {n_real} real rollouts (expert + N(0, "
          f"{cfg.wm_real_noise})) and {cfg.heldout_episodes} held-out ones (+ N(0, {cfg.wm_heldout_noise}))",
          flush=True)
    data = {"demos": expert_demos(task, cfg, cfg.demos),
            "real": noisy_expert_episodes(task, cfg, n_real, cfg.wm_real_noise, REAL_SEED0, Source.REAL),
            "held": noisy_expert_episodes(task, cfg, cfg.heldout_episodes, cfg.wm_heldout_noise, HELD_SEED0,
                                          Source.REAL)}
    _save_pickle(data, path)
    return data


def video_models(task: str, cfg: ExperimentConfig, tdir: Path, demos: list, real: list):
    """(pre-trained model, post-trained model, ids of the episodes the post-trained one trained on)."""
    from worldsample_worldmodel.core.source import VideoSourceConfig, VideoWorldModelSource
    from worldsample_worldmodel.core.store import WorldModelStore

    pre_dir, post_dir = tdir / "wm_pretrained", tdir / "wm_posttrained"
    t0 = time.time()
    print(f"[modelerror] {task}: pre-training the world model on the demos ({cfg.wm_pretrain_steps} steps)",
          flush=True)
    pretrain_world_model(task, cfg, demos, pre_dir)
    pre_store = WorldModelStore(pre_dir)
    pre = pre_store.load(device="cpu")
    post_store = WorldModelStore(post_dir)
    if len(post_store.versions()) < 2:  # not post-trained yet (or cut): start from the pre-trained copy
        if post_dir.exists():
            shutil.rmtree(post_dir)
        shutil.copytree(pre_dir, post_dir)
        src = VideoWorldModelSource(VideoSourceConfig(service=wm_service_config(cfg, post_dir, 0),
                                                      state_in_proprio=True))
        src.add_demos(demos)
        print(f"[modelerror] {task}: the source observes {len(real)} real rollouts (post-training "
              f"{cfg.wm_posttrain_steps} steps when {cfg.wm_min_new_episodes} are in its pool)", flush=True)
        for ep in real:
            src.observe_real(ep)
        post_store = WorldModelStore(post_dir)
        if len(post_store.versions()) != 2:
            raise RuntimeError(f"{task}: expected exactly one post-training from {len(real)} real rollouts, the "
                               f"store has versions {post_store.versions()}")
    latest = post_store.latest()
    post = post_store.load(latest, device="cpu")
    trained_on = [e["episode_id"] for e in post_store.manifest(latest)["trained_on"]]
    print(f"[modelerror] {task}: world model {pre.version} -> {post.version} ({time.time() - t0:.0f} s)", flush=True)
    return pre, post, trained_on


def evaluate_task(task: str, cfg: ExperimentConfig, tdir: Path) -> dict[str, Any]:
    """Results of the three predictors (and the pre-trained video model) on ``task``'s held-out rollouts."""
    from worldsample_control.core.sim.env import PROPRIO_DIM
    from worldsample_control.core.sim.tasks import TASK_CLASSES, judge_states
    from worldsample_worldmodel.core.mlp_dynamics import (
        MLPDynamicsConfig,
        train_mlp_dynamics,
        transitions_from_episodes,
    )
    from worldsample_worldmodel.core.source import static_state_dims
    from worldsample_worldmodel.core.state_error import (
        CopyState,
        JudgedPredictor,
        MLPPredictor,
        VideoModelPredictor,
        evaluate_state_error,
    )

    tdir.mkdir(parents=True, exist_ok=True)
    data = task_data(task, cfg, tdir)
    demos, real, held = data["demos"], data["real"], data["held"]
    pre, post, trained_on = video_models(task, cfg, tdir, demos, real)
    by_id = {e.episode_id: e for e in demos + real}
    missing = [i for i in trained_on if i not in by_id]
    if missing:
        raise RuntimeError(f"{task}: the world model trained on episodes not in {tdir / 'data.pkl'}: {missing[:3]}")
    train_eps = [by_id[i] for i in trained_on]
    t0 = time.time()
    transitions = transitions_from_episodes(train_eps)
    mlp, mlp_metrics = train_mlp_dynamics(transitions, MLPDynamicsConfig(seed=0))
    mlp_metrics["wall_s"] = time.time() - t0
    # MBPO's own kind: each member also predicts its variance (Gaussian NLL); its uncertainty counts that too
    pmlp, pmlp_metrics = train_mlp_dynamics(transitions, MLPDynamicsConfig(seed=0, probabilistic=True))
    print(f"[modelerror] {task}: MLP ensemble on {mlp_metrics['num_train'] + mlp_metrics['num_holdout']} transitions "
          f"({len(train_eps)} episodes): held-out loss {mlp_metrics['holdout_loss']:.4f} at step "
          f"{mlp_metrics['best_step']} ({mlp_metrics['wall_s']:.0f} s)", flush=True)
    predictors = [CopyState(), MLPPredictor(mlp, PROPRIO_DIM),
                  MLPPredictor(pmlp, PROPRIO_DIM, name="MLP ensemble, probabilistic"),
                  VideoModelPredictor(pre, PROPRIO_DIM, name="video WM, demos only"),
                  VideoModelPredictor(post, PROPRIO_DIM, name="video WM, post-trained"),
                  VideoModelPredictor(post, PROPRIO_DIM, name="video WM, post-trained, static carried",
                                      static=static_state_dims(train_eps))]
    # reward and termination by the task's success detector on the predicted state (`source.judged`)
    judge = partial(judge_states, reward=env_config(cfg, render=False).reward)
    predictors += [JudgedPredictor(predictors[1], judge), JudgedPredictor(predictors[1], judge, agreement=1.0),
                   JudgedPredictor(predictors[-1], judge)]
    res = evaluate_state_error(predictors, held, TASK_CLASSES[task].state_labels, cfg.horizons)
    res.update(task=task, mlp=mlp_metrics, probabilistic_mlp=pmlp_metrics,
               world_model={"pretrained": pre.version, "posttrained": post.version},
               train_episodes={"demos": sum(e.source.name == "DEMO" for e in train_eps),
                               "real": sum(e.source.name == "REAL" for e in train_eps)},
               heldout_episodes=len(held), heldout_successes=sum(e.success for e in held))
    return res


def run_model_error(cfg: ExperimentConfig, out: Path, cmd: str) -> int:
    from worldsample_worldmodel.core.state_error import state_error_table

    root = out / "modelerror"
    root.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    done_file = root / "per_task.json"
    per_task: dict[str, Any] = json.loads(done_file.read_text()) if done_file.exists() else {}
    for task in cfg.tasks:
        if task in per_task:  # finished before (a resumed run)
            print(f"[modelerror] {task}: done before, kept", flush=True)
            continue
        per_task[task] = evaluate_task(task, cfg, root / task)
        done_file.write_text(_json_dumps(per_task))
    rows = [(t, per_task[t]) for t in cfg.tasks]
    table = state_error_table(rows)
    (root / "results.json").write_text(_json_dumps({"config": asdict(cfg), "command": cmd, "tasks": per_task,
                                                    "wall_s": time.time() - t0}))
    notes = [f"- {t}: trained on {r['train_episodes']['demos']} demos + {r['train_episodes']['real']} real rollouts; "
             f"held out {r['heldout_episodes']} rollouts ({r['heldout_successes']} successful); world model "
             f"{r['world_model']['pretrained']} (demos) -> {r['world_model']['posttrained']}; MLP best step "
             f"{r['mlp']['best_step']} of {r['mlp']['steps']}" for t, r in rows]
    text = (f"# The world model's error on the learner's state\n\nCommand: `{cmd}` ({time.strftime('%Y-%m-%d')}, "
            f"{(time.time() - t0) / 60:.1f} min, config `{cfg.name}`)\n\n" + "\n".join(notes) + "\n\n" + table + "\n")
    (root / "results.md").write_text(text)
    print(table)
    print(f"[modelerror] done in {time.time() - t0:.0f} s -> {root}", flush=True)
    return 0
