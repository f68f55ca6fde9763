"""Bech32 against the BIP-173 test vectors, plus the no-length-limit rule age adds."""

from __future__ import annotations

import os

import pytest

from store import bech32

# BIP-173 "valid" strings whose data part is whole bytes.
VALID = [
    "A12UEL5L",
    "a12uel5l",
    "an83characterlonghumanreadablepartthatcontainsthenumber1andtheexcludedcharactersbio1tt5tgs",
    "abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw",
    "11qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqc8247j",
    "?1ezyfcl",
]

# BIP-173 "invalid" strings (those not about the 90-character limit, which age drops).
INVALID = [
    "pzry9x0s0muk",  # no separator
    "1pzry9x0s0muk",  # empty human-readable part
    "x1b4n0q5v",  # invalid data character
    "li1dgmt3",  # checksum too short
    "de1lg7wt\xff",  # invalid character in checksum
    "A1G7SGD8",  # checksum computed over the uppercase form
    "10a06t8",  # empty human-readable part
    "1qzzfhee",  # empty human-readable part
    "A12uEL5L",  # mixed case
    "\x201nwldj5",  # hrp character out of range
]


@pytest.mark.parametrize("text", VALID)
def test_valid_vectors_decode_and_reencode(text: str) -> None:
    hrp, data = bech32.decode(text)
    again = bech32.encode(hrp.upper() if text.isupper() else hrp, data)
    assert again == text


@pytest.mark.parametrize("text", INVALID)
def test_invalid_vectors_are_refused(text: str) -> None:
    with pytest.raises(bech32.Bech32Error):
        bech32.decode(text)


def test_every_single_character_substitution_is_detected() -> None:
    text = bech32.encode("age", bytes(range(32)))
    for i in range(text.index("1") + 1, len(text)):
        for c in bech32.CHARSET:
            if c == text[i]:
                continue
            with pytest.raises(bech32.Bech32Error):
                bech32.decode(text[:i] + c + text[i + 1 :])


@pytest.mark.parametrize("size", [0, 1, 31, 32, 33, 64, 200, 1000])
def test_round_trip_has_no_length_limit(size: int) -> None:
    data = os.urandom(size)
    text = bech32.encode("age-secret-key-", data)
    assert bech32.decode(text) == ("age-secret-key-", data)
    assert bech32.decode(text.upper()) == ("age-secret-key-", data)


def test_nonzero_padding_bits_are_refused() -> None:
    # One byte needs two 5-bit groups with 2 bits of padding; make them non-zero
    # and recompute the checksum, so only the padding rule can catch it.
    hrp = "age"
    values = [0, 1]  # second group carries a set padding bit
    poly = bech32._polymod([*bech32._hrp_expand(hrp), *values, 0, 0, 0, 0, 0, 0]) ^ 1
    checksum = [(poly >> 5 * (5 - i)) & 31 for i in range(6)]
    text = hrp + "1" + "".join(bech32.CHARSET[v] for v in values + checksum)
    with pytest.raises(bech32.Bech32Error, match="padding"):
        bech32.decode(text)
