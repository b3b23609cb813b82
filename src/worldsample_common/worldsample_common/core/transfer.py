"""Moving payloads between the two parts of a split graph (robot PC <-> learning server) without a shared disk.

A payload is a finished episode bag (a directory), a demonstration bag, or a policy checkpoint (one
file). The sender (`Outbox`) describes it by a manifest: every file with its size and SHA-256, and a
digest of the manifest that names this exact version. It offers the payload until the receiver
confirms it, and keeps every file meanwhile (it never deletes anything; its ledger only records what
was confirmed, so a restarted sender does not offer it again).

The receiver (`Inbox`) pulls the files in chunks through a ``fetch(file, offset, length) -> bytes``
function (a ROS 2 service call in the nodes, a plain function in tests):

- each file is written to ``<partial>/<kind>/<name>/<file>.part``; after a drop (``fetch`` raises
  `TransferInterrupted`) the next attempt resumes at the part file's size, also after a restart;
- a complete file whose size or SHA-256 differs from the manifest is refused: its part file is deleted
  and the next attempt fetches it again from the start (`ReceiveResult.refused`);
- only when every file matches is the payload moved into its destination by one rename (a bag
  directory appears whole or not at all, so a reader that rescans the directory never sees half a bag).

No rclpy here: the node (`worldsample_bringup.payload_link`: ``robot_link`` / ``learning_link``) converts messages.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

KINDS = ("bag", "demo", "checkpoint")
CHUNK_BYTES = 512 * 1024  # default chunk size: one FetchChunk reply
PART_SUFFIX = ".part"
# test fault injector (the corruption-in-transit test): a sender started with this variable set to a payload kind
# ("bag", "demo", "checkpoint") or "any" flips one byte of the first chunk it serves of such a payload, once per
# process; the receiver's SHA-256 check must refuse that file and fetch it again. Never set it on a real rig.
CORRUPT_ENV = "WORLDSAMPLE_TRANSFER_CORRUPT_ONCE"


class TransferError(ValueError):
    """A request or a payload that cannot be served or accepted (the message says which and why)."""


class TransferInterrupted(Exception):
    """The link dropped while fetching (a timeout, no sender): try again later, the part files are kept."""


def sha256_file(path: Path, block: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(block):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class FileEntry:
    path: str  # relative to the payload (the file's own name for a one-file payload)
    size: int
    sha256: str


@dataclass(frozen=True)
class Payload:
    kind: str
    name: str
    is_dir: bool
    files: tuple[FileEntry, ...]
    announcement: str = ""  # JSON: what the receiving side re-announces (episode / checkpoint fields)

    @property
    def digest(self) -> str:
        return manifest_digest(self.kind, self.name, self.is_dir, self.files)

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def entry(self, file: str) -> FileEntry:
        for f in self.files:
            if f.path == file:
                return f
        raise TransferError(f"{self.kind} {self.name!r}: no file {file!r} in its manifest")


def manifest_digest(kind: str, name: str, is_dir: bool, files: tuple[FileEntry, ...]) -> str:
    lines = [f"{kind}\n{name}\n{int(is_dir)}"] + [f"{f.path}\t{f.size}\t{f.sha256}" for f in files]
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def _check_kind_name(kind: str, name: str) -> None:
    if kind not in KINDS:
        raise TransferError(f"payload kind {kind!r}; expected one of {KINDS}")
    if not name or name in (".", "..") or "/" in name or "\\" in name:
        raise TransferError(f"payload name {name!r}: expected a plain file or directory name")


def _check_rel(kind: str, name: str, rel: str) -> None:
    p = Path(rel)
    if not rel or p.is_absolute() or ".." in p.parts:
        raise TransferError(f"{kind} {name!r}: file path {rel!r} is not a relative path inside the payload")


def describe(path: Path | str, kind: str, announcement: str = "") -> Payload:
    """The manifest of the bag directory or checkpoint file at ``path`` (sizes and SHA-256 of every file)."""
    path = Path(path)
    _check_kind_name(kind, path.name)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
        if not files:
            raise TransferError(f"{kind} {path}: an empty directory is not a payload")
        entries = tuple(FileEntry(p.relative_to(path).as_posix(), p.stat().st_size, sha256_file(p)) for p in files)
        return Payload(kind, path.name, True, entries, announcement)
    if path.is_file():
        return Payload(kind, path.name, False, (FileEntry(path.name, path.stat().st_size, sha256_file(path)),),
                       announcement)
    raise TransferError(f"{kind} {path}: no such file or directory")


def payload_from_fields(kind: str, name: str, is_dir: bool, files: list[str], sizes: list[int], hashes: list[str],
                        announcement: str = "", digest: str = "") -> Payload:
    """A `Payload` from an offer's fields, checked (names, paths, lengths, and the digest when given)."""
    _check_kind_name(kind, name)
    if not (len(files) == len(sizes) == len(hashes)) or not files:
        raise TransferError(f"{kind} {name!r}: offer with {len(files)} file(s), {len(sizes)} size(s), "
                            f"{len(hashes)} hash(es); expected the same number, at least one")
    for rel in files:
        _check_rel(kind, name, rel)
    p = Payload(kind, name, bool(is_dir),
                tuple(FileEntry(str(f), int(s), str(h)) for f, s, h in zip(files, sizes, hashes, strict=True)),
                announcement)
    if not is_dir and (len(files) != 1 or files[0] != name):
        raise TransferError(f"{kind} {name!r}: a one-file payload's manifest must name the file itself")
    if digest and digest != p.digest:
        raise TransferError(f"{kind} {name!r}: the offer's digest does not match its manifest")
    return p


# --------------------------------------------------------------------------- sender
class Outbox:
    """What one part offers to the other: payloads by (kind, name), kept until confirmed.

    ``ledger``: a JSON file of confirmed digests, so a restarted sender does not offer them again.
    ``corrupt_once``: test fault injector (`CORRUPT_ENV`): a payload kind or "any"; the first chunk served of
    such a payload has one byte flipped (once), as a link that corrupts data in transit would ('' = never)."""

    def __init__(self, ledger: Path | str, corrupt_once: str = "") -> None:
        if corrupt_once and corrupt_once not in (*KINDS, "any"):
            raise TransferError(f"{CORRUPT_ENV}={corrupt_once!r}: expected one of {(*KINDS, 'any')} (or unset)")
        self.corrupt_once = corrupt_once
        self.corrupted: list[str] = []  # what the fault injector corrupted: "kind name file@offset"
        self.ledger = Path(ledger)
        self._items: dict[tuple[str, str], tuple[Payload, Path]] = {}
        self._confirmed: set[str] = set()
        if self.ledger.exists():
            try:
                self._confirmed = set(json.loads(self.ledger.read_text())["confirmed"])
            except (ValueError, KeyError, TypeError) as exc:
                raise TransferError(f"transfer ledger {self.ledger}: unreadable ({exc}); move it away to re-send "
                                    "everything") from None

    def add(self, path: Path | str, kind: str, announcement: str = "") -> Payload:
        """Offer the payload at ``path`` (hashes its files now; the files must not change afterwards)."""
        p = describe(path, kind, announcement)
        self._items[(kind, p.name)] = (p, Path(path))
        return p

    def known(self, kind: str, name: str) -> bool:
        return (kind, name) in self._items

    def pending(self) -> list[Payload]:
        """Payloads not yet confirmed, oldest first. Of the checkpoints only the newest one added: an older one is
        superseded (the actor runs the newest policy), so a robot PC back after a long absence gets one
        checkpoint, not the backlog the learner made meanwhile. Bags and demonstrations are all kept."""
        newest = next((p for p, _ in reversed(self._items.values()) if p.kind == "checkpoint"), None)
        return [p for p, _ in self._items.values()
                if p.digest not in self._confirmed and (p.kind != "checkpoint" or p is newest)]

    def confirmed(self, payload: Payload) -> bool:
        return payload.digest in self._confirmed

    def confirm(self, kind: str, name: str, digest: str) -> bool:
        """The receiver holds this version: stop offering it (True when that changed something)."""
        item = self._items.get((kind, name))
        if item is None or item[0].digest != digest or digest in self._confirmed:
            return False
        self._confirmed.add(digest)
        tmp = self.ledger.with_name(self.ledger.name + ".tmp")
        self.ledger.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps({"confirmed": sorted(self._confirmed)}))
        os.replace(tmp, self.ledger)
        return True

    def read_chunk(self, kind: str, name: str, digest: str, file: str, offset: int, length: int) -> bytes:
        """Bytes ``offset .. offset+length`` of one file of an offered payload (fewer at its end)."""
        item = self._items.get((kind, name))
        if item is None:
            raise TransferError(f"{kind} {name!r} is not offered here")
        payload, root = item
        if digest and digest != payload.digest:
            raise TransferError(f"{kind} {name!r}: requested version {digest[:12]} but {payload.digest[:12]} is offered")
        entry = payload.entry(file)
        if offset < 0 or length < 1 or offset > entry.size:
            raise TransferError(f"{kind} {name!r} {file}: bytes {offset}+{length} outside its {entry.size} bytes")
        path = root / entry.path if payload.is_dir else root
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read(min(length, entry.size - offset))
        if self.corrupt_once in (kind, "any") and data:
            self.corrupt_once = ""  # once
            self.corrupted.append(f"{kind} {name} {file}@{offset}")
            data = bytes([data[0] ^ 0xFF]) + data[1:]
        return data


# --------------------------------------------------------------------------- receiver
@dataclass
class ReceiveResult:
    status: str  # "done" (in place), "held" (was already there), "refused" (a file failed its check), "interrupted"
    path: Path | None = None  # where the payload is, when done / held
    received_bytes: int = 0  # bytes fetched in this call
    detail: str = ""


@dataclass
class InboxStats:
    done: int = 0
    refused: int = 0
    interrupted: int = 0
    bytes: int = 0
    refusals: list[str] = field(default_factory=list)


Fetch = Callable[[str, int, int], bytes]


class Inbox:
    """Receives payloads into ``dest[kind]`` through a staging directory ``partial`` (same filesystem)."""

    def __init__(self, dest: dict[str, Path | str], partial: Path | str, chunk_bytes: int = CHUNK_BYTES) -> None:
        unknown = set(dest) - set(KINDS)
        if unknown:
            raise TransferError(f"inbox destinations for unknown kind(s) {sorted(unknown)}; expected {KINDS}")
        if chunk_bytes < 1:
            raise TransferError(f"chunk size {chunk_bytes}: expected >= 1 byte")
        self.dest = {k: Path(v) for k, v in dest.items()}
        self.partial = Path(partial)
        self.chunk_bytes = int(chunk_bytes)
        self.stats = InboxStats()
        self._verified: set[tuple[str, str]] = set()  # (target, digest) checked by holds_this_version

    def accepts(self, kind: str) -> bool:
        return kind in self.dest

    def target(self, payload: Payload) -> Path:
        if payload.kind not in self.dest:
            raise TransferError(f"this receiver takes {sorted(self.dest)}, not {payload.kind!r}")
        return self.dest[payload.kind] / payload.name

    def holds(self, payload: Payload) -> bool:
        """Something of the payload's name is in place (moved there by this inbox after every file matched)."""
        return self.target(payload).exists()

    def holds_this_version(self, payload: Payload) -> bool:
        """What is in place under the payload's name is this version: the same files, sizes and SHA-256 (a
        duplicate offer, e.g. after a restart of either end, is acknowledged without fetching). False for a
        different version under the same name: it is never overwritten, and never acknowledged."""
        target = self.target(payload)
        key = (str(target), payload.digest)
        if key in self._verified:
            return True
        if not target.exists():
            return False
        if payload.is_dir:
            have = sorted(p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file())
            if have != sorted(f.path for f in payload.files):
                return False
        for f in payload.files:
            path = target / f.path if payload.is_dir else target
            if not path.is_file() or path.stat().st_size != f.size or sha256_file(path) != f.sha256:
                return False
        self._verified.add(key)
        return True

    def _staging(self, payload: Payload) -> Path:
        return self.partial / payload.kind / payload.name

    def receive(self, payload: Payload, fetch: Fetch) -> ReceiveResult:
        """Fetch what is missing of ``payload``, check it, move it into place.

        Resumes at each part file's size. ``fetch`` raising `TransferInterrupted` ends the call with
        status "interrupted" (parts kept); a file failing its size/SHA-256 check ends it with
        "refused" (that file's part deleted, so the next call fetches it again)."""
        target = self.target(payload)
        if target.exists():
            if self.holds_this_version(payload):
                return ReceiveResult("held", target)
            why = (f"{payload.kind} {payload.name}: another version is already in {target} (files, sizes or SHA-256 "
                   f"differ from offer {payload.digest[:12]}); refused, the one in place is kept")
            self.stats.refused += 1
            self.stats.refusals.append(why)
            return ReceiveResult("refused", None, 0, why)
        stage = self._staging(payload)
        stage.mkdir(parents=True, exist_ok=True)
        got = 0
        try:
            for entry in payload.files:
                final = stage / entry.path
                if final.exists():  # checked and renamed by an earlier call
                    continue
                part = final.with_name(final.name + PART_SUFFIX)
                part.parent.mkdir(parents=True, exist_ok=True)
                have = part.stat().st_size if part.exists() else 0
                if have > entry.size:  # longer than the file can be: start over
                    part.unlink()
                    have = 0
                with open(part, "ab") as f:
                    while have < entry.size:
                        data = fetch(entry.path, have, min(self.chunk_bytes, entry.size - have))
                        if not data:
                            raise TransferInterrupted(f"{payload.kind} {payload.name} {entry.path}: empty chunk at "
                                                      f"{have} of {entry.size} bytes")
                        data = data[: entry.size - have]
                        f.write(data)
                        have += len(data)
                        got += len(data)
                digest = sha256_file(part)
                if digest != entry.sha256:
                    part.unlink()
                    why = (f"{payload.kind} {payload.name} {entry.path}: SHA-256 {digest[:12]} != offered "
                           f"{entry.sha256[:12]} ({entry.size} bytes); refused, fetched again next time")
                    self.stats.refused += 1
                    self.stats.refusals.append(why)
                    self.stats.bytes += got
                    return ReceiveResult("refused", None, got, why)
                os.replace(part, final)
        except TransferInterrupted as exc:
            self.stats.interrupted += 1
            self.stats.bytes += got
            return ReceiveResult("interrupted", None, got, str(exc))
        target.parent.mkdir(parents=True, exist_ok=True)
        if payload.is_dir:
            os.replace(stage, target)
        else:
            os.replace(stage / payload.files[0].path, target)
            shutil.rmtree(stage, ignore_errors=True)
        self.stats.done += 1
        self.stats.bytes += got
        return ReceiveResult("done", target, got)


# --------------------------------------------------------------------------- the node's configuration
@dataclass
class PayloadLinkConfig:
    """``robot_link`` / ``learning_link``: one part's end of the payload link (worldsample_bringup.payload_link).

    Sends: bags announced on ``topic_episodes_recorded`` or found closed in ``send_bags_dir`` /
    ``send_demos_dir``, and checkpoints announced on ``topic_policy_checkpoint`` (``send_checkpoints``),
    offered on ``<send_prefix>/offers`` and served by ``<send_prefix>/fetch`` until acknowledged.
    Receives: offers on ``<receive_prefix>/offers`` into the ``receive_*_dir`` directories, then repeats
    the announcement with the local path on ``announce_episodes_topic`` / ``announce_checkpoint_topic``."""

    run_id: str = ""  # run the payloads belong to; offers of another run are ignored ('' = any)
    send_prefix: str = "transfer/robot"  # topic/service prefix this end offers and serves on
    receive_prefix: str = "transfer/learning"  # topic/service prefix of the other end
    send_bags_dir: str = ""  # real-episode bags to offer (closed bags found here, '' = none)
    send_demos_dir: str = ""  # demonstration bags to offer ('' = none)
    send_checkpoints: bool = False  # offer every checkpoint announced on topic_policy_checkpoint
    receive_bags_dir: str = ""  # where received real-episode bags go ('' = take none)
    receive_demos_dir: str = ""  # where received demonstration bags go ('' = take none)
    receive_checkpoints_dir: str = ""  # where received checkpoints go ('' = take none)
    announce_episodes_topic: str = ""  # EpisodeInfo END with the local bag_uri of each received bag ('' = none)
    announce_checkpoint_topic: str = ""  # PolicyCheckpoint with the local uri of each received checkpoint
    state_dir: str = "transfer"  # the sender's ledger and the receiver's part files
    chunk_bytes: int = CHUNK_BYTES  # bytes per FetchChunk request
    fetch_timeout_s: float = 2.0  # a chunk not answered within this is a drop: retried after retry_s
    retry_s: float = 1.0  # wait after a drop or a refused file before fetching again
    offer_period_s: float = 1.0  # unconfirmed payloads are offered again at this period
    scan_period_s: float = 2.0  # the send directories are scanned for closed bags at this period
    topic_episodes_recorded: str = "episodes/recorded"  # the recorder's announcements (sender side)
    topic_policy_checkpoint: str = "policy/checkpoint"  # the learner's announcements (sender side)

    def __post_init__(self) -> None:
        from .params import require_positive

        require_positive("PayloadLinkConfig", chunk_bytes=self.chunk_bytes, fetch_timeout_s=self.fetch_timeout_s,
                         retry_s=self.retry_s, offer_period_s=self.offer_period_s, scan_period_s=self.scan_period_s)
        if self.send_prefix == self.receive_prefix:
            raise ValueError(f"PayloadLinkConfig.send_prefix and receive_prefix are both {self.send_prefix!r}; "
                             "each end needs its own")

    def receive_dirs(self) -> dict[str, Path]:
        return {k: Path(v) for k, v in (("bag", self.receive_bags_dir), ("demo", self.receive_demos_dir),
                                        ("checkpoint", self.receive_checkpoints_dir)) if v}
