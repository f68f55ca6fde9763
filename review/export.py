"""Export a recorded session for review: one playable MP4 per camera and the vitals as CSV.

Runs on the review workstation, which holds the identity (secret key). Segments are joined
without re-encoding: their packets are copied into one MP4 per camera, so the export is fast and
loses nothing. A segment cut short by a crash contributes everything up to its last complete
chunk; what was lost is reported, never hidden.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import structlog

from review.trends import write_trends_svg
from review.verify import SessionReport, verify_session
from session.layout import MANIFEST, MARKERS, PARTIAL, VITALS, parse_segment_name
from store.age_reader import AgeReader
from store.errors import AgeError, TruncatedError
from store.keys import Identity

log = structlog.get_logger()

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


class ExportError(Exception):
    """The session cannot be exported (and says why)."""


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
    session_dir: Path, identities: Sequence[Identity], out_dir: Path
) -> ExportResult:
    """Verify the session (``review.verify``), then export what verified into ``out_dir``.

    The output is private and all or nothing: it is built in a temporary folder (0700, files
    0600, whatever the umask) beside ``out_dir`` and moved into it only once whole; a failure
    leaves no plaintext behind. ``out_dir`` holds one session: the export of another is refused.
    """
    if not session_dir.is_dir():
        raise ExportError(f"{session_dir}: not a session directory")
    report = verify_session(session_dir, identities)
    _refuse_another_session(out_dir, report.session)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))  # mode 0700
    try:
        result = _export(session_dir, identities, work, report)
        (work / "report.json").write_text(json.dumps(report.to_json(), indent=1))
        (work / "report.txt").write_text(report.plain() + "\n")
        out_dir.mkdir(mode=0o700, exist_ok=True)
        os.chmod(out_dir, 0o700)
        for stale in out_dir.iterdir():  # the same session exported again: replaced whole
            if stale.is_file() and not stale.is_symlink():
                stale.unlink()
        for made in sorted(work.iterdir()):
            os.chmod(made, 0o600)
            os.replace(made, out_dir / made.name)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result.report = report
    result.videos = {k: out_dir / v.name for k, v in result.videos.items()}
    for name in ("vitals_csv", "markers_csv", "trends_svg"):
        made_path = getattr(result, name)
        if made_path is not None:
            setattr(result, name, out_dir / made_path.name)
    return result


def _refuse_another_session(out_dir: Path, session: str) -> None:
    summary = out_dir / "session.json"
    if out_dir.is_dir() and any(out_dir.iterdir()):
        try:
            other = json.loads(summary.read_text()).get("session")
        except (OSError, ValueError):
            other = None
        if other != session:
            raise ExportError(
                f"{out_dir}: already holds "
                + (f"the export of session {other}" if other else "other files")
                + "; export each session into a folder of its own"
            )


def _export(
    session_dir: Path, identities: Sequence[Identity], out_dir: Path, report: SessionReport
) -> ExportResult:
    manifest = _read_manifest(session_dir, identities)
    result = ExportResult(session=report.session)
    segments = _segment_files(session_dir)
    cameras = [c["name"] for c in manifest.get("cameras", [])] or sorted(segments)
    starts: list[float] = []
    for camera in cameras:
        if manifest.get("segments"):
            # What verified, in the manifest's order: a missing or bad stretch stays a gap.
            files = [session_dir / name for name in report.trusted_segments(camera)]
        else:  # no manifest to go by: the files in name order, each checked as it is read
            files = [path for _index, path in sorted(segments.get(camera, []))]
        if not files:
            result.warnings.append(f"camera {camera}: no segments")
            continue
        target = out_dir / f"{camera}.mp4"
        first_s, seconds = _join_segments(files, identities, target, result.warnings)
        if first_s is not None:
            starts.append(first_s)
            result.videos[camera] = target
            result.video_seconds[camera] = seconds
    start_s = min(starts) if starts else 0.0
    result.markers = _read_jsonl(session_dir, MARKERS, identities, result.warnings)
    births = [m["t"] for m in result.markers if m["label"].lower() == "birth"]
    birth_s = births[-1] if births else None
    if result.markers:
        result.markers_csv = out_dir / "markers.csv"
        _write_markers_csv(result.markers, result.markers_csv, start_s, birth_s)
    vitals = _read_jsonl(session_dir, VITALS, identities, result.warnings)
    if vitals:
        result.vitals_csv = out_dir / "vitals.csv"
        result.vitals_rows = _write_vitals_csv(vitals, result.vitals_csv, start_s, birth_s)
        result.trends_svg = _write_trends(vitals, result, out_dir, manifest, start_s, birth_s)
    else:
        result.warnings.append("no vitals in this session")
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
        "warnings": result.warnings,
    }
    summary["integrity"] = {"whole": report.whole, "manifest": report.manifest}
    (out_dir / "session.json").write_text(json.dumps(summary, indent=1))
    return result


def _write_trends(
    vitals: list[dict[str, Any]],
    result: ExportResult,
    out_dir: Path,
    manifest: dict[str, Any],
    start_s: float,
    birth_s: float | None,
) -> Path | None:
    end_s = start_s + max(result.video_seconds.values()) if result.video_seconds else None
    table = manifest.get("table")
    try:
        trends = write_trends_svg(
            vitals,
            result.markers,
            out_dir / "trends.svg",
            start_s=start_s,
            birth_s=birth_s,
            end_s=end_s,
            table=table if isinstance(table, str) else None,
            session=result.session,
        )
    except Exception as exc:
        # The plot only redraws what vitals.csv already holds: a record it cannot draw must not
        # cost the reviewer the session summary or the rest of the export.
        log.exception("trend plot failed")
        result.warnings.append(f"trend plot not written: {exc}")
        return None
    if trends is None:
        result.warnings.append("no valid vitals to plot; trends.svg not written")
        return None
    return trends.path


def _segment_files(session_dir: Path) -> dict[str, list[tuple[int, Path]]]:
    """Each camera's segment files with their index, by exact camera name."""
    out: dict[str, list[tuple[int, Path]]] = {}
    for path in session_dir.iterdir():
        name = parse_segment_name(path.name)
        if name is not None:
            out.setdefault(name.camera, []).append((name.index, path))
    return out


def _read_manifest(session_dir: Path, identities: Sequence[Identity]) -> dict[str, Any]:
    path = session_dir / MANIFEST
    if not path.exists():
        return {}
    try:
        data, complete = decrypt(path, identities)
        manifest = json.loads(data) if complete else None
    except (AgeError, ValueError):  # the report says what is wrong with it
        return {}
    return manifest if isinstance(manifest, dict) else {}


def _join_segments(
    files: list[Path], identities: Sequence[Identity], target: Path, warnings: list[str]
) -> tuple[float | None, float]:
    """Copy every segment's packets into one MP4. Returns (first media time, seconds)."""
    output = av.open(str(target), "w", format="mp4", options={"movflags": "+faststart"})
    out_streams: dict[str, Any] = {}
    last_dts: dict[str, int] = {}
    first_s: float | None = None
    offset: dict[str, int] = {}
    end_s = 0.0
    try:
        for path in files:
            try:
                data, complete = decrypt(path, identities)
            except AgeError as exc:  # a bad file never ends the export: it stays a gap
                warnings.append(f"{path.name}: not exported: {exc}")
                continue
            if not data:
                if not complete:
                    warnings.append(f"{path.name}: cut short before its first complete chunk; skipped")
                continue
            # A segment cut short ends mid-packet: the demuxer hands that last packet over as if
            # whole, and a player would show it as a smeared frame (or a click). So each stream's
            # newest packet is held back until the next one proves it complete.
            held: dict[str, Any] = {}
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
                    if not complete:
                        previous, held[kind] = held.get(kind), arrived
                        if previous is None:
                            continue
                        packet = previous
                    if packet.dts is None or packet.pts is None:  # checked as it arrived
                        continue
                    tb = packet.time_base
                    start = float(packet.dts * tb)
                    if first_s is None:
                        first_s = start
                    if kind not in offset:
                        offset[kind] = int(first_s / tb)
                    # Both streams are shifted by the same media time, so A/V sync is kept.
                    packet.dts -= offset[kind]
                    packet.pts -= offset[kind]
                    if kind in last_dts and packet.dts <= last_dts[kind]:
                        continue  # a duplicate across a segment boundary
                    last_dts[kind] = packet.dts
                    end_s = max(end_s, float((packet.pts + (packet.duration or 0)) * tb))
                    packet.stream = out_streams[kind]
                    output.mux(packet)
            if not complete:
                warnings.append(
                    f"{path.name}: cut short; exported its first {len(data)} bytes up to its last "
                    f"complete chunk, less the packet it ended in ({', '.join(sorted(held)) or 'none'})"
                )
    finally:
        output.close()
    return first_s, end_s


def _read_jsonl(
    session_dir: Path, name: str, identities: Sequence[Identity], warnings: list[str]
) -> list[dict[str, Any]]:
    path = session_dir / name
    if not path.exists():
        path = session_dir / (name + PARTIAL)
        if not path.exists():
            return []
    try:
        data, complete = decrypt(path, identities)
    except AgeError as exc:  # tampered or another key's: the report says which; no records
        warnings.append(f"{name}: not exported: {exc}")
        return []
    if not complete:
        warnings.append(f"{name} cut short; exported what was complete")
    records = []
    for line in data.decode("utf-8", errors="replace").splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue  # the last line of a log cut mid-write
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
