"""Our age reader against the public C2SP CCTV age test vectors (tests/store/age_vectors, with
their provenance and licence): each vector decrypts, or fails the way it says it must, and a
failure releases exactly the plaintext the vector's hash covers."""

from __future__ import annotations

import hashlib
import io
import zlib
from pathlib import Path

import pytest

from store.age_reader import AgeReader
from store.errors import AgeError, CorruptFileError, NoIdentityError, TruncatedError
from store.keys import Identity

VECTORS = Path(__file__).parent / "age_vectors"
NAMES = sorted(p.name for p in VECTORS.iterdir() if p.name not in ("LICENSE", "README.md"))

# Upstream's age/testdata at the pinned commit holds 143 vectors; these 43 were not copied, because
# their only recipients are of a type this recorder neither writes nor reads, so our reader can only
# answer "no match" where they test something else.
NOT_APPLICABLE: dict[str, tuple[str, ...]] = {
    "passphrase (scrypt) recipients only": (
        "scrypt", "scrypt_bad_tag", "scrypt_double", "scrypt_extra_argument",
        "scrypt_long_file_key", "scrypt_no_match", "scrypt_not_canonical_body",
        "scrypt_not_canonical_salt", "scrypt_salt_long", "scrypt_salt_missing", "scrypt_salt_short",
        "scrypt_uppercase", "scrypt_work_factor_23", "scrypt_work_factor_hex",
        "scrypt_work_factor_leading_garbage", "scrypt_work_factor_leading_plus",
        "scrypt_work_factor_leading_zero_decimal", "scrypt_work_factor_leading_zero_octal",
        "scrypt_work_factor_missing", "scrypt_work_factor_negative", "scrypt_work_factor_overflow",
        "scrypt_work_factor_trailing_garbage", "scrypt_work_factor_wrong", "scrypt_work_factor_zero",
        "armor_scrypt",
    ),
    "post-quantum (mlkem768x25519) identities only": (
        "hybrid", "hybrid_and_x25519", "hybrid_bad_tag", "hybrid_currupted_enc_mlkem",
        "hybrid_currupted_enc_x25519", "hybrid_extra_argument", "hybrid_grease", "hybrid_identity",
        "hybrid_long_file_key", "hybrid_long_share", "hybrid_low_order",
        "hybrid_multiple_recipients", "hybrid_no_match", "hybrid_not_canonical_body",
        "hybrid_not_canonical_enc", "hybrid_short_share", "hybrid_uppercase", "armor_hybrid",
    ),
}  # fmt: skip
UPSTREAM_COUNT = 143
APPLICABLE_COUNT = 100

# The one header failure the vectors tell apart from the rest: the file key was found, the MAC is wrong.
MAC_MISMATCH = "header failed authentication (bad MAC)"


def load(name: str) -> tuple[dict[str, list[str]], bytes]:
    raw = (VECTORS / name).read_bytes()
    head, _, body = raw.partition(b"\n\n")
    fields: dict[str, list[str]] = {}
    for line in head.decode().splitlines():
        key, _, value = line.partition(": ")
        fields.setdefault(key, []).append(value)
    if fields.get("compressed") == ["zlib"]:
        body = zlib.decompress(body)
    return fields, body


def decrypt(name: str, body: bytes, identities: list[Identity]) -> tuple[str, bytes, AgeError | None]:
    """Our outcome in the vectors' words, with the plaintext released and the error raised.

    Our API has two stages: AgeReader() parses the header, unwraps the key, checks the MAC and
    reads the payload nonce; iter_chunks() decrypts. A failure in the first stage is a header
    failure (the vectors count a file ending before its whole nonce as one too), "no match" or
    an HMAC failure; one in the second is a payload failure.
    """
    released = bytearray()
    try:
        reader = AgeReader(io.BytesIO(body), identities, name=name)
    except NoIdentityError as exc:
        return "no match", b"", exc
    except (CorruptFileError, TruncatedError) as exc:
        return ("HMAC failure" if MAC_MISMATCH in str(exc) else "header failure"), b"", exc
    try:
        for chunk in reader.iter_chunks():
            released += chunk
    except (CorruptFileError, TruncatedError) as exc:
        return "payload failure", bytes(released), exc
    return "success", bytes(released), None


def test_every_vector_is_accounted_for() -> None:
    # A lost or half-copied folder fails here instead of passing with nothing to check.
    skipped = [name for names in NOT_APPLICABLE.values() for name in names]
    assert len(NAMES) == APPLICABLE_COUNT
    assert len(set(skipped)) == len(skipped) == UPSTREAM_COUNT - APPLICABLE_COUNT
    assert not set(skipped) & set(NAMES)
    families = {n.split("_")[0] for n in NAMES}
    assert families >= {"x25519", "stanza", "hmac", "stream", "header", "version", "armor", "empty"}


@pytest.mark.parametrize("name", NAMES)
def test_vector(name: str) -> None:
    fields, body = load(name)
    # hybrid_x25519_arg also names a post-quantum identity; its malformed X25519 stanza must be
    # rejected whatever else is at hand, so our X25519 identities are enough to judge it.
    identities = [
        Identity.parse(text)
        for text in fields.get("identity", [])
        if not text.startswith("AGE-SECRET-KEY-PQ-")
    ]
    outcome, released, error = decrypt(name, body, identities)
    if fields.get("armored") == ["yes"]:
        # We write no armor and read none: whatever the armor holds, the file is refused at its
        # first line, and nothing comes out.
        assert outcome == "header failure" and isinstance(error, CorruptFileError), f"{name}: {error!r}"
        return
    expect = fields["expect"][0]
    assert outcome == expect, f"{name}: expected {expect}, got {outcome}: {error!r}"
    if "payload" in fields:
        # Everything released, even before a failure, is what the vector's hash covers.
        assert hashlib.sha256(released).hexdigest() == fields["payload"][0], name
    else:
        assert not released, name
