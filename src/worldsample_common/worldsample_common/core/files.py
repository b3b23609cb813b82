"""Output files of every command: a run directory that can be written, and valid JSON.

`prepare_out_dir` turns an ``--out`` that is a file, lies under a file, or cannot be written
(read-only directory or file system, no permission) into one clear ValueError line instead of a
traceback. `json_dumps` writes strict JSON: NaN and +-inf (no value yet, e.g. a success rate
before the first episode) become ``null``; numpy scalars and arrays become numbers and lists,
paths strings; ``allow_nan=False`` guarantees the result parses everywhere.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any


def prepare_out_dir(path: str | Path, flag: str = "--out") -> Path:
    """Create ``path`` (and its parents) and check that a file can be written in it."""
    path = Path(path)
    try:
        if path.exists() and not path.is_dir():
            raise ValueError(f"{flag} {path}: is a file, not a directory")
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".worldsample-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ValueError(f"{flag} {path}: cannot write there ({exc.strerror or exc})") from None
    return path


def json_safe(obj: Any) -> Any:
    """``obj`` with non-finite floats as None, numpy values as Python ones, paths as strings."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | set):
        return [json_safe(v) for v in obj]
    if isinstance(obj, bool | int | str) or obj is None:
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Path):
        return str(obj)
    tolist = getattr(obj, "tolist", None)  # numpy scalars and arrays
    if callable(tolist):
        return json_safe(tolist())
    return str(obj)


def json_dumps(obj: Any, **kwargs: Any) -> str:
    """Strict JSON of ``obj`` (see `json_safe`); never a bare NaN/Infinity."""
    return json.dumps(json_safe(obj), allow_nan=False, **kwargs)


def append_csv(path: str | Path, header: list[str], rows: list[list[Any]]) -> None:
    """Append ``rows`` to the CSV file ``path``, writing ``header`` first when the file is new or empty
    (a restarted process goes on appending to the same file)."""
    import csv

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", newline="") as f:
        w = csv.writer(f)
        if f.tell() == 0:
            w.writerow(header)
        w.writerows(rows)
