"""OpenCV camera capture: device index, video file path or stream URL, with crop/resize and reconnect.

`Camera.read()` returns a `Frame` (RGB uint8, capture time) or ``None`` while the source is
down. A failed read (USB dropout, stream hiccup, a video file reaching its end) releases the
capture and re-opens it after ``reconnect_delay_s``, logging one line per attempt; after
``max_reconnect_attempts`` consecutive failures (0: forever) `read()` raises `CameraError`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


class CameraError(RuntimeError):
    pass


@dataclass
class CameraConfig:
    name: str = "front"
    source: str = "0"  # device index ("0"), /dev/videoN, a file path or a URL (rtsp://, http://)
    width: int = 64  # output size after crop + resize; 0 keeps the captured size
    height: int = 64
    crop: tuple[int, int, int, int] | None = None  # (x, y, w, h) in captured pixels, before resizing
    center_crop_to_aspect: bool = True  # without `crop`: crop the centre to the output aspect ratio
    fps: float = 30.0  # requested from the device (files and streams ignore it)
    reconnect_delay_s: float = 0.5
    max_reconnect_attempts: int = 0  # consecutive failed re-opens before giving up; 0 = never give up
    frame_id: str = ""  # ROS frame id of the images ("" -> "<name>_optical_frame")

    def validate(self) -> None:
        if self.width < 0 or self.height < 0 or (self.width == 0) != (self.height == 0):
            raise ValueError(f"CameraConfig {self.name!r}: width/height must both be > 0 or both 0, "
                             f"got {self.width}x{self.height}")
        if self.crop is not None and (len(self.crop) != 4 or min(self.crop[2:]) <= 0):
            raise ValueError(f"CameraConfig {self.name!r}: crop must be (x, y, w, h) with w, h > 0, got {self.crop}")
        if self.reconnect_delay_s < 0:
            raise ValueError(f"CameraConfig {self.name!r}: reconnect_delay_s must be >= 0")


@dataclass
class Frame:
    image: np.ndarray  # (H, W, 3) uint8 RGB
    stamp_ns: int  # capture time (wall clock) [ns]
    index: int  # frames delivered so far by this Camera (0-based)


def _parse_source(source: str) -> int | str:
    s = str(source).strip()
    return int(s) if s.isdigit() else s


def process_frame(bgr: np.ndarray, config: CameraConfig) -> np.ndarray:
    """Crop + resize a captured BGR (or grey) frame and return RGB uint8."""
    import cv2

    img = bgr
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    elif img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    h, w = img.shape[:2]
    if config.crop is not None:
        x, y, cw, ch = (int(v) for v in config.crop)
        if x < 0 or y < 0 or x + cw > w or y + ch > h:
            raise CameraError(f"camera {config.name!r}: crop {config.crop} outside the {w}x{h} frame")
        img = img[y:y + ch, x:x + cw]
    elif config.center_crop_to_aspect and config.width > 0:
        target = config.width / config.height
        if w / h > target:
            nw = int(round(h * target))
            x0 = (w - nw) // 2
            img = img[:, x0:x0 + nw]
        elif w / h < target:
            nh = int(round(w / target))
            y0 = (h - nh) // 2
            img = img[y0:y0 + nh]
    if config.width > 0 and (img.shape[1], img.shape[0]) != (config.width, config.height):
        img = cv2.resize(img, (config.width, config.height), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(img[..., ::-1])


class Camera:
    """One OpenCV capture with reconnect. Not thread-safe; call from one thread."""

    def __init__(self, config: CameraConfig, log: Callable[[str], None] = print,
                 clock_ns: Callable[[], int] = time.time_ns, sleep: Callable[[float], None] = time.sleep):
        config.validate()
        self.config = config
        self._log = log
        self._clock_ns = clock_ns
        self._sleep = sleep
        self._cap = None
        self.frames = 0
        self.dropouts = 0
        self.reconnects = 0
        self._failed_opens = 0

    @property
    def is_open(self) -> bool:
        return self._cap is not None

    def open(self) -> bool:
        import cv2

        src = _parse_source(self.config.source)
        cap = cv2.VideoCapture(src)
        if isinstance(src, int) and cap.isOpened():
            if self.config.fps > 0:
                cap.set(cv2.CAP_PROP_FPS, float(self.config.fps))
        if not cap.isOpened():
            cap.release()
            self._cap = None
            return False
        self._cap = cap
        return True

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def _reconnect(self) -> bool:
        self.close()
        self._sleep(self.config.reconnect_delay_s)
        ok = self.open()
        if ok:
            self.reconnects += 1
            self._failed_opens = 0
            self._log(f"camera {self.config.name!r}: reconnected to {self.config.source!r}")
        else:
            self._failed_opens += 1
            self._log(f"camera {self.config.name!r}: cannot open {self.config.source!r} "
                      f"(attempt {self._failed_opens})")
            limit = self.config.max_reconnect_attempts
            if limit and self._failed_opens >= limit:
                raise CameraError(f"camera {self.config.name!r}: source {self.config.source!r} unavailable "
                                  f"after {limit} attempts")
        return ok

    def read(self) -> Frame | None:
        """The next frame, or None after a dropout (the capture is re-opened on the way)."""
        if self._cap is None:
            if not self._reconnect():
                return None
        ok, bgr = self._cap.read()
        stamp = self._clock_ns()
        if not ok or bgr is None:
            self.dropouts += 1
            self._log(f"camera {self.config.name!r}: dropout after {self.frames} frames "
                      f"(source {self.config.source!r}); reconnecting")
            self._reconnect()
            return None
        img = process_frame(bgr, self.config)
        frame = Frame(img, stamp, self.frames)
        self.frames += 1
        return frame

    def __enter__(self) -> Camera:
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()
