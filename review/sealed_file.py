"""One age file of a session read through once, in memory: the SHA-256 of its ciphertext (what the
manifest lists), how far age's authentication carries, and, for a segment, the media time its
authenticated part spans. Nothing decrypted is written anywhere or kept longer than the reading,
except a manifest's or a recovery record's text, which is small and is what gets checked.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import av

from session.layout import MANIFEST, RECOVERY, parse_segment_name
from store import age_format as fmt
from store.age_reader import AgeReader
from store.errors import AgeError, NoIdentityError, TruncatedError
from store.keys import Identity

_HEAD = 64 * 1024  # enough of a file to hold its age header
_AGE = b"age-encryption.org/"


@dataclass(frozen=True)
class MediaSpan:
    start_s: float
    end_s: float


@dataclass(frozen=True)
class SealedFile:
    digest: str  # SHA-256 of every byte on disk
    size: int
    complete: bool  # authenticated to its final chunk
    error: AgeError | None
    in_header: bool  # it failed before its payload: no key opens it, or its header is damaged
    chunks: int  # chunks that authenticated
    header_size: int  # 0 when no whole header was found
    is_age: bool  # it starts as an age file does
    plain: bytes  # a manifest's or a recovery record's text; empty for everything else
    media: MediaSpan | None  # what the authenticated part of a segment spans

    @property
    def opens(self) -> bool:
        """Its header opened with the identity (whatever became of the payload)."""
        return not self.in_header

    @property
    def wrong_key(self) -> bool:
        return isinstance(self.error, NoIdentityError)

    @property
    def cut(self) -> bool:
        return isinstance(self.error, TruncatedError)

    def failed_chunk(self) -> str:
        """Which payload chunk failed authentication and where its bytes lie; "" when unknown.
        A damaged last chunk reads exactly like a cut one (age cannot tell them apart)."""
        if not self.opens or self.error is None or not self.header_size:
            return ""
        first = self.header_size + fmt.PAYLOAD_NONCE_SIZE + self.chunks * fmt.ENCRYPTED_CHUNK_SIZE
        last = min(first + fmt.ENCRYPTED_CHUNK_SIZE, self.size) - 1
        return f"chunk {self.chunks} (bytes {first:,}–{last:,})" if last >= first else ""


def read_sealed(path: Path, identities: Sequence[Identity]) -> SealedFile:
    """Read ``path`` once: hash every byte, authenticate every chunk age lets through, and keep
    only what a verdict needs. OSError when the file cannot be read at all."""
    keep = path.name.startswith((MANIFEST, RECOVERY))
    segment = parse_segment_name(path.name) is not None
    plain = bytearray()
    chunks, in_header, complete = 0, True, False
    error: AgeError | None = None
    with path.open("rb") as f:
        tap = _Tap(f)
        try:
            reader = AgeReader(tap, identities, name=path.name)
            in_header = False
            for chunk in reader.iter_chunks():
                chunks += 1
                if keep or segment:
                    plain += chunk
            complete = True
        except AgeError as exc:
            error = exc
        tap.drain()
    head = bytes(tap.head)
    return SealedFile(
        digest=tap.hash.hexdigest(),
        size=tap.size,
        complete=complete,
        error=error,
        in_header=in_header,
        chunks=chunks,
        header_size=_header_size(head),
        is_age=head.startswith(_AGE) or (bool(head) and _AGE.startswith(head)),
        plain=bytes(plain) if keep else b"",
        media=media_span(bytes(plain), complete) if segment and plain else None,
    )


def media_span(ts: bytes, complete: bool) -> MediaSpan | None:
    """The media time an MPEG-TS segment's readable part spans, from its packets' timestamps: its
    video's (else its audio's) first frame to the end of its last. A file that was cut ends
    mid-packet, so the last packet of each stream counts only when the file is complete."""
    times: dict[str, list[float]] = {}
    try:
        with av.open(io.BytesIO(ts), "r", format="mpegts") as container:
            for packet in container.demux():
                if packet.pts is not None and packet.time_base is not None:
                    times.setdefault(packet.stream.type, []).append(float(packet.pts * packet.time_base))
    except (av.error.FFmpegError, ValueError):  # the cut tail: what came before it counts
        pass
    if not complete:
        times = {kind: found[:-1] for kind, found in times.items()}
    found = sorted(times.get("video") or times.get("audio") or [])
    if not found:
        return None
    # TS packets carry no duration: the last frame lasts as long as the frames before it did.
    step = statistics.median(b - a for a, b in itertools.pairwise(found)) if len(found) > 1 else 0.0
    return MediaSpan(found[0], found[-1] + step)


class _Tap:
    """The file as AgeReader reads it, hashed on the way, with its first bytes kept (the header)."""

    def __init__(self, f: BinaryIO) -> None:
        self._f = f
        self.hash = hashlib.sha256()
        self.size = 0
        self.head = bytearray()

    def read(self, size: int, /) -> bytes:
        data = self._f.read(size)
        self.hash.update(data)
        self.size += len(data)
        if len(self.head) < _HEAD:
            self.head += data[: _HEAD - len(self.head)]
        return data

    def drain(self) -> None:
        """Hash what age did not read (after a failed chunk, or past a header it refused)."""
        while self.read(1 << 20):
            pass


def _header_size(head: bytes) -> int:
    mac = head.find(b"\n" + fmt.MAC_PREFIX)
    end = head.find(b"\n", mac + 1) if mac >= 0 else -1
    return end + 1 if end >= 0 else 0
