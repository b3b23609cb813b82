"""actor_node: runs a policy on the arm for episodes and publishes what happens.

Per episode: ``arm/reset`` (ResetEpisode) -> EpisodeInfo START on ``episodes`` -> at each step
the observation (latest ``cameras/<name>/image_raw`` + proprioception from
``franka_robot_state_broadcaster/current_pose`` and ``franka_gripper/joint_states``, end-effector
velocity from ``twist_topic`` or finite differences) goes through the policy; the action goes out
on ``policy/action`` (PolicyAction, stamped with the observation's stamp) and the resulting
step on ``transitions/real`` (Transition, source REAL or DEMO) -> EpisodeInfo END.

Reward and success come from the simulator's ``sim/reward`` (``use_sim_reward``; on a real arm
the success classifier will publish them the same way). A policy that returns NaN/inf (or
raises) ends the episode at once: no further action is sent, the arm holds (arm_control's
watchdog), and the END event carries success=false; the reason is logged. A checkpoint
announced on ``policy/checkpoint`` (PolicyCheckpoint) is loaded before the next episode.

Demonstrations on a real arm (``policy:=teleop``): the actor forwards the operator's latest
command from ``teleop/action`` (parameter ``topic_teleop_action``; worldsample_msgs/PolicyAction,
``action = [dx, dy, dz, gripper]`` normalised to [-1, 1] like a policy's, gripper > 0 closes; any
QoS) at the control rate. A command older than ``teleop_timeout_s`` means "stay" (zero motion,
gripper unchanged); a non-finite or wrongly shaped one is ignored and logged. An episode starts
only once a fresh command has arrived (device connected, operator ready). Run it with
``source:=demo`` so the recorder writes DEMO bags, e.g.

    ros2 run worldsample_control actor_node --ros-args -p policy:=teleop -p source:=demo \
        -p lockstep:=false -p use_sim_reward:=false -p twist_topic:='' -p task:=peg_insertion \
        -p max_steps:=300 -p episodes:=20

with a device driver (SpaceMouse, keyboard, VR) that publishes PolicyAction on ``teleop/action``.

``lockstep`` (simulation): the next action is computed as soon as the complete observation of
the previous step has arrived (all streams with the same stamp), so results do not depend on
CPU load. An action whose step brought no observation within ``action_resend_s`` is sent again
(e.g. pushed out of arm control's queue by a flood on ``policy/action``); arm control applies a
step once, so a resend never moves the arm twice. Otherwise a timer at ``control_hz`` acts on the newest messages.

Runs: ``run_id`` goes into every EpisodeInfo, PolicyAction and Transition, so arm control, the
recorder and the learner of this run ignore another run's messages. Before each episode the actor
checks that it is the only publisher on ``episodes`` (in its namespace): another actor means a
second WorldSample graph on the same ROS_DOMAIN_ID, and the actor stops with exit code 3 and a
message saying so instead of interleaving episodes with it.

Writes ``log_dir/steps.jsonl`` (one line per step: episode, step, action, reward, flags) and
``log_dir/episodes.jsonl`` (one line per episode). Exits 0 after ``episodes`` episodes (0: runs
until stopped), once the recorder acknowledged the last bag on ``episodes/recorded`` (or after
``recorded_timeout_s``).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped, TwistStamped
from rclpy.node import Node
from sensor_msgs.msg import Image, JointState
from worldsample_common.core.bag_io import TRANSITION_TYPE, transition_msg, typestore
from worldsample_common.core.env_protocol import Observation
from worldsample_common.core.franka_interface import (
    BEST_EFFORT,
    EVENTS,
    IMAGES,
    QoSSpec,
    WorldSampleTopics,
    gripper_width_from_fingers,
)
from worldsample_common.core.image_codec import image_msg_to_rgb8
from worldsample_common.core.params import topic_params
from worldsample_common.nodes.support import declare_config, ns_to_time, qos, run, time_to_ns

from worldsample_msgs.msg import EpisodeInfo, PolicyAction, PolicyCheckpoint, Transition
from worldsample_msgs.srv import ResetEpisode

from ..core.actor import Actor, StepRecord, SuggestionPolicy, TeleopPolicy
from ..core.node_config import ActorNodeConfig

EPISODE_LOG = "episodes.jsonl"  # log_dir/episodes.jsonl: one line per episode, appended across sessions


def _parse_csv(s: str) -> np.ndarray:
    return np.array([float(x) for x in s.split(",") if x], np.float32)


class ActorNode(Node):
    def __init__(self) -> None:
        super().__init__("actor")
        cfg = declare_config(self, ActorNodeConfig())
        cfg.validate()
        self.lockstep = bool(cfg.lockstep)
        self.use_sim_reward = bool(cfg.use_sim_reward)
        twist_topic = cfg.twist_topic
        log_dir = cfg.log_dir
        self.run_id = str(cfg.run_id)
        self.action_resend_s = float(cfg.action_resend_s)
        self._last_action: PolicyAction | None = None
        self._last_action_sent = 0.0
        self.reset_timeout_s = float(cfg.reset_timeout_s)
        self.obs_timeout_s = float(cfg.observation_timeout_s)
        self.recorded_timeout_s = float(cfg.recorded_timeout_s)
        self.wait_recorded = bool(cfg.wait_recorded)
        self.wait_for_recorder_s = float(cfg.wait_for_recorder_s)
        # iteration pacing: after this many episodes with one policy, hold (between episodes, arm
        # at rest) until the learner announces a newer checkpoint, at most policy_wait_s (0: off)
        self.episodes_per_policy = int(cfg.episodes_per_policy)
        self.policy_wait_s = float(cfg.policy_wait_s)
        teleop_timeout_s = float(cfg.teleop_timeout_s)
        t = topic_params(cfg)
        self.topics = t
        self.actor = Actor(cfg, policy=TeleopPolicy(teleop_timeout_s) if cfg.policy == "teleop" else None)
        self.cfg = self.actor.config
        self.cameras = tuple(self.cfg.cameras)
        self.log_dir = Path(log_dir) if log_dir else None
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            # a resumed run: the episodes its policy already ran count towards episodes_per_policy
            self.actor.episodes_with_policy = self._logged_episodes(self.actor.policy_version)

        self.pub_action = self.create_publisher(PolicyAction, t["policy_action"], qos(QoSSpec("reliable", 20)))
        self.pub_episode = self.create_publisher(EpisodeInfo, t["episodes"], qos(EVENTS))
        self.pub_transition = self.create_publisher(Transition, t["transitions"], qos(EVENTS))
        self.reset_client = self.create_client(ResetEpisode, t["arm_reset"])
        # latest message of each stream: name -> (stamp_ns, msg)
        self.latest: dict[str, tuple[int, object]] = {}
        self.required = [f"image:{c}" for c in self.cameras] + ["pose", "gripper"]
        self._stream_topics: list[str] = []
        for cam in self.cameras:
            self.create_subscription(Image, WorldSampleTopics.camera_image(cam),
                                     lambda m, k=f"image:{cam}": self._store(k, m), qos(IMAGES))
        self.create_subscription(PoseStamped, t["current_pose"], lambda m: self._store("pose", m), qos(BEST_EFFORT))
        self.create_subscription(JointState, t["gripper_joint_states"], lambda m: self._store("gripper", m),
                                 qos(BEST_EFFORT))
        if twist_topic:
            self.required.append("twist")
            self.create_subscription(TwistStamped, twist_topic, lambda m: self._store("twist", m), qos(BEST_EFFORT))
        if self.use_sim_reward:
            self.required.append("info")
            self.create_subscription(DiagnosticArray, t["sim_reward"], lambda m: self._store("info", m),
                                     qos(QoSSpec("reliable", 10)))
        self._stream_topics = [WorldSampleTopics.camera_image(c) for c in self.cameras] + [
            t["current_pose"], t["gripper_joint_states"]] + ([t["sim_reward"]] if self.use_sim_reward else [])
        self.create_subscription(PolicyCheckpoint, t["policy_checkpoint"], self._on_checkpoint, qos(EVENTS))
        if isinstance(self.actor.policy, TeleopPolicy):  # best effort matches reliable and best-effort devices
            self.create_subscription(PolicyAction, t["teleop_action"], self._on_teleop, qos(BEST_EFFORT))
        self.create_subscription(EpisodeInfo, t["episodes_recorded"], self._on_recorded, qos(EVENTS))

        self.state = "idle"
        self._state_since = time.monotonic()
        self._reset_future = None
        self._after_stamp = -1  # next observation must be newer than this
        self._last_done_stamp = -1
        self._prev_pos: np.ndarray | None = None
        self._pending_episode_seed = -1
        self._reset_sent_ns = -1
        self._waited_recorder = False
        self._recorded: set[str] = set()
        self._ended: list[str] = []
        self.exit_code = 0
        self.create_timer(0.02 if self.lockstep else 1.0 / self.cfg.control_hz, self._tick)
        self.get_logger().info(f"actor: task {self.cfg.task}, policy {self.cfg.policy!r}, "
                               f"{self.cfg.episodes or 'endless'} episode(s) of <= {self.actor.max_steps} steps, "
                               f"source {self.cfg.source}, {'lock-step' if self.lockstep else 'real time'}")

    # ------------------------------------------------------------------ inputs
    def _recorder_ready(self) -> bool:
        """Someone records: the episode stream has a subscriber and every observation stream has one
        besides this node (so the first episode's images are not lost to discovery)."""
        if self.pub_episode.get_subscription_count() < 1 or self.pub_transition.get_subscription_count() < 1:
            return False
        if self.count_subscribers(self.topics["policy_action"]) < 1:  # arm control
            return False
        if self.count_subscribers(self.topics["applied_action"]) < 1:  # the recorder of applied actions
            return False
        return all(self.count_subscribers(t) >= 2 for t in self._stream_topics)

    def _store(self, key: str, msg) -> None:
        self.latest[key] = (time_to_ns(msg.header.stamp), msg)
        if self.lockstep and self.state in ("wait_first", "running"):
            self._maybe_step()

    def _on_checkpoint(self, msg: PolicyCheckpoint) -> None:
        self.actor.request_swap(msg.uri, msg.version)
        self.get_logger().info(f"checkpoint {msg.version} ({msg.uri}) will be used from the next episode")

    def _on_teleop(self, msg: PolicyAction) -> None:
        if not isinstance(self.actor.policy, TeleopPolicy):
            return
        problem = self.actor.policy.set_command(list(msg.action))
        if problem is not None:
            self.get_logger().warning(f"{self.topics['teleop_action']}: {problem}; ignored",
                                      throttle_duration_sec=2.0)

    def _on_recorded(self, msg: EpisodeInfo) -> None:
        self._recorded.add(msg.episode_id)
        self.get_logger().info(f"episode {msg.episode_id} recorded at {msg.bag_uri}")

    def _complete_observation(self) -> tuple[int, dict] | None:
        if any(k not in self.latest for k in self.required):
            return None
        stamps = {self.latest[k][0] for k in self.required}
        if self.lockstep and len(stamps) != 1:
            return None
        stamp = max(stamps)
        if stamp <= self._after_stamp:
            return None
        return stamp, {k: self.latest[k][1] for k in self.required}

    def _observation(self, msgs: dict, first: bool) -> tuple[Observation, dict]:
        pose = msgs["pose"].pose.position
        pos = np.array([pose.x, pose.y, pose.z], np.float64)
        width = gripper_width_from_fingers(msgs["gripper"].position)
        if "twist" in msgs:
            v = msgs["twist"].twist.linear
            vel = np.array([v.x, v.y, v.z])
        elif first or self._prev_pos is None:
            vel = np.zeros(3)
        else:
            vel = (pos - self._prev_pos) * self.cfg.control_hz
        self._prev_pos = pos
        info: dict[str, str] = {}
        if "info" in msgs:
            status = [s for s in msgs["info"].status if s.name == "sim"]
            if status:
                info = {kv.key: kv.value for kv in status[0].values}
        state = _parse_csv(info["state"]) if info.get("state") else None
        images = {c: image_msg_to_rgb8(msgs[f"image:{c}"]) for c in self.cameras}
        proprio = np.concatenate([pos, [width], vel]).astype(np.float32)
        return Observation(images=images, proprio=proprio, state=state), info

    # ------------------------------------------------------------------ episode loop
    def _set_state(self, state: str) -> None:
        self.state = state
        self._state_since = time.monotonic()

    def _tick(self) -> None:
        waited = time.monotonic() - self._state_since
        if self.state == "waiting_recorder":
            if self._recorder_ready() or waited > self.wait_for_recorder_s:
                if waited > self.wait_for_recorder_s:
                    self.get_logger().warning(f"no recorder after {self.wait_for_recorder_s} s; starting anyway")
                self._set_state("settling")
        elif self.state == "settling":
            if waited > 0.5:  # let the other side of the discovery finish matching
                self._set_state("idle")
        elif self.state == "idle":
            if self.actor.done_all:
                self._set_state("finishing")
                return
            if self.wait_for_recorder_s > 0 and self.actor.episode_index == 0 and not self._waited_recorder:
                self._waited_recorder = True
                self._set_state("waiting_recorder")
                return
            if self.actor.waits_for_policy(self.episodes_per_policy):
                self.get_logger().info(f"{self.actor.episodes_with_policy} episode(s) with policy "
                                       f"{self.actor.policy_version or self.cfg.policy}: waiting up to "
                                       f"{self.policy_wait_s:.0f} s for the learner's next checkpoint")
                self._set_state("waiting_policy")
                return
            if isinstance(self.actor.policy, TeleopPolicy) and not self.actor.policy.ready:
                self.get_logger().info(f"waiting for teleoperation commands on {self.topics['teleop_action']!r} "
                                       "before the next episode", throttle_duration_sec=10.0)
                return
            if self._other_actor():
                return
            self._start_reset()
        elif self.state == "waiting_policy":
            if not self.actor.waits_for_policy(self.episodes_per_policy):
                self._set_state("idle")
            elif waited > self.policy_wait_s:
                self.get_logger().warning(f"no new checkpoint within {self.policy_wait_s:.0f} s; "
                                          "going on with the current policy")
                self.actor.episodes_with_policy = 0
                self._set_state("idle")
        elif self.state == "resetting":
            fut = self._reset_future
            if fut.done():
                result = fut.result()
                if result is None or not result.success:
                    msg = "no response" if result is None else result.message
                    self.get_logger().error(f"reset failed: {msg}; retrying")
                    self._set_state("idle")
                    return
                self._pending_episode_seed = int(result.seed)
                # the first observation is the one published by the reset (newer than the request)
                self._after_stamp = max(self._last_done_stamp, self._reset_sent_ns)
                self._set_state("wait_first")
                self._maybe_step()
            elif waited > self.reset_timeout_s:
                self.get_logger().error(f"arm reset did not answer within {self.reset_timeout_s} s; retrying")
                self._set_state("idle")
        elif self.state in ("wait_first", "running"):
            if not self.lockstep:
                self._maybe_step()
            elif waited > self.obs_timeout_s:
                missing = [k for k in self.required if k not in self.latest]
                self.get_logger().error(f"no complete observation within {self.obs_timeout_s} s "
                                        f"(missing streams: {missing or 'none; stamps differ'}); ending the episode")
                if self.state == "running":
                    self._end("aborted: observation timeout")
                else:
                    self._set_state("idle")
            elif (self.state == "running" and self._last_action is not None and self.action_resend_s > 0
                  and time.monotonic() - self._last_action_sent > self.action_resend_s):
                self.get_logger().warning(f"no observation after action {self._last_action.episode_id}/"
                                          f"{self._last_action.step}; sending it again", throttle_duration_sec=5.0)
                self._send_action(self._last_action)
        elif self.state == "finishing":
            pending = [e for e in self._ended if e not in self._recorded]
            if not self.wait_recorded or not pending or waited > self.recorded_timeout_s:
                if pending:
                    self.get_logger().warning(f"no recording acknowledgement for {pending}")
                self.get_logger().info(f"done: {self.actor.episode_index} episode(s)")
                self._set_state("done")
                raise SystemExit(0)

    def _other_actor(self) -> bool:
        """Another publisher on our episode topic: a second graph on this domain. Stops with code 3."""
        others = [f"{i.node_namespace.rstrip('/')}/{i.node_name}"
                  for i in self.get_publishers_info_by_topic(self.pub_episode.topic_name)
                  if not (i.node_name == self.get_name() and i.node_namespace == self.get_namespace())]
        if not others:
            return False
        domain = os.environ.get("ROS_DOMAIN_ID", "0")
        self.get_logger().error(f"another node publishes episodes on {self.pub_episode.topic_name!r} ({', '.join(others)}): "
                                f"a second WorldSample graph shares ROS_DOMAIN_ID={domain}. Not starting an episode; "
                                "stop the other graph or run this one on another ROS_DOMAIN_ID or namespace")
        self._set_state("done")
        raise SystemExit(3)

    def _start_reset(self) -> None:
        if not self.reset_client.wait_for_service(timeout_sec=0.0):
            if time.monotonic() - self._state_since > 5.0:
                self.get_logger().warning(f"waiting for the reset service {self.topics['arm_reset']!r}",
                                          throttle_duration_sec=10.0)
            return
        req = ResetEpisode.Request(task=self.cfg.task, seed=self.actor.next_seed())
        self._reset_sent_ns = self.get_clock().now().nanoseconds
        self._reset_future = self.reset_client.call_async(req)
        self._set_state("resetting")

    def _maybe_step(self) -> None:
        got = self._complete_observation()
        if got is None:
            return
        stamp, msgs = got
        first = self.state == "wait_first"
        obs, info = self._observation(msgs, first)
        self._after_stamp = stamp
        self._state_since = time.monotonic()
        if first:
            eid = self.actor.begin_episode(obs, stamp, seed=self._pending_episode_seed)
            self._publish_episode(EpisodeInfo.EVENT_START, stamp)
            self.get_logger().info(f"episode {eid} started (seed {self.actor.seed}, policy "
                                   f"{self.actor.policy_version or self.cfg.policy})")
            self._set_state("running")
        else:
            reward = float(info.get("reward", 0.0))
            success = info.get("success") == "true"
            terminated = info.get("terminated") == "true"
            truncated = info.get("truncated") == "true"
            rec, done = self.actor.observe(obs, reward, terminated, truncated, success, stamp)
            self._publish_transition(rec)
            if done:
                self._end("terminated" if rec.terminated else "truncated")
                return
        if isinstance(self.actor.policy, SuggestionPolicy):
            self.actor.policy.set_suggestion(_parse_csv(info["expert_action"]) if info.get("expert_action")
                                             else None)
        action = self.actor.act(obs)
        if action is None:
            self.get_logger().error(f"episode {self.actor.episode_id}: {self.actor.stop_reason}; episode stopped, "
                                    "arm holds")
            self._end(self.actor.stop_reason)
            return
        msg = PolicyAction(episode_id=self.actor.episode_id, step=self.actor.step,
                           action=[float(x) for x in action], policy_version=self.actor.policy_version,
                           run_id=self.run_id)
        msg.header.stamp = ns_to_time(stamp)
        self._send_action(msg)

    def _send_action(self, msg: PolicyAction) -> None:
        self._last_action, self._last_action_sent = msg, time.monotonic()
        self.pub_action.publish(msg)

    def _end(self, reason: str) -> None:
        self._last_action = None
        stamp = self._after_stamp
        summary = self.actor.end_episode(reason)
        self._last_done_stamp = stamp
        self._publish_episode(EpisodeInfo.EVENT_END, stamp, summary, reason)
        self._ended.append(summary.episode_id)
        self.get_logger().info(f"episode {summary.episode_id} ended ({reason}): {summary.length} steps, "
                               f"return {summary.episode_return:.3f}, success {summary.success}")
        self._log_episode(summary, reason)
        self._set_state("idle")

    def _log_episode(self, summary, reason: str) -> None:
        if self.log_dir is not None:
            with (self.log_dir / EPISODE_LOG).open("a") as f:
                f.write(json.dumps({"episode_id": summary.episode_id, "length": summary.length,
                                    "return": summary.episode_return, "success": summary.success,
                                    "seed": summary.seed, "policy_version": summary.policy_version,
                                    "reason": reason}) + "\n")

    def _logged_episodes(self, policy_version: str) -> int:
        """Episodes ``log_dir/episodes.jsonl`` holds for ``policy_version`` (earlier sessions of the run)."""
        path = self.log_dir / EPISODE_LOG
        if not path.exists():
            return 0
        n = 0
        for line in path.read_text(errors="replace").splitlines():
            try:
                n += json.loads(line).get("policy_version", "") == policy_version
            except ValueError:  # a line cut by a kill: not an episode record
                continue
        return n

    def on_shutdown(self) -> None:
        """A stop in the middle of an episode: its steps so far are recorded (the recorder keeps the bag),
        so it is logged as a cut episode of its policy (a resumed run's pacing counts it)."""
        if self.actor.in_episode and self.actor.step > 0:
            self._log_episode(self.actor.end_episode("cut: stopped"), "cut: stopped")

    # ------------------------------------------------------------------ outputs
    def _publish_episode(self, event: int, stamp: int, summary=None, reason: str = "") -> None:
        msg = EpisodeInfo(event=event, episode_id=self.actor.episode_id or summary.episode_id,
                          source=int(self.actor.source), task=self.cfg.task,
                          policy_version=self.actor.policy_version, seed=int(self.actor.seed),
                          run_id=self.run_id, reason=reason)
        msg.header.stamp = ns_to_time(stamp)
        if summary is not None:
            msg.episode_id = summary.episode_id
            msg.length, msg.episode_return, msg.success = summary.length, float(summary.episode_return), summary.success
            msg.seed = int(summary.seed)
        self.pub_episode.publish(msg)

    def _publish_transition(self, rec: StepRecord) -> None:
        """The step as a Transition, encoded by the one Transition codec (`bag_io.codec`) and published
        as its CDR bytes: the recorder writes exactly these bytes into the bag."""
        msg = transition_msg(
            episode_id=rec.episode_id, step=rec.step, task=self.cfg.task, cameras=list(self.cameras),
            images=rec.obs.images, next_images=rec.next_obs.images, proprio=rec.obs.proprio,
            next_proprio=rec.next_obs.proprio, action=rec.action, reward=rec.reward, terminated=rec.terminated,
            truncated=rec.truncated, success=rec.success, stamp_ns=rec.stamp_ns, next_stamp_ns=rec.next_stamp_ns,
            source=self.actor.source, state=rec.obs.state, next_state=rec.next_obs.state,
            policy_version=self.actor.policy_version, run_id=self.run_id)
        self.pub_transition.publish(bytes(typestore().serialize_cdr(msg, TRANSITION_TYPE)))
        if self.log_dir is not None:
            with (self.log_dir / "steps.jsonl").open("a") as f:
                f.write(json.dumps({"episode_id": rec.episode_id, "step": rec.step,
                                    "action": [float(x) for x in rec.action], "reward": rec.reward,
                                    "terminated": rec.terminated, "truncated": rec.truncated,
                                    "success": rec.success, "proprio": rec.obs.proprio.tolist()}) + "\n")


def main(args: list[str] | None = None) -> int:
    return run(ActorNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
