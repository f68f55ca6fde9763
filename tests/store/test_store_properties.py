"""Properties of the store, over random sizes, write steps, cut points and flipped bytes: what is
written reads back whole; a file cut short yields a prefix of whole chunks and says it was cut;
a flipped byte is an error, never different plaintext."""

from __future__ import annotations

import io

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from store.age_format import CHUNK_SIZE
from store.age_reader import AgeReader
from store.age_writer import AgeWriter
from store.errors import AgeError, TruncatedError
from store.keys import Identity

ME = Identity.generate()
EDGES = [0, 1, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 2 * CHUNK_SIZE, 3 * CHUNK_SIZE + 5]
sizes = st.one_of(st.sampled_from(EDGES), st.integers(0, 5 * CHUNK_SIZE))
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def encrypt(plain: bytes, step: int) -> bytes:
    out = io.BytesIO()
    writer = AgeWriter(out, [ME.recipient])
    for i in range(0, len(plain), step):
        writer.write(plain[i : i + step])
    writer.close()
    return out.getvalue()


def read(data: bytes) -> tuple[bytes, AgeError | None]:
    got = bytearray()
    try:
        for chunk in AgeReader(io.BytesIO(data), [ME]).iter_chunks():
            got += chunk
    except AgeError as exc:
        return bytes(got), exc
    return bytes(got), None


@SETTINGS
@given(size=sizes, step=st.integers(1, 3 * CHUNK_SIZE), seed=st.integers(0, 255))
def test_what_is_written_reads_back_whole(size: int, step: int, seed: int) -> None:
    plain = bytes((i * 31 + seed) % 256 for i in range(size))
    assert read(encrypt(plain, step)) == (plain, None)


@SETTINGS
@given(size=sizes, cut=st.floats(0, 1, exclude_max=True))
def test_a_file_cut_short_yields_whole_chunks_and_says_so(size: int, cut: float) -> None:
    plain = bytes(i % 251 for i in range(size))
    data = encrypt(plain, 4096)
    header = len(data) - len(plain) - 16 * max(1, -(-size // CHUNK_SIZE))  # header and nonce
    at = header + int(cut * (len(data) - header))  # short of the end whatever the float rounding
    got, error = read(data[:at])
    assert isinstance(error, TruncatedError)
    assert plain.startswith(got) and len(got) % CHUNK_SIZE == 0


@SETTINGS
@given(size=st.integers(1, 3 * CHUNK_SIZE), where=st.floats(0, 1, exclude_max=True), bit=st.integers(0, 7))
def test_a_flipped_byte_is_an_error_never_other_plaintext(size: int, where: float, bit: int) -> None:
    plain = bytes(i % 253 for i in range(size))
    data = bytearray(encrypt(plain, 8192))
    at = int(where * len(data))
    data[at] ^= 1 << bit
    got, error = read(bytes(data))
    assert error is not None  # header, its MAC, a chunk's tag: each is authenticated
    assert plain.startswith(got)  # whatever came out before the damage is the real plaintext
