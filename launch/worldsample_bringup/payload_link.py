"""payload_link_node: one part's end of the payload link between a robot PC and a learning server.

DDS carries every topic between the two hosts by itself; files do not cross. This node moves the
payloads announced by path (finished episode bags, demonstrations, policy checkpoints) over ROS 2:

- sending: each bag announced on ``episodes/recorded`` (or found closed in the send directories) and
  each checkpoint announced on ``policy/checkpoint`` is offered (``<send_prefix>/offers``,
  TransferOffer, repeated until acknowledged on ``<send_prefix>/acks``) and served in chunks
  (``<send_prefix>/fetch``, FetchChunk). Nothing is deleted: the sender keeps every file.
- receiving: an offer on ``<receive_prefix>/offers`` is fetched chunk by chunk into the part's own
  run directory, checked (size + SHA-256 per file; a mismatch is refused and fetched again), moved
  into place by one rename, acknowledged, and announced again with the local path (EpisodeInfo END on
  ``announce_episodes_topic`` for the learner and world model, PolicyCheckpoint on
  ``announce_checkpoint_topic`` for the actor).

A dropped link shows as unanswered chunk requests: the fetch stops after ``fetch_timeout_s``, the part
files stay, and the next offer resumes where it stopped. The logic lives in
`worldsample_common.core.transfer`; this node only converts messages and runs one fetch thread.
"""

from __future__ import annotations

import array
import json
import os
import queue
import threading
import time
from pathlib import Path

from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.node import Node
from worldsample_common.core.bag_io import BagError, bag_closed, find_bags
from worldsample_common.core.franka_interface import EVENTS, LATCHED
from worldsample_common.core.transfer import (
    CORRUPT_ENV,
    Inbox,
    Outbox,
    Payload,
    PayloadLinkConfig,
    TransferError,
    TransferInterrupted,
    payload_from_fields,
)
from worldsample_common.nodes.support import declare_config, qos
from worldsample_common.nodes.support import run as run_node

from worldsample_msgs.msg import EpisodeInfo, PolicyCheckpoint, TransferAck, TransferOffer
from worldsample_msgs.srv import FetchChunk

EPISODE_FIELDS = ("episode_id", "source", "task", "length", "episode_return", "success", "policy_version", "seed",
                  "run_id", "reason")
CHECKPOINT_FIELDS = ("version", "learner_step", "env_steps", "metric_names", "metric_values")


def _fields(msg, names) -> str:
    return json.dumps({n: list(getattr(msg, n)) if n.startswith("metric_") else getattr(msg, n) for n in names})


class PayloadLinkNode(Node):
    def __init__(self, node_name: str = "payload_link", **node_kwargs) -> None:
        super().__init__(node_name, **node_kwargs)
        cfg = self.cfg = declare_config(self, PayloadLinkConfig())
        state = Path(cfg.state_dir)
        group = ReentrantCallbackGroup()
        self.executor_threads = 2
        # ---------------------------------------------------------------- sending
        self.outbox = Outbox(state / "outbox.json", corrupt_once=os.environ.get(CORRUPT_ENV, ""))
        if self.outbox.corrupt_once:
            self.get_logger().warning(f"test fault injector {CORRUPT_ENV}={self.outbox.corrupt_once}: the first "
                                      "chunk served of such a payload is corrupted (one byte flipped), once")
        self._sending = bool(cfg.send_bags_dir or cfg.send_demos_dir or cfg.send_checkpoints)
        self._lock = threading.Lock()
        if self._sending:
            self.pub_offer = self.create_publisher(TransferOffer, f"{cfg.send_prefix}/offers", qos(EVENTS))
            self.create_service(FetchChunk, f"{cfg.send_prefix}/fetch", self._serve, callback_group=group)
            self.create_subscription(TransferAck, f"{cfg.send_prefix}/acks", self._on_ack, qos(EVENTS),
                                     callback_group=group)
            if cfg.send_bags_dir or cfg.send_demos_dir:
                self.create_subscription(EpisodeInfo, cfg.topic_episodes_recorded, self._on_recorded, qos(EVENTS),
                                         callback_group=group)
                self.create_timer(cfg.scan_period_s, self._scan, callback_group=group)
            if cfg.send_checkpoints:
                self.create_subscription(PolicyCheckpoint, cfg.topic_policy_checkpoint, self._on_checkpoint,
                                         qos(LATCHED), callback_group=group)
            self.create_timer(cfg.offer_period_s, self._offer, callback_group=group)
            self._scan()
        # ---------------------------------------------------------------- receiving
        dirs = cfg.receive_dirs()
        self.inbox = Inbox(dirs, state / "partial", cfg.chunk_bytes) if dirs else None
        self._stop = threading.Event()
        self._queue: queue.Queue[Payload] = queue.Queue()
        self._queued: set[str] = set()
        self._conflicts: set[str] = set()  # offers refused because another version has the name here (logged once)
        self.foreign = 0
        if self.inbox is not None:
            self.pub_ack = self.create_publisher(TransferAck, f"{cfg.receive_prefix}/acks", qos(EVENTS))
            self.client = self.create_client(FetchChunk, f"{cfg.receive_prefix}/fetch", callback_group=group)
            self.create_subscription(TransferOffer, f"{cfg.receive_prefix}/offers", self._on_offer, qos(EVENTS),
                                     callback_group=group)
            self.pub_episode = (self.create_publisher(EpisodeInfo, cfg.announce_episodes_topic, qos(EVENTS))
                                if cfg.announce_episodes_topic else None)
            self.pub_ckpt = (self.create_publisher(PolicyCheckpoint, cfg.announce_checkpoint_topic, qos(LATCHED))
                             if cfg.announce_checkpoint_topic else None)
            self._worker = threading.Thread(target=self._fetch_loop, name="payload_fetch", daemon=True)
            self._worker.start()
        self.get_logger().info(f"payload link: sends on {cfg.send_prefix if self._sending else '-'}, receives "
                               f"{sorted(dirs) or '-'} from {cfg.receive_prefix if dirs else '-'}")

    # ------------------------------------------------------------------ sending
    def _add(self, path: Path, kind: str, announcement: str) -> None:
        with self._lock:
            if self.outbox.known(kind, path.name):
                return
            try:
                p = self.outbox.add(path, kind, announcement)
            except (TransferError, OSError) as exc:
                self.get_logger().error(f"cannot offer {kind} {path}: {exc}")
                return
        if not self.outbox.confirmed(p):
            self.get_logger().info(f"offering {kind} {p.name} ({p.total_bytes} bytes)")
            self._publish_offer(p)

    def _on_recorded(self, msg: EpisodeInfo) -> None:
        if msg.event != EpisodeInfo.EVENT_END or not msg.bag_uri or (self.cfg.run_id and msg.run_id != self.cfg.run_id):
            return
        bag = Path(msg.bag_uri)
        kind = "demo" if msg.source == EpisodeInfo.SOURCE_DEMO else "bag"
        if (self.cfg.send_demos_dir if kind == "demo" else self.cfg.send_bags_dir) and bag.is_dir() and bag_closed(bag):
            self._add(bag, kind, _fields(msg, EPISODE_FIELDS))

    def _scan(self) -> None:
        """Closed bags in the send directories that no announcement brought (sent before this node ran)."""
        for kind, root, source in (("bag", self.cfg.send_bags_dir, EpisodeInfo.SOURCE_REAL),
                                   ("demo", self.cfg.send_demos_dir, EpisodeInfo.SOURCE_DEMO)):
            if not root or not Path(root).is_dir():
                continue
            try:
                bags = find_bags(root)
            except BagError:
                continue
            for bag in bags:
                if bag_closed(bag) and not self.outbox.known(kind, bag.name):
                    self._add(bag, kind, json.dumps({"episode_id": bag.name, "source": source,
                                                     "run_id": self.cfg.run_id}))

    def _on_checkpoint(self, msg: PolicyCheckpoint) -> None:
        if msg.uri and Path(msg.uri).is_file():
            self._add(Path(msg.uri), "checkpoint", _fields(msg, CHECKPOINT_FIELDS))

    def _publish_offer(self, p: Payload) -> None:
        m = TransferOffer()
        m.header.stamp = self.get_clock().now().to_msg()
        m.run_id, m.kind, m.name, m.digest, m.is_dir = self.cfg.run_id, p.kind, p.name, p.digest, p.is_dir
        m.files = [f.path for f in p.files]
        m.sizes = [f.size for f in p.files]
        m.sha256 = [f.sha256 for f in p.files]
        m.announcement = p.announcement
        self.pub_offer.publish(m)

    def _offer(self) -> None:
        with self._lock:
            pending = self.outbox.pending()
        for p in pending:
            self._publish_offer(p)

    def _on_ack(self, msg: TransferAck) -> None:
        with self._lock:
            if self.outbox.confirm(msg.kind, msg.name, msg.digest):
                self.get_logger().info(f"{msg.kind} {msg.name} confirmed by the other part")

    def _serve(self, req: FetchChunk.Request, res: FetchChunk.Response) -> FetchChunk.Response:
        try:
            n = len(self.outbox.corrupted)
            res.data = array.array("B", self.outbox.read_chunk(req.kind, req.name, req.digest, req.file,
                                                               int(req.offset), int(req.length)))
            res.ok = True
            if len(self.outbox.corrupted) > n:
                self.get_logger().warning(f"fault injector: served {self.outbox.corrupted[-1]} with one byte flipped")
        except (TransferError, OSError) as exc:
            res.ok, res.message = False, str(exc)
        return res

    # ------------------------------------------------------------------ receiving
    def _on_offer(self, msg: TransferOffer) -> None:
        if self.cfg.run_id and msg.run_id != self.cfg.run_id:
            self.foreign += 1
            return
        if not self.inbox.accepts(msg.kind):
            return
        try:
            p = payload_from_fields(msg.kind, msg.name, msg.is_dir, list(msg.files), [int(s) for s in msg.sizes],
                                    list(msg.sha256), msg.announcement, msg.digest)
        except TransferError as exc:
            self.get_logger().error(f"refused offer: {exc}")
            return
        if self.inbox.holds(p):
            if p.digest in self._conflicts:
                return
            if self.inbox.holds_this_version(p):
                self._ack(p)  # the sender missed the earlier acknowledgement (or restarted): nothing to fetch
            else:
                self._conflict(p)
        elif p.digest not in self._queued:
            self._queued.add(p.digest)
            self._queue.put(p)

    def _conflict(self, p: Payload) -> None:
        """Another version of ``p`` has its name here: never overwritten, never acknowledged (logged once)."""
        self._conflicts.add(p.digest)
        self._queued.discard(p.digest)
        self.get_logger().error(f"refused {p.kind} {p.name} ({p.digest[:12]}): another version of it is already in "
                                f"{self.inbox.target(p)}; kept, not acknowledged (the sender keeps its copy); move "
                                "one of them aside to resolve")

    def _ack(self, p: Payload) -> None:
        m = TransferAck()
        m.header.stamp = self.get_clock().now().to_msg()
        m.run_id, m.kind, m.name, m.digest = self.cfg.run_id, p.kind, p.name, p.digest
        self.pub_ack.publish(m)

    def _fetch(self, p: Payload):
        def fetch(file: str, offset: int, length: int) -> bytes:
            req = FetchChunk.Request(kind=p.kind, name=p.name, digest=p.digest, file=file, offset=offset,
                                     length=length)
            done = threading.Event()
            fut = self.client.call_async(req)
            fut.add_done_callback(lambda _f: done.set())
            if not done.wait(self.cfg.fetch_timeout_s) or self._stop.is_set():
                self.client.remove_pending_request(fut)
                raise TransferInterrupted(f"no answer to {p.name} {file}@{offset} within {self.cfg.fetch_timeout_s} s")
            res = fut.result()
            if not res.ok:
                raise TransferInterrupted(f"the sender refused {p.name} {file}@{offset}: {res.message}")
            return bytes(res.data)
        return fetch

    def _fetch_loop(self) -> None:
        while not self._stop.is_set():
            try:
                p = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            t0 = time.monotonic()
            res = self.inbox.receive(p, self._fetch(p))
            if res.status in ("done", "held"):
                if res.status == "done":  # logged before the acknowledgement: a confirmed payload has its line
                    dt = time.monotonic() - t0
                    self.get_logger().info(f"received {p.kind} {p.name}: {res.received_bytes} bytes in {dt:.2f} s")
                self._ack(p)
                if res.status == "done":
                    self._announce(p, res.path)
                self._queued.discard(p.digest)
            elif res.status == "refused" and self.inbox.holds(p):  # another version in place: not fetched again
                self._conflict(p)
            else:  # interrupted or refused: wait, then fetch again (the sender keeps offering it)
                self.get_logger().warning(f"{p.kind} {p.name}: {res.status}: {res.detail}")
                self._stop.wait(self.cfg.retry_s)
                self._queue.put(p)

    def _announce(self, p: Payload, path: Path) -> None:
        info = json.loads(p.announcement) if p.announcement else {}
        if p.kind in ("bag", "demo") and self.pub_episode is not None:
            m = EpisodeInfo()
            for k, v in info.items():
                if k in EPISODE_FIELDS:
                    setattr(m, k, v)
            m.header.stamp = self.get_clock().now().to_msg()
            m.event, m.bag_uri = EpisodeInfo.EVENT_END, str(path)
            m.source = EpisodeInfo.SOURCE_DEMO if p.kind == "demo" else EpisodeInfo.SOURCE_REAL
            m.episode_id = m.episode_id or p.name
            self.pub_episode.publish(m)
        elif p.kind == "checkpoint" and self.pub_ckpt is not None:
            m = PolicyCheckpoint()
            for k, v in info.items():
                if k in CHECKPOINT_FIELDS:
                    setattr(m, k, v)
            m.header.stamp = self.get_clock().now().to_msg()
            m.uri = str(path)
            m.version = m.version or Path(p.name).stem
            self.pub_ckpt.publish(m)

    def request_stop(self) -> None:
        self._stop.set()

    def on_shutdown(self) -> None:
        self._stop.set()
        if self.inbox is not None:
            self._worker.join(timeout=self.cfg.fetch_timeout_s + 1.0)


def main(args: list[str] | None = None) -> None:
    run_node(PayloadLinkNode, args)


if __name__ == "__main__":
    main()
