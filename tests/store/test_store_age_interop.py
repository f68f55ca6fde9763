"""Our age files against the reference `age` tool, both ways, around the 64 KiB chunk size."""

from __future__ import annotations

import io
import os
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from store import age_format as fmt
from store.age_reader import AgeReader, decrypt_bytes
from store.age_writer import AgeWriter
from store.errors import NoRecipientError
from store.keys import Identity, Recipient, load_identities

AgeRun = Callable[..., subprocess.CompletedProcess[bytes]]
Encrypt = Callable[[bytes, Sequence[Recipient]], bytes]

CHUNK = 64 * 1024
SIZES = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, 2 * CHUNK + 1]
STEPS = [1, 7, 4096, CHUNK, 100_000, None]  # None: everything in one write()


def _payload_length(plaintext_size: int) -> int:
    # Independent of the writer: one tag per chunk, and an empty plaintext
    # still has one (empty) final chunk.
    chunks = max(1, -(-plaintext_size // CHUNK))
    return 16 + plaintext_size + 16 * chunks


def _write_in_steps(data: bytes, recipients: Sequence[Recipient], step: int | None) -> bytes:
    out = io.BytesIO()
    writer = AgeWriter(out, recipients)
    if step is None:
        writer.write(data)
    else:
        view = memoryview(data)
        for i in range(0, len(data), step):
            writer.write(view[i : i + step])
    writer.close()
    return out.getvalue()


def _header_length(blob: bytes) -> int:
    mac_line = blob.index(b"\n--- ") + 1
    return blob.index(b"\n", mac_line) + 1


@pytest.fixture(scope="module")
def plaintexts() -> dict[int, bytes]:
    return {size: os.urandom(size) for size in SIZES}


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("step", STEPS, ids=lambda s: "whole" if s is None else f"step{s}")
def test_writer_output_decrypts_with_age(
    size: int,
    step: int | None,
    plaintexts: dict[int, bytes],
    identity: Identity,
    identity_file: Path,
    age_cli: AgeRun,
) -> None:
    data = plaintexts[size]
    blob = _write_in_steps(data, [identity.recipient], step)
    assert len(blob) - _header_length(blob) == _payload_length(size)
    result = age_cli("-d", "-i", str(identity_file), stdin=blob)
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout == data
    assert decrypt_bytes(blob, [identity]) == data


@pytest.mark.parametrize("size", SIZES)
def test_age_output_decrypts_with_reader(
    size: int, plaintexts: dict[int, bytes], identity: Identity, age_cli: AgeRun
) -> None:
    data = plaintexts[size]
    result = age_cli("-r", str(identity.recipient), stdin=data)
    assert result.returncode == 0, result.stderr.decode()
    reader = AgeReader(io.BytesIO(result.stdout), [identity])
    chunks = list(reader.iter_chunks())
    assert b"".join(chunks) == data
    assert all(len(c) == CHUNK for c in chunks[:-1])
    assert chunks[-1] or size == 0


def test_age_multi_recipient_files_open_with_each_identity(
    age_cli: AgeRun, age_keygen: Callable[[], Path], tmp_path: Path
) -> None:
    first_file, second_file = age_keygen(), age_keygen()
    (first,) = load_identities(first_file)
    (second,) = load_identities(second_file)
    third = Identity.generate()
    recipients_file = tmp_path / "recipients.txt"
    recipients_file.write_text(f"# third party\n{third.recipient}\n")
    data = os.urandom(3 * CHUNK + 5)
    result = age_cli(
        "-e", "-i", str(first_file), "-r", str(second.recipient), "-R", str(recipients_file),
        stdin=data,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.count(b"\n-> X25519 ") == 3
    for identity in (first, second, third):
        assert decrypt_bytes(result.stdout, [identity]) == data
    assert decrypt_bytes(result.stdout, [Identity.generate(), second]) == data


def test_writer_multi_recipient_files_open_in_age_with_each_key(
    age_cli: AgeRun, age_keygen: Callable[[], Path], encrypt: Encrypt
) -> None:
    key_files = [age_keygen() for _ in range(3)]
    recipients = [load_identities(path)[0].recipient for path in key_files]
    data = os.urandom(CHUNK + 123)
    blob = encrypt(data, recipients)
    for path in key_files:
        result = age_cli("-d", "-i", str(path), stdin=blob)
        assert result.returncode == 0, result.stderr.decode()
        assert result.stdout == data


def test_our_key_file_works_both_ways_in_age(
    identity: Identity, identity_file: Path, age_cli: AgeRun
) -> None:
    data = b"resuscitation table 3, camera A"
    encrypted = age_cli("-e", "-i", str(identity_file), stdin=data)
    assert encrypted.returncode == 0, encrypted.stderr.decode()
    assert decrypt_bytes(encrypted.stdout, [identity]) == data
    decrypted = age_cli("-d", "-i", str(identity_file), stdin=encrypted.stdout)
    assert decrypted.stdout == data


def test_each_file_gets_fresh_keys(identity: Identity, encrypt: Encrypt) -> None:
    a = encrypt(b"same plaintext", [identity.recipient])
    b = encrypt(b"same plaintext", [identity.recipient])
    assert a != b
    header_a, header_b = a[: _header_length(a)], b[: _header_length(b)]
    nonce_a, nonce_b = a[len(header_a) : len(header_a) + 16], b[len(header_b) : len(header_b) + 16]
    assert nonce_a != nonce_b
    share_a = header_a.split(b"\n")[1]
    share_b = header_b.split(b"\n")[1]
    assert share_a != share_b


def test_unknown_stanzas_are_skipped_by_both(
    identity: Identity, identity_file: Path, age_cli: AgeRun
) -> None:
    # A foreign stanza whose body fills its line exactly, so the body ends
    # with an empty line: both readers must skip it and still find ours.
    file_key = fmt.new_file_key()
    foreign = fmt.Stanza(("example.com/enigma", "arg"), os.urandom(48))
    ours = fmt.wrap_x25519(file_key, identity.recipient.public_key)
    header = fmt.encode_header(file_key, [foreign, ours])
    assert b"\n\n-> X25519" in header
    nonce = fmt.new_payload_nonce()
    cipher = fmt.payload_cipher(file_key, nonce)
    blob = header + nonce + cipher.encrypt(fmt.chunk_nonce(0, last=True), b"hello", None)
    assert decrypt_bytes(blob, [identity]) == b"hello"
    result = age_cli("-d", "-i", str(identity_file), stdin=blob)
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout == b"hello"


def test_writer_refuses_zero_recipients() -> None:
    out = io.BytesIO()
    with pytest.raises(NoRecipientError):
        AgeWriter(out, [])
    assert out.getvalue() == b""


def test_writer_leaves_output_open_and_is_closed_once(identity: Identity) -> None:
    out = io.BytesIO()
    writer = AgeWriter(out, [identity.recipient])
    writer.write(b"x" * 10)
    writer.close()
    writer.close()
    assert not out.closed
    size = len(out.getvalue())
    with pytest.raises(ValueError, match="closed"):
        writer.write(b"more")
    assert len(out.getvalue()) == size


def test_full_chunk_is_held_until_more_data_arrives(identity: Identity) -> None:
    out = io.BytesIO()
    writer = AgeWriter(out, [identity.recipient])
    header_and_nonce = len(out.getvalue())
    writer.write(bytes(CHUNK))
    assert len(out.getvalue()) == header_and_nonce  # might still be the last chunk
    writer.write(b"\x01")
    assert len(out.getvalue()) == header_and_nonce + CHUNK + 16
    writer.close()
    assert decrypt_bytes(out.getvalue(), [identity]) == bytes(CHUNK) + b"\x01"


def test_context_manager_does_not_finalize_on_error(identity: Identity) -> None:
    out = io.BytesIO()
    with pytest.raises(RuntimeError), AgeWriter(out, [identity.recipient]) as writer:
        writer.write(b"partial")
        raise RuntimeError("capture failed")
    with pytest.raises(Exception, match="truncated"):
        decrypt_bytes(out.getvalue(), [identity])
