"""The session's format on disk: the one definition the edge and the review side both read.

A session is a directory named by its id under the storage directory; everything in it is an age
file, but for two small plain marks that hold no patient data. The recorder writes it
(``session.directory``), retention counts and destroys it (``session.retention``), the review
side reads it (``review``). None of them spells a file name, a suffix or a manifest field
itself: they take them from here, so the format changes in one place.

::

    <storage>/                          storage.directory
      <session id>/                     20261204T014451Z-1a2b3c (UTC start, 6 random hex digits)
        <camera>-000001.ts.age          one MPEG-TS segment, age-encrypted
        <camera>-000002.ts.age.partial  still being written, or cut by a crash
        vitals.jsonl.age                every sample, one JSON object a line
        markers.jsonl.age               every marker, one JSON object a line
        manifest.json.age               the ``Manifest`` below, rewritten whole after each segment
        recovery.json.age               only after a crash: the files closed at the next start
        legal-hold                      plain: when and by whom a legal hold was set (no deletion)
        collected                       plain, from the collector: the archive has every file
    <storage>/../audit.jsonl            the audit log (plain text, no patient data), by default
    <storage>.seen.json                 when this recorder first saw each session (retention)
    <storage>.lock                      held by the one recorder or tool using the storage
    <storage>.collect/                  the collector's upload queue (collect.queue): names only
    <storage>.deletions/<session>.json  a deletion request waiting for upload (plain, no patient data)

In the archive (an S3 bucket), every closed file of a session under
``<site>/<table>/<session>/<file>``, and ``DELETION_REQUEST`` there once consent is withdrawn.

This module imports nothing but the store's suffix for files being written: the review
workstation loads it without the edge daemon's packages.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from store.encrypted_file import PARTIAL_SUFFIX

FORMAT_VERSION = 1
MANIFEST = "manifest.json.age"
VITALS = "vitals.jsonl.age"
MARKERS = "markers.jsonl.age"
# Written at start by a recorder that finds this session left open by a crash (session.recovery):
# the files it closed, truncated, with their hashes.
RECOVERY = "recovery.json.age"
# Every file is written under this suffix and renamed when closed; one left behind was cut short.
PARTIAL = PARTIAL_SUFFIX
AUDIT_LOG = "audit.jsonl"

# The chain value before the first segment: an empty chain.
CHAIN_START = ""

SESSION_ID = re.compile(r"\d{8}T\d{6}Z-[0-9a-f]{6}")
# "<camera>-<index>.ts.age", or ".partial" while open (or after a crash). The index is the last
# dash-separated field, so a camera named "room" never claims the files of "room-2".
_SEGMENT = re.compile(r"(?P<camera>.+)-(?P<index>[0-9]{6,})\.ts\.age(?P<partial>\.partial)?")


def new_session_id(utc: datetime) -> str:
    # Sortable by start time, unique without coordination, and holding no patient data.
    return f"{utc:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def session_started(session_id: str) -> datetime | None:
    """When a session started, read from its id; None for a name that is not a session id."""
    if not SESSION_ID.fullmatch(session_id):
        return None
    try:
        return datetime.strptime(session_id[:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None


def segment_name(camera: str, index: int) -> str:
    return f"{camera}-{index:06d}.ts.age"


@dataclass(frozen=True, slots=True)
class SegmentName:
    camera: str
    index: int
    partial: bool


def parse_segment_name(name: str) -> SegmentName | None:
    """The camera and index a segment file's name holds; None for any other file."""
    match = _SEGMENT.fullmatch(name)
    if match is None:
        return None
    return SegmentName(match["camera"], int(match["index"]), match["partial"] is not None)


def is_session_file(name: str) -> bool:
    """Whether a file of this name in a session directory is one the recorder writes (a
    segment, the logs, the manifest, a recovery record, the hold and collection marks), closed
    or still ``.partial``. Anything else there is not the recorder's to destroy."""
    base = name.removesuffix(PARTIAL)
    if parse_segment_name(base) is not None:
        return True
    if base in (VITALS, MARKERS, MANIFEST, MANIFEST + ".new", LEGAL_HOLD, COLLECTED):
        return True
    return base == RECOVERY or (base.startswith(RECOVERY + ".") and base[len(RECOVERY) + 1 :].isdigit())


def audit_log_path(storage_dir: Path, configured: Path | None = None) -> Path:
    """Where the audit log lives: as configured, else beside (not inside) the storage directory,
    so deleting recordings never touches it."""
    return configured if configured is not None else storage_dir.parent / AUDIT_LOG


# In a session directory, plain files with no patient data: a legal hold stops every deletion
# (it holds ``{"set_utc", "by"}`` only, ``by`` a word of the audit log's BY); "collected" is the
# archive's confirmation that every file arrived, written by the collector
# (``session.collected.mark_collected``; ``session.retention.is_collected`` reads it).
LEGAL_HOLD = "legal-hold"
COLLECTED = "collected"
# Consent withdrawn after the upload: the edge cannot delete from the archive, so it uploads this
# request beside the session's files ({"format", "session", "requested_utc", "by", "reason"}, no
# patient data) and the review side applies it (``neoflix-capture archive apply-deletions``).
DELETION_REQUEST = "deletion-request.json"


def archive_key(site: str, table: str, session_id: str, name: str) -> str:
    """The object key of one file of a session in the archive."""
    return f"{site}/{table}/{session_id}/{name}"


def collect_queue_path(storage_dir: Path) -> Path:
    """The collector's durable upload queue: beside the storage directory, like the lock."""
    return storage_dir.parent / f"{storage_dir.name}.collect"


def deletion_requests_path(storage_dir: Path) -> Path:
    """Deletion requests written on the edge, kept until the archive has taken them."""
    return storage_dir.parent / f"{storage_dir.name}.deletions"


def retention_state_path(storage_dir: Path) -> Path:
    """When this recorder first saw each session (``session.first_seen``): beside the storage
    directory, which holds sessions only."""
    return storage_dir.parent / f"{storage_dir.name}.seen.json"


def lock_path(storage_dir: Path) -> Path:
    """The lock of the one recorder (or tool) using a storage directory (``session.lock``):
    beside it, like the audit log, so the storage directory holds sessions only."""
    return storage_dir.parent / f"{storage_dir.name}.lock"


def chain_value(entry: dict[str, Any], previous: str) -> str:
    """A segment entry's chain value: it covers the entry (without its own chain value) and the
    previous value, so a removed or reordered segment breaks every later value."""
    body = {k: v for k, v in entry.items() if k != "chain"}
    return hashlib.sha256((json.dumps(body, sort_keys=True) + previous).encode()).hexdigest()


@dataclass
class Manifest:
    """``manifest.json.age``. Media time orders everything; UTC is derived: utc = media_epoch_utc
    + pts seconds, or per segment from its own ``utc_anchor`` (an NTP step mid-session moves
    later segments' UTC, never their order or length).

    Each entry of ``segments``: camera, index, file, start_s, end_s, utc_start,
    utc_anchor {media_s, utc}, video_frames, audio_packets, complete, bytes, sha256 (of the
    ciphertext), chain (``chain_value`` of the entry and the one before). A segment's start_s is
    the PTS of its first video frame (a keyframe), its end_s the end (PTS + duration) of its last
    packet. Each entry of ``cameras`` (name, width, height, fps, overlay, audio) gains
    ``first_frame_s``, the media time of the camera's first recorded frame, once its first
    segment closes.
    """

    session: str
    table: str
    started_utc: str
    media_epoch_utc: str  # UTC of media time zero
    started_s: float  # media time of the start: segments begin earlier by the pre-roll
    cameras: list[dict[str, Any]]
    reason: str
    format: int = FORMAT_VERSION
    segments: list[dict[str, Any]] = field(default_factory=list)
    ended_utc: str | None = None
    end_reason: str | None = None
    chain: str = CHAIN_START
    # The audit log's head as the recording began and as it ended: {"seq", "hash"} each. The log
    # is plain text on the PC; these copies travel encrypted with the recording, so lines later
    # cut from the log's end show when it is checked against them.
    audit: list[dict[str, Any]] = field(default_factory=list)
