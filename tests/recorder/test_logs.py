"""Logs: JSON lines off a terminal, with libav's own warnings routed through the same chain."""

from __future__ import annotations

import json
import subprocess
import sys

PROGRAM = """
import io, av, structlog
from recorder.logs import configure_logging
configure_logging("auto", "info")
structlog.get_logger().info("segment_closed", camera="closeup", index=1)
try:
    av.open(io.BytesIO(b"\\0" * 5000), format="mpegts")
except Exception:
    pass
"""


def test_json_lines_with_libav_warnings_in_the_same_format() -> None:
    # stderr is a pipe here, not a terminal: JSON lines, as under systemd.
    result = subprocess.run([sys.executable, "-c", PROGRAM], capture_output=True, text=True, timeout=60)
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.strip()]
    ours = [e for e in lines if e.get("event") == "segment_closed"]
    assert ours and ours[0]["camera"] == "closeup" and ours[0]["level"] == "info"
    libav = [e for e in lines if str(e.get("logger", "")).startswith("libav")]
    assert libav and libav[0]["level"] == "warning" and "timestamp" in libav[0]
