"""The reader under damage: truncation, flipped bits, wrong keys, malformed files."""

from __future__ import annotations

import io
import os
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from store import age_format as fmt
from store.age_reader import AgeReader, decrypt_bytes, decrypt_file
from store.errors import AgeError, CorruptFileError, NoIdentityError, TruncatedError
from store.keys import Identity, Recipient

AgeRun = Callable[..., subprocess.CompletedProcess[bytes]]
Encrypt = Callable[[bytes, Sequence[Recipient]], bytes]

CHUNK = 64 * 1024
ENC_CHUNK = CHUNK + 16
PLAINTEXT_SIZE = 3 * CHUNK + 1000  # three full chunks and a short final one


@pytest.fixture(scope="module")
def plaintext() -> bytes:
    return os.urandom(PLAINTEXT_SIZE)


@pytest.fixture(scope="module")
def blob(plaintext: bytes, identity: Identity, encrypt: Encrypt) -> bytes:
    return encrypt(plaintext, [identity.recipient])


def _payload_start(blob: bytes) -> int:
    mac_line = blob.index(b"\n--- ") + 1
    return blob.index(b"\n", mac_line) + 1 + 16


def _read_until_error(data: bytes, identities: list[Identity]) -> tuple[list[bytes], AgeError]:
    chunks: list[bytes] = []
    try:
        reader = AgeReader(io.BytesIO(data), identities)
        for chunk in reader.iter_chunks():
            chunks.append(chunk)
    except AgeError as exc:
        return chunks, exc
    raise AssertionError("damaged file was accepted")


def _flip(data: bytes, position: int, bit: int) -> bytes:
    damaged = bytearray(data)
    damaged[position] ^= 1 << bit
    return bytes(damaged)


def test_truncated_files_yield_complete_chunks_then_raise(
    blob: bytes, plaintext: bytes, identity: Identity
) -> None:
    start = _payload_start(blob)
    cuts = [0, 5, start - 20, start - 16, start - 1, start, start + 1, start + ENC_CHUNK - 1]
    cuts += [start + k * ENC_CHUNK + d for k in (1, 2, 3) for d in (-1, 0, 1, 17)]
    cuts += [len(blob) - 1]
    for cut in cuts:
        chunks, error = _read_until_error(blob[:cut], [identity])
        assert isinstance(error, TruncatedError), (cut, error)
        complete = max(0, (cut - start) // ENC_CHUNK)
        assert len(chunks) == complete, cut
        assert b"".join(chunks) == plaintext[: complete * CHUNK]


def test_age_agrees_on_truncated_files(
    blob: bytes, plaintext: bytes, identity: Identity, identity_file: Path, age_cli: AgeRun
) -> None:
    start = _payload_start(blob)
    for cut in (start + 2 * ENC_CHUNK, start + 2 * ENC_CHUNK + 500, len(blob) - 1):
        result = age_cli("-d", "-i", str(identity_file), stdin=blob[:cut])
        assert result.returncode != 0
        chunks, error = _read_until_error(blob[:cut], [identity])
        assert isinstance(error, TruncatedError)
        complete = (cut - start) // ENC_CHUNK
        assert result.stdout == b"".join(chunks) == plaintext[: complete * CHUNK]


def test_every_flipped_header_bit_is_rejected(blob: bytes, identity: Identity) -> None:
    header_end = _payload_start(blob) - 16
    for position in range(header_end):
        for bit in range(8):
            _, error = _read_until_error(_flip(blob, position, bit), [identity])
            assert not isinstance(error, TruncatedError) or blob[position] == ord("\n"), position


def test_flipped_payload_bits_are_rejected(
    blob: bytes, identity: Identity, identity_file: Path, age_cli: AgeRun
) -> None:
    start = _payload_start(blob)
    nonce = range(start - 16, start)
    positions = [*nonce, start, start + CHUNK - 1, start + CHUNK, start + ENC_CHUNK - 1]
    positions += [start + ENC_CHUNK, start + 2 * ENC_CHUNK + 777]
    for position in positions:
        damaged = _flip(blob, position, position % 8)
        chunks, error = _read_until_error(damaged, [identity])
        assert isinstance(error, CorruptFileError), (position, error)
        assert "failed authentication" in str(error)
        # Chunks before the damaged one are still good, and only those are given out.
        damaged_chunk = max(0, (position - start) // ENC_CHUNK)
        assert len(chunks) == damaged_chunk
    result = age_cli("-d", "-i", str(identity_file), stdin=_flip(blob, start + 10, 3))
    assert result.returncode != 0


def test_damage_in_the_final_chunk_is_rejected(blob: bytes, identity: Identity) -> None:
    start = _payload_start(blob)
    for position in (start + 3 * ENC_CHUNK, len(blob) - 1):
        chunks, error = _read_until_error(_flip(blob, position, 0), [identity])
        # A damaged last chunk cannot be told from a cut one; either way the
        # file is refused after the three authentic chunks.
        assert isinstance(error, TruncatedError)
        assert len(chunks) == 3


def test_swapped_chunks_are_rejected(blob: bytes, identity: Identity) -> None:
    start = _payload_start(blob)
    first = blob[start : start + ENC_CHUNK]
    second = blob[start + ENC_CHUNK : start + 2 * ENC_CHUNK]
    swapped = blob[:start] + second + first + blob[start + 2 * ENC_CHUNK :]
    chunks, error = _read_until_error(swapped, [identity])
    assert chunks == []
    assert "chunk 0 failed authentication" in str(error)


def test_data_after_the_final_chunk_is_rejected(blob: bytes, identity: Identity, encrypt: Encrypt) -> None:
    for extra in (b"\x00", os.urandom(ENC_CHUNK)):
        chunks, _ = _read_until_error(blob + extra, [identity])
        assert len(chunks) == 3
    # When the final chunk is full-size the reader can tell exactly what happened.
    whole = encrypt(bytes(2 * CHUNK), [identity.recipient])
    chunks, error = _read_until_error(whole + b"\x00", [identity])
    assert isinstance(error, CorruptFileError)
    assert "data follows the final chunk 1" in str(error)
    assert len(chunks) == 2  # the final chunk authenticated and is released, as the age vectors expect


def test_empty_final_chunk_after_data_is_rejected(identity: Identity) -> None:
    file_key = fmt.new_file_key()
    header = fmt.encode_header(file_key, [fmt.wrap_x25519(file_key, identity.recipient.public_key)])
    nonce = fmt.new_payload_nonce()
    cipher = fmt.payload_cipher(file_key, nonce)
    body = cipher.encrypt(fmt.chunk_nonce(0, last=False), bytes(CHUNK), None)
    body += cipher.encrypt(fmt.chunk_nonce(1, last=True), b"", None)
    _, error = _read_until_error(header + nonce + body, [identity])
    assert isinstance(error, CorruptFileError)
    assert "empty final chunk" in str(error)


def test_wrong_identity_is_reported_as_such(blob: bytes, identity: Identity) -> None:
    stranger = Identity.generate()
    with pytest.raises(NoIdentityError, match="no identity matches") as info:
        AgeReader(io.BytesIO(blob), [stranger], name="cam1-0001.ts.age")
    message = str(info.value)
    assert message.startswith("cam1-0001.ts.age: ")
    assert str(stranger.recipient) in message
    assert str(stranger)[16:] not in message
    with pytest.raises(NoIdentityError):
        decrypt_bytes(blob, [])
    assert decrypt_bytes(blob, [stranger, identity])[:10] == decrypt_bytes(blob, [identity])[:10]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "ends inside the header"),
        (b"hello world\n", "not an age file"),
        (b"age-encryption.org/v2\n-> X25519 abc\n", "unsupported age version"),
        (b"-----BEGIN AGE ENCRYPTED FILE-----\n", "armored"),
        (b"age-encryption.org/v1\n--- " + b"A" * 43 + b"\n", "no recipient stanzas"),
        (b"age-encryption.org/v1\n-> X25519 a b\nAAAA\n--- " + b"A" * 43 + b"\n", "X25519"),
        (b"age-encryption.org/v1\nhello\n", "unexpected line"),
        (b"age-encryption.org/v1\n-> X25519\n" + b"A" * 65 + b"\n", "too long"),
        (b"age-encryption.org/v1\n-> X25519 abc\nAA==\n", "malformed stanza body"),
        (b"age-encryption.org/v1\n" + b"A" * 20_000, "too long"),
    ],
)
def test_malformed_headers_are_corrupt(data: bytes, message: str, identity: Identity) -> None:
    with pytest.raises(AgeError, match=message):
        AgeReader(io.BytesIO(data), [identity])


def test_padded_or_noncanonical_base64_is_rejected() -> None:
    assert fmt.b64decode("AQ") == b"\x01"
    for bad in ("AQ==", "AR", "A", "A Q", "AQ\n"):
        with pytest.raises(ValueError):
            fmt.b64decode(bad)


def test_decrypt_file_names_the_file(
    tmp_path: Path, blob: bytes, plaintext: bytes, identity: Identity
) -> None:
    path = tmp_path / "cam1-0001.ts.age"
    path.write_bytes(blob)
    assert decrypt_file(path, [identity]) == plaintext
    path.write_bytes(blob[:-5])
    with pytest.raises(TruncatedError, match=str(path)):
        decrypt_file(path, [identity])


def test_reader_accepts_short_reads(blob: bytes, plaintext: bytes, identity: Identity) -> None:
    class Trickle(io.RawIOBase):
        """Returns at most 1000 bytes per read, like a pipe or socket might."""

        def __init__(self, data: bytes) -> None:
            self._data = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def read(self, size: int = -1) -> bytes:
            return self._data.read(min(size, 1000) if size >= 0 else 1000)

    reader = AgeReader(Trickle(blob), [identity])
    assert b"".join(reader.iter_chunks()) == plaintext
