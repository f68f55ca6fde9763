"""The recorder's status, as typed objects: what the watchdog, the status line, ``doctor`` and
``neoflix-capture status`` read, each by attribute, never by key name.

``RecorderStatus`` is what ``Daemon.status()`` returns. ``to_json`` gives the control socket's
wire format (``status --json``, one flat object: session control's fields at the top level,
then ``cameras``, ``audio``, ``monitors``, ``button``, ...); ``from_json`` reads it back on the
client's side. A field the other side does not send (an older recorder) takes its default.

Every device reports the one ``DeviceHealth`` of ``supervision``; a monitor adds its link's
figures (``LinkHealth``), the button its gestures (``ButtonHealth``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, TypeVar

from control.button import ButtonHealth
from session.controller import SessionStatus
from supervision.health import DeviceHealth
from vitals.link import LinkHealth
from vitals.parser import ParserStats

H = TypeVar("H", bound=DeviceHealth)


@dataclass(frozen=True)
class CameraStatus:
    health: DeviceHealth
    frames_encoded: int = 0
    last_frame_age_s: float | None = None
    frames_dropped: int = 0  # every frame the recording lacks: the two below together
    frames_skipped_at_source: int = 0
    frames_dropped_before_encoder: int = 0
    no_signal_frames: int = 0
    packets_dropped: int = 0
    write_errors: int = 0
    writer_backlog: int = 0
    writer_busy_s: float = 0.0
    preroll_s: float = 0.0
    preroll_bytes: int = 0


@dataclass(frozen=True)
class MonitorStatus:
    health: LinkHealth
    clock_offset_s: float | None = None  # the monitor's own clock against ours, where it sends one


@dataclass(frozen=True)
class CollectionStatus:
    """The collector's backlog and its last success and error (``collect``)."""

    backlog_files: int = 0
    backlog_bytes: int = 0
    oldest_queued_utc: str | None = None  # when the oldest file waiting was queued
    oldest_age_s: float | None = None
    deletion_requests_waiting: int = 0
    uploaded_files: int = 0  # since the recorder started
    uploaded_bytes: int = 0
    sessions_collected: int = 0
    last_success_utc: str | None = None
    last_error: str | None = None
    last_error_utc: str | None = None
    kept_not_collected: int = 0  # sessions past retention, kept because the archive lacks them
    files_held: int = 0  # not sent until the next start: not the recorder's, or refused for good


@dataclass(frozen=True)
class ServiceVerdict:
    """The watchdog's latest verdict (``recorder.service``)."""

    healthy: bool
    why: str


@dataclass(frozen=True)
class RecorderStatus:
    session: SessionStatus
    version: str = "unknown"
    table: str = ""
    uptime_s: float = 0.0
    cameras: dict[str, CameraStatus] = field(default_factory=dict)
    audio: DeviceHealth | None = None
    monitors: dict[str, MonitorStatus] = field(default_factory=dict)
    button: ButtonHealth | None = None
    motion: float | None = None  # the watched camera's moving fraction, where motion triggers
    vitals_samples: int = 0
    storage_free_bytes: int | None = None
    storage_free_minutes: int | None = None
    segment_seconds: float | None = None
    service: ServiceVerdict | None = None
    collection: CollectionStatus | None = None  # None: collection is off

    @property
    def state(self) -> str:
        return self.session.state

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "table": self.table,
            "uptime_s": self.uptime_s,
            **_plain(self.session),
            "cameras": {
                name: {"health": _plain(cam.health), **_plain(cam, skip=("health",))}
                for name, cam in self.cameras.items()
            },
            "audio": None if self.audio is None else _plain(self.audio),
            "monitors": {
                name: {**_plain(mon.health), "clock_offset_s": mon.clock_offset_s}
                for name, mon in self.monitors.items()
            },
            "button": None if self.button is None else _plain(self.button),
            "motion": self.motion,
            "vitals_samples": self.vitals_samples,
            "storage_free_bytes": self.storage_free_bytes,
            "storage_free_minutes": self.storage_free_minutes,
            "segment_seconds": self.segment_seconds,
            "service": None if self.service is None else _plain(self.service),
            "collection": None if self.collection is None else _plain(self.collection),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RecorderStatus:
        cameras = data.get("cameras") or {}
        monitors = data.get("monitors") or {}
        audio, button, service = data.get("audio"), data.get("button"), data.get("service")
        collection = data.get("collection")
        return cls(
            session=_read(SessionStatus, data),
            version=str(data.get("version", "unknown")),
            table=str(data.get("table", "")),
            uptime_s=float(data.get("uptime_s") or 0.0),
            cameras={
                str(name): _read(CameraStatus, cam, health=_health(DeviceHealth, cam.get("health") or {}))
                for name, cam in cameras.items()
                if isinstance(cam, Mapping)
            },
            audio=_health(DeviceHealth, audio) if isinstance(audio, Mapping) else None,
            monitors={
                str(name): MonitorStatus(_health(LinkHealth, mon), mon.get("clock_offset_s"))
                for name, mon in monitors.items()
                if isinstance(mon, Mapping)
            },
            button=_health(ButtonHealth, button) if isinstance(button, Mapping) else None,
            motion=data.get("motion"),
            vitals_samples=int(data.get("vitals_samples") or 0),
            storage_free_bytes=data.get("storage_free_bytes"),
            storage_free_minutes=data.get("storage_free_minutes"),
            segment_seconds=data.get("segment_seconds"),
            service=_read(ServiceVerdict, service) if isinstance(service, Mapping) else None,
            collection=_read(CollectionStatus, collection) if isinstance(collection, Mapping) else None,
        )


# Defaults for a device the other side described only in part.
_HEALTH_DEFAULTS: dict[str, Any] = {
    "kind": "",
    "name": "",
    "source": "",
    "state": "connecting",
    "since_ns": 0,
    "lost_since_ns": None,
    "lost_since_utc": None,
    "reconnects": 0,
    "last_error": None,
    "delivered": 0,
    "rate": 0.0,
    "callback_errors": 0,
}


def _health(kind: type[H], data: Mapping[str, Any]) -> H:
    values = {**_HEALTH_DEFAULTS}
    names = {f.name for f in fields(kind)}
    values.update({k: v for k, v in data.items() if k in names})
    if isinstance(values.get("lost_since_utc"), str):
        values["lost_since_utc"] = datetime.fromisoformat(values["lost_since_utc"])
    if "stats" in names and isinstance(values.get("stats"), Mapping):
        stats = values["stats"]
        values["stats"] = ParserStats(**{f.name: stats.get(f.name, 0) for f in fields(ParserStats)})
    return kind(**values)


T = TypeVar("T")


def _read(kind: type[T], data: Mapping[str, Any], **given: Any) -> T:
    """``kind`` from the fields ``data`` has (the rest take their defaults, or None)."""
    values: dict[str, Any] = {}
    for f in fields(kind):  # type: ignore[arg-type]
        if f.name in given:
            values[f.name] = given[f.name]
        elif f.name in data:
            values[f.name] = data[f.name]
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            values[f.name] = None
    return kind(**values)


def _plain(obj: Any, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """A dataclass as JSON-ready values: times as ISO text, nested dataclasses as objects."""
    out: dict[str, Any] = {}
    for f in fields(obj):
        if f.name in skip:
            continue
        value = getattr(obj, f.name)
        if isinstance(value, datetime):
            value = value.isoformat()
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            value = _plain(value)
        out[f.name] = value
    return out
