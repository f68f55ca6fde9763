"""``seal_with``: what a slow stream has written reaches the disk as whole chunks at once, so a
crash (here: the writer abandoned, its ``.partial`` read as it is) loses none of it."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from store.age_format import CHUNK_SIZE
from store.age_reader import AgeReader
from store.encrypted_file import EncryptedFileWriter
from store.errors import TruncatedError
from store.keys import Identity

AgeRun = Callable[..., subprocess.CompletedProcess[bytes]]


def recovered(path: Path, identity: Identity) -> bytes:
    """Every authenticated chunk of a file cut short, as a reader after a crash gets them."""
    out = bytearray()
    with open(path, "rb") as f:
        try:
            for chunk in AgeReader(f, [identity]).iter_chunks():
                out += chunk
        except TruncatedError:
            pass
    return bytes(out)


def spaces(n: int) -> bytes:
    return b" " * n


@pytest.mark.parametrize("held", [1, 100, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 3 * CHUNK_SIZE + 7])
def test_sealing_puts_everything_written_on_disk(tmp_path: Path, held: int) -> None:
    identity = Identity.generate()
    writer = EncryptedFileWriter(tmp_path / "vitals.jsonl.age", [identity.recipient])
    data = bytes(i % 251 for i in range(held))
    writer.write(data)
    assert writer.unsealed_bytes > 0
    pad = writer.seal_with(spaces)
    assert 1 <= pad <= CHUNK_SIZE
    assert writer.unsealed_bytes == 1  # one byte of padding starts the next chunk
    # The process dies here: nothing more is written, the file stays .partial.
    got = recovered(writer.partial_path, identity)
    assert got[: len(data)] == data and set(got[len(data) :]) <= {ord(" ")}
    assert len(got) % CHUNK_SIZE == 0
    writer.close()


def test_nothing_held_means_no_padding(tmp_path: Path) -> None:
    identity = Identity.generate()
    writer = EncryptedFileWriter(tmp_path / "x.age", [identity.recipient])
    assert writer.seal_with(spaces) == 0 and writer.unsealed_for_s() == 0.0
    writer.close()


def test_padding_too_short_is_refused(tmp_path: Path) -> None:
    writer = EncryptedFileWriter(tmp_path / "x.age", [Identity.generate().recipient])
    writer.write(b"x")
    with pytest.raises(ValueError, match="cannot seal"):
        writer.seal_with(lambda n: b" " * (n - 1))
    writer.abort()


def test_the_age_of_what_is_held_starts_with_its_first_byte(tmp_path: Path) -> None:
    writer = EncryptedFileWriter(tmp_path / "x.age", [Identity.generate().recipient])
    writer.write(b"a")
    first = writer.unsealed_for_s()
    writer.write(b"b")  # still in the same chunk: the oldest byte is still "a"
    assert writer.unsealed_for_s() >= first
    writer.seal_with(spaces)
    assert writer.unsealed_for_s() < 0.5  # only the padding's last byte is held, from just now
    writer.write(bytes(CHUNK_SIZE * 2))  # chunks sealed: what is held came with this write
    assert writer.unsealed_bytes > 0
    writer.abort()


def test_json_lines_padded_with_spaces_stay_json_for_age_and_for_readers(
    tmp_path: Path, identity: Identity, identity_file: Path, age_cli: AgeRun
) -> None:
    writer = EncryptedFileWriter(tmp_path / "vitals.jsonl.age", [identity.recipient])
    records = [{"t": i, "HR": 140 + i} for i in range(5)]
    for r in records:  # a record, then spaces where a crash could strike
        writer.write(("\n" if r["t"] else "").encode() + json.dumps(r).encode())
        writer.seal_with(spaces)
    writer.write(b"\n")
    writer.close()
    done = age_cli("-d", "-i", str(identity_file), str(tmp_path / "vitals.jsonl.age"))
    assert done.returncode == 0, done.stderr
    assert [json.loads(line) for line in done.stdout.splitlines() if line.strip()] == records
