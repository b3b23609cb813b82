"""How much do fitting choices cut the MLP ensemble's object error? Push, the data of state_pose_check.py without the
pose columns (issue 22, sixteenth sitting). One fit per variant, seed 0.

    python docs/hor22/mlp_fit_variants.py
"""

import time

from state_pose_check import open_loop_errors, push_data, rmse_mm, without_pose
from worldsample_worldmodel.core.mlp_dynamics import (
    MLPDynamicsConfig,
    train_mlp_dynamics,
    transitions_from_episodes,
)

train, held, state_dim = push_data()
train, held = without_pose(train, state_dim), without_pose(held, state_dim)
transitions = transitions_from_episodes(train)
for name, cfg in [
    ("default", MLPDynamicsConfig()),
    ("patience 0 (2000 steps)", MLPDynamicsConfig(patience=0)),
    ("width 400", MLPDynamicsConfig(hidden_dim=400)),
    ("weight decay 1e-3", MLPDynamicsConfig(weight_decay=1e-3)),
    ("lr 3e-4, patience 6", MLPDynamicsConfig(lr=3e-4, patience=6)),
]:
    t0 = time.time()
    m, info = train_mlp_dynamics(transitions, cfg)
    out = " / ".join(f"{rmse_mm(open_loop_errors(m, held, h)[0]):.1f}" for h in (1, 4, 8))
    print(f"{name}: holdout {info['holdout_loss']:.3f} train {info['train_loss']:.3f} best {info['best_step']}/"
          f"{info['steps']} ({time.time() - t0:.0f} s) object mm h=1/4/8: {out}", flush=True)
