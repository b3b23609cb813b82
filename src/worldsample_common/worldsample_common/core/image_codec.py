"""sensor_msgs/Image <-> numpy without cv_bridge.

Works on duck-typed message objects: anything with ``height``, ``width``, ``encoding``,
``is_bigendian`` (optional), ``step`` and ``data`` (rclpy messages, rosbags dataclasses,
plain namespaces). Supported encodings: rgb8, bgr8, rgba8, bgra8, mono8, mono16, 16UC1,
32FC1 (plus 8UC1/8UC3 aliases). Rows may be padded (``step`` > width * pixel size);
multi-byte data honours ``is_bigendian``.

API:
- ``image_to_numpy(msg) -> np.ndarray``: (H, W) or (H, W, C) array in native byte order;
- ``numpy_to_image_fields(array, encoding) -> dict`` with height, width, encoding,
  is_bigendian, step, data (bytes) - assign them to a message;
- ``to_rgb8(array, encoding) -> np.ndarray``: (H, W, 3) uint8 RGB for the policy.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

# encoding -> (numpy dtype, channels)
ENCODINGS: dict[str, tuple[np.dtype, int]] = {
    "rgb8": (np.dtype(np.uint8), 3),
    "bgr8": (np.dtype(np.uint8), 3),
    "rgba8": (np.dtype(np.uint8), 4),
    "bgra8": (np.dtype(np.uint8), 4),
    "mono8": (np.dtype(np.uint8), 1),
    "8UC1": (np.dtype(np.uint8), 1),
    "8UC3": (np.dtype(np.uint8), 3),
    "mono16": (np.dtype(np.uint16), 1),
    "16UC1": (np.dtype(np.uint16), 1),
    "32FC1": (np.dtype(np.float32), 1),
}


def _spec(encoding: str) -> tuple[np.dtype, int]:
    try:
        return ENCODINGS[encoding]
    except KeyError:
        raise ValueError(
            f"unsupported image encoding {encoding!r}; supported: {', '.join(sorted(ENCODINGS))}"
        ) from None


def _as_bytes(data: Any) -> memoryview | bytes:
    if isinstance(data, np.ndarray):
        return data.astype(np.uint8, copy=False).tobytes() if data.dtype != np.uint8 else data.tobytes()
    if isinstance(data, (bytes, bytearray, memoryview)):
        return data
    # rclpy exposes uint8[] as array.array('B') or a list
    try:
        return memoryview(data).cast("B")
    except TypeError:
        return bytes(data)


def image_to_numpy(msg: Any) -> np.ndarray:
    """Decode an Image-like message into a (H, W) or (H, W, C) array (a copy, native byte order)."""
    encoding = str(msg.encoding)
    dtype, channels = _spec(encoding)
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    row_bytes = w * channels * dtype.itemsize
    if h < 0 or w < 0:
        raise ValueError(f"image ({encoding}) has negative size {h}x{w}")
    if step < row_bytes:
        raise ValueError(
            f"image ({encoding}, {w}x{h}): step {step} is smaller than width*pixel size = {row_bytes} bytes"
        )
    buf = np.frombuffer(_as_bytes(msg.data), dtype=np.uint8)
    expected = step * h
    if buf.size != expected:
        raise ValueError(
            f"image ({encoding}, {w}x{h}, step {step}): data has {buf.size} bytes, expected {expected}"
        )
    if h == 0 or w == 0:
        shape = (h, w) if channels == 1 else (h, w, channels)
        return np.zeros(shape, dtype)
    rows = buf.reshape(h, step)[:, :row_bytes]
    big = bool(getattr(msg, "is_bigendian", False))
    dt = dtype.newbyteorder(">" if big else "<") if dtype.itemsize > 1 else dtype
    arr = np.ascontiguousarray(rows).view(dt).reshape(h, w, channels)
    if dtype.itemsize > 1:
        arr = arr.astype(dtype.newbyteorder("="), copy=False)
    arr = np.array(arr, copy=True)
    return arr[..., 0] if channels == 1 else arr


def numpy_to_image_fields(array: np.ndarray, encoding: str) -> dict[str, Any]:
    """Fields of a sensor_msgs/Image for ``array`` in ``encoding`` (no row padding)."""
    dtype, channels = _spec(encoding)
    a = np.asarray(array)
    if channels == 1 and a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    expected = "(H, W)" if channels == 1 else f"(H, W, {channels})"
    if (channels == 1 and a.ndim != 2) or (channels > 1 and (a.ndim != 3 or a.shape[2] != channels)):
        raise ValueError(f"encoding {encoding!r} needs an array of shape {expected}, got {a.shape}")
    if a.dtype != dtype:
        if dtype.kind == "f" and a.dtype.kind == "f":
            a = a.astype(dtype)
        else:
            raise ValueError(f"encoding {encoding!r} needs dtype {dtype}, got {a.dtype}")
    a = np.ascontiguousarray(a)
    h, w = a.shape[:2]
    return {
        "height": int(h),
        "width": int(w),
        "encoding": encoding,
        "is_bigendian": int(sys.byteorder == "big" and dtype.itemsize > 1),
        "step": int(w * channels * dtype.itemsize),
        "data": a.tobytes(),
    }


def to_rgb8(array: np.ndarray, encoding: str) -> np.ndarray:
    """Convert a decoded image to (H, W, 3) uint8 RGB (depth/mono scaled to 0..255 greyscale)."""
    dtype, channels = _spec(encoding)
    a = np.asarray(array)
    if channels == 1 and a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if (channels == 1 and a.ndim != 2) or (channels > 1 and (a.ndim != 3 or a.shape[2] != channels)):
        raise ValueError(f"to_rgb8: array of shape {a.shape} does not match encoding {encoding!r}")
    if encoding in ("rgb8", "8UC3"):
        return np.ascontiguousarray(a, dtype=np.uint8)
    if encoding == "bgr8":
        return np.ascontiguousarray(a[..., ::-1], dtype=np.uint8)
    if encoding == "rgba8":
        return np.ascontiguousarray(a[..., :3], dtype=np.uint8)
    if encoding == "bgra8":
        return np.ascontiguousarray(a[..., 2::-1], dtype=np.uint8)
    if encoding in ("mono8", "8UC1"):
        g = a.astype(np.uint8)
    elif encoding in ("mono16", "16UC1"):
        g = (a.astype(np.uint32) >> 8).astype(np.uint8)
    else:  # 32FC1: depth in metres or any float; scale finite values to the frame's range
        f = a.astype(np.float64)
        finite = np.isfinite(f)
        g = np.zeros(f.shape, np.uint8)
        if finite.any():
            lo, hi = float(f[finite].min()), float(f[finite].max())
            scale = 255.0 / (hi - lo) if hi > lo else 0.0
            g[finite] = np.clip((f[finite] - lo) * scale, 0, 255).astype(np.uint8)
    return np.repeat(g[..., None], 3, axis=2)


def image_msg_to_rgb8(msg: Any) -> np.ndarray:
    """Decode an Image-like message straight to (H, W, 3) uint8 RGB."""
    return to_rgb8(image_to_numpy(msg), str(msg.encoding))
