"""The typed status and its wire format: what the recorder sends is what a client reads back."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from control.button import ButtonHealth
from recorder.status import CameraStatus, CollectionStatus, MonitorStatus, RecorderStatus, ServiceVerdict
from session.controller import SessionStatus
from supervision.health import DeviceHealth
from vitals.link import LinkHealth
from vitals.parser import ParserStats

LOST = datetime(2026, 12, 4, 1, 2, 3, tzinfo=UTC)


def health(kind: str, name: str, state: str = "live") -> dict[str, object]:
    return {
        "kind": kind, "name": name, "source": f"{name} source", "state": state, "since_ns": 5,
        "lost_since_ns": 7 if state == "lost" else None, "lost_since_utc": LOST if state == "lost" else None,
        "reconnects": 2, "last_error": "gone" if state == "lost" else None, "delivered": 900, "rate": 29.9,
        "callback_errors": 0,
    }  # fmt: skip


def test_every_part_survives_the_wire() -> None:
    session = SessionStatus(
        state="recording", session="20261204T010000Z-abcdef", elapsed_s=12.5, last_session={"segments": 3}
    )
    camera = CameraStatus(
        DeviceHealth(**health("camera", "closeup")),  # type: ignore[arg-type]
        frames_encoded=900,
        last_frame_age_s=0.03,
        frames_dropped=1,
    )
    link = LinkHealth(
        **health("monitor", "ox"),  # type: ignore[arg-type]
        last_sample_ns=4,
        stats=ParserStats(bytes_in=10, records_ok=2),
        port_open=True,
    )
    status = RecorderStatus(
        session=session,
        version="0.1.0",
        table="table-1",
        uptime_s=99.0,
        cameras={"closeup": camera},
        audio=DeviceHealth(**health("audio", "mic", "lost")),  # type: ignore[arg-type]
        monitors={"ox": MonitorStatus(link, clock_offset_s=-1.5)},
        button=ButtonHealth(**health("button", "button"), gestures=3),  # type: ignore[arg-type]
        motion=0.01,
        vitals_samples=42,
        storage_free_bytes=10**9,
        storage_free_minutes=120,
        segment_seconds=10,
        service=ServiceVerdict(True, "frames flow and writes succeed"),
        collection=CollectionStatus(
            backlog_files=3, backlog_bytes=7_000_000, oldest_queued_utc=LOST.isoformat(), oldest_age_s=61.0,
            last_error="unit/t/s/f: EndpointConnectionError", last_error_utc=LOST.isoformat(),
        ),
    )
    wire = json.loads(json.dumps(status.to_json()))
    assert wire["collection"]["backlog_files"] == 3
    assert wire["state"] == "recording" and wire["cameras"]["closeup"]["health"]["state"] == "live"
    assert wire["monitors"]["ox"]["state"] == "live" and wire["monitors"]["ox"]["stats"]["records_ok"] == 2
    assert RecorderStatus.from_json(wire) == status


def test_a_client_reads_what_an_older_recorder_leaves_out() -> None:
    wire = {"state": "idle", "cameras": {"closeup": {"health": {"state": "lost"}}}}
    status = RecorderStatus.from_json(wire)
    assert status.state == "idle" and status.session.storage_problem is None
    assert status.cameras["closeup"].health.state == "lost" and status.cameras["closeup"].frames_encoded == 0
    assert status.audio is None and status.monitors == {}


def test_the_watchdog_reason_and_status_line_show_the_collection_backlog_without_failing() -> None:
    from recorder.service import collection_note, pipeline_health, status_line

    cam = CameraStatus(health=DeviceHealth(**health("camera", "closeup")), frames_encoded=10)  # type: ignore[arg-type]
    backlog = CollectionStatus(
        backlog_files=2, backlog_bytes=2**21, oldest_age_s=3 * 86400.0, last_error="down"
    )
    status = RecorderStatus(session=SessionStatus(state="idle"), cameras={"closeup": cam}, collection=backlog)
    healthy, why = pipeline_health(status, 0.0)
    assert healthy  # a restart would not bring the archive back
    assert "COLLECTION STALLED, collection: 2 files (2.0 MiB) waiting, oldest 72:00:00" in why
    assert why.endswith(", last error: down")
    assert "COLLECTION STALLED: 2 files to upload" in status_line(status)
    assert collection_note(RecorderStatus(session=SessionStatus())) is None
