"""Verify a session before trusting it: every file against the manifest's hashes and chain, and
against the age authentication of its own chunks. Writes no plaintext anywhere: each file is
decrypted in memory, chunk by chunk, and dropped.

What a file can be:

- ``complete``: it is the file the manifest (or a recovery record) lists, and decrypts whole;
- ``truncated``: it is that file, cut short (a crash, a full disk): readable to its last chunk;
- ``tampered``: it fails age's authentication (a changed byte: where is said);
- ``foreign``: encrypted to another key, or not the file the manifest lists under that name
  (copied in from another session, replaced);
- ``out_of_order``: the content the manifest lists under another name (segments swapped);
- ``missing``: listed, not there;
- ``extra``: there, listed nowhere.

Per camera: the seconds recorded that verified, and the gaps where a missing, tampered, foreign or
misplaced segment should have been. The report is whole only when the manifest and its chain
hold and every file is complete.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import av

from session.layout import (
    COLLECTED,
    LEGAL_HOLD,
    MANIFEST,
    MARKERS,
    PARTIAL,
    RECOVERY,
    VITALS,
    chain_value,
    parse_segment_name,
)
from store.age_reader import AgeReader
from store.errors import AgeError, CorruptFileError, NoIdentityError, TruncatedError
from store.keys import Identity

Kind = Literal["complete", "truncated", "tampered", "foreign", "out_of_order", "missing", "extra"]
_TRUSTED = ("complete", "truncated")


@dataclass
class FileReport:
    file: str
    kind: Kind
    detail: str = ""
    camera: str | None = None
    start_s: float | None = None  # the media time the manifest gives a segment
    end_s: float | None = None
    recovered_s: float | None = None  # of a truncated segment: the seconds it still holds


@dataclass
class CameraReport:
    recorded_s: float = 0.0  # seconds of segments that verified
    gaps: list[tuple[float, float]] = field(default_factory=list)  # media time, from the manifest


@dataclass
class SessionReport:
    session: str
    manifest: str  # "ok", or what is wrong with it
    files: list[FileReport] = field(default_factory=list)
    cameras: dict[str, CameraReport] = field(default_factory=dict)

    @property
    def whole(self) -> bool:
        return self.manifest == "ok" and all(f.kind == "complete" for f in self.files)

    def trusted_segments(self, camera: str) -> list[str]:
        """The file names of a camera's segments that verified, in the manifest's order."""
        return [
            f.file for f in self.files if f.camera == camera and f.kind in _TRUSTED and f.start_s is not None
        ]

    def to_json(self) -> dict[str, Any]:
        return {
            "session": self.session,
            "whole": self.whole,
            "manifest": self.manifest,
            "files": [asdict(f) for f in self.files],
            "cameras": {name: asdict(c) for name, c in self.cameras.items()},
        }

    def plain(self) -> str:
        lines = [f"session {self.session}: " + ("whole" if self.whole else "NOT WHOLE")]
        if self.manifest != "ok":
            lines.append(f"  manifest: {self.manifest}")
        for f in self.files:
            if f.kind != "complete":
                where = "" if f.start_s is None else f" ({f.start_s:.1f}-{f.end_s or 0:.1f} s)"
                detail = f": {f.detail}" if f.detail else ""
                lines.append(f"  {f.file}: {f.kind.replace('_', ' ')}{where}{detail}")
        for name, cam in self.cameras.items():
            gaps = ", ".join(f"{a:.1f}-{b:.1f} s" for a, b in cam.gaps)
            gap_text = f"; gaps {gaps}" if gaps else ""
            lines.append(f"  camera {name}: {cam.recorded_s:.1f} s verified{gap_text}")
        return "\n".join(lines)


def verify_session(session_dir: Path, identities: Sequence[Identity]) -> SessionReport:
    """The integrity report of one session directory; see the module docstring."""
    manifest, problem = _manifest(session_dir, identities)
    report = SessionReport(str(manifest.get("session", session_dir.name)), problem)
    on_disk = {p.name: p for p in session_dir.iterdir() if p.is_file() and not p.is_symlink()}
    accounted: set[str] = {MANIFEST, LEGAL_HOLD, COLLECTED}
    recovered: dict[str, dict[str, Any]] = {}  # final name → its recovery record entry
    for name in sorted(n for n in on_disk if n == RECOVERY or n.startswith(RECOVERY + ".")):
        accounted.add(name)
        record, _complete, error = _decrypt(on_disk[name], identities)
        if error is None:
            for entry in json.loads(record).get("files", []):
                recovered[str(entry["file"])] = entry
        else:
            report.files.append(FileReport(name, _kind(error), str(error)))
    entries = list(manifest.get("segments", []))
    by_hash = {str(e.get("sha256")): e for e in entries if e.get("sha256")}
    for entry in entries:
        camera, start, end = str(entry["camera"]), float(entry["start_s"]), float(entry["end_s"])
        cam = report.cameras.setdefault(camera, CameraReport())
        listed = str(entry["file"])
        final = listed.removesuffix(PARTIAL)
        # Under the name it was listed with, closed since (renamed), or still open (.partial).
        name = next((n for n in (listed, final, final + PARTIAL) if n in on_disk), listed)
        accounted.add(name)
        expected = str(entry.get("sha256") or "")
        if name in recovered:  # closed after a crash: the recovery record has its hash
            expected = str(recovered[name]["sha256"])
        result = _segment(on_disk.get(name), name, expected, by_hash, entry, identities)
        result.camera, result.start_s, result.end_s = camera, start, end
        report.files.append(result)
        if result.kind == "complete":
            cam.recorded_s += end - start
        elif result.kind == "truncated":
            held = min(result.recovered_s or 0.0, end - start)
            cam.recorded_s += held
            cam.gaps.append((start + held, end))
        else:
            cam.gaps.append((start, end))
    for name in (VITALS, MARKERS):
        accounted.add(name)
        for candidate in (name, name + PARTIAL):
            if candidate in on_disk:
                accounted.add(candidate)
                report.files.append(_log_file(on_disk[candidate], identities, recovered.get(candidate)))
                break
    for name in sorted(set(on_disk) - accounted):
        entry = recovered.get(name)
        if entry is not None:  # a file a crash left open, that the manifest never listed
            report.files.append(_log_file(on_disk[name], identities, entry))
            continue
        detail = "listed in no manifest"
        if not report.manifest.startswith("ok") and parse_segment_name(name) is not None:
            detail += " (the manifest could not be read)"
        report.files.append(FileReport(name, "extra", detail))
    return report


def _manifest(session_dir: Path, identities: Sequence[Identity]) -> tuple[dict[str, Any], str]:
    path = session_dir / MANIFEST
    if not path.exists():
        return {}, "missing: the files are checked on their own"
    plain, complete, error = _decrypt(path, identities)
    if error is not None:
        return {}, f"{_kind(error)}: {error}"
    if not complete:
        # Written whole and renamed into place, a manifest is never legitimately cut short.
        return {}, "tampered: it does not authenticate to its end (altered or cut short)"
    try:
        manifest = json.loads(plain)
    except ValueError:
        return {}, "corrupt: not JSON"
    if not isinstance(manifest, dict):
        return {}, "corrupt: not a manifest"
    chain = ""
    for i, entry in enumerate(manifest.get("segments", [])):
        chain = chain_value(entry, chain)
        if entry.get("chain") != chain:
            return manifest, f"chain broken at entry {i + 1} ({entry.get('file')}): edited or reordered"
    if manifest.get("chain", chain) != chain:
        return manifest, "chain head does not match its last entry"
    return manifest, "ok"


def _segment(
    path: Path | None,
    name: str,
    expected: str,
    by_hash: dict[str, dict[str, Any]],
    entry: dict[str, Any],
    identities: Sequence[Identity],
) -> FileReport:
    if path is None:
        return FileReport(name, "missing", "listed in the manifest, not here")
    data = path.read_bytes()
    if not data:
        return FileReport(name, "truncated", "empty (0 bytes): nothing readable")
    digest = hashlib.sha256(data).hexdigest()
    if expected and digest != expected:
        other = by_hash.get(digest)
        if other is not None and other is not entry:
            return FileReport(name, "out_of_order", f"holds what the manifest lists as {other['file']}")
        plain, complete, error = _decrypt_bytes(data, name, identities)
        if isinstance(error, NoIdentityError):
            return FileReport(name, "foreign", "its header does not open with this key (another key's file)")
        if error is not None:
            return FileReport(name, "tampered", str(error))
        if not complete:
            seconds = max(0.0, _media_seconds(plain) - float(entry["start_s"]))
            cut = FileReport(name, "truncated", f"cut short after it was listed: {seconds:.1f} s readable")
            cut.recovered_s = seconds
            return cut
        return FileReport(name, "foreign", "not the file the manifest lists (another session's?)")
    plain, complete, error = _decrypt_bytes(data, name, identities)
    if error is not None and not isinstance(error, TruncatedError):
        return FileReport(name, _kind(error), str(error))
    if not complete:
        seconds = _media_seconds(plain) - float(entry["start_s"])
        report = FileReport(name, "truncated", f"cut short: {max(0.0, seconds):.1f} s readable")
        report.recovered_s = max(0.0, seconds)
        return report
    return FileReport(name, "complete")


def _media_seconds(ts: bytes) -> float:
    """The media time where what is readable of an MPEG-TS segment ends (0.0 when nothing is)."""
    end = 0.0
    try:
        with av.open(io.BytesIO(ts), "r", format="mpegts") as container:
            for packet in container.demux():
                if packet.pts is not None and packet.time_base is not None:
                    end = max(end, float((packet.pts + (packet.duration or 0)) * packet.time_base))
    except (av.error.FFmpegError, ValueError):  # the cut tail: what came before it counts
        pass
    return end


def _log_file(path: Path, identities: Sequence[Identity], recovered: dict[str, Any] | None) -> FileReport:
    data = path.read_bytes()
    if recovered is not None and hashlib.sha256(data).hexdigest() != recovered.get("sha256"):
        return FileReport(path.name, "foreign", "not the file the recovery record lists")
    _plain, complete, error = _decrypt_bytes(data, path.name, identities)
    if error is not None and not isinstance(error, TruncatedError):
        return FileReport(path.name, _kind(error), str(error))
    if not complete:
        return FileReport(path.name, "truncated", "cut short: readable to its last whole chunk")
    return FileReport(path.name, "complete")


def _decrypt(path: Path, identities: Sequence[Identity]) -> tuple[bytes, bool, AgeError | None]:
    return _decrypt_bytes(path.read_bytes(), path.name, identities)


def _decrypt_bytes(
    data: bytes, name: str, identities: Sequence[Identity]
) -> tuple[bytes, bool, AgeError | None]:
    """(plaintext so far, complete, the error if any): in memory, never on disk."""
    out = bytearray()
    try:
        for chunk in AgeReader(io.BytesIO(data), identities, name=name).iter_chunks():
            out += chunk
    except TruncatedError as exc:
        return bytes(out), False, exc if not out and "header" in str(exc) else None
    except AgeError as exc:
        return bytes(out), False, exc
    return bytes(out), True, None


def _kind(error: AgeError | None) -> Kind:
    if isinstance(error, NoIdentityError):
        return "foreign"
    if isinstance(error, CorruptFileError | TruncatedError):
        return "tampered"
    return "tampered"
