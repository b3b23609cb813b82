"""Which policy actions may move the arm: those of the running episode of this run, from its actor,
in step order. ROS-free; `nodes.arm_control_node` feeds it messages and the sender check.

An action is accepted when all hold:

- its sender is the actor (the node tells: the publisher's GID belongs to the actor node); a
  foreign publisher on ``policy/action`` is dropped as ``foreign_sender``;
- its ``run_id`` is this run's (when the gate has one): else ``other_run``;
- it belongs to the running episode: the one a START event of this run opened, or, since topics
  are not ordered with respect to each other, the episode whose step 0 the actor sends before its
  START arrives. Actions of an ended episode are ``ended``, of any other ``other_episode``;
  without a running episode ``no_episode``;
- its step is after the last accepted step of the episode (``stale_step`` otherwise: a replay or a
  duplicate). A gap is accepted (a lost message must not stall the arm) and counted in ``skipped``.

Accepted actions wait in a bounded queue (``max_pending``) until the arm controller applies them;
an action that finds the queue full is dropped as ``queue_full``. Every drop is counted by reason.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from dataclasses import dataclass, field


@dataclass
class GateStats:
    accepted: int = 0
    skipped: int = 0  # steps jumped over by an accepted action
    dropped: Counter = field(default_factory=Counter)

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())

    def describe(self) -> str:
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(self.dropped.items())) or "none"
        return f"accepted {self.accepted}, dropped {self.dropped_total} ({reasons}), steps skipped {self.skipped}"


class ActionGate:
    def __init__(self, run_id: str = "", max_pending: int = 4, remember_ended: int = 64) -> None:
        if max_pending < 1:
            raise ValueError(f"max_pending must be >= 1, got {max_pending}")
        self.run_id = run_id
        self.max_pending = max_pending
        self.current: str | None = None
        self.last_step = -1
        self._ended: OrderedDict[str, None] = OrderedDict()
        self._remember = remember_ended
        self.stats = GateStats()

    def _run_ok(self, run_id: str) -> bool:
        return not self.run_id or run_id == self.run_id

    # ------------------------------------------------------------------ episode events
    def on_start(self, episode_id: str, run_id: str) -> bool:
        """A START event; False when it is another run's (ignored)."""
        if not self._run_ok(run_id):
            return False
        if episode_id != self.current and episode_id not in self._ended:
            self.current, self.last_step = episode_id, -1
        return True

    def on_end(self, episode_id: str, run_id: str) -> bool:
        if not self._run_ok(run_id):
            return False
        self._ended[episode_id] = None
        while len(self._ended) > self._remember:
            self._ended.popitem(last=False)
        if self.current == episode_id:
            self.current, self.last_step = None, -1
        return True

    # ------------------------------------------------------------------ actions
    def check(self, episode_id: str, run_id: str, step: int, sender_ok: bool, pending: int) -> str | None:
        """None when the action is accepted (the caller queues it), else the reason it is dropped."""
        reason = self._reason(episode_id, run_id, int(step), sender_ok, pending)
        if reason is None:
            if self.current != episode_id:  # step 0 overtook its START
                self.current, self.last_step = episode_id, -1
            self.stats.skipped += max(0, int(step) - self.last_step - 1)
            self.last_step = int(step)
            self.stats.accepted += 1
        else:
            self.stats.dropped[reason] += 1
        return reason

    def _reason(self, episode_id: str, run_id: str, step: int, sender_ok: bool, pending: int) -> str | None:
        if not sender_ok:
            return "foreign_sender"
        if not self._run_ok(run_id):
            return "other_run"
        if episode_id in self._ended:
            return "ended"
        if episode_id != self.current:
            if step == 0:
                return None if pending < self.max_pending else "queue_full"
            return "other_episode" if self.current is not None else "no_episode"
        if step <= self.last_step:
            return "stale_step"
        if pending >= self.max_pending:
            return "queue_full"
        return None
