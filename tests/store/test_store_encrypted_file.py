"""EncryptedFileWriter: the on-disk life of a recording, from .partial to final name."""

from __future__ import annotations

import gc
import io
import itertools
import json
import os
import shutil
import stat
import subprocess
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path

import pytest

from store import encrypted_file
from store.age_reader import AgeReader, decrypt_file
from store.encrypted_file import EncryptedFileWriter
from store.errors import AgeError, NoRecipientError, TruncatedError
from store.keys import Identity

AgeRun = Callable[..., subprocess.CompletedProcess[bytes]]

CHUNK = 64 * 1024
ENC_CHUNK = CHUNK + 16
MARKER = b"NEOFLIX-PLAINTEXT-MARKER:"


@pytest.fixture
def final_path(tmp_path: Path) -> Path:
    folder = tmp_path / "recordings"
    folder.mkdir()
    return folder / "table3-cam1-0001.ts.age"


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _marked_plaintext(size: int) -> bytes:
    data = (MARKER * (size // len(MARKER) + 1))[:size]
    return data


def test_partial_while_open_renamed_on_close(final_path: Path, identity: Identity) -> None:
    writer = EncryptedFileWriter(final_path, [identity.recipient])
    partial = final_path.with_name(final_path.name + ".partial")
    assert _files(final_path.parent) == [partial.name]
    assert writer.partial_path == partial
    assert writer.writable() and not writer.readable() and not writer.seekable()
    data = os.urandom(CHUNK + 10)
    assert writer.write(data[:100]) == 100
    assert writer.write(memoryview(data)[100:]) == len(data) - 100
    assert writer.bytes_written == len(data)
    assert not final_path.exists()
    writer.close()
    assert writer.closed
    assert _files(final_path.parent) == [final_path.name]
    assert decrypt_file(final_path, [identity]) == data
    writer.close()  # closing again changes nothing
    with pytest.raises(ValueError):
        writer.write(b"late")


@pytest.mark.parametrize("umask", [0o000, 0o022, 0o077, 0o277])
def test_file_mode_is_0600_whatever_the_umask(final_path: Path, identity: Identity, umask: int) -> None:
    old = os.umask(umask)
    try:
        writer = EncryptedFileWriter(final_path, [identity.recipient])
    finally:
        os.umask(old)
    assert stat.S_IMODE(writer.partial_path.stat().st_mode) == 0o600
    writer.write(b"x")
    writer.close()
    assert stat.S_IMODE(final_path.stat().st_mode) == 0o600


def test_no_recipients_creates_nothing(final_path: Path) -> None:
    with pytest.raises(NoRecipientError, match=final_path.name):
        EncryptedFileWriter(final_path, [])
    assert _files(final_path.parent) == []


def test_existing_recording_is_never_overwritten(final_path: Path, identity: Identity) -> None:
    final_path.write_bytes(b"earlier recording")
    with pytest.raises(FileExistsError):
        EncryptedFileWriter(final_path, [identity.recipient])
    assert _files(final_path.parent) == [final_path.name]
    final_path.unlink()
    partial = final_path.with_name(final_path.name + ".partial")
    partial.write_bytes(b"a crashed recording, kept for recovery")
    with pytest.raises(FileExistsError):
        EncryptedFileWriter(final_path, [identity.recipient])
    assert partial.read_bytes() == b"a crashed recording, kept for recovery"


def test_abort_leaves_nothing(final_path: Path, identity: Identity) -> None:
    writer = EncryptedFileWriter(final_path, [identity.recipient])
    writer.write(os.urandom(3 * CHUNK))
    size_before = writer.partial_path.stat().st_size
    assert size_before > 2 * CHUNK
    writer.abort()
    assert _files(final_path.parent) == []
    assert writer.closed
    writer.abort()
    writer.close()
    assert _files(final_path.parent) == []


def test_abort_after_close_keeps_the_recording(final_path: Path, identity: Identity) -> None:
    writer = EncryptedFileWriter(final_path, [identity.recipient])
    writer.write(b"keep me")
    writer.close()
    writer.abort()
    assert decrypt_file(final_path, [identity]) == b"keep me"


def test_no_plaintext_reaches_the_disk(final_path: Path, identity: Identity) -> None:
    data = _marked_plaintext(5 * CHUNK + 321)
    writer = EncryptedFileWriter(final_path, [identity.recipient])
    for i in range(0, len(data), 4000):
        writer.write(data[i : i + 4000])
    on_disk_while_open = writer.partial_path.read_bytes()
    assert len(on_disk_while_open) > 4 * CHUNK  # full chunks are written as they fill
    writer.close()
    on_disk = final_path.read_bytes()
    for blob in (on_disk_while_open, on_disk):
        assert MARKER not in blob
        assert MARKER[:8] not in blob
    assert decrypt_file(final_path, [identity]) == data


def test_partial_file_of_a_crash_decrypts_to_its_last_complete_chunk(
    final_path: Path, identity: Identity, identity_file: Path, age_cli: AgeRun
) -> None:
    data = os.urandom(3 * CHUNK + CHUNK // 2)
    writer = EncryptedFileWriter(final_path, [identity.recipient])
    writer.write(data)
    # No close(): this is what a crash leaves behind.
    crashed = writer.partial_path.read_bytes()
    result = age_cli("-d", "-i", str(identity_file), stdin=crashed)
    assert result.returncode != 0
    assert result.stdout == data[: 3 * CHUNK]
    chunks: list[bytes] = []
    with pytest.raises(TruncatedError):
        for chunk in AgeReader(io.BytesIO(crashed), [identity]).iter_chunks():
            chunks.append(chunk)
    assert b"".join(chunks) == data[: 3 * CHUNK]
    writer.abort()


def test_garbage_collection_does_not_finalize(final_path: Path, identity: Identity) -> None:
    writer = EncryptedFileWriter(final_path, [identity.recipient])
    writer.write(os.urandom(2 * CHUNK + 1))
    partial = writer.partial_path
    del writer
    gc.collect()
    assert _files(final_path.parent) == [partial.name]
    with pytest.raises(TruncatedError):
        decrypt_file(partial, [identity])


class _FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def fsync_log(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[_FakeClock, list[float]]]:
    clock = _FakeClock()
    log: list[float] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            log.append(clock.now)
        real_fsync(fd)

    monkeypatch.setattr(encrypted_file, "time", clock)
    monkeypatch.setattr(os, "fsync", fsync)
    yield clock, log


def test_fsync_is_rate_limited_and_always_done_on_close(
    final_path: Path, identity: Identity, fsync_log: tuple[_FakeClock, list[float]]
) -> None:
    clock, log = fsync_log
    writer = EncryptedFileWriter(final_path, [identity.recipient], fsync_interval_s=2.0)
    for _ in range(40):
        clock.now += 0.3
        writer.write(b"x" * 1000)
    synced_while_writing = len(log)
    assert 4 <= synced_while_writing <= 6  # 12 s of writing, one fsync per 2 s
    gaps = [b - a for a, b in itertools.pairwise(log)]
    assert all(gap >= 2.0 for gap in gaps)
    writer.close()
    assert len(log) == synced_while_writing + 1


def test_pyav_muxes_mpegts_into_it(final_path: Path, identity: Identity, tmp_path: Path) -> None:
    av = pytest.importorskip("av")
    np = pytest.importorskip("numpy")
    ffprobe = shutil.which("ffprobe")
    if ffprobe is None:
        pytest.skip("ffprobe is not installed")

    class Watched(EncryptedFileWriter):
        """Fails the test if the muxer ever tries to seek."""

        def seek(self, offset: int, whence: int = 0) -> int:
            raise AssertionError("muxer tried to seek")

        def tell(self) -> int:
            raise AssertionError("muxer asked for the position")

    writer = Watched(final_path, [identity.recipient])
    container = av.open(writer, "w", format="mpegts")
    stream = container.add_stream("mpeg2video", rate=Fraction(25))
    stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
    for i in range(12):
        image = np.full((48, 64, 3), i * 20, dtype=np.uint8)
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    writer.close()

    plain = tmp_path / "decrypted.ts"
    plain.write_bytes(decrypt_file(final_path, [identity]))
    assert plain.read_bytes()[0] == 0x47  # MPEG-TS sync byte
    probe = subprocess.run(
        [ffprobe, "-v", "error", "-count_frames", "-select_streams", "v:0",
         "-show_entries", "stream=codec_name,nb_read_frames", "-of", "json", str(plain)],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert probe.returncode == 0, probe.stderr
    (video,) = json.loads(probe.stdout)["streams"]
    assert video["codec_name"] == "mpeg2video"
    assert int(video["nb_read_frames"]) == 12


def test_reading_the_final_file_with_a_wrong_key_fails_clearly(final_path: Path, identity: Identity) -> None:
    writer = EncryptedFileWriter(final_path, [identity.recipient])
    writer.write(b"data")
    writer.close()
    with pytest.raises(AgeError, match=rf"{final_path.name}: no identity matches"):
        decrypt_file(final_path, [Identity.generate()])
