"""The video world model as a learner `SyntheticSource` for the in-process experiment driver.

`worldsample_learner.drivers.learn.train_in_process` calls, when present:
``observe_real(episode)`` after each real episode, ``fidelity()`` (a number in [0, 1]) and
``generate(policy, num_branches, horizon)``. `VideoWorldModelSource` answers them with the same
`WorldModelService` the ROS node owns: real episodes are pooled (every ``heldout_every``-th held
out), every ``min_new_episodes`` new ones trigger post-training (synchronously: the driver is
single-threaded), branches start from recent real states. ``fidelity()`` is how far the newest version gets
past doing nothing on held-out real episodes, in what the learner eats (see `VideoWorldModelSource.fidelity`).

``state_in_proprio`` (simulation experiments with a state-based learner): the privileged sim
state of each episode rides through the world model appended to the proprioception, so the
model predicts it like proprio (from frames + vector + action) and a state-based policy can act
in imagined branches; generated episodes are split back into ``proprio`` and ``states``. The
frames are still modelled and the uncertainty is still the ensemble's disagreement on them.

``carry_static_state``: state dimensions that never changed within any episode the source has seen
(the goal's or the hole's position: fixed for an episode, set at reset) are carried over from the
branch's real start instead of taken from the model, which lets them drift by millimetres
(`static_state_dims`, `carry_static`; measured in docs/results.md, "The world model's error on the
learner's state").

``state_model`` (with ``state_in_proprio``): ``"video"`` (default) rolls [proprio, state] with the world model's
own proprio head; ``"mlp"`` with MBPO's model instead, a small MLP ensemble on [proprio, state] (`mlp_dynamics`)
trained on every demo and real transition the source has seen, re-fitted (from its previous weights, with early
stopping: `mlp_dynamics`) before a generation once ``state_model_every`` new real episodes have arrived since the
last fit (MBPO re-fits its model every 250 steps), and before the first one; the world model then decodes the
frames for that state. A step's uncertainty is then the ensemble's disagreement on it over its median on the
real transitions it holds out (1 = as unsure as on typical real data it did not train on, the world model's
convention; the median on the fitted transitions made a branch's first step, from a real state, read 1.75 and
PPL reject most of them), since the video model's frame-error head does not rank
the state's error (measured: Spearman -0.5 to 0.1). Measured in docs/results.md ("Why the video model's
data hurt, and a state model that fixes it"): on the learning policy's own branches the video model's head
erred 11.5 / 48 mm on the object at 1 / 8 steps (it moved blocks that did not move), this state model 4-5 /
25-26 mm.

``frames`` False (state model "mlp" and a judge): the video model is left out: not post-trained, and the branches
are the MLP ensemble's alone, without frames (MBPO's model rollouts, `generate.generate_state_branches`), from the
same starts. The video model's training (a quarter to a third of a PPL run) is saved, but the branches are not
the same: the video model's termination head no longer ends some early, and on push this learned slower early
(docs/results.md, "Where a state learner's PPL run spends its time").

``judge`` (with ``state_in_proprio``): a function ``(task, states (T, S)) -> (success (T,), reward (T,))``, the
task's own success detector and reward (in simulation `worldsample_control.core.sim.tasks.judge_states`).
When given, an imagined step's reward, success and termination are those of its *predicted state* by the
rule that labels every real step, not the model's outcome head: a branch ends at the first step its state
counts as success (terminated there, reward 0), and a branch the head ended without a successful state
is only truncated (bootstrapped). Measured in docs/results.md: the head predicted almost no terminations
(F1 0-0.4), so imagined branches never paid the success reward their states had reached.
``success_agreement`` (state model "mlp"): such a success stands only where enough of the ensemble's members
predict a successful state too (`agreed_success`); ``imagined_success`` "bootstrap": a branch's success ends it
without terminating it (the learner bootstraps from its critic there instead of trusting the model's success).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from worldsample_common.core.episode import Episode
from worldsample_common.core.stats import fidelity_skill

from .mlp_dynamics import MLPDynamicsConfig, train_mlp_dynamics, transitions_from_episodes
from .service import WorldModelService, WorldModelServiceConfig
from .train import TrainingDiverged

LOG = logging.getLogger(__name__)


@dataclass
class VideoSourceConfig:
    service: WorldModelServiceConfig = field(default_factory=WorldModelServiceConfig)
    action_noise: float = 0.1
    write_bags: bool = False  # also write every synthetic batch as a bag under the run dir
    state_in_proprio: bool = False  # see the module docstring
    carry_static_state: bool = True  # with state_in_proprio: see the module docstring
    state_model: str = "video"  # with state_in_proprio: "video" | "mlp" (see the module docstring)
    mlp: MLPDynamicsConfig = field(default_factory=MLPDynamicsConfig)  # state_model "mlp"
    state_model_every: int = 5  # state_model "mlp": re-fit before a generation after this many new real episodes
    # a synthetic step's uncertainty (what PPL's trust reads): "step", the model's on that step alone, or
    # "branch_mean", the mean of its branch's steps up to it (an error made early carries into later steps; same
    # scale as "step", so PPL's uncertainty_scale keeps its meaning)
    uncertainty_over: str = "step"
    # with a judge and state_model "mlp": an imagined step whose predicted (member-mean) state counts as success
    # keeps that success only if at least this fraction of the ensemble's members, each stepped from the same state
    # and action, predict a successful state too; a refused step is not terminal and earns the lowest of the
    # members' judged rewards (`agreed_success`). 0: the mean state alone decides
    success_agreement: float = 0.0
    # with a judge: what an imagined success is to the learner. "terminal": the branch ends there, terminated (its
    # value is the success reward alone); "bootstrap": the branch ends there too, with the success reward, but only
    # truncated, so the learner bootstraps from its critic at the predicted state. Measured in docs/results.md: on
    # peg insertion most imagined successes are a peg the model pushes on down where the real one is jammed at
    # 23-25 mm, just short of the 25 mm success depth; as a terminal they teach that pushing on there succeeds.
    # "precision": terminal with the probability that such a success is a real one, measured on the held-out real
    # episodes (`VideoWorldModelSource.success_trust`), truncated otherwise
    imagined_success: str = "terminal"
    # with a ``contact`` function (`VideoWorldModelSource`): a branch stops (truncated, so the learner bootstraps from
    # its critic there) at its first predicted state in the task's contact zone, and a branch that would start in
    # it is dropped: the model is not asked to step from where the outcome turns on a contact the state does not
    # carry. Peg insertion's zone is the rim (`worldsample_control.core.sim.tasks.contact_states`): there the peg
    # slides in or jams, and the ensemble's mean makes an insertion of a jammed peg (docs/results.md)
    stop_at_contact: bool = False
    # False (state_model "mlp" with a judge: a state learner): the video model is neither post-trained nor rolled;
    # the branches are the MLP ensemble's alone, without frames (MBPO's model rollouts, `generate_state_branches`).
    # The state learner's inputs come from the same parts as with True (state, judged reward and success, the
    # ensemble's uncertainty, the state model's fidelity); gone are the predicted frames, the video model's training
    # (a quarter to a third of a run) and its termination head, which ended some branches early: without it push
    # learned slower early (0.43 against 0.70 at 5k, 3 seeds; docs/results.md), so True stays the default
    frames: bool = True
    seed: int = 0

    def validate(self) -> None:
        if self.state_model not in STATE_MODELS:
            raise ValueError(f"VideoSourceConfig.state_model must be one of {STATE_MODELS}, got {self.state_model!r}")
        if self.state_model != "video" and not self.state_in_proprio:
            raise ValueError("VideoSourceConfig.state_model 'mlp' needs state_in_proprio (it models the state)")
        self.mlp.validate()
        if not isinstance(self.state_model_every, int) or self.state_model_every < 1:
            raise ValueError(f"VideoSourceConfig.state_model_every must be an int >= 1, got {self.state_model_every!r}")
        if not 0.0 <= self.success_agreement <= 1.0:
            raise ValueError(f"VideoSourceConfig.success_agreement must be in [0, 1], got {self.success_agreement!r}")
        if self.success_agreement > 0 and self.state_model != "mlp":
            raise ValueError("VideoSourceConfig.success_agreement needs state_model 'mlp' (the members it asks)")
        if self.imagined_success not in IMAGINED_SUCCESS:
            raise ValueError(f"VideoSourceConfig.imagined_success must be one of {IMAGINED_SUCCESS}, got "
                             f"{self.imagined_success!r}")
        if not self.frames and self.state_model != "mlp":
            raise ValueError("VideoSourceConfig.frames=False needs state_model 'mlp' (the model that rolls the state)")
        if not self.frames and self.write_bags:
            raise ValueError("VideoSourceConfig.frames=False makes branches without frames: write_bags has none to write")
        if self.uncertainty_over not in UNCERTAINTY_OVER:
            raise ValueError(f"VideoSourceConfig.uncertainty_over must be one of {UNCERTAINTY_OVER}, got "
                             f"{self.uncertainty_over!r}")


STATE_MODELS = ("video", "mlp")
UNCERTAINTY_OVER = ("step", "branch_mean")
IMAGINED_SUCCESS = ("terminal", "bootstrap", "precision")


def branch_mean(uncertainty: np.ndarray | None) -> np.ndarray | None:
    """Per step, the mean of a branch's uncertainties up to and including that step (NaN stays NaN from there on)."""
    if uncertainty is None:
        return None
    u = np.asarray(uncertainty, np.float64)
    return (np.cumsum(u) / np.arange(1, len(u) + 1)).astype(np.float32)


STATIC_TOLERANCE = 1e-6  # a state dimension whose range within every episode stays below this is static


def static_state_dims(episodes: list[Episode], static: np.ndarray | None = None) -> np.ndarray | None:
    """Bool mask of the state dimensions constant within every one of ``episodes`` and static in ``static``
    (the mask so far, None for none yet); None while no episode carried states."""
    for e in episodes:
        if e.states is not None and len(e.states):
            still = np.ptp(e.states, axis=0) <= STATIC_TOLERANCE
            static = still if static is None else static & still
    return static


def carry_static(states: np.ndarray, start: np.ndarray, static: np.ndarray | None) -> np.ndarray:
    """``states`` (..., S) with the ``static`` dimensions set to those of ``start`` (..., S) (broadcast over
    the time axis of ``states`` when ``start`` has one fewer)."""
    if static is None or not static.any():
        return states
    out = np.array(states, copy=True)
    out[..., static] = np.asarray(start)[..., static] if np.ndim(start) == out.ndim else \
        np.expand_dims(np.asarray(start), -2)[..., static]
    return out


Judge = Callable[[str, np.ndarray], tuple[np.ndarray, np.ndarray]]
Contact = Callable[[str, np.ndarray], np.ndarray]  # (task, states (T, S)) -> in the task's contact zone (T,) bool


def agreed_success(judge: Judge, task: str, states: np.ndarray, member_states: np.ndarray | None = None,
                   agreement: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """``judge`` on the predicted next ``states`` (T, S) -> (success (T,), reward (T,)), where a success stands only
    if at least ``agreement`` of the ensemble members' own predictions ``member_states`` (E, T, S) of the same steps
    count as success too. A refused step is not a success and earns the lowest of the members' judged rewards (the
    most pessimistic member). Measured in docs/results.md: on peg insertion 3 of 4 imagined successes of the MLP
    ensemble's mean state at h = 1 were not real ones (precision 0.24)."""
    success, reward = judge(task, states)
    success, reward = np.asarray(success, bool).copy(), np.asarray(reward, np.float32).copy()
    if agreement <= 0 or member_states is None or not success.any():
        return success, reward
    idx = np.flatnonzero(success)
    m = np.asarray(member_states)[:, idx]
    ok, rew = judge(task, m.reshape(-1, m.shape[-1]))
    ok, rew = np.asarray(ok, bool).reshape(m.shape[:2]), np.asarray(rew, np.float32).reshape(m.shape[:2])
    refused = ok.mean(0) < agreement - 1e-9
    success[idx[refused]] = False
    reward[idx[refused]] = rew.min(0)[refused]
    return success, reward


def judged(ep: Episode, judge: Judge, member_states: np.ndarray | None = None, agreement: float = 0.0,
           success_terminates: bool = True) -> Episode:
    """``ep`` (with ``states``) relabelled by ``judge`` on its next states (with ``member_states`` (E, T, S) and
    ``agreement``: `agreed_success`): cut after the first success step (terminated there, or with
    ``success_terminates`` False only truncated), truncated at its last step otherwise."""
    success, reward = agreed_success(judge, ep.task, ep.states[1:], member_states, agreement)
    n = int(np.argmax(success)) + 1 if success.any() else ep.length
    terminated = np.zeros(n, bool)
    terminated[-1] = bool(success[n - 1]) and success_terminates
    truncated = np.zeros(n, bool)
    truncated[-1] = not terminated[-1]
    return ep.first(n, rewards=np.asarray(reward[:n], np.float32), terminated=terminated, truncated=truncated,
                    successes=success[:n])


class VideoWorldModelSource:
    def __init__(self, cfg: VideoSourceConfig | None = None, judge: Judge | None = None,
                 contact: Contact | None = None) -> None:
        self.cfg = cfg or VideoSourceConfig()
        self.cfg.validate()
        if self.cfg.stop_at_contact and (contact is None or judge is None):
            raise ValueError("VideoWorldModelSource: stop_at_contact needs a contact function and a judge (it reads "
                             "the predicted state)")
        self.contact = contact
        self.dropped_at_contact = 0  # branches that started in the contact zone (stop_at_contact)
        if judge is not None and not self.cfg.state_in_proprio:
            raise ValueError("VideoWorldModelSource: judge needs state_in_proprio (it judges the predicted state)")
        if not self.cfg.frames and judge is None:
            raise ValueError("VideoWorldModelSource: frames=False needs a judge (the state model predicts no reward)")
        if self.cfg.success_agreement > 0 and judge is None:
            raise ValueError("VideoWorldModelSource: success_agreement needs a judge (it qualifies the judge's success)")
        self.judge = judge
        self.service = WorldModelService(self.cfg.service)
        self.rng = np.random.default_rng(self.cfg.seed)
        self.rejected: list[str] = []
        self._proprio_dim: int | None = None
        self._static: np.ndarray | None = None  # `static_state_dims` of every episode seen
        self._seen: list[Episode] = []  # state_model "mlp": every demo and real episode, as given
        self.mlp = None  # state_model "mlp": the newest trained ensemble
        self._new_for_mlp = 0  # real episodes seen since it was trained
        self.mlp_uncertainty_ref = 1.0  # its median disagreement on the real transitions it holds out
        self.mlp_metrics: list[dict[str, Any]] = []
        self.train_failures: list[str] = []  # world-model trainings that diverged (`train.TrainingDiverged`)
        self._state_fid: tuple[tuple, float | None] | None = None  # (what it was measured on, `_state_fidelity`)
        self._trust: tuple[tuple, float] | None = None  # (what it was measured on, `success_trust`)
        self.success_trust_log: list[dict[str, Any]] = []  # every new `success_trust` measurement

    def to_model(self, ep: Episode) -> Episode:
        """The episode as the world model sees it (with ``state_in_proprio``: state appended to proprio)."""
        if not self.cfg.state_in_proprio:
            return ep
        if ep.states is None:
            raise ValueError(f"state_in_proprio: episode {ep.episode_id!r} carries no privileged states")
        self._proprio_dim = int(ep.proprio.shape[1])
        self._static = static_state_dims([ep], self._static)
        return replace(ep, proprio=np.concatenate([ep.proprio, ep.states], 1).astype(np.float32), states=None)

    def _from_model(self, ep: Episode) -> Episode | None:
        if not self.cfg.state_in_proprio:
            return ep
        p = self._proprio_dim
        states = ep.proprio[:, p:]
        members = None
        if self.judge is not None and self.cfg.success_agreement > 0 and ep.length:
            # each member from the branch's own (member-mean) states and actions, as the rollout stepped them
            members = self.mlp.predict(ep.proprio[:-1], ep.actions, members=True)["member_next_obs"][..., p:]
        if self.cfg.carry_static_state:
            if members is not None:
                members = carry_static(members, states[0], self._static)
            states = carry_static(states, states[0], self._static)
        ep = replace(ep, proprio=ep.proprio[:, :p], states=states)
        if self.judge is None:
            return ep
        if self.cfg.stop_at_contact and ep.length:
            zone = np.asarray(self.contact(ep.task, states), bool)
            if zone[0]:
                self.dropped_at_contact += 1
                return None
            if zone.any():  # the first step into the zone is the branch's last
                n = int(np.argmax(zone))
                ep = ep.first(n)
                members = None if members is None else members[:, :n]
        mode = self.cfg.imagined_success
        terminates = mode == "terminal" or (mode == "precision" and self.rng.random() < self.success_trust())
        return judged(ep, self.judge, members, self.cfg.success_agreement, success_terminates=terminates)

    def add_demos(self, episodes: list[Episode]) -> None:
        """Demonstrations for pre-training and for staying in the mix (in-process; the node reads demos_dir)."""
        self.service.demos.extend(self.to_model(e) for e in episodes)
        if self.cfg.state_model == "mlp":
            self._seen.extend(episodes)

    @property
    def version(self) -> str:
        """The world-model version that makes the branches: the video model's, or with ``frames`` False the MLP
        ensemble's fit count (``mlp-NNN``)."""
        if not self.cfg.frames:
            return f"mlp-{len(self.mlp_metrics):03d}" if self.mlp_metrics else ""
        m = self.service.model
        return m.version if m is not None else ""

    def after_resume(self) -> None:
        """Restored from a run snapshot (`worldsample_learner.drivers.snapshot`): the service drops the world-model
        versions saved after it."""
        self.service.after_resume()

    def observe_real(self, episode: Episode) -> None:
        reason = self.service.add_episode(self.to_model(episode))
        if reason:
            self.rejected.append(reason)
        elif self.cfg.state_model == "mlp":
            self._seen.append(episode)
            self._new_for_mlp += 1
        if self.cfg.frames and self.service.should_train():
            try:
                self.service.train()
            except TrainingDiverged as exc:  # the previous version keeps generating
                LOG.warning("world model source: %s; keeping %s", exc, self.version)
                self.train_failures.append(str(exc))

    def train_state_model(self) -> None:
        """(Re-)train the MLP state model on every demo and real transition seen (state_model "mlp")."""
        import time

        t0 = time.time()
        data = transitions_from_episodes(self._seen)
        self.mlp, metrics = train_mlp_dynamics(data, self.cfg.mlp, init=self.mlp)
        ref = metrics["holdout_disagreement"]
        if not np.isfinite(ref):  # too few transitions to hold any out: the fitted ones
            pick = self.rng.choice(len(data), size=min(2048, len(data)), replace=False)
            ref = np.median(self.mlp.predict(data.obs[pick], data.actions[pick])["disagreement"])
        self.mlp_uncertainty_ref = float(max(ref, 1e-12))
        self._new_for_mlp = 0
        self.mlp_metrics.append({**metrics, "episodes": len(self._seen), "wall_s": time.time() - t0})

    def fidelity(self) -> float | None:
        """PPL's fidelity in [0, 1]: how far the model gets past doing nothing, in what the learner eats. Frames
        (`fidelity_skill` of the held-out PSNR/SSIM against copy-last-frame, and of how the policy's encoder reads
        them when the service has its featurizer, `WorldModelService.set_featurizer`) for a pixel learner; with
        ``state_in_proprio`` (a state learner) the predicted [proprio, state] of the model that rolls it (the
        MLP ensemble or the video model's proprio head) against copy-state (`state_error.state_skill`), each
        horizon clipped to [0, 1], averaged. None before there is a model and a held-out episode."""
        if not self.cfg.frames:
            return self._state_fidelity()
        fid = self.service.fidelity
        if not fid or not fid.get("ssim"):
            return None
        if self.cfg.state_in_proprio:
            return self._state_fidelity()
        return fidelity_skill(fid["ssim"], fid["copy"]["ssim"], fid["psnr"], fid["copy"]["psnr"], fid.get("feature_skill"))

    def _held_out_state_predictor(self, held: list[Episode]):
        """(the predictor of [proprio, state] that rolls the branches: the MLP ensemble or the video model's proprio
        head, ``held`` split back into proprio and states) for scoring it on the held-out real episodes."""
        from .state_error import MLPPredictor, VideoModelPredictor

        p = self._proprio_dim
        split = [replace(e, proprio=e.proprio[:, :p], states=e.proprio[:, p:]) for e in held]
        predictor = MLPPredictor(self.mlp, p) if self.cfg.state_model == "mlp" else VideoModelPredictor(
            self.service.model, p, static=self._static if self.cfg.carry_static_state else None)
        return predictor, split

    def _state_fidelity(self) -> float | None:
        from .state_error import state_skill

        held = list(self.service.heldout)
        mlp = self.cfg.state_model == "mlp"
        if not held or (mlp and self.mlp is None):  # the MLP is fitted before the first generation
            return None
        key = (self.version, len(self.mlp_metrics), len(held))  # a new version, a re-fit or another held-out episode
        if self._state_fid is not None and self._state_fid[0] == key:
            return self._state_fid[1]
        predictor, split = self._held_out_state_predictor(held)
        skill = np.asarray(state_skill(predictor, split, self.service.cfg.fidelity_horizons), float)
        value = float(np.mean(np.clip(skill[np.isfinite(skill)], 0.0, 1.0))) if np.isfinite(skill).any() else None
        self._state_fid = (key, value)
        return value

    def success_trust(self) -> float:
        """How likely a success the state model's prediction is judged to reach is a real one: on the held-out real
        episodes, (imagined successes that were real + 1) / (imagined successes + 2) (`state_error.success_counts`
        with Laplace's prior: 0.5 before any imagined success). Needs a judge and the "mlp" state model (or the video
        model's proprio head); cached per model version, re-fit and held-out pool."""
        from .state_error import success_counts

        held = list(self.service.heldout)
        mlp = self.cfg.state_model == "mlp"
        if self.judge is None or not held or (mlp and self.mlp is None) or (not mlp and self.service.model is None):
            return 0.5
        key = (self.version, len(self.mlp_metrics), len(held))
        if self._trust is not None and self._trust[0] == key:
            return self._trust[1]
        predictor, split = self._held_out_state_predictor(held)
        hit, total = success_counts(predictor, self.judge, split, self.service.cfg.fidelity_horizons)
        value = (hit + 1) / (total + 2)
        self._trust = (key, value)
        self.success_trust_log.append({"key": list(map(str, key)), "hit": hit, "imagined": total, "trust": value})
        return value

    def generate(self, policy: Any, num_branches: int, horizon: int) -> list[Episode]:
        if not self.cfg.frames:
            return self._generate_state(policy, num_branches, horizon)
        if self.service.model is None:
            return []
        if self.cfg.state_in_proprio:
            policy = _StateFromProprio(policy, self._proprio_dim)
        state_model = self._fitted_state_model() if self.cfg.state_model == "mlp" else None
        eps, _ = self.service.generate(policy, num_branches, horizon, self.cfg.action_noise,
                                       seed=int(self.rng.integers(1 << 31)), write_bag=self.cfg.write_bags,
                                       state_model=state_model)
        return self._as_learner_sees(eps)

    def _fitted_state_model(self) -> Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
        """The MLP ensemble as a ``generate.StateModel`` (re-fitted first when ``state_model_every`` new real episodes
        arrived since the last fit, or never fitted): next [proprio, state] and its disagreement over the reference."""
        if self.mlp is None or self._new_for_mlp >= self.cfg.state_model_every:
            self.train_state_model()
        mlp, ref = self.mlp, self.mlp_uncertainty_ref

        def state_model(p: np.ndarray, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            out = mlp.predict(p, a)
            return out["next_obs"], out["disagreement"] / ref

        return state_model

    def _as_learner_sees(self, eps: list[Episode]) -> list[Episode]:
        """Generated branches split back into proprio and state, judged (`_from_model`), uncertainty as configured."""
        eps = [e for e in map(self._from_model, eps) if e is not None]  # None: started in the contact zone
        if self.cfg.uncertainty_over == "branch_mean":
            eps = [replace(e, uncertainty=branch_mean(e.uncertainty)) for e in eps]
        return eps

    def _generate_state(self, policy: Any, num_branches: int, horizon: int) -> list[Episode]:
        """``frames`` False: the MLP ensemble's branches from the same starts the service would branch from (the
        most recent real episodes, the demos before any), judged like the video model's."""
        from .generate import generate_state_branches

        with self.service.lock:
            recent = self.service.cfg.recent_episodes
            starts = (self.service.train_pool + self.service.heldout)[-recent:] or self.service.demos[-recent:]
        if not starts or not self._seen:
            return []
        state_model = self._fitted_state_model()
        eps = generate_state_branches(starts, _StateFromProprio(policy, self._proprio_dim), num_branches, horizon,
                                      state_model, self.cfg.action_noise, rng=self.rng, model_version=self.version)
        return self._as_learner_sees(eps)


class _StateFromProprio:
    """A state-based policy seen by the world model: splits its extended proprio into proprio + state."""

    def __init__(self, policy: Any, proprio_dim: int | None) -> None:
        if proprio_dim is None:
            raise ValueError("state_in_proprio: no real episode observed yet, the proprio size is unknown")
        self.policy, self.p = policy, proprio_dim
        self.version = getattr(policy, "version", "")

    def act_batch(self, images, proprio, noise_std: float = 0.0, rng=None):
        proprio = np.asarray(proprio, np.float32)
        return self.policy.act_batch(images, proprio[:, :self.p], noise_std=noise_std, rng=rng,
                                     state=proprio[:, self.p:])
