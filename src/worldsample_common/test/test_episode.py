"""`Episode.first`: a branch cut to its first n steps and relabelled."""

import numpy as np
import pytest
from worldsample_common.core.episode import Episode, Source


def _episode(t: int = 5) -> Episode:
    return Episode(episode_id="e", task="push", source=Source.SYNTHETIC,
                   images={"front": np.arange(t + 1, dtype=np.uint8)[:, None, None, None].repeat(3, -1)},
                   proprio=np.arange(t + 1, dtype=np.float32)[:, None], actions=np.ones((t, 4)),
                   rewards=np.arange(t), terminated=np.zeros(t), truncated=np.zeros(t), successes=np.zeros(t),
                   uncertainty=np.arange(t), states=np.arange(t + 1, dtype=np.float32)[:, None],
                   stamps_ns=np.arange(t + 1), sim_states=np.arange(t + 1, dtype=np.float64)[:, None])


def test_first_cuts_every_field_and_takes_the_new_labels():
    ep = _episode()
    cut = ep.first(2, rewards=np.array([7.0, 8.0]), terminated=np.array([False, True]))
    assert cut.length == 2 and cut.images["front"].shape[0] == 3
    for name in ("proprio", "states", "stamps_ns", "sim_states"):
        np.testing.assert_array_equal(getattr(cut, name), getattr(ep, name)[:3])
    np.testing.assert_array_equal(cut.uncertainty, [0, 1])  # cut, not replaced
    np.testing.assert_array_equal(cut.rewards, [7, 8])  # replaced
    assert cut.terminated.tolist() == [False, True] and ep.length == 5  # the original is untouched
    assert ep.first(5).length == 5
    for bad in (0, 6):
        with pytest.raises(ValueError, match="first"):
            ep.first(bad)
