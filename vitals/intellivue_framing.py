"""The frame layer of Philips IntelliVue "Data Export" over the MIB/RS232 port.

On the wire every message travels as::

    C0 | 11 01 LEN_hi LEN_lo | <LEN bytes of user data> | FCS_lo FCS_hi | C1

``0x11``/``0x01`` are the Data Export protocol id and message type; LEN is big-endian. Between BOF
(``C0``) and EOF (``C1``) any ``C0``, ``C1`` or ``7D`` is sent as ``7D, byte ^ 0x20``, and that
applies to the header, the payload and the FCS alike (the MD PnP ``RS232Adapter`` escapes the whole
``FCSOutputStream`` output; VSCaptureMP's writer escapes only the payload, which we do not copy).
``7D C1`` aborts a frame. The FCS is PPP's FCS-16 of RFC 1662 (CRC-16/X.25: reflected polynomial
``0x8408``, initial ``0xFFFF``) over the unescaped header and user data, ones-complemented and
sent LSB first, so that running the FCS over header, data and received FCS leaves ``0xF0B8``.

Sources: ``mdpnp/mdpnp:interop-lab/demo-devices/src/main/java/org/mdpnp/devices/philips/intellivue/
{RS232Adapter,FCSOutputStream,IntellivueByteSplitter}.java`` and ``xeonfusion/VSCaptureMP:Class3.cs``
(``CRCmethods``, ``CreateFrameListFromByte``, ``WriteBuffer``), as summarised in PROTOCOLS.md §2.2.

The decoder resynchronises on framing bytes only, never on the length field: every ``C0`` starts a
new frame (a frame cut short by a lost ``C1`` is dropped), and a frame is accepted at ``C1`` only
when its FCS residue, protocol id, message type and length all agree.
"""

from __future__ import annotations

import binascii
import re
from dataclasses import dataclass, field
from typing import Final, NamedTuple

BOF: Final = 0xC0
EOF: Final = 0xC1
ESC: Final = 0x7D
ESC_XOR: Final = 0x20
PROTOCOL_ID: Final = 0x11
MESSAGE_TYPE: Final = 0x01
HEADER_LEN: Final = 4
FCS_LEN: Final = 2
GOOD_FCS_RESIDUE: Final = 0xF0B8

#: A frame longer than this (escaped, on the wire) is noise. Monitors split what they send to the
#: negotiated MTU (the association request offers 1000 and 2500 bytes), so 16 KiB leaves room for
#: a monitor that ignores it without letting a lost EOF grow the buffer without bound.
MAX_FRAME_BYTES: Final = 16 * 1024

# CRC-16/X.25 is CRC-CCITT reflected. binascii.crc_hqx computes the unreflected CRC-CCITT in C; a
# reflected CRC equals the bit-mirrored unreflected CRC of bit-mirrored input bytes, which keeps
# the FCS out of a per-byte Python loop (it is most of the cost of a frame otherwise).
_MIRROR8: Final = bytes(int(f"{i:08b}"[::-1], 2) for i in range(256))


def _mirror16(x: int) -> int:
    return (_MIRROR8[x & 0xFF] << 8) | _MIRROR8[x >> 8]


def fcs16(data: bytes | bytearray | memoryview, fcs: int = 0xFFFF) -> int:
    """The running PPP FCS-16 of ``data`` (not yet complemented)."""
    return _mirror16(binascii.crc_hqx(bytes(data).translate(_MIRROR8), _mirror16(fcs)))


def escape(data: bytes) -> bytes:
    """Transparency for transmission: ``C0``, ``C1`` and ``7D`` become ``7D, byte ^ 0x20``."""
    if not _SPECIAL.search(data):
        return data
    return _SPECIAL.sub(lambda m: bytes((ESC, m[0][0] ^ ESC_XOR)), data)


def unescape(data: bytes) -> bytes:
    """Undo ``escape``; ``data`` must not end in a lone ``7D``."""
    if ESC not in data:
        return data
    return _ESCAPED.sub(lambda m: bytes((m[0][1] ^ ESC_XOR,)), data)


_SPECIAL: Final = re.compile(rb"[\xc0\xc1\x7d]")
_ESCAPED: Final = re.compile(rb"\x7d.", re.DOTALL)
_DELIMITER: Final = re.compile(rb"[\xc0\xc1]")
_ESC_BYTE: Final = bytes((ESC,))


def encode_frame(user_data: bytes) -> bytes:
    """One complete frame for ``user_data`` (a session or Data Export message), ready to write."""
    if len(user_data) > 0xFFFF:
        raise ValueError(f"user data of {len(user_data)} bytes does not fit a frame")
    header = bytes((PROTOCOL_ID, MESSAGE_TYPE)) + len(user_data).to_bytes(2, "big")
    body = header + user_data
    fcs = fcs16(body) ^ 0xFFFF
    return bytes((BOF,)) + escape(body + fcs.to_bytes(2, "little")) + bytes((EOF,))


@dataclass(slots=True)
class FrameStats:
    """What the decoder saw: good frames, rejected frames, and bytes that were in neither."""

    frames_ok: int = 0
    frames_bad: int = 0
    garbage_bytes: int = 0


class Frame(NamedTuple):
    """A frame that passed every check: its user data and when its ``C0`` arrived.

    A NamedTuple rather than a frozen dataclass: one is built per frame, and it builds faster.
    """

    user_data: bytes
    host_ns: int


@dataclass(slots=True)
class FrameDecoder:
    """Incremental frame decoder: wire bytes in, checked frames out, whatever the chunking.

    Counting: bytes outside any frame, and every byte of a rejected or dropped frame (its ``C0``
    and ``C1`` included), are garbage; a frame is bad when it reached ``C1`` but failed a check,
    was aborted with ``7D C1``, was cut by a new ``C0`` or grew past ``max_frame``.
    """

    max_frame: int = MAX_FRAME_BYTES
    stats: FrameStats = field(default_factory=FrameStats)
    _inside: bool = False
    _raw: bytearray = field(default_factory=bytearray)  # escaped bytes after the current C0
    _start_ns: int = 0

    def reset(self) -> None:
        """Forget a partial frame (counted as garbage); keep the counters."""
        if self._inside:
            self.stats.garbage_bytes += 1 + len(self._raw)
        self._inside = False
        self._raw.clear()

    def feed(self, data: bytes, host_ns: int) -> list[Frame]:
        frames: list[Frame] = []
        stats = self.stats
        pos = 0
        end = len(data)
        while pos < end:
            match = _DELIMITER.search(data, pos)
            stop = end if match is None else match.start()
            if stop > pos:
                if self._inside:
                    self._raw += data[pos:stop]
                    if len(self._raw) > self.max_frame:
                        self._drop()  # the rest, up to the next C0, is counted as garbage
                else:
                    stats.garbage_bytes += stop - pos
            if match is None:
                break
            if data[stop] == BOF:
                if self._inside:
                    self._drop()  # a C0 inside a frame: the old one lost its end
                # The usual case, a whole frame in this chunk, is checked straight from a slice
                # of it, without collecting the frame byte by byte.
                after = _DELIMITER.search(data, stop + 1)
                if (
                    after is not None
                    and data[after.start()] == EOF
                    and after.start() - stop - 1 <= self.max_frame
                ):
                    frame = self._checked(data[stop + 1 : after.start()], host_ns)
                    if frame is not None:
                        frames.append(frame)
                    pos = after.start() + 1
                    continue
                self._inside = True
                self._start_ns = host_ns
            elif self._inside:
                frame = self._close()
                if frame is not None:
                    frames.append(frame)
            else:
                # A C1 outside a frame ends one we never saw start or already dropped.
                stats.garbage_bytes += 1
            pos = stop + 1
        return frames

    def _drop(self) -> None:
        if self._raw:  # "C0 C0" is idle noise, not a frame
            self.stats.frames_bad += 1
        self.stats.garbage_bytes += 1 + len(self._raw)  # the C0 and what followed it
        self._raw.clear()
        self._inside = False

    def _close(self) -> Frame | None:
        raw = bytes(self._raw)
        self._raw.clear()
        self._inside = False
        return self._checked(raw, self._start_ns)

    def _checked(self, raw: bytes, start_ns: int) -> Frame | None:
        """The frame whose escaped bytes between ``C0`` and ``C1`` are ``raw``, if it is good."""
        body = unescape(raw) if raw[-1:] != _ESC_BYTE else None  # 7D C1 is an abort
        if body is None or not _frame_ok(body):
            self.stats.frames_bad += 1
            self.stats.garbage_bytes += len(raw) + 2
            return None
        self.stats.frames_ok += 1
        return Frame(body[HEADER_LEN:-FCS_LEN], start_ns)


def _frame_ok(body: bytes) -> bool:
    if len(body) < HEADER_LEN + FCS_LEN:
        return False
    if body[0] != PROTOCOL_ID or body[1] != MESSAGE_TYPE:
        return False
    if int.from_bytes(body[2:4], "big") != len(body) - HEADER_LEN - FCS_LEN:
        return False
    return fcs16(body) == GOOD_FCS_RESIDUE
