"""The exceptions of the encrypted store, so callers can tell a bad key from a bad file."""

from __future__ import annotations


class AgeError(Exception):
    """Base class: something about an age file or key is wrong."""


class KeyFormatError(AgeError, ValueError):
    """A recipient or identity string (or key file) is not a valid age X25519 key."""


class NoRecipientError(AgeError, ValueError):
    """Encryption was asked for with nobody able to decrypt the result."""


class NoIdentityError(AgeError):
    """None of the identities at hand can unwrap this file's key.

    Kept apart from corruption: the usual cause is simply the wrong key file.
    """


class CorruptFileError(AgeError):
    """The file is not a well-formed age file, or it failed authentication."""


class TruncatedError(AgeError):
    """The file ends before its final chunk: everything before the cut was authentic.

    A recording interrupted by a crash or power loss ends like this. Note that
    a damaged last chunk is cryptographically indistinguishable from a cut one,
    so this is raised for both; every chunk yielded before it was authenticated.
    """
