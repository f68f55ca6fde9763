"""Every cryptographic decision of the age v1 file format (age-encryption.org/v1), in one place.

The writer and the reader only move bytes around; what is derived from what,
with which labels, nonces and sizes, lives here so it can be checked against
the specification in one read. An age file is:

    age-encryption.org/v1
    -> X25519 <ephemeral share>          one stanza per recipient,
    <body: the wrapped file key>         each wrapping the same file key
    --- <header MAC>
    <16-byte payload nonce><STREAM-encrypted chunks>
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
from dataclasses import dataclass
from hashlib import sha256

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

# The version line is the format's only magic number; anything after it may
# differ in other versions, so a reader stops at the first unknown one.
VERSION_LINE = b"age-encryption.org/v1\n"
STANZA_PREFIX = b"-> "
MAC_PREFIX = b"---"

# 128 bits is enough for a key used once: every file gets a fresh one, and the
# keys that actually encrypt (wrap key, payload key) are 256-bit HKDF outputs.
FILE_KEY_SIZE = 16
MAC_SIZE = 32
# A fresh random nonce per file is mixed into the payload key, so the STREAM
# counters below can start at zero in every file without ever reusing a key/nonce pair.
PAYLOAD_NONCE_SIZE = 16

# 64 KiB chunks: big enough that the 16-byte tag per chunk costs nothing,
# small enough that a reader authenticates a chunk before handing out its bytes.
CHUNK_SIZE = 64 * 1024
TAG_SIZE = 16
ENCRYPTED_CHUNK_SIZE = CHUNK_SIZE + TAG_SIZE

# Stanza bodies are base64 wrapped at 64 columns; a line shorter than that
# (possibly empty) ends the body, which is how a parser finds the end.
COLUMNS = 64

X25519_TYPE = "X25519"
X25519_KEY_SIZE = 32
# The label binds the derived wrap key to this one recipient type.
X25519_INFO = b"age-encryption.org/v1/X25519"
# Wrapped file key (16) plus its Poly1305 tag (16). A reader checks the size
# before decrypting so that stanzas cannot be used as a partitioning oracle.
X25519_BODY_SIZE = FILE_KEY_SIZE + TAG_SIZE
# Every wrap key is fresh (new ephemeral secret per stanza), so a fixed nonce is safe.
_ZERO_NONCE = bytes(12)


@dataclass(frozen=True)
class Stanza:
    """One recipient stanza: its arguments (the first is the type) and its decoded body."""

    args: tuple[str, ...]
    body: bytes

    @property
    def type(self) -> str:
        return self.args[0]


def b64encode(data: bytes) -> str:
    """Standard base64 without `=` padding, as age writes it."""
    return base64.b64encode(data).decode("ascii").rstrip("=")


def b64decode(text: str) -> bytes:
    """Strict inverse of b64encode: padding and non-canonical spellings are refused.

    One byte string must have exactly one spelling, or a header could be
    altered without changing what it decodes to.
    """
    if "=" in text or "\n" in text or "\r" in text or len(text) % 4 == 1:
        raise ValueError(f"invalid base64: {text!r}")
    try:
        data = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except binascii.Error:
        raise ValueError(f"invalid base64: {text!r}") from None
    if b64encode(data) != text:
        raise ValueError(f"non-canonical base64: {text!r}")
    return data


def new_file_key() -> bytes:
    return os.urandom(FILE_KEY_SIZE)


def new_payload_nonce() -> bytes:
    return os.urandom(PAYLOAD_NONCE_SIZE)


def _hkdf(ikm: bytes, salt: bytes, info: bytes) -> bytes:
    # HKDF-SHA-256 with 32-byte output everywhere in age.
    return HKDF(algorithm=SHA256(), length=32, salt=salt, info=info).derive(ikm)


def _x25519_wrap_key(shared_secret: bytes, share: bytes, recipient: bytes) -> bytes:
    # The salt carries both public values so the wrap key is tied to this exact
    # exchange: a stanza cannot be replayed towards another recipient.
    return _hkdf(shared_secret, salt=share + recipient, info=X25519_INFO)


def wrap_x25519(file_key: bytes, recipient: X25519PublicKey) -> Stanza:
    """Wrap the file key for one recipient, with a fresh ephemeral key per stanza."""
    ephemeral = X25519PrivateKey.generate()
    share = ephemeral.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    recipient_bytes = recipient.public_bytes(Encoding.Raw, PublicFormat.Raw)
    shared = ephemeral.exchange(recipient)
    wrap_key = _x25519_wrap_key(shared, share, recipient_bytes)
    body = ChaCha20Poly1305(wrap_key).encrypt(_ZERO_NONCE, file_key, None)
    return Stanza((X25519_TYPE, b64encode(share)), body)


def unwrap_x25519(stanza: Stanza, identity: X25519PrivateKey) -> bytes | None:
    """The file key if this X25519 stanza is addressed to identity, else None.

    Raises ValueError for a malformed X25519 stanza: the spec says to reject
    the file then, rather than silently skip the stanza.
    """
    if len(stanza.args) != 2:
        raise ValueError(f"X25519 stanza has {len(stanza.args) - 1} arguments, expected 1")
    share = b64decode(stanza.args[1])
    if len(share) != X25519_KEY_SIZE:
        raise ValueError(f"X25519 share is {len(share)} bytes, expected {X25519_KEY_SIZE}")
    if len(stanza.body) != X25519_BODY_SIZE:
        raise ValueError(f"X25519 body is {len(stanza.body)} bytes, expected {X25519_BODY_SIZE}")
    try:
        shared = identity.exchange(X25519PublicKey.from_public_bytes(share))
    except ValueError:
        # A low-order share gives an all-zero secret; the spec says to abort.
        raise ValueError("X25519 share is a low-order point") from None
    if not any(shared):
        raise ValueError("X25519 share is a low-order point")
    recipient = identity.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    wrap_key = _x25519_wrap_key(shared, share, recipient)
    try:
        return ChaCha20Poly1305(wrap_key).decrypt(_ZERO_NONCE, stanza.body, None)
    except InvalidTag:
        return None


def encode_stanza(stanza: Stanza) -> bytes:
    """`-> args...` then the body in base64, 64 columns a line, ending with a short line."""
    encoded = b64encode(stanza.body)
    lines = [encoded[i : i + COLUMNS] for i in range(0, len(encoded), COLUMNS)]
    # A body that fills its last line exactly still needs a short (empty) final line.
    if not lines or len(lines[-1]) == COLUMNS:
        lines.append("")
    text = "-> " + " ".join(stanza.args) + "\n" + "".join(line + "\n" for line in lines)
    return text.encode("ascii")


def header_mac(file_key: bytes, header_through_dashes: bytes) -> bytes:
    """HMAC over the header up to and including `---`.

    Only a holder of the file key can produce it, so nobody can add, drop or
    edit stanzas of a file they cannot decrypt themselves.
    """
    mac_key = _hkdf(file_key, salt=b"", info=b"header")
    return hmac.new(mac_key, header_through_dashes, sha256).digest()


def header_mac_ok(file_key: bytes, header_through_dashes: bytes, mac: bytes) -> bool:
    return hmac.compare_digest(header_mac(file_key, header_through_dashes), mac)


def encode_header(file_key: bytes, stanzas: list[Stanza]) -> bytes:
    """The complete header, MAC line included."""
    through_dashes = VERSION_LINE + b"".join(encode_stanza(s) for s in stanzas) + MAC_PREFIX
    mac = header_mac(file_key, through_dashes)
    return through_dashes + b" " + b64encode(mac).encode("ascii") + b"\n"


def payload_cipher(file_key: bytes, nonce: bytes) -> ChaCha20Poly1305:
    """The payload AEAD. Deriving its key with the per-file nonce as salt means a
    file key, even if reused by mistake, never repeats a payload key."""
    return ChaCha20Poly1305(_hkdf(file_key, salt=nonce, info=b"payload"))


def chunk_nonce(counter: int, last: bool) -> bytes:
    """STREAM nonce: 11-byte big-endian chunk counter, then 0x01 on the final chunk only.

    The counter stops reordering and dropping chunks; the last-flag stops
    truncation at a chunk boundary from passing as a complete file.
    """
    return counter.to_bytes(11, "big") + (b"\x01" if last else b"\x00")
