"""Replay stores for demo, real and synthetic transitions, persisted on disk in npz chunks.

A `ReplayStore` holds transitions of one kind in memory (a ring of ``capacity``; the oldest
are dropped first) and, when given a directory, appends every accepted transition to
``chunk-NNNNNN.npz`` files there (written atomically, ``chunk_size`` transitions each, plus
the remainder on `flush`/`close`). Re-opening the directory reloads every chunk. Every
transition is keyed by ``(episode_id, step, source)``: a key seen before is skipped (counted
as a duplicate), so replaying the same bags or messages after a restart never duplicates.

Bad input (wrong shapes, NaN/inf, actions outside [-1, 1], missing camera or state) is
rejected with a count per reason, never raised into training.

Feature cache (the frozen pixel encoder, ``AgentConfig.pixel_encoder="frozen"``): `set_featurizer`
gives a store a function from frames to feature vectors and the version of the encoder behind it;
the store then holds ``feat`` / ``next_feat`` for every transition (computed once, when the
transition is added, and for all held transitions at once when the version changes), and batches
carry ``obs["features"]`` instead of the frames. The cache lives in memory only (the chunk files
keep the frames; a restarted learner re-encodes them).
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from worldsample_common.core.episode import Episode, Source

log = logging.getLogger(__name__)

ACTION_TOLERANCE = 1e-4
_SCALARS = ("reward", "terminated", "truncated", "success", "uncertainty", "trust", "step", "source")


@dataclass
class ObsSpec:
    """What a store (and a policy) needs of an observation. ``cameras=()`` stores no images."""

    proprio_dim: int
    state_dim: int = 0
    cameras: tuple[str, ...] = ()
    image_size: int = 64
    action_dim: int = 4

    def to_dict(self) -> dict[str, Any]:
        return {"proprio_dim": self.proprio_dim, "state_dim": self.state_dim, "cameras": list(self.cameras),
                "image_size": self.image_size, "action_dim": self.action_dim}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ObsSpec:
        return cls(int(d["proprio_dim"]), int(d["state_dim"]), tuple(d["cameras"]), int(d["image_size"]),
                   int(d["action_dim"]))


@dataclass
class Transition:
    """One (s, a, r, s') step as plain arrays (the core form of worldsample_msgs/Transition)."""

    episode_id: str
    step: int
    source: Source
    proprio: np.ndarray
    action: np.ndarray
    reward: float
    next_proprio: np.ndarray
    terminated: bool = False
    truncated: bool = False
    success: bool = False
    images: dict[str, np.ndarray] = field(default_factory=dict)
    next_images: dict[str, np.ndarray] = field(default_factory=dict)
    state: np.ndarray | None = None
    next_state: np.ndarray | None = None
    uncertainty: float = 0.0
    trust: float = 1.0
    task: str = ""


@dataclass
class AddReport:
    added: int = 0
    duplicates: int = 0
    rejected: Counter = field(default_factory=Counter)

    def merge(self, other: AddReport) -> None:
        self.added += other.added
        self.duplicates += other.duplicates
        self.rejected.update(other.rejected)

    @property
    def rejected_total(self) -> int:
        return int(sum(self.rejected.values()))


def episode_rows(ep: Episode, spec: ObsSpec) -> tuple[dict[str, Any], list[str]]:
    """Arrays of every transition of ``ep`` (leading axis T) in store layout; problems as strings."""
    t = ep.length
    problems: list[str] = []
    rows: dict[str, Any] = {
        "proprio": ep.proprio[:-1], "next_proprio": ep.proprio[1:], "action": ep.actions,
        "reward": ep.rewards, "terminated": ep.terminated, "truncated": ep.truncated, "success": ep.successes,
        "uncertainty": ep.uncertainty, "trust": ep.trust,
        "step": np.arange(t, dtype=np.int64), "source": np.full(t, int(ep.source), np.int64),
        "episode_id": [ep.episode_id] * t,
    }
    if spec.state_dim:
        if ep.states is None:
            problems.append("missing_state")
        else:
            rows["state"], rows["next_state"] = ep.states[:-1], ep.states[1:]
    for cam in spec.cameras:
        if cam not in ep.images:
            problems.append("missing_camera")
            continue
        rows[f"img_{cam}"], rows[f"next_img_{cam}"] = ep.images[cam][:-1], ep.images[cam][1:]
    return rows, problems


def transition_rows(tr: Transition, spec: ObsSpec) -> tuple[dict[str, Any], list[str]]:
    problems: list[str] = []
    rows: dict[str, Any] = {
        "proprio": np.asarray(tr.proprio, np.float32)[None], "next_proprio": np.asarray(tr.next_proprio, np.float32)[None],
        "action": np.asarray(tr.action, np.float32)[None], "reward": np.asarray([tr.reward], np.float32),
        "terminated": np.asarray([tr.terminated]), "truncated": np.asarray([tr.truncated]),
        "success": np.asarray([tr.success]), "uncertainty": np.asarray([tr.uncertainty], np.float32),
        "trust": np.asarray([tr.trust], np.float32), "step": np.asarray([tr.step], np.int64),
        "source": np.asarray([int(tr.source)], np.int64), "episode_id": [tr.episode_id],
    }
    if spec.state_dim:
        if tr.state is None or tr.next_state is None or len(tr.state) == 0 or len(tr.next_state) == 0:
            problems.append("missing_state")
        else:
            rows["state"] = np.asarray(tr.state, np.float32)[None]
            rows["next_state"] = np.asarray(tr.next_state, np.float32)[None]
    for cam in spec.cameras:
        if cam not in tr.images or cam not in tr.next_images:
            problems.append("missing_camera")
            continue
        rows[f"img_{cam}"] = np.asarray(tr.images[cam])[None]
        rows[f"next_img_{cam}"] = np.asarray(tr.next_images[cam])[None]
    return rows, problems


class ReplayStore:
    """Transitions of one kind (demo / real / synthetic) in memory, optionally persisted to ``directory``."""

    def __init__(self, name: str, spec: ObsSpec, capacity: int = 200_000, directory: str | Path | None = None,
                 chunk_size: int = 2_000) -> None:
        if capacity < 1:
            raise ValueError(f"ReplayStore {name!r}: capacity must be >= 1, got {capacity}")
        if chunk_size < 1:
            raise ValueError(f"ReplayStore {name!r}: chunk_size must be >= 1, got {chunk_size}")
        self.name, self.spec, self.capacity, self.chunk_size = name, spec, int(capacity), int(chunk_size)
        s = spec
        self._shapes: dict[str, tuple[tuple[int, ...], Any]] = {
            "proprio": ((s.proprio_dim,), np.float32), "next_proprio": ((s.proprio_dim,), np.float32),
            "action": ((s.action_dim,), np.float32), "reward": ((), np.float32), "terminated": ((), bool),
            "truncated": ((), bool), "success": ((), bool), "uncertainty": ((), np.float32),
            "trust": ((), np.float32), "step": ((), np.int64), "source": ((), np.int64),
        }
        if s.state_dim:
            self._shapes["state"] = ((s.state_dim,), np.float32)
            self._shapes["next_state"] = ((s.state_dim,), np.float32)
        for cam in s.cameras:
            for k in (f"img_{cam}", f"next_img_{cam}"):
                self._shapes[k] = ((s.image_size, s.image_size, 3), np.uint8)
        self._data = {k: np.zeros((self.capacity, *shape), dtype) for k, (shape, dtype) in self._shapes.items()}
        self._ids: list[str] = [""] * self.capacity
        self._eid = np.zeros(self.capacity, np.int64)  # hash of the episode id (in-memory only), for n-step chains
        self._size = 0
        self._pos = 0
        self._keys: set[tuple[str, int, int]] = set()
        self.total_added = 0
        self.rejected: Counter = Counter()
        self.duplicates = 0
        self._featurize: Any = None  # set_featurizer
        self.feature_version: int | None = None
        self.directory = Path(directory) if directory is not None else None
        self._pending: list[dict[str, Any]] = []
        self._pending_n = 0
        self._next_chunk = 0
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._load_chunks()

    # ------------------------------------------------------------------ pickling (a run snapshot)
    def __getstate__(self) -> dict[str, Any]:
        """The store as pickled for a run snapshot: while not full, only the rows held (a store is allocated at its
        capacity, mostly empty early in a run); `__setstate__` allocates the rest again."""
        state = dict(self.__dict__)
        if self._size < self.capacity:  # not wrapped yet: rows [0, size) are the data
            n = self._size
            state["_data"] = {k: v[:n].copy() for k, v in self._data.items()}
            state["_eid"] = self._eid[:n].copy()
            state["_ids"] = self._ids[:n]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        n, cap = len(self._eid), self.capacity
        if n < cap:
            def grown(v: np.ndarray) -> np.ndarray:
                out = np.zeros((cap, *v.shape[1:]), v.dtype)
                out[:n] = v
                return out

            self._data = {k: grown(v) for k, v in self._data.items()}
            self._eid = grown(self._eid)
            self._ids = self._ids + [""] * (cap - n)

    # ------------------------------------------------------------------ size
    def __len__(self) -> int:
        return self._size

    def contains(self, episode_id: str, step: int, source: Source | int) -> bool:
        return (episode_id, int(step), int(source)) in self._keys

    # ------------------------------------------------------------------ adding
    def add_episode(self, ep: Episode) -> AddReport:
        rows, problems = episode_rows(ep, self.spec)
        if problems:
            rep = AddReport(rejected=Counter({problems[0]: ep.length}))
            self.rejected.update(rep.rejected)
            log.warning("replay %s: episode %s rejected (%s)", self.name, ep.episode_id, problems[0])
            return rep
        return self._add_rows(rows)

    def add_transition(self, tr: Transition) -> AddReport:
        try:
            rows, problems = transition_rows(tr, self.spec)
        except (TypeError, ValueError) as e:  # unconvertible values
            log.warning("replay %s: transition %s/%s rejected: %s", self.name, tr.episode_id, tr.step, e)
            rep = AddReport(rejected=Counter({"invalid": 1}))
            self.rejected.update(rep.rejected)
            return rep
        if problems:
            rep = AddReport(rejected=Counter({problems[0]: 1}))
            self.rejected.update(rep.rejected)
            return rep
        return self._add_rows(rows)

    def add_rows(self, rows: dict[str, Any]) -> AddReport:
        """Add rows in `episode_rows` layout (validated, deduplicated, persisted)."""
        return self._add_rows(rows)

    def _validate(self, rows: dict[str, Any], n: int) -> tuple[np.ndarray, Counter]:
        """Mask of good rows and rejection counts by reason (first reason per row)."""
        ok = np.ones(n, bool)
        reasons: Counter = Counter()
        for k, (shape, _dtype) in self._shapes.items():
            arr = np.asarray(rows[k])
            if arr.shape != (n, *shape):
                return np.zeros(n, bool), Counter({"shape": n})
        for k, (_shape, dtype) in self._shapes.items():
            if dtype is np.float32:
                bad = ~np.isfinite(np.asarray(rows[k], np.float64).reshape(n, -1)).all(axis=1) & ok
                reasons["nan_or_inf"] += int(bad.sum())
                ok &= ~bad
        act = np.asarray(rows["action"], np.float32)
        bad = (np.abs(act) > 1.0 + ACTION_TOLERANCE).any(axis=1) & ok
        reasons["action_range"] += int(bad.sum())
        ok &= ~bad
        for cam in self.spec.cameras:
            for k in (f"img_{cam}", f"next_img_{cam}"):
                if np.asarray(rows[k]).dtype != np.uint8:
                    return np.zeros(n, bool), Counter({"image_dtype": n})
        return ok, Counter({k: v for k, v in reasons.items() if v})

    def _add_rows(self, rows: dict[str, Any], persist: bool = True) -> AddReport:
        ids = rows["episode_id"]
        n = len(ids)
        rep = AddReport()
        if n == 0:
            return rep
        ok, reasons = self._validate(rows, n)
        rep.rejected.update(reasons)
        steps = np.asarray(rows["step"]).reshape(-1) if np.asarray(rows["step"]).shape == (n,) else np.zeros(n, int)
        sources = np.asarray(rows["source"]).reshape(-1) if np.asarray(rows["source"]).shape == (n,) else np.zeros(n, int)
        keep = []
        for i in np.flatnonzero(ok):
            key = (str(ids[i]), int(steps[i]), int(sources[i]))
            if key in self._keys:
                rep.duplicates += 1
                continue
            self._keys.add(key)
            keep.append(i)
        if rep.rejected:
            log.warning("replay %s: rejected %s", self.name, dict(rep.rejected))
        self.rejected.update(rep.rejected)
        self.duplicates += rep.duplicates
        if not keep:
            return rep
        idx = np.asarray(keep)
        sel = {k: np.asarray(rows[k], dtype)[idx] for k, (_s, dtype) in self._shapes.items()}
        sel_ids = [str(ids[i]) for i in keep]
        m = len(keep)
        slots = (self._pos + np.arange(m)) % self.capacity
        if m > self.capacity:  # only the newest fit in memory
            slots, sel_mem, ids_mem = slots[-self.capacity:], {k: v[-self.capacity:] for k, v in sel.items()}, sel_ids[-self.capacity:]
        else:
            sel_mem, ids_mem = sel, sel_ids
        for k, v in sel_mem.items():
            self._data[k][slots] = v
        for s, eid in zip(slots, ids_mem, strict=True):
            self._ids[int(s)] = eid
            self._eid[int(s)] = hash(eid)
        if self._featurize is not None:
            self._encode(slots)
        self._pos = int((self._pos + m) % self.capacity)
        self._size = min(self.capacity, self._size + m)
        self.total_added += m
        rep.added = m
        if persist and self.directory is not None:
            sel["episode_id"] = np.asarray(sel_ids)
            self._pending.append(sel)
            self._pending_n += m
            if self._pending_n >= self.chunk_size:
                self.flush()
        return rep

    # ------------------------------------------------------------------ feature cache
    def set_featurizer(self, fn: Any, version: int) -> None:
        """Cache ``fn(frames)`` for every transition from now on: ``fn`` maps uint8 (N, H, W, 3) frames per
        camera to float32 (N, F); ``version`` names the encoder behind it. Every transition held now is
        re-encoded (a re-trained encoder's features replace the old ones), every one added later encoded
        as it comes; batches then carry ``obs["features"]`` / ``next_obs["features"]`` and no frames."""
        if not self.spec.cameras:
            raise ValueError(f"ReplayStore {self.name!r}: set_featurizer needs stored frames (cameras=())")
        s = self.spec.image_size
        probe = np.asarray(fn({c: np.zeros((1, s, s, 3), np.uint8) for c in self.spec.cameras}), np.float32)
        if probe.ndim != 2 or probe.shape[0] != 1:
            raise ValueError(f"ReplayStore {self.name!r}: the featurizer must return (N, F) for N frames, "
                             f"got {probe.shape} for 1")
        dim = probe.shape[1]
        for k in ("feat", "next_feat"):
            if k not in self._data or self._data[k].shape[1] != dim:
                self._data[k] = np.zeros((self.capacity, dim), np.float32)
        self._featurize, self.feature_version = fn, int(version)
        self._encode(np.arange(self._size))

    def _encode(self, slots: np.ndarray, chunk: int = 1024) -> None:
        cams = self.spec.cameras
        for a in range(0, len(slots), chunk):
            sl = np.asarray(slots[a:a + chunk])
            for prefix in ("", "next_"):
                feat = self._featurize({c: self._data[f"{prefix}img_{c}"][sl] for c in cams})
                self._data[f"{prefix}feat"][sl] = np.asarray(feat, np.float32)

    # ------------------------------------------------------------------ persistence
    def flush(self) -> Path | None:
        """Write pending transitions as the next chunk file (atomic). Returns its path."""
        if self.directory is None or not self._pending:
            return None
        data = {k: np.concatenate([p[k] for p in self._pending]) for k in self._pending[0]}
        path = self.directory / f"chunk-{self._next_chunk:06d}.npz"
        tmp = self.directory / f".chunk-{self._next_chunk:06d}.npz.tmp"
        with open(tmp, "wb") as f:
            np.savez(f, **data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        self._next_chunk += 1
        self._pending, self._pending_n = [], 0
        return path

    def close(self) -> None:
        self.flush()

    def _load_chunks(self) -> None:
        assert self.directory is not None
        chunks = sorted(self.directory.glob("chunk-*.npz"))
        for path in chunks:
            try:
                with np.load(path, allow_pickle=False) as z:
                    rows = {k: z[k] for k in z.files}
                rows["episode_id"] = [str(x) for x in rows["episode_id"]]
            except Exception as e:  # noqa: BLE001 - a corrupt chunk must not stop the learner
                log.error("replay %s: skipping unreadable chunk %s: %s", self.name, path, e)
                continue
            missing = [k for k in self._shapes if k not in rows]
            if missing:
                log.error("replay %s: skipping chunk %s: fields %s missing (other obs spec?)", self.name, path, missing)
                continue
            self._add_rows(rows, persist=False)
        if chunks:
            self._next_chunk = int(chunks[-1].stem.split("-")[1]) + 1
            log.info("replay %s: reloaded %d transitions from %d chunks", self.name, len(self), len(chunks))

    # ------------------------------------------------------------------ reading
    def sample(self, n: int, rng: np.random.Generator, n_step: int = 1,
               discount: float | None = None) -> dict[str, Any]:
        if self._size == 0:
            raise ValueError(f"ReplayStore {self.name!r} is empty; cannot sample {n}")
        return self.gather(rng.integers(0, self._size, size=n), n_step, discount)

    def gather(self, idx: np.ndarray, n_step: int = 1, discount: float | None = None) -> dict[str, Any]:
        """Batch dict: obs / next_obs ({images, proprio, state}), action, reward, terminated, ..., and,
        when ``discount`` is given, ``discount`` (B,): the factor of the bootstrapped value in the critic
        target (without it the agent uses its own ``discount * (1 - terminated)``).

        ``n_step > 1``: n-step returns. Transitions of one episode sit in consecutive slots (episodes
        are added whole, per-step messages arrive in order), so for each sampled transition the next
        ``n_step - 1`` slots that continue its episode (same episode, next step, episode not ended)
        are folded in: ``reward = sum_k discount^k r_{t+k}``, ``next_obs`` of the last step taken,
        ``discount = discount^K * (1 - terminated)`` over the ``K <= n_step`` steps taken. Where the
        chain breaks (end of episode, a step missing, a slot overwritten) fewer steps are used.
        """
        idx = np.asarray(idx)
        # with a feature cache the batch carries the features and no frames (the frames stay in the store)
        keys = [k for k in self._data if not (self._featurize is not None and "img_" in k)]
        d = {k: self._data[k][idx] for k in keys}
        if n_step > 1 and discount is None:
            raise ValueError(f"ReplayStore {self.name!r}: n-step sampling (n_step={n_step}) needs the discount")
        if discount is not None:
            d["discount"] = (discount * (1.0 - d["terminated"].astype(np.float32))).astype(np.float32)
        if n_step > 1:
            reward = d["reward"].astype(np.float64).copy()
            last = idx.copy()
            alive = ~(d["terminated"] | d["truncated"])
            k_taken = np.ones(len(idx), np.int64)
            for k in range(1, n_step):
                j = (idx + k) % self.capacity
                filled = (j < self._size) if self._size < self.capacity else np.ones(len(idx), bool)
                cont = (alive & filled & (self._eid[j] == self._eid[idx])
                        & (self._data["step"][j] == self._data["step"][idx] + k))
                if not cont.any():
                    break
                reward[cont] += discount**k * self._data["reward"][j[cont]]
                last[cont] = j[cont]
                k_taken[cont] += 1
                alive = cont & ~(self._data["terminated"][j] | self._data["truncated"][j])
            if (last != idx).any():
                for key in keys:
                    if key.startswith("next_"):
                        d[key] = self._data[key][last]
                term = self._data["terminated"][last]
                d["terminated"] = term
                d["reward"] = reward.astype(np.float32)
                d["discount"] = (discount**k_taken * (1.0 - term.astype(np.float64))).astype(np.float32)
        return batch_from_flat(d, self.spec)

    def vectors(self) -> dict[str, np.ndarray]:
        """Proprio (and state, if stored) of every transition held in memory (no images)."""
        out = {"proprio": self._data["proprio"][: self._size]}
        if self.spec.state_dim:
            out["state"] = self._data["state"][: self._size]
        return out

    def frames(self, idx: np.ndarray) -> dict[str, np.ndarray]:
        """The observation frames (uint8 (N, H, W, 3) per camera) of the transitions at ``idx``."""
        return {c: self._data[f"img_{c}"][np.asarray(idx)] for c in self.spec.cameras}

    def steps(self, idx: np.ndarray) -> np.ndarray:
        """The step index within its episode of each transition at ``idx`` (0 = the episode's first)."""
        return self._data["step"][np.asarray(idx)]

    def branch_returns(self, idx: np.ndarray, discount: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For each transition at ``idx`` (step k of its episode): the slot of its episode's step 0, the
        discounted reward of steps 0..k-1 (``sum_j discount^j r_j``) and whether that chain is whole (every
        step 0..k sits in consecutive slots of the same episode, nothing ended before k). Episodes are
        stored whole and in order (`gather`), so the chain is the k slots before ``idx``."""
        idx = np.asarray(idx)
        k = self._data["step"][idx].astype(np.int64)
        start = (idx - k) % self.capacity
        ok = np.ones(len(idx), bool)
        ret = np.zeros(len(idx), np.float64)
        for j in range(int(k.max(initial=0))):
            on = ok & (j < k)
            s = (start + j) % self.capacity
            filled = s < self._size
            on_ok = (filled & (self._eid[s] == self._eid[idx]) & (self._data["step"][s] == j)
                     & ~(self._data["terminated"][s] | self._data["truncated"][s]))
            ok &= ~on | on_ok
            ret += np.where(on & on_ok, discount**j * self._data["reward"][s], 0.0)
        return start, ret, ok

    def recent_indices(self, n: int) -> np.ndarray:
        """Indices of the newest ``n`` transitions in memory."""
        n = min(n, self._size)
        return (self._pos - 1 - np.arange(n)) % self.capacity if self._size == self.capacity else np.arange(self._size - n, self._size)

    def keys(self) -> set[tuple[str, int, int]]:
        return set(self._keys)

    def stats(self) -> dict[str, Any]:
        return {"size": len(self), "total_added": self.total_added, "duplicates": self.duplicates,
                "rejected": dict(self.rejected), "feature_version": self.feature_version}


def batch_from_flat(d: dict[str, np.ndarray], spec: ObsSpec) -> dict[str, Any]:
    def obs(prefix: str) -> dict[str, Any]:
        o: dict[str, Any] = {"proprio": d[f"{prefix}proprio"],
                             "images": {c: d[f"{prefix}img_{c}"] for c in spec.cameras if f"{prefix}img_{c}" in d}}
        if f"{prefix}feat" in d:
            o["features"] = d[f"{prefix}feat"]
        if spec.state_dim:
            o["state"] = d[f"{prefix}state"]
        return o

    out = {"obs": obs(""), "next_obs": obs("next_"), "action": d["action"], "reward": d["reward"],
           "terminated": d["terminated"], "truncated": d["truncated"], "success": d["success"],
           "uncertainty": d["uncertainty"], "trust": d["trust"], "source": d["source"]}
    if "discount" in d:
        out["discount"] = d["discount"]
    return out


def concat_batches(batches: list[dict[str, Any]]) -> dict[str, Any]:
    """Concatenate batch dicts (same layout) along the first axis."""
    batches = [b for b in batches if len(b["action"])]

    def cat(values: list[Any]) -> Any:
        if isinstance(values[0], dict):
            return {k: cat([v[k] for v in values]) for k in values[0]}
        return np.concatenate(values)

    return cat(batches)


def subset_rows(rows: dict[str, Any], mask: np.ndarray) -> dict[str, Any]:
    """Rows of an `episode_rows` dict where ``mask`` is true."""
    idx = np.flatnonzero(mask)
    return {k: ([v[i] for i in idx] if isinstance(v, list) else np.asarray(v)[idx]) for k, v in rows.items()}
