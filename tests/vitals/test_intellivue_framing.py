"""IntelliVue frame layer: published frames, transparency everywhere, resync and chunking."""

from __future__ import annotations

from functools import partial

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from vitals_testkit import assert_chunking_invariant, feed_in_chunks, seeded_chunkings

from vitals.intellivue_framing import (
    GOOD_FCS_RESIDUE,
    Frame,
    FrameDecoder,
    encode_frame,
    escape,
    fcs16,
    unescape,
)


def wire(text: str) -> bytes:
    return bytes.fromhex(text.replace("\n", " "))


# PROTOCOLS.md §2.2: VSCaptureMP's ext_poll_request_msg5 framed for the wire.
EXT_POLL_FRAME = wire(
    "C0 11 01 00 30 E1 00 00 02 00 01 00 28 00 01 00 07 00 22 00 21 00 00 00 00 00 00 00 00\n"
    "F1 3B 00 14 00 01 00 01 00 06 00 00 00 01 00 08 F1 3E 00 04 00 03 A9 80 58 71 C1"
)
# PROTOCOLS.md §2.4: the MDS Create Result with invoke id 1 and time 0x000ABD00, framed.
MDS_RESULT_FRAME = wire(
    "C0 11 01 00 1C E1 00 00 02 00 02 00 14 00 01 00 01 00 0E 00 21 00 00 00 00 00 0A BD 00 0D 06 00 00 "
    "39 17 C1"
)
# PROTOCOLS.md §2.10: the synthetic extended-poll reply (HR 142, SpO2 91, pleth PR NaN).
WORKED_REPLY_FRAME = wire(
    "C0 11 01 00 74 E1 00 00 02 00 02 00 6C 00 01 00 07 00 66 00 21 00 00 00 00 F1 3B 00 5C\n"
    "00 01 00 00 00 12 D6 87 20 24 05 17 10 30 15 00 00 01 00 06 00 00 00 01 00 42\n"
    "00 00 00 03 00 3C\n"
    "01 01 00 01 00 0E 09 50 00 0A 41 82 00 00 0A A0 00 00 00 8E\n"
    "01 02 00 01 00 0E 09 50 00 0A 4B B8 00 00 02 20 00 00 00 5B\n"
    "01 03 00 01 00 0E 09 50 00 0A 48 22 00 00 0A A0 00 7F FF FF\n"
    "81 CE C1"
)
PUBLISHED = (EXT_POLL_FRAME, MDS_RESULT_FRAME, WORKED_REPLY_FRAME)


@pytest.mark.parametrize("frame", PUBLISHED, ids=["ext_poll", "mds_result", "worked_reply"])
def test_published_frames_check_and_reencode(frame: bytes) -> None:
    body = frame[1:-1]
    assert 0x7D not in body  # none of them needs escaping, so the body is the unescaped frame
    assert fcs16(body) == GOOD_FCS_RESIDUE
    user_data = body[4:-2]
    assert int.from_bytes(body[2:4], "big") == len(user_data)
    assert encode_frame(user_data) == frame
    decoder = FrameDecoder()
    assert decoder.feed(frame, 42) == [Frame(user_data, 42)]
    assert (decoder.stats.frames_ok, decoder.stats.frames_bad, decoder.stats.garbage_bytes) == (1, 0, 0)


def test_a_corrupted_fcs_is_rejected() -> None:
    for i in range(1, len(MDS_RESULT_FRAME) - 1):
        damaged = bytearray(MDS_RESULT_FRAME)
        damaged[i] ^= 0x04  # flips a bit without creating a framing byte in this frame
        decoder = FrameDecoder()
        assert decoder.feed(bytes(damaged), 0) == [], i
        assert decoder.stats.frames_bad == 1
        assert decoder.stats.garbage_bytes == len(MDS_RESULT_FRAME)


def test_escape_round_trip_and_specials() -> None:
    assert escape(b"\xc0\xc1\x7d\x00") == b"\x7d\xe0\x7d\xe1\x7d\x5d\x00"
    assert unescape(b"\x7d\xe0\x7d\xe1\x7d\x5d\x00") == b"\xc0\xc1\x7d\x00"
    data = bytes(range(256)) * 2
    assert unescape(escape(data)) == data


def _inner(frame: bytes) -> bytes:
    assert frame[0] == 0xC0 and frame[-1] == 0xC1
    inner = frame[1:-1]
    assert 0xC0 not in inner and 0xC1 not in inner, "framing bytes only at the ends"
    return inner


def test_length_bytes_are_escaped() -> None:
    # 0xC0 bytes of user data: the low length byte is the BOF value itself.
    user_data = bytes(0xC0)
    frame = encode_frame(user_data)
    assert _inner(frame)[:5] == b"\x11\x01\x00\x7d\xe0"
    assert FrameDecoder().feed(frame, 0) == [Frame(user_data, 0)]
    user_data = bytes(0x7D)
    assert _inner(encode_frame(user_data))[:5] == b"\x11\x01\x00\x7d\x5d"
    assert FrameDecoder().feed(encode_frame(user_data), 0)[0].user_data == user_data


def test_fcs_bytes_are_escaped() -> None:
    # Search payloads until the FCS itself contains each special byte.
    found: dict[int, bytes] = {}
    n = 0
    while len(found) < 3:
        payload = n.to_bytes(3, "big").replace(b"\xc0", b"").replace(b"\xc1", b"").replace(b"\x7d", b"")
        header = b"\x11\x01" + len(payload).to_bytes(2, "big")
        fcs = (fcs16(header + payload) ^ 0xFFFF).to_bytes(2, "little")
        for special in (0xC0, 0xC1, 0x7D):
            if special in fcs and special not in found:
                found[special] = payload
        n += 1
    for special, payload in found.items():
        frame = encode_frame(payload)
        inner = _inner(frame)
        assert inner[-2:] != bytes((special, special))
        assert bytes((0x7D, special ^ 0x20)) in inner[-4:]
        assert FrameDecoder().feed(frame, 0) == [Frame(payload, 0)]


F1 = encode_frame(b"\xe1\x00\x00\x02one")
F2 = encode_frame(b"\xe1\x00\x00\x02two \xc0\xc1\x7d")
F3 = encode_frame(b"\x0e\x03three")
BAD_FCS = F1[:-3] + bytes((F1[-3] ^ 0x01,)) + F1[-2:]
WRONG_PROTO = encode_frame(b"x")[:1] + b"\x12" + encode_frame(b"x")[2:]  # also fails the FCS
ABORTED = F2[:-1] + b"\x7d\xc1"
NO_END = F1[:-1]  # a C1 lost on the wire: the next C0 must restart
STREAM = b"\x00noise" + F1 + b"\xc1junk" + NO_END + F2 + BAD_FCS + ABORTED + WRONG_PROTO + b"\xc0\xc0" + F3


def _wrong_length_frame() -> bytes:
    # A frame whose FCS is right but whose header length lies.
    body = b"\x11\x01\x00\x09" + b"abc"
    fcs = (fcs16(body) ^ 0xFFFF).to_bytes(2, "little")
    return b"\xc0" + escape(body + fcs) + b"\xc1"


def test_decoder_resyncs_on_framing_bytes_and_counts() -> None:
    decoder = FrameDecoder()
    frames = decoder.feed(STREAM + _wrong_length_frame() + F1, 7)
    one, two, three = b"\xe1\x00\x00\x02one", b"\xe1\x00\x00\x02two \xc0\xc1\x7d", b"\x0e\x03three"
    assert [f.user_data for f in frames] == [one, two, three, one]
    s = decoder.stats
    assert s.frames_ok == 4
    # NO_END (cut by F2's C0), BAD_FCS, ABORTED, WRONG_PROTO, wrong length; "C0 C0" is idle noise.
    assert s.frames_bad == 5
    garbage = (
        len(b"\x00noise")
        + len(b"\xc1junk")
        + len(NO_END)
        + len(BAD_FCS)
        + len(ABORTED)
        + len(WRONG_PROTO)
        + 2  # "C0 C0" and F3's own C0: two frames started and restarted before any byte
        + len(_wrong_length_frame())
    )
    assert s.garbage_bytes == garbage


def test_overlong_frame_is_dropped_and_memory_stays_bounded() -> None:
    decoder = FrameDecoder(max_frame=64)
    assert decoder.feed(b"\xc0" + b"\x01" * 1000, 0) == []
    assert len(decoder._raw) == 0
    assert decoder.feed(b"\x02" * 100 + b"\xc1" + F3, 0)[0].user_data == b"\x0e\x03three"
    assert decoder.stats.frames_bad == 1
    assert decoder.stats.garbage_bytes == 1 + 1000 + 100 + 1


def test_frames_carry_the_arrival_of_their_first_byte() -> None:
    decoder = FrameDecoder()
    assert decoder.feed(F1[:3], 100) == []
    assert decoder.feed(F1[3:] + F2[:1], 200) == [Frame(b"\xe1\x00\x00\x02one", 100)]
    assert decoder.feed(F2[1:], 300)[0].host_ns == 200


def test_reset_forgets_a_partial_frame() -> None:
    decoder = FrameDecoder()
    decoder.feed(F1[:8], 0)
    decoder.reset()
    assert decoder.feed(F1[8:], 0) == []
    assert decoder.feed(F1, 0)[0].user_data == b"\xe1\x00\x00\x02one"
    assert decoder.stats.garbage_bytes == 8 + len(F1) - 8


new_decoder = partial(FrameDecoder, max_frame=256)


def test_seeded_random_chunkings_agree() -> None:
    data = STREAM + b"\xc0" + b"\x55" * 300 + b"\xc1" + F2  # with an overlong frame
    assert_chunking_invariant(new_decoder, data, seeded_chunkings(data, seed=99, rounds=300, max_cuts=29))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cuts=st.lists(st.integers(0, len(STREAM))))
def test_any_chunking_gives_the_same_frames(cuts: list[int]) -> None:
    assert_chunking_invariant(new_decoder, STREAM, [cuts])


@settings(max_examples=300, deadline=None)
@given(garbage=st.binary(max_size=600), cuts=st.lists(st.integers(0, 700), max_size=10))
def test_any_garbage_then_a_good_frame_decodes(garbage: bytes, cuts: list[int]) -> None:
    data = garbage + F2
    decoder = new_decoder()
    frames = [f.user_data for f in feed_in_chunks(decoder, data, cuts)]
    ok, bad, waste = decoder.stats.frames_ok, decoder.stats.frames_bad, decoder.stats.garbage_bytes
    assert frames[-1:] == [b"\xe1\x00\x00\x02two \xc0\xc1\x7d"]
    # Every byte is in a good frame or counted as garbage, never both, never neither.
    assert waste + sum(len(encode_frame(f)) for f in frames) == len(data)
    assert ok == len(frames) and bad >= 0
