"""Fixtures for the capture tests: short media files made with ffmpeg, a fake clock, waiting."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest


def _ffmpeg(*args: str) -> None:
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg is not installed (Debian package: ffmpeg)")
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", *args], check=True)


@pytest.fixture(scope="session")
def video_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2 s of moving 320x240 video at 30 fps, H.264 in MP4 (60 frames)."""
    path = tmp_path_factory.mktemp("media") / "testsrc.mp4"
    _ffmpeg(
        "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30", "-t", "2",
        "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path),
    )  # fmt: skip
    return path


@pytest.fixture(scope="session")
def tone_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1 s of a 1 kHz sine at 44.1 kHz stereo in WAV: neither the rate nor the layout we ask for."""
    path = tmp_path_factory.mktemp("media") / "tone.wav"
    _ffmpeg(
        "-f", "lavfi", "-i", "sine=frequency=1000:sample_rate=44100:duration=1",
        "-ac", "2", "-c:a", "pcm_s16le", str(path),
    )  # fmt: skip
    return path


class FakeClock:
    """A monotonic clock whose sleep advances it instantly, for pacing logic without waiting."""

    def __init__(self, start_ns: int = 1_000_000_000) -> None:
        self.now = start_ns
        self.slept = 0.0

    def __call__(self) -> int:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept += seconds
        self.now += int(seconds * 1e9)


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def wait_for() -> Callable[..., None]:
    def wait(predicate: Callable[[], bool], timeout_s: float = 5.0, what: str = "") -> None:
        deadline = time.monotonic() + timeout_s
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout_s} s waiting for {what or predicate}")
            time.sleep(0.005)

    return wait
