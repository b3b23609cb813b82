"""Does a regressor of the MLP ensemble's own error rank its peg errors better than its disagreement? (issue 22)

    python docs/pegmdn22/error_regressor_check.py runs/me_agree/modelerror/peg_insertion/data.pkl

Throw-away check (twenty-sixth sitting). PPL's uncertainty for the MLP state model is the members' disagreement. A
regressor (2 x 128 SiLU, log error) is fitted to the ensemble's out-of-fold one-step peg position errors on the
training episodes (the demos and the first 20 real rollouts; 5 folds by episode); the full ensemble then steps once
from each held-out real state. Printed: each score's Spearman with the held-out peg error, how many of the imagined
successes that are not real (docs/pegjam22) each puts in its top 30 %, and the share of the largest 10 % of errors
in its top 30 %."""

from __future__ import annotations

import pickle
import sys

import numpy as np
import torch
from worldsample_common.core.stats import spearman
from worldsample_control.core.sim.env import PROPRIO_DIM
from worldsample_control.core.sim.tasks import judge_states
from worldsample_worldmodel.core.mlp_dynamics import (
    MLPDynamicsConfig,
    episode_vectors,
    train_mlp_dynamics,
    transitions_from_episodes,
)

PEG = slice(PROPRIO_DIM, PROPRIO_DIM + 3)


def vectors(eps: list) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (np.concatenate([episode_vectors(e)[:-1] for e in eps]),
            np.concatenate([e.actions for e in eps]).astype(np.float32),
            np.concatenate([episode_vectors(e)[1:] for e in eps]))


def top(u: np.ndarray, q: float = 0.3) -> np.ndarray:
    return u >= np.quantile(u, 1 - q)


def main(path: str) -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    d = pickle.load(open(path, "rb"))
    train_eps, held = d["demos"] + d["real"][:20], d["held"]
    folds = np.arange(len(train_eps)) % 5
    xs, errs = [], []
    for f in range(5):
        fit = [e for e, g in zip(train_eps, folds, strict=True) if g != f]
        test = [e for e, g in zip(train_eps, folds, strict=True) if g == f]
        model, _ = train_mlp_dynamics(transitions_from_episodes(fit), MLPDynamicsConfig(seed=0))
        o, a, n = vectors(test)
        p = model.predict(o, a)["next_obs"]
        xs.append(np.concatenate([o, a], 1))
        errs.append(np.linalg.norm(p[:, PEG] - n[:, PEG], axis=1))
    x, e = np.concatenate(xs), np.concatenate(errs)
    print(f"out-of-fold rows {len(x)}, median peg error {np.median(e) * 1000:.1f} mm")
    mlp, _ = train_mlp_dynamics(transitions_from_episodes(train_eps), MLPDynamicsConfig(seed=0))
    o, a, n = vectors(held)
    out = mlp.predict(o, a)
    err = np.linalg.norm(out["next_obs"][:, PEG] - n[:, PEG], axis=1)
    real_ok = np.concatenate([ep.successes for ep in held]).astype(bool)
    false_ok = np.asarray(judge_states("peg_insertion", out["next_obs"][:, PROPRIO_DIM:])[0], bool) & ~real_ok
    mu, sd = x.mean(0), x.std(0) + 1e-6
    net = torch.nn.Sequential(torch.nn.Linear(x.shape[1], 128), torch.nn.SiLU(), torch.nn.Linear(128, 128),
                              torch.nn.SiLU(), torch.nn.Linear(128, 1))
    opt = torch.optim.Adam(net.parameters(), 1e-3, weight_decay=1e-4)
    xt = torch.tensor((x - mu) / sd, dtype=torch.float32)
    yt = torch.tensor(np.log(e + 1e-4), dtype=torch.float32)
    for _ in range(3000):
        i = torch.as_tensor(rng.integers(0, len(xt), 256))
        loss = ((net(xt[i])[:, 0] - yt[i]) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        learned = net(torch.tensor((np.concatenate([o, a], 1) - mu) / sd, dtype=torch.float32))[:, 0].numpy()
    dis = out["disagreement"]
    print(f"held out {len(o)}: Spearman with the peg error: disagreement {spearman(dis, err):.2f}, "
          f"learned error {spearman(learned, err):.2f}")
    print(f"false successes {int(false_ok.sum())}: in the top 30 % by disagreement {int(top(dis)[false_ok].sum())}, "
          f"by learned error {int(top(learned)[false_ok].sum())}")
    big = err > np.quantile(err, 0.9)
    print(f"largest 10 % of errors in the top 30 %: by disagreement {top(dis)[big].mean():.2f}, "
          f"by learned error {top(learned)[big].mean():.2f}")


if __name__ == "__main__":
    main(sys.argv[1])
