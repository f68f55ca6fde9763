"""The review page and the composite, judged against what the sources sent.

A short session is recorded once for the module with the real daemon: two test-pattern cameras
(each frame carries its frame counter) and a simulated Masimo oximeter on a real pty, tapped so the
test knows each heart rate it sent and when. The session is exported with the composite. The page
is opened from ``file://`` in Debian's Chromium through Playwright (no browser download), and
driven as a person would: keys, clicks on the plot and on the markers.

What a video shows is read from the page itself: the <video> is drawn into a canvas and the test
pattern's frame counter is read from its pixels (the digits are drawn with OpenCV's Hershey font,
so templates drawn the same way read them). The truth for a time t is the frame PyAV decodes from
the same MP4 at t.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import pytest

from config.loading import parse_config
from control.socket import request
from recorder.daemon import Daemon, wait_for_frames
from recorder.recipients import resolve_recipients
from review.export import ExportResult, export_session
from store.keys import Identity
from vitals.masimo import MasimoParser
from vitals.pty import open_pty_pair
from vitals.sample import Parameter
from vitals.simulators.masimo import MasimoSimulator, StabilisationScript

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
RECORD_S = 10.0
FPS = 30
CAMERAS = {"closeup": (640, 360), "room": (480, 270)}
FRAME_S = 1 / FPS


class Tap:
    """Writes the simulator's lines to the pty and remembers each, with when it was sent."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.lines: list[tuple[float, bytes]] = []

    def write(self, data: bytes, /) -> int:
        self.lines.append((time.time(), data))
        return os.write(self.fd, data)


@dataclass
class Recorded:
    out: Path
    result: ExportResult
    sent: list[tuple[float, bytes]]

    @property
    def page_url(self) -> str:
        return (self.out / "viewer.html").as_uri()


def config_text(tmp: Path, recipient: str, port: str) -> str:
    (closeup_w, closeup_h), (room_w, room_h) = CAMERAS["closeup"], CAMERAS["room"]
    return f"""
[station]
table = "Browser test"
control_socket = "{tmp / 'control.sock'}"

[[cameras]]
name = "closeup"
source = {{ kind = "test_pattern" }}
width = {closeup_w}
height = {closeup_h}
fps = {FPS}
overlay = true

[[cameras]]
name = "room"
source = {{ kind = "test_pattern" }}
width = {room_w}
height = {room_h}
fps = {FPS}
overlay = false
audio = true

[audio]
source = {{ kind = "tone", frequency_hz = 440.0 }}

[[monitors]]
name = "oximeter"
protocol = "masimo"
port = "{port}"

[encoding]
keyframe_interval_s = 1.0

[storage]
directory = "{tmp / 'recordings'}"
segment_seconds = 4
recipients = ["{recipient}"]

[session]
preroll_s = 2

[triggers]
vitals_hold_s = 1.0

[logging]
format = "json"
"""


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Recorded:
    """About ten seconds through the real daemon, with a birth and an intubation marked, exported
    with the composite."""
    if shutil.which("ffprobe") is None:
        pytest.skip("ffprobe not installed")
    tmp = tmp_path_factory.mktemp("viewer")
    identity = Identity.generate()
    pty = open_pty_pair()
    tap = Tap(pty.master_fd)
    # The sensor is on from the start and the course is sped up, so the heart rate changes
    # second by second while recording.
    simulator = MasimoSimulator(tap, time_scale=8.0, script=StabilisationScript(no_sensor_s=0, acquire_s=1))
    config = parse_config(config_text(tmp, str(identity.recipient), pty.slave_path), source="test")
    daemon = Daemon(config, resolve_recipients(config.storage))
    stop = threading.Event()
    loop = threading.Thread(target=daemon.run, args=(stop,), daemon=True)
    simulator.start()
    daemon.start()
    loop.start()
    sock = config.station.control_socket
    try:
        assert wait_for_frames(daemon, 30)
        deadline = time.monotonic() + 60
        while request(sock, "status").get("state") != "recording":
            assert time.monotonic() < deadline, "the vitals trigger never started the recording"
            time.sleep(0.2)
        request(sock, "mark", label="birth", by="test")
        time.sleep(RECORD_S / 2)
        request(sock, "mark", label="intubation", by="test")
        time.sleep(RECORD_S / 2)
        reply = request(sock, "stop", by="test")
    finally:
        stop.set()
        loop.join()
        daemon.shutdown()
        simulator.stop()
        pty.close()
    session_dir = Path(reply["last_session"]["path"])
    out = tmp / "export"
    result = export_session(session_dir, [identity], out, composite=True)
    assert set(result.videos) == set(CAMERAS) and result.viewer and result.composite, result.warnings
    return Recorded(out, result, tap.lines)


# --- reading the test pattern's frame counter ----------------------------------------------------


def _counter_geometry(height: int) -> tuple[float, int, int, int, int]:
    """Font scale, thickness, x and baseline of the counter, and the advance of one digit
    (capture.test_pattern draws the counter at these)."""
    scale = max(0.4, height / 720)
    thickness = max(1, round(2 * scale))
    one = cv2.getTextSize("0", cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)[0][0]
    two = cv2.getTextSize("00", cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)[0][0]
    return scale, thickness, int(10 * scale), height - int(12 * scale), two - one


def read_counter(image: np.ndarray) -> int:
    """The 7-digit frame counter in a test-pattern frame (grey or BGR, at its recorded size)."""
    grey = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    height = grey.shape[0]
    scale, thickness, x0, base, advance = _counter_geometry(height)
    top = base - int(30 * scale)
    digits = []
    for k in range(7):
        x = x0 + k * advance
        seen = grey[top : base + 4, x : x + advance].astype(np.float32)
        best, best_err = 0, float("inf")
        for d in range(10):
            template = np.zeros_like(grey)
            cv2.putText(
                template, str(d), (x, base), cv2.FONT_HERSHEY_SIMPLEX, scale, 255, thickness, cv2.LINE_AA
            )
            err = float(np.abs(template[top : base + 4, x : x + advance].astype(np.float32) - seen).mean())
            if err < best_err:
                best, best_err = d, err
        digits.append(str(best))
    return int("".join(digits))


def frames_of(path: Path) -> list[tuple[float, np.ndarray]]:
    """Every frame of an MP4 with its presentation time, as PyAV decodes it (grey)."""
    with av.open(str(path)) as f:
        return [
            (float(frame.time or 0.0), frame.to_ndarray(format="gray"))
            for frame in f.decode(video=0)
        ]


def frame_at(frames: list[tuple[float, np.ndarray]], t: float) -> np.ndarray:
    """What a player shows at t: the latest frame presented at or before it."""
    shown = [img for ft, img in frames if ft <= t + 1e-4]
    return shown[-1] if shown else frames[0][1]


@pytest.fixture(scope="module")
def decoded(recorded: Recorded) -> dict[str, list[tuple[float, np.ndarray]]]:
    return {name: frames_of(path) for name, path in recorded.result.videos.items()}


def test_the_counter_reader_reads_what_the_test_pattern_draws() -> None:
    from capture.test_pattern import TestPatternSource

    for width, height in CAMERAS.values():
        source = TestPatternSource(width, height, FPS)
        for n in (0, 7, 1234567, 9876543):
            assert read_counter(source.render(n)) == n


def test_both_mp4s_start_at_the_same_media_time(recorded: Recorded) -> None:
    """ffprobe, an independent reader, finds each camera's first frame in its MP4 where its media
    time less the common start puts it: the files agree by themselves, no player offset needed."""
    summary = json.loads((recorded.out / "session.json").read_text())
    origins = []
    for camera, info in summary["cameras"].items():
        probe = subprocess.run(
            ["ffprobe", "-v", "error", "-select_streams", "v", "-show_entries", "stream=start_time",
             "-of", "csv=p=0", str(recorded.out / info["file"])],
            capture_output=True, text=True, check=True,
        )
        start = float(probe.stdout)
        assert start == pytest.approx(info["first_frame_in_mp4_s"], abs=0.002), camera
        origins.append(info["first_frame_s"] - start)  # the media time of this MP4's t=0
    assert max(origins) - min(origins) < FRAME_S
    assert min(origins) == pytest.approx(summary["media_start_s"], abs=0.002)


# --- the page ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium not installed (Debian package chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        # Debian's Chromium, never a downloaded one. File access from files lets the test draw
        # a file:// video into a canvas and read it back (the page itself never needs to).
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--autoplay-policy=no-user-gesture-required", "--allow-file-access-from-files"],
        )
        yield b
        b.close()


@pytest.fixture
def page(browser: Any, recorded: Recorded) -> Iterator[Any]:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(recorded.page_url)
    page.wait_for_function("viewer.views.every(v => v.video.readyState >= 2)", timeout=30_000)
    yield page
    page.close()
    assert errors == []


def times(page: Any) -> list[float]:
    return [float(t) for t in page.evaluate("viewer.views.map(v => v.video.currentTime)")]


def settle(page: Any) -> None:
    """Wait until no video is seeking and each shows a decoded frame."""
    page.wait_for_function(
        "viewer.views.every(v => !v.video.seeking && v.video.readyState >= 2)", timeout=15_000
    )
    page.wait_for_timeout(100)  # one more pass of the page's drift loop


def press(page: Any, key: str) -> None:
    page.keyboard.press(key)
    settle(page)


def shown_counter(page: Any, camera: str) -> int:
    """The frame counter in the picture the page shows for ``camera`` now, read from its pixels."""
    width, height = CAMERAS[camera]
    pixels = page.evaluate(
        """([name, w, h]) => {
            const v = viewer.views.find(x => x.name === name).video;
            const c = document.createElement("canvas");
            c.width = w; c.height = h;
            const g = c.getContext("2d");
            g.drawImage(v, 0, 0, w, h);
            const d = g.getImageData(0, 0, w, h).data;
            const grey = new Array(w * h);
            for (let i = 0; i < w * h; i++) grey[i] = Math.round((d[4*i] + d[4*i+1] + d[4*i+2]) / 3);
            return grey;
        }""",
        [camera, width, height],
    )
    return read_counter(np.array(pixels, np.uint8).reshape(height, width))


def test_both_views_play_and_stay_within_a_frame_of_each_other(page: Any, recorded: Recorded) -> None:
    duration = min(recorded.result.video_seconds.values())
    press(page, " ")
    page.wait_for_function("viewer.views.every(v => !v.video.paused)")
    drift: list[float] = []
    # As long a stretch as the recording gives, less a second at each end.
    deadline = time.monotonic() + 30
    while times(page)[0] < duration - 1.5 and time.monotonic() < deadline:
        page.wait_for_timeout(250)
        a, b = times(page)
        if a > 1.0:  # the follower has had a second to settle after the start
            drift.append(abs(a - b))
    press(page, " ")
    assert len(drift) > 10
    assert max(times(page)) > duration / 2, "the videos did not play"
    # Playing, the views stay together; paused, they show the same instant.
    assert sorted(drift)[len(drift) // 2] <= FRAME_S, drift
    assert max(drift) <= 3 * FRAME_S, drift
    a, b = times(page)
    assert abs(a - b) <= FRAME_S


def test_a_view_that_falls_out_of_step_is_brought_back_while_playing(page: Any) -> None:
    """The drift correction itself: a follower put a few frames off (as a slow decoder leaves it)
    is nudged back, and one put far off jumps back, both while the views keep playing."""
    page.evaluate("viewer.seek(1.0)")
    settle(page)
    press(page, " ")
    page.wait_for_function("viewer.views.every(v => !v.video.paused) && viewer.now() > 1.3")

    def follower_off() -> float:
        return float(
            page.evaluate(
                "(() => { const f = viewer.views.find(v => v !== viewer.master);"
                " return f.video.currentTime - viewer.now(); })()"
            )
        )

    for push_s, within_ms in ((4 * FRAME_S, 4000), (1.5, 2000)):
        page.evaluate(
            "(s) => { const f = viewer.views.find(v => v !== viewer.master);"
            " f.video.currentTime = viewer.now() + s; }",
            push_s,
        )
        page.wait_for_timeout(50)
        page.wait_for_function(
            f"""(() => {{ const f = viewer.views.find(v => v !== viewer.master);
                const off = f.video.currentTime - viewer.now();
                return !f.video.seeking && Math.abs(off) <= {FRAME_S}; }})()""",
            timeout=within_ms,
        )
        assert abs(follower_off()) <= FRAME_S
        assert page.evaluate("!viewer.master.video.paused"), "the correction stopped the playback"
    press(page, " ")


def test_each_view_switches_size_and_only_the_view_with_sound_is_heard(page: Any) -> None:
    muted = dict(page.evaluate("viewer.views.map(v => [v.name, v.video.muted])"))
    assert muted == {"closeup": True, "room": False}
    room = page.locator(".view[data-camera='room']")
    small = room.bounding_box()["width"]
    room.locator("button.size").click()
    assert room.bounding_box()["width"] > 1.5 * small
    room.locator("button.size").click()
    assert room.bounding_box()["width"] == pytest.approx(small, abs=2)


def test_a_click_on_the_plot_seeks_both_views_and_the_cursor_follows(page: Any) -> None:
    for fraction in (0.7, 0.25, 0.55):
        box = page.locator(".panel .u-over").first.bounding_box()
        page.mouse.click(box["x"] + box["width"] * fraction, box["y"] + box["height"] / 2)
        settle(page)
        a, b = times(page)
        assert abs(a - b) <= FRAME_S
        expected = page.evaluate(
            f"viewer.plots[0].u.posToVal({box['width'] * fraction}, 'x')"
        )
        assert a == pytest.approx(expected, abs=FRAME_S)
        cursor_t = page.evaluate(
            "(() => { const p = viewer.plots[0];"
            " return p.u.posToVal(parseFloat(p.cursor.style.left), 'x'); })()"
        )
        assert cursor_t == pytest.approx(a, abs=0.02)  # a pixel of the plot is about that


def test_a_marker_in_the_list_seeks_to_it(page: Any, recorded: Recorded) -> None:
    for label in ("intubation", "birth"):
        button = page.locator("#markers button", has_text=label)
        wanted = float(button.get_attribute("data-t") or "nan")
        button.click()
        settle(page)
        for t in times(page):
            assert t == pytest.approx(wanted, abs=FRAME_S)
    summary = recorded.result.media_start_s
    birth = next(m for m in recorded.result.markers if m["label"] == "birth")
    assert wanted == pytest.approx(birth["t"] - summary, abs=0.002)
    assert page.locator("#t-birth").text_content() in ("T+0:00.0", "T−0:00.0")


def test_keyboard_shortcuts(page: Any) -> None:
    page.locator("#markers button", has_text="birth").click()
    settle(page)
    start = times(page)[0]
    press(page, "ArrowRight")
    assert times(page)[0] == pytest.approx(start + 5, abs=FRAME_S)
    press(page, "ArrowLeft")
    assert times(page)[0] == pytest.approx(start, abs=FRAME_S)
    frame = int(page.locator("#t-frame").text_content() or "-1")
    press(page, ".")
    assert int(page.locator("#t-frame").text_content() or "-1") == frame + 1
    press(page, ",")
    press(page, ",")
    assert int(page.locator("#t-frame").text_content() or "-1") == frame - 1
    marker = page.locator("#markers button", has_text="intubation")
    intubation = float(marker.get_attribute("data-t") or "nan")
    press(page, "]")  # a frame before birth: the next marker is birth
    assert times(page)[0] == pytest.approx(start, abs=FRAME_S)
    press(page, "]")
    assert times(page)[0] == pytest.approx(intubation, abs=FRAME_S)
    press(page, "[")
    assert times(page)[0] == pytest.approx(start, abs=FRAME_S)
    press(page, "n")
    assert times(page)[0] == pytest.approx(intubation, abs=FRAME_S)
    press(page, "+")
    assert page.evaluate("viewer.master.video.playbackRate") == 1.5
    press(page, "-")
    press(page, "-")
    assert page.evaluate("viewer.master.video.playbackRate") == 0.5
    assert page.locator("#speed").text_content() == "0.5×"
    shortcuts = page.locator("#keys").text_content() or ""
    for words in ("play / pause", "frame", "5 s", "marker", "slower / faster"):
        assert words in shortcuts


def hr_sent_before(sent: list[tuple[float, bytes]], wall: float) -> float | None:
    """The last heart rate the simulator sent at or before a wall-clock time."""
    parser = MasimoParser("oximeter")
    value: float | None = None
    for at, line in sent:
        for s in parser.feed(line, 0):
            if s.parameter is Parameter.HR and at <= wall:
                value = s.value if s.valid else None
    return value


def test_what_the_page_shows_is_what_the_cameras_and_the_monitor_sent(
    page: Any, recorded: Recorded, decoded: dict[str, list[tuple[float, np.ndarray]]]
) -> None:
    duration = min(recorded.result.video_seconds.values())
    epoch = page.evaluate("DATA.epoch_ms") / 1000 + recorded.result.media_start_s
    checked = 0
    for fraction in (0.2, 0.45, 0.7, 0.9):
        box = page.locator(".panel .u-over").first.bounding_box()
        page.mouse.click(box["x"] + box["width"] * fraction, box["y"] + box["height"] / 2)
        settle(page)
        t = times(page)[0]
        assert t < duration
        for camera in CAMERAS:
            truth = read_counter(frame_at(decoded[camera], t))
            assert shown_counter(page, camera) == truth, (camera, t)
        # The heart rate in the page at t is the one the monitor sent last before that moment
        # (read by the recorder a few ms after it was sent: times near a sample are skipped).
        wall = epoch + t
        if any(abs(at - wall) < 0.15 for at, _ in recorded.sent):
            continue
        expected = hr_sent_before(recorded.sent, wall)
        shown = page.locator("#values span[data-series='HR'] output").text_content()
        assert shown == ("--" if expected is None else str(round(expected))), t
        checked += 1
    assert checked >= 2


# --- the composite -------------------------------------------------------------------------------


def test_the_composite_at_a_marker_shows_both_cameras_and_the_cursor_there(
    recorded: Recorded, decoded: dict[str, list[tuple[float, np.ndarray]]]
) -> None:
    composite = recorded.result.composite
    assert composite is not None
    marker = next(m for m in recorded.result.markers if m["label"] == "intubation")
    t = float(marker["t"]) - recorded.result.media_start_s
    frames = frames_of(composite)
    # The composite's own frame at t shows each camera as it was at that frame's time (the
    # composite runs on its own grid of 1/fps).
    shown_at = max(ft for ft, _ in frames if ft <= t + 1e-4)
    assert t - shown_at < FRAME_S
    picture = frame_at(frames, t)
    t = shown_at
    closeup_w, closeup_h = CAMERAS["closeup"]
    room_w, room_h = CAMERAS["room"]
    # The closeup is at its own height in the row (360): its counter reads as recorded.
    row_h = closeup_h
    assert read_counter(picture[:row_h, :closeup_w]) == read_counter(frame_at(decoded["closeup"], t))
    # The room view is scaled to the row's height: it must match its own frame at t, scaled.
    room_scaled_w = round(room_w * row_h / room_h / 2) * 2
    expected_room = cv2.resize(
        frame_at(decoded["room"], t), (room_scaled_w, row_h), interpolation=cv2.INTER_AREA
    )
    shown_room = picture[:row_h, closeup_w : closeup_w + room_scaled_w]
    assert float(np.abs(shown_room.astype(int) - expected_room.astype(int)).mean()) < 6
    # The cursor: the one dark full-height column in the strip's plot, at t's place on the axis.
    from review.composite import MARGIN, STRIP_H

    strip = picture[row_h:, :]
    assert strip.shape[0] == STRIP_H
    plot = strip[10 : STRIP_H - 24, MARGIN : picture.shape[1] - 12]
    dark = (plot < 60).mean(axis=0)
    x = MARGIN + float(np.average(np.flatnonzero(dark > 0.8)))
    duration = max(recorded.result.video_seconds.values())
    expected_x = MARGIN + (picture.shape[1] - 12 - MARGIN) * t / duration
    assert x == pytest.approx(expected_x, abs=3)
