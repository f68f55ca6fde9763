"""``neoflix-capture status`` in plain text says what the JSON says about the button and holds."""

from __future__ import annotations

from typing import Any

from cli.main import _human_status

BUTTON = {
    "source": "button on CTS from RTS of /dev/neoflix/button",
    "state": "live",
    "since_ns": 0,
    "reconnects": 0,
    "last_error": None,
    "gestures": 3,
    "callback_errors": 0,
}


def status(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "ok": True,
        "state": "idle",
        "do_not_record": False,
        "auto_start_held": False,
        "armed_discard": False,
        "cameras": {},
        "monitors": {},
        "button": BUTTON,
    }
    return {**base, **changes}


def test_the_button_and_its_health_are_shown() -> None:
    text = _human_status(status())
    assert "button: live, button on CTS from RTS of /dev/neoflix/button" in text
    lost = _human_status(status(button={**BUTTON, "state": "lost", "last_error": "SerialException: gone"}))
    assert "button: lost" in lost and "SerialException: gone" in lost


def test_no_button_line_without_a_button() -> None:
    assert "button" not in _human_status(status(button=None))


def test_a_held_automatic_start_is_shown() -> None:
    assert "automatic start held" not in _human_status(status())
    assert "automatic start held" in _human_status(status(auto_start_held=True))


def test_an_armed_discard_is_shown() -> None:
    assert "letting go now discards" not in _human_status(status(state="recording", elapsed_s=12))
    text = _human_status(status(state="recording", elapsed_s=12, armed_discard=True))
    assert "BUTTON HELD: letting go now discards" in text


def test_version_is_printed() -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "cli.main", "--version"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and done.stdout.startswith("neoflix-capture 0.")


def test_a_full_disk_is_said_in_plain_words() -> None:
    from cli.main import _human_status

    text = _human_status({"ok": True, "state": "idle", "storage_problem": "storage full: 3 min left"})
    assert "CANNOT RECORD: storage full: 3 min left" in text
    text = _human_status({"ok": True, "state": "recording", "writing_failed": "No space left on device"})
    assert "NOT SAVING" in text and "No space left" in text
