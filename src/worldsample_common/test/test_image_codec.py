"""image_codec: round trips through real sensor_msgs/Image messages, padding, byte order, errors."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from worldsample_common.core.image_codec import (
    ENCODINGS,
    image_msg_to_rgb8,
    image_to_numpy,
    numpy_to_image_fields,
    to_rgb8,
)


def _random(encoding, rng, h=5, w=7):
    dtype, ch = ENCODINGS[encoding]
    shape = (h, w) if ch == 1 else (h, w, ch)
    if dtype.kind == "f":
        return rng.normal(size=shape).astype(dtype)
    return rng.integers(0, np.iinfo(dtype).max, size=shape, endpoint=True).astype(dtype)


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
def test_round_trip_through_rclpy_message(encoding):
    sensor_msgs = pytest.importorskip("sensor_msgs.msg")
    rng = np.random.default_rng(0)
    a = _random(encoding, rng)
    msg = sensor_msgs.Image(**numpy_to_image_fields(a, encoding))
    b = image_to_numpy(msg)
    assert b.dtype == a.dtype and b.shape == a.shape
    np.testing.assert_array_equal(a, b)
    rgb = image_msg_to_rgb8(msg)
    assert rgb.dtype == np.uint8 and rgb.shape == (5, 7, 3)


def test_color_conversions():
    rgb = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    np.testing.assert_array_equal(to_rgb8(rgb[..., ::-1], "bgr8"), rgb)
    rgba = np.concatenate([rgb, np.full((2, 3, 1), 255, np.uint8)], axis=2)
    np.testing.assert_array_equal(to_rgb8(rgba, "rgba8"), rgb)
    bgra = np.concatenate([rgb[..., ::-1], np.zeros((2, 3, 1), np.uint8)], axis=2)
    np.testing.assert_array_equal(to_rgb8(bgra, "bgra8"), rgb)
    m16 = np.array([[0, 256 * 200 + 7]], np.uint16)
    np.testing.assert_array_equal(to_rgb8(m16, "mono16")[0, :, 0], [0, 200])
    depth = np.array([[1.0, np.nan, 3.0]], np.float32)
    np.testing.assert_array_equal(to_rgb8(depth, "32FC1")[0, :, 1], [0, 0, 255])


def test_padding_and_big_endian():
    a = np.array([[1, 2, 3], [256, 513, 65535]], np.uint16)
    step = 3 * 2 + 4  # 4 padding bytes per row
    data = b"".join(row.astype(">u2").tobytes() + b"\xee" * 4 for row in a)
    msg = SimpleNamespace(height=2, width=3, encoding="16UC1", is_bigendian=1, step=step, data=data)
    np.testing.assert_array_equal(image_to_numpy(msg), a)
    # rosbags-style: data as a numpy uint8 array; little endian rgb8 with padding
    rgb = np.arange(2 * 2 * 3, dtype=np.uint8).reshape(2, 2, 3)
    raw = np.concatenate([rgb.reshape(2, 6), np.zeros((2, 2), np.uint8)], axis=1).ravel()
    msg = SimpleNamespace(height=2, width=2, encoding="rgb8", is_bigendian=0, step=8, data=raw)
    np.testing.assert_array_equal(image_to_numpy(msg), rgb)


def test_errors_name_encoding_and_size():
    msg = SimpleNamespace(height=2, width=2, encoding="yuv422", is_bigendian=0, step=4, data=b"\0" * 8)
    with pytest.raises(ValueError, match="yuv422"):
        image_to_numpy(msg)
    msg = SimpleNamespace(height=2, width=2, encoding="rgb8", is_bigendian=0, step=6, data=b"\0" * 11)
    with pytest.raises(ValueError, match="expected 12"):
        image_to_numpy(msg)
    msg = SimpleNamespace(height=2, width=2, encoding="rgb8", is_bigendian=0, step=5, data=b"\0" * 10)
    with pytest.raises(ValueError, match="step 5"):
        image_to_numpy(msg)
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        numpy_to_image_fields(np.zeros((4, 4), np.uint8), "rgb8")
    with pytest.raises(ValueError, match="uint16"):
        numpy_to_image_fields(np.zeros((4, 4), np.uint8), "mono16")
    with pytest.raises(ValueError, match="bayer"):
        to_rgb8(np.zeros((2, 2), np.uint8), "bayer_rggb8")
