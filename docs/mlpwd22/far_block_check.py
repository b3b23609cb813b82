"""Is the block's open-loop error drift while the arm is far from it? (issue 22, seventeenth sitting)

    python docs/mlpwd22/far_block_check.py docs/mlpwd22/push_oracle4mm_s1_6k.npz 60 6 1e-5

The warm chain of `warm_chain.py` (weight decay as given), then the same open loop with the block held still
whenever the end effector is farther than a gate (xy) from it, the relative columns recomputed from the positions.
"""
import sys

import numpy as np
import torch
from warm_chain import Data, rmse_mm  # this script's directory
from worldsample_worldmodel.core.mlp_dynamics import MLPDynamicsConfig, train_mlp_dynamics

torch.set_num_threads(1)
data, k, every = Data(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
scored = data.episodes[k:k + 25]
m = None
for upto in range(every, k + 1, every):
    m, info = train_mlp_dynamics(data.transitions(data.episodes[:upto]), MLPDynamicsConfig(weight_decay=float(sys.argv[4])), init=m)
# how far is the ee from the block when the real block moves?
i = np.concatenate([np.arange(s, e) for s, e in data.episodes[:k]])
mv = np.linalg.norm(data.nxt[i, 7:9] - data.obs[i, 7:9], axis=1) > 5e-4
dist = np.linalg.norm(data.obs[i, 14:16], axis=1)  # ee_to_block xy (state cols 7:10 -> obs 14:17)
print("block moves >0.5mm in", mv.mean().round(3), "of rows; ee-block xy distance [m] when it moves, percentiles 50 / 95 / 99 / 100:", np.percentile(dist[mv], [50, 95, 99, 100]).round(3))
for gate in (None, 0.06, 0.08, 0.10):
    out = []
    for h in (1, 4, 8):
        st = np.concatenate([np.arange(s, e - h + 1) for s, e in scored])
        o = data.obs[st].copy()
        for j in range(h):
            o2 = m.predict(o, data.act[st + j])["next_obs"]
            if gate is not None:
                far = np.linalg.norm(o[:, 14:16], axis=1) > gate
                o2[far, 7:10] = o[far, 7:10]  # the block stays where it was
                o2[:, 12:14] = o2[:, 10:12] - o2[:, 7:9]   # block_to_target from the block and target
                o2[:, 14:17] = o2[:, 7:10] - o2[:, 0:3]    # ee_to_block from the block and the ee
            o = o2
        real = data.nxt[st + h - 1]
        out.append(rmse_mm(o[:, 7:10] - real[:, 7:10]))
    print("gate", gate, "block mm h=1/4/8:", " / ".join(f"{x:.1f}" for x in out), flush=True)
