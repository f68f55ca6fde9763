"""The local control socket: one JSON object per line in, one JSON object per line out.

A Unix socket, so access is governed by file permissions (the service's group) and nothing
listens on the network. ``neoflix-capture start|stop|status`` are thin clients of it.
"""

from __future__ import annotations

import json
import os
import socket
import socketserver
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog

log = structlog.get_logger()

Handler = Callable[[dict[str, Any]], dict[str, Any]]
_MAX_REQUEST = 64 * 1024


class ControlError(Exception):
    """The daemon could not be reached or did not answer sensibly."""


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    handler: Handler


class _Connection(socketserver.StreamRequestHandler):
    server: _Server

    def handle(self) -> None:
        line = self.rfile.readline(_MAX_REQUEST)
        try:
            request = json.loads(line)
            if not isinstance(request, dict) or not isinstance(request.get("cmd"), str):
                raise ValueError("expected an object with a 'cmd' string")
            reply = self.server.handler(request)
        except ValueError as exc:
            reply = {"ok": False, "error": f"bad request: {exc}"}
        except Exception as exc:
            log.exception("control_request_failed")
            reply = {"ok": False, "error": f"internal error: {exc!r}"}
        self.wfile.write(json.dumps(reply, default=str).encode() + b"\n")


class ControlServer:
    def __init__(self, path: Path, handler: Handler) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_socket():
            path.unlink()  # left behind by a crash; a live daemon would hold the service lock
        old_umask = os.umask(0o117)  # socket usable by owner and group only
        try:
            self._server = _Server(str(path), _Connection)
        finally:
            os.umask(old_umask)
        self._server.handler = handler
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.2}, name="control"
        )
        self._thread.daemon = True

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self.path.unlink(missing_ok=True)


def request(path: Path, cmd: str, timeout: float = 60.0, **args: Any) -> dict[str, Any]:
    """Send one command to the daemon and return its reply."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(str(path))
        except OSError as exc:
            raise ControlError(
                f"cannot reach the recorder at {path}: {exc.strerror or exc} "
                "(is the service running? see: systemctl status neoflix-capture)"
            ) from exc
        sock.sendall(json.dumps({"cmd": cmd, **args}).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    try:
        reply = json.loads(data)
    except ValueError as exc:
        raise ControlError(f"the recorder gave an unreadable answer: {data[:200]!r}") from exc
    if not isinstance(reply, dict):
        raise ControlError(f"the recorder gave an unexpected answer: {reply!r}")
    return reply
