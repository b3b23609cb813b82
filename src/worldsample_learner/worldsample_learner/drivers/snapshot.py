"""Mid-run snapshots of an in-process training run (`learn.train_in_process`).

A 20k-step run with the video world model takes over an hour on a 2-core CPU, and a session can end anywhere.
Every ``LearnConfig.snapshot_every_env_steps`` (at the first episode end past each multiple) the driver writes
``RUN/snapshot.pt``: the learner (agent, optimisers, replay, PPL), the policy, the synthetic source's state
(the world model, the MLP ensemble, their pools and random generators), the driver's loop state, the
process's random generators, and the byte size of every file the run appends to. ``train_in_process(...,
resume=True)`` loads it, cuts those files back to that size, lets the source drop what it wrote after the
snapshot (`after_resume`: world-model versions), resets the env with the seed of the next episode and goes on
from the step after the snapshot. A resumed run is the run that was never stopped, step for step
(`test_snapshot.py`), up to the wall-clock columns.

The file is written to a temporary name and renamed, so a run killed while writing keeps its previous
snapshot. It is removed when the run finishes (its results then say everything).
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np

SNAPSHOT = "snapshot.pt"
FORMAT = 1


class SnapshotMismatch(ValueError):
    """The snapshot is of a run with another configuration (nothing was changed on disk)."""


_ABSENT = object()


def _differences(a: Any, b: Any, path: str = "", default: Any = _ABSENT) -> list[str]:
    """Where config ``b`` differs from the snapshot's ``a``. A field the snapshot lacks (added to the code since)
    is no difference while ``b`` holds its ``default``: the run it resumes had that behaviour."""
    if a is _ABSENT:
        if b == default:
            return []
        a = None
    if isinstance(a, dict) and isinstance(b, dict):
        d = default if isinstance(default, dict) else {}
        return [x for k in sorted(set(a) | set(b), key=str)
                for x in _differences(a.get(k, _ABSENT), b.get(k), f"{path}.{k}" if path else str(k),
                                      d.get(k, _ABSENT))]
    return [] if a == b else [f"{path}: {a!r} in the snapshot, {b!r} now"]


def appended_files(out: Path) -> dict[str, int]:
    """Byte size of every CSV the run appends to (its top-level ``*.csv``), by name."""
    return {p.name: p.stat().st_size for p in sorted(out.glob("*.csv")) if p.is_file()}


def rewind_files(out: Path, sizes: dict[str, int]) -> None:
    """Cut each appended file back to its size at the snapshot; remove those that did not exist then."""
    for p in out.glob("*.csv"):
        if p.name not in sizes:
            p.unlink()
        elif p.stat().st_size > sizes[p.name]:
            with open(p, "r+b") as f:
                f.truncate(sizes[p.name])


def restore_into(obj: Any, state: Any) -> None:
    """Put ``state`` (``obj.__getstate__()``, what pickling it keeps) back into ``obj``, in place, so that the
    caller's references see it."""
    setstate = getattr(type(obj), "__setstate__", None)
    if setstate is not None:
        setstate(obj, state)
    else:
        obj.__dict__.clear()
        obj.__dict__.update(state)


def save_snapshot(out: Path, loop: dict[str, Any], learner: Any, policy: Any, source: Any) -> Path:
    """Write ``out/snapshot.pt`` atomically. ``loop``: the driver's own state (plain values and its logs)."""
    import torch

    blob = {"format": FORMAT, "loop": loop, "learner": learner, "policy": policy,
            "source": None if source is None else source.__getstate__(), "files": appended_files(out),
            "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}}
    path = out / SNAPSHOT
    tmp = out / (SNAPSHOT + ".tmp")
    with open(tmp, "wb") as f:
        torch.save(blob, f)  # one pickle: the learner, the policy and the source keep their shared references
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)
    return path


def load_snapshot(out: Path, source: Any, config: dict[str, Any],
                  defaults: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """The snapshot in ``out`` restored (files cut back, ``source`` filled in place, the process's random
    generators set), or None when there is none. A snapshot of a run with another ``config`` (the run's
    ``LearnConfig`` as a dict) or another source kind is refused (`SnapshotMismatch`) before anything changes;
    ``defaults`` (the default ``LearnConfig`` as a dict): a field the snapshot predates counts as unchanged while
    ``config`` holds its default."""
    import torch

    path = out / SNAPSHOT
    if not path.exists():
        return None
    try:
        blob = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - a damaged snapshot is reported with its path
        raise ValueError(f"cannot read the run snapshot {path} ({type(exc).__name__}: {exc}); delete it to start "
                         "the run afresh") from exc
    if blob.get("format") != FORMAT:
        raise ValueError(f"{path} has snapshot format {blob.get('format')!r}, this code reads {FORMAT}")
    diff = _differences(blob["loop"].get("config"), config, default=defaults if defaults is not None else _ABSENT)
    if diff:
        raise SnapshotMismatch(f"{path} is of a run with another configuration: " + "; ".join(diff[:5]))
    if (blob["source"] is None) != (source is None):
        raise SnapshotMismatch(f"{path} was taken {'without' if blob['source'] is None else 'with'} a synthetic source; "
                         f"this run has {'one' if source is not None else 'none'}")
    rewind_files(out, blob["files"])
    if source is not None:
        restore_into(source, blob["source"])
        after = getattr(source, "after_resume", None)
        if callable(after):
            after()
    torch.set_rng_state(blob["rng"]["torch"])
    np.random.set_state(blob["rng"]["numpy"])
    random.setstate(blob["rng"]["python"])
    return blob


def remove_snapshot(out: Path) -> None:
    for name in (SNAPSHOT, SNAPSHOT + ".tmp"):
        (out / name).unlink(missing_ok=True)
