"""Real ALSA capture through PyAV, without sound hardware.

ALSA's ``file`` plugin can feed a capture PCM from a raw PCM file (``infile``) in front of the
``null`` plugin; a ``plug`` in front of it converts to whatever rate and channel count the
reader asks for. So ``AlsaAudioSource`` opens a real ALSA device and goes through the real
libasound, demuxer and conversion, with a known 1 kHz tone as the "microphone".

The configuration reaches libasound through ``ALSA_CONFIG_PATH``, which takes a ``:``-separated
list: the system ``alsa.conf`` (Debian package libasound2-data) and then our file. Each case runs
in a subprocess so the environment it needs never leaks into other tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from capture.audio import SYSTEM_ALSA_CONF

RATE = 48000
TONE_HZ = 1000

pytestmark = [
    pytest.mark.skipif(
        not SYSTEM_ALSA_CONF.is_file(),
        reason=f"{SYSTEM_ALSA_CONF} is missing: install the Debian package libasound2-data",
    ),
    pytest.mark.skipif("alsa" not in av.formats_available, reason="this PyAV build has no ALSA input"),
]

ASOUNDRC = """
# Capture reads {raw}: raw S16_LE mono at {rate} Hz; what is "played" goes to /dev/null.
pcm.neoflix_tone_file {{
    type file
    slave.pcm "null"
    file "/dev/null"
    infile "{raw}"
    format "raw"
}}
# The file plugin passes its slave's format through, so pin it to the raw file's format here;
# plug then converts to whatever the application asks for.
pcm.neoflix_tone {{
    type plug
    slave {{
        pcm "neoflix_tone_file"
        format S16_LE
        rate {rate}
        channels 1
    }}
}}
"""

CAPTURE = """
import json, sys
import numpy as np
from capture.audio import AlsaAudioSource, AudioReader
from capture.sources import SourceError

device, rate, channels, seconds, out = sys.argv[1:6]
rate, channels, seconds = int(rate), int(channels), float(seconds)
src = AlsaAudioSource(device, rate, channels)
try:
    src.open()
except SourceError as exc:
    print(json.dumps({"error": str(exc)}))
    sys.exit(0)
chunks = []
while sum(c.samples for c in chunks) < rate * seconds:
    chunk = src.read()
    assert chunk is not None, "ALSA source ended"
    chunks.append(chunk)
src.close()
np.save(out, np.concatenate([c.pcm for c in chunks], axis=1))
print(json.dumps({
    "dtypes": sorted({str(c.pcm.dtype) for c in chunks}),
    "rates": sorted({c.sample_rate for c in chunks}),
    "channels": sorted({c.channels for c in chunks}),
    "env": __import__("os").environ.get("ALSA_CONFIG_PATH"),
}))
"""


@pytest.fixture(scope="module")
def alsa_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with the raw tone and an ``asoundrc`` defining PCM ``neoflix_tone``."""
    home = tmp_path_factory.mktemp("alsa")
    n = np.arange(3 * RATE)
    tone = (0.5 * 32767 * np.sin(2 * np.pi * TONE_HZ * n / RATE)).astype("<i2")
    raw = home / "tone.raw"
    raw.write_bytes(tone.tobytes())
    (home / "asoundrc").write_text(ASOUNDRC.format(raw=raw, rate=RATE))
    return home


def run_capture(
    tmp_path: Path, env: dict[str, str], device: str, rate: int, channels: int
) -> tuple[dict[str, object], np.ndarray | None]:
    out = tmp_path / "pcm.npy"
    proc = subprocess.run(
        [sys.executable, "-c", CAPTURE, device, str(rate), str(channels), "0.25", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result, (np.load(out) if out.exists() else None)


def alsa_env(alsa_home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALSA_")}
    env["ALSA_CONFIG_PATH"] = f"{SYSTEM_ALSA_CONF}:{alsa_home / 'asoundrc'}"
    env.update(extra)
    return env


def dominant_hz(x: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x.astype(np.float64) * np.hanning(len(x))))
    return float(np.argmax(spectrum)) * rate / len(x)


def test_alsa_delivers_the_tone(alsa_home: Path, tmp_path: Path) -> None:
    result, pcm = run_capture(tmp_path, alsa_env(alsa_home), "neoflix_tone", RATE, 1)
    assert "error" not in result, result
    assert result["dtypes"] == ["float32"] and result["rates"] == [RATE]
    assert pcm is not None and pcm.shape[0] == 1 and pcm.shape[1] >= RATE // 4
    assert dominant_hz(pcm[0], RATE) == pytest.approx(TONE_HZ, abs=5)
    assert float(np.max(np.abs(pcm))) == pytest.approx(0.5, abs=0.02)


def test_alsa_converts_rate_and_channels(alsa_home: Path, tmp_path: Path) -> None:
    result, pcm = run_capture(tmp_path, alsa_env(alsa_home), "neoflix_tone", 44100, 2)
    assert "error" not in result, result
    assert result["rates"] == [44100] and result["channels"] == [2]
    assert pcm is not None and pcm.dtype == np.float32
    for channel in pcm:
        assert dominant_hz(channel, 44100) == pytest.approx(TONE_HZ, abs=5)


def test_system_config_is_found_without_the_variable(alsa_home: Path, tmp_path: Path) -> None:
    # Unset, the source points libasound at the system alsa.conf, which loads ~/.asoundrc.
    home = tmp_path / "home"
    home.mkdir()
    (home / ".asoundrc").write_text((alsa_home / "asoundrc").read_text())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALSA_", "XDG_CONFIG"))}
    env["HOME"] = str(home)
    result, pcm = run_capture(tmp_path, env, "neoflix_tone", RATE, 1)
    assert "error" not in result, result
    assert result["env"] == str(SYSTEM_ALSA_CONF)
    assert pcm is not None
    assert dominant_hz(pcm[0], RATE) == pytest.approx(TONE_HZ, abs=5)


def test_unknown_device_says_what_to_check(alsa_home: Path, tmp_path: Path) -> None:
    result, pcm = run_capture(tmp_path, alsa_env(alsa_home), "no_such_pcm", RATE, 1)
    assert pcm is None
    message = str(result["error"])
    assert "no_such_pcm" in message
    assert "arecord -L" in message and "ALSA_CONFIG_PATH" in message
