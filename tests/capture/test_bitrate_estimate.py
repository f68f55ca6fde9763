"""The estimate of what the encoders produce: in a sane range, and moving with CRF and audio."""

from __future__ import annotations

import pytest

from capture.encoder import estimated_bits_per_second
from config.loading import parse_config

CAMERA = """
[[cameras]]
name = "closeup"
source = {{ kind = "test_pattern" }}
audio = {audio}
"""
MICROPHONE = """
[audio]
source = { kind = "tone" }
bitrate = 96000
"""


def test_one_720p30_camera_at_crf_23_is_a_couple_of_mbit() -> None:
    mbit = estimated_bits_per_second(parse_config(CAMERA.format(audio="false"))) / 1e6
    assert 1.0 < mbit < 4.0


def test_six_crf_steps_halve_the_rate() -> None:
    camera = CAMERA.format(audio="false")
    default = estimated_bits_per_second(parse_config(camera))
    coarser = estimated_bits_per_second(parse_config(camera + "[encoding]\ncrf = 29\n"))
    assert coarser == pytest.approx(default / 2)


def test_audio_counts_only_with_a_camera_that_carries_it() -> None:
    silent = estimated_bits_per_second(parse_config(CAMERA.format(audio="false") + MICROPHONE))
    with_mic = estimated_bits_per_second(parse_config(CAMERA.format(audio="true") + MICROPHONE))
    # The AAC bit rate, plus a little container framing.
    assert with_mic - silent == pytest.approx(96000, rel=0.1)
