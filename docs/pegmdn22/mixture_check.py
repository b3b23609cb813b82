"""Would a model of two outcomes stop imagining the jammed peg's insertion? (issue 22, twenty-sixth sitting)

    worldsample experiment modelerror --config rl --out runs/me_agree --tasks peg_insertion --set heldout_episodes=20
    python docs/pegmdn22/mixture_check.py runs/me_agree/modelerror/peg_insertion/data.pkl 2

The MLP ensemble (MBPO's model, `mlp_dynamics`) predicts the mean next state; at the hole's rim a peg either slides
in or jams, and the mean of the two is an imagined insertion of a jammed peg (docs/pegjam22). This throw-away check
fits, to the same transitions (the demos and the first 20 real rollouts of the modelerror run), a mixture-density
ensemble: 5 members like the MLP's (3 x 200 SiLU), each a mixture of K diagonal Gaussians over the standardised
change of [proprio, state], trained by the mixture's negative log-likelihood with a tenth held out. It steps every
model once from every held-out real state under the recorded action, judges the predicted state by the task's rule
(`judge_states`) and prints how many imagined successes are real ones (precision) and how many of the real ones it
imagines (recall): for the MLP's mean, one random MLP member, the mixture's mean and three draws of a sampled
component (random member, component drawn by its weight, the component's mean)."""

from __future__ import annotations

import copy
import pickle
import sys

import numpy as np
import torch
from worldsample_control.core.sim.env import PROPRIO_DIM
from worldsample_control.core.sim.tasks import judge_states
from worldsample_worldmodel.core.mlp_dynamics import (
    MLPDynamicsConfig,
    episode_vectors,
    train_mlp_dynamics,
    transitions_from_episodes,
)

MEMBERS, WIDTH, STEPS, BATCH = 5, 200, 3000, 256


def judge(s: np.ndarray) -> np.ndarray:
    return np.asarray(judge_states("peg_insertion", s[:, PROPRIO_DIM:])[0], bool)


class MixtureMember(torch.nn.Module):
    def __init__(self, i: int, o: int, k: int) -> None:
        super().__init__()
        self.k, self.o = k, o
        self.body = torch.nn.Sequential(torch.nn.Linear(i, WIDTH), torch.nn.SiLU(), torch.nn.Linear(WIDTH, WIDTH),
                                        torch.nn.SiLU(), torch.nn.Linear(WIDTH, WIDTH), torch.nn.SiLU(),
                                        torch.nn.Linear(WIDTH, k * (2 * o + 1)))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        y, k, o = self.body(x), self.k, self.o
        return y[:, :k], y[:, k:k + k * o].view(-1, k, o), y[:, k + k * o:].view(-1, k, o).clamp(-10, 1)

    def nll(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        logits, mu, logvar = self(x)
        lp = -0.5 * (((y[:, None] - mu) ** 2) * (-logvar).exp() + logvar).sum(-1) + torch.log_softmax(logits, -1)
        return -torch.logsumexp(lp, -1).mean()


def main(path: str, k: int) -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    d = pickle.load(open(path, "rb"))
    tr = transitions_from_episodes(d["demos"] + d["real"][:20])
    held = d["held"]
    obs = np.concatenate([episode_vectors(e)[:-1] for e in held])
    nxt = np.concatenate([episode_vectors(e)[1:] for e in held])
    act = np.concatenate([e.actions for e in held]).astype(np.float32)
    real_ok = np.concatenate([e.successes for e in held]).astype(bool)
    assert (judge(nxt) == real_ok).all(), "the task's rule on the real next states must give the recorded successes"
    print(f"{len(obs)} one-step predictions from {len(held)} held-out rollouts, {int(real_ok.sum())} real successes; "
          f"{len(tr)} training transitions; mixture of {k}")

    def report(name: str, pred: np.ndarray) -> None:
        ok = judge(pred)
        tp = int((ok & real_ok).sum())
        peg = np.abs(pred - nxt)[:, PROPRIO_DIM:PROPRIO_DIM + 3].mean() * 1000
        print(f"  {name}: {int(ok.sum())} imagined successes, {tp} real (precision {tp / max(int(ok.sum()), 1):.2f}, "
              f"recall {tp / real_ok.sum():.2f}); peg position error {peg:.2f} mm")

    mlp, _ = train_mlp_dynamics(tr, MLPDynamicsConfig(seed=0))
    report("MLP ensemble, member mean", mlp.predict(obs, act)["next_obs"])
    members = mlp.predict(obs, act, members=True)["member_next_obs"]
    report("MLP ensemble, one random member", members[rng.integers(0, len(members), len(obs)), np.arange(len(obs))])

    o_mu, o_sd = tr.obs.mean(0), tr.obs.std(0) + 1e-6
    delta = tr.next_obs - tr.obs
    d_mu, d_sd = delta.mean(0), delta.std(0) + 1e-6
    x = torch.tensor(np.concatenate([(tr.obs - o_mu) / o_sd, np.clip(tr.actions, -1, 1)], 1), dtype=torch.float32)
    y = torch.tensor((delta - d_mu) / d_sd, dtype=torch.float32)
    nets = [MixtureMember(x.shape[1], y.shape[1], k) for _ in range(MEMBERS)]
    opt = torch.optim.Adam([p for n in nets for p in n.parameters()], 1e-3, weight_decay=1e-5)
    hold = np.arange(len(x)) % 10 == 0
    train, hd = np.flatnonzero(~hold), torch.as_tensor(np.flatnonzero(hold))
    best = [(np.inf, None)] * MEMBERS
    for step in range(1, STEPS + 1):
        loss = sum(n.nll(x[i], y[i]) for n in nets for i in [torch.as_tensor(rng.choice(train, BATCH))])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 100 == 0:
            with torch.no_grad():
                for m, n in enumerate(nets):
                    h = float(n.nll(x[hd], y[hd]))
                    if h < best[m][0]:
                        best[m] = (h, copy.deepcopy(n.state_dict()))
    for n, (_, sd) in zip(nets, best, strict=True):
        n.load_state_dict(sd)
    print(f"  mixture: held-out NLL per member {', '.join(f'{b[0]:.1f}' for b in best)}")
    with torch.no_grad():
        xq = torch.tensor(np.concatenate([(obs - o_mu) / o_sd, np.clip(act, -1, 1)], 1), dtype=torch.float32)
        outs = [n(xq) for n in nets]
        logits = torch.stack([o[0] for o in outs])  # (E, B, K)
        mu = torch.stack([o[1] for o in outs])  # (E, B, K, O)
        mean = (torch.softmax(logits, -1)[..., None] * mu).sum(2).mean(0).numpy()
        report("mixture, its mean", obs + mean * d_sd + d_mu)
        rows = np.arange(len(obs))
        for draw in range(3):
            m = rng.integers(0, MEMBERS, len(obs))
            comp = torch.distributions.Categorical(logits=logits[m, rows]).sample()
            report(f"mixture, a sampled component (draw {draw})", obs + mu[m, rows, comp].numpy() * d_sd + d_mu)
        fp = judge(mlp.predict(obs, act)["next_obs"]) & ~real_ok
        w = np.sort(torch.softmax(logits, -1).mean(0).numpy(), 1)[:, ::-1]
        print(f"  mixture weights, largest first: {w[fp].mean(0).round(2)} where the MLP imagines a false success, "
              f"{w[~fp].mean(0).round(2)} elsewhere")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 2)
