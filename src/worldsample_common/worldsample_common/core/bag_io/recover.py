"""Recovering bags: a killed recorder's bag rebuilt from its write-ahead log, a truncated ``.mcap``
salvaged record by record (`recover_bag`)."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from .codec import BagError
from .metadata import MCAP_MAGIC, WAL_NAME, mcap_file, mcap_truncated, metadata_count, read_status_file
from .write import EpisodeBagWriter, read_wal


@dataclass
class RecoveryReport:
    bag_dir: Path
    recovered: bool
    messages: int
    detail: str
    truncated: bool = False  # the bag was cut short: what is there was salvaged, the rest is lost



def _decompress(data: bytes, compression: str, size: int) -> bytes | None:
    if compression == "":
        return data
    try:
        if compression == "lz4":
            import lz4.frame

            return lz4.frame.decompress(data)
        if compression == "zstd":
            try:
                from compression import zstd  # type: ignore[import-not-found]  # Python >= 3.14

                return zstd.decompress(data)
            except ImportError:
                import zstandard  # type: ignore[import-not-found]

                return zstandard.ZstdDecompressor().decompress(data, max_output_size=size)
    except Exception:  # noqa: BLE001 - an undecodable chunk ends the salvage
        return None
    return None



def salvage_mcap(path: Path) -> tuple[list[tuple[str, str, int, bytes]], str]:
    """(topic, msgtype, stamp_ns, cdr) of every complete message record of an MCAP file, in file
    order, and a note on where reading stopped. Reads records sequentially (no summary or index
    needed), so a file cut anywhere gives everything before the cut."""
    data = path.read_bytes()
    if not data.startswith(MCAP_MAGIC):
        return [], "no MCAP magic at the start"
    schemas: dict[int, str] = {}
    channels: dict[int, tuple[str, str]] = {}
    out: list[tuple[str, str, int, bytes]] = []
    note = "end of file"

    def strs(buf: bytes, pos: int, n: int) -> tuple[list[str], int]:
        vals = []
        for _ in range(n):
            (ln,) = struct.unpack_from("<I", buf, pos)
            vals.append(buf[pos + 4:pos + 4 + ln].decode())
            pos += 4 + ln
        return vals, pos

    def records(buf: bytes, pos: int, top: bool) -> bool:
        nonlocal note
        while pos + 9 <= len(buf):
            op = buf[pos]
            (size,) = struct.unpack_from("<Q", buf, pos + 1)
            body = buf[pos + 9:pos + 9 + size]
            if len(body) < size:
                note = f"record at byte {pos} cut short"
                if op == 0x06 and top and len(body) > 40:  # a cut chunk: uncompressed, its records still read
                    try:
                        (comp,), q = strs(body, 28, 1)
                    except (struct.error, UnicodeDecodeError):
                        return False
                    if comp == "":
                        records(body[q + 8:], 0, False)
                        note = f"file cut inside the chunk at byte {pos}"
                return False
            pos += 9 + size
            try:
                if op == 0x03:
                    (sid,) = struct.unpack_from("<H", body, 0)
                    (name,), _ = strs(body, 2, 1)
                    schemas[sid] = name
                elif op == 0x04:
                    cid, sid = struct.unpack_from("<HH", body, 0)
                    (topic,), _ = strs(body, 4, 1)
                    channels[cid] = (topic, schemas.get(sid, ""))
                elif op == 0x05:
                    cid, _seq, log_time, _pub = struct.unpack_from("<HIQQ", body, 0)
                    if cid in channels:
                        out.append((channels[cid][0], channels[cid][1], int(log_time), bytes(body[22:])))
                elif op == 0x06 and top:
                    _s, _e, usize, _crc = struct.unpack_from("<QQQI", body, 0)
                    (comp,), q = strs(body, 28, 1)
                    (csize,) = struct.unpack_from("<Q", body, q)
                    inner = _decompress(body[q + 8:q + 8 + csize], comp, usize)
                    if inner is None:
                        note = f"chunk at byte {pos - 9 - size} uses compression {comp!r} that cannot be read here"
                        return False
                    if not records(inner, 0, False):
                        return False
                elif op == 0x02 and top:  # footer
                    return True
            except (struct.error, UnicodeDecodeError):
                note = f"damaged record at byte {pos - 9 - size}"
                return False
        if pos != len(buf) and top:
            note = f"file cut inside a record header at byte {pos}"
        return True

    records(data, len(MCAP_MAGIC), True)
    return out, note



def _rebuild(bag_dir: Path, records: list[tuple[str, str, int, bytes]], status: str) -> None:
    """Move the damaged bag aside (``<bag>.incomplete``) and write a fresh one from ``records``."""
    kept = bag_dir.with_name(bag_dir.name + ".incomplete")
    if kept.exists():
        raise BagError(f"{kept}: left over from an earlier recovery; inspect and remove it")
    bag_dir.rename(kept)  # the partial files stay there, untouched
    try:
        with EpisodeBagWriter(bag_dir, durable=False) as writer:
            for topic, msgtype, ns, data in records:
                writer.write(topic, msgtype, data, ns)
            writer.set_custom_data("worldsample.status", status)
            writer.set_custom_data("worldsample.messages", str(len(records)))
    except Exception:
        if bag_dir.exists():
            for f in bag_dir.iterdir():
                f.unlink()
            bag_dir.rmdir()
        kept.rename(bag_dir)
        raise



def recover_bag(bag_dir: Path | str) -> RecoveryReport:
    """Make a bag left by a killed recorder, or cut short, readable again, as far as it goes.

    A bag with metadata.yaml, a whole ``.mcap`` and no write-ahead log is complete and left as
    it is. A bag with a write-ahead log is rebuilt from the log up to its last complete message;
    a bag whose ``.mcap`` is truncated (no log) from the complete records of that file. The partial
    files are kept in ``<bag>.incomplete/``; the new bag's metadata says ``recovered: ...``.
    """
    bag_dir = Path(bag_dir)
    wal = bag_dir / WAL_NAME
    if not wal.exists():
        if not (bag_dir / "metadata.yaml").exists():
            raise BagError(f"{bag_dir}: no metadata.yaml and no {WAL_NAME}; nothing to recover from")
        mcap = mcap_file(bag_dir)
        if mcap is None or not mcap_truncated(mcap):
            return RecoveryReport(bag_dir, False, 0, "complete bag, nothing to recover")
        records, note = salvage_mcap(mcap)
        expected = metadata_count(bag_dir)
        detail = (f"TRUNCATED .mcap: salvaged {len(records)} message(s)"
                  f"{f' of {expected}' if expected else ''} ({note}); the rest is lost")
        _rebuild(bag_dir, records, f"recovered: {detail}")
        return RecoveryReport(bag_dir, True, len(records), detail, truncated=True)
    records = list(read_wal(wal))
    reason = read_status_file(bag_dir) or "recorder killed"
    detail = f"recovered {len(records)} messages from the write-ahead log ({reason})"
    _rebuild(bag_dir, records, f"recovered: {detail}")
    kept = bag_dir.with_name(bag_dir.name + ".incomplete")
    (kept / WAL_NAME).rename(kept / (WAL_NAME + ".recovered"))
    return RecoveryReport(bag_dir, True, len(records), detail)

