"""Why does a peg jam, and does the peg's tilt make the model's depth better? (issue 22, twenty-second sitting)

    python docs/mlpwd22/peg_tilt.py RUN/snapshot.pt 480 /tmp/peg_tilt_episodes.pkl

Rolls the snapshot's policy on peg insertion (no rendering; action noise 0.1 / 0.3 / 0.5 in turn) for the given
number of episodes and records the peg's rotation beside the privileged state (kept in the pickle: a second call
reads it). Prints how the failed episodes' pegs tipped in the fingers (the sine of the peg axis's angle from
vertical, and where the peg was when it first passed 0.2), then fits the runs' MLP state model (weight decay 1e-3,
translation-free, no reward or termination in the loss) on three quarters of the episodes with and without the
peg's tilt (the peg axis's x, y) in its input and output, and scores the predicted depth (peg bottom above the rim)
open loop under the recorded actions on the other quarter, at h = 1, 4, 8: near the hole (within 15 mm, bottom
less than 2 cm above the rim) with the peg upright or tipped (> 0.15), and elsewhere; and the same with the
probabilistic members (`MLPDynamicsConfig.probabilistic`). Beside each, the model's uncertainty as PPL reads it (the
disagreement, averaged over the branch's steps, over the fit's held-out median) there and elsewhere, and its Spearman
correlation with the depth error.
"""

from __future__ import annotations

import pickle
import sys

import numpy as np
import torch

TIP = 0.2  # sine of the peg axis's angle from vertical that counts as tipped in the fingers


def rollout(snapshot: str, n_eps: int) -> list[dict[str, np.ndarray]]:
    import mujoco
    from worldsample_control.core.sim import make_env
    from worldsample_control.core.sim.config import EnvConfig

    policy = torch.load(snapshot, weights_only=False, map_location="cpu")["policy"]
    env = make_env("peg_insertion", EnvConfig(render=False, seed=7))
    pid = env.model.body("peg").id

    def rot() -> np.ndarray:  # the peg axis's x, y (tilt); the peg's x axis's x, y (yaw)
        m = np.zeros(9)
        mujoco.mju_quat2Mat(m, env.data.xquat[pid].copy())
        m = m.reshape(3, 3)
        return np.array([m[0, 2], m[1, 2], m[0, 0], m[1, 0]])

    data = []
    for i in range(n_eps):
        obs, noise = env.reset(seed=5000 + i), (0.1, 0.3, 0.5)[i % 3]
        rec = {"proprio": [obs.proprio], "state": [obs.state], "rot": [rot()], "actions": [], "terminated": []}
        while True:
            a = policy.act(obs, noise_std=noise)
            res = env.step(a)
            obs = res.observation
            for k, v in (("proprio", obs.proprio), ("state", obs.state), ("rot", rot()), ("actions", a),
                         ("terminated", bool(res.terminated))):
                rec[k].append(v)
            if res.terminated or res.truncated:
                break
        data.append({k: np.array(v, bool if k == "terminated" else np.float32) for k, v in rec.items()})
    env.close()
    return data


def tipping(data: list[dict[str, np.ndarray]]) -> None:
    failed = [e for e in data if not e["terminated"].any()]
    tips = []
    for e in failed:
        t = np.linalg.norm(e["rot"][:, :2], axis=1)
        if (t > TIP).any():
            i = max(1, int(np.argmax(t > TIP)))
            tips.append((i, 1000 * np.linalg.norm(e["state"][i - 1, 6:8]), 1000 * e["state"][i - 1, 8]))
    ok_tilt = [np.linalg.norm(e["rot"][:, :2], axis=1).max() for e in data if e["terminated"].any()]
    print(f"{len(data)} episodes, {len(data) - len(failed)} successes, {sum(len(e['actions']) for e in data)} steps; "
          f"{len(failed)} failed, {len(tips)} of them with the peg tipped past {TIP}")
    if tips:
        t = np.array(tips)
        print(f"  when it tipped: step {np.median(t[:, 0]):.0f} (median); the peg off the hole's centre "
              f"{np.percentile(t[:, 1], [10, 50, 90]).round(1)} mm (10/50/90 %), its bottom above the rim "
              f"{np.percentile(t[:, 2], [10, 50, 90]).round(1)} mm")
    print(f"  the successful episodes' largest tilt: median {np.median(ok_tilt):.3f}")


def vectors(e: dict[str, np.ndarray], tilt: bool) -> np.ndarray:
    return np.concatenate([e["proprio"], e["state"]] + ([e["rot"][:, :2]] if tilt else []), 1)


def transitions(eps: list[dict[str, np.ndarray]], tilt: bool):
    from worldsample_worldmodel.core.mlp_dynamics import Transitions

    o = np.concatenate([vectors(e, tilt)[:-1] for e in eps])
    n = np.concatenate([vectors(e, tilt)[1:] for e in eps])
    a = np.concatenate([e["actions"] for e in eps])
    d = np.concatenate([e["terminated"] for e in eps]).astype(np.float32)
    return Transitions(o.astype(np.float32), a, n.astype(np.float32), np.zeros(len(o), np.float32), d)


def rmse_bias(err: np.ndarray, mask: np.ndarray) -> str:
    e = err[mask]
    return f"{1000 * np.sqrt((e ** 2).mean()):.1f} mm / {1000 * e.mean():+.1f} (n={mask.sum()})"


def depth_error(data: list[dict[str, np.ndarray]]) -> None:
    from worldsample_common.core.stats import spearman
    from worldsample_control.core.sim.tasks import model_blind_dims
    from worldsample_worldmodel.core.mlp_dynamics import MLPDynamicsConfig, train_mlp_dynamics

    p = data[0]["proprio"].shape[1]
    depth = p + 8  # peg_bottom_above_rim
    idx = np.random.default_rng(1).permutation(len(data))
    test, train = [data[i] for i in idx[: len(data) // 4]], [data[i] for i in idx[len(data) // 4:]]
    for name, tilt, probabilistic in (("the state as the runs have it", False, False),
                                      ("the tilt in the state", True, False),
                                      ("the state as the runs have it, probabilistic members", False, True)):
        cfg = MLPDynamicsConfig(weight_decay=1e-3, reward_weight=0.0, done_weight=0.0, probabilistic=probabilistic,
                                ignore_inputs=model_blind_dims("peg_insertion", p), seed=0)
        model, metrics = train_mlp_dynamics(transitions(train, tilt), cfg)
        ref = metrics["holdout_disagreement"]  # what the runs divide the disagreement by (PPL's uncertainty)
        rows = []
        for h in (1, 4, 8):
            err, near, tipped, unc = [], [], [], []
            for e in test:
                x, n = vectors(e, tilt), len(e["actions"])
                starts = np.arange(0, n - h + 1)
                if not len(starts):
                    continue
                o, acc = x[starts], np.zeros(len(starts))
                for k in range(h):
                    out = model.predict(o, e["actions"][starts + k])
                    o, acc = out["next_obs"], acc + out["disagreement"]
                err.append(o[:, depth] - x[starts + h, depth])
                unc.append(acc / h / ref)
                near.append((np.linalg.norm(x[starts, p + 6:p + 8], axis=1) < 0.015) & (x[starts, depth] < 0.02))
                tipped.append(np.linalg.norm(e["rot"][starts, :2], axis=1) > 0.15)
            err, near, tipped, unc = map(np.concatenate, (err, near, tipped, unc))
            rim = near & ~tipped
            rows.append(f"h={h}: near the hole, upright {rmse_bias(err, rim)}; tipped "
                        f"{rmse_bias(err, near & tipped)}; elsewhere {rmse_bias(err, ~near)}\n"
                        f"       uncertainty (branch mean / the fit's held-out median): near the hole, upright "
                        f"{unc[rim].mean():.2f}, elsewhere {unc[~near].mean():.2f}; Spearman with the depth error: "
                        f"all {spearman(unc, np.abs(err)):.2f}, near the hole, upright {spearman(unc[rim], np.abs(err[rim])):.2f}")
        print(f"{name} (depth RMSE / mean error)")
        print("  " + "\n  ".join(rows))


def main() -> None:
    torch.set_num_threads(1)
    snapshot, n_eps, cache = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    try:
        with open(cache, "rb") as f:
            data = pickle.load(f)
    except FileNotFoundError:
        data = rollout(snapshot, n_eps)
        with open(cache, "wb") as f:
            pickle.dump(data, f)
    tipping(data)
    depth_error(data)


if __name__ == "__main__":
    main()
