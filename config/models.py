"""The configuration schema: one pydantic model per section, every field bounded and described.

A station's config is validated before anything starts. ``extra="forbid"`` everywhere so a typo
in a field name is an error that names the field, not a setting silently ignored.
"""

from __future__ import annotations

from datetime import tzinfo
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from vitals.sample import Parameter


class _Section(BaseModel):
    # Strict: "yes", "10" or 1 where a boolean or a number belongs is a mistake to name, not to
    # guess at (TOML has real booleans and numbers). Paths are written as strings: ``FilePath``.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


# A path as TOML writes it (a string), in the strict sections.
FilePath = Annotated[Path, Strict(False)]
# Whole numbers in a TOML array, strict each; the array itself becomes the tuple.
StrictInt = Annotated[int, Strict()]
Point = Annotated[tuple[StrictInt, StrictInt], Strict(False)]
Rectangle = Annotated[tuple[StrictInt, StrictInt, StrictInt, StrictInt], Strict(False)]


def field_error(loc: tuple[int | str, ...], message: str, value: Any) -> ValidationError:
    """An error about the field at ``loc`` (relative to the model being checked), for checks
    that look at several fields at once: the loader then names that field, as for any other
    error, instead of reporting it against the config as a whole."""
    return ValidationError.from_exception_data(
        "Config",
        [
            InitErrorDetails(
                type=PydanticCustomError("config_check", "{message}", {"message": message}),
                loc=loc,
                input=value,
            )
        ],
    )


# --- cameras -------------------------------------------------------------------------------------


class V4L2Source(_Section):
    kind: Literal["v4l2"] = Field(description="A local camera through Video4Linux2.")
    device: Annotated[int, Field(ge=0, le=63)] | Annotated[str, Field(min_length=1, max_length=255)] = (
        Field(
            description="Device index (0 to 63) or path (/dev/video0, or a stable "
            "/dev/neoflix/camera-0)."
        )
    )
    fourcc: str | None = Field(
        default="MJPG",
        min_length=4,
        max_length=4,
        description="Pixel format to ask the driver for; MJPG lets USB 2 cameras reach 720p30.",
    )
    # V4L2's absolute exposure counts in 100 µs; 1 s is far beyond any usable video frame.
    exposure: float | None = Field(
        default=None,
        ge=1,
        le=10000,
        description="Fixed exposure in V4L2 exposure_absolute units of 100 µs (1 to 10000; 333 "
        "is a whole frame at 30 fps); unset leaves the driver's automatic exposure.",
    )
    white_balance_k: int | None = Field(
        default=None,
        ge=2000,
        le=10000,
        description="Fixed white balance in kelvin; unset leaves automatic white balance.",
    )


class StreamSource(_Section):
    kind: Literal["url"] = Field(description="A network camera stream (RTSP or HTTP).")
    url: str = Field(
        pattern=r"^(rtsp|rtsps|http|https)://",
        max_length=2048,
        description="Stream URL; credentials may be embedded and are never logged.",
    )


class FileSource(_Section):
    kind: Literal["file"] = Field(description="A video file played at real-time pace.")
    path: FilePath = Field(description="Video file to play.")
    loop: bool = Field(default=True, description="Start again at the end of the file.")


class TestPatternSource(_Section):
    kind: Literal["test_pattern"] = Field(
        description="A built-in moving test pattern with a frame counter (demo and tests)."
    )
    probe_every_s: float | None = Field(
        default=None,
        ge=1,
        le=3600,
        description="Sync probe: a white frame at every whole multiple of this many seconds of "
        "the monotonic clock (with the tone's beep and the simulator's HR step). Unset: off.",
    )


CameraSource = Annotated[
    V4L2Source | StreamSource | FileSource | TestPatternSource, Field(discriminator="kind")
]


class PrivacyMask(_Section):
    name: str = Field(default="", max_length=64, description="What the mask hides, for humans.")
    polygon: list[Point] = Field(
        min_length=3,
        max_length=64,
        description="Corners [x, y] in pixels of the encoded frame; the inside is blacked out.",
    )


class CameraConfig(_Section):
    name: str = Field(
        pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$",
        description="Short name used in file names and logs, e.g. 'closeup' or 'room'.",
    )
    source: CameraSource = Field(description="Where frames come from.")
    width: int = Field(default=1280, ge=160, le=3840, multiple_of=2, description="Encoded width.")
    height: int = Field(default=720, ge=120, le=2160, multiple_of=2, description="Encoded height.")
    fps: int = Field(default=30, ge=1, le=60, description="Frames per second to capture.")
    overlay: bool = Field(
        default=True, description="Burn the vitals into this camera's picture."
    )
    audio: bool = Field(
        default=False, description="Record the audio input with this camera (identifiable view)."
    )
    masks: list[PrivacyMask] = Field(
        default_factory=list, description="Regions blacked out before encoding."
    )

    @model_validator(mode="after")
    def _masks_inside_frame(self) -> CameraConfig:
        for i, mask in enumerate(self.masks):
            for x, y in mask.polygon:
                if not (0 <= x <= self.width and 0 <= y <= self.height):
                    raise field_error(
                        ("masks", i, "polygon"),
                        f"mask {mask.name or '(unnamed)'} corner ({x}, {y}) lies outside "
                        f"the {self.width}x{self.height} frame",
                        mask.model_dump(),
                    )
        return self


# --- audio ---------------------------------------------------------------------------------------


class AlsaAudio(_Section):
    kind: Literal["alsa"] = Field(description="An ALSA capture device.")
    device: str = Field(
        min_length=1,
        max_length=128,
        description="ALSA device name, e.g. 'default', 'hw:1,0' or 'plughw:CARD=USB'.",
    )


class FileAudio(_Section):
    kind: Literal["file"] = Field(description="An audio file played at real-time pace.")
    path: FilePath = Field(description="Audio file to play.")
    loop: bool = Field(default=True, description="Start again at the end of the file.")


class ToneAudio(_Section):
    kind: Literal["tone"] = Field(description="A synthetic sine tone (demo and tests).")
    frequency_hz: float = Field(default=440.0, gt=0, le=20000, description="Tone frequency.")
    probe_every_s: float | None = Field(
        default=None,
        ge=1,
        le=3600,
        description="Sync probe: silence, and a 50 ms 1 kHz beep at every whole multiple of this "
        "many seconds of the monotonic clock (the test pattern's flashes). Unset: off.",
    )


AudioSourceConfig = Annotated[AlsaAudio | FileAudio | ToneAudio, Field(discriminator="kind")]


class AudioConfig(_Section):
    source: AudioSourceConfig = Field(description="Where audio comes from.")
    sample_rate: int = Field(default=48000, ge=8000, le=96000, description="Samples per second.")
    channels: int = Field(default=1, ge=1, le=2, description="1 = mono, 2 = stereo.")
    bitrate: int = Field(default=96000, ge=32000, le=320000, description="AAC bit rate in bit/s.")


# --- vitals --------------------------------------------------------------------------------------


class MonitorConfig(_Section):
    name: str = Field(
        pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$",
        description="Short name of this monitor, e.g. 'oximeter'.",
    )
    protocol: Literal[
        "masimo", "intellivue", "ge_s5", "medibus", "nellcor", "nonin", "line_format"
    ] = Field(description="The monitor's serial output protocol.")
    port: str = Field(
        min_length=1,
        max_length=512,
        description="pyserial URL: /dev/ttyUSB0, /dev/neoflix/monitor-0, socket://host:port ...",
    )
    baudrate: int | None = Field(
        default=None, ge=300, le=921600, description="Override the protocol's default baud rate."
    )
    parity: Literal["N", "E", "O"] | None = Field(
        default=None, description="Override the protocol's parity (N, E or O)."
    )
    stopbits: Literal[1, 2] | None = Field(default=None, description="Override the stop bits.")
    rtscts: bool | None = Field(default=None, description="Override RTS/CTS flow control.")
    xonxoff: bool | None = Field(default=None, description="Override XON/XOFF flow control.")
    bytesize: Literal[7, 8] | None = Field(default=None, description="Override the data bits.")
    line_format: dict[str, Any] | None = Field(
        default=None,
        description="protocol 'line_format': how to read each line (mode, pattern, fields); "
        "the table's shape is in vitals/line_format.py.",
    )
    silence_timeout_s: float = Field(
        default=15.0,
        ge=2,
        le=300,
        description="Reconnect (and re-associate) after this long without data from the monitor.",
    )
    # No default of its own: _stale_after_default fills it in from the protocol's sample interval.
    stale_after_s: float = Field(
        gt=0,
        le=60,
        description="A value older than this is shown greyed. Default: twice the protocol's "
        "sample interval plus 1 s (masimo 5, intellivue 3, ge_s5 11, nonin 3 ...).",
    )

    @model_validator(mode="before")
    @classmethod
    def _stale_after_default(cls, data: Any) -> Any:
        # A fixed default cannot fit every family: GE sends every 5 s, IntelliVue every second.
        if isinstance(data, dict) and data.get("stale_after_s") is None:
            from vitals.cadence import SAMPLE_INTERVAL_S, default_stale_after_s

            protocol = data.get("protocol")
            # An unknown protocol is reported as such; a placeholder keeps "stale_after_s: field
            # required" from being reported beside it.
            default = 3.0
            if isinstance(protocol, str) and protocol in SAMPLE_INTERVAL_S:
                default = default_stale_after_s(protocol)
            data = {**data, "stale_after_s": default}
        return data

    @model_validator(mode="after")
    def _stale_after_covers_a_sample(self) -> MonitorConfig:
        from vitals.cadence import default_stale_after_s, sample_interval_s

        interval = sample_interval_s(self.protocol)
        if self.stale_after_s < interval:
            raise ValueError(
                f"stale_after_s: {self.stale_after_s:g} s is shorter than the {interval:g} s a "
                f"{self.protocol} monitor may leave between two samples, so its values would go "
                "grey while they are current; leave stale_after_s out for the default of "
                f"{default_stale_after_s(self.protocol):g} s, or set at least {interval:g}"
            )
        return self


    @model_validator(mode="after")
    def _line_format_complete(self) -> MonitorConfig:
        if self.protocol != "line_format":
            if self.line_format is not None:
                raise ValueError("line_format: only used with protocol = 'line_format'")
            return self
        if self.line_format is None:
            raise ValueError("line_format: protocol 'line_format' needs a [monitors.line_format] table")
        from vitals.line_format import LineFormatError, line_format_from_mapping

        try:
            line_format_from_mapping(self.line_format)
        except LineFormatError as exc:
            raise ValueError(str(exc)) from exc
        return self


# --- encoding, storage, session ------------------------------------------------------------------


class EncodingConfig(_Section):
    preset: Literal[
        "ultrafast", "superfast", "veryfast", "faster", "fast", "medium"
    ] = Field(default="veryfast", description="libx264 speed preset.")
    crf: int = Field(default=23, ge=0, le=51, description="libx264 constant rate factor.")
    keyframe_interval_s: float = Field(
        default=2.0, gt=0, le=10, description="Seconds between keyframes (segments cut on them)."
    )
    threads: int = Field(
        default=0, ge=0, le=16, description="libx264 threads; 0 lets x264 choose."
    )


class StorageConfig(_Section):
    directory: FilePath = Field(
        default=Path("/var/lib/neoflix-capture/recordings"),
        description="Where encrypted sessions are written.",
    )
    segment_seconds: float = Field(
        default=10.0, ge=2, le=600, description="Length of one encrypted segment file."
    )
    fsync_interval_s: float = Field(
        default=2.0, gt=0, le=60, description="How often open files are flushed to the disk."
    )
    delete_uncollected: bool = Field(
        default=False,
        description="Retention may destroy a session that has not been confirmed in the archive. "
        "Off: such a session is kept past its time and listed as a warning ('past retention, "
        "kept: not collected'), so nothing is lost because collection failed. Ignored while "
        "[collection] is enabled: then a session is destroyed only once the archive has it.",
    )
    reserve_minutes: float = Field(
        default=30,
        ge=0,
        le=1440,
        description="Free space kept in reserve, in minutes of this recorder's own bitrate: below "
        "it a new recording is refused (status, lamp and overlay say so) rather than started and "
        "cut off; no session is ever deleted to make room. 0 turns the check off.",
    )
    durable_within_s: float = Field(
        default=1.0,
        ge=0.5,
        le=60,
        description="A crash (kill, power cut after the next flush) loses at most about this much of "
        "each stream: what a slow stream (vitals, markers, a small picture) has written is pushed "
        "out in whole 64 KiB encrypted chunks, padded, when it has waited this long. Padding costs "
        "up to 64 KiB per slow stream this often.",
    )
    recipients: list[Annotated[str, Field(pattern=r"^age1[02-9ac-hj-np-z]{58}$")]] = Field(
        default_factory=list,
        description="age recipients (age1... public keys) of the review side.",
    )
    recipients_file: FilePath | None = Field(
        default=None, description="A file with one age1... recipient per line (comments allowed)."
    )
    audit_log: FilePath | None = Field(
        default=None,
        description="Append-only audit log (no patient data); default: audit.jsonl beside the "
        "recordings directory, so deleting recordings never touches it.",
    )
    retention_days: int = Field(
        default=30,
        ge=0,
        le=3650,
        description="Sessions are deleted this many days after they started (checked every few "
        "minutes; the session being recorded is never touched). 0 keeps them until deleted by "
        "hand: only where another process removes them once they are reviewed.",
    )


class SessionConfig(_Section):
    preroll_s: float = Field(
        default=60.0,
        ge=0,
        le=300,
        description="Seconds before the start command that every recording begins with (RAM only).",
    )
    max_duration_s: float = Field(
        default=7200, ge=10, le=6 * 3600, description="A recording stops by itself after this."
    )


TriggerParameter = Literal["SpO2", "HR", "PR"]


class TriggerConfig(_Section):
    vitals: bool = Field(
        default=True, description="Start when a pulse oximeter reports valid values (a sensor went on)."
    )
    vitals_parameters: list[TriggerParameter] = Field(
        default_factory=lambda: list[TriggerParameter](["SpO2", "HR"]),
        min_length=1,
        description="Parameters whose valid values start a recording (any one of them).",
    )
    vitals_hold_s: float = Field(
        default=5.0, ge=1, le=60, description="How long values must stay valid before starting."
    )
    motion: bool = Field(default=False, description="Also start on motion over the table.")
    motion_camera: str | None = Field(
        default=None,
        max_length=32,
        description="Camera watched for motion (default: the first).",
    )
    motion_region: Rectangle | None = Field(
        default=None, description="[x, y, width, height] in that camera's pixels; unset = whole frame."
    )
    motion_threshold: float = Field(
        default=0.02, gt=0, lt=1, description="Share of the region that must change to count as motion."
    )
    motion_hold_s: float = Field(
        default=3.0, ge=0.5, le=60, description="How long motion must last before starting."
    )
    post_roll_s: float = Field(
        default=300.0,
        ge=10,
        le=3600,
        description="An automatic recording stops after this long without valid vitals or motion.",
    )

    @model_validator(mode="after")
    def _motion_region_has_an_area(self) -> TriggerConfig:
        if self.motion_region is not None:
            x, y, width, height = self.motion_region
            if x < 0 or y < 0 or width <= 0 or height <= 0:
                raise field_error(
                    ("motion_region",),
                    "[x, y, width, height] needs x and y of 0 or more and a width and height "
                    "above 0",
                    list(self.motion_region),
                )
        return self


# A button held this long is stuck (or leant on), not a long press: nothing is discarded.
BUTTON_STUCK_AFTER_S = 10.0


class ButtonConfig(_Section):
    kind: Literal["none", "serial", "hid"] = Field(
        default="none",
        description="serial: a contact on a serial port's modem lines; hid: a USB button or foot switch.",
    )
    port: str | None = Field(
        default=None, min_length=1, max_length=512, description="serial: pyserial URL of the button's port."
    )
    line: Literal["CTS", "DSR", "CD", "RI"] = Field(
        default="CTS", description="serial: the modem status line the contact closes."
    )
    supply_line: Literal["DTR", "RTS"] = Field(
        default="RTS", description="serial: the output line held on as the contact's supply."
    )
    lamp_line: Literal["DTR", "RTS", "none"] = Field(
        default="DTR", description="serial: the output line driving the button's lamp ('none': no lamp)."
    )
    active_low: bool = Field(default=False, description="serial: pressed reads as the line off.")
    device: str | None = Field(
        default=None,
        min_length=1,
        max_length=255,
        description="hid: /dev/input/by-id/... event device of the button.",
    )
    key: str = Field(
        default="KEY_ENTER", min_length=1, max_length=32, description="hid: the key code the button sends."
    )
    long_press_s: float = Field(
        default=3.0,
        ge=1,
        lt=BUTTON_STUCK_AFTER_S,
        description="Hold this long to discard (the lamp blinks to confirm); under 10 s, after "
        "which a held button counts as stuck.",
    )
    idle_long_press: Literal["do_not_record", "nothing"] = Field(
        default="do_not_record",
        description="What a long press does when nothing is recording.",
    )

    double_press_ms: int = Field(
        default=400, ge=0, le=1000, description="Window for a double press (marker); 0 = off."
    )

    @model_validator(mode="after")
    def _device_named(self) -> ButtonConfig:
        if self.lamp_line == self.supply_line:
            raise ValueError("lamp_line: the lamp cannot share the contact's supply line")
        if self.kind == "serial" and not self.port:
            raise ValueError("port: a serial button needs the port its contact is wired to")
        if self.kind == "hid" and not self.device:
            raise ValueError("device: a USB button needs its /dev/input event device")
        return self


class StationConfig(_Section):
    table: str = Field(
        default="Table 1", min_length=1, max_length=40, description="Shown on the overlay."
    )
    control_socket: FilePath = Field(
        default=Path("/run/neoflix-capture/control.sock"),
        description="Unix socket for start/stop/status.",
    )


class CollectionConfig(_Section):
    """Where closed files go: an S3-compatible bucket that this table may only write to.

    The object keys are ``<site>/<table>/<session>/<file>``; ``site`` and ``table`` are slugs so
    a key never depends on how the overlay spells the table's name.
    """

    enabled: bool = Field(default=False, description="Upload every closed file to the archive.")
    endpoint: str | None = Field(
        default=None,
        pattern=r"^https?://[^\s/]+(/[^\s]*)?$",
        max_length=255,
        description="The S3 endpoint URL (https://s3.hospital.example, http://127.0.0.1:8333).",
    )
    bucket: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$",
        description="The archive bucket (S3 bucket naming rules).",
    )
    region: str = Field(
        default="us-east-1", min_length=1, max_length=64, description="The bucket's region."
    )
    site: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$",
        description="The unit or hospital: the first part of every object key (a slug).",
    )
    table: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$",
        description="This table: the second part of every object key (a slug, unique in the site).",
    )
    credentials_file: FilePath = Field(
        default=Path("/etc/neoflix-capture/collection.credentials"),
        description="AWS shared-credentials file ([default] aws_access_key_id, "
        "aws_secret_access_key), readable by the service user only; write-only keys.",
    )
    bandwidth_mbit_s: float = Field(
        default=0,
        ge=0,
        le=100_000,
        description="Upload at most this many Mbit/s on average (0: no cap). Uploads run at the "
        "lowest CPU priority anyway; a cap spares a shared hospital network.",
    )

    @model_validator(mode="after")
    def _complete_when_enabled(self) -> CollectionConfig:
        if self.enabled:
            for name in ("endpoint", "bucket", "site", "table"):
                if getattr(self, name) is None:
                    raise field_error((name,), f"collection is enabled but {name} is not set", None)
        return self


# The overlay's default panel, in the order a resuscitation is run: heart rate and saturation,
# then what the team sets on the ventilator and what it delivers, then everything else a monitor
# may send. Every parameter is listed, so by default nothing a monitor reports is hidden; what does
# not fit is counted in "+N more".
OVERLAY_PARAMETERS: tuple[str, ...] = (
    "HR", "SpO2", "FiO2", "PIP", "PEEP", "RR", "MV", "VTE", "MAP_AW", "VTI", "LEAK",
    "ETCO2", "FICO2", "ETO2", "PR", "PI", "TEMP", "NBP_SYS", "NBP_DIA", "NBP_MEAN",
    "IBP_SYS", "IBP_DIA", "IBP_MEAN", "SpCO", "SpMet", "SpHb", "PVI",
)  # fmt: skip
_PARAMETER_NAMES = {p.value.lower(): p.value for p in Parameter}


class OverlayConfig(_Section):
    """What the vitals column burned into the picture shows, the same for the whole recording."""

    timezone: str = Field(
        default="localtime",
        min_length=1,
        max_length=64,
        description="Zone of the local time shown beside UTC: an IANA name such as "
        "'Europe/Amsterdam', or 'localtime' for the system's own.",
    )
    pressure_unit: Literal["cmH2O", "mbar"] = Field(
        default="cmH2O",
        description="Unit of the airway pressures (PIP, PEEP, mean airway pressure) on the "
        "picture, whichever unit each monitor sends; the vitals log keeps the monitor's own.",
    )
    parameters: list[str] = Field(
        default_factory=lambda: list(OVERLAY_PARAMETERS),
        min_length=1,
        max_length=len(Parameter),
        description="The parameters shown, in this order (HR, PR and SpO2 are drawn large, "
        "first); one not listed is not shown. Names as in vitals.csv, any case.",
    )
    # Eight: HR and SpO2 and six rows (FiO2, PIP, PEEP, RR, MV, Vte by default) fit a 720p
    # column with the UTC line, the time since birth and two monitors' headings.
    max_parameters: int = Field(
        default=8,
        ge=1,
        le=len(Parameter),
        description="At most this many parameters are drawn; the rest with a value are "
        "counted as '+N more'.",
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, name: str) -> str:
        if name != "localtime":
            try:
                ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError, OSError):
                raise ValueError(
                    f"{name!r} is not a time zone this system knows: an IANA name such as "
                    "'Europe/Amsterdam', or 'localtime'"
                ) from None
        return name

    @field_validator("parameters")
    @classmethod
    def _known_parameters(cls, names: list[str]) -> list[str]:
        out: list[str] = []
        for name in names:
            known = _PARAMETER_NAMES.get(name.lower())
            if known is None:
                raise ValueError(
                    f"{name!r} is not a parameter the recorder knows "
                    f"({', '.join(_PARAMETER_NAMES.values())})"
                )
            if known in out:
                raise ValueError(f"{name!r} is listed more than once")
            out.append(known)
        return out

    def zone(self) -> tzinfo | None:
        """The local zone to show; None: the system's local time, as the C library has it."""
        return None if self.timezone == "localtime" else ZoneInfo(self.timezone)

    def shown_parameters(self) -> tuple[Parameter, ...]:
        return tuple(Parameter(name) for name in self.parameters)


class LoggingConfig(_Section):
    format: Literal["auto", "json", "console"] = Field(
        default="auto", description="auto = console on a terminal, JSON lines otherwise."
    )
    level: Literal["debug", "info", "warning", "error"] = Field(
        default="info", description="Lowest level logged."
    )


class Config(_Section):
    station: StationConfig = Field(default_factory=StationConfig, description="This table.")
    cameras: list[CameraConfig] = Field(min_length=1, max_length=4, description="The cameras.")
    audio: AudioConfig | None = Field(default=None, description="Audio input, if any.")
    monitors: list[MonitorConfig] = Field(
        default_factory=list, max_length=8, description="Vital-sign monitors."
    )
    encoding: EncodingConfig = Field(default_factory=EncodingConfig, description="Video encoder.")
    storage: StorageConfig = Field(default_factory=StorageConfig, description="Encrypted store.")
    session: SessionConfig = Field(default_factory=SessionConfig, description="Recording rules.")
    triggers: TriggerConfig = Field(default_factory=TriggerConfig, description="Automatic start/stop.")
    button: ButtonConfig = Field(default_factory=ButtonConfig, description="The bedside button.")
    logging: LoggingConfig = Field(default_factory=LoggingConfig, description="Log output.")
    collection: CollectionConfig = Field(
        default_factory=CollectionConfig, description="Collection into the archive (S3)."
    )
    overlay: OverlayConfig = Field(
        default_factory=OverlayConfig, description="The vitals column burned into the picture."
    )

    @model_validator(mode="after")
    def _names_unique(self) -> Config:
        for what, names in (
            ("cameras", [c.name for c in self.cameras]),
            ("monitors", [m.name for m in self.monitors]),
        ):
            for i, name in enumerate(names):
                if name in names[:i]:
                    entry = (self.cameras if what == "cameras" else self.monitors)[i]
                    raise field_error(
                        (what, i, "name"), f"name {name!r} is used more than once", entry.model_dump()
                    )
        return self

    @model_validator(mode="after")
    def _motion_camera_exists(self) -> Config:
        name = self.triggers.motion_camera
        if name is not None and name not in [c.name for c in self.cameras]:
            raise field_error(
                ("triggers", "motion_camera"), f"there is no camera named {name!r}", name
            )
        return self

    @model_validator(mode="after")
    def _motion_region_inside_frame(self) -> Config:
        region = self.triggers.motion_region
        if region is None:
            return self
        name = self.triggers.motion_camera or self.cameras[0].name
        camera = next((c for c in self.cameras if c.name == name), None)
        if camera is None:
            return self  # _motion_camera_exists says so
        x, y, width, height = region
        if x + width > camera.width or y + height > camera.height:
            raise field_error(
                ("triggers", "motion_region"),
                f"[{x}, {y}, {width}, {height}] reaches beyond the "
                f"{camera.width}x{camera.height} frame of camera {name!r}",
                list(region),
            )
        return self

    @model_validator(mode="after")
    def _audio_has_a_source(self) -> Config:
        wants_audio = [i for i, c in enumerate(self.cameras) if c.audio]
        if wants_audio and self.audio is None:
            i = wants_audio[0]  # named in the message: the section is what is missing
            raise field_error(
                ("cameras",),
                f"{self.cameras[i].name!r} records audio but there is no [audio] section",
                self.cameras[i].model_dump(),
            )
        return self
