"""age X25519 keys: recipients (public, who may read) and identities (secret, who can read).

Text forms and the key file layout are those of the age tools, so keys made by
`age-keygen` work here and keys made here work with `age`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from store import bech32
from store.errors import KeyFormatError, NoRecipientError

__all__ = [
    "Identity",
    "KeyFormatError",
    "NoRecipientError",
    "Recipient",
    "identity_file_text",
    "load_identities",
    "load_recipients",
]

RECIPIENT_HRP = "age"
IDENTITY_HRP = "age-secret-key-"
KEY_SIZE = 32


class Recipient:
    """An X25519 public key: files encrypted to it can be read by its identity."""

    __slots__ = ("_key", "_raw")

    def __init__(self, public_key: X25519PublicKey) -> None:
        self._key = public_key
        self._raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)

    @classmethod
    def parse(cls, text: str) -> Recipient:
        """Parse an `age1...` string."""
        if not isinstance(text, str):
            raise KeyFormatError(f"not an age X25519 recipient: {text!r} (not a string)")
        stripped = text.strip()
        if stripped.upper().startswith("AGE-SECRET-KEY-"):
            # Someone pasted a secret where a public key belongs: say so, but
            # do not echo it into an error message that may end up in a log.
            raise KeyFormatError(
                "not an age X25519 recipient: got a secret key (AGE-SECRET-KEY-...); "
                "use its public key (age-keygen -y) instead"
            )
        try:
            hrp, data = bech32.decode(stripped)
        except bech32.Bech32Error as exc:
            raise KeyFormatError(f"not an age X25519 recipient: {stripped!r} ({exc})") from None
        if hrp != RECIPIENT_HRP:
            raise KeyFormatError(f"not an age X25519 recipient: {stripped!r} (type {hrp!r} is not supported)")
        if len(data) != KEY_SIZE:
            raise KeyFormatError(
                f"not an age X25519 recipient: {stripped!r} (key is {len(data)} bytes, expected {KEY_SIZE})"
            )
        return cls(X25519PublicKey.from_public_bytes(data))

    @property
    def public_key(self) -> X25519PublicKey:
        return self._key

    @property
    def public_bytes(self) -> bytes:
        return self._raw

    def __str__(self) -> str:
        return bech32.encode(RECIPIENT_HRP, self._raw)

    def __repr__(self) -> str:
        return f"Recipient({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Recipient) and other._raw == self._raw

    def __hash__(self) -> int:
        return hash(self._raw)


class Identity:
    """An X25519 secret key. Its repr never shows the secret; str() does, for key files."""

    __slots__ = ("_key", "_recipient")

    def __init__(self, private_key: X25519PrivateKey) -> None:
        self._key = private_key
        self._recipient = Recipient(private_key.public_key())

    @classmethod
    def generate(cls) -> Identity:
        return cls(X25519PrivateKey.generate())

    @classmethod
    def parse(cls, text: str) -> Identity:
        """Parse an `AGE-SECRET-KEY-1...` string.

        Errors never quote the input: it may be a secret.
        """
        if not isinstance(text, str):
            raise KeyFormatError("not an age X25519 identity (not a string)")
        try:
            hrp, data = bech32.decode(text.strip())
        except bech32.Bech32Error as exc:
            raise KeyFormatError(f"not an age X25519 identity ({exc})") from None
        if hrp != IDENTITY_HRP:
            raise KeyFormatError(
                f"not an age X25519 identity (expected prefix 'AGE-SECRET-KEY-1', got type {hrp.upper()!r})"
            )
        if len(data) != KEY_SIZE:
            raise KeyFormatError(
                f"not an age X25519 identity (key is {len(data)} bytes, expected {KEY_SIZE})"
            )
        return cls(X25519PrivateKey.from_private_bytes(data))

    @property
    def recipient(self) -> Recipient:
        return self._recipient

    @property
    def private_key(self) -> X25519PrivateKey:
        return self._key

    def __str__(self) -> str:
        raw = self._key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        # age writes secret keys in uppercase so they stand out from recipients.
        return bech32.encode(IDENTITY_HRP.upper(), raw)

    def __repr__(self) -> str:
        return f"Identity(recipient={str(self._recipient)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Identity) and other._recipient == self._recipient

    def __hash__(self) -> int:
        return hash(self._recipient)


def identity_file_text(identity: Identity, created: datetime) -> str:
    """The key file text, laid out as `age-keygen` writes it.

    A naive `created` is taken as local time, as age-keygen stamps local time.
    """
    stamp = created.astimezone() if created.tzinfo is None else created
    # age-keygen prints Go's RFC 3339: whole seconds, and "Z" for UTC.
    when = stamp.replace(microsecond=0).isoformat()
    if when.endswith("+00:00"):
        when = when[: -len("+00:00")] + "Z"
    return f"# created: {when}\n# public key: {identity.recipient}\n{identity}\n"


def load_identities(path: str | os.PathLike[str]) -> list[Identity]:
    """Read an age identity file: one secret key per line, `#` comments and blank lines ignored."""
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise KeyFormatError(f"{source}: not an age identity file (not UTF-8 text)") from None
    identities: list[Identity] = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        try:
            identities.append(Identity.parse(stripped))
        except KeyFormatError as exc:
            raise KeyFormatError(f"{source}: line {number}: {exc}") from None
    if not identities:
        raise KeyFormatError(f"{source}: no identities found")
    return identities


def load_recipients(source: str | os.PathLike[str] | Iterable[str]) -> list[Recipient]:
    """Read recipients, one `age1...` per line, `#` comments and blank lines ignored.

    `source` is a path (`os.PathLike`, e.g. `Path`), a block of text (`str`), or
    an iterable of lines. An empty result is returned as such; writers refuse
    to start with zero recipients (NoRecipientError).
    """
    if isinstance(source, os.PathLike):
        where = str(source)
        lines: Iterable[str] = Path(source).read_text(encoding="utf-8").splitlines()
    elif isinstance(source, str):
        where = "recipients"
        lines = source.splitlines()
    else:
        where = "recipients"
        lines = source
    recipients: list[Recipient] = []
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        try:
            recipients.append(Recipient.parse(stripped))
        except KeyFormatError as exc:
            raise KeyFormatError(f"{where}: line {number}: {exc}") from None
    return recipients
