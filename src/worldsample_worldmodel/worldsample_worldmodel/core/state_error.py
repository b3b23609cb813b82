"""The world model's error on what the state learner eats: predicted state, proprio, reward, termination.

From a real step ``t`` of a held-out episode, a predictor is rolled open loop under the episode's
*recorded* actions a_t .. a_{t+h-1}; its prediction for step t+h is compared with the real one:

- the privileged state, per group of dimensions (`state_groups`: ``object`` positions, static
  ``target`` positions, ``object_to_target`` and ``ee_to_object`` relative vectors), RMSE in metres;
  ``object_moving``: the object RMSE on the starts where the real object moved more than
  ``moving_threshold`` metres between t and t+h (a model that never moves anything scores well on
  the object where it sits still);
- the proprio, per group (`PROPRIO_GROUPS`: end-effector position [m], gripper width [m],
  end-effector velocity [m/s]), RMSE;
- ``object_motion_gain``: on those moving starts, the least-squares gain of the predicted object displacement
  (from t) on the real one: 1 = the motion in full, < 1 = a sluggish model (the object lags in imagination).
  A model that predicts the conditional *mean* of an uncertain motion has this gain below 1 too (it equals the
  R^2 of the prediction), so read it beside ``object_motion_calibration``, the least-squares gain of the real
  displacement on the predicted one: 1 = calibrated (when it predicts a move of x, the object moves x on
  average), > 1 = the model under-predicts motion it is sure of (a real bias), < 1 = it over-predicts;
- the reward of the step into t+h (MAE, and ``reward_bias`` = mean predicted - real: < 0 = pessimistic), and
  the termination at that step: accuracy, F1 and Brier
  score of the predicted probability (threshold 0.5), with the number of real terminations.

Starts: every ``stride``-th step from ``first`` (default 1: copy-state's reward needs the step into
the start) of every episode; horizon h scores the starts with t + h <= T (so the steps into an
episode's termination count at every horizon). Every predictor sees the very same starts.

A predictor is anything with ``name`` and ``predict(episodes, ep_idx, t, actions) -> OpenLoop``
(``actions`` (B, H, A): the recorded actions, zero past an episode's end). Three are here:
`CopyState` (no motion), `MLPPredictor` (`mlp_dynamics`) and `VideoModelPredictor` (the video
world model carrying the state with its proprio, ``VideoSourceConfig.state_in_proprio``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from typing import Any, Protocol

import numpy as np
from worldsample_common.core.episode import Episode
from worldsample_common.core.stats import episode_bootstrap_se, motion_gains, skill_past_baseline, spearman

# the simulator's proprio (worldsample_control.core.sim.env.PROPRIO_LABELS): ee xyz, gripper width, ee velocity
PROPRIO_GROUPS: dict[str, tuple[int, ...]] = {"ee_position": (0, 1, 2), "gripper": (3,), "ee_velocity": (4, 5, 6)}
STATE_GROUPS = ("object", "target", "object_to_target", "ee_to_object")
TARGETS = ("target", "hole")  # names of static target positions (bins: "<colour>_bin")


def state_group(label: str) -> str:
    """The group of one privileged-state label (see the tasks' ``state_labels``)."""
    base = re.sub(r"_[xyz]$", "", label)
    if base.startswith("ee_to_"):
        return "ee_to_object"
    if "_to_" in base or "_above_" in base:
        return "object_to_target"
    if base in TARGETS or base.endswith("_bin"):
        return "target"
    return "object"


def state_groups(labels: tuple[str, ...] | list[str]) -> dict[str, list[int]]:
    """Group -> indices of the state dimensions in it (groups without dimensions left out)."""
    out: dict[str, list[int]] = {g: [] for g in STATE_GROUPS}
    for i, lab in enumerate(labels):
        out[state_group(lab)].append(i)
    return {g: idx for g, idx in out.items() if idx}


@dataclass
class OpenLoop:
    """Predictions of B open-loop rollouts of H steps: proprio (B, H, P), state (B, H, S), reward (B, H),
    terminated_prob (B, H); step k (0-based) is the prediction for t + k + 1. ``uncertainty`` (B, H), when the
    predictor has one: what it reports for each step (the MLP ensemble's disagreement on that step)."""

    proprio: np.ndarray
    state: np.ndarray
    reward: np.ndarray
    terminated_prob: np.ndarray
    uncertainty: np.ndarray | None = None
    member_state: np.ndarray | None = None  # (E, B, H, S): each ensemble member's own step from the rolled state



class Predictor(Protocol):
    name: str

    def predict(self, episodes: list[Episode], ep_idx: np.ndarray, t: np.ndarray,
                actions: np.ndarray) -> OpenLoop: ...


def open_loop_starts(episodes: list[Episode], stride: int = 1, first: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(episode index, step) of every start: steps first, first + stride, ... < T of each episode."""
    if stride < 1 or first < 0:
        raise ValueError(f"stride must be >= 1 and first >= 0, got {stride}, {first}")
    ep_idx, ts = [], []
    for i, e in enumerate(episodes):
        for t in range(first, e.length, stride):
            ep_idx.append(i)
            ts.append(t)
    return np.array(ep_idx, np.int64), np.array(ts, np.int64)


def recorded_actions(episodes: list[Episode], ep_idx: np.ndarray, t: np.ndarray, hmax: int) -> np.ndarray:
    """The recorded actions a_t .. a_{t+hmax-1} of every start (B, hmax, A), zero past the episode's end."""
    a_dim = episodes[0].actions.shape[1]
    out = np.zeros((len(t), hmax, a_dim), np.float32)
    for b, (i, s) in enumerate(zip(ep_idx, t, strict=True)):
        a = episodes[i].actions[s: s + hmax]
        out[b, :len(a)] = a
    return out


# --------------------------------------------------------------------------- predictors
class CopyState:
    """No motion: every predicted step is the start's proprio and state, the reward of the step into the start
    (step 0's own reward when the start is step 0), no termination."""

    name = "copy-state"

    def predict(self, episodes, ep_idx, t, actions) -> OpenLoop:
        h = actions.shape[1]
        p = np.stack([episodes[i].proprio[s] for i, s in zip(ep_idx, t, strict=True)])
        st = np.stack([episodes[i].states[s] for i, s in zip(ep_idx, t, strict=True)])
        r = np.array([episodes[i].rewards[max(s - 1, 0)] for i, s in zip(ep_idx, t, strict=True)], np.float32)
        return OpenLoop(np.repeat(p[:, None], h, 1), np.repeat(st[:, None], h, 1), np.repeat(r[:, None], h, 1),
                        np.zeros((len(t), h), np.float32))


class MLPPredictor:
    """A `mlp_dynamics.MLPDynamics` on [proprio, state], rolled on its own predictions (member mean)."""

    def __init__(self, model, proprio_dim: int, name: str = "MLP ensemble") -> None:
        self.model, self.p, self.name = model, int(proprio_dim), name

    def predict(self, episodes, ep_idx, t, actions) -> OpenLoop:
        from .mlp_dynamics import episode_vectors

        o = np.stack([episode_vectors(episodes[i])[s] for i, s in zip(ep_idx, t, strict=True)])
        obs, rew, term, dis, mem = [], [], [], [], []
        for k in range(actions.shape[1]):
            out = self.model.predict(o, actions[:, k], members=True)
            o = out["next_obs"]
            obs.append(o)
            rew.append(out["reward"])
            term.append(out["terminated_prob"])
            dis.append(out["disagreement"])
            mem.append(out["member_next_obs"][..., self.p:])
        obs_a = np.stack(obs, 1)
        return OpenLoop(obs_a[..., :self.p], obs_a[..., self.p:], np.stack(rew, 1), np.stack(term, 1),
                        np.stack(dis, 1), np.stack(mem, 2))


class VideoModelPredictor:
    """The video world model (`model.WorldModel`) trained with the state appended to the proprio: started from
    the real frame history and [proprio, state] at t, stepped with the recorded actions (as `fidelity` does)."""

    def __init__(self, model, proprio_dim: int, name: str = "video world model", batch_size: int = 256,
                 static: np.ndarray | None = None) -> None:
        """``static``: state dimensions carried over from the start instead of predicted, as
        `source.VideoWorldModelSource` does with ``carry_static_state`` (None: every one predicted)."""
        self.model, self.p, self.name, self.batch_size = model, int(proprio_dim), name, int(batch_size)
        self.static = static

    def predict(self, episodes, ep_idx, t, actions) -> OpenLoop:
        import torch

        from .data import WindowSampler
        from .mlp_dynamics import episode_vectors
        from .source import carry_static

        m = self.model
        eps = [replace(e, proprio=episode_vectors(e), states=None) for e in episodes]
        if eps[0].proprio.shape[1] != m.proprio_dim:
            raise ValueError(f"the world model's proprio has {m.proprio_dim} dims, proprio + state of the episodes "
                             f"{eps[0].proprio.shape[1]}: was it trained with state_in_proprio?")
        h = m.cfg.history
        sampler = WindowSampler(eps, m.cameras, h, 1)
        parts: list[OpenLoop] = []
        m.eval()
        for s in range(0, len(t), self.batch_size):
            sl = slice(s, s + self.batch_size)
            win = sampler.window(ep_idx[sl], t[sl])
            props, rews, terms = [], [], []
            with torch.no_grad():
                hist = m.encode_history({c: win.frames[c][:, :h] for c in m.cameras}, win.proprio[:, 0])
                proprio = torch.as_tensor(win.proprio[:, 0], device=m.device)
                for k in range(actions.shape[1]):
                    res = m.step(hist, proprio, actions[sl, k])
                    hist, proprio = res["hist"], res["proprio"]
                    props.append(proprio.cpu().numpy())
                    rews.append(res["reward"].cpu().numpy())
                    terms.append(res["terminated_prob"].cpu().numpy())
            pa = np.stack(props, 1)
            state = carry_static(pa[..., self.p:], win.proprio[:, 0, self.p:], self.static)
            parts.append(OpenLoop(pa[..., :self.p], state, np.stack(rews, 1), np.stack(terms, 1)))
        return OpenLoop(*(np.concatenate([getattr(x, f) for x in parts]) for f in
                          ("proprio", "state", "reward", "terminated_prob")))


class JudgedPredictor:
    """Another predictor whose reward and termination are the task's success detector and reward on its
    *predicted state* (``judge(task, states (N, S)) -> (success, reward)``, `source.judged`'s labelling)
    instead of its own outcome head; termination probability 1 where the state counts as success. With
    ``agreement`` > 0 (an inner predictor that reports its members' states), `source.agreed_success`: a success
    stands only where that fraction of the members predict one too."""

    def __init__(self, inner: Predictor, judge, name: str | None = None, agreement: float = 0.0) -> None:
        self.inner, self.judge, self.agreement = inner, judge, float(agreement)
        self.name = name or (f"{inner.name}, judged" + (f", {self.agreement:.0%} of members agree" if agreement else ""))

    def predict(self, episodes, ep_idx, t, actions) -> OpenLoop:
        from .source import agreed_success

        ol = self.inner.predict(episodes, ep_idx, t, actions)
        b, h, s = ol.state.shape
        if self.agreement > 0 and ol.member_state is None:
            raise ValueError(f"JudgedPredictor: agreement needs member states, {self.inner.name} reports none")
        members = None if ol.member_state is None else ol.member_state.reshape(ol.member_state.shape[0], -1, s)
        ok, rew = agreed_success(self.judge, episodes[0].task, ol.state.reshape(-1, s), members, self.agreement)
        return replace(ol, reward=np.asarray(rew, np.float32).reshape(b, h),
                       terminated_prob=np.asarray(ok, np.float32).reshape(b, h))


def real_future(episodes, ep_idx, t, h: int) -> OpenLoop:
    """What really followed each start (episode ``ep_idx[b]``, step ``t[b]``) for ``h`` steps, as an `OpenLoop`
    (termination as probability 0 / 1); zeros past an episode's end."""
    b = len(t)
    p = np.zeros((b, h, episodes[0].proprio.shape[1]), np.float32)
    s = np.zeros((b, h, episodes[0].states.shape[1]), np.float32)
    r = np.zeros((b, h), np.float32)
    d = np.zeros((b, h), np.float32)
    for j, (i, t0) in enumerate(zip(ep_idx, t, strict=True)):
        e = episodes[i]
        n = min(h, e.length - t0)
        p[j, :n] = e.proprio[t0 + 1: t0 + 1 + n]
        s[j, :n] = e.states[t0 + 1: t0 + 1 + n]
        r[j, :n] = e.rewards[t0: t0 + n]
        d[j, :n] = e.terminated[t0: t0 + n]
    return OpenLoop(p, s, r, d)


def entry_spread(episodes: list[Episode]) -> np.ndarray:
    """The spread (std) of every [proprio, state] entry over ``episodes``: metres and metres per second in one
    number once divided by it."""
    return np.concatenate([np.concatenate([e.proprio, e.states], 1) for e in episodes]).std(0) + 1e-6


def _sampled_starts(who: str, episodes: list[Episode], horizons, stride: int, max_starts: int, seed: int):
    """(sorted horizons, episode index, step, recorded actions (B, H, A), `real_future`, episode lengths) of at most
    ``max_starts`` starts (every ``stride``-th step, a seeded sample of them), for `state_skill` and `success_counts`."""
    horizons = tuple(sorted({int(h) for h in horizons}))
    if not episodes or not horizons or horizons[0] < 1:
        raise ValueError(f"{who}: needs episodes and positive horizons, got {len(episodes)} episodes, {horizons}")
    ep_idx, ts = open_loop_starts(episodes, stride, first=0)
    if len(ts) > max_starts:
        keep = np.sort(np.random.default_rng(seed).choice(len(ts), max_starts, replace=False))
        ep_idx, ts = ep_idx[keep], ts[keep]
    hmax = horizons[-1]
    return (horizons, ep_idx, ts, recorded_actions(episodes, ep_idx, ts, hmax), real_future(episodes, ep_idx, ts, hmax),
            np.array([episodes[i].length for i in ep_idx]))


def state_skill(predictor: Predictor, episodes: list[Episode], horizons=(1, 4, 8), stride: int = 2,
                max_starts: int = 512, seed: int = 0) -> list[float]:
    """Per horizon, ``1 - RMSE(predictor) / RMSE(copy-state)`` of the predicted [proprio, state] against what
    really followed, open loop under the recorded actions from starts on ``episodes`` (with states), each entry
    divided by its spread over the episodes (metres and metres per second in one number): 1 = exact, 0 = no better
    than predicting no motion, < 0 = worse. What a state learner eats, scored like `fidelity.feature_skill` scores
    what a pixel learner reads; NaN at a horizon without a start."""
    horizons, ep_idx, ts, actions, real, lengths = _sampled_starts("state_skill", episodes, horizons, stride,
                                                                   max_starts, seed)
    ol, copy = predictor.predict(episodes, ep_idx, ts, actions), CopyState().predict(episodes, ep_idx, ts, actions)
    scale = entry_spread(episodes)
    out = []
    for h in horizons:
        ok, k = ts + h <= lengths, h - 1
        if not ok.any():
            out.append(float("nan"))
            continue
        truth = np.concatenate([real.proprio[ok, k], real.state[ok, k]], 1)
        err = [_rmse((np.concatenate([x.proprio[ok, k], x.state[ok, k]], 1) - truth) / scale) for x in (ol, copy)]
        out.append(skill_past_baseline(*err))
    return out


def success_counts(predictor: Predictor, judge, episodes: list[Episode], horizons=(1, 4, 8), stride: int = 2,
                   max_starts: int = 512, seed: int = 0) -> tuple[int, int]:
    """(imagined successes that were real ones, imagined successes): ``predictor``'s states judged by ``judge``
    (`JudgedPredictor`) at each horizon, open loop under the recorded actions from starts on ``episodes`` (with
    states; the starts of `state_skill`), against the real step's termination (a success in simulation)."""
    s = success_scores(predictor, judge, episodes, horizons, stride, max_starts, seed)
    return int((s["imagined"] & s["real"]).sum()), int(s["imagined"].sum())


def success_scores(predictor: Predictor, judge, episodes: list[Episode], horizons=(1, 4, 8), stride: int = 2,
                   max_starts: int = 512, seed: int = 0) -> dict[str, np.ndarray]:
    """Every (start, horizon) pair of `success_counts`, flat: ``imagined`` (the judge's success on the predicted
    state), ``reward`` (the judge's reward there), ``real`` (the real step terminated: a success), ``real_reward``
    (the real step's reward), ``state`` (the predicted state), ``horizon`` and ``episode`` (its index in
    ``episodes``)."""
    horizons, ep_idx, ts, actions, real, lengths = _sampled_starts("success_scores", episodes, horizons, stride,
                                                                   max_starts, seed)
    ol = JudgedPredictor(predictor, judge).predict(episodes, ep_idx, ts, actions)
    keys = ("imagined", "reward", "real", "real_reward", "state", "horizon", "episode")
    out: dict[str, list] = {k: [] for k in keys}
    for h in horizons:
        ok, k = ts + h <= lengths, h - 1
        out["imagined"].append(ol.terminated_prob[ok, k] > 0.5)
        out["reward"].append(ol.reward[ok, k])
        out["real"].append(real.terminated_prob[ok, k] > 0.5)
        out["real_reward"].append(real.reward[ok, k])
        out["state"].append(ol.state[ok, k])
        out["horizon"].append(np.full(int(ok.sum()), h))
        out["episode"].append(ep_idx[ok])
    return {k: np.concatenate(v) for k, v in out.items()}


def success_reward_floor(scores: dict[str, np.ndarray], min_real: int = 10) -> dict[str, Any]:
    """The judged reward from which an imagined state is taken for a success, chosen on `success_scores`: the
    floor among the judged rewards of the imagined non-successes that maximises F1 of ``imagined or reward >=
    floor`` against the real successes (ties: the highest floor); ``floor`` None where the judge alone scores
    best, or where fewer than ``min_real`` real successes were there to choose on. A model that lags behind a
    real success (measured on peg insertion: the imagined peg 8.5 mm above the real one on a missed insertion)
    reaches a high shaped reward there without the success; the floor asks whether such states can count. On peg
    it barely can: the misses' rewards overlap the real non-successes' (docs/results.md, "Can a label recover
    the missed insertions?"; `docs/mlpwd22/label_calibration.py`). Returns the floor, the success reward (the
    median reward of the real successes: the one a real success is labelled with), and precision / recall / F1
    (`termination_metrics`) of the judge alone and with the floor."""
    imagined, reward, real = (np.asarray(scores[k]) for k in ("imagined", "reward", "real"))
    imagined, real = imagined.astype(bool), real.astype(bool)

    def prf(pred: np.ndarray) -> tuple[float, float, float]:
        m = termination_metrics(real, pred.astype(np.float64))
        return m["precision"], m["recall"], m["f1"]

    judge_alone = prf(imagined)
    out: dict[str, Any] = {"floor": None, "real": int(real.sum()), "pairs": int(len(real)),
                           "success_reward": float(np.median(scores["real_reward"][real])) if real.any() else None,
                           "judge": dict(zip(("precision", "recall", "f1"), judge_alone, strict=True))}
    out["with_floor"] = dict(out["judge"])
    if real.sum() < min_real:
        return out
    best = (judge_alone[2] if math.isfinite(judge_alone[2]) else 0.0, None, judge_alone)
    for floor in np.unique(reward[~imagined & real]):
        pr = prf(imagined | (reward >= floor))
        if pr[2] > best[0] + 1e-12 or (abs(pr[2] - best[0]) <= 1e-12 and best[1] is not None and floor > best[1]):
            best = (pr[2], float(floor), pr)
    out["floor"] = best[1]
    out["with_floor"] = dict(zip(("precision", "recall", "f1"), best[2], strict=True))
    return out


# --------------------------------------------------------------------------- metrics
def termination_metrics(real: np.ndarray, prob: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """Accuracy, precision, recall, F1 (0 when there is nothing to find and nothing found is NaN) and Brier score."""
    real = np.asarray(real, bool)
    prob = np.asarray(prob, np.float64)
    pred = prob > threshold
    tp = int((pred & real).sum())
    fp = int((pred & ~real).sum())
    fn = int((~pred & real).sum())
    prec = tp / (tp + fp) if tp + fp else float("nan")
    rec = tp / (tp + fn) if tp + fn else float("nan")
    f1 = 2 * tp / (2 * tp + fp + fn) if (2 * tp + fp + fn) else float("nan")
    return {"accuracy": float((pred == real).mean()) if len(real) else float("nan"), "precision": prec,
            "recall": rec, "f1": f1, "brier": float(((prob - real) ** 2).mean()) if len(real) else float("nan"),
            "positives": int(real.sum()), "predicted": int(pred.sum())}


def _rmse(err: np.ndarray) -> float:
    return float(np.sqrt(np.mean(err ** 2))) if err.size else float("nan")


def evaluate_state_error(predictors: list[Predictor], episodes: list[Episode], state_labels: tuple[str, ...],
                         horizons=(1, 4, 8), stride: int = 1, first: int = 1,
                         proprio_groups: dict[str, tuple[int, ...]] | None = None,
                         moving_threshold: float = 0.01) -> dict[str, Any]:
    """Per predictor and horizon: RMSE per state / proprio group, reward MAE and termination metrics.

    Returns ``{"horizons", "num_starts": [per horizon], "num_episodes", "groups": {group: [labels]},
    "moving_threshold", "predictors": {name: {"h=<h>": {"rmse": {group: value}, "object_moving_starts",
    "reward_mae", "termination": {...}}}}}``; RMSEs in the state's / proprio's own units (metres, m/s).
    """
    horizons = tuple(sorted({int(h) for h in horizons}))
    if not horizons or horizons[0] < 1:
        raise ValueError(f"horizons must be positive ints, got {horizons}")
    if not predictors:
        raise ValueError("evaluate_state_error: no predictors")
    names = [p.name for p in predictors]
    if len(set(names)) != len(names):
        raise ValueError(f"evaluate_state_error: predictor names must be distinct, got {names}")
    if not episodes:
        raise ValueError("evaluate_state_error: no held-out episodes")
    labels = tuple(state_labels)
    for e in episodes:
        if e.states is None:
            raise ValueError(f"held-out episode {e.episode_id!r} carries no privileged states")
        if e.states.shape[1] != len(labels):
            raise ValueError(f"held-out episode {e.episode_id!r}: states have {e.states.shape[1]} dims, "
                             f"the labels name {len(labels)} ({labels})")
    pgroups = dict(PROPRIO_GROUPS if proprio_groups is None else proprio_groups)
    pdim = episodes[0].proprio.shape[1]
    bad = [g for g, idx in pgroups.items() if max(idx) >= pdim]
    if bad:
        raise ValueError(f"proprio groups {bad} index past the episodes' {pdim} proprio dims")
    sgroups = state_groups(labels)
    hmax = horizons[-1]
    ep_idx, ts = open_loop_starts(episodes, stride, first)
    if not len(ts):
        raise ValueError(f"no start state: the held-out episodes are shorter than first={first} + 1 steps")
    lengths = np.array([episodes[i].length for i in ep_idx])
    actions = recorded_actions(episodes, ep_idx, ts, hmax)
    real = real_future(episodes, ep_idx, ts, hmax)
    real_p, real_s, real_r, real_d = real.proprio, real.state, real.reward, real.terminated_prob > 0.5
    start_s = np.stack([episodes[i].states[s] for i, s in zip(ep_idx, ts, strict=True)])
    obj = sgroups.get("object", [])
    spread = entry_spread(episodes)
    out: dict[str, Any] = {"horizons": list(horizons), "groups": {g: [labels[i] for i in idx]
                                                                  for g, idx in sgroups.items()},
                           "proprio_groups": {g: list(v) for g, v in pgroups.items()},
                           "num_episodes": len(episodes), "moving_threshold": moving_threshold,
                           "num_starts": [int((ts + h <= lengths).sum()) for h in horizons], "predictors": {}}
    for pred in predictors:
        ol = pred.predict(episodes, ep_idx, ts, actions)
        b = len(ts)
        for f, shape in (("proprio", (b, hmax, pdim)), ("state", (b, hmax, len(labels))), ("reward", (b, hmax)),
                         ("terminated_prob", (b, hmax))):
            got = np.shape(getattr(ol, f))
            if got != shape:
                raise ValueError(f"predictor {pred.name!r}: {f} is {got}, expected {shape}")
        res: dict[str, Any] = {}
        for h in horizons:
            ok = ts + h <= lengths
            k = h - 1
            ds = ol.state[ok, k] - real_s[ok, k]
            dp = ol.proprio[ok, k] - real_p[ok, k]
            rmse = {g: _rmse(ds[:, idx]) for g, idx in sgroups.items()}
            rmse["state"] = _rmse(ds)
            moving = np.zeros(int(ok.sum()), bool)
            gain = calib = float("nan")
            if obj:
                real_move = real_s[ok, k][:, obj] - start_s[ok][:, obj]
                moving = np.linalg.norm(real_move, axis=-1) > moving_threshold
                rmse["object_moving"] = _rmse(ds[moving][:, obj])
                if moving.any():  # least-squares gain of the predicted object motion on the real one
                    real_m = real_move[moving]
                    pred_m = real_m + ds[moving][:, obj]  # predicted - start = (real - start) + (predicted - real)
                    gain, calib = motion_gains(float((pred_m * real_m).sum()), float((real_m * real_m).sum()),
                                               float((pred_m * pred_m).sum()))
            rmse.update({g: _rmse(dp[:, list(idx)]) for g, idx in pgroups.items()})
            ranks: dict[str, dict[str, float]] = {}
            if ol.uncertainty is not None:  # does the uncertainty rank the error it comes with (PPL's selection)?
                u = np.asarray(ol.uncertainty, float)
                errors = {"object": np.linalg.norm(ds[:, obj] if obj else ds, axis=-1),  # metres
                          # [proprio, state], each entry over its spread (what the learner eats, as `state_skill`)
                          "state": np.linalg.norm(np.concatenate([dp, ds], 1) / spread, axis=-1)}
                for what, err in errors.items():
                    ranks[what] = {}
                    for name, unc in (("step", u[ok, k]),  # what the model says about step k alone
                                      ("accumulated", u[ok, :k + 1].sum(1))):  # summed over the branch's steps to k
                        ranks[what][name] = spearman(unc, err)
                        ranks[what][f"{name}_se"] = episode_bootstrap_se(spearman, unc, err, ep_idx[ok])
            dr = ol.reward[ok, k] - real_r[ok, k]
            res[f"h={h}"] = {"rmse": rmse, "object_moving_starts": int(moving.sum()), "object_motion_gain": gain,
                             "object_motion_calibration": calib,
                             "reward_bias": float(dr.mean()) if ok.any() else float("nan"),
                             "reward_mae": float(np.abs(dr).mean()) if ok.any() else float("nan"),
                             "termination": termination_metrics(real_d[ok, k], ol.terminated_prob[ok, k]),
                             "uncertainty_spearman": ranks}
        out["predictors"][pred.name] = res
    return out


# --------------------------------------------------------------------------- table
TABLE_COLUMNS = (("object", "object [mm]", 1e3), ("object_moving", "object, moving [mm]", 1e3),
                 ("target", "target [mm]", 1e3), ("object_to_target", "object->target [mm]", 1e3),
                 ("ee_to_object", "ee->object [mm]", 1e3), ("ee_position", "ee position [mm]", 1e3),
                 ("gripper", "gripper [mm]", 1e3), ("ee_velocity", "ee velocity [mm/s]", 1e3))


def _fmt(v: float, digits: int = 1) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def _ranks(r: dict[str, dict[str, float]] | None) -> str:
    return "-" if not r else " / ".join(f"{_fmt(r[w]['step'], 2)} (+-{_fmt(r[w]['step_se'], 2)})"
                                        for w in ("object", "state"))


def state_error_table(rows: list[tuple[str, dict[str, Any]]]) -> str:
    """Markdown: one row per (task, horizon, predictor) from `evaluate_state_error` results ``(task, result)``."""
    head = ("| task | h | model | " + " | ".join(c[1] for c in TABLE_COLUMNS)
            + " | reward MAE | termination F1 | termination Brier | starts (moving) | object motion gain | motion calibration | reward bias"
            " | Spearman(uncertainty, error): object / [proprio, state] (+- SE over episodes) |")
    lines = [head, "|" + "---|" * (3 + len(TABLE_COLUMNS) + 8)]
    for task, res in rows:
        for j, h in enumerate(res["horizons"]):
            for name, per in res["predictors"].items():
                r = per[f"h={h}"]
                cells = [_fmt(r["rmse"].get(key, float("nan")) * scale) for key, _, scale in TABLE_COLUMNS]
                term = r["termination"]
                lines.append(f"| {task} | {h} | {name} | " + " | ".join(cells)
                             + f" | {_fmt(r['reward_mae'], 3)} | {_fmt(term['f1'], 2)} ({term['positives']} real, {term.get('predicted', '-')} predicted)"
                             f" | {_fmt(term['brier'], 3)} | {res['num_starts'][j]} ({r['object_moving_starts']}) |"
                             f" {_fmt(r.get('object_motion_gain', float('nan')), 2)} |"
                             f" {_fmt(r.get('object_motion_calibration', float('nan')), 2)} |"
                             f" {_fmt(r.get('reward_bias', float('nan')), 3)} |"
                             f" {_ranks(r.get('uncertainty_spearman'))} |")
    return "\n".join(lines)
