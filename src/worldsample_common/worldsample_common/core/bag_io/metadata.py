"""What a bag directory is: its metadata.yaml, the recorder's status file, a truncated ``.mcap``,
whether the recorder has finished it, and where the bags under a directory are."""

from __future__ import annotations

from pathlib import Path

from .codec import BagError

WAL_NAME = "recording.wal"
STATUS_NAME = "recording.status"
STATUS_SIZE = 512  # allocated when a bag opens, rewritten in place (works on a full disk)
MCAP_MAGIC = b"\x89MCAP0\r\n"


def mcap_file(bag_dir: Path) -> Path | None:
    files = sorted(Path(bag_dir).glob("*.mcap"))
    return files[0] if files else None



def mcap_truncated(path: Path) -> bool:
    """Whether an MCAP file starts like one but lacks its closing magic (cut short: copied half-way,
    disk full at close). An empty or foreign file is not "truncated" (the reader names it)."""
    size = path.stat().st_size
    with path.open("rb") as f:
        if f.read(len(MCAP_MAGIC)) != MCAP_MAGIC:
            return False
        if size < 2 * len(MCAP_MAGIC):
            return True
        f.seek(size - len(MCAP_MAGIC))
        return f.read() != MCAP_MAGIC



def read_metadata(bag_dir: Path) -> dict:
    import yaml

    try:
        data = yaml.safe_load((Path(bag_dir) / "metadata.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        return {}
    info = data.get("rosbag2_bagfile_information") if isinstance(data, dict) else None
    return info if isinstance(info, dict) else {}



def metadata_count(bag_dir: Path) -> int:
    try:
        return int(read_metadata(bag_dir).get("message_count") or 0)
    except (TypeError, ValueError):
        return 0



def read_status_file(bag_dir: Path | str) -> str:
    """What an open (or abandoned) bag's ``recording.status`` says ("" when there is none)."""
    try:
        text = (Path(bag_dir) / STATUS_NAME).read_text(errors="replace").strip()
    except OSError:
        return ""
    if text.startswith("stopped: "):
        return text[len("stopped: "):]
    return "recorder killed" if text == "recording" else text



def bag_status(bag_dir: Path | str) -> str:
    """What a bag is, in a few words: ``complete``, ``cut: <reason>``, ``recovered: ...``,
    ``TRUNCATED ...``, ``NOT RECOVERED (<why>) ...``, or ``closed`` for a bag without WorldSample status."""
    bag_dir = Path(bag_dir)
    if (bag_dir / WAL_NAME).exists():
        why = read_status_file(bag_dir) or "recorder killed"
        return f"NOT RECOVERED ({why}); run `worldsample bags recover {bag_dir}`"
    if not (bag_dir / "metadata.yaml").exists():
        return "not a bag (no metadata.yaml)"
    mcap = mcap_file(bag_dir)
    if mcap is not None and mcap_truncated(mcap):
        return f"TRUNCATED .mcap ({mcap.name}); run `worldsample bags recover {bag_dir}` to salvage it"
    custom = read_metadata(bag_dir).get("custom_data") or {}
    return str(custom.get("worldsample.status", "closed")) if isinstance(custom, dict) else "closed"



def bag_closed(bag_dir: Path) -> bool:
    """Whether the recorder has finished a bag: metadata written and no write-ahead log left."""
    return (bag_dir / "metadata.yaml").exists() and not (bag_dir / WAL_NAME).exists()



def find_bags(directory: Path | str) -> list[Path]:
    """Bag directories under `directory` (itself included): those with metadata.yaml or a write-ahead log,
    except the damaged originals a recovery kept (``*.incomplete``)."""
    directory = Path(directory)
    if not directory.exists():
        raise BagError(f"{directory}: no such directory")
    found = {p.parent for p in directory.rglob("metadata.yaml")} | {p.parent for p in directory.rglob(WAL_NAME)}
    # ``<bag>.incomplete``: the damaged originals `recover_bag` keeps beside the rebuilt bag
    return sorted(b for b in found if not any(part.endswith(".incomplete") for part in b.relative_to(directory).parts))

