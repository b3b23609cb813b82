"""Versioned, crash-safe store of world-model versions in a run directory.

Layout::

    RUN/versions/wm-000001/model.pt        the model (WorldModel.to_checkpoint)
    RUN/versions/wm-000001/manifest.json   what it was trained on, steps, metrics, fidelity
    RUN/train_state.pt                     periodic training checkpoint (resume after a crash)
    RUN/logs/                              metrics CSVs and loss plots

A version is written into ``RUN/versions/.tmp-*`` (files fsync'ed), then renamed to its final
name in one ``rename``: a reader sees either no version or a complete one. Existing versions
are never overwritten; a crash mid-save leaves only a ``.tmp-*`` directory, which is ignored
(and removed by `WorldModelStore.cleanup`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

from worldsample_common.core.files import json_dumps

VERSION_RE = re.compile(r"^wm-(\d{6})$")
MODEL_FILE = "model.pt"
MANIFEST_FILE = "manifest.json"
FIDELITY_FILE = "fidelity.json"  # a version saved while stopping gets its fidelity here at the next start


def version_name(n: int) -> str:
    return f"wm-{n:06d}"


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class WorldModelStore:
    def __init__(self, run_dir: Path | str) -> None:
        self.run_dir = Path(run_dir)
        self.versions_dir = self.run_dir / "versions"
        if self.run_dir.exists() and not self.run_dir.is_dir():
            raise ValueError(f"world-model run directory {self.run_dir} exists and is not a directory")

    # ------------------------------------------------------------------ queries
    def versions(self) -> list[str]:
        """Complete versions, oldest first (a directory counts only with both files)."""
        if not self.versions_dir.is_dir():
            return []
        names = [p.name for p in self.versions_dir.iterdir()
                 if VERSION_RE.match(p.name) and (p / MODEL_FILE).is_file() and (p / MANIFEST_FILE).is_file()]
        return sorted(names)

    def latest(self) -> str | None:
        v = self.versions()
        return v[-1] if v else None

    def path(self, version: str) -> Path:
        if not VERSION_RE.match(version or ""):
            raise ValueError(f"world-model version {version!r} is not of the form wm-NNNNNN")
        return self.versions_dir / version

    def manifest(self, version: str) -> dict[str, Any]:
        p = self.path(version) / MANIFEST_FILE
        if not p.is_file():
            raise FileNotFoundError(f"world-model version {version} not found in {self.versions_dir} "
                                    f"(have {self.versions() or 'none'})")
        man = json.loads(p.read_text())
        late = self.path(version) / FIDELITY_FILE
        if man.get("fidelity") is None and late.is_file():  # evaluated after the version was saved
            man["fidelity"] = json.loads(late.read_text())
            man["fidelity_pending"] = False
        return man

    def save_fidelity(self, version: str, fidelity: dict[str, Any]) -> None:
        """Record the fidelity of a version saved without it (``fidelity_pending``), beside its manifest.

        The version's own files are never rewritten: this adds ``fidelity.json`` (written to a temporary
        file, fsynced, renamed) that `manifest` merges in."""
        d = self.path(version)
        tmp = d / f".{FIDELITY_FILE}.tmp-{os.getpid()}"
        with open(tmp, "w") as f:
            f.write(json_dumps(fidelity, indent=2))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, d / FIDELITY_FILE)

    def load(self, version: str | None = None, device: str | None = None):
        """The model of ``version`` (default: latest); FileNotFoundError naming the run if absent."""
        from .model import WorldModel

        version = version or self.latest()
        if version is None:
            raise FileNotFoundError(f"{self.run_dir}: no world-model version yet (expected {self.versions_dir}/wm-NNNNNN)")
        p = self.path(version) / MODEL_FILE
        if not p.is_file() or version not in self.versions():
            raise FileNotFoundError(f"world-model version {version} not found in {self.versions_dir} "
                                    f"(have {self.versions() or 'none'})")
        model = WorldModel.load(p, device=device)
        model.version = version
        return model

    # ------------------------------------------------------------------ writing
    def save_version(self, model, manifest: dict[str, Any], _fail_after_model: bool = False) -> str:
        """Write ``model`` + ``manifest`` as the next version atomically; returns its name.

        ``_fail_after_model`` raises after the model file is written (crash simulation for tests).
        """
        self.versions_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.versions_dir / f".tmp-{uuid.uuid4().hex}"
        tmp.mkdir()
        try:
            for attempt in range(100):
                existing = [int(m.group(1)) for p in self.versions_dir.iterdir() if (m := VERSION_RE.match(p.name))]
                name = version_name(max(existing, default=0) + 1)
                old_version = model.version
                model.version = name
                try:
                    model.save(tmp / MODEL_FILE)
                finally:
                    model.version = old_version
                with open(tmp / MODEL_FILE, "rb") as f:
                    os.fsync(f.fileno())
                if _fail_after_model:
                    raise RuntimeError("simulated crash while saving a world-model version")
                full = {**manifest, "version": name, "created_unix": time.time(), "model_file": MODEL_FILE}
                with open(tmp / MANIFEST_FILE, "w") as f:
                    f.write(json_dumps(full, indent=2))  # strict JSON: a NaN metric is written as null
                    f.flush()
                    os.fsync(f.fileno())
                _fsync_dir(tmp)
                final = self.versions_dir / name
                if final.exists():  # another writer took this number meanwhile: try the next one
                    continue
                try:
                    os.rename(tmp, final)  # atomic; fails if a non-empty `final` appeared meanwhile
                except OSError:
                    if attempt == 99:
                        raise
                    continue
                _fsync_dir(self.versions_dir)
                model.version = name
                return name
            raise RuntimeError(f"{self.versions_dir}: could not allocate a new version name")
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)

    def cleanup(self) -> list[Path]:
        """Remove leftover ``.tmp-*`` directories of crashed saves; returns what was removed."""
        removed = []
        if self.versions_dir.is_dir():
            for p in self.versions_dir.glob(".tmp-*"):
                shutil.rmtree(p, ignore_errors=True)
                removed.append(p)
        return removed
