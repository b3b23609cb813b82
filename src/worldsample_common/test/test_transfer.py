"""Payload transfer core (issue 24): chunking, size + SHA-256 check, resume after a drop, corrupt refused."""

from __future__ import annotations

import numpy as np
import pytest
from worldsample_common.core import bag_io
from worldsample_common.core.transfer import (
    Inbox,
    Outbox,
    TransferError,
    TransferInterrupted,
    describe,
    payload_from_fields,
)
from worldsample_common.testing import random_episode


@pytest.fixture
def bag(tmp_path):
    ep = random_episode("ep-7", steps=12, size=32)
    return bag_io.write_episode_bag(ep, tmp_path / "robot" / "bags" / "ep-7"), ep


def _sender(tmp_path, bag_dir):
    out = Outbox(tmp_path / "robot" / "transfer" / "outbox.json")
    return out, out.add(bag_dir, "bag", announcement='{"episode_id": "ep-7"}')


def _inbox(tmp_path, chunk=1000):
    return Inbox({"bag": tmp_path / "learn" / "bags", "checkpoint": tmp_path / "learn" / "ckpt"},
                 tmp_path / "learn" / "transfer" / "partial", chunk_bytes=chunk)


def _fetcher(out, p, calls=None):
    def fetch(file, offset, length):
        if calls is not None:
            calls.append((file, offset, length))
        return out.read_chunk(p.kind, p.name, p.digest, file, offset, length)
    return fetch


def test_bag_arrives_in_chunks_identical_and_readable(tmp_path, bag):
    bag_dir, ep = bag
    out, p = _sender(tmp_path, bag_dir)
    inbox = _inbox(tmp_path, chunk=1000)
    calls = []
    res = inbox.receive(p, _fetcher(out, p, calls))
    assert res.status == "done" and res.path == tmp_path / "learn" / "bags" / "ep-7"
    assert res.received_bytes == p.total_bytes > 3000
    assert all(length <= 1000 for _, _, length in calls) and len(calls) >= p.total_bytes // 1000
    for f in p.files:  # byte-identical copies
        assert (res.path / f.path).read_bytes() == (bag_dir / f.path).read_bytes()
    got = bag_io.read_episode_bag(res.path)
    np.testing.assert_array_equal(got.actions, ep.actions)
    assert not any((tmp_path / "learn" / "transfer" / "partial" / "bag").iterdir())  # staging emptied
    # a second offer of the same payload is already held, fetches nothing
    assert inbox.receive(p, _fetcher(out, p, calls)).status == "held"


def test_resume_after_drop_fetches_only_the_rest(tmp_path, bag):
    bag_dir, _ = bag
    out, p = _sender(tmp_path, bag_dir)
    fetched = []
    budget = {"n": 3}

    def flaky(file, offset, length):
        if budget["n"] == 0:
            raise TransferInterrupted("link down")
        budget["n"] -= 1
        fetched.append(length)
        return out.read_chunk(p.kind, p.name, p.digest, file, offset, length)

    inbox = _inbox(tmp_path, chunk=700)
    res = inbox.receive(p, flaky)
    assert res.status == "interrupted" and res.received_bytes == sum(fetched) == 2100
    assert not (tmp_path / "learn" / "bags" / "ep-7").exists()  # nothing half-visible to a rescan
    # a new Inbox (a restarted receiver) resumes from the part files
    inbox2 = _inbox(tmp_path, chunk=700)
    offsets = []
    res2 = inbox2.receive(p, _fetcher(out, p, offsets))
    assert res2.status == "done"
    assert res.received_bytes + res2.received_bytes == p.total_bytes  # no byte fetched twice
    assert offsets[0][1] == 2100 or offsets[0][1] == 2100 - p.files[0].size  # resumed where it stopped


def test_corrupted_in_transit_is_refused_then_resent(tmp_path, bag):
    bag_dir, ep = bag
    out, p = _sender(tmp_path, bag_dir)
    inbox = _inbox(tmp_path, chunk=4096)
    state = {"corrupt": True}

    def corrupting(file, offset, length):
        data = bytearray(out.read_chunk(p.kind, p.name, p.digest, file, offset, length))
        if state["corrupt"] and file.endswith(".mcap") and offset == 0:
            data[len(data) // 2] ^= 0xFF  # one flipped byte
            state["corrupt"] = False
        return bytes(data)

    first = inbox.receive(p, corrupting)
    assert first.status == "refused" and ".mcap" in first.detail and inbox.stats.refused == 1
    assert not (tmp_path / "learn" / "bags" / "ep-7").exists()
    second = inbox.receive(p, corrupting)
    assert second.status == "done"
    np.testing.assert_array_equal(bag_io.read_episode_bag(second.path).actions, ep.actions)


def test_checkpoint_file_and_confirmation_ledger(tmp_path):
    ck = tmp_path / "learn" / "learner" / "checkpoints" / "policy-000003.pt"
    ck.parent.mkdir(parents=True)
    ck.write_bytes(bytes(range(256)) * 40)
    out = Outbox(tmp_path / "learn" / "transfer" / "outbox.json")
    p = out.add(ck, "checkpoint")
    assert [q.name for q in out.pending()] == ["policy-000003.pt"]
    inbox = Inbox({"checkpoint": tmp_path / "robot" / "policies"}, tmp_path / "robot" / "partial", chunk_bytes=999)
    res = inbox.receive(p, _fetcher(out, p))
    assert res.status == "done" and res.path.read_bytes() == ck.read_bytes()
    assert not out.confirm("checkpoint", p.name, "0" * 64)  # another version confirms nothing
    assert out.confirm("checkpoint", p.name, p.digest) and out.pending() == []
    assert ck.exists()  # the sender keeps its files
    # a restarted sender reads its ledger: confirmed payloads are not offered again
    again = Outbox(tmp_path / "learn" / "transfer" / "outbox.json")
    again.add(ck, "checkpoint")
    assert again.pending() == []


def test_only_the_newest_unconfirmed_checkpoint_is_offered_and_every_bag(tmp_path, bag):
    """A receiver away for a while (robot PC restarted, link down) is offered the newest policy, not every
    checkpoint the learner made meanwhile; unconfirmed bags are all offered."""
    bag_dir, _ = bag
    ckdir = tmp_path / "learn" / "learner" / "checkpoints"
    ckdir.mkdir(parents=True)
    out = Outbox(tmp_path / "learn" / "transfer" / "outbox.json")
    out.add(bag_dir, "bag")
    for v in (1, 2, 3):
        (ckdir / f"policy-00000{v}.pt").write_bytes(bytes([v]) * 100)
        out.add(ckdir / f"policy-00000{v}.pt", "checkpoint")
        assert [p.name for p in out.pending()] == ["ep-7", f"policy-00000{v}.pt"]
    p3 = out.pending()[-1]
    assert out.confirm("checkpoint", p3.name, p3.digest)
    assert [p.name for p in out.pending()] == ["ep-7"]  # the older two are superseded, not offered again


def test_offer_fields_round_trip_and_bad_input(tmp_path, bag):
    bag_dir, _ = bag
    p = describe(bag_dir, "bag", "{}")
    q = payload_from_fields(p.kind, p.name, p.is_dir, [f.path for f in p.files], [f.size for f in p.files],
                            [f.sha256 for f in p.files], p.announcement, p.digest)
    assert q == p
    with pytest.raises(TransferError, match="digest"):
        payload_from_fields(p.kind, p.name, p.is_dir, [f.path for f in p.files], [f.size + 1 for f in p.files],
                            [f.sha256 for f in p.files], "", p.digest)
    with pytest.raises(TransferError, match="relative path"):
        payload_from_fields("bag", "x", True, ["../../etc/passwd"], [1], ["0"])
    with pytest.raises(TransferError, match="kind"):
        describe(bag_dir, "video")
    with pytest.raises(TransferError, match="no such file"):
        describe(tmp_path / "missing", "bag")
    out = Outbox(tmp_path / "o.json")
    with pytest.raises(TransferError, match="not offered"):
        out.read_chunk("bag", "ep-9", "", "x", 0, 10)
    out.add(bag_dir, "bag")
    with pytest.raises(TransferError, match="outside"):
        out.read_chunk("bag", "ep-7", "", p.files[0].path, p.files[0].size + 5, 10)
    with pytest.raises(TransferError, match="version"):
        out.read_chunk("bag", "ep-7", "f" * 64, p.files[0].path, 0, 10)


def test_fault_injector_corrupts_one_chunk_once_and_the_receiver_refuses_then_refetches(tmp_path, bag):
    """`Outbox(corrupt_once=...)` (the WORLDSAMPLE_TRANSFER_CORRUPT_ONCE test hook) flips one byte of the first
    chunk it serves of that kind; the inbox's hash check refuses the file, the next call fetches it clean."""
    bag_dir, _ = bag
    out = Outbox(tmp_path / "robot" / "transfer" / "outbox.json", corrupt_once="bag")
    p = out.add(bag_dir, "bag")
    first = p.files[0]
    clean = (bag_dir / first.path).read_bytes()[:10]
    served = out.read_chunk(p.kind, p.name, p.digest, first.path, 0, 10)
    assert served != clean and served[1:] == clean[1:] and len(out.corrupted) == 1
    assert out.read_chunk(p.kind, p.name, p.digest, first.path, 0, 10) == clean  # once only
    out2 = Outbox(tmp_path / "robot" / "transfer" / "outbox2.json", corrupt_once="any")
    p2 = out2.add(bag_dir, "bag")
    inbox = _inbox(tmp_path, chunk=1000)
    res = inbox.receive(p2, _fetcher(out2, p2))
    assert res.status == "refused" and "SHA-256" in res.detail and inbox.stats.refused == 1
    res = inbox.receive(p2, _fetcher(out2, p2))
    assert res.status == "done"
    for f in p2.files:
        assert (res.path / f.path).read_bytes() == (bag_dir / f.path).read_bytes()
    with pytest.raises(TransferError, match="WORLDSAMPLE_TRANSFER_CORRUPT_ONCE"):
        Outbox(tmp_path / "x.json", corrupt_once="bags")
    quiet = Outbox(tmp_path / "y.json", corrupt_once="checkpoint")  # armed for another kind: bags pass clean
    q = quiet.add(bag_dir, "bag")
    assert quiet.read_chunk(q.kind, q.name, q.digest, first.path, 0, 10) == clean and not quiet.corrupted


def test_a_duplicate_offer_is_held_and_another_version_under_the_same_name_is_refused(tmp_path, bag):
    """After a restart of either end a payload already in place is offered again: the same version is 'held'
    (acknowledged, nothing fetched); a different version under that name is refused and never overwrites it."""
    bag_dir, _ = bag
    out, p = _sender(tmp_path, bag_dir)
    inbox = _inbox(tmp_path)
    assert inbox.receive(p, _fetcher(out, p)).status == "done"
    fresh = _inbox(tmp_path)  # a restarted receiver: nothing cached
    calls = []
    assert fresh.holds_this_version(p) and fresh.receive(p, _fetcher(out, p, calls)).status == "held" and not calls
    other_dir = tmp_path / "robot2" / "ep-7"  # same name, other content
    bag_io.write_episode_bag(random_episode("ep-7", steps=9, size=32, seed=3), other_dir)
    out2 = Outbox(tmp_path / "robot2" / "outbox.json")
    q = out2.add(other_dir, "bag")
    assert q.digest != p.digest and fresh.holds(q) and not fresh.holds_this_version(q)
    res = fresh.receive(q, _fetcher(out2, q, calls))
    assert res.status == "refused" and "another version" in res.detail and not calls
    placed = tmp_path / "learn" / "bags" / "ep-7"
    assert all((placed / f.path).read_bytes() == (bag_dir / f.path).read_bytes() for f in p.files)
