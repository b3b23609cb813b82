"""`Learner`: the agent + the three replay stores + PPL, shared by the in-process driver and the ROS node.

Batch composition: ``round(batch_size * synthetic_share)`` synthetic transitions (when any are
admitted), the rest split ``demo_fraction`` / ``1 - demo_fraction`` between demo and real data
(symmetric sampling, RLPD style; all from the non-empty one when the other is empty).
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from worldsample_common.core.episode import Episode, Source

from .agent import SACAgent
from .config import AgentConfig, PPLConfig, ReplayConfig
from .ppl import PPLController
from .replay import AddReport, ReplayStore, Transition, concat_batches, episode_rows, subset_rows

log = logging.getLogger(__name__)
OPTIMIZERS = ("actor_opt", "critic_opt", "alpha_opt")  # the agent's optimisers, saved with its state


DECISIONS = "ppl_decisions.csv"  # PPL's decision on every synthetic transition, one row each (both drivers)
DECISION_COLUMNS = ["scored_at", "bag", "episode_id", "step", "uncertainty", "trust", "admitted"]


def log_decisions(path: str | Path, episodes: list[Episode], admitted: list[np.ndarray], bag: str = "") -> None:
    """Append PPL's decision on every transition of ``episodes`` (``admitted`` as filled by
    `Learner.add_synthetic_episodes`) to the CSV ``path``; raises OSError when it cannot be written."""
    import time

    from worldsample_common.core.files import append_csv

    now = round(time.time(), 3)
    rows = [[now, bag, ep.episode_id, t, float(ep.uncertainty[t]), float(ep.trust[t]), int(adm[t])]
            for ep, adm in zip(episodes, admitted, strict=True) for t in range(ep.length)]
    append_csv(path, DECISION_COLUMNS, rows)


def mean_reward(ep: Episode) -> float:
    """An episode's return per step (PPL's progress_by "return"); NaN for an empty one."""
    return ep.episode_return / ep.length if ep.length else float("nan")


class SyntheticSource(Protocol):
    """Anything that produces synthetic branches for a policy (the world model, a static pool, ...)."""

    def generate(self, policy: Any, num_branches: int, horizon: int) -> list[Episode]: ...


class Learner:
    def __init__(self, agent_cfg: AgentConfig, ppl_cfg: PPLConfig | None = None,
                 replay_cfg: ReplayConfig | None = None, replay_dir: str | Path | None = None) -> None:
        self.agent = SACAgent(agent_cfg)
        self.cfg = agent_cfg
        self.ppl = PPLController(ppl_cfg)
        rc = replay_cfg or ReplayConfig()
        spec = self.agent.spec
        if rc.store_images is False and spec.cameras:
            raise ValueError("ReplayConfig.store_images=False contradicts AgentConfig.obs_mode='pixels'")
        d = Path(replay_dir) if replay_dir is not None else None
        self.demo = ReplayStore("demo", spec, rc.capacity, d / "demo" if d else None, rc.chunk_size)
        self.real = ReplayStore("real", spec, rc.capacity, d / "real" if d else None, rc.chunk_size)
        self.synthetic = ReplayStore("synthetic", spec, rc.synthetic_capacity, d / "synthetic" if d else None,
                                     rc.chunk_size)
        self.rng = np.random.default_rng(agent_cfg.seed)
        self._window: dict[str, list[float]] = {"q_real": [], "q_synthetic": [], "critic_loss": [], "alpha": []}
        self.last_info: dict[str, float] = {}
        self.pretrain_s = 0.0  # seconds spent pre-training the frozen pixel encoder (`pretrain_encoder`)
        self.pretrain_info: dict[str, Any] = {}

    # ------------------------------------------------------------------ data in
    def add_demo_episode(self, ep: Episode) -> AddReport:
        rep = self.demo.add_episode(ep)
        if rep.added:
            self.ppl.observe_demo_episode(mean_reward(ep))
        return rep

    def add_real_episode(self, ep: Episode, count_progress: bool = True) -> AddReport:
        rep = self.real.add_episode(ep)
        if count_progress and rep.added:
            self.ppl.observe_real_episode(ep.success, mean_reward(ep))
        return rep

    def add_transition(self, tr: Transition) -> AddReport:
        """A single transition (the ROS topic path). Synthetic ones go through PPL selection."""
        if int(tr.source) == Source.SYNTHETIC:
            rows_rep = AddReport()
            from .replay import transition_rows

            try:
                rows, problems = transition_rows(tr, self.agent.spec)
            except (TypeError, ValueError):
                rows, problems = {}, ["invalid"]
            if problems:
                rows_rep.rejected[problems[0]] += 1
                self.synthetic.rejected.update(rows_rep.rejected)
                return rows_rep
            return self._admit_rows(rows)[0]
        store = self.demo if int(tr.source) == Source.DEMO else self.real
        return store.add_transition(tr)

    def add_synthetic_episodes(self, episodes: list[Episode],
                               admitted: list[np.ndarray] | None = None) -> AddReport:
        """Score every synthetic transition, admit the trusted ones into the synthetic store.

        Each episode's ``trust`` is overwritten with PPL's score of its transitions (0 where the
        transition was invalid); ``admitted``, when given, receives one bool array per episode
        (which transitions PPL admitted), so callers can record every decision.
        """
        total = AddReport()
        for ep in episodes:
            rows, problems = episode_rows(ep, self.agent.spec)
            if problems:
                total.rejected[problems[0]] += ep.length
                self.ppl.reject_invalid(ep.length)
                ep.trust = np.zeros(ep.length, np.float32)
                if admitted is not None:
                    admitted.append(np.zeros(ep.length, bool))
                continue
            rep, trust, mask = self._admit_rows(rows)
            ep.trust = trust
            if admitted is not None:
                admitted.append(mask)
            total.merge(rep)
        return total

    def _admit_rows(self, rows: dict[str, Any]) -> tuple[AddReport, np.ndarray, np.ndarray]:
        """PPL selection of synthetic rows; returns the report, the trust of every row (0 if invalid) and
        which rows were admitted."""
        n = len(rows["episode_id"])
        trust_all = np.zeros(n, np.float32)
        admitted_all = np.zeros(n, bool)
        # replay-level validity first (shapes, NaN, action range): those are "invalid" for PPL
        ok, reasons = self.synthetic._validate(rows, n)
        rep = AddReport(rejected=Counter(reasons))
        if reasons:
            self.ppl.reject_invalid(sum(reasons.values()))
        if not ok.any():
            return rep, trust_all, admitted_all
        rows = subset_rows(rows, ok)
        unc = np.asarray(rows["uncertainty"], np.float32)
        q_ens, q_real_max = self._value_inputs(rows)
        scores = self.ppl.score(unc, q_ens, q_real_max)
        trust_all[np.asarray(ok, bool)] = scores.trust
        mask, ppl_reasons = self.ppl.admit(scores)
        admitted_all[np.flatnonzero(np.asarray(ok, bool))[np.asarray(mask, bool)]] = True
        rep.rejected.update(ppl_reasons)
        rows = dict(rows)
        rows["trust"] = scores.trust
        if mask.any():
            added = self.synthetic.add_rows(subset_rows(rows, mask))
            self.ppl.withdraw(added.duplicates)  # admitted = entered training, once per transition
            rep.merge(added)
        return rep, trust_all, admitted_all

    def _value_inputs(self, rows: dict[str, Any]) -> tuple[np.ndarray | None, float]:
        """Critic-ensemble Q (N, B) on synthetic rows and the largest mean Q on a real sample."""
        base = self.real if len(self.real) else self.demo
        if len(base) == 0 or self.agent.updates == 0:
            return None, float("inf")
        from .replay import batch_from_flat

        flat = {k: np.asarray(v) for k, v in rows.items() if k != "episode_id"}
        batch = batch_from_flat(flat, self.agent.spec)
        qs = [self.agent.q_values(_slice_obs(batch["obs"], i, i + 512), batch["action"][i:i + 512])
              for i in range(0, len(batch["action"]), 512)]
        q_ens = np.concatenate(qs, axis=1)
        real = base.sample(min(256, len(base)), self.rng)
        q_real = self.agent.q_values(real["obs"], real["action"]).mean(0)
        self.ppl.observe_q_scale(q_real)
        return q_ens, float(np.max(q_real))

    # ------------------------------------------------------------------ training
    def can_train(self) -> bool:
        return len(self.real) + len(self.demo) > 0

    def sample_batch(self) -> dict[str, Any]:
        bs = self.cfg.batch_size
        n_syn = int(round(bs * self.ppl.synthetic_share())) if len(self.synthetic) else 0
        rest = bs - n_syn
        if len(self.demo) and len(self.real):
            n_demo = int(round(rest * self.cfg.demo_fraction))
        elif len(self.demo):
            n_demo = rest
        else:
            n_demo = 0
        n_real = rest - n_demo
        parts = []
        ns, g = self.cfg.n_step, self.cfg.discount
        if n_demo:
            parts.append(self.demo.sample(n_demo, self.rng, ns, g))
        if n_real:
            parts.append(self.real.sample(n_real, self.rng, ns, g))
        if n_syn:
            parts.append(self.synthetic.sample(n_syn, self.rng, ns, g))
        return concat_batches(parts)

    def train_step(self) -> dict[str, float]:
        """``utd_ratio`` critic updates and one actor update."""
        if not self.can_train():
            raise RuntimeError("Learner.train_step: no demo or real transitions yet")
        if not self.agent.normalizer_fitted:
            self.fit_normalizer()
        self.sync_features()
        info = self.agent.update([self.sample_batch() for _ in range(self.cfg.utd_ratio)])
        for k in self._window:
            if np.isfinite(info.get(k, float("nan"))):
                self._window[k].append(info[k])
        self.last_info = info
        return info

    # ------------------------------------------------------------------ frozen pixel encoder
    def sync_features(self) -> None:
        """Frozen pixel encoder only (no-op otherwise): pre-train it when it never was (`pretrain_encoder`),
        and re-encode every store whose cached features are of another encoder version (after a
        re-training, or a resumed learner whose stores were reloaded from disk)."""
        if not self.agent.encoder.frozen:
            return
        if self.agent.encoder_version == 0:
            self.pretrain_encoder()
            return
        v = self.agent.encoder_version
        for store in (self.demo, self.real, self.synthetic):
            if store.feature_version != v:
                store.set_featurizer(self.agent.features, v)

    def pretrain_encoder(self, log_every: int = 0) -> dict[str, Any]:
        """(Re-)train the frozen pixel encoder on the frames the demo and real stores hold now (at most
        ``frozen_pretrain_frames``, drawn evenly from both when both hold more than half each; frames
        only, nothing else), then re-encode every store's cached features with the new version."""
        import time

        t0 = time.perf_counter()
        stores = [s for s in (self.demo, self.real) if len(s)]
        if not stores:
            raise RuntimeError("Learner.pretrain_encoder: no demo or real frames yet")
        budget = self.cfg.frozen_pretrain_frames
        take = {s.name: min(len(s), budget // len(stores)) for s in stores}
        spare = budget - sum(take.values())
        for s in stores:  # what one store cannot fill, the other may
            extra = min(spare, len(s) - take[s.name])
            take[s.name] += extra
            spare -= extra
        parts = []
        for s in stores:
            idx = np.sort(self.rng.choice(len(s), size=take[s.name], replace=False))
            parts.append(s.frames(idx))
        frames = {c: np.concatenate([p[c] for p in parts]) for c in self.agent.spec.cameras}
        info = self.agent.pretrain_encoder(frames, log_every=log_every)
        v = self.agent.encoder_version
        for store in (self.demo, self.real, self.synthetic):
            store.set_featurizer(self.agent.features, v)
        self.pretrain_s += time.perf_counter() - t0
        self.pretrain_info = {**{k: v for k, v in info.items() if k != "losses"},
                              "first_loss": info["losses"][0] if info["losses"] else float("nan"),
                              "final_loss": float(np.mean(info["losses"][-50:])) if info["losses"] else float("nan"),
                              "frames_from": take}
        log.info("learner: frozen pixel encoder pre-trained (version %d) on %s frames in %.1f s", v, take,
                 time.perf_counter() - t0)
        return info

    def fit_normalizer(self) -> None:
        """Fix the agent's observation standardisation from the demo and real data held now."""
        parts = [s.vectors() for s in (self.demo, self.real) if len(s)]
        if parts:
            self.agent.fit_normalizer({k: np.concatenate([p[k] for p in parts]) for k in parts[0]})

    def close_window(self) -> dict[str, Any]:
        """End an update window: feed the window's mean Q on real / synthetic data to PPL, return its status."""
        if self.ppl.cfg.overestimation_reference in ("branch_return", "branch_start"):
            qr, qs = self.branch_q()
        else:  # "batch"
            qr = float(np.mean(self._window["q_real"])) if self._window["q_real"] else float("nan")
            qs = float(np.mean(self._window["q_synthetic"])) if self._window["q_synthetic"] else float("nan")
        self.ppl.observe_q(qr, qs)
        status = self.ppl.status(self.agent.updates)
        # the share of each batch actually drawn from synthetic data (PPLStatus.synthetic_share): PPL's
        # target while the synthetic store holds transitions, 0 while nothing was admitted (`sample_batch`)
        status["synthetic_share_target"] = status["synthetic_share"]
        status["synthetic_share"] = status["synthetic_share"] if len(self.synthetic) else 0.0
        status["critic_loss"] = float(np.mean(self._window["critic_loss"])) if self._window["critic_loss"] else float("nan")
        status["alpha"] = float(np.mean(self._window["alpha"])) if self._window["alpha"] else float("nan")
        for k in self._window:
            self._window[k] = []
        return status

    def branch_q(self, n: int = 256) -> tuple[float, float]:
        """(q_real, q_synthetic) of the overestimation signal over ``n`` of the newest
        ``PPLConfig.reference_window`` admitted synthetic transitions, with the current critic and mean
        over critics. A branch's step 0 starts from a real state.

        ``"branch_return"``: for each imagined step k >= 1 whose branch is stored whole from its start,
        q_real = Q(s_0, a_0) and q_synthetic = sum_{j<k} discount^j r_j + discount^k Q(s_k, a_k), the
        branch's own imagined rewards and value; for exact data both estimate the same return, so the
        signal reads ~0 whatever the policy's progress along the branch. ``"branch_start"``: q_real = mean
        Q of the sampled starts, q_synthetic = mean Q of the sampled imagined steps (reads positive for a
        policy that makes progress within its branches, exact data included). NaN where the sample holds
        no pair."""
        if len(self.synthetic) == 0 or self.agent.updates == 0:
            return float("nan"), float("nan")
        idx = self.synthetic.recent_indices(self.ppl.cfg.reference_window)
        if self.ppl.cfg.overestimation_reference == "branch_return":
            idx = idx[self.synthetic.steps(idx) > 0]
            idx = self.rng.choice(idx, size=min(n, len(idx)), replace=False)
            start, ret, ok = self.synthetic.branch_returns(idx, self.cfg.discount)
            if not ok.any():
                return float("nan"), float("nan")
            idx, start, ret = idx[ok], start[ok], ret[ok]
            both = np.concatenate([start, idx])
            batch = self.synthetic.gather(both)
            q = self.agent.q_values(batch["obs"], batch["action"]).mean(0)
            k = self.synthetic.steps(idx).astype(np.float64)
            m = len(idx)
            return float(q[:m].mean()), float(np.mean(ret + self.cfg.discount**k * q[m:]))
        idx = self.rng.choice(idx, size=min(n, len(idx)), replace=False)
        batch = self.synthetic.gather(idx)
        q = self.agent.q_values(batch["obs"], batch["action"]).mean(0)
        start = self.synthetic.steps(idx) == 0
        return (float(q[start].mean()) if start.any() else float("nan"),
                float(q[~start].mean()) if (~start).any() else float("nan"))

    def flush(self) -> None:
        for s in (self.demo, self.real, self.synthetic):
            s.flush()

    # ------------------------------------------------------------------ state (resuming a run)
    def state_dict(self) -> dict[str, Any]:
        """What a resumed learner continues from: the agent (weights, normaliser, temperature, update
        count), its optimisers and random generators, PPL's signals and counters, the sampling generator
        and the replay sizes at this moment (the replay itself persists in its chunk files: `flush` first)."""
        a = self.agent
        return {"agent": a.state_dict(),
                "optimizers": {n: getattr(a, n).state_dict() for n in OPTIMIZERS},
                "agent_generator": a._gen.get_state(),
                "rng": self.rng.bit_generator.state, "ppl": self.ppl.state_dict(),
                "replay": {s.name: len(s) for s in (self.demo, self.real, self.synthetic)}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore `state_dict` (or a bare ``SACAgent.state_dict`` of an older run: the agent only)."""
        if "agent" not in state:
            self.agent.load_state_dict(state)
            return
        a = self.agent
        a.load_state_dict(state["agent"])
        for name in OPTIMIZERS:
            getattr(a, name).load_state_dict(state["optimizers"][name])
        a._gen.set_state(state["agent_generator"])
        self.rng.bit_generator.state = state["rng"]
        self.ppl.load_state_dict(state["ppl"])


def _slice_obs(obs: dict[str, Any], a: int, b: int) -> dict[str, Any]:
    return {k: ({c: x[a:b] for c, x in v.items()} if isinstance(v, dict) else v[a:b]) for k, v in obs.items()}
