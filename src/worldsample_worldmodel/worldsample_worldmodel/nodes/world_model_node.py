"""world_model_node: post-trains the world model on recorded real episodes and generates on request.

Owns a `core.service.WorldModelService`; does no modelling itself.

Subscribes
  ``episodes/recorded`` and ``episodes`` (worldsample_msgs/EpisodeInfo): END events that carry a
  ``bag_uri`` (the recorder fills it on ``episodes/recorded``) are read with bag_io; bad bags are
  logged with the bag and the reason and skipped. With a ``run_id`` parameter, events of another
  run (another ``run_id`` on the same ROS domain) are ignored and counted (`foreign`).
Publishes
  ``world_model/status`` (worldsample_msgs/WorldModelStatus, transient local): version, steps,
  fidelity (PSNR/SSIM per horizon on held-out real episodes), state, every ``status_period_s``
  and on every change.
  ``world_model/synthetic`` (worldsample_msgs/EpisodeInfo, END, source SYNTHETIC): one per batch of
  generated branches, with the batch's bag in ``bag_uri`` (episodes travel as bags: the learner
  reads it; no per-step messages).
Serves
  ``world_model/generate`` (worldsample_msgs/srv/RequestSyntheticRollouts): generates branches
  from recent real states under the requested policy (``policy_uri`` = checkpoint, or "" /
  "random"), writes them to one synthetic bag (``bag_uri`` in the response) and announces it.

Training runs in a worker thread once ``min_new_episodes`` new real episodes arrived, so the
service and subscriptions stay responsive; requests use the latest *saved* version.

Scheduled generation (``generate_period_s`` > 0): every period, when a world-model version
exists and a new policy checkpoint (``policy/checkpoint``, PolicyCheckpoint) or new real
episodes arrived since the last batch, the node generates ``generate_branches`` branches for
the newest policy (before the first announcement: the ``policy`` parameter, the one the actor
starts with). The horizon is the one PPL asks for on ``ppl/status`` (PPLStatus
``rollout_horizon``; no batch while PPL asks for 0), or ``generate_horizon`` before any status.

``real_dir``: real-episode bags already recorded (a resumed run) join the pools at start-up.
Parameters: one per field of `core.node_config.WorldModelNodeConfig`: the fields of
`WorldModelServiceConfig` (``run_dir``, ``demos_dir``, ``min_new_episodes``, ``posttrain_steps`` ...),
``model.*`` (every `WorldModelConfig` field), ``status_period_s``, the scheduling parameters above
and topic names. A failed training is reported as state ERROR with the reason until one succeeds.
"""

from __future__ import annotations

import threading
import traceback
from pathlib import Path

from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.node import Node
from rclpy.qos import QoSProfile
from std_msgs.msg import Header
from worldsample_common.core.franka_interface import LATCHED, QoSSpec
from worldsample_common.core.params import topic_params
from worldsample_common.nodes.support import declare_config, ns_to_time, qos

from worldsample_msgs.msg import EpisodeInfo, PolicyCheckpoint, PPLStatus, WorldModelStatus
from worldsample_msgs.srv import RequestSyntheticRollouts

from ..core.node_config import WorldModelNodeConfig
from ..core.service import WorldModelService

STATES = {"idle": WorldModelStatus.STATE_IDLE, "training": WorldModelStatus.STATE_TRAINING,
          "generating": WorldModelStatus.STATE_GENERATING, "error": WorldModelStatus.STATE_ERROR}


def _reliable(depth: int, latched: bool = False) -> QoSProfile:
    return qos(QoSSpec("reliable", depth, "transient_local" if latched else "volatile"))


class WorldModelNode(Node):
    def __init__(self) -> None:
        super().__init__("world_model")
        self.executor_threads = 3  # common.run spins a MultiThreadedExecutor of this size
        # one parameter per field of the config tree (model.* = every WorldModelConfig field), the tree
        # `worldsample loop` and the launch files validate parameter files against
        cfg = declare_config(self, WorldModelNodeConfig())
        cfg.validate()
        period = cfg.status_period_s
        self.gen_period, self.gen_branches = cfg.generate_period_s, cfg.generate_branches
        self.gen_horizon, self.gen_noise = cfg.generate_horizon, cfg.generate_action_noise
        real_dir = cfg.real_dir
        self.run_id = cfg.run_id
        self.foreign = 0  # episode events of another run, ignored
        topics = topic_params(cfg)
        self._train_error = ""  # why the last training failed ("" = it did not)
        self.core = WorldModelService(cfg.service_config())
        if real_dir:
            n, skipped = self.core.add_recorded(real_dir)
            opened = self.core.open_bags_at_start
            self.get_logger().info(f"{n} recorded real episode(s) from {real_dir} joined the pools"
                                   + (f"; {opened} bag(s) still being recorded join when the recorder closes them"
                                      if opened else "") + (f"; skipped: {skipped}" if skipped else ""))
        # (uri, version) of the newest policy: the one the actor starts with, then each announced checkpoint
        self._policy: tuple[str, str] = (cfg.policy, "" if cfg.policy == "random" else Path(cfg.policy).stem)
        self._featurizer_decided = False  # `_use_featurizer_of`
        if cfg.policy not in ("", "random"):
            self._use_featurizer_of(cfg.policy)
        self._ppl_horizon: int | None = None
        self._last_gen_key: tuple | None = None
        self._status_pub = self.create_publisher(WorldModelStatus, topics["status"], _reliable(1, latched=True))
        self._syn_pub = self.create_publisher(EpisodeInfo, topics["synthetic"], _reliable(100))
        events = MutuallyExclusiveCallbackGroup()
        for t in (topics["episodes_recorded"], topics["episodes"]):
            self.create_subscription(EpisodeInfo, t, self._on_episode, _reliable(100), callback_group=events)
        self.create_service(RequestSyntheticRollouts, topics["generate"], self._on_generate,
                            callback_group=ReentrantCallbackGroup())
        self.create_timer(period, self._tick, callback_group=events)
        latched = qos(LATCHED)
        self.create_subscription(PolicyCheckpoint, topics["policy_checkpoint"], self._on_checkpoint, latched,
                                 callback_group=events)
        self.create_subscription(PPLStatus, topics["ppl_status"], self._on_ppl, _reliable(10), callback_group=events)
        if self.gen_period > 0:
            self.create_timer(self.gen_period, self._scheduled_generate, callback_group=MutuallyExclusiveCallbackGroup())
        self._worker: threading.Thread | None = None
        self._gen_lock = threading.Lock()
        self._tick()
        v = self.core.model.version if self.core.model is not None else "none"
        self.get_logger().info(f"world model ready: run {self.core.cfg.run_dir}, version {v}, "
                               f"post-train every {self.core.cfg.min_new_episodes} new real episodes")

    # ------------------------------------------------------------------ inputs
    def _on_episode(self, msg: EpisodeInfo) -> None:
        if msg.event != EpisodeInfo.EVENT_END or not msg.bag_uri:
            return
        if self.run_id and msg.run_id != self.run_id:
            self.foreign += 1
            if self.foreign == 1:
                self.get_logger().warning(f"ignoring episodes of another run ({msg.run_id!r}, {msg.episode_id}) on "
                                          f"this ROS domain; this world model is run {self.run_id!r}")
            return
        if msg.source != EpisodeInfo.SOURCE_REAL or msg.episode_id in self.core.seen:
            return
        reason = self.core.add_bag(msg.bag_uri)
        if reason:
            self.get_logger().warning(f"skipped episode {msg.episode_id!r}: {reason}")
        self._tick()

    def _tick(self) -> None:
        busy = self._worker is not None and self._worker.is_alive()
        if not busy and not self.core.stop_event.is_set() and self.core.should_train():
            self._worker = threading.Thread(target=self._train, daemon=True)
            self._worker.start()
        self._publish_status()

    def _train(self) -> None:
        from ..core.train import TrainingStopped

        try:
            self._train_error = ""
            self._publish_status()
            version = self.core.train()
            self.get_logger().info(f"world model {version}: {self.core.message}")
        except TrainingStopped as exc:
            print(f"world_model: {exc}", flush=True)  # shutting down: the ROS logger may be gone already
            return
        except Exception as exc:  # noqa: BLE001 - reported on the status topic, the node keeps serving
            self._train_error = f"{type(exc).__name__}: {exc}"
            self.get_logger().error(f"world-model training failed: {exc}\n{traceback.format_exc()}")
        self._publish_status()

    def _publish_status(self) -> None:
        s = self.core.status()
        msg = WorldModelStatus(
            header=Header(stamp=ns_to_time(self.get_clock().now().nanoseconds)), state=STATES.get(s["state"], 0),
            version=s["version"], uri=s["uri"], train_steps=s["train_steps"], num_real_episodes=s["num_real_episodes"],
            num_demo_episodes=s["num_demo_episodes"], horizons=[int(h) for h in s["horizons"]],
            psnr=[float(x) for x in s["psnr"]], ssim=[float(x) for x in s["ssim"]],
            copy_psnr=[float(x) for x in s["copy_psnr"]], copy_ssim=[float(x) for x in s["copy_ssim"]],
            uncertainty_error_rank_corr=[float(x) for x in s["uncertainty_error_rank_corr"]],
            feature_skill=[float(x) for x in s["feature_skill"]],
            message=f"{s['message']} (pending real episodes: {s['pending_real_episodes']})".strip())
        if self._train_error and s["state"] != "training":  # failed: say so (and why) until a training succeeds
            msg.state = WorldModelStatus.STATE_ERROR
            msg.message = f"training failed: {self._train_error}"
        self._status_pub.publish(msg)

    def _on_checkpoint(self, msg: PolicyCheckpoint) -> None:
        if msg.uri:
            self._policy = (msg.uri, msg.version)
            if not self._featurizer_decided:
                self._use_featurizer_of(msg.uri)

    def _use_featurizer_of(self, uri: str) -> None:
        """Read the fidelity's predicted frames with this policy's pixel encoder from now on, if it has one. Decided
        by the first checkpoint that loads (the learner pre-trains a frozen encoder before its first checkpoint and
        never changes it; a state policy has none), so later checkpoints are not loaded for it again."""
        from ..core.generate import load_any_policy

        try:
            policy = load_any_policy(uri)
        except (OSError, ValueError, RuntimeError) as exc:  # a bad checkpoint: generation reports it when it loads it
            self.get_logger().warning(f"policy {uri}: no pixel features for the fidelity: {exc}")
            return
        self._featurizer_decided = True
        if getattr(policy, "reads_pixel_features", False):
            self.core.set_featurizer(policy.features)
            self.get_logger().info(f"fidelity: predicted frames are also read with the pixel encoder of {uri}")

    def _on_ppl(self, msg: PPLStatus) -> None:
        self._ppl_horizon = int(msg.rollout_horizon)

    # ------------------------------------------------------------------ generation
    def _generate_and_publish(self, policy_uri: str, policy_version: str, branches: int, horizon: int,
                              noise: float) -> tuple[int, str, str]:
        """Generate under the lock, announce the bag; returns (transitions, bag, model version)."""
        from ..core.generate import load_any_policy

        with self._gen_lock:
            policy = load_any_policy(policy_uri or "random")
            eps, bag = self.core.generate(policy, branches, horizon, noise, policy_version=policy_version)
        self._publish_status()
        n = sum(e.length for e in eps)
        wm = eps[0].world_model_version if eps else ""
        if eps and bag:
            msg = EpisodeInfo(event=EpisodeInfo.EVENT_END, episode_id=Path(bag).name, source=EpisodeInfo.SOURCE_SYNTHETIC,
                              task=eps[0].task, bag_uri=str(bag), length=n, policy_version=policy_version, seed=-1,
                              run_id=self.run_id, reason=f"{len(eps)} branches of horizon <= {horizon} from {wm}")
            msg.header.stamp = self.get_clock().now().to_msg()
            self._syn_pub.publish(msg)
        return n, str(bag), wm

    def _scheduled_generate(self) -> None:
        if self.core.model is None or self.core.stop_event.is_set():
            return
        horizon = self.gen_horizon if self._ppl_horizon is None else self._ppl_horizon
        key = (self._policy[0], self.core.real_count, self.core.model.version)
        if horizon < 1 or key == self._last_gen_key:
            return
        self._last_gen_key = key
        try:
            n, bag, wm = self._generate_and_publish(*self._policy, self.gen_branches, horizon, self.gen_noise)
            self.get_logger().info(f"scheduled generation: {n} synthetic transitions from {wm} for policy "
                                   f"{self._policy[1] or self._policy[0]} (horizon {horizon}) -> {bag}")
        except Exception as exc:  # noqa: BLE001 - logged; the next period tries again
            self.get_logger().warning(f"scheduled generation failed: {type(exc).__name__}: {exc}")

    # ------------------------------------------------------------------ service
    def _on_generate(self, req, resp):
        try:
            n, bag, wm = self._generate_and_publish(req.policy_uri, req.policy_version, int(req.num_branches),
                                                    int(req.horizon), float(req.action_noise))
            resp.accepted, resp.bag_uri, resp.num_transitions = True, bag, n
            resp.message = f"{n} transitions from {wm}"
        except Exception as exc:  # noqa: BLE001 - the caller gets the reason
            resp.accepted, resp.message, resp.num_transitions = False, f"{type(exc).__name__}: {exc}", 0
            self.get_logger().warning(f"generate request refused: {resp.message}")
        return resp

    def request_stop(self) -> None:
        """Called first on a stop (nodes.support.run): a running training ends at its next step, in
        parallel with the callbacks the executor still waits for."""
        self.core.request_stop()

    def on_shutdown(self) -> None:
        if self._worker is not None and self._worker.is_alive():
            print("world_model: stopping the running training (its train state allows resuming)", flush=True)
            self.core.request_stop()
            self._worker.join(timeout=60.0)


def main(args: list[str] | None = None) -> int:
    from worldsample_common.nodes.support import run as run_node

    return run_node(WorldModelNode, args)  # clean stop on SIGINT/SIGTERM, a second signal cannot break it


if __name__ == "__main__":
    raise SystemExit(main())
