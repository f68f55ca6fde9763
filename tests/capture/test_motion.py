"""The motion detector on synthetic 720p scenes: noise is not motion, the region is respected."""

from __future__ import annotations

import functools

import cv2
import numpy as np
import pytest

from capture.motion import MotionDetector

WIDTH, HEIGHT = 1280, 720
FRAME_NS = 33_333_333
ROI = (320, 180, 640, 360)  # the table, in the middle of the picture


def scene(seed: int = 1) -> np.ndarray:
    """A static picture with texture at several scales (blankets, equipment, edges)."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(40, 200, (9, 16, 3), dtype=np.uint8)
    picture = cv2.resize(coarse, (WIDTH, HEIGHT), interpolation=cv2.INTER_CUBIC)
    fine = rng.integers(-30, 30, (HEIGHT, WIDTH, 3), dtype=np.int16)
    out: np.ndarray = np.clip(picture + fine, 0, 255).astype(np.uint8)
    return out


@functools.cache
def noise_bank(sigma: float, frames: int = 5) -> list[tuple[np.ndarray, np.ndarray]]:
    """Sensor noise for a few frames, split into what it adds and what it takes away so that
    OpenCV's saturating add and subtract apply it quickly."""
    cv2.setRNGSeed(int(sigma * 1000))
    bank = []
    for _ in range(frames):
        # One channel, reshaped: on a 3-channel array OpenCV would noise only the first.
        flat = np.empty((HEIGHT, WIDTH * 3), np.float32)
        cv2.randn(flat, np.array([0.0]), np.array([sigma]))
        noise = flat.reshape(HEIGHT, WIDTH, 3)
        bank.append((cv2.convertScaleAbs(np.maximum(noise, 0)), cv2.convertScaleAbs(np.minimum(noise, 0))))
    return bank


class Camera:
    """The same picture as a camera delivers it, with fresh sensor noise in each frame (drawn
    for a few frames and reused in turn, starting at ``offset``: the detector cannot tell)."""

    def __init__(self, offset: int, sigma: float = 6.0) -> None:
        self._noise = noise_bank(sigma)
        self._next = offset

    def shoot(self, picture: np.ndarray) -> np.ndarray:
        up, down = self._noise[self._next % len(self._noise)]
        self._next += 1
        if picture.ndim == 2:
            up, down = up[:, :, 1], down[:, :, 1]
        out: np.ndarray = cv2.subtract(cv2.add(picture, up), down)
        return out


def with_block(picture: np.ndarray, x: int, y: int, size: int = 100) -> np.ndarray:
    frame = picture.copy()
    frame[y : y + size, x : x + size] = (235, 225, 215)  # a gloved hand, say
    return frame


def run(detector: MotionDetector, frames: list[np.ndarray]) -> list[bool]:
    return [detector.update(frame, i * FRAME_NS) for i, frame in enumerate(frames)]


def test_static_scene_with_sensor_noise_is_not_motion() -> None:
    camera = Camera(2)
    base = scene()
    detector = MotionDetector(ROI)
    assert not any(run(detector, [camera.shoot(base) for _ in range(60)]))
    assert detector.last_motion_ns is None
    assert detector.moving_fraction < 0.001


def test_whole_frame_static_scene_with_heavy_noise_is_not_motion() -> None:
    camera = Camera(3, sigma=12.0)
    base = scene()
    detector = MotionDetector(None, every_n_frames=1)
    assert not any(run(detector, [camera.shoot(base) for _ in range(30)]))


def test_a_block_moving_inside_the_region_is_motion() -> None:
    camera = Camera(4)
    base = scene()
    frames = [camera.shoot(base) for _ in range(6)]
    frames += [camera.shoot(with_block(base, 350 + 20 * i, 250)) for i in range(24)]
    detector = MotionDetector(ROI)
    results = run(detector, frames)
    assert not any(results[:6])
    assert all(results[9:])  # every frame looked at once the block moves
    assert detector.last_motion_ns == 27 * FRAME_NS  # the last frame looked at (every third)
    assert detector.moving_fraction > 0.02


def test_motion_outside_the_region_is_ignored() -> None:
    camera = Camera(5)
    base = scene()
    frames = [camera.shoot(with_block(base, 20 * i, 20)) for i in range(30)]  # top-left corner
    assert not any(run(MotionDetector(ROI), frames))
    assert any(run(MotionDetector(None), frames))  # the same frames, watched whole


def test_someone_who_stops_moving_fades_into_the_background() -> None:
    camera = Camera(6)
    base = scene()
    moving = [camera.shoot(with_block(base, 350 + 20 * i, 250)) for i in range(12)]
    still = [camera.shoot(with_block(base, 350 + 20 * 11, 250)) for _ in range(150)]
    detector = MotionDetector(ROI)
    results = run(detector, moving + still)
    assert any(results[:12])
    assert not any(results[-30:])


def test_only_every_nth_frame_is_looked_at() -> None:
    camera = Camera(7)
    base = scene()
    busy = with_block(base, 400, 250, size=200)
    # Frames 0, 3, 6 are looked at; the busy frames 1 and 2 are not, frame 3 is.
    frames = [camera.shoot(f) for f in (base, busy, busy, busy, base, base)]
    results = run(MotionDetector(ROI, every_n_frames=3), frames)
    assert results == [False, False, False, True, True, True]


def test_first_frame_and_a_new_frame_size_only_set_the_background() -> None:
    camera = Camera(8)
    detector = MotionDetector(None, every_n_frames=1)
    assert detector.update(camera.shoot(scene(1)), 0) is False
    other = cv2.resize(scene(2), (640, 360))  # the camera came back at another size
    assert detector.update(other, FRAME_NS) is False
    assert detector.update(other, 2 * FRAME_NS) is False


def test_grey_frames_work_too() -> None:
    camera = Camera(9)
    base = cv2.cvtColor(scene(), cv2.COLOR_BGR2GRAY)
    detector = MotionDetector(ROI, every_n_frames=1)
    assert not any(run(detector, [camera.shoot(base) for _ in range(10)]))
    block = base.copy()
    block[250:350, 400:500] = 250
    assert detector.update(block, 10 * FRAME_NS) is True


def test_a_region_outside_the_frame_is_refused_with_its_size() -> None:
    detector = MotionDetector((2000, 100, 50, 50), every_n_frames=1)
    with pytest.raises(ValueError, match="outside the 1280x720 frame"):
        detector.update(scene(), 0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"roi": (0, 0, 0, 10)},
        {"roi": (-1, 0, 10, 10)},
        {"roi": None, "threshold": 0.0},
        {"roi": None, "threshold": 1.0},
        {"roi": None, "every_n_frames": 0},
        {"roi": None, "scale_width": 4},
        {"roi": None, "pixel_delta": 0},
        {"roi": None, "adapt_rate": 0.0},
    ],
)
def test_impossible_settings_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        MotionDetector(**kwargs)  # type: ignore[arg-type]
