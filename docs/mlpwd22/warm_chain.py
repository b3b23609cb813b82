"""The MLP state model as the learner re-fits it, on the learner's own data (issue 22, seventeenth sitting).

    python docs/mlpwd22/warm_chain.py ROWS K [EVERY ["VARIANT;VARIANT..."]]
    python docs/mlpwd22/warm_chain.py docs/mlpwd22/push_oracle4mm_s1_6k.npz 60

ROWS: the real transitions of a policy run's replay (an ``.npz`` with proprio, next_proprio, state, next_state, action,
reward, terminated in the order they arrived; `save_rows` writes one from a run's ``snapshot.pt``). Episodes are cut
where a row's observation is not the previous row's next observation. The first K episodes train, the next 25 (the
policy's *future* data, which the model never saw) are scored: open loop under their recorded actions, every start,
RMSE of the block position (the peg on peg insertion) and of the end effector after h = 1, 4, 8 steps, beside
copy-state.

Two ways to fit the same data:
- **cold**: one fit on all K episodes (`train_mlp_dynamics`);
- **warm chain**: as the policy experiment does (`source.VideoWorldModelSource.train_state_model`), one fit every
  EVERY episodes (default 6, about the experiment's rhythm), each continuing from the previous ensemble's weights.
Variants: the default `MLPDynamicsConfig`, weight decay 1e-3 / 1e-2, the 4-step loss (``rollout_steps``), and "lead": the controller's hidden target (the
end-effector set-point, `FrankaTaskEnv.step`: the previous target moved by the action, kept within 3 cm of the
measured end effector and inside the workspace box) as an extra input, recomputed from the actions and the measured
(or predicted) end effector; "translation-free": the task's placement entries hidden from the inputs
(`MLPDynamicsConfig.ignore_inputs`, `Task.placement_labels`), "no ee xy": the end effector's x, y as well.
"""

import math
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from worldsample_control.core.sim.env import PROPRIO_DIM
from worldsample_control.core.sim.tasks import model_blind_dims
from worldsample_worldmodel.core.mlp_dynamics import MLPDynamicsConfig, Transitions, train_mlp_dynamics

KEYS = ("proprio", "next_proprio", "state", "next_state", "action", "reward", "terminated")
LO, HI = np.array([0.30, -0.35, 0.012]), np.array([0.75, 0.35, 0.45])  # EnvConfig.workspace_min/max
SCALE, LEAD = 0.02, 0.03  # EnvConfig.action_scale, max_target_lead
HORIZONS = (1, 4, 8)
# the task by its observation's size ([proprio, state]; the object's xyz is first in both states)
TASK_OF_DIM = {PROPRIO_DIM + 10: "push", PROPRIO_DIM + 9: "peg_insertion"}
N_SCORED = 25


def save_rows(snapshot: str, out: str) -> None:
    """The real replay rows of a run snapshot (`drivers.snapshot`) as an .npz."""
    blob = torch.load(snapshot, weights_only=False)
    real = blob["learner"].real
    np.savez_compressed(out, **{k: np.asarray(real._data[k][:real._size]) for k in KEYS})


def step_target(target, ee, a):
    return np.clip(np.clip(target + np.clip(a[..., :3], -1, 1) * SCALE, ee - LEAD, ee + LEAD), LO, HI)


class Data:
    def __init__(self, path: str) -> None:
        d = np.load(path)
        self.obs = np.concatenate([d["proprio"], d["state"]], 1)
        self.nxt = np.concatenate([d["next_proprio"], d["next_state"]], 1)
        self.act, self.rew, self.term = d["action"].astype(np.float32), d["reward"], d["terminated"].astype(np.float32)
        n = len(self.obs)
        cut = list(np.flatnonzero(np.abs(self.obs[1:] - self.nxt[:-1]).max(1) > 1e-6) + 1)
        self.episodes = list(zip([0] + cut, cut + [n], strict=True))
        self.lead = np.zeros((n, 3), np.float32)
        for s, e in self.episodes:
            target = self.obs[s, :3].astype(np.float64)  # at reset the set-point is the measured end effector
            for t in range(s, e):
                self.lead[t] = target - self.obs[t, :3]
                target = step_target(target, self.obs[t, :3], self.act[t])

    def inputs(self, a, lead, with_lead):
        return np.concatenate([a, lead / LEAD], 1).astype(np.float32) if with_lead else a

    def transitions(self, episodes, with_lead=False) -> Transitions:
        i = np.concatenate([np.arange(s, e) for s, e in episodes])
        return Transitions(self.obs[i], self.inputs(self.act[i], self.lead[i], with_lead), self.nxt[i], self.rew[i],
                           self.term[i])

    def warm_chain(self, k, every, cfg, with_lead=False):
        """The runs' way of fitting: one fit every ``every`` of the first ``k`` episodes, each from the last one's
        weights; (model, the last fit's info, the training steps of all fits)."""
        model, steps = None, 0
        for upto in range(every, k + 1, every):
            model, info = train_mlp_dynamics(self.transitions(self.episodes[:upto], with_lead), cfg, init=model)
            steps += info["steps"]
        return model, info, steps

    def scores(self, model, episodes, with_lead=False, after_step=None):
        """[(block RMSE mm, end-effector RMSE mm, copy-state block RMSE mm) at each horizon]. ``after_step(before,
        after)``: what becomes of each predicted step (before the next one), e.g. a correction under test."""
        out = []
        for h in HORIZONS:
            st = np.concatenate([np.arange(s, e - h + 1) for s, e in episodes])
            o, lead = self.obs[st].copy(), self.lead[st].astype(np.float64)
            for k in range(h):
                a = self.act[st + k]
                o2 = model.predict(o, self.inputs(a, lead, with_lead))["next_obs"]
                if after_step is not None:
                    o2 = after_step(o, o2)
                lead = step_target(o[:, :3] + lead, o[:, :3], a) - o2[:, :3]
                o = o2
            real = self.nxt[st + h - 1]
            out.append((rmse_mm(o[:, 7:10] - real[:, 7:10]), rmse_mm(o[:, :3] - real[:, :3]),
                        rmse_mm(self.obs[st, 7:10] - real[:, 7:10])))
        return out


def rmse_mm(e):
    return 1e3 * math.sqrt(float((e ** 2).mean()))


def line(scores):
    f = " / ".join
    return (f"block {f(f'{b:.1f}' for b, _, _ in scores)} (copy {f(f'{c:.1f}' for _, _, c in scores)}), "
            f"end effector {f(f'{e:.1f}' for _, e, _ in scores)}")


def fields_variant(name: str, blind: tuple[int, ...]) -> MLPDynamicsConfig:
    """Any other variant: "FIELD=VALUE FIELD=VALUE ..." of `MLPDynamicsConfig` (numbers), with the word "translation-free"
    for the task's placement entries hidden, e.g. "translation-free weight_decay=1e-3 hidden_dim=128"."""
    kw: dict = {"ignore_inputs": blind} if "translation-free" in name.split() else {}
    for item in name.split():
        if "=" in item:
            key, value = item.split("=")
            kw[key] = type(getattr(MLPDynamicsConfig, key))(float(value))
    return MLPDynamicsConfig(**kw)


def variant(name: str, variants: dict, blind: tuple[int, ...]) -> MLPDynamicsConfig:
    """A named variant, that with ", seed N" (the fit's seed), or `fields_variant`."""
    base, sep, seed = name.rpartition(", seed ")
    if sep and base in variants:
        return replace(variants[base], seed=int(seed))
    return variants[name] if name in variants else fields_variant(name, blind)


def main():
    torch.set_num_threads(1)
    data, k = Data(sys.argv[1]), int(sys.argv[2])
    every = int(sys.argv[3]) if len(sys.argv) > 3 else 6
    train, scored = data.episodes[:k], data.episodes[k:k + N_SCORED]
    blind = model_blind_dims(TASK_OF_DIM[data.obs.shape[1]], PROPRIO_DIM)
    print(f"{Path(sys.argv[1]).name}: {len(data.episodes)} episodes, {len(data.obs)} rows; train on the first {k}, "
          f"score the next {len(scored)}; warm fits every {every} episodes; mm at h = {', '.join(map(str, HORIZONS))}", flush=True)
    variants = {"default": MLPDynamicsConfig(), "weight decay 1e-3": MLPDynamicsConfig(weight_decay=1e-3),
                "weight decay 1e-2": MLPDynamicsConfig(weight_decay=1e-2),
                "weight decay 1e-3, lead": MLPDynamicsConfig(weight_decay=1e-3),
                "lead": MLPDynamicsConfig(),
                "4-step loss": MLPDynamicsConfig(rollout_steps=4),
                "4-step loss, weight decay 1e-3": MLPDynamicsConfig(rollout_steps=4, weight_decay=1e-3),
                "translation-free": MLPDynamicsConfig(ignore_inputs=blind),
                "translation-free, weight decay 1e-3": MLPDynamicsConfig(ignore_inputs=blind, weight_decay=1e-3),
                "translation-free, no ee xy": MLPDynamicsConfig(ignore_inputs=blind + (0, 1)),
                "translation-free, no ee xy, weight decay 1e-3": MLPDynamicsConfig(ignore_inputs=blind + (0, 1),
                                                                                   weight_decay=1e-3),
                "translation-free, lead": MLPDynamicsConfig(ignore_inputs=blind)}
    only = sys.argv[4].split(";") if len(sys.argv) > 4 else list(variants)
    for name in [v for v in ("default", "weight decay 1e-3", "4-step loss, weight decay 1e-3", "translation-free",
                             "translation-free, weight decay 1e-3") if v in only]:
        t0 = time.time()
        model, info = train_mlp_dynamics(data.transitions(train), variants[name])
        print(f"cold, {name}: held-out loss {info['holdout_loss']:.3f}, train {info['train_loss']:.3f}, best step "
              f"{info['best_step']}/{info['steps']} ({time.time() - t0:.0f} s) | {line(data.scores(model, scored))}",
              flush=True)
    for name, cfg in [(v, variant(v, variants, blind)) for v in only]:
        with_lead, t0 = "lead" in name, time.time()
        model, info, steps = data.warm_chain(k, every, cfg, with_lead)
        print(f"warm chain, {name}: held-out loss {info['holdout_loss']:.3f}, train {info['train_loss']:.3f}, "
              f"{steps} steps in all ({time.time() - t0:.0f} s) | {line(data.scores(model, scored, with_lead))}",
              flush=True)


if __name__ == "__main__":
    main()
