"""The oracle world model: synthetic branches rolled in the simulator itself, from exact real states.

A perfect world model makes the diagnosis of PPL's recipe possible: if synthetic transitions do
not help even when they are exact, the loss is in the recipe (volume, horizons, updates, PPL's
pacing), not in the model. `OracleSyntheticSource` answers the same calls as the video model's
source (`worldsample_worldmodel.core.source.VideoWorldModelSource`): ``observe_real(episode)`` after
each real episode, ``fidelity()`` and ``generate(policy, num_branches, horizon)``; its episodes go
through the same PPL path and decision log.

Each real episode must carry ``sim_states`` (`FrankaTaskEnv.sim_state` of every observation; the
in-process driver keeps them when the source asks with ``needs_sim_state``). A branch restores the
simulator to the exact recorded state of a real step, then rolls the policy forward with the
same Gaussian action noise the video source uses, up to ``horizon`` steps, ending early on success
(termination) or at the episode's step limit (truncation), like the real episode would have.
Branches start uniformly over the steps of the ``recent_episodes`` newest real episodes (the video
model's ``WorldModelServiceConfig.recent_episodes`` plays the same role). All branches step
together: one batched policy call per step, the simulator switched between branch states.

A *degraded* oracle (``object_noise`` > 0 or ``object_motion_scale`` != 1) measures how much model error of a
given kind the recipe tolerates, with everything else exact: after every imagined step the loose objects are
moved, in the simulator itself, to ``before + object_motion_scale * (after - before)`` plus Gaussian noise of
std ``object_noise`` on x and y, and the step is then observed and judged by the task's own rule. The branch
stays physically consistent (the next step starts from the moved object) and its object error compounds like
an open-loop model's: per-step noise ``s`` gives an object RMSE of about ``s * sqrt(2/3 * h)`` at horizon h
(over x, y, z). ``fidelity()`` still reports 1.
"""

from __future__ import annotations

import csv
import uuid
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from worldsample_common.core.episode import Episode, Source
from worldsample_common.core.stats import motion_gains, spearman

if TYPE_CHECKING:  # pragma: no cover
    from .env import FrankaTaskEnv

ORACLE_VERSION = "oracle"  # the world_model_version of every oracle branch


@dataclass
class OracleConfig:
    action_noise: float = 0.1  # std of the Gaussian noise on the policy's action in a branch
    recent_episodes: int = 20  # branch starts come from the newest N real episodes
    object_noise: float = 0.0  # degraded oracle: std [m] of the per-step noise on the loose objects' x, y
    object_motion_scale: float = 1.0  # degraded oracle: each imagined step moves the objects this fraction of the way

    @property
    def degraded(self) -> bool:
        return self.object_noise > 0 or self.object_motion_scale != 1.0

    def validate(self) -> None:
        if not (np.isfinite(self.action_noise) and self.action_noise >= 0):
            raise ValueError(f"OracleConfig.action_noise must be a finite number >= 0, got {self.action_noise!r}")
        if not isinstance(self.recent_episodes, int) or self.recent_episodes < 1:
            raise ValueError(f"OracleConfig.recent_episodes must be an int >= 1, got {self.recent_episodes!r}")
        for name in ("object_noise", "object_motion_scale"):
            v = getattr(self, name)
            if not (np.isfinite(v) and v >= 0):
                raise ValueError(f"OracleConfig.{name} must be a finite number >= 0, got {v!r}")


class OracleSyntheticSource:
    """A perfect synthetic source over its own simulator ``env`` (same task as the real episodes;
    rendering off unless the learner needs pixels)."""

    needs_sim_state = True  # the driver keeps `FrankaTaskEnv.sim_state` in every real episode

    def __init__(self, env: FrankaTaskEnv, cfg: OracleConfig | None = None, seed: int = 0) -> None:
        self.cfg = cfg or OracleConfig()
        self.cfg.validate()
        if not callable(getattr(env, "set_sim_state", None)):
            raise TypeError(f"the oracle needs an env with sim_state/set_sim_state, got {type(env).__name__}")
        self.env = env
        self.rng = np.random.default_rng(seed)
        self.pool: deque[Episode] = deque(maxlen=self.cfg.recent_episodes)
        self.version = ORACLE_VERSION

    def observe_real(self, episode: Episode) -> None:
        if episode.task != self.env.task:
            raise ValueError(f"oracle for {self.env.task!r} got a {episode.task!r} episode {episode.episode_id!r}")
        if episode.sim_states is None:
            raise ValueError(f"episode {episode.episode_id!r} carries no sim_states: the oracle cannot restore its "
                             "states (record it in-process with a source that sets needs_sim_state)")
        if episode.length:
            self.pool.append(episode)

    def fidelity(self) -> float:
        return 1.0  # exact by construction

    def generate(self, policy: Any, num_branches: int, horizon: int) -> list[Episode]:
        for name, v in (("num_branches", num_branches), ("horizon", horizon)):
            if not isinstance(v, int | np.integer) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        if not self.pool:
            return []
        env, cams = self.env, tuple(getattr(self.env, "camera_names", ()))
        lengths = np.array([ep.length for ep in self.pool])
        picks = self.rng.choice(int(lengths.sum()), size=int(num_branches))
        bounds = np.cumsum(lengths)
        branches = []
        for p in picks:
            i = int(np.searchsorted(bounds, p, side="right"))
            ep = self.pool[i]
            t = int(p - (bounds[i - 1] if i else 0))
            env.set_sim_state(ep.sim_states[t])
            obs = env._observe() if cams else None  # frames only when the env renders
            branches.append({
                "start": ep, "t": t, "sim": [np.asarray(ep.sim_states[t], np.float64)],
                "proprio": [ep.proprio[t]], "states": [None if ep.states is None else ep.states[t]],
                "images": {c: [obs.images[c]] for c in cams},  # cams: the env renders, so obs is set
                "actions": [], "rewards": [], "terminated": [], "truncated": [], "successes": [],
            })
        active = list(range(len(branches)))
        shift = self._degrade if self.cfg.degraded else None
        for _ in range(int(horizon)):
            if not active:
                break
            bs = [branches[i] for i in active]
            images = {c: np.stack([b["images"][c][-1] for b in bs]) for c in cams}
            state = None if bs[0]["states"][-1] is None else np.stack([b["states"][-1] for b in bs])
            actions = policy.act_batch(images, np.stack([b["proprio"][-1] for b in bs]),
                                       noise_std=self.cfg.action_noise, rng=self.rng, state=state)
            still = []
            for i, b, a in zip(active, bs, actions, strict=True):
                env.set_sim_state(b["sim"][-1])
                res = env.step(np.clip(a, -1.0, 1.0), object_shift=shift)
                o = res.observation
                b["actions"].append(np.asarray(res.info.get("clipped_action", np.clip(a, -1, 1)), np.float32))
                b["rewards"].append(float(res.reward))
                b["terminated"].append(bool(res.terminated))
                b["truncated"].append(bool(res.truncated))
                b["successes"].append(bool(res.success))
                b["proprio"].append(o.proprio)
                b["states"].append(o.state)
                for c in cams:
                    b["images"][c].append(o.images[c])
                b["sim"].append(env.sim_state())
                if not (res.terminated or res.truncated):
                    still.append(i)
            active = still
        version = str(getattr(policy, "version", ""))
        return [self._episode(b, version) for b in branches]

    def _degrade(self, before: np.ndarray, after: np.ndarray) -> np.ndarray:
        """Where a degraded oracle puts the loose objects after an imagined step (see the module docstring)."""
        to = before + self.cfg.object_motion_scale * (after - before)
        if self.cfg.object_noise > 0:
            to[:, :2] += self.rng.normal(0.0, self.cfg.object_noise, size=(len(to), 2))
        return to

    def _episode(self, b: dict[str, Any], policy_version: str) -> Episode:
        start: Episode = b["start"]
        n = len(b["actions"])
        states = None if b["states"][0] is None else np.stack(b["states"]).astype(np.float32)
        return Episode(
            episode_id=f"{start.task}-oracle-{uuid.uuid4().hex[:8]}", task=start.task, source=Source.SYNTHETIC,
            images={c: np.stack(v) for c, v in b["images"].items()}, proprio=np.stack(b["proprio"]),
            actions=np.stack(b["actions"]), rewards=np.asarray(b["rewards"], np.float32),
            terminated=np.asarray(b["terminated"], bool), truncated=np.asarray(b["truncated"], bool),
            successes=np.asarray(b["successes"], bool), uncertainty=np.zeros(n, np.float32),
            policy_version=policy_version, world_model_version=ORACLE_VERSION, states=states,
            sim_states=np.stack(b["sim"]),
            extras={"start_episode": start.episode_id, "start_step": str(b["t"])},
        )


def _relabelled(ep: Episode, rewards: list, successes: list, terminated: list) -> Episode:
    """``ep`` with the replay's labels, cut to the replay's ``n`` steps; its last step is truncated (the learner
    bootstraps there) unless the replay terminated there."""
    n = len(rewards)
    term = np.asarray(terminated, bool)
    trunc = np.zeros(n, bool)
    trunc[-1] = not term[-1]
    return ep.first(n, rewards=np.asarray(rewards, np.float32), terminated=term, truncated=trunc,
                    successes=np.asarray(successes, bool))


AUDIT_FIELDS = ("call", "branch", "k", "object_error", "ee_error", "object_moved", "object_predicted_move",
                "object_move_dot", "object_rise_predicted", "object_rise_real", "reward_predicted", "reward_real",
                "success_predicted", "success_real", "uncertainty")


class SyntheticAudit:
    """A synthetic source (the video world model's) whose branches are checked against the simulator.

    Every branch ``inner.generate`` hands out is replayed exactly: the simulator is restored to the branch's
    real start (its ``extras`` name the start episode and step; the real episodes carry ``sim_states``, which
    ``needs_sim_state`` asks the driver for) and stepped with the branch's own actions. Each imagined step k
    is then compared with what really follows: object position error (the state's first three dimensions,
    the object's xyz in every task), end-effector error (proprio's first three), the object's real and
    predicted displacement from the start and its rise (height above the start: a lift, or a peg's descent
    when negative), the predicted and real reward and success. One row per step goes
    to ``path`` (CSV, ``AUDIT_FIELDS``); `summary` aggregates them per k. This is the model's error *on the
    data the learner eats* (the learning policy's own branches), where the model-error table scores it on
    held-out rollouts of a noisy expert. Branches pass through unchanged, unless ``relabel``: then each branch
    keeps the model's states but takes the replay's reward, success and termination (a diagnostic, "oracle
    labels": the model's imagined states with exact labels), cut where the replay ended; a branch whose start
    is not kept (no ``sim_states``, or older than the ``keep_episodes`` most recent real episodes: the video source
    also branches from its held-out episodes, which can be old) cannot be relabelled and is dropped (counted in
    ``unlabelled``); ``keep_episodes=None`` keeps every real episode's start."""

    needs_sim_state = True

    def __init__(self, inner: Any, env: FrankaTaskEnv, path, keep_episodes: int | None = 64,
                 max_branches: int | None = None, relabel: bool = False) -> None:
        if not callable(getattr(env, "set_sim_state", None)):
            raise TypeError(f"the audit needs an env with sim_state/set_sim_state, got {type(env).__name__}")
        if relabel and max_branches is not None:
            raise ValueError("SyntheticAudit(relabel=True) replays every branch: max_branches must be None")
        self.inner, self.env, self.path = inner, env, Path(path)
        self.max_branches, self.relabel = max_branches, bool(relabel)
        self.unlabelled = 0
        self._episodes: dict[str, Episode] = {}
        self._order: deque[str] = deque()
        self._keep = None if keep_episodes is None else int(keep_episodes)  # None: every real episode
        self._calls = 0
        self.rows: list[dict[str, float]] = []

    def __getattr__(self, name: str) -> Any:  # version, service, rejected, ... of the wrapped source
        if name == "inner":  # not set yet (an instance being restored): no forwarding to itself
            raise AttributeError(name)
        return getattr(self.inner, name)

    def observe_real(self, episode: Episode) -> None:
        if episode.sim_states is not None:
            self._episodes[episode.episode_id] = episode
            self._order.append(episode.episode_id)
            while self._keep is not None and len(self._order) > self._keep:
                self._episodes.pop(self._order.popleft(), None)
        self.inner.observe_real(episode)

    def fidelity(self) -> float | None:
        return self.inner.fidelity()

    def generate(self, policy: Any, num_branches: int, horizon: int) -> list[Episode]:
        eps = self.inner.generate(policy, num_branches, horizon)
        rows, out = [], []
        for j, ep in enumerate(eps):
            if self.max_branches is not None and j >= self.max_branches:
                out.append(ep)
                continue
            r, replay = self._audit(ep, j)
            rows += r
            if not self.relabel:
                out.append(ep)
            elif replay is None:
                self.unlabelled += 1
            else:
                out.append(_relabelled(ep, *replay))
        self._calls += 1
        if rows:
            new = not self.path.exists()
            with open(self.path, "a", newline="") as f:
                w = csv.DictWriter(f, AUDIT_FIELDS)
                if new:
                    w.writeheader()
                w.writerows(rows)
            self.rows += rows
        return out

    def _audit(self, ep: Episode, j: int) -> tuple[list[dict[str, float]], tuple[list, list, list] | None]:
        """The branch replayed: its audit rows and the replay's (rewards, successes, terminated) per step, up to
        where the replay ended; ([], None) when its start is not kept."""
        start = self._episodes.get((ep.extras or {}).get("start_episode", ""))
        if start is None or ep.states is None or start.states is None:
            return [], None
        t = int(ep.extras["start_step"])
        self.env.set_sim_state(start.sim_states[t])
        s0 = np.asarray(start.states[t][:3], np.float64)
        out, replay = [], ([], [], [])
        for k, a in enumerate(ep.actions):
            res = self.env.step(np.clip(a, -1.0, 1.0))
            for col, v in zip(replay, (float(res.reward), bool(res.success), bool(res.terminated)), strict=True):
                col.append(v)
            real, pred = np.asarray(res.observation.state, np.float64), np.asarray(ep.states[k + 1], np.float64)
            rm, pm = real[:3] - s0, pred[:3] - s0
            out.append({"call": self._calls, "branch": j, "k": k + 1,
                        "object_error": float(np.linalg.norm(pred[:3] - real[:3])),
                        "ee_error": float(np.linalg.norm(ep.proprio[k + 1][:3] - res.observation.proprio[:3])),
                        "object_moved": float(np.linalg.norm(rm)), "object_predicted_move": float(np.linalg.norm(pm)),
                        "object_move_dot": float(rm @ pm),
                        "object_rise_predicted": float(pm[2]), "object_rise_real": float(rm[2]),
                        "reward_predicted": float(ep.rewards[k]), "reward_real": float(res.reward),
                        "success_predicted": float(ep.successes[k]), "success_real": float(res.success),
                        "uncertainty": float(ep.uncertainty[k]) if ep.uncertainty is not None else float("nan")})
            if res.terminated or res.truncated:
                break
        return out, replay

    def summary(self, horizons: tuple[int, ...] = (1, 2, 4, 8), moving_threshold: float = 0.002,
                lift_threshold: float = 0.01) -> dict[str, Any]:
        """Per horizon k: object and ee RMSE [m], the object motion gain and calibration over the steps where
        the real object moved more than ``moving_threshold`` (as in the model-error table), the reward bias
        (predicted - real) and MAE, predicted / real success counts, how many steps have the object risen more
        than ``lift_threshold`` above the branch's start in the replay (``lifted_real``), in imagination
        (``lifted_predicted``) and in both (``lifted_both``: a grasp the model imagines where one happens), and
        the Spearman rank correlation of the branch's per-step uncertainty with the object error (what PPL's
        selection relies on); ``steps`` audited."""
        out: dict[str, Any] = {}
        for h in horizons:
            r = [x for x in self.rows if x["k"] == h]
            if not r:
                continue
            col = {f: np.array([x[f] for x in r]) for f in AUDIT_FIELDS}
            mv = col["object_moved"] > moving_threshold
            dot, real2, pred2 = col["object_move_dot"][mv].sum(), (col["object_moved"][mv] ** 2).sum(), \
                (col["object_predicted_move"][mv] ** 2).sum()
            dr = col["reward_predicted"] - col["reward_real"]
            lifted_real = col["object_rise_real"] > lift_threshold
            lifted_pred = col["object_rise_predicted"] > lift_threshold
            out[f"k={h}"] = {
                "steps": len(r), "object_rmse": float(np.sqrt((col["object_error"] ** 2).mean())),
                "ee_rmse": float(np.sqrt((col["ee_error"] ** 2).mean())), "moving": int(mv.sum()),
                **dict(zip(("object_motion_gain", "object_motion_calibration"), motion_gains(dot, real2, pred2),
                           strict=True)),
                "reward_bias": float(dr.mean()), "reward_mae": float(np.abs(dr).mean()),
                "success_predicted": int(col["success_predicted"].sum()), "success_real": int(col["success_real"].sum()),
                "lifted_real": int(lifted_real.sum()), "lifted_predicted": int(lifted_pred.sum()),
                "lifted_both": int((lifted_real & lifted_pred).sum()),
                "uncertainty_spearman": spearman(col["uncertainty"], col["object_error"])}
        return out

