"""Helpers for the service tests: the service manager's end of sd_notify, daemon-like status dicts."""

from __future__ import annotations

import socket
from typing import Any


class NotifySocket:
    """The service manager's end of sd_notify: a datagram socket that collects messages."""

    def __init__(self, sock: socket.socket, env_value: str) -> None:
        self.sock = sock
        self.env_value = env_value  # what NOTIFY_SOCKET is set to
        self.messages: list[dict[str, str]] = []

    def drain(self, timeout_s: float = 0.0) -> list[dict[str, str]]:
        """Messages that arrived (waiting up to ``timeout_s`` for the first), parsed into fields."""
        got: list[dict[str, str]] = []
        if timeout_s > 0:
            self.sock.settimeout(timeout_s)
        else:
            self.sock.setblocking(False)
        while True:
            try:
                data = self.sock.recv(65536)
            except (BlockingIOError, TimeoutError):
                break
            got.append(parse_message(data))
            self.sock.setblocking(False)
        self.messages += got
        return got


def parse_message(data: bytes) -> dict[str, str]:
    return dict(line.split("=", 1) for line in data.decode().split("\n") if "=" in line)


def camera_status(
    state: str = "live", frames: int = 100, write_errors: int = 0, packets_dropped: int = 0, **extra: Any
) -> dict[str, Any]:
    """One camera's entry as ``Daemon.status()`` writes it."""
    return {
        "health": {"state": state, "frames": frames, "fps": 30.0, "last_error": None},
        "frames_encoded": frames,
        "frames_dropped": 0,
        "no_signal_frames": 0,
        "packets_dropped": packets_dropped,
        "write_errors": write_errors,
        "preroll_s": 10.0,
        "preroll_bytes": 1000,
        **extra,
    }


def daemon_status(
    cameras: dict[str, dict[str, Any]] | None = None,
    *,
    state: str = "idle",
    elapsed_s: float | None = None,
    audio: str | None = None,
    monitors: dict[str, str] | None = None,
    free: int | None = 100 * 1024**3,
) -> dict[str, Any]:
    """A status dict shaped like ``Daemon.status()``."""
    return {
        "state": state,
        "session": None,
        "elapsed_s": elapsed_s,
        "cameras": cameras if cameras is not None else {"closeup": camera_status()},
        "audio": {"state": audio, "frames": 10} if audio is not None else None,
        "monitors": {n: {"monitor": n, "state": s} for n, s in (monitors or {}).items()},
        "vitals_samples": 0,
        "storage_free_bytes": free,
        "last_session": None,
    }
