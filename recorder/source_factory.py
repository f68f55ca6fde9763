"""Turn the config's source sections into camera and audio source objects."""

from __future__ import annotations

from capture.audio import (
    AlsaAudioSource,
    AudioSource,
    FileAudioSource,
    ToneAudioSource,
)
from capture.sources import FileCamera, FrameSource, StreamCamera, V4L2Camera
from capture.test_pattern import TestPatternSource
from config import models


def make_frame_source(cam: models.CameraConfig) -> FrameSource:
    src = cam.source
    if isinstance(src, models.V4L2Source):
        return V4L2Camera(
            src.device,
            cam.width,
            cam.height,
            cam.fps,
            fourcc=src.fourcc,
            exposure=src.exposure,
            white_balance_k=src.white_balance_k,
        )
    if isinstance(src, models.StreamSource):
        return StreamCamera(src.url)
    if isinstance(src, models.FileSource):
        return FileCamera(src.path, loop=src.loop)
    return TestPatternSource(cam.width, cam.height, cam.fps, probe_every_s=src.probe_every_s)


def make_audio_source(audio: models.AudioConfig) -> AudioSource:
    src = audio.source
    if isinstance(src, models.AlsaAudio):
        return AlsaAudioSource(src.device, audio.sample_rate, audio.channels)
    if isinstance(src, models.FileAudio):
        return FileAudioSource(src.path, audio.sample_rate, audio.channels, loop=src.loop)
    return ToneAudioSource(
        frequency_hz=src.frequency_hz,
        sample_rate=audio.sample_rate,
        channels=audio.channels,
        probe_every_s=src.probe_every_s,
    )
