"""`LoopMonitor`: the rclpy node through which `worldsample loop` watches the running graph.

It only listens: ``episodes/recorded`` (EpisodeInfo END with the bag, from the recorder),
``world_model/status`` (WorldModelStatus), ``ppl/status`` (PPLStatus) and
``policy/checkpoint`` (PolicyCheckpoint). Each event updates a `progress.LoopProgress`; each
recorded real episode, new world-model version or new checkpoint prints one line and appends a
row to RUN/progress.csv.
"""

from __future__ import annotations

from pathlib import Path

from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from worldsample_msgs.msg import EpisodeInfo, PolicyCheckpoint, PPLStatus, WorldModelStatus

from .progress import LoopProgress, ProgressCSV, psnr_value


def _qos(depth: int, latched: bool = False) -> QoSProfile:
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE)


SUMMARY_NOTES = {
    "wm_*_h1": "world-model fidelity one step ahead on held-out real episodes; wm_copy_*: copying the last frame "
               "(the baseline); a PSNR of \"static\": the frames do not move, so copying is exact (infinite PSNR); "
               "null: not measured yet (no held-out episode or no version)",
    "synthetic_share": "share of each training batch drawn from synthetic data (0 while nothing is admitted)",
    "last_checkpoint": "the policy in use at the end of this session; its number is the iteration",
}


class LoopMonitor(Node):
    def __init__(self, run_dir: Path, episodes_before: int = 0, total: int = 0, namespace: str = "",
                 policy_version: str = "") -> None:
        """``policy_version``: the policy the actor starts with (a resumed run's newest checkpoint): its
        iteration is shown from the first line on."""
        super().__init__("loop_monitor", namespace=namespace or "")
        self.run_dir = Path(run_dir)
        self.total = total
        self.progress = LoopProgress(total=total)
        self.progress.episodes = episodes_before
        if policy_version:
            self.progress.on_checkpoint(policy_version)
        self._continue_progress(self.run_dir / "progress.csv")
        self.csv = ProgressCSV(self.run_dir / "progress.csv")
        self.rows_written = 0
        self._seen: set[str] = set()
        self.wm_versions: list[str] = []
        self.wm_error = ""  # the world model's last training failure, as it reported it ("" = none)
        self.create_subscription(EpisodeInfo, "episodes/recorded", self._on_recorded, _qos(100))
        self.create_subscription(WorldModelStatus, "world_model/status", self._on_wm, _qos(1, latched=True))
        self.create_subscription(PPLStatus, "ppl/status", self._on_ppl, _qos(10))
        self.create_subscription(PolicyCheckpoint, "policy/checkpoint", self._on_ckpt, _qos(1, latched=True))

    def _continue_progress(self, path: Path) -> None:
        """A resumed run's rows go on from the last row of its progress.csv: real environment steps and
        wall time continue (the plot's x axis), as episodes, iteration and policy do."""
        from .progress import read_progress

        if not path.exists():
            return
        rows = read_progress(path)
        last = rows[-1] if rows else {}
        steps, wall = last.get("env_steps"), last.get("wall_s")
        if isinstance(steps, float) and steps == steps:
            self.progress.env_steps = int(steps)
        if isinstance(wall, float) and wall == wall:
            self.progress.start -= wall

    def _emit(self, what: str) -> None:
        self.csv.append(self.progress.row())
        self.rows_written += 1
        print(f"[loop] {what:<48} | {self.progress.line()}", flush=True)

    def _on_recorded(self, msg: EpisodeInfo) -> None:
        if msg.source != EpisodeInfo.SOURCE_REAL or msg.episode_id in self._seen:
            return
        self._seen.add(msg.episode_id)
        self.progress.on_episode(msg.length, msg.episode_return, msg.success, msg.policy_version)
        self._emit(f"episode {msg.episode_id} {'SUCCESS' if msg.success else 'fail'}")

    def _on_wm(self, msg: WorldModelStatus) -> None:
        new = msg.version and msg.version not in self.wm_versions
        training = msg.state == WorldModelStatus.STATE_TRAINING  # False for a failed training too
        switched = training != self.progress.wm_training
        self.progress.on_world_model(msg.version, list(msg.psnr), list(msg.ssim), training,
                                     list(msg.copy_psnr), list(msg.copy_ssim), list(msg.feature_skill))
        if msg.state == WorldModelStatus.STATE_ERROR:  # a failed training is not "idle": say so, with the reason
            if msg.message != self.wm_error:
                self.wm_error = msg.message
                self._emit(f"world model FAILED: {msg.message}")
            return
        if training:
            self.wm_error = ""
        if switched and not new:
            self._emit("world model training" if training else "world model idle")
            return
        if new:
            self.wm_versions.append(msg.version)
            self._emit(f"world model {msg.version}")

    def _on_ppl(self, msg: PPLStatus) -> None:
        self.progress.on_ppl(msg.synthetic_share, msg.admission_threshold, msg.admitted, msg.rejected, msg.q_real,
                             msg.q_synthetic)

    def _on_ckpt(self, msg: PolicyCheckpoint) -> None:
        before = self.progress.policy_version
        self.progress.on_checkpoint(msg.version)
        if msg.version != before:
            self._emit(f"policy {msg.version} (learner step {msg.learner_step})")

    def summary(self, recorded: int) -> dict:
        p = self.progress
        syn = self.run_dir / "synthetic"
        return {
            "real_episodes_recorded": recorded, "episodes_seen_this_session": len(self._seen),
            "success_rate_recent": p.success_rate, "policy_versions_used": p.policy_versions_used,
            "last_checkpoint": p.policy_version, "wm_version": p.wm_version, "wm_versions_seen": self.wm_versions,
            "wm_psnr_h1": psnr_value(p.wm_psnr), "wm_ssim_h1": p.wm_ssim,
            "wm_copy_psnr_h1": psnr_value(p.wm_copy_psnr), "wm_copy_ssim_h1": p.wm_copy_ssim,
            "synthetic_share": p.synthetic_share,
            "admitted": p.admitted, "rejected": p.rejected, "wm_error": self.wm_error or None,
            "synthetic_bags": len([d for d in syn.iterdir() if d.is_dir()]) if syn.is_dir() else 0,
            "notes": SUMMARY_NOTES,
        }

    def close(self) -> None:
        self.csv.close()
