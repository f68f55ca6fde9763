"""``neoflix-capture status --json`` as a fleet poller uses it: an answer on stdout even when the
recorder is down, and the recorder found even when the config cannot be read."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from service_testkit import daemon_status

from cli import main as cli
from control.socket import ControlServer


def test_a_recorder_that_is_down_is_an_answer_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(["status", "--json", "--socket", str(tmp_path / "control.sock")])
    out = capsys.readouterr().out
    assert code == cli.EX_UNAVAILABLE  # still a failure for scripts that look at the status
    reply = json.loads(out)
    assert reply["ok"] is False and reply["state"] == "unreachable"
    assert str(tmp_path / "control.sock") in reply["error"]


def test_without_json_a_recorder_that_is_down_is_said_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(["status", "--socket", str(tmp_path / "control.sock")])
    captured = capsys.readouterr()
    assert code == cli.EX_UNAVAILABLE
    assert captured.out == "" and str(tmp_path / "control.sock") in captured.err


def test_an_unreadable_config_falls_back_to_the_default_socket(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[station\n")  # being edited, say: not TOML at all
    socket_path = tmp_path / "control.sock"
    monkeypatch.setattr(cli, "DEFAULT_SOCKET", socket_path)

    def handler(request: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, **daemon_status(state="recording", elapsed_s=42.0)}

    server = ControlServer(socket_path, handler)
    server.start()
    try:
        code = cli.main(["status", "--json", "--config", str(config)])
    finally:
        server.stop()
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert json.loads(captured.out)["state"] == "recording"
    assert "not valid TOML" in captured.err and f"trying the default socket {socket_path}" in captured.err
