"""Can a label recover the real successes the state model misses? Measured on a run's snapshot.

    python docs/mlpwd22/label_calibration.py RUN/snapshot.pt [--folds 2] [--horizons 1,2,3,4,5,6,7,8]

Loads the synthetic source of a state-learner run's snapshot (`worldsample_learner.drivers.snapshot`: the MLP
ensemble that rolls the branches and the held-out real episodes), predicts every held-out start open loop under
the recorded actions (`state_error.success_scores`) and scores three labels of "this imagined state is a
success" against the real step's success, with the held-out episodes split into folds (chosen on the others,
scored on one):

- the judge: the task's own success detector on the predicted state (what the runs use);
- a reward floor (`state_error.success_reward_floor`): the judge, or a judged shaped reward at least a floor;
- a classifier: a small MLP on the predicted state and the horizon, fitted to the real successes (class-weighted),
  its threshold the best F1 on the fitting folds. A learned success detector on the model's own states, the way
  HIL-SERL learns its reward classifier on real frames.

Prints precision / recall / F1 per fold and label. Reads only; writes nothing.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch


def prf(pred: np.ndarray, real: np.ndarray) -> tuple[float, float, float]:
    from worldsample_worldmodel.core.state_error import termination_metrics

    m = termination_metrics(real, pred.astype(np.float64))
    return m["precision"], m["recall"], m["f1"]


def fit_classifier(x: np.ndarray, y: np.ndarray, seed: int, steps: int = 3000) -> torch.nn.Module:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = torch.nn.Sequential(torch.nn.Linear(x.shape[1], 64), torch.nn.ReLU(), torch.nn.Linear(64, 64),
                              torch.nn.ReLU(), torch.nn.Linear(64, 1))
    opt = torch.optim.Adam(net.parameters(), 1e-3, weight_decay=1e-4)
    xt, yt = torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)
    pos_weight = torch.tensor(float((~y).sum()) / max(int(y.sum()), 1))
    for _ in range(steps):
        b = torch.as_tensor(rng.integers(len(x), size=256))
        loss = torch.nn.functional.binary_cross_entropy_with_logits(net(xt[b]).squeeze(-1), yt[b],
                                                                    pos_weight=pos_weight)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net


def cell(pred: np.ndarray, real: np.ndarray) -> str:
    return " / ".join(f"{v:.2f}" for v in prf(pred, real))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("snapshot")
    ap.add_argument("--folds", type=int, default=2)
    ap.add_argument("--horizons", default="1,2,3,4,5,6,7,8")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    from worldsample_control.core.sim.tasks import judge_states
    from worldsample_worldmodel.core.state_error import success_reward_floor, success_scores

    blob = torch.load(args.snapshot, weights_only=False, map_location="cpu")
    src = blob["source"]
    src = src.get("inner", src) if isinstance(src, dict) else src  # a SyntheticAudit keeps the model's source inside
    held = list(src.service.heldout)
    predictor, split = src._held_out_state_predictor(held)
    horizons = tuple(int(h) for h in args.horizons.split(","))
    s = success_scores(predictor, lambda task, x: judge_states(task, x), split, horizons, stride=1, max_starts=10 ** 6)
    real, imagined = s["real"], s["imagined"]
    feats = np.concatenate([s["state"], s["horizon"][:, None]], 1)
    print(f"{args.snapshot}: {len(held)} held-out episodes, {len(real)} (start, horizon) pairs, "
          f"{int(real.sum())} real successes, horizons {horizons}")
    eps = np.unique(s["episode"])
    np.random.default_rng(args.seed).shuffle(eps)
    print("| fold | real successes | judge P / R / F1 | reward floor P / R / F1 | classifier P / R / F1 |")
    print("|---|---|---|---|---|")
    for fold in range(args.folds):
        test = np.isin(s["episode"], eps[fold::args.folds])
        fit = ~test
        floor = success_reward_floor({k: v[fit] for k, v in s.items()})
        with_floor = imagined[test] if floor["floor"] is None else imagined[test] | (s["reward"][test] >= floor["floor"])
        mu, sd = feats[fit].mean(0), feats[fit].std(0) + 1e-6
        net = fit_classifier((feats[fit] - mu) / sd, real[fit], args.seed)
        with torch.no_grad():
            p = torch.sigmoid(net(torch.tensor((feats - mu) / sd, dtype=torch.float32)).squeeze(-1)).numpy()
        thr = max(np.linspace(0.05, 0.99, 60), key=lambda q: prf(p[fit] >= q, real[fit])[2])

        print(f"| {fold} | {int(real[test].sum())} | {cell(imagined[test], real[test])} | {cell(with_floor, real[test])} "
              f"(floor {floor['floor'] if floor['floor'] is None else round(floor['floor'], 3)}) | "
              f"{cell(p[test] >= thr, real[test])} (fit F1 {prf(p[fit] >= thr, real[fit])[2]:.2f}) |")


if __name__ == "__main__":
    main()
