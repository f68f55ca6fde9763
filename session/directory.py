"""One recording session on disk: its encrypted segments, vitals log and manifest.

Everything in a session directory is an age file. The manifest lists every closed segment with
the SHA-256 of its ciphertext and a hash chain over the entries, so the review side can tell a
missing, altered or reordered segment. It is rewritten (atomically) after each segment, so a
crash loses at most the entry of the segment that was open.

Media time orders everything; UTC is only derived. A fresh UTC anchor (a monotonic and a wall
clock reading taken together) is taken at the session start and as each segment opens, and is
stored in that segment's entry: when NTP steps the wall clock mid-session, the later segments
map to the corrected UTC while media time, and with it order and durations, stays untouched.

Threads: camera writer threads call ``open_segment``/``segment_closed``; serial threads call
``write_vitals``; the daemon calls ``write_marker``, ``close`` and ``discard``. One lock guards
the manifest; each JSON-lines stream has its own.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import stat
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import structlog

from capture.segmenter import ClosedSegment
from session.layout import (
    MANIFEST,
    MARKERS,
    PARTIAL,
    VITALS,
    Manifest,
    chain_value,
    is_session_file,
    new_session_id,
    segment_name,
)
from store.encrypted_file import EncryptedFileWriter
from store.errors import AgeError
from store.keys import Recipient
from sync.clock import MediaClock, UtcAnchor
from vitals.sample import VitalSample

log = structlog.get_logger()


def destroy_session_files(path: Path) -> int:
    """Truncate every file of a session directory that the recorder wrote, then remove it, and
    the directory once empty. Returns how many files were destroyed, for the audit log.

    Truncated first (and fsynced) so the ciphertext's blocks are released even where something
    still holds the file open. Deletion counts only its own files: a name the layout does not
    define, a link, anything but a regular file, and a file with a second hard link (its data is
    also somewhere else) are left where they are, and the directory with them; so nothing is
    ever followed out of storage. What is opened is checked again on the open descriptor, so an
    entry swapped in after the first look is not truncated either.
    """
    destroyed = 0
    left = 0
    for entry in list(path.iterdir()):
        if not is_session_file(entry.name) or entry.is_symlink() or not entry.is_file():
            left += 1
            continue
        try:
            # O_NONBLOCK: a FIFO swapped in must not hang the caller (it is refused below).
            flags = os.O_WRONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
            fd = os.open(entry, flags)
            try:
                st = os.fstat(fd)
                if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
                    left += 1
                    continue
                os.ftruncate(fd, 0)
                os.fsync(fd)
            finally:
                os.close(fd)
            entry.unlink()
            destroyed += 1
        except OSError:
            left += 1
    if left:
        log.warning("session_files_left", session=path.name, left=left)
    else:
        with contextlib.suppress(OSError):
            path.rmdir()
    return destroyed


class _JsonLines:
    """An encrypted stream of JSON records, one per line, growing as the session goes on.

    Each record is written with the newline that ends the one before it, so the stream always
    ends right after a whole record: padding (``seal``) is then spaces after that record, which
    JSON allows, and a crash leaves every line whole. ``close`` writes the last newline.

    A write the disk refuses (full, failing) ends the stream where it is: the file is left as a
    crash leaves it (whole up to its last sealed chunk), later records are counted in ``lost``
    and ``failed`` says why; recording goes on.
    """

    def __init__(self, path: Path, recipients: Sequence[Recipient], fsync_interval_s: float) -> None:
        self._lock = threading.Lock()
        self._writer = EncryptedFileWriter(path, recipients, fsync_interval_s)
        self._open = True
        self.count = 0
        self.padding_bytes = 0
        self.lost = 0  # records not written because the disk refused
        self.failed: str | None = None

    def write(self, records: Iterable[dict[str, Any]]) -> None:
        lines = [json.dumps(r, separators=(",", ":")) for r in records]
        if not lines:
            return
        with self._lock:
            if not self._open:
                return
            if self.failed is not None:
                self.lost += len(lines)
                return
            text = "\n".join(lines)
            try:
                self._writer.write(("\n" + text if self.count else text).encode())
            except (OSError, AgeError) as exc:
                self._fail(exc)
                self.lost += len(lines)
                return
            self.count += len(lines)

    def seal_if_held(self, for_s: float) -> None:
        """Push what has waited ``for_s`` or longer out to the disk (see the class docstring)."""
        with self._lock:
            if self._open and self.failed is None and self._writer.unsealed_for_s() >= for_s:
                try:
                    self.padding_bytes += self._writer.seal_with(_spaces)
                except (OSError, AgeError) as exc:
                    self._fail(exc)

    def close(self) -> None:
        """Finish the file; one the disk refused stays ``.partial`` (and raises nothing)."""
        with self._lock:
            if not self._open:
                return
            self._open = False
            if self.failed is None:
                try:
                    if self.count:
                        self._writer.write(b"\n")
                    self._writer.close()
                    return
                except (OSError, AgeError) as exc:
                    self._fail(exc)
            self._writer.abandon()

    def _fail(self, exc: BaseException) -> None:
        self.failed = str(exc)
        log.error("session_stream_failed", file=self._writer.final_path.name, error=self.failed)

    def abort(self) -> None:
        with self._lock:
            self._open = False
            self._writer.abort()


def _spaces(n: int) -> bytes:
    return b" " * n


TS_PACKET = 188
# An MPEG-TS null packet (PID 0x1FFF): every demuxer skips it, so it can fill a chunk anywhere
# between two packets.
_TS_NULL = b"\x47\x1f\xff\x10" + b"\xff" * (TS_PACKET - 4)


def _ts_null_packets(n: int) -> bytes:
    return _TS_NULL * -(-n // TS_PACKET)


class TimelySegmentFile(io.RawIOBase):
    """A segment's encrypted file that holds no MPEG-TS bytes in memory longer than
    ``seal_after_s``: at a packet boundary, what has waited that long is sealed with null packets.

    A small picture at a low bitrate takes seconds to fill a 64 KiB chunk, which a crash would
    lose; at 720p30 chunks fill several times a second and no padding is written. PyAV's MPEG-TS
    muxer hands each packet to the file as it is muxed (the test holds it to that), so no bytes
    wait in its buffer, and a write that ends on a 188-byte boundary ends between two packets.
    """

    def __init__(self, writer: EncryptedFileWriter, *, seal_after_s: float) -> None:
        super().__init__()
        self._writer = writer
        self._seal_after_s = seal_after_s
        self._offset = 0
        self.padding_bytes = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        size = self._writer.write(data)
        self._offset += size
        if self._offset % TS_PACKET == 0 and self._writer.unsealed_for_s() >= self._seal_after_s:
            pad = self._writer.seal_with(_ts_null_packets)
            self._offset += pad
            self.padding_bytes += pad
        return size

    def close(self) -> None:
        if not self.closed:
            try:
                self._writer.close()
            finally:
                super().close()

    def abort(self) -> None:
        try:
            self._writer.abort()
        finally:
            super().close()

    def __del__(self) -> None:
        # io objects close themselves when collected; being collected is no decision to keep a
        # recording (closing would make a cut segment look whole), so this one does not.
        pass


@dataclass(frozen=True, slots=True)
class Marker:
    mono_ns: int
    label: str
    by: str


@dataclass(frozen=True, slots=True)
class CameraProfile:
    name: str
    width: int
    height: int
    fps: int
    overlay: bool
    audio: bool


class SessionDirectory:
    def __init__(
        self,
        root: Path,
        *,
        recipients: Sequence[Recipient],
        fsync_interval_s: float,
        table: str,
        cameras: Sequence[CameraProfile],
        clock: MediaClock,
        reason: str,
        durable_within_s: float = 1.0,
    ) -> None:
        self._recipients = list(recipients)
        self._durable_within_s = durable_within_s
        self._fsync = fsync_interval_s
        self._clock = clock
        anchor = UtcAnchor.take()
        self.anchor = anchor
        self.id = new_session_id(anchor.utc)
        self.path = root / self.id
        self.path.mkdir(mode=0o700, parents=True)
        epoch_utc = anchor.utc_at(clock.epoch_ns)
        self._manifest = Manifest(
            session=self.id,
            table=table,
            started_utc=anchor.utc.isoformat(),
            media_epoch_utc=epoch_utc.isoformat(),
            started_s=round(clock.seconds(anchor.mono_ns), 6),
            cameras=[asdict(c) for c in cameras],
            reason=reason,
        )
        self._manifest_lock = threading.Lock()
        # Per open segment, the anchor taken as it opened; vitals and markers use the newest.
        self._segment_anchors: dict[tuple[str, int], UtcAnchor] = {}
        self._vitals = _JsonLines(self.path / VITALS, self._recipients, self._fsync)
        self._markers = _JsonLines(self.path / MARKERS, self._recipients, self._fsync)
        self.bytes_closed = 0
        self.last_segment_ns: int | None = None  # when a segment was last closed (monotonic)
        self._write_manifest()

    # --- media -------------------------------------------------------------------------------

    def open_segment(self, camera: str, index: int) -> TimelySegmentFile:
        anchor = UtcAnchor.take()
        with self._manifest_lock:
            self._segment_anchors[(camera, index)] = anchor
            self.anchor = anchor
        writer = EncryptedFileWriter(self.path / segment_name(camera, index), self._recipients, self._fsync)
        # Frames reach the file a few hundred ms after capture (x264's lookahead of 10 frames and
        # its B-frames, audio held by the interleaver until the video catches up): most of the
        # budget is left for that.
        return TimelySegmentFile(writer, seal_after_s=self._durable_within_s * 0.3)

    def segment_closed(self, camera: str, segment: ClosedSegment) -> dict[str, Any]:
        path = self.path / segment_name(camera, segment.index)
        if not path.exists():
            # A segment whose file failed while closing stays under its .partial name.
            path = path.with_name(path.name + PARTIAL)
        digest, size = file_sha256(path) if path.exists() else ("", 0)
        with self._manifest_lock:
            anchor = self._segment_anchors.pop((camera, segment.index), None) or UtcAnchor.take()
            entry: dict[str, Any] = {
                "camera": camera,
                "index": segment.index,
                "file": path.name,
                "start_s": round(segment.start_s, 6),
                "end_s": round(segment.end_s, 6),
                "utc_start": anchor.utc_at(
                    self._clock.epoch_ns + int(segment.start_s * 1e9)
                ).isoformat(),
                # This segment's own mapping: utc = anchor utc + (media time - anchor media_s).
                "utc_anchor": {
                    "media_s": round(self._clock.seconds(anchor.mono_ns), 6),
                    "utc": anchor.utc.isoformat(),
                },
                "video_frames": segment.video_frames,
                "audio_packets": segment.audio_packets,
                "complete": segment.complete,
                "bytes": size,
                "sha256": digest,
            }
            for profile in self._manifest.cameras:
                # The media time of the camera's first frame: where its view starts on the
                # session's clock (the review side aligns the cameras by it).
                if profile.get("name") == camera and "first_frame_s" not in profile:
                    profile["first_frame_s"] = round(segment.start_s, 6)
            entry["chain"] = chain_value(entry, self._manifest.chain)
            self._manifest.chain = entry["chain"]
            self._manifest.segments.append(entry)
            self.bytes_closed += size
            self.last_segment_ns = time.monotonic_ns()
            try:
                self._write_manifest()
            except OSError as exc:  # no room: the entry waits in memory for the next write
                log.error("manifest_write_failed", session=self.id, error=str(exc))
        return entry

    # --- vitals ------------------------------------------------------------------------------

    def write_vitals(self, samples: Iterable[VitalSample]) -> None:
        self._vitals.write(
            {
                "t": round(self._clock.seconds(s.host_ns), 6),
                "utc": self.anchor.utc_at(s.host_ns).isoformat(),
                "monitor": s.monitor,
                "parameter": str(s.parameter),
                "value": s.value,
                "unit": s.unit,
                "valid": s.valid,
                "source": s.source,
                "alarm": s.alarm,
                "flags": sorted(s.flags),
                "monitor_time": s.monitor_time.isoformat() if s.monitor_time else None,
            }
            for s in samples
        )

    @property
    def vitals_written(self) -> int:
        return self._vitals.count

    def write_markers(self, markers: Iterable[Marker]) -> None:
        self._markers.write(
            {
                "t": round(self._clock.seconds(m.mono_ns), 6),
                "utc": self.anchor.utc_at(m.mono_ns).isoformat(),
                "label": m.label,
                "by": m.by,
            }
            for m in markers
        )

    @property
    def markers_written(self) -> int:
        return self._markers.count

    def seal_held(self, for_s: float) -> None:
        """Vitals and markers that have waited ``for_s`` in memory go to the disk now, so a crash
        loses no more than that of them (the session controller calls this several times a
        second)."""
        self._vitals.seal_if_held(for_s)
        self._markers.seal_if_held(for_s)

    # --- end ---------------------------------------------------------------------------------

    def anchor_audit(self, seq: int, digest: str) -> None:
        """Keep the audit log's head in the manifest (see ``Manifest.audit``)."""
        with self._manifest_lock:
            self._manifest.audit.append({"seq": seq, "hash": digest})
            try:
                self._write_manifest()
            except OSError as exc:  # no room: it goes with the next manifest write
                log.error("manifest_write_failed", session=self.id, error=str(exc))

    @property
    def failed(self) -> str | None:
        """Why the vitals or markers stopped being written (the disk refused), if they did."""
        return self._vitals.failed or self._markers.failed

    def close(self, reason: str) -> bool:
        """Finish every file and the manifest. False when the disk refused part of it: the
        files it could not finish stay ``.partial``, for ``session.recovery`` to close."""
        self._vitals.close()
        self._markers.close()
        try:
            with self._manifest_lock:
                self._manifest.ended_utc = UtcAnchor.take().utc.isoformat()
                self._manifest.end_reason = reason
                self._write_manifest()
        except OSError as exc:
            log.error("manifest_write_failed", session=self.id, error=str(exc))
            return False
        # A segment the disk refused is left .partial (readable to its last chunk): it too is
        # for recovery to close, with a record of it.
        left_open = any(f.name.endswith(PARTIAL) for f in self.path.iterdir())
        return self.failed is None and not left_open

    def discard(self) -> int:
        """Destroy everything of this session: truncate each file, then remove it.

        Returns how many files were destroyed (for the audit log; no names, no content).
        """
        self._vitals.abort()
        self._markers.abort()
        with self._manifest_lock:
            return destroy_session_files(self.path)

    @property
    def segments(self) -> list[dict[str, Any]]:
        with self._manifest_lock:
            return list(self._manifest.segments)

    def _write_manifest(self) -> None:
        # Written whole under a temporary name and renamed over the old one: a reader (or a
        # crash) sees either the previous manifest or the new one, never half of one.
        final = self.path / MANIFEST
        fresh = final.with_name(MANIFEST + ".new")
        fresh.unlink(missing_ok=True)
        Path(str(fresh) + PARTIAL).unlink(missing_ok=True)
        writer = EncryptedFileWriter(fresh, self._recipients, self._fsync)
        try:
            writer.write(json.dumps(asdict(self._manifest), indent=1).encode())
        except BaseException:
            writer.abort()
            raise
        writer.close()
        os.replace(fresh, final)


def file_sha256(path: Path) -> tuple[str, int]:
    """SHA-256 of a file's bytes (its ciphertext, as the manifest lists it) and its size."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size
