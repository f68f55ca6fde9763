"""Export a recorded session for review: one playable MP4 per camera and the vitals as CSV.

Runs on the review workstation, which holds the identity (secret key). The session is verified
first (``review.verify``) and only what verified is exported, in the manifest's order: a missing,
damaged or foreign stretch stays a gap in the MP4's timestamps, never a splice of later frames
into it, and a bad file never ends the export. Segments are joined without re-encoding: their
packets are copied into one MP4 per camera. The report goes beside the media (``report.json``,
``report.txt``), and the output is built privately and all or nothing (``review.export_folder``).

Every camera's MP4 starts at one media time, the earliest packet of any camera
(``media_start_s`` in session.json), so the files agree with each other by themselves; the
review page (``review.viewer``) and, when asked for, the composite (``review.composite``) play
them on that clock.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import structlog

from review.composite import strip_data, write_composite
from review.export_folder import COMPOSITE, REPORT_JSON, REPORT_TXT, SUMMARY, ExportError, ExportFolder
from review.report import FileReport, Piece, SessionReport
from review.targets import DEFAULT_TARGETS, Target
from review.trends import write_trends_svg
from review.verify import verify_session
from review.viewer import VIEWER, page_data, render_page
from session.layout import MANIFEST, MARKERS, PARTIAL, VITALS
from store.age_reader import AgeReader
from store.errors import AgeError, TruncatedError
from store.keys import Identity

log = structlog.get_logger()

# A segment's timestamps are moved onto the media clock by at most this (``_piece_shift``): the
# muxer's move is a few frames; more would mean the file is not the segment listed (review.verify
# does not accept it as that segment either).
MAX_SHIFT_S = 0.5

__all__ = ["ExportError", "ExportResult", "decrypt", "export_session"]

VITALS_COLUMNS = (
    "utc",
    "t_since_start_s",
    "t_since_birth_s",
    "media_time_s",
    "monitor",
    "parameter",
    "value",
    "unit",
    "valid",
    "source",
    "alarm",
    "flags",
    "monitor_time",
)


@dataclass
class ExportResult:
    session: str
    videos: dict[str, Path] = field(default_factory=dict)
    video_seconds: dict[str, float] = field(default_factory=dict)
    vitals_csv: Path | None = None
    vitals_rows: int = 0
    trends_svg: Path | None = None
    markers_csv: Path | None = None
    markers: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    report: SessionReport | None = None  # what the export was checked against (review.verify)
    # Media time of each camera's first exported frame; every MP4's t=0 is ``media_start_s``.
    first_frame_s: dict[str, float] = field(default_factory=dict)
    media_start_s: float = 0.0
    viewer: Path | None = None
    composite: Path | None = None


def decrypt(path: Path, identities: Sequence[Identity]) -> tuple[bytes, bool]:
    """The plaintext of an age file, and whether it was complete."""
    out = bytearray()
    with open(path, "rb") as f:
        reader = AgeReader(f, identities)
        try:
            for chunk in reader.iter_chunks():
                out += chunk
        except TruncatedError:
            return bytes(out), False
    return bytes(out), True


def export_session(
    session_dir: Path,
    identities: Sequence[Identity],
    out_dir: Path,
    *,
    spo2_targets: Sequence[Target] = DEFAULT_TARGETS,
    composite: bool = False,
    progress: Callable[[float], None] | None = None,
) -> ExportResult:
    """Verify the session, then export what verified into ``out_dir`` (see the module docstring).

    Raises ``ExportError`` for a folder that cannot take this export, and
    ``review.verify.WrongIdentityError`` when nothing in the session opens with ``identities``;
    either way nothing is written.
    """
    if not session_dir.is_dir():
        raise ExportError(f"{session_dir}: not a session directory")
    if out_dir.resolve().is_relative_to(session_dir.resolve()):
        raise ExportError(f"{out_dir}: inside the session directory; export it somewhere else")
    report = verify_session(session_dir, identities)
    with ExportFolder(out_dir, report.session) as folder:
        result = _export(session_dir, identities, folder, report, spo2_targets, composite, progress)
        folder.commit()
    return result


def _export(
    session_dir: Path,
    identities: Sequence[Identity],
    folder: ExportFolder,
    report: SessionReport,
    spo2_targets: Sequence[Target],
    composite: bool = False,
    progress: Callable[[float], None] | None = None,
) -> ExportResult:
    manifest = {} if report.fallback else _read_manifest(session_dir, identities)
    result = ExportResult(session=report.session, report=report)
    # One origin for every camera: each MP4's t=0 is this same media time, so the files agree by
    # themselves (a camera whose first packet came later starts with an empty edit, not at 0).
    start_s = _common_origin(session_dir, report, identities)
    for camera, verified in report.cameras.items():
        if not verified.pieces:
            result.warnings.append(f"camera {camera}: nothing verified to export")
            continue
        name = f"{camera}.mp4"
        joined = _join_pieces(
            session_dir, verified.pieces, identities, folder.new_file(name), result.warnings, start_s
        )
        if joined is None:
            folder.drop(name)
            result.warnings.append(f"camera {camera}: nothing readable to export")
            continue
        result.videos[camera] = folder.final(name)
        result.video_seconds[camera] = joined.end_s - start_s
        result.first_frame_s[camera] = joined.first_frame_s
    verdicts = {f.file: f for f in report.files}
    result.markers = _read_jsonl(session_dir, MARKERS, identities, result.warnings, verdicts)
    births = [m["t"] for m in result.markers if m["label"].lower() == "birth"]
    birth_s = births[-1] if births else None
    if result.markers:
        _write_markers_csv(result.markers, folder.new_file("markers.csv"), start_s, birth_s)
        result.markers_csv = folder.final("markers.csv")
    vitals = _read_jsonl(session_dir, VITALS, identities, result.warnings, verdicts)
    if vitals:
        result.vitals_rows = _write_vitals_csv(vitals, folder.new_file("vitals.csv"), start_s, birth_s)
        result.vitals_csv = folder.final("vitals.csv")
        trends = folder.new_file("trends.svg")
        if _write_trends(vitals, result, trends, manifest, start_s, birth_s, spo2_targets):
            result.trends_svg = folder.final("trends.svg")
        else:
            folder.drop("trends.svg")
    else:
        result.warnings.append("no vitals in this session")
    folder.new_file(REPORT_JSON).write_text(json.dumps(report.to_json(), indent=1))
    folder.new_file(REPORT_TXT).write_text(report.plain() + "\n")
    summary = {
        "session": result.session,
        "table": manifest.get("table"),
        "started_utc": manifest.get("started_utc"),
        "ended_utc": manifest.get("ended_utc"),
        "media_start_s": start_s,
        "birth_media_s": birth_s,
        "markers": result.markers,
        "media_epoch_utc": manifest.get("media_epoch_utc"),
        "videos": {k: str(v.name) for k, v in result.videos.items()},
        "video_seconds": result.video_seconds,
        "vitals_rows": result.vitals_rows,
        "trends": result.trends_svg.name if result.trends_svg else None,
        "segments": manifest.get("segments", []),
        "cameras": _camera_timeline(result, manifest, report, start_s),
        "warnings": result.warnings,
        "integrity": {"whole": report.whole, "manifest": report.manifest, "report": REPORT_JSON},
    }
    result.media_start_s = start_s
    if result.videos:
        page = _write_viewer(result, folder, summary, vitals, manifest, spo2_targets)
        if composite:
            _write_composite(result, folder, summary, page, progress)
    folder.new_file(SUMMARY).write_text(json.dumps(summary, indent=1))
    return result


def _write_viewer(
    result: ExportResult,
    folder: ExportFolder,
    summary: dict[str, Any],
    vitals: list[dict[str, Any]],
    manifest: dict[str, Any],
    spo2_targets: Sequence[Target],
) -> dict[str, Any]:
    report = result.report
    gaps = {name: cam.gaps for name, cam in report.cameras.items()} if report else {}
    started = manifest.get("started_s")
    data = page_data(
        summary,
        vitals,
        spo2_targets,
        gaps,
        float(started) if isinstance(started, int | float) else None,
    )
    folder.new_file(VIEWER).write_text(render_page(data), encoding="utf-8")
    result.viewer = folder.final(VIEWER)
    summary["viewer"] = VIEWER
    return data


def _write_composite(
    result: ExportResult,
    folder: ExportFolder,
    summary: dict[str, Any],
    page: dict[str, Any],
    progress: Callable[[float], None] | None,
) -> None:
    cameras: dict[str, dict[str, Any]] = summary["cameras"]
    with_sound = [name for name, c in cameras.items() if c.get("audio")]
    fps = max((float(c.get("fps") or 30) for c in cameras.values()), default=30.0)
    target = folder.new_file(COMPOSITE)
    write_composite(
        [folder.being_written(result.videos[name].name) for name in cameras],
        folder.being_written(result.videos[with_sound[0]].name) if with_sound else None,
        strip_data(page),
        target,
        fps=fps,
        progress=progress,
    )
    result.composite = folder.final(COMPOSITE)
    summary["composite"] = COMPOSITE


def _camera_timeline(
    result: ExportResult, manifest: dict[str, Any], report: SessionReport, start_s: float
) -> dict[str, dict[str, Any]]:
    """Per camera, what a player needs to put its MP4 on the session's clock: the media time of
    its first frame (and where that is in the MP4, which starts at ``media_start_s`` for all),
    its frame rate, the spans of its segments and the gaps the integrity check found."""
    profiles = {
        c.get("name"): c for c in manifest.get("cameras", []) if isinstance(c, dict)
    }
    out: dict[str, dict[str, Any]] = {}
    for camera, video in result.videos.items():
        profile = profiles.get(camera, {})
        verified = report.cameras.get(camera)
        first = result.first_frame_s[camera]
        out[camera] = {
            "file": video.name,
            "first_frame_s": round(first, 6),
            "first_frame_in_mp4_s": round(first - start_s, 6),
            "seconds": round(result.video_seconds[camera], 6),
            "fps": profile.get("fps"),
            "width": profile.get("width"),
            "height": profile.get("height"),
            "audio": bool(profile.get("audio", False)),
            "spans": [[p.start_s, p.end_s] for p in verified.pieces] if verified else [],
            "gaps": [list(g) for g in verified.gaps] if verified else [],
        }
    return out


def _write_trends(
    vitals: list[dict[str, Any]],
    result: ExportResult,
    target: Path,
    manifest: dict[str, Any],
    start_s: float,
    birth_s: float | None,
    spo2_targets: Sequence[Target],
) -> bool:
    end_s = start_s + max(result.video_seconds.values()) if result.video_seconds else None
    table = manifest.get("table")
    started = manifest.get("started_s")
    try:
        trends = write_trends_svg(
            vitals,
            result.markers,
            target,
            start_s=start_s,
            birth_s=birth_s,
            end_s=end_s,
            table=table if isinstance(table, str) else None,
            session=result.session,
            started_s=float(started) if isinstance(started, int | float) else None,
            spo2_targets=spo2_targets,
        )
    except Exception as exc:
        # The plot only redraws what vitals.csv already holds: a record it cannot draw must not
        # cost the reviewer the session summary or the rest of the export.
        log.exception("trend plot failed")
        result.warnings.append(f"trend plot not written: {exc}")
        return False
    if trends is None:
        result.warnings.append("no valid vitals to plot; trends.svg not written")
        return False
    return True


def _read_manifest(session_dir: Path, identities: Sequence[Identity]) -> dict[str, Any]:
    """The manifest's fields for the summary; the report says whether it can be trusted."""
    try:
        data, complete = decrypt(session_dir / MANIFEST, identities)
        manifest = json.loads(data) if complete else None
    except (OSError, AgeError, ValueError):
        return {}
    return manifest if isinstance(manifest, dict) else {}


def _authenticated(path: Path, identities: Sequence[Identity]) -> tuple[bytes, bool, str]:
    """What of an age file authenticates (in memory), whether that is all of it, and the SHA-256
    of its ciphertext: the bytes verified are the bytes exported, or none are."""
    data = path.read_bytes()
    out = bytearray()
    try:
        for chunk in AgeReader(io.BytesIO(data), identities, name=path.name).iter_chunks():
            out += chunk
    except AgeError:
        return bytes(out), False, hashlib.sha256(data).hexdigest()
    return bytes(out), True, hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class _Joined:
    first_frame_s: float  # media time of the first video frame (its PTS)
    end_s: float  # media time just after the last packet


def _first_packet_s(data: bytes) -> float | None:
    """Media time of the earliest DTS among a segment's first packets (audio may lead the first
    keyframe, and a B-frame stream decodes before it presents)."""
    earliest: float | None = None
    with av.open(io.BytesIO(data), "r", format="mpegts") as seg:
        for n, packet in enumerate(seg.demux()):
            if n > 64:
                break
            if packet.dts is not None and packet.stream.type in ("video", "audio"):
                t = float(packet.dts * packet.time_base)
                earliest = t if earliest is None else min(earliest, t)
    return earliest


def _piece_shift(data: bytes, piece: Piece) -> float:
    """Seconds to add to a segment's timestamps to put them on the session's media clock.

    Zero but for a segment whose first frames decode before media time 0 (a recording that starts
    in the recorder's first second): the MPEG-TS muxer moves that whole file later so no DTS is
    negative, and its frames would overlap the next segment's by a frame or two. The manifest
    lists where its first frame really is (its first keyframe's PTS), which undoes the move."""
    with av.open(io.BytesIO(data), "r", format="mpegts") as seg:
        for n, packet in enumerate(seg.demux()):
            if n > 256:
                break
            if packet.stream.type == "video" and packet.is_keyframe and packet.pts is not None:
                shift = piece.start_s - float(packet.pts * packet.time_base)
                return shift if 0.0005 < abs(shift) < MAX_SHIFT_S else 0.0
    return 0.0


def _common_origin(session_dir: Path, report: SessionReport, identities: Sequence[Identity]) -> float:
    """The media time every exported MP4 starts at: the earliest packet of any camera's first
    verified piece, so no stream needs a negative timestamp."""
    firsts: list[float] = []
    for verified in report.cameras.values():
        for piece in verified.pieces:
            try:
                data, _complete, digest = _authenticated(session_dir / piece.file, identities)
                first = _first_packet_s(data) if data and digest == piece.sha256 else None
                if first is not None:
                    first += _piece_shift(data, piece)
            except (OSError, av.FFmpegError):
                first = None
            if first is not None:
                firsts.append(first)
                break
    return min(firsts, default=0.0)


def _join_pieces(
    session_dir: Path,
    pieces: list[Piece],
    identities: Sequence[Identity],
    target: Path,
    warnings: list[str],
    origin_s: float,
) -> _Joined | None:
    """Copy the packets of every verified piece, in order, into one MP4, each at its own media
    time less ``origin_s``: a stretch that did not verify stays a gap. None when nothing was
    readable."""
    output = av.open(str(target), "w", format="mp4", options={"movflags": "+faststart"})
    out_streams: dict[str, Any] = {}
    last_dts: dict[str, int] = {}
    first_frame_s: float | None = None
    end_s: float | None = None
    try:
        for piece in pieces:
            try:
                data, complete, digest = _authenticated(session_dir / piece.file, identities)
            except OSError as exc:
                warnings.append(f"{piece.file}: not exported: {exc.strerror or exc}")
                continue
            if digest != piece.sha256:
                warnings.append(f"{piece.file}: changed since it was verified; not exported")
                continue
            if not data:
                continue
            cut = not (piece.whole and complete)
            # A segment cut short (or damaged) ends mid-packet: the demuxer hands that last packet
            # over as if whole, and a player would show it as a smeared frame (or a click). So each
            # stream's newest packet is held back until the next one proves it complete.
            held: dict[str, Any] = {}
            piece_shift = _piece_shift(data, piece)
            with av.open(io.BytesIO(data), "r", format="mpegts") as seg:
                for stream in seg.streams:
                    kind = stream.type
                    if kind in ("video", "audio") and kind not in out_streams:
                        out_streams[kind] = output.add_stream_from_template(stream)
                for arrived in seg.demux():
                    kind = arrived.stream.type
                    if kind not in out_streams or arrived.dts is None or arrived.pts is None:
                        continue
                    packet = arrived
                    if cut:
                        previous, held[kind] = held.get(kind), arrived
                        if previous is None:
                            continue
                        packet = previous
                    if packet.dts is None or packet.pts is None:  # checked as it arrived
                        continue
                    tb = packet.time_base
                    # Every stream of every camera is shifted by the same media time, so A/V sync
                    # is kept, and so is every gap between pieces and between cameras.
                    shift = round((origin_s - piece_shift) / tb)
                    packet.dts -= shift
                    packet.pts -= shift
                    if kind in last_dts and packet.dts <= last_dts[kind]:
                        # Reaches back into what was written (segments that overlap by a frame
                        # the shift above could not place): dropped, as DTS must rise.
                        continue
                    last_dts[kind] = packet.dts
                    if kind == "video":  # the first GOP may present in another order than it decodes
                        pts_s = float(packet.pts * tb) + origin_s
                        first_frame_s = pts_s if first_frame_s is None else min(first_frame_s, pts_s)
                    packet_end = float((packet.pts + (packet.duration or 0)) * tb) + origin_s
                    end_s = packet_end if end_s is None else max(end_s, packet_end)
                    packet.stream = out_streams[kind]
                    output.mux(packet)
            if cut:
                warnings.append(
                    f"{piece.file}: cut short or damaged: exported to its last authenticated chunk "
                    f"({piece.end_s - piece.start_s:.1f} s), less the packet it ended in"
                )
    finally:
        output.close()
    if end_s is None:
        return None
    return _Joined(first_frame_s if first_frame_s is not None else origin_s, end_s)


def _read_jsonl(
    session_dir: Path,
    name: str,
    identities: Sequence[Identity],
    warnings: list[str],
    verdicts: dict[str, FileReport],
) -> list[dict[str, Any]]:
    path = session_dir / name
    if not path.exists():
        path = session_dir / (name + PARTIAL)
        if not path.exists():
            return []
    verdict = verdicts.get(path.name)
    if verdict is not None and verdict.kind not in ("complete", "truncated", "tampered"):
        warnings.append(f"{path.name}: not exported: {verdict.kind.replace('_', ' ')}: {verdict.detail}")
        return []
    try:
        data, complete, _digest = _authenticated(path, identities)
    except OSError as exc:
        warnings.append(f"{name}: not exported: {exc.strerror or exc}")
        return []
    if not complete:
        warnings.append(f"{path.name}: cut short or damaged: exported what authenticated")
    records = []
    for line in data.decode("utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue  # the last line of a log cut mid-write
        if isinstance(record, dict):
            records.append(record)
    return records


def _relative(t: float, origin: float | None) -> str:
    return "" if origin is None else f"{t - origin:.3f}"


def _write_markers_csv(
    markers: list[dict[str, Any]], target: Path, start_s: float, birth_s: float | None
) -> None:
    with open(target, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(("utc", "t_since_start_s", "t_since_birth_s", "label", "by"))
        for m in markers:
            writer.writerow(
                [m["utc"], _relative(m["t"], start_s), _relative(m["t"], birth_s), m["label"], m["by"]]
            )


def _write_vitals_csv(
    records: list[dict[str, Any]], target: Path, start_s: float, birth_s: float | None
) -> int:
    with open(target, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(VITALS_COLUMNS)
        for rec in records:
            writer.writerow(
                [
                    rec["utc"],
                    _relative(rec["t"], start_s),
                    _relative(rec["t"], birth_s),
                    f"{rec['t']:.3f}",
                    rec["monitor"],
                    rec["parameter"],
                    "" if rec["value"] is None else rec["value"],
                    rec["unit"],
                    int(rec["valid"]),
                    rec["source"],
                    int(rec["alarm"]),
                    ";".join(rec["flags"]),
                    rec["monitor_time"] or "",
                ]
            )
    return len(records)
