"""Policy checkpoints by file type: one way for every package to load a policy file.

The actor (robot side) and the world model (synthetic branches) run policies that the learner
trains, and sit below the learner in the package layers, so they never import it. Like ROS
pluginlib, a loader is *named* here (``"module:function"``) and imported on first use; a package may
also register a loader object in-process (`register_checkpoint_loader`). A loader takes the path
(and keyword options such as ``device``) and returns an object with ``act(observation)`` and
``act_batch(images, proprio, noise_std=0.0, rng=None)``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

CheckpointLoader = Callable[..., Any]

# file suffix -> "module:function" (imported on first use) or a loader registered in-process
CHECKPOINT_LOADERS: dict[str, str | CheckpointLoader] = {
    ".pt": "worldsample_learner.core.policy:load_policy",  # the learner's self-describing checkpoints
}


def register_checkpoint_loader(suffix: str, loader: str | CheckpointLoader) -> None:
    """Load files ending in ``suffix`` (e.g. ``".onnx"``) with ``loader``."""
    if not suffix.startswith("."):
        raise ValueError(f"checkpoint suffix must start with '.', got {suffix!r}")
    CHECKPOINT_LOADERS[suffix] = loader


def _resolve(suffix: str, spec: str | CheckpointLoader) -> CheckpointLoader:
    if callable(spec):
        return spec
    module, _, name = spec.partition(":")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise RuntimeError(f"the loader of {suffix!r} policy checkpoints, {spec!r}, is not importable: {exc}") from exc


def load_checkpoint(path: str | Path, **options: Any) -> Any:
    """The policy in the checkpoint file ``path``, by its suffix (see `CHECKPOINT_LOADERS`)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"policy checkpoint {str(path)!r} does not exist")
    spec = CHECKPOINT_LOADERS.get(path.suffix)
    if spec is None:
        raise ValueError(f"policy checkpoint {str(path)!r}: no loader for {path.suffix or 'files without a suffix'!r} "
                         f"(known: {', '.join(sorted(CHECKPOINT_LOADERS))})")
    return _resolve(path.suffix, spec)(path, **options)
