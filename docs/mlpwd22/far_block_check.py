"""Is the block's open-loop error drift while the arm is far from it? (issue 22, seventeenth sitting)

    python docs/mlpwd22/far_block_check.py docs/mlpwd22/push_oracle4mm_s1_6k.npz 60 6 1e-5

The warm chain of `warm_chain.py` (weight decay as given), then the same open loop with the block held still
whenever the end effector is farther than a gate (xy) from it, the relative columns recomputed from the positions.
"""
import sys

import numpy as np
import torch
from warm_chain import N_SCORED, Data  # this script's directory
from worldsample_worldmodel.core.mlp_dynamics import MLPDynamicsConfig

# [proprio (7), push state (10)]: ee xyz 0:3, block xyz 7:10, target xy 10:12, block->target 12:14, ee->block 14:17


def hold_far_block(gate):
    def after_step(before, after):
        far = np.linalg.norm(before[:, 14:16], axis=1) > gate
        after[far, 7:10] = before[far, 7:10]  # the block stays where it was
        after[:, 12:14] = after[:, 10:12] - after[:, 7:9]  # block -> target from the block and target
        after[:, 14:17] = after[:, 7:10] - after[:, 0:3]  # ee -> block from the block and the end effector
        return after
    return after_step


def main():
    torch.set_num_threads(1)
    data, k, every = Data(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    scored = data.episodes[k:k + N_SCORED]
    model, _, _ = data.warm_chain(k, every, MLPDynamicsConfig(weight_decay=float(sys.argv[4])))
    # how far is the ee from the block when the real block moves?
    i = np.concatenate([np.arange(s, e) for s, e in data.episodes[:k]])
    mv = np.linalg.norm(data.nxt[i, 7:9] - data.obs[i, 7:9], axis=1) > 5e-4
    dist = np.linalg.norm(data.obs[i, 14:16], axis=1)
    print("block moves >0.5mm in", mv.mean().round(3), "of rows; ee-block xy distance [m] when it moves, percentiles "
          "50 / 95 / 99 / 100:", np.percentile(dist[mv], [50, 95, 99, 100]).round(3))
    for gate in (None, 0.06, 0.08, 0.10):
        block = [b for b, _, _ in data.scores(model, scored, after_step=None if gate is None else hold_far_block(gate))]
        print("gate", gate, "block mm h=1/4/8:", " / ".join(f"{x:.1f}" for x in block), flush=True)


if __name__ == "__main__":
    main()
