"""Session control with real camera recorders, session directories and audit log, no encoders.

What one patient's recording may carry over to the next (birth time, markers, pre-roll vitals),
what a discard destroys, what the audit log is told, and what the session summary adds up.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from capture.packets import EncodedPacket
from capture.recording import CameraRecorder
from capture.segmenter import StreamLayout
from config.loading import parse_config
from control.gestures import Gesture
from session.audit import AuditLog
from session.controller import CameraOutput, SessionController, socket_client
from session.layout import MARKERS, VITALS
from session.machine import Event
from store.age_reader import decrypt_file
from store.keys import Identity
from sync.board import VitalsBoard
from sync.clock import MediaClock, now_ns
from vitals.sample import Parameter, VitalSample

S = 1_000_000_000
TB = Fraction(1, 90_000)


class Station:
    def __init__(
        self, tmp_path: Path, cameras: tuple[str, ...], extra: str, dropped: Callable[[], int]
    ) -> None:
        self.identity = Identity.generate()
        camera_tables = "".join(
            f'[[cameras]]\nname = "{name}"\nsource = {{ kind = "test_pattern" }}\n'
            "width = 320\nheight = 240\nfps = 15\n"
            for name in cameras
        )
        self.config = parse_config(
            camera_tables
            + f"""
[[monitors]]
name = "oximeter"
protocol = "masimo"
port = "/dev/null"
[storage]
directory = "{tmp_path / 'recordings'}"
segment_seconds = 2
recipients = ["{self.identity.recipient}"]
[session]
preroll_s = 2
[triggers]
vitals_hold_s = 1
post_roll_s = 10
{extra}
"""
        )
        self.recordings = tmp_path / "recordings"
        self.skipped_ns = 0  # the controller's clock runs this far ahead of the real one
        self.free_bytes: int | None = None  # free space on the storage (None: unknown)
        self.audit_path = tmp_path / "audit.jsonl"
        self.audit = AuditLog(self.audit_path)
        self.recorders = [CameraRecorder(name, 2.0) for name in cameras]
        for rec in self.recorders:
            rec.start()
        self.board = VitalsBoard(history_s=60)
        self.controller = SessionController(
            self.config,
            [self.identity.recipient],
            MediaClock(now_ns()),
            self.board,
            [CameraOutput(rec.camera, rec, StreamLayout(320, 240)) for rec in self.recorders],
            audit=self.audit,
            frames_dropped=dropped,
            clock_ns=self.now,
            free_bytes=lambda: self.free_bytes,
            bits_per_s=1_000_000,  # 1 Mbit/s: 30 min of reserve is 225 MB
        )

    def now(self) -> int:
        return now_ns() + self.skipped_ns

    def close(self) -> None:
        for rec in self.recorders:
            rec.stop()
        self.audit.close()

    def entries(self, event: str | None = None) -> list[dict[str, Any]]:
        rows = [json.loads(line) for line in self.audit_path.read_text().splitlines()]
        return [r for r in rows if event is None or r["event"] == event]

    def session_lines(self, path: str, name: str) -> list[dict[str, Any]]:
        data = decrypt_file(Path(path) / name, [self.identity])
        return [json.loads(line) for line in data.splitlines()]

    def record(self, by: str = "command line") -> dict[str, Any]:
        """Start and stop a recording by hand; its summary."""
        self.controller.handle(Event.START, by=by)
        self.controller.handle(Event.STOP, by=by)
        last = self.controller.last_session
        assert last is not None
        return last


@pytest.fixture
def make(tmp_path: Path) -> Iterator[Callable[..., Station]]:
    made: list[Station] = []

    def build(
        cameras: tuple[str, ...] = ("closeup",), extra: str = "", dropped: Callable[[], int] = lambda: 0
    ) -> Station:
        station = Station(tmp_path, cameras, extra, dropped)
        made.append(station)
        return station

    yield build
    for station in made:
        station.close()


@pytest.fixture
def station(make: Callable[..., Station]) -> Station:
    return make()


def spo2(value: float, t_ns: int | None = None) -> VitalSample:
    return VitalSample(Parameter.SPO2, value, "%", True, now_ns() if t_ns is None else t_ns, "oximeter")


def labels(station: Station, summary: dict[str, Any]) -> list[str]:
    return [m["label"] for m in station.session_lines(summary["path"], MARKERS)]


def spo2_values(station: Station, summary: dict[str, Any]) -> list[float]:
    return [v["value"] for v in station.session_lines(summary["path"], VITALS)]


# --- one patient's data never reaches the next one's session ---------------------------------


def test_a_stop_and_a_new_start_for_the_same_baby_keep_the_birth_time(
    station: Station, monkeypatch: pytest.MonkeyPatch
) -> None:
    c = station.controller
    c.mark("birth", by="command line")
    c.handle(Event.START, by="command line")
    c.handle(Event.STOP, by="command line")
    assert c.since_birth_s(now_ns()) is not None  # the team is still with this baby
    second = station.record()
    assert labels(station, second) == ["birth"]  # T+ in the second recording's export too
    station.skipped_ns = 11 * S  # then the table is quiet for the post-roll (10 s): the baby left
    c.tick()
    assert c.since_birth_s(station.now()) is None  # the overlay shows no T+ for the next baby
    assert c.status().since_birth_s is None


def test_a_discard_forgets_the_birth_time_and_markers(station: Station) -> None:
    c = station.controller
    c.mark("birth", by="command line")
    c.mark("intubation", by="command line")
    c.discard(by="command line")
    assert c.since_birth_s(now_ns()) is None
    c.handle(Event.ALLOW_RECORDING, by="command line")
    assert labels(station, station.record()) == []


def test_do_not_record_forgets_the_birth_time(station: Station) -> None:
    c = station.controller
    c.mark("birth", by="command line")
    c.handle(Event.DO_NOT_RECORD, by="command line")
    assert c.since_birth_s(now_ns()) is None
    assert labels(station, station.record()) == []


def test_markers_are_forgotten_once_the_table_is_quiet_for_the_post_roll(
    station: Station, monkeypatch: pytest.MonkeyPatch
) -> None:
    c = station.controller
    c.mark("birth", by="command line")
    c.tick()
    assert c.since_birth_s(now_ns()) is not None  # the baby may still be on the way
    station.skipped_ns = 11 * S  # the post-roll is 10 s
    c.tick()
    assert c.since_birth_s(station.now()) is None


def test_a_start_long_after_the_birth_marker_still_begins(station: Station) -> None:
    """Many markers later the birth marker has left the recent ones: a start must still work."""
    c = station.controller
    c.mark("birth", by="command line")
    for i in range(300):
        c.mark(f"m{i}", by="command line")
    reply = c.handle(Event.START, by="command line")
    assert reply["ok"] and c.recording and c.session_id is not None
    assert c.since_birth_s(now_ns()) is not None  # still the time base while this baby is here


def test_the_preroll_vitals_and_markers_end_where_a_discard_emptied_the_preroll(station: Station) -> None:
    c = station.controller
    c.on_samples([spo2(91)])
    c.mark("intubation", by="command line")
    c.discard(by="command line")  # nothing recording: clears the pre-roll, sets do-not-record
    c.handle(Event.ALLOW_RECORDING, by="command line")
    c.on_samples([spo2(95)])
    summary = station.record()
    assert spo2_values(station, summary) == [95]  # the refused patient's 91 stays out
    assert labels(station, summary) == []


def test_a_start_under_do_not_record_brings_back_nothing_from_before(station: Station) -> None:
    c = station.controller
    c.on_samples([spo2(91)])
    c.handle(Event.DO_NOT_RECORD, by="command line")
    c.on_samples([spo2(92)])  # under do-not-record: no pre-roll kept, video or vitals
    c.handle(Event.START, by="command line")
    c.on_samples([spo2(97)])
    c.handle(Event.STOP, by="command line")
    summary = c.last_session
    assert summary is not None
    assert spo2_values(station, summary) == [97]


def test_a_second_recording_does_not_repeat_the_first_ones_vitals(station: Station) -> None:
    c = station.controller
    c.on_samples([spo2(93)])
    first = station.record()
    c.on_samples([spo2(96)])
    second = station.record()
    assert spo2_values(station, first) == [93]
    assert spo2_values(station, second) == [96]


def test_a_start_that_fails_half_way_leaves_no_session(
    station: Station, monkeypatch: pytest.MonkeyPatch
) -> None:
    c = station.controller

    def broken(t_ns: int) -> list[VitalSample]:
        raise OSError("disk gone")

    monkeypatch.setattr(station.board, "history_since", broken)
    reply = c.handle(Event.START, by="command line")
    assert reply["ok"] is False and "cannot write to the storage: disk gone" in reply["error"]
    assert not c.recording and c.session_id is None
    assert not any(station.recordings.iterdir())
    assert station.entries("recording_started") == []
    # The camera is back on its pre-roll, not writing into the failed session.
    rec = station.recorders[0]
    rec.write(EncodedPacket("video", b"\x00\x00\x00\x01\x09\xf0", 0, 0, 3000, TB, True))
    assert rec.end()
    assert rec.preroll.bytes > 0

    monkeypatch.undo()
    assert Path(station.record()["path"]).is_dir()  # and the next start works


def test_a_start_the_audit_log_cannot_record_leaves_no_session(
    station: Station, monkeypatch: pytest.MonkeyPatch
) -> None:
    c = station.controller

    def full(event: str, **fields: Any) -> dict[str, Any]:
        raise OSError("no space left on device")

    monkeypatch.setattr(station.audit, "append", full)
    assert c.handle(Event.START, by="command line")["ok"] is False
    assert not c.recording and c.session_id is None and c.recording_since_ns is None
    assert not any(station.recordings.iterdir())


# --- discard ---------------------------------------------------------------------------------


def test_discard_right_after_a_stop_destroys_that_recording(station: Station) -> None:
    c = station.controller
    summary = station.record()
    path = Path(summary["path"])
    assert path.is_dir()
    reply = c.discard(by="command line")
    assert not path.exists()
    assert summary["session"] in reply["note"] and "discarded" in reply["note"]
    assert reply["discarded_session"] == summary["session"]
    assert c.state.do_not_record
    assert c.last_session is not None and c.last_session["discarded"]
    gone = station.entries("recording_discarded")
    assert [e["session"] for e in gone] == [summary["session"]]
    assert gone[0]["files"] >= 3


def test_discard_long_after_a_stop_keeps_that_recording_and_says_so(
    station: Station, monkeypatch: pytest.MonkeyPatch
) -> None:
    c = station.controller
    summary = station.record()
    station.skipped_ns = 11 * S
    reply = c.discard(by="command line")
    assert Path(summary["path"]).is_dir()
    assert "nothing was being recorded" in reply["note"] and "delete" in reply["note"]
    assert reply["discarded_session"] is None
    assert station.entries("recording_discarded") == []


def test_discard_after_a_recording_ended_by_itself_keeps_it(station: Station) -> None:
    c = station.controller
    c.handle(Event.AUTO_START, by="trigger")
    c.handle(Event.ACTIVITY_ENDED, by="trigger")
    last = c.last_session
    assert last is not None
    c.discard(by="command line")
    assert Path(last["path"]).is_dir()


def test_discard_while_recording_names_the_session(station: Station) -> None:
    c = station.controller
    c.handle(Event.START, by="command line")
    session = c.session_id
    reply = c.discard(by="command line")
    assert reply["discarded_session"] == session and f"recording {session} discarded" in reply["note"]
    assert not (station.recordings / str(session)).exists()


# --- the button's long press while idle ------------------------------------------------------


def lamp_blinks(c: SessionController) -> bool:
    return len({c.lamp(t) for t in range(0, 2 * S, 50_000_000)}) == 2


def test_a_long_press_that_would_do_nothing_does_not_ask_for_confirmation(
    make: Callable[..., Station],
) -> None:
    station = make(extra='[button]\nidle_long_press = "nothing"')
    c = station.controller
    c.on_gesture(Gesture.LONG_ARMED)
    assert not c.armed_discard and not lamp_blinks(c)
    c.on_gesture(Gesture.LONG)
    assert not c.state.do_not_record

    # Right after a stop, letting go would discard that recording: then it asks.
    summary = station.record(by="button")
    c.on_gesture(Gesture.LONG_ARMED)
    assert c.armed_discard and lamp_blinks(c)
    c.on_gesture(Gesture.LONG)
    assert not Path(summary["path"]).exists()


def test_an_idle_long_press_asks_when_it_sets_do_not_record(station: Station) -> None:
    c = station.controller
    c.on_gesture(Gesture.LONG_ARMED)
    assert c.armed_discard and lamp_blinks(c)
    c.on_gesture(Gesture.LONG)
    assert c.state.do_not_record and not c.armed_discard


# --- the audit log ---------------------------------------------------------------------------


def test_the_audit_log_records_which_trigger_started_each_recording(station: Station) -> None:
    c = station.controller
    t = now_ns()
    c.on_samples([spo2(95, t - int(i * 0.5 * S)) for i in range(4, -1, -1)])  # valid for 2 s
    c.tick()
    assert c.recording and c.state.automatic
    c.handle(Event.STOP, by="command line")
    c.handle(Event.START, by="command line")
    c.handle(Event.STOP, by="command line")
    c.on_gesture(Gesture.SHORT)
    c.on_gesture(Gesture.SHORT)
    assert [e["trigger"] for e in station.entries("recording_started")] == ["vitals", "socket", "button"]


@pytest.mark.parametrize(
    ("sent", "recorded"),
    [
        ("command line", "command line"),
        ("demo", "demo"),
        ("Baby Jansen, MRN 123456", "control socket"),
        ("button", "control socket"),  # a socket client is not the button
        (None, "control socket"),
        (42, "control socket"),
    ],
)
def test_only_known_client_names_come_from_the_socket(sent: object, recorded: str) -> None:
    assert socket_client(sent) == recorded


def test_free_text_from_a_client_never_reaches_the_audit_log(station: Station) -> None:
    c = station.controller
    by = socket_client("Baby Jansen, MRN 123456")
    c.mark("birth", by=by)
    c.handle(Event.START, by=by)
    c.discard(by=by)
    text = station.audit_path.read_text()
    assert "Jansen" not in text and "123456" not in text
    assert {e.get("by") for e in station.entries("marker")} == {"control socket"}


# --- the session summary ---------------------------------------------------------------------


def video(i: int, fps: int = 15) -> EncodedPacket:
    ticks = i * (90_000 // fps)
    data = b"\x00\x00\x00\x01\x09\xf0" + bytes(64)  # an access unit delimiter: what a muxer expects
    return EncodedPacket("video", data, ticks, ticks, 6000, TB, i % fps == 0)


def test_the_summary_counts_media_per_camera_and_drops_in_this_session(make: Callable[..., Station]) -> None:
    dropped = [7]  # dropped before this session began
    station = make(cameras=("closeup", "room"), dropped=lambda: dropped[0])
    c = station.controller
    c.handle(Event.START, by="command line")
    for i in range(0, 4 * 15 + 1):  # 4 s on both cameras, side by side
        for rec in station.recorders:
            rec.write(video(i))
    dropped[0] = 10
    c.handle(Event.STOP, by="command line")
    summary = c.last_session
    assert summary is not None
    per_camera = summary["media_s_by_camera"]
    assert set(per_camera) == {"closeup", "room"}
    assert all(3.9 <= s <= 4.1 for s in per_camera.values())
    assert summary["media_s"] == max(per_camera.values())  # not the sum of both cameras
    assert summary["frames_dropped"] == 3


# --- the next patient ------------------------------------------------------------------------


def hr(value: float, t_ns: int) -> VitalSample:
    return VitalSample(Parameter.HR, value, "bpm", True, t_ns, "oximeter")


def stabilisation(station: Station, spo2_value: float, hr_value: float) -> dict[str, Any]:
    """Valid vitals for 2 s start a recording by themselves; 11 s of quiet (post-roll 10 s) end it."""
    c = station.controller
    for _ in range(3):
        t = station.now()
        c.on_samples([spo2(spo2_value, t), hr(hr_value, t)])
        c.tick()
        station.skipped_ns += S
    assert c.recording, "valid vitals for the hold started a recording"
    station.skipped_ns += 11 * S  # the probe comes off: nothing valid for the post-roll
    c.tick()
    assert not c.recording
    c.tick()
    last = c.last_session
    assert last is not None
    return last


def test_the_next_babys_recording_shows_and_stores_nothing_of_the_last_one(station: Station) -> None:
    first = stabilisation(station, 85, 154)
    assert 85 in spo2_values(station, first)
    # The next baby: what the overlay would draw before its monitors speak, then its recording.
    assert station.board.as_of(station.now(), 3.0) == {}
    second = stabilisation(station, 97, 121)
    rows = station.session_lines(second["path"], VITALS)
    assert rows and {r["value"] for r in rows} == {97, 121}


def test_a_stop_and_restart_for_the_same_baby_keeps_its_values(station: Station) -> None:
    c = station.controller
    c.on_samples([spo2(91, station.now())])
    c.handle(Event.START, by="command line")
    c.handle(Event.STOP, by="command line")
    assert Parameter.SPO2 in station.board.as_of(station.now(), 3.0)  # still this baby


# --- storage below its reserve ---------------------------------------------------------------


def test_a_start_is_refused_below_the_reserve_and_the_bedside_sees_why(station: Station) -> None:
    c = station.controller
    station.free_bytes = 100_000_000  # 13 min of recording at 1 Mbit/s; the reserve is 30
    reply = c.handle(Event.START, by="button")
    assert reply["ok"] is False and "storage full" in reply["error"] and "30 min reserve" in reply["error"]
    assert not c.recording and not station.recordings.exists()
    assert c.status().storage_problem is not None
    lit = [c.lamp(t * 10_000_000) for t in range(200)]
    assert sum(lit) == 30  # two short flashes every 2 s: "cannot record"
    c.handle(Event.START, by="command line")  # asked again: refused again, audited once
    assert [e["event"] for e in station.entries()] == ["recording_refused"]
    station.free_bytes = 10_000_000_000  # room again
    c.tick()
    assert c.status().storage_problem is None and not c.lamp(0)
    assert c.handle(Event.START, by="button")["ok"]
    assert c.recording
    c.handle(Event.STOP, by="button")


def test_a_vitals_start_refused_for_space_is_not_retried_at_every_tick(station: Station) -> None:
    c = station.controller
    station.free_bytes = 0
    for _ in range(4):
        t = station.now()
        c.on_samples([spo2(95, t), hr(130, t)])
        c.tick()
        station.skipped_ns += S // 2
    assert not c.recording
    assert [e["event"] for e in station.entries()] == ["recording_refused"]
    station.free_bytes = None  # space known to be back (or unknown): the trigger may start it
    station.skipped_ns += 11 * S
    t = station.now()
    c.on_samples([spo2(95, t - S), hr(130, t - S), spo2(95, t), hr(130, t)])
    c.tick()
    assert c.recording
    c.handle(Event.STOP, by="button")


def test_a_markers_free_text_label_never_reaches_the_plain_text_log(station: Station) -> None:
    from structlog.testing import capture_logs

    c = station.controller
    with capture_logs() as logs:
        c.handle(Event.START, by="command line")
        c.mark("Baby Jansen, MRN 123456", by="command line")
        c.handle(Event.STOP, by="command line")
    assert logs and "Jansen" not in repr(logs) and "123456" not in repr(logs)
    assert any(e["event"] == "marker" and e["kind"] == "other" for e in logs)
    assert "Jansen" not in station.audit_path.read_text()


def test_lines_cut_from_the_audit_logs_end_show_against_the_manifests(station: Station) -> None:
    import subprocess
    import sys

    summary = station.record()
    key = station.recordings.parent / "review-key.txt"
    key.write_text(str(station.identity) + "\n")
    lines = station.audit_path.read_text().splitlines(keepends=True)
    assert [json.loads(line)["event"] for line in lines] == ["recording_started", "recording_stopped"]

    def check() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "cli.main", "audit", "verify", str(station.audit_path),
             "--sessions", str(station.recordings), "--identity", str(key)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    whole = check()
    assert whole.returncode == 0 and "holds the 2 head(s)" in whole.stdout, whole.stdout + whole.stderr
    station.audit_path.write_text(lines[0])  # the stop's line cut from the end
    cut = check()
    assert cut.returncode == 1
    assert f"session {Path(summary['path']).name} recorded entry 2, but the log ends at 1" in cut.stdout
