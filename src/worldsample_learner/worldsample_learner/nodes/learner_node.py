"""learner_node: trains the policy continuously from demo, real and synthetic episodes, all read from bags.

One path per payload: every episode reaches the learner as a rosbag2 bag announced by an
EpisodeInfo END event (DESIGN: bags are the durable record), never as per-step messages.

Subscribes ``episodes`` and ``episodes/recorded`` (EpisodeInfo: END events give PPL's progress
signal; a ``bag_uri`` of a real or demo episode is loaded into the replay), rescans ``real_dir``
(the run's bags) every ``rescan_period_s``, at start-up and on shutdown (after waiting up to
``SHUTDOWN_BAG_WAIT_S`` for the bags the recorder is closing on the same stop), so no real episode is
lost to a missed event or a restart (the replay's keys load each bag once);
``world_model/synthetic`` (EpisodeInfo, source SYNTHETIC: one bag of synthetic branches the world
model generated): each bag's branches are scored by PPL together (`Learner.add_synthetic_episodes`)
and every decision is appended to ``out_dir/ppl_decisions.csv`` (bag, episode, step, uncertainty,
trust, admitted: the bag itself is not copied); and
``world_model/status`` (WorldModelStatus: mean SSIM = world-model fidelity for PPL).
With a ``run_id`` parameter, episode events and synthetic bags of another run (another
``run_id``, e.g. a second loop on the same ROS_DOMAIN_ID) are dropped and counted (`foreign`),
so they never reach the replay or PPL's progress signal.
Publishes ``policy/checkpoint`` (PolicyCheckpoint, a new versioned file every
``checkpoint_every_updates`` updates) and ``ppl/status`` (PPLStatus, every ``status_period_s``).
The logic lives in `worldsample_learner.core.learner.Learner`; this node only converts.
"""

from __future__ import annotations

import json
import os
import time
from collections import deque
from dataclasses import asdict
from pathlib import Path

import numpy as np
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.node import Node
from worldsample_common.core.episode import Source
from worldsample_common.core.franka_interface import EVENTS, LATCHED
from worldsample_common.core.params import topic_params
from worldsample_common.core.stats import fidelity_skill
from worldsample_common.nodes.support import declare_config, qos, take_pending
from worldsample_common.nodes.support import run as run_node

from worldsample_msgs.msg import EpisodeInfo, PolicyCheckpoint, PPLStatus, WorldModelStatus

from ..core.config import LearnerNodeConfig, ReplayConfig
from ..core.learner import DECISIONS, Learner, log_decisions
from ..core.policy import save_policy
from ..core.ppl import CsvLog, flat_status

# On a stop, the recorder closes its bags while this node stops: the learner waits at most this long for the
# run's open bags to close before its last rescan (inside launch's 5 s SIGINT grace period)
SHUTDOWN_BAG_WAIT_S = 2.0
STATE_FILE = "learner_state.pt"  # out_dir/learner_state.pt: `Learner.state_dict`, every state_every_updates
LEGACY_STATE_FILE = "agent_state.pt"  # what runs before learner_state.pt saved (the agent alone)




def wm_fidelity(msg: WorldModelStatus, obs_mode: str) -> float | None:
    """PPL's world-model fidelity from a status message (`fidelity_skill`): past copy-last-frame in SSIM and PSNR,
    and, for a pixel learner, in how its own encoder reads the predicted frames (``feature_skill``, when the world
    model could read them with it). None without a copy-last-frame baseline: nothing to pace by."""
    n = len(msg.ssim)
    if not n or not len(msg.copy_ssim) == len(msg.psnr) == len(msg.copy_psnr) == n:
        return None
    feat = list(msg.feature_skill) if obs_mode == "pixels" and len(msg.feature_skill) == n else None
    return fidelity_skill(list(msg.ssim), list(msg.copy_ssim), list(msg.psnr), list(msg.copy_psnr), feat)

class LearnerNode(Node):
    def __init__(self) -> None:
        super().__init__("learner")
        cfg = declare_config(self, LearnerNodeConfig())  # every field a parameter, ppl.* included
        cfg.validate()
        self.cfg = cfg
        t = topic_params(cfg)
        self.out = Path(cfg.out_dir)
        self.learner = Learner(cfg.agent_config(), cfg.ppl_config(), ReplayConfig(), self.out / "replay")
        # the configuration this learner runs with, as its cores received it
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "config.json").write_text(json.dumps(
            {"node": asdict(cfg), "agent": asdict(self.learner.cfg), "ppl": asdict(self.learner.ppl.cfg)},
            indent=2, allow_nan=False))
        self.ppl_log = CsvLog(self.out / "ppl.csv", append=True)  # a resumed run goes on appending
        self.version = 0
        self._resume()
        self.env_steps = len(self.learner.real)
        self._seen_episodes: set[str] = set()  # real episodes counted in PPL's progress
        self.foreign = 0  # messages of another run, dropped
        self._foreign_runs: set[str] = set()
        if cfg.demos_dir:
            self._load_bags(cfg.demos_dir, demo=True)
        self._loaded_real_bags: set[str] = set()
        self._last_rescan = 0.0
        self._rescan_real()
        self.pub_ckpt = self.create_publisher(PolicyCheckpoint, t["policy_checkpoint"], qos(LATCHED))
        self.pub_status = self.create_publisher(PPLStatus, t["ppl_status"], qos(EVENTS))
        self._announce_latest()  # a resumed run: every node learns the policy in use (latched)
        # Intake callbacks only queue messages (their own reentrant group, so they never wait behind a
        # training step); the timers, in one mutually exclusive group, drain the queue and train.
        intake, work = ReentrantCallbackGroup(), MutuallyExclusiveCallbackGroup()
        self._inbox: deque = deque()
        self._stopping = False  # set by request_stop(): the work tick in flight ends after its current update
        for msg_type, topic, handler in (
                (EpisodeInfo, t["synthetic_bags"], self._on_synthetic_bag),
                (EpisodeInfo, t["episodes"], self._on_episode),
                (EpisodeInfo, t["episodes_recorded"], self._on_episode),
                (WorldModelStatus, t["world_model_status"], self._on_wm_status)):
            self.create_subscription(msg_type, topic, lambda m, h=handler: self._inbox.append((h, m)), qos(EVENTS),
                                     callback_group=intake)
        # one timer does all the work in turn (separate timers in one exclusive group starve each other
        # when a training tick takes longer than the period)
        self._last_status = time.monotonic()
        self.create_timer(cfg.train_period_s, self._work_tick, callback_group=work)
        self.executor_threads = 2
        self.get_logger().info(
            f"learner: mode={cfg.mode} obs={cfg.obs_mode} replay demo={len(self.learner.demo)} "
            f"real={len(self.learner.real)} synthetic={len(self.learner.synthetic)} -> {self.out}")

    # ------------------------------------------------------------------ inputs
    def _of_this_run(self, msg: EpisodeInfo) -> bool:
        """Whether an episode message belongs to this learner's run (counted and reported once when not)."""
        if not self.cfg.run_id or msg.run_id == self.cfg.run_id:
            return True
        self.foreign += 1
        if msg.run_id not in self._foreign_runs:
            self._foreign_runs.add(msg.run_id)
            self.get_logger().warning(f"ignoring messages of another run ({msg.run_id!r}, episode {msg.episode_id}) "
                                      f"on this ROS domain; this learner is run {self.cfg.run_id!r}")
        return False

    def _on_synthetic_bag(self, msg: EpisodeInfo) -> None:
        """A bag of synthetic branches from the world model: PPL scores them together (`_load_bags`)."""
        if msg.event == EpisodeInfo.EVENT_END and msg.bag_uri and self._of_this_run(msg):
            self._load_bags(msg.bag_uri, demo=False)

    def _score_synthetic(self, eps: list, bag: str = "") -> None:
        admitted: list = []
        rep = self.learner.add_synthetic_episodes(eps, admitted)
        n = sum(ep.length for ep in eps)
        if self.cfg.log_decisions:  # every decision, one row per synthetic transition (the bag is not copied)
            path = self.out / DECISIONS
            try:
                log_decisions(path, eps, admitted, bag)
            except OSError as e:  # the log is a record, training goes on
                self.get_logger().error(f"could not append PPL decisions to {path}: {e}")
        self.get_logger().info(f"PPL scored {n} synthetic transitions from {len(eps)} branches: admitted "
                               f"{rep.added}, rejected {dict(rep.rejected)}")

    def _on_episode(self, msg: EpisodeInfo) -> None:
        if msg.event != EpisodeInfo.EVENT_END or not self._of_this_run(msg):
            return
        if msg.source == EpisodeInfo.SOURCE_REAL and msg.episode_id not in self._seen_episodes:
            self._seen_episodes.add(msg.episode_id)
            per_step = msg.episode_return / msg.length if msg.length else None
            self.learner.ppl.observe_real_episode(bool(msg.success), per_step)
        if msg.bag_uri:
            self._load_bags(msg.bag_uri, demo=msg.source == EpisodeInfo.SOURCE_DEMO)

    def _load_bags(self, path: str, demo: bool) -> None:
        from worldsample_common.core.bag_io import load_episodes

        try:
            eps = load_episodes(path)
        except Exception as e:  # noqa: BLE001 - a bad bag must not stop the learner
            self.get_logger().error(f"cannot load bags from {path!r}: {e}")
            return
        synthetic = [ep for ep in eps if ep.source == Source.SYNTHETIC]
        if synthetic:
            self._score_synthetic(synthetic, path)
        for ep in eps:
            if ep.source == Source.SYNTHETIC:
                continue
            if demo or ep.source == Source.DEMO:
                rep = self.learner.add_demo_episode(ep)  # PPL reads the demos' reward per step
            else:
                missed_end = ep.episode_id not in self._seen_episodes  # PPL has not counted it from its END event
                rep = self.learner.add_real_episode(ep, count_progress=missed_end)
                self.env_steps += rep.added
                if rep.added and missed_end:
                    self._seen_episodes.add(ep.episode_id)
            if rep.rejected:
                self.get_logger().warning(f"episode {ep.episode_id}: rejected {dict(rep.rejected)}")

    def _rescan_real(self) -> None:
        """Load every complete real-episode bag in ``real_dir`` not loaded yet (durable intake)."""
        self._last_rescan = time.monotonic()
        if not self.cfg.real_dir:
            return
        from worldsample_common.core.bag_io import bag_closed, find_bags

        root = Path(self.cfg.real_dir)
        if not root.is_dir():
            return
        new = [b for b in find_bags(root) if str(b) not in self._loaded_real_bags and bag_closed(b)]
        if not new:
            return
        before = len(self.learner.real)
        for bag in new:
            self._loaded_real_bags.add(str(bag))
            self._load_bags(str(bag), demo=False)
        self.get_logger().info(f"real bags: {len(self._loaded_real_bags)} loaded from {root} (+{len(new)}); "
                               f"replay real={len(self.learner.real)} (+{len(self.learner.real) - before})")

    def _await_open_bags(self, limit_s: float) -> None:
        """Wait (at most ``limit_s``) until no bag in ``real_dir`` is open (a write-ahead log or no metadata yet:
        the recorder is still closing it, e.g. the episode that ended just before the stop), then rescan."""
        if self.cfg.real_dir and Path(self.cfg.real_dir).is_dir():
            from worldsample_common.core.bag_io import bag_closed, find_bags

            deadline = time.monotonic() + limit_s
            while time.monotonic() < deadline and not all(bag_closed(b) for b in find_bags(self.cfg.real_dir)):
                time.sleep(0.05)
        self._rescan_real()

    def _on_wm_status(self, msg: WorldModelStatus) -> None:
        skill = wm_fidelity(msg, self.cfg.obs_mode)
        if skill is not None:
            self.learner.ppl.observe_fidelity(skill)

    # ------------------------------------------------------------------ training
    def _drain(self) -> None:
        """Handle every queued message (in arrival order)."""
        while self._inbox:
            handler, msg = self._inbox.popleft()
            handler(msg)

    def _work_tick(self) -> None:
        """Queued messages, then due rescans and status, then training."""
        if self._stopping:
            return
        self._drain()
        now = time.monotonic()
        if now - self._last_rescan >= self.cfg.rescan_period_s:
            self._rescan_real()
        if now - self._last_status >= self.cfg.status_period_s:
            self._last_status = now
            self._status_tick()
        self._train_tick()

    def _train_tick(self) -> None:
        lr = self.learner
        if len(lr.real) + len(lr.demo) < self.cfg.min_transitions:
            return
        for _ in range(self.cfg.updates_per_tick):
            if self._stopping:
                return
            lr.train_step()
            # counted in the agent's updates, which a resumed run continues
            if lr.agent.updates % self.cfg.checkpoint_every_updates == 0:
                self._checkpoint()
            elif lr.agent.updates % self.cfg.state_every_updates == 0:
                self._save_state()

    def _resume(self) -> None:
        """Continue a stopped run: the newest checkpoint number and the learner's saved state
        (`Learner.state_dict`, saved every ``state_every_updates`` updates, at each checkpoint and on a
        clean stop; an older run's ``agent_state.pt`` restores the agent alone)."""
        import torch

        from ..core.policy import latest_checkpoint

        last = latest_checkpoint(self.out / "checkpoints")
        if last is not None:
            self.version = int(last.stem.split("-")[-1])
        state_file = next((f for f in (self.out / STATE_FILE, self.out / LEGACY_STATE_FILE) if f.exists()), None)
        if state_file is None:
            return
        try:
            self.learner.load_state_dict(torch.load(state_file, map_location="cpu", weights_only=False))
        except Exception as e:  # noqa: BLE001 - a stale or partial file: start the learner afresh, say so
            self.get_logger().error(f"cannot resume the learner from {state_file} ({e}); starting afresh")
            return
        self.get_logger().info(f"resumed the learner from {state_file} at learner step "
                               f"{self.learner.agent.updates}, after checkpoint {self.version}")

    def _announce_latest(self) -> None:
        """Publish the newest checkpoint of a resumed run (latched): the actor, the world model and the
        loop's display know the policy in use from the start, not only from the next checkpoint."""
        import torch

        from ..core.policy import latest_checkpoint

        last = latest_checkpoint(self.out / "checkpoints")
        if last is None:
            return
        try:
            meta = torch.load(last, map_location="cpu", weights_only=False).get("meta", {})
        except Exception as e:  # noqa: BLE001 - an unreadable checkpoint is named; the next one replaces it
            self.get_logger().error(f"cannot read the newest checkpoint {last} ({e}); not announcing it")
            return
        msg = PolicyCheckpoint(version=last.stem, uri=str(last.resolve()), learner_step=int(meta.get("learner_step", 0)),
                               env_steps=int(meta.get("env_steps", 0)))
        msg.header.stamp = self.get_clock().now().to_msg()
        self.pub_ckpt.publish(msg)

    def _checkpoint(self) -> None:

        self.version += 1
        lr = self.learner
        st = lr.ppl.status(lr.agent.updates)
        path = save_policy(lr.agent, self.out / "checkpoints", self.version,
                           {"learner_step": lr.agent.updates, "env_steps": self.env_steps, "mode": self.cfg.mode})
        self._save_state()  # the state of the checkpoint's update: the newest checkpoint is never ahead of it
        names = ["q_real", "q_synthetic", "synthetic_share", "admission_threshold", "real_success_rate"]
        msg = PolicyCheckpoint(version=path.stem, uri=str(path.resolve()), learner_step=lr.agent.updates,
                               env_steps=self.env_steps, metric_names=names,
                               metric_values=[float(st[n]) if np.isfinite(st[n]) else 0.0 for n in names])
        msg.header.stamp = self.get_clock().now().to_msg()
        self.pub_ckpt.publish(msg)
        self.get_logger().info(f"checkpoint {path.stem} at learner step {lr.agent.updates}")

    def _status_tick(self) -> None:
        st = self.learner.close_window()
        self.ppl_log.write(flat_status(st))
        msg = PPLStatus(
            mode=st["mode"], learner_step=st["learner_step"], synthetic_share=float(st["synthetic_share"]),
            admission_threshold=float(st["admission_threshold"]), rollout_horizon=int(st["rollout_horizon"]),
            admitted=st["admitted"], rejected=st["rejected"], rejection_reasons=list(st["rejection_reasons"]),
            rejection_counts=[int(c) for c in st["rejection_counts"]],
            q_real=float(st["q_real"]), q_synthetic=float(st["q_synthetic"]),
            real_success_rate=float(st["real_success_rate"]), world_model_fidelity=float(st["world_model_fidelity"]),
            overestimation=float(st["overestimation"]))
        msg.header.stamp = self.get_clock().now().to_msg()
        self.pub_status.publish(msg)

    def _save_state(self) -> None:
        """Replay chunks first, then the learner's state (written, synced, renamed): a learner killed at
        any moment resumes from the last save, at most ``state_every_updates`` updates back."""
        import torch

        self.learner.flush()
        self.out.mkdir(parents=True, exist_ok=True)
        tmp = self.out / (STATE_FILE + ".tmp")
        with open(tmp, "wb") as f:
            torch.save(self.learner.state_dict(), f)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(self.out / STATE_FILE)

    def request_stop(self) -> None:
        """Called first on a stop (nodes.support.run): no further updates, so the tick in flight ends soon."""
        self._stopping = True

    def on_shutdown(self) -> None:
        """After the last work tick (run() waits for it): messages delivered before the stop (queued or still
        in the subscriptions), replay chunks, agent weights."""
        take_pending(self, limit_s=1.0)
        self._drain()
        self._await_open_bags(SHUTDOWN_BAG_WAIT_S)  # then loads the bags closed since the last rescan
        if self.learner.agent.updates:
            self._save_state()  # the last updates too, not only those of the last periodic save
        else:
            self.learner.flush()


def main(args: list[str] | None = None) -> int:
    return run_node(LearnerNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
