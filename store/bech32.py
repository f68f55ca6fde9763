"""Bech32 (BIP-173) text encoding, as age uses it for recipients and identities.

age departs from BIP-173 in one way: there is no 90-character limit, because
age secrets and future recipient types are longer than Bitcoin addresses. The
checksum constant is the original Bech32 one (not Bech32m).
"""

from __future__ import annotations

CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_CHAR_VALUE = {c: i for i, c in enumerate(CHARSET)}
_GENERATOR = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
_CHECKSUM_LEN = 6


class Bech32Error(ValueError):
    """The text is not valid Bech32; the message says why, without echoing the input."""


def _polymod(values: list[int]) -> int:
    chk = 1
    for value in values:
        top = chk >> 25
        chk = ((chk & 0x1FFFFFF) << 5) ^ value
        for i, gen in enumerate(_GENERATOR):
            if (top >> i) & 1:
                chk ^= gen
    return chk


def _hrp_expand(hrp: str) -> list[int]:
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def _convert_bits(data: bytes | list[int], from_bits: int, to_bits: int, pad: bool) -> list[int]:
    acc = 0
    bits = 0
    out: list[int] = []
    max_value = (1 << to_bits) - 1
    for value in data:
        acc = (acc << from_bits) | value
        bits += from_bits
        while bits >= to_bits:
            bits -= to_bits
            out.append((acc >> bits) & max_value)
    if pad:
        if bits:
            out.append((acc << (to_bits - bits)) & max_value)
    # Decoding must not accept leftover padding: otherwise several strings
    # would decode to the same key, and a key would have no single spelling.
    elif bits >= from_bits:
        raise Bech32Error("too much padding")
    elif (acc << (to_bits - bits)) & max_value:
        raise Bech32Error("non-zero padding")
    return out


def encode(hrp: str, data: bytes) -> str:
    """Encode data under a human-readable part. The result is lowercase unless hrp is uppercase.

    The case of hrp decides the case of the whole string, since Bech32 strings
    are all-lower or all-upper; the checksum is computed over the lowercase form.
    """
    if not hrp:
        raise Bech32Error("empty human-readable part")
    if any(ord(c) < 33 or ord(c) > 126 for c in hrp):
        raise Bech32Error("invalid character in human-readable part")
    if hrp.lower() != hrp and hrp.upper() != hrp:
        raise Bech32Error("mixed-case human-readable part")
    upper = hrp.upper() == hrp and hrp.lower() != hrp
    lower_hrp = hrp.lower()
    values = _convert_bits(data, 8, 5, pad=True)
    poly = _polymod([*_hrp_expand(lower_hrp), *values, 0, 0, 0, 0, 0, 0]) ^ 1
    checksum = [(poly >> 5 * (5 - i)) & 31 for i in range(_CHECKSUM_LEN)]
    text = lower_hrp + "1" + "".join(CHARSET[v] for v in values + checksum)
    return text.upper() if upper else text


def decode(text: str) -> tuple[str, bytes]:
    """Decode a Bech32 string into (lowercase human-readable part, data bytes)."""
    if text.lower() != text and text.upper() != text:
        raise Bech32Error("mixed case")
    lower = text.lower()
    sep = lower.rfind("1")
    if sep < 1:
        raise Bech32Error("missing separator or empty human-readable part")
    if len(lower) - sep - 1 < _CHECKSUM_LEN:
        raise Bech32Error("too short")
    hrp, rest = lower[:sep], lower[sep + 1 :]
    if any(ord(c) < 33 or ord(c) > 126 for c in hrp):
        raise Bech32Error("invalid character in human-readable part")
    try:
        values = [_CHAR_VALUE[c] for c in rest]
    except KeyError:
        raise Bech32Error("invalid character in data part") from None
    if _polymod([*_hrp_expand(hrp), *values]) != 1:
        raise Bech32Error("bad checksum")
    return hrp, bytes(_convert_bits(values[:-_CHECKSUM_LEN], 5, 8, pad=False))
