"""Where the MLP ensemble's imagined peg-insertion successes come from (issue 22; docs/results.md).

    worldsample experiment modelerror --config rl --out runs/me_agree --tasks peg_insertion --set heldout_episodes=20
    python docs/pegjam22/false_successes.py runs/me_agree/modelerror/peg_insertion/data.pkl

Fits the MLP ensemble (MBPO's model, `mlp_dynamics`, seed 0) to the demos and the first 20 real rollouts the
modelerror run recorded, steps it once from every held-out real state under the recorded action, and judges the
predicted state by the task's own rule (`judge_states`). For each imagined success that is no real success it
prints the real state now, the real next state and the predicted one: the peg's insertion depth below the rim and
its distance from the hole's axis, in mm, and sums up how many were a real peg that did not go deeper."""

from __future__ import annotations

import pickle
import sys

import numpy as np
from worldsample_control.core.sim.env import PROPRIO_DIM
from worldsample_control.core.sim.tasks import PegInsertionTask, judge_states
from worldsample_worldmodel.core.mlp_dynamics import (
    MLPDynamicsConfig,
    train_mlp_dynamics,
    transitions_from_episodes,
)
from worldsample_worldmodel.core.source import agreed_success
from worldsample_worldmodel.core.state_error import MLPPredictor, open_loop_starts

TASK = PegInsertionTask()


def depth_and_offset(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p, rim = s[..., 0:3], s[..., 3:6]
    return (rim[..., 2] - (p[..., 2] - TASK.peg_half[2])) * 1000, np.linalg.norm(p[..., :2] - rim[..., :2], axis=-1) * 1000


def main(path: str) -> None:
    d = pickle.load(open(path, "rb"))
    mlp, _ = train_mlp_dynamics(transitions_from_episodes(d["demos"] + d["real"][:20]), MLPDynamicsConfig(seed=0))
    held = d["held"]
    ei, t = open_loop_starts(held, 1, 0)
    ok = t + 1 <= np.array([held[i].length for i in ei])
    ei, t = ei[ok], t[ok]
    ol = MLPPredictor(mlp, PROPRIO_DIM).predict(held, ei, t, np.stack([held[i].actions[s:s + 1] for i, s in zip(ei, t, strict=True)]))
    pred = ol.state[:, 0]
    now = np.stack([held[i].states[s] for i, s in zip(ei, t, strict=True)])
    nxt = np.stack([held[i].states[s + 1] for i, s in zip(ei, t, strict=True)])
    real_ok = np.array([held[i].successes[s] for i, s in zip(ei, t, strict=True)])
    print(f"success: {TASK.insert_depth * 1000:.0f} mm below the rim and within {TASK.hole_half * 1000:.0f} mm of the axis; "
          f"{len(ei)} one-step predictions from {len(held)} held-out rollouts, {int(real_ok.sum())} real successes")
    for agreement in (0.0, 1.0):
        ok_pred, _ = agreed_success(lambda task, s: judge_states(task, s), "peg_insertion", pred,
                                    ol.member_state[:, :, 0], agreement)
        fp = ok_pred & ~real_ok
        n_now, _ = depth_and_offset(now[fp])
        n_next, off_next = depth_and_offset(nxt[fp])
        p_next, _ = depth_and_offset(pred[fp])
        stuck = np.abs(n_next - n_now) < 1.0
        print(f"members agreeing {agreement:g}: {int(ok_pred.sum())} imagined successes, {int((ok_pred & real_ok).sum())} real; "
              f"of the {int(fp.sum())} false ones the real peg was {np.median(n_next):.1f} mm deep (median; "
              f"{int(((n_next >= 20) & (n_next < 25)).sum())} at 20-25 mm), moved < 1 mm deeper in {int(stuck.sum())}, "
              f"{np.median(off_next):.1f} mm off the axis; predicted {np.median(p_next):.1f} mm deep "
              f"({np.median(p_next - n_now):+.1f} mm in the step against the real {np.median(n_next - n_now):+.1f})")
    fp = judge_states("peg_insertion", pred)[0] & ~real_ok
    print("first 12 false successes (mm): depth / offset now -> real next -> predicted next")
    for a, b, c in list(zip(np.stack(depth_and_offset(now[fp]), 1), np.stack(depth_and_offset(nxt[fp]), 1),
                            np.stack(depth_and_offset(pred[fp]), 1), strict=True))[:12]:
        print(f"  {a[0]:5.1f} / {a[1]:4.1f} -> {b[0]:5.1f} / {b[1]:4.1f} -> {c[0]:5.1f} / {c[1]:4.1f}")


if __name__ == "__main__":
    main(sys.argv[1])
