"""The world-model component of the loop, without ROS: ingest episode bags, post-train, generate.

`WorldModelService` is what `nodes/world_model_node.py` owns (and what an in-process driver can
call directly):

- `add_bag(bag_uri)`: read a recorded episode bag (bad bags rejected, reason returned and kept);
  REAL episodes join the training pool; every ``heldout_every``-th one is held out for fidelity
  (and for calibrating the uncertainty reference).
- `should_train()` / `train()`: once ``min_new_episodes`` new real episodes arrived, post-train
  the latest version (or pre-train on ``demos_dir`` first when the store is empty), evaluate
  fidelity on held-out real episodes and save a new version atomically.
- `generate(...)`: synthetic branches from recent real episodes under a policy -> one bag.

A training that is cut (kill -9, or a stop) resumes at the next start from ``RUN/train_state.pt``
(written every ``model.train_state_every`` steps, pre-training included). The episodes it trains on
are kept in ``RUN/train_job.json`` while it runs, so a restart that has more real episodes by then
(bags recorded meanwhile) resumes the same job instead of starting over; the newer episodes wait
for the next post-training.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from worldsample_common.core.episode import Episode, Source

from .config import WorldModelConfig
from .store import WorldModelStore

LOG = logging.getLogger(__name__)
TRAIN_JOB = "train_job.json"  # the running training's version tag, parent and episode ids (for resuming it)


@dataclass
class WorldModelServiceConfig:
    run_dir: str = "runs/world_model"  # versions, logs, train state
    demos_dir: str = ""  # demonstration bags for pre-training / keeping in the mix ("" = none)
    synthetic_dir: str = ""  # where synthetic bags go ("" = RUN/synthetic)
    min_new_episodes: int = 5  # post-train when this many new real episodes arrived
    pretrain_steps: int = 1500
    posttrain_steps: int = 150  # one loop iteration's post-training: ~2 min at 64 px on a 2-core CPU
    heldout_every: int = 5  # every N-th real episode is held out for fidelity / calibration
    recent_episodes: int = 20  # synthetic branches start from the most recent real episodes
    fidelity_horizons: tuple[int, ...] = (1, 4, 8)
    device: str = "auto"
    threads: int = 0
    progress: bool = False
    model: WorldModelConfig = field(default_factory=WorldModelConfig)

    def validate(self) -> None:
        for name in ("min_new_episodes", "heldout_every", "recent_episodes"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"WorldModelServiceConfig.{name} must be an int >= 1, got {v!r}")
        for name in ("pretrain_steps", "posttrain_steps"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 0:
                raise ValueError(f"WorldModelServiceConfig.{name} must be an int >= 0, got {v!r}")
        if not self.fidelity_horizons or min(self.fidelity_horizons) < 1:
            raise ValueError(f"WorldModelServiceConfig.fidelity_horizons must be positive, got {self.fidelity_horizons}")


def _floats(values) -> list[float]:
    """Metric list from memory or a manifest (where a NaN was written as null)."""
    return [float("nan") if v is None else float(v) for v in (values or [])]


def fidelity_summary(fid: dict[str, Any]) -> str:
    """One line: per horizon the model's PSNR/SSIM, copy-last-frame's, and the uncertainty-error rank correlation."""
    parts = []
    fid = {**fid, "spearman": _floats(fid.get("spearman"))}
    for i, k in enumerate(fid["horizons"]):
        parts.append(f"h={k} PSNR {fid['psnr'][i]:.2f} (copy {fid['copy']['psnr'][i]:.2f}) SSIM {fid['ssim'][i]:.3f} "
                     f"(copy {fid['copy']['ssim'][i]:.3f}) rho {fid['spearman'][i]:.2f}")
    return "held-out fidelity vs copy-last-frame: " + ", ".join(parts)


class WorldModelService:
    def __init__(self, cfg: WorldModelServiceConfig | None = None) -> None:
        self.cfg = cfg or WorldModelServiceConfig()
        self.cfg.validate()
        self.cfg.model.device = self.cfg.device
        self.cfg.model.num_threads = self.cfg.threads
        self.store = WorldModelStore(self.cfg.run_dir)
        self.store.cleanup()
        self.lock = threading.Lock()  # guards the pools and the current model
        self.stop_event = threading.Event()  # set by request_stop(): a running training stops within a step
        self.train_pool: list[Episode] = []
        self.heldout: list[Episode] = []
        # the policy's pixel encoder (frames per camera -> features), when it has one: fidelity then also says how
        # the predicted frames read to it (`fidelity.feature_skill`); set by `set_featurizer`
        self.featurizer: Any = None
        self.seen: set[str] = set()
        self.rejected: list[tuple[str, str]] = []
        self.new_since_train = 0
        self.real_count = 0
        self.open_bags_at_start = 0  # bags still being recorded when `add_recorded` looked (they arrive later)
        self.demos: list[Episode] = []
        self.model = None
        self.fidelity: dict[str, Any] | None = None
        self.state = "idle"
        self.message = ""
        if self.store.latest():
            self.model = self.store.load(device=self.cfg.device)
            self.fidelity = self.store.manifest(self.model.version).get("fidelity")
        if self.cfg.demos_dir:
            from worldsample_common.core.bag_io import load_episodes_report

            rep = load_episodes_report(self.cfg.demos_dir, sources=[Source.DEMO])
            for bag, reason in rep.skipped:
                self.rejected.append((str(bag), reason))
            self.demos = rep.episodes

    # ------------------------------------------------------------------ snapshots of an in-process run
    def __getstate__(self) -> dict[str, Any]:
        """Everything but the lock and the stop event (`worldsample_learner.drivers.snapshot`), and the versions
        on disk at this moment, which `after_resume` returns the store to."""
        state = {k: v for k, v in self.__dict__.items() if k not in ("lock", "stop_event")}
        state["_versions_at_snapshot"] = self.store.versions()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.lock = threading.Lock()
        self.stop_event = threading.Event()

    def after_resume(self) -> None:
        """After `__setstate__` from a snapshot: remove the versions saved after it (the resumed run saves them
        again, under the same names) and a training's leftover train state, so the store is what it was then."""
        from .train import clear_train_state

        keep = set(self.__dict__.pop("_versions_at_snapshot", self.store.versions()))
        for name in self.store.versions():
            if name not in keep:
                shutil.rmtree(self.store.path(name))
        self.store.cleanup()
        clear_train_state(self.cfg.run_dir)

    # ------------------------------------------------------------------ ingest
    def add_episode(self, ep: Episode) -> str | None:
        """Add an in-memory episode; returns why it was rejected, or None."""
        from .data import check_episode, episode_name

        if ep.episode_id in self.seen:
            return None
        mcfg = self.model.cfg if self.model is not None else self.cfg.model
        pdim = self.model.proprio_dim if self.model is not None else None
        reason = check_episode(ep, tuple(mcfg.cameras), mcfg.image_size, pdim)
        if reason is None and ep.source != Source.REAL:
            reason = f"source is {ep.source.name}, the world model post-trains on REAL episodes"
        if reason is not None:
            self.rejected.append((episode_name(ep), reason))
            LOG.warning("world model: rejected %s: %s", episode_name(ep), reason)
            return reason
        with self.lock:
            self.seen.add(ep.episode_id)
            self.real_count += 1
            held = self.real_count % self.cfg.heldout_every == 0
            if held:
                self.heldout.append(ep)
            else:
                self.train_pool.append(ep)
                self.new_since_train += 1
        if held and self.model is not None and self.fidelity is None:
            self.refresh_fidelity()
        return None

    def set_featurizer(self, featurizer: Any) -> None:
        """Read predicted frames with ``featurizer`` (uint8 frames per camera -> (N, F) features, or None) from
        the next fidelity on: a policy's ``features`` (its frozen pixel encoder). None: whole-frame metrics only."""
        self.featurizer = featurizer

    def refresh_fidelity(self) -> dict[str, Any] | None:
        """Evaluate the current version on the held-out real episodes (None if it cannot yet)."""
        from .fidelity import evaluate_fidelity

        with self.lock:
            model, held = self.model, list(self.heldout)
        if model is None or not held:
            return None
        try:
            fid = evaluate_fidelity(model, held, self.cfg.fidelity_horizons, featurizer=self.featurizer)
        except ValueError as exc:  # held-out episodes shorter than the horizons
            LOG.warning("world model: no fidelity for %s yet: %s", model.version, exc)
            return None
        with self.lock:
            if self.model is model:
                self.fidelity = fid
        if model.version and self.store.manifest(model.version).get("fidelity_pending"):
            self.store.save_fidelity(model.version, fid)  # saved while stopping: recorded now
        return fid

    def add_bag(self, bag_uri: str) -> str | None:
        """Read an episode bag and add its episodes; returns the reason when it was rejected."""
        from worldsample_common.core.bag_io import BagError, read_bag_episodes

        try:
            eps = read_bag_episodes(bag_uri)
        except (BagError, FileNotFoundError, OSError) as exc:
            reason = f"bag {bag_uri}: {exc}"
            self.rejected.append((bag_uri, str(exc)))
            LOG.warning("world model: %s", reason)
            return reason
        reasons = [r for r in (self.add_episode(e) for e in eps) if r]
        return "; ".join(reasons) or None

    def add_recorded(self, directory: str | Path) -> tuple[int, list[str]]:
        """Ingest the real-episode bags already in ``directory`` (a resumed run).

        Episodes the newest version was trained on (its manifest's ``trained_on``) do not count
        as new, so resuming does not retrain on old data. A bag the recorder has not finished
        (`bag_io.bag_closed`: the episode being recorded as this node starts) is left for its
        ``episodes/recorded`` announcement: it is not a damaged bag, and is counted in
        ``open_bags_at_start``. Returns (episodes added, skip reasons).
        """
        from worldsample_common.core.bag_io import BagError, bag_closed, find_bags, read_bag_episodes

        if not Path(directory).is_dir():
            return 0, []
        episodes: list[Episode] = []
        skipped: list[str] = []
        self.open_bags_at_start = 0
        for bag in find_bags(directory):
            if not bag_closed(bag):
                self.open_bags_at_start += 1
                continue
            try:
                episodes += [e for e in read_bag_episodes(bag) if e.source == Source.REAL]
            except BagError as exc:
                LOG.warning("world model: skipping bag: %s", exc)
                skipped.append(f"{bag}: {exc}")
        trained: set[str] = set()
        if self.model is not None and self.model.version:
            trained = {e["episode_id"] for e in self.store.manifest(self.model.version).get("trained_on", [])}
        added = 0
        for ep in sorted(episodes, key=lambda e: str(e.extras.get("bag", e.episode_id))):
            reason = self.add_episode(ep)
            if reason:
                skipped.append(reason)
                continue
            added += 1
            if ep.episode_id in trained:
                with self.lock:
                    self.new_since_train = max(0, self.new_since_train - 1)
        return added, skipped

    # ------------------------------------------------------------------ training
    def should_train(self) -> bool:
        return self.new_since_train >= self.cfg.min_new_episodes or (self.model is None and bool(self.demos))

    def train(self) -> str:
        """Pre-train (no version yet) or post-train; evaluate fidelity; save a version. Returns it."""
        from .fidelity import evaluate_fidelity
        from .store import version_name
        from .train import TrainingDiverged, TrainingStopped, clear_train_state, train_world_model

        with self.lock:
            real = list(self.train_pool)
            held = list(self.heldout)
            consumed = self.new_since_train
        tag = version_name(len(self.store.versions()) + 1)
        parent = self.model.version if self.model is not None else None
        data = self._job_episodes(tag, parent or "", self.demos + real, held)
        in_job = {e.episode_id for e in data}
        consumed = max(0, consumed - sum(e.episode_id not in in_job for e in real))  # newer ones wait
        real = [e for e in real if e.episode_id in in_job]
        self.state, self.message = "training", ""
        try:
            if self.model is None:
                if not data:
                    raise ValueError("nothing to train on: no demos (demos_dir) and no real episodes yet")
                model, metrics = train_world_model(
                    data, self.cfg.model, steps=self.cfg.pretrain_steps, progress=self.cfg.progress,
                    run_dir=self.cfg.run_dir, tag=tag, calibration_episodes=held or None,
                    should_stop=self.stop_event.is_set)
                mode = "pretrain-demos" if not real else ("pretrain-real" if not self.demos else "pretrain-demos+real")
            else:
                model, metrics = train_world_model(
                    data, None, init=self.model, steps=self.cfg.posttrain_steps,
                    progress=self.cfg.progress, run_dir=self.cfg.run_dir, tag=tag, calibration_episodes=held or None,
                    should_stop=self.stop_event.is_set)
                mode = "posttrain-real"
            fid = None
            if held and self.stop_event.is_set():  # stopping: save the version now, evaluate it at the next start
                LOG.info("world model: stopping; the new version's fidelity is evaluated at the next start")
            elif held:
                try:
                    fid = evaluate_fidelity(model, held, self.cfg.fidelity_horizons, featurizer=self.featurizer)
                except ValueError as exc:  # held-out episodes shorter than the horizons
                    LOG.warning("world model: no fidelity for this version: %s", exc)
            manifest = {
                "mode": mode, "parent": parent, "steps": metrics["steps"], "metrics": metrics, "fidelity": fid,
                "fidelity_pending": bool(held) and fid is None and self.stop_event.is_set(),
                "trained_on": [{"episode_id": e.episode_id, "source": e.source.name, "bag": e.extras.get("bag", "")}
                               for e in data],
                "heldout": [e.episode_id for e in held],
            }
            version = self.store.save_version(model, manifest)
            clear_train_state(self.cfg.run_dir)
            (Path(self.cfg.run_dir) / TRAIN_JOB).unlink(missing_ok=True)
            with self.lock:
                self.model = model
                self.fidelity = fid
                self.new_since_train = max(0, self.new_since_train - consumed)
            self.state, self.message = "idle", f"trained {version} ({mode}, {metrics['steps']} steps)"
            if fid:
                self.message += "; " + fidelity_summary(fid)
            LOG.info("world model: %s", self.message)
            return version
        except TrainingStopped as exc:
            self.state, self.message = "idle", str(exc)
            raise
        except Exception as exc:
            self.state, self.message = "error", f"training failed: {exc}"
            (Path(self.cfg.run_dir) / TRAIN_JOB).unlink(missing_ok=True)  # the next try takes the data at hand
            if isinstance(exc, TrainingDiverged):  # the previous version stays; the next try waits for new episodes
                clear_train_state(self.cfg.run_dir)
                with self.lock:
                    self.new_since_train = max(0, self.new_since_train - consumed)
            raise

    def _job_episodes(self, tag: str, parent: str, data: list[Episode], held: list[Episode] = ()) -> list[Episode]:
        """The episodes of the training ``tag`` (from ``parent``): those of its unfinished job when one was
        cut (all still at hand, same order, so its train state matches), else ``data``, recorded as the job.

        A cut job is resumed across any number of restarts. Its episodes are looked up among the held-out
        ones too: a restart deals the recorded bags into the pools in bag-name order, which is not always
        the order they arrived in, so an episode the job trains on may be held out now."""
        path = Path(self.cfg.run_dir) / TRAIN_JOB
        by_id = {e.episode_id: e for e in [*held, *data]}
        try:
            job = json.loads(path.read_text())
        except (OSError, ValueError):
            job = None
        if (isinstance(job, dict) and job.get("tag") == tag and job.get("parent") == parent and job.get("episodes")
                and all(i in by_id for i in job["episodes"])):
            if len(job["episodes"]) != len(data):
                LOG.info("world model: resuming training job %s on its %d episodes (%d newer wait)", tag,
                         len(job["episodes"]), len(data) - len(job["episodes"]))
            return [by_id[i] for i in job["episodes"]]
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps({"tag": tag, "parent": parent, "episodes": [e.episode_id for e in data]}))
        os.replace(tmp, path)
        return data

    def request_stop(self) -> None:
        """Make a running `train` stop at its next step (train state kept for resuming, no version saved)."""
        self.stop_event.set()

    # ------------------------------------------------------------------ generation
    def generate(self, policy: Any, num_branches: int, horizon: int, action_noise: float,
                 policy_version: str = "", seed: int | None = None,
                 write_bag: bool = True, state_model: Any = None) -> tuple[list[Episode], Path | None]:
        from .generate import generate_branches, write_synthetic_bags

        with self.lock:
            model = self.model
            starts = (self.train_pool + self.heldout)[-self.cfg.recent_episodes:]
        if model is None:
            raise ValueError("no world-model version yet: nothing to generate with")
        if not starts:
            starts = self.demos[-self.cfg.recent_episodes:]
        if not starts:
            raise ValueError("no real (or demo) episodes received yet to branch synthetic rollouts from")
        self.state = "generating"
        try:
            rng = np.random.default_rng(seed)
            eps = generate_branches(model, starts, policy, num_branches, horizon, action_noise, rng,
                                    policy_version=policy_version or None, state_model=state_model)
            if not write_bag:
                return eps, None
            out = Path(self.cfg.synthetic_dir) if self.cfg.synthetic_dir else Path(self.cfg.run_dir) / "synthetic"
            bag = write_synthetic_bags(eps, out, name=f"synthetic_{model.version}_{time.strftime('%Y%m%d-%H%M%S')}"
                                                      f"_{rng.integers(1 << 30):08x}")
            return eps, bag
        finally:
            self.state = "idle"

    # ------------------------------------------------------------------ status
    def status(self) -> dict[str, Any]:
        m = self.model
        man = self.store.manifest(m.version) if m is not None and m.version else {}
        met = man.get("metrics", {})
        fid = self.fidelity or {}
        return {
            "state": self.state, "version": m.version if m is not None else "",
            "uri": str(self.store.path(m.version)) if m is not None and m.version else "",
            "train_steps": int(man.get("steps", 0)),
            "num_real_episodes": int(met.get("num_real_episodes", 0)),
            "num_demo_episodes": int(met.get("num_demo_episodes", 0)),
            "horizons": list(fid.get("horizons", [])), "psnr": _floats(fid.get("psnr")),
            "ssim": _floats(fid.get("ssim")), "copy_psnr": _floats(fid.get("copy", {}).get("psnr")),
            "copy_ssim": _floats(fid.get("copy", {}).get("ssim")),
            "uncertainty_error_rank_corr": _floats(fid.get("spearman")),
            "feature_skill": _floats(fid.get("feature_skill")), "message": self.message,
            "pending_real_episodes": self.new_since_train,
        }
