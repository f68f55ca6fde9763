"""Properties of the store over random sizes, write steps, read sizes, cut points and flipped bits.

What the reader promises, checked exactly: what was written reads back whole; a file cut short
yields the chunks wholly before the cut, not a byte more, then TruncatedError; a flipped bit in
the payload yields the chunks before the damaged one, then an error naming that chunk; a flipped
bit in the header is refused before any plaintext, with one of the store's own errors.
(The reference `age` judges our writer's files in test_store_age_interop.py.)
"""

from __future__ import annotations

import io
import random
from itertools import cycle

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from store.age_format import CHUNK_SIZE, ENCRYPTED_CHUNK_SIZE, PAYLOAD_NONCE_SIZE
from store.age_reader import AgeReader
from store.age_writer import AgeWriter
from store.errors import AgeError, CorruptFileError, NoIdentityError, TruncatedError
from store.keys import Identity

ME = Identity.generate()
C = CHUNK_SIZE
EDGES = [0, 1, C - 1, C, C + 1, 2 * C - 1, 2 * C, 2 * C + 1, 3 * C, 4 * C]
sizes = st.one_of(st.sampled_from(EDGES), st.integers(0, 5 * C))
# Several step sizes per file, taken in turn, so writes straddle chunk edges in varied ways.
steps = st.lists(st.integers(1, 3 * C), min_size=1, max_size=6)
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class ShortReads:
    """A source whose read(n) hands back fewer bytes than asked, as a pipe or socket may."""

    def __init__(self, data: bytes, sizes: list[int]) -> None:
        self._data = memoryview(data)
        self._at = 0
        self._sizes = cycle(sizes)

    def read(self, size: int, /) -> bytes:
        n = min(size, next(self._sizes))
        piece = bytes(self._data[self._at : self._at + n])
        self._at += len(piece)
        return piece


def plaintext(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def encrypt(plain: bytes, step_sizes: list[int]) -> bytes:
    out = io.BytesIO()
    writer = AgeWriter(out, [ME.recipient])
    at = 0
    for step in cycle(step_sizes):
        if at >= len(plain):
            break
        writer.write(plain[at : at + step])
        at += step
    writer.close()
    return out.getvalue()


def payload_start(data: bytes) -> int:
    """Where chunk 0 begins: after the MAC line and the payload nonce (found without the writer)."""
    mac_line = data.index(b"\n--- ") + 1
    return data.index(b"\n", mac_line) + 1 + PAYLOAD_NONCE_SIZE


def read(source: io.BytesIO | ShortReads) -> tuple[str, bytes, AgeError | None]:
    """(stage that failed or "ok", plaintext released, error): "header" is AgeReader() itself."""
    try:
        reader = AgeReader(source, [ME])
    except AgeError as exc:
        return "header", b"", exc
    got = bytearray()
    try:
        for chunk in reader.iter_chunks():
            got += chunk
    except AgeError as exc:
        return "payload", bytes(got), exc
    return "ok", bytes(got), None


def chunk_edges(start: int, length: int) -> list[int]:
    """Offsets on and either side of each chunk boundary, where off-by-one mistakes live."""
    edges = range(start, length + 1, ENCRYPTED_CHUNK_SIZE)
    return [e + d for e in edges for d in (-1, 0, 1) if 0 <= e + d < length]


@SETTINGS
@given(size=sizes, step_sizes=steps, read_sizes=st.lists(st.integers(1, 3 * C), min_size=1, max_size=4),
       seed=st.integers(0, 2**32))  # fmt: skip
def test_what_is_written_reads_back_whole(
    size: int, step_sizes: list[int], read_sizes: list[int], seed: int
) -> None:
    plain = plaintext(size, seed)
    data = encrypt(plain, step_sizes)
    assert read(io.BytesIO(data)) == ("ok", plain, None)
    assert read(ShortReads(data, read_sizes)) == ("ok", plain, None)


@SETTINGS
@given(size=sizes, seed=st.integers(0, 2**32), pick=st.data())
def test_a_file_cut_short_yields_the_whole_chunks_before_the_cut(
    size: int, seed: int, pick: st.DataObject
) -> None:
    plain = plaintext(size, seed)
    data = encrypt(plain, [4096])
    start = payload_start(data)
    # Anywhere short of the end (a cut at the very end is the whole file), chunk edges favoured.
    at = pick.draw(st.one_of(st.integers(0, len(data) - 1), st.sampled_from(chunk_edges(start, len(data)))))
    stage, got, error = read(io.BytesIO(data[:at]))
    assert isinstance(error, TruncatedError), f"cut at {at}: {error!r}"
    if at < start:
        assert stage == "header" and got == b""  # cut in the header or the payload nonce
        return
    # Chunk k starts at start + k * ENCRYPTED_CHUNK_SIZE: the chunks that end at or before the cut
    # are released, the one it falls in is not, even when that is the final chunk losing its tag.
    whole_chunks = (at - start) // ENCRYPTED_CHUNK_SIZE
    assert stage == "payload"
    assert got == plain[: whole_chunks * C], f"cut at {at}: {len(got)} bytes released"


@SETTINGS
@given(size=sizes, seed=st.integers(0, 2**32), pick=st.data(), bit=st.integers(0, 7))
def test_a_flipped_payload_bit_stops_at_the_damaged_chunk_and_names_it(
    size: int, seed: int, pick: st.DataObject, bit: int
) -> None:
    plain = plaintext(size, seed)
    data = bytearray(encrypt(plain, [C]))
    start = payload_start(data)
    at = pick.draw(st.integers(start - PAYLOAD_NONCE_SIZE, len(data) - 1), label="flipped byte")
    data[at] ^= 1 << bit
    stage, got, error = read(io.BytesIO(bytes(data)))
    # A flip in the nonce spoils every chunk, so chunk 0 is the first to fail.
    damaged = max(0, (at - start) // ENCRYPTED_CHUNK_SIZE)
    last = max(0, (len(plain) - 1) // C)
    assert stage == "payload" and got == plain[: damaged * C], f"flip at {at}: {error!r}"
    assert f"chunk {damaged} " in f"{error} ", f"flip at {at}: {error!r}"
    if damaged < last:
        # Chunks follow the damaged one: that is corruption, never passed off as a clean cut.
        assert isinstance(error, CorruptFileError), f"flip at {at}: {error!r}"
    else:
        # A damaged final chunk cannot be told from a cut one (store.errors.TruncatedError).
        assert isinstance(error, CorruptFileError | TruncatedError), f"flip at {at}: {error!r}"


@SETTINGS
@given(size=st.sampled_from([0, 1, C, C + 1]), pick=st.data(), bit=st.integers(0, 7))
def test_a_flipped_header_bit_is_refused_before_any_plaintext(
    size: int, pick: st.DataObject, bit: int
) -> None:
    plain = plaintext(size, size)
    data = bytearray(encrypt(plain, [C]))
    at = pick.draw(st.integers(0, payload_start(data) - PAYLOAD_NONCE_SIZE - 1), label="flipped byte")
    data[at] ^= 1 << bit
    # Any exception other than the store's own fails the test: a damaged header must not crash us.
    stage, got, error = read(io.BytesIO(bytes(data)))
    assert stage == "header" and got == b"", f"flip at {at}: {error!r}"
    # A damaged stanza reads as "not for this key" (as in age); a damaged line end can make the
    # header run on to the end of the file; anything else is a malformed header or a bad MAC.
    assert isinstance(error, CorruptFileError | NoIdentityError | TruncatedError), f"flip at {at}: {error!r}"
