"""kill -9 mid-recording, five times, on the real daemon: each restart closes what the kill left
open, and each stream (video, audio, vitals, markers) lost at most ``durable_within_s`` (1 s).

The harness is ``scripts/fault_kit.py``; ``scripts/bench faults`` runs it 20 times at 320x240 and
720p30 for the figures.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

from fault_kit import STREAMS, Station, losses, summary

from session.layout import PARTIAL, RECOVERY

pytestmark = pytest.mark.slow
KILLS = 5


def test_five_kills_each_lose_at_most_a_second_of_every_stream(tmp_path: Path) -> None:
    station = Station(tmp_path)
    try:
        for _ in range(KILLS):
            station.start()  # also recovers the session the kill before left open
            station.record_then_kill(2.5)
        station.start()
        station.stop()
        per_kill = [losses(station, kill) for kill in station.kills]
    finally:
        station.close()
    print(json.dumps(summary(per_kill), indent=1))
    for kill, lost in zip(station.kills, per_kill, strict=True):
        for stream in STREAMS:
            assert lost[stream] <= 1.0, (kill.session, stream, lost)
        folder = station.recordings / kill.session
        names = {p.name for p in folder.iterdir()}
        assert not any(n.endswith(PARTIAL) for n in names), names
        assert RECOVERY in names
    audit = [json.loads(line) for line in station.audit.read_text().splitlines()]
    unclean = [e["session"] for e in audit if e["event"] == "unclean_end"]
    assert unclean == [k.session for k in station.kills]
    verified = subprocess.run(
        [sys.executable, "-m", "cli.main", "audit", "verify", str(station.audit)],
        capture_output=True, text=True, timeout=60,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
