"""How much do fitting choices cut the MLP ensemble's object error? Push, the data of state_pose_check.py (issue 22,
sixteenth sitting). One fit per variant, seed 0.

    python docs/hor22/mlp_fit_variants.py
"""

import math
import time

import numpy as np
from worldsample_common.core.episode import Source
from worldsample_control.core.demos import ExpertPolicy
from worldsample_control.core.rollout import run_episode
from worldsample_control.core.sim import EnvConfig, make_env
from worldsample_worldmodel.core.mlp_dynamics import (
    MLPDynamicsConfig,
    train_mlp_dynamics,
    transitions_from_episodes,
)
from worldsample_worldmodel.core.state_error import MLPPredictor, open_loop_starts, recorded_actions

env = make_env("push", EnvConfig(render=False, max_episode_steps=0))


def eps(n, noise, s0):
    return [
        run_episode(env, ExpertPolicy("push", env, action_noise=noise, seed=s), seed=s, source=Source.REAL)
        for s in range(s0, s0 + n)
    ]


train = eps(10, 0.0, 500) + eps(60, 0.6, 10_000) + eps(30, 1.0, 20_000)
held = eps(20, 0.3, 900_000) + eps(20, 0.8, 950_000)
P = held[0].proprio.shape[1]
tr = transitions_from_episodes(train)
for name, cfg in [
    ("default", MLPDynamicsConfig()),
    ("patience 0 (2000 steps)", MLPDynamicsConfig(patience=0)),
    ("width 400", MLPDynamicsConfig(hidden_dim=400)),
    ("weight decay 1e-3", MLPDynamicsConfig(weight_decay=1e-3)),
    ("lr 3e-4, patience 6", MLPDynamicsConfig(lr=3e-4, patience=6)),
]:
    t0 = time.time()
    m, info = train_mlp_dynamics(tr, cfg)
    pred = MLPPredictor(m, P)
    ei, ts = open_loop_starts(held)
    out = []
    for h in (1, 4, 8):
        ok = np.array([ts[b] + h <= held[i].length for b, i in enumerate(ei)])
        i2, t2 = ei[ok], ts[ok]
        ol = pred.predict(held, i2, t2, recorded_actions(held, i2, t2, h))
        real = np.stack([held[i].states[s + h, :3] for i, s in zip(i2, t2, strict=True)])
        out.append(f"{1e3 * math.sqrt(float(((ol.state[:, h - 1, :3] - real) ** 2).mean())):.1f}")
    print(
        f"{name}: holdout {info['holdout_loss']:.3f} train {info['train_loss']:.3f} best {info['best_step']}/{info['steps']} ({time.time() - t0:.0f} s) object mm h=1/4/8: {' / '.join(out)}",
        flush=True,
    )
