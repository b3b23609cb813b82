"""The one reward convention of WorldSample: in simulation, from the success classifier, in both modes.

Every task, every reward mode, simulator or real arm::

    success step:      reward = SUCCESS_REWARD = 0      and the episode terminates there
    any other step:    reward = -1 + SHAPING_WEIGHT * progress      (shaped, progress in [0, 1])
                       reward = -1                                  (sparse)

so a non-success step always costs at least ``1 - SHAPING_WEIGHT`` (= ``MIN_STEP_COST``) and
the success step costs nothing.

Why this convention (issue 10): with a positive per-step reward and termination at success,
an agent that parks just short of the goal until the time limit collects more discounted
return than one that finishes (measured before this change on all four tasks). Here every
step spent before success costs at least ``MIN_STEP_COST > 0``, so from any state, reaching
success one step earlier is strictly better than any continuation that does not, whatever the
discount: finishing dominates hovering and standing still. The shaped part only orders the
non-success states (closer = cheaper), it can never pay more than finishing. A large success
bonus would also work but makes Q targets jump by the bonus at the last step; "no termination
on success" would need the success state to be held, which a real arm's episode cannot promise.

Values then lie in ``[-1 / (1 - discount), 0]`` (-33.3 at the learner's 0.97), and a learned
Q(s, a) reads as "discounted cost to go".
"""

from __future__ import annotations

import math

REWARD_MODES: tuple[str, ...] = ("shaped", "sparse")
SUCCESS_REWARD = 0.0
SHAPING_WEIGHT = 0.8
MIN_STEP_COST = 1.0 - SHAPING_WEIGHT


def step_reward(success: bool, progress: float, mode: str = "shaped") -> float:
    """Reward of one step: 0 on success, else ``-1 + SHAPING_WEIGHT * progress`` (shaped) or -1 (sparse).

    ``progress`` is the task's shaped score in [0, 1] of the reached state (clipped; ignored
    when ``mode == "sparse"`` or on success).
    """
    if mode not in REWARD_MODES:
        raise ValueError(f"reward mode must be one of {REWARD_MODES}, got {mode!r}")
    if success:
        return SUCCESS_REWARD
    if mode == "sparse":
        return -1.0
    p = float(progress)
    if not math.isfinite(p):
        raise ValueError(f"progress must be finite, got {progress!r}")
    return -1.0 + SHAPING_WEIGHT * min(1.0, max(0.0, p))
