"""The encrypted store: age v1 files (X25519 recipients, STREAM payload) written as they grow."""

from store.age_reader import AgeReader, decrypt_bytes, decrypt_file
from store.age_writer import AgeWriter
from store.encrypted_file import EncryptedFileWriter
from store.errors import (
    AgeError,
    CorruptFileError,
    KeyFormatError,
    NoIdentityError,
    NoRecipientError,
    TruncatedError,
)
from store.keys import Identity, Recipient, identity_file_text, load_identities, load_recipients

__all__ = [
    "AgeError",
    "AgeReader",
    "AgeWriter",
    "CorruptFileError",
    "EncryptedFileWriter",
    "Identity",
    "KeyFormatError",
    "NoIdentityError",
    "NoRecipientError",
    "Recipient",
    "TruncatedError",
    "decrypt_bytes",
    "decrypt_file",
    "identity_file_text",
    "load_identities",
    "load_recipients",
]
