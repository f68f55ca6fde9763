"""Streaming age decryption, for review and export of recordings.

Every chunk handed out has been authenticated first. A recording cut short
by a crash still gives back everything up to its last complete chunk, and
then says it was cut (TruncatedError) rather than passing as whole.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidTag

from store import age_format as fmt
from store.errors import AgeError, CorruptFileError, NoIdentityError, TruncatedError
from store.keys import Identity

__all__ = [
    "AgeError",
    "AgeReader",
    "CorruptFileError",
    "NoIdentityError",
    "TruncatedError",
    "decrypt_bytes",
    "decrypt_file",
]

# Limits that only a damaged or hostile header reaches; they keep a garbage
# file from making the reader buffer it whole while looking for a newline.
_MAX_HEADER_LINE = 8 * 1024
_MAX_HEADER_SIZE = 1024 * 1024
_READ_BLOCK = 4096
# We never unwrap passphrase stanzas, but the spec's rule about them binds every reader.
_SCRYPT_TYPE = "scrypt"


class BinarySource(Protocol):
    """Where ciphertext comes from; read(n) may return fewer bytes, and b"" at the end."""

    def read(self, size: int, /) -> bytes: ...


class AgeReader:
    """Parses and authenticates an age header, then decrypts the payload chunk by chunk."""

    def __init__(
        self,
        fileobj: BinarySource,
        identities: Iterable[Identity],
        *,
        name: str | None = None,
    ) -> None:
        self._in = fileobj
        self._name = name if name is not None else str(getattr(fileobj, "name", "<age file>"))
        # Bytes read ahead while looking for header line ends, handed to the payload next.
        self._buf = bytearray()
        self._header_size = 0
        stanzas, through_dashes, mac = self._read_header()
        file_key = self._unwrap(stanzas, list(identities))
        if not fmt.header_mac_ok(file_key, through_dashes, mac):
            raise CorruptFileError(f"{self._name}: header failed authentication (bad MAC)")
        nonce = self._read_exact(fmt.PAYLOAD_NONCE_SIZE)
        if len(nonce) < fmt.PAYLOAD_NONCE_SIZE:
            raise TruncatedError(f"{self._name}: file ends inside the payload nonce")
        self._aead = fmt.payload_cipher(file_key, nonce)
        self._iterated = False

    @property
    def name(self) -> str:
        return self._name

    def iter_chunks(self) -> Iterator[bytes]:
        """Yield authenticated plaintext chunks in order. Can be iterated once."""
        if self._iterated:
            raise ValueError(f"{self._name}: chunks were already read")
        self._iterated = True
        return self._chunks()

    def _chunks(self) -> Iterator[bytes]:
        index = 0
        piece = self._read_exact(fmt.ENCRYPTED_CHUNK_SIZE)
        while True:
            if len(piece) < fmt.ENCRYPTED_CHUNK_SIZE:
                # The stream ended inside this piece, so it has to be the final chunk.
                if not piece:
                    raise TruncatedError(
                        f"{self._name}: file ends after chunk {index - 1} without a final chunk (truncated)"
                        if index
                        else f"{self._name}: file ends before its first chunk (truncated)"
                    )
                plain = self._open(piece, index, last=True)
                if plain is None:
                    raise TruncatedError(
                        f"{self._name}: file ends inside chunk {index} "
                        "(truncated, or its last chunk is damaged)"
                    )
                if not plain and index:
                    raise CorruptFileError(f"{self._name}: chunk {index} is an empty final chunk after data")
                yield plain
                return
            ahead = self._read_exact(fmt.ENCRYPTED_CHUNK_SIZE)
            if ahead:
                plain = self._open(piece, index, last=False)
                if plain is None:
                    final = self._open(piece, index, last=True)
                    if final is not None:
                        # It authenticates as the final chunk: what it holds is the file's, as the
                        # age vectors expect it released; what follows it is not (stream_two_final_*).
                        yield final
                        raise CorruptFileError(f"{self._name}: data follows the final chunk {index}")
                    raise CorruptFileError(f"{self._name}: chunk {index} failed authentication")
                yield plain
                piece = ahead
                index += 1
                continue
            # A full-size piece at the very end: either a full final chunk, or
            # a stream cut exactly at a chunk boundary.
            plain = self._open(piece, index, last=True)
            if plain is not None:
                yield plain
                return
            plain = self._open(piece, index, last=False)
            if plain is None:
                raise CorruptFileError(f"{self._name}: chunk {index} failed authentication")
            yield plain
            raise TruncatedError(
                f"{self._name}: file ends after chunk {index} without a final chunk (truncated)"
            )

    def _open(self, piece: bytes, index: int, last: bool) -> bytes | None:
        try:
            return self._aead.decrypt(fmt.chunk_nonce(index, last), piece, None)
        except InvalidTag:
            return None

    def _unwrap(self, stanzas: list[fmt.Stanza], identities: list[Identity]) -> bytes:
        if len(stanzas) > 1 and any(s.type == _SCRYPT_TYPE for s in stanzas):
            # The age spec lets a passphrase stanza only stand alone, so that a file sealed with a
            # passphrase cannot also be opened some other way; such a header is malformed, not
            # merely "not for us" (CCTV vector scrypt_and_x25519).
            raise CorruptFileError(f"{self._name}: an scrypt stanza must be the only one in the header")
        for stanza in stanzas:
            if stanza.type != fmt.X25519_TYPE:
                continue  # other recipient types are not ours to judge
            for identity in identities:
                try:
                    file_key = fmt.unwrap_x25519(stanza, identity.private_key)
                except ValueError as exc:
                    raise CorruptFileError(f"{self._name}: malformed X25519 stanza: {exc}") from None
                if file_key is not None:
                    return file_key
        tried = ", ".join(str(i.recipient) for i in identities) or "none given"
        types = sorted({s.type for s in stanzas})
        raise NoIdentityError(
            f"{self._name}: no identity matches this file "
            f"(it has {len(stanzas)} stanza(s) of type {', '.join(types)}; "
            f"identities tried: {tried})"
        )

    def _read_header(self) -> tuple[list[fmt.Stanza], bytes, bytes]:
        first = self._read_line()
        if first != fmt.VERSION_LINE:
            if first.startswith(b"-----BEGIN AGE ENCRYPTED FILE-----"):
                raise CorruptFileError(f"{self._name}: ASCII-armored age files are not supported")
            if first.startswith(b"age-encryption.org/"):
                raise CorruptFileError(f"{self._name}: unsupported age version {first.strip()!r}")
            raise CorruptFileError(f"{self._name}: not an age file (bad version line)")
        consumed = bytearray(first)
        stanzas: list[fmt.Stanza] = []
        while True:
            line = self._read_line()
            if line.startswith(fmt.MAC_PREFIX):
                parts = line[:-1].split(b" ")
                if parts[0] != fmt.MAC_PREFIX or len(parts) != 2:
                    raise CorruptFileError(f"{self._name}: malformed header MAC line")
                try:
                    mac = fmt.b64decode(parts[1].decode("ascii"))
                except (UnicodeDecodeError, ValueError):
                    raise CorruptFileError(f"{self._name}: malformed header MAC") from None
                if len(mac) != fmt.MAC_SIZE:
                    raise CorruptFileError(f"{self._name}: header MAC has the wrong length")
                if not stanzas:
                    raise CorruptFileError(f"{self._name}: header has no recipient stanzas")
                consumed += fmt.MAC_PREFIX
                return stanzas, bytes(consumed), mac
            if not line.startswith(fmt.STANZA_PREFIX):
                raise CorruptFileError(f"{self._name}: unexpected line in header")
            consumed += line
            args = line[len(fmt.STANZA_PREFIX) : -1].split(b" ")
            if any(not arg or any(c < 33 or c > 126 for c in arg) for arg in args):
                raise CorruptFileError(f"{self._name}: malformed stanza line in header")
            body = bytearray()
            while True:
                body_line = self._read_line()
                consumed += body_line
                text = body_line[:-1]
                if len(text) > fmt.COLUMNS:
                    raise CorruptFileError(f"{self._name}: stanza body line too long")
                try:
                    body += fmt.b64decode(text.decode("ascii"))
                except (UnicodeDecodeError, ValueError):
                    raise CorruptFileError(f"{self._name}: malformed stanza body") from None
                if len(text) < fmt.COLUMNS:
                    break
            stanzas.append(fmt.Stanza(tuple(a.decode("ascii") for a in args), bytes(body)))

    def _read_line(self) -> bytes:
        """One header line including its LF; a header may not end without one."""
        start = 0
        while True:
            end = self._buf.find(b"\n", start)
            if end >= 0:
                line = bytes(self._buf[: end + 1])
                del self._buf[: end + 1]
                self._header_size += len(line)
                if self._header_size > _MAX_HEADER_SIZE:
                    raise CorruptFileError(f"{self._name}: header is implausibly large")
                return line
            if len(self._buf) > _MAX_HEADER_LINE:
                raise CorruptFileError(f"{self._name}: header line too long")
            start = len(self._buf)
            block = self._in.read(_READ_BLOCK)
            if not block:
                raise TruncatedError(f"{self._name}: file ends inside the header")
            self._buf += block

    def _read_exact(self, size: int) -> bytes:
        """Up to size bytes; fewer only at the end of the file."""
        if not self._buf:
            # Fast path: one read usually returns the whole chunk from a file.
            first = self._in.read(size)
            if len(first) == size or not first:
                return first
            self._buf += first
        out = bytearray()
        if self._buf:
            out += self._buf[:size]
            del self._buf[:size]
        while len(out) < size:
            block = self._in.read(size - len(out))
            if not block:
                break
            out += block
        return bytes(out)


def decrypt_bytes(data: bytes, identities: Iterable[Identity], *, name: str = "<bytes>") -> bytes:
    """Decrypt a whole age file held in memory."""
    reader = AgeReader(io.BytesIO(data), identities, name=name)
    return b"".join(reader.iter_chunks())


def decrypt_file(path: str | os.PathLike[str], identities: Iterable[Identity]) -> bytes:
    """Decrypt a whole age file from disk into memory."""
    with Path(path).open("rb") as fileobj:
        reader = AgeReader(fileobj, identities, name=str(path))
        return b"".join(reader.iter_chunks())
