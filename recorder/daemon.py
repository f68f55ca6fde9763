"""The recorder daemon: builds every pipeline from the config and runs the session state machine.

Encoders run from the moment the daemon starts, into each camera's in-memory pre-roll, so a
recording begins with the seconds before it was asked for; nothing touches the disk until then.

Threads, and where they meet:
- camera reader threads → ``CameraPipeline.on_frame`` (bounded queue);
- pipeline threads (overlay + x264) and the audio thread (AAC) → ``Interleaver`` (lock) →
  ``CameraRecorder`` (queue) → writer threads (mux, encrypt, disk);
- serial threads → ``SessionController.on_samples``: board, triggers and the open session;
- control socket threads, the button and the main loop → ``SessionController.handle``.
"""

from __future__ import annotations

import importlib.metadata
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from capture.audio import AudioChunk, AudioReader
from capture.camera_reader import CameraReader
from capture.encoder import AudioEncoder, VideoEncoder, estimated_bits_per_second
from capture.interleave import Interleaver
from capture.motion import MotionDetector
from capture.overlay import OverlayRenderer, OverlayState
from capture.pipeline import CameraPipeline
from capture.recording import CameraRecorder
from capture.segmenter import StreamLayout
from capture.sources import frames_skipped
from collect.collector import Collector
from config.models import BUTTON_STUCK_AFTER_S, CameraConfig, Config
from control.button import ButtonController, ButtonSource, EvdevButton, ModemLineButton
from control.gestures import GestureRecognizer
from control.socket import ControlServer
from recorder.commands import ControlCommands
from recorder.monitor_link import link_for
from recorder.overlay_view import frame_status, shown_values
from recorder.service import ServiceLoop
from recorder.source_factory import make_audio_source, make_frame_source
from recorder.status import (
    CameraStatus,
    CollectionStatus,
    MonitorStatus,
    RecorderStatus,
    ServiceVerdict,
)
from session.audit import AuditLog
from session.controller import CameraOutput, SessionController
from session.layout import audit_log_path
from session.lock import StorageBusy, StorageLock
from session.machine import Event
from session.recovery import recover_all
from session.retention import SessionKeeper
from store.keys import Recipient
from sync.audio_timeline import AudioTimeline
from sync.board import VitalsBoard
from sync.clock import AnchorKeeper, MediaClock, now_ns
from sync.monitor_clock import MonitorClock
from vitals.link import SerialLink
from vitals.sample import VitalSample

log = structlog.get_logger()

try:
    _VERSION = importlib.metadata.version("neoflix-capture")
except importlib.metadata.PackageNotFoundError:  # running from a checkout that is not installed
    _VERSION = "unknown"


@dataclass
class _Camera:
    config: CameraConfig
    reader: CameraReader
    pipeline: CameraPipeline
    recorder: CameraRecorder
    interleaver: Interleaver

    @property
    def frames_skipped(self) -> int:
        return frames_skipped(self.reader.source)

    @property
    def frames_dropped(self) -> int:
        """Every frame the recording lacks: skipped at a late source, or dropped before x264."""
        return self.pipeline.frames_dropped + self.frames_skipped


class RecorderError(Exception):
    """The recorder cannot do what was asked (and says why)."""


class AlreadyRunning(RecorderError):
    """Another recorder uses this storage directory."""


class Daemon:
    def __init__(self, config: Config, recipients: list[Recipient]) -> None:
        if not recipients:
            # Fail closed: without a review-side key nothing could ever be read back, and writing
            # anything unencrypted is not an option.
            raise RecorderError("no age recipient configured: refusing to record")
        self.config = config
        self._recipients = recipients
        self._clock = MediaClock(now_ns())
        # UTC for the overlay and the monitor-clock check; retaken from the main loop, so an NTP
        # correction reaches the drawn clock within seconds. Sessions anchor their segments.
        self._anchor = AnchorKeeper(_ANCHOR_EVERY_S)
        self.board = VitalsBoard(
            history_s=config.session.preroll_s + 30, priority=[m.name for m in config.monitors]
        )
        self._monitor_clocks: dict[str, MonitorClock] = {}
        self._stale_after = {m.name: m.stale_after_s for m in config.monitors}
        self._cameras: list[_Camera] = []
        self._links: list[SerialLink] = []
        self._audio: AudioReader | None = None
        self._audio_encoder: AudioEncoder | None = None
        self._audio_timeline: AudioTimeline | None = None
        self._control: ControlServer | None = None
        self.started = threading.Event()
        self.service: ServiceLoop | None = None
        self._bits_per_s = estimated_bits_per_second(config)
        self.audit = _open_audit(audit_log_path(config.storage.directory, config.storage.audit_log))
        self._motion: MotionDetector | None = None
        # Collection (``collect``): told as files close, started under the storage's lock.
        self.collector = (
            Collector(
                config.collection,
                config.storage.directory,
                audit=self.audit,
                recording=lambda: self.controller.session_id,
                bandwidth_mbit_s=config.collection.bandwidth_mbit_s,
            )
            if config.collection.enabled
            else None
        )
        self._build()
        audio_rate = config.audio.sample_rate if config.audio else None
        audio_channels = config.audio.channels if config.audio else 1
        self.controller = SessionController(
            config,
            recipients,
            self._clock,
            self.board,
            [
                CameraOutput(
                    c.config.name,
                    c.recorder,
                    StreamLayout(
                        c.config.width,
                        c.config.height,
                        audio_rate if c.config.audio else None,
                        audio_channels,
                    ),
                )
                for c in self._cameras
            ],
            audit=self.audit,
            frames_dropped=lambda: sum(c.frames_dropped for c in self._cameras),
            free_bytes=lambda: _free_bytes(config.storage.directory),
            bits_per_s=self._bits_per_s,
            closed_files=self.collector,
        )
        self.keeper = SessionKeeper(
            config.storage.directory,
            config.storage.retention_days,
            lambda: self.controller.session_id,
            audit=self.audit,
            # With an archive, a session leaves the edge only once the archive has it.
            delete_uncollected=config.storage.delete_uncollected and not config.collection.enabled,
            deletion_requests=config.collection.enabled,
        )
        self._retention: threading.Thread | None = None
        self._retention_due_ns = 0  # the first tick applies the rule
        self._button = self._make_button()
        self._commands = ControlCommands(self.controller, self.keeper, self.status)
        # Last, so a construction that fails holds nothing: a second recorder on this storage
        # would take over the control socket, and two would race over recovery and retention.
        try:
            self._storage_lock = StorageLock.acquire(config.storage.directory)
        except StorageBusy as exc:
            raise AlreadyRunning(str(exc)) from exc
        except OSError as exc:
            raise RecorderError(
                f"storage.directory: {config.storage.directory}: cannot use it: {exc.strerror or exc}"
            ) from exc

    # --- construction ------------------------------------------------------------------------

    def _build(self) -> None:
        cfg = self.config
        audio_cfg = cfg.audio
        for cam in cfg.cameras:
            recorder = CameraRecorder(cam.name, cfg.session.preroll_s)
            interleaver = Interleaver(recorder)
            encoder = VideoEncoder(
                cam.width,
                cam.height,
                cam.fps,
                preset=cfg.encoding.preset,
                crf=cfg.encoding.crf,
                keyframe_interval_s=cfg.encoding.keyframe_interval_s,
                threads=cfg.encoding.threads,
            )
            overlay = OverlayRenderer(
                cam.width,
                cam.height,
                enabled_panel=cam.overlay,
                local_zone=cfg.overlay.zone(),
                max_values=cfg.overlay.max_parameters,
            )
            holder: list[CameraReader] = []

            def lost_since(holder: list[CameraReader] = holder) -> datetime | None:
                return holder[0].health().lost_since_utc if holder else None

            pipeline = CameraPipeline(
                cam.name,
                width=cam.width,
                height=cam.height,
                fps=cam.fps,
                encoder=encoder,
                sink=interleaver,
                clock=self._clock,
                overlay=overlay,
                overlay_state=self._overlay_state_for(cam.name, lost_since),
                lost_since=lost_since,
                masks=[np.array(m.polygon, dtype=np.int32) for m in cam.masks],
            )
            reader = CameraReader(
                cam.name,
                make_frame_source(cam),
                self._motion_tap(cam.name, pipeline.on_frame),
                width=cam.width,
                height=cam.height,
            )
            holder.append(reader)
            self._cameras.append(_Camera(cam, reader, pipeline, recorder, interleaver))
        if audio_cfg is not None and any(c.audio for c in cfg.cameras):
            self._audio_encoder = AudioEncoder(
                audio_cfg.sample_rate, audio_cfg.channels, audio_cfg.bitrate
            )
            self._audio_timeline = AudioTimeline(self._clock, audio_cfg.sample_rate)
            self._audio = AudioReader(make_audio_source(audio_cfg), self._on_audio)
        for mon in cfg.monitors:
            self._links.append(link_for(mon, self._on_samples))

    def _overlay_state_for(
        self, camera: str, lost_since: Any
    ) -> Any:
        table = self.config.station.table
        shown_for = max(self.config.session.preroll_s, _SHOWN_FOR_AT_LEAST_S)
        parameters = self.config.overlay.shown_parameters()
        pressure_unit = self.config.overlay.pressure_unit
        has_preroll = self.config.session.preroll_s > 0

        def state_at(t_ns: int) -> OverlayState:
            status = frame_status(
                t_ns,
                self.controller.recording_since_ns,
                keeps_preroll=has_preroll and not self.controller.state.do_not_record,
                recording_until_ns=self.controller.recording_until_ns,
            )
            return OverlayState(
                table=table,
                camera=camera,
                utc=self._anchor.current.utc_at(t_ns),
                recording=status.recording,
                elapsed_s=status.elapsed_s,
                since_birth_s=self.controller.since_birth_s(t_ns),
                # Older than the pre-roll: dashes, not a greyed number (it may be another baby's).
                values=shown_values(
                    self.board.as_of(t_ns, self._stale_after, max_age_s=shown_for),
                    parameters=parameters,
                    pressure_unit=pressure_unit,
                ),
                no_signal_since=lost_since(),
                alert=self.controller.alert,
                kept_as_preroll=status.kept_as_preroll,
            )

        return state_at

    # --- running -----------------------------------------------------------------------------

    def _motion_tap(
        self, camera: str, on_frame: Callable[[np.ndarray, int], None]
    ) -> Callable[[np.ndarray, int], None]:
        """Watch this camera for motion, on its reader thread, before the frame is queued."""
        t = self.config.triggers
        watched = t.motion_camera or self.config.cameras[0].name
        if not t.motion or camera != watched:
            return on_frame
        detector = self._motion = MotionDetector(t.motion_region, threshold=t.motion_threshold)

        failed: list[bool] = []

        def tap(frame: np.ndarray, t_ns: int) -> None:
            try:
                if detector.update(frame, t_ns):
                    self.controller.activity.on_motion(t_ns, self.controller.rules.motion_gap_s)
            except Exception as exc:  # a broken motion trigger must never cost the camera its frames
                if not failed:
                    failed.append(True)
                    log.error("motion_detection_failed", camera=camera, error=str(exc))
            on_frame(frame, t_ns)

        return tap

    @property
    def button(self) -> ButtonController | None:
        return self._button

    def _make_button(self) -> ButtonController | None:
        b = self.config.button
        source: ButtonSource
        if b.kind == "serial":
            assert b.port is not None
            source = ModemLineButton(
                b.port,
                line=b.line,
                lamp_line=None if b.lamp_line == "none" else b.lamp_line,
                supply_line=b.supply_line,
                active_low=b.active_low,
            )
        elif b.kind == "hid":
            assert b.device is not None
            source = EvdevButton(b.device, b.key)
        else:
            return None
        return ButtonController(
            source,
            self.controller.on_gesture,
            lamp=self.controller.lamp,
            recognizer=GestureRecognizer(
                double_press_ms=b.double_press_ms,
                long_press_s=b.long_press_s,
                long_press_max_s=BUTTON_STUCK_AFTER_S,
            ),
        )

    def start(self) -> None:
        # Before anything records: close what a crash left open, so each session is whole again
        # (truncated files under their final names, a record of them, an audit entry).
        recover_all(self.config.storage.directory, self._recipients, self.audit)
        if self.collector is not None:
            self.collector.start()
        self.controller.start()
        for cam in self._cameras:
            cam.recorder.start()
            cam.pipeline.start()
            cam.reader.start()
        if self._audio is not None:
            self._audio.start()
        for link in self._links:
            link.start()
        self._control = ControlServer(self.config.station.control_socket, self.handle_request)
        self._control.start()
        if self._button is not None:
            self._button.start()
        self.audit.append(
            "service_started", table=self.config.station.table, cameras=len(self._cameras)
        )
        self.started.set()
        log.info(
            "recorder_started",
            cameras=[c.config.name for c in self._cameras],
            monitors=[m.name for m in self.config.monitors],
            audio=self._audio is not None,
            storage=str(self.config.storage.directory),
        )

    def run(self, stop: threading.Event) -> None:
        """The main loop, five times a second until ``stop`` is set: systemd's READY, WATCHDOG
        and STATUS (``recorder.service``), then the triggers and housekeeping."""
        service = ServiceLoop(storage_dir=self.config.storage.directory)
        self.service = service
        try:
            while True:
                service.tick(self.status())
                if stop.wait(0.2):
                    break
                self.tick()
        finally:
            service.stopping()

    def tick(self) -> None:
        self._anchor.refresh_if_due(now_ns())
        self.audit.retry_held()  # entries a full disk held back, once there is room
        self.controller.tick()
        self._apply_retention_when_due()

    def _apply_retention_when_due(self) -> None:
        """Every few minutes, in a thread of its own: destroying a long session's files can take
        longer than the main loop may spend without a watchdog ping."""
        now = now_ns()
        if now < self._retention_due_ns or (self._retention is not None and self._retention.is_alive()):
            return
        self._retention_due_ns = now + int(_RETENTION_EVERY_S * 1e9)
        self._retention = threading.Thread(target=self._retention_pass, name="retention", daemon=True)
        self._retention.start()

    def _retention_pass(self) -> None:
        try:
            self.keeper.apply_retention()
        except Exception:  # a pass that fails is tried again at the next one; recording goes on
            log.exception("retention_failed")

    def shutdown(self) -> None:
        if self._button is not None:
            self._button.stop()
        self.controller.handle(Event.SHUTDOWN, by="service")
        self.controller.stop()
        if self.collector is not None:
            self.collector.stop()  # what is not sent yet stays queued for the next start
        if self._control is not None:
            self._control.stop()
        for link in self._links:
            link.stop()
        if self._audio is not None:
            self._audio.stop()
        for cam in self._cameras:
            cam.reader.stop()
        for cam in self._cameras:
            cam.pipeline.stop()
            cam.interleaver.flush()
            cam.recorder.stop()
        self.audit.append("service_stopped", table=self.config.station.table)
        self.audit.close()
        self._storage_lock.release()
        log.info("recorder_stopped")

    # --- inputs ------------------------------------------------------------------------------

    def _on_samples(self, samples: list[VitalSample]) -> None:
        """A serial thread: samples to session control; the monitor's own clock checked."""
        self.controller.on_samples(samples)
        for s in samples:
            if s.monitor_time is None:
                continue
            clock = self._monitor_clocks.setdefault(s.monitor, MonitorClock())
            first = clock.reported_s is None
            offset = clock.observe(s.monitor_time, self._anchor.current.utc_at(s.host_ns))
            if offset is not None:
                log.info(
                    "monitor_clock_offset" if first else "monitor_clock_drifted",
                    monitor=s.monitor,
                    offset_s=round(offset, 1),
                )

    def _on_audio(self, chunk: AudioChunk, t_ns: int) -> None:
        assert self._audio_timeline is not None and self._audio_encoder is not None
        pts = self._audio_timeline.place(chunk.pcm.shape[1], t_ns)
        packets = self._audio_encoder.encode(chunk.pcm, pts)
        for cam in self._cameras:
            if cam.config.audio:
                for packet in packets:
                    cam.interleaver.write(packet)

    def media_seconds_now(self) -> float:
        """Media time now, on the clock every timestamp of this recorder is on (benchmarks)."""
        return self._clock.seconds(now_ns())

    # --- control socket ----------------------------------------------------------------------

    def handle_request(self, request: dict[str, Any]) -> dict[str, Any]:
        """One control-socket request (``recorder.commands``)."""
        return self._commands.handle(request)

    def status(self) -> RecorderStatus:
        now = now_ns()
        free = _free_bytes(self.config.storage.directory)
        return RecorderStatus(
            session=self.controller.status(),
            version=_VERSION,
            table=self.config.station.table,
            uptime_s=round((now - self._clock.epoch_ns) / 1e9, 1),
            cameras={
                c.config.name: CameraStatus(
                    health=c.reader.health(),
                    frames_encoded=c.pipeline.frames_encoded,
                    last_frame_age_s=round((now - c.pipeline.last_frame_ns) / 1e9, 2)
                    if c.pipeline.last_frame_ns
                    else None,
                    frames_dropped=c.frames_dropped,
                    frames_skipped_at_source=c.frames_skipped,
                    frames_dropped_before_encoder=c.pipeline.frames_dropped,
                    no_signal_frames=c.pipeline.no_signal_frames,
                    packets_dropped=c.recorder.packets_dropped,
                    write_errors=c.recorder.write_errors,
                    writer_backlog=c.recorder.backlog,
                    writer_busy_s=round(c.recorder.busy_s, 1),
                    preroll_s=round(c.recorder.preroll.duration_s, 2),
                    preroll_bytes=c.recorder.preroll.bytes,
                )
                for c in self._cameras
            },
            audio=self._audio.health() if self._audio else None,
            monitors={
                link.monitor: MonitorStatus(
                    link.health(), _rounded(self._monitor_clocks.get(link.monitor))
                )
                for link in self._links
            },
            button=self._button.health() if self._button else None,
            motion=None if self._motion is None else round(self._motion.moving_fraction, 4),
            vitals_samples=self.board.samples_total,
            storage_free_bytes=free,
            storage_free_minutes=None if free is None else round(free * 8 / self._bits_per_s / 60),
            segment_seconds=self.config.storage.segment_seconds,
            service=None if self.service is None else ServiceVerdict(*self.service.health),
            collection=None
            if self.collector is None
            else _collection_status(self.collector, len(self.keeper.kept_not_collected)),
        )


_RETENTION_EVERY_S = 300.0
# A value is shown (greyed once stale) for as long as the pre-roll reaches back, and at least this
# long, so a recorder configured without pre-roll still shows a monitor that speaks every minute.
_SHOWN_FOR_AT_LEAST_S = 30.0
_ANCHOR_EVERY_S = 10.0



def _collection_status(collector: Collector, kept_not_collected: int) -> CollectionStatus:
    stats = collector.stats()
    oldest_age = None
    if stats.oldest_queued_utc is not None:
        queued = datetime.fromisoformat(stats.oldest_queued_utc)
        oldest_age = round(max(0.0, (datetime.now(UTC) - queued).total_seconds()), 1)
    return CollectionStatus(
        **asdict(stats), oldest_age_s=oldest_age, kept_not_collected=kept_not_collected
    )


def _rounded(clock: MonitorClock | None) -> float | None:
    return None if clock is None or clock.offset_s is None else round(clock.offset_s, 1)


def _open_audit(path: Path) -> AuditLog:
    """The audit log, its folder created; a clear refusal when it cannot be written (a restart
    would not make it writable, so this is a config problem, not a crash)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return AuditLog(path)
    except OSError as exc:
        raise RecorderError(
            f"audit log {path}: cannot write it: {exc.strerror or exc}; every recording is "
            "logged there, so the recorder refuses to start (give its folder to the service user, "
            "or set storage.audit_log)"
        ) from exc


def _free_bytes(path: Path) -> int | None:
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        return shutil.disk_usage(probe).free
    except OSError:
        return None


def wait_for_frames(daemon: Daemon, timeout_s: float = 10.0) -> bool:
    """True once every camera has encoded at least one frame (used by demo, tests, READY)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if all(c.pipeline.frames_encoded > 0 for c in daemon._cameras):
            return True
        time.sleep(0.05)
    return False
