"""Streaming age encryption: plaintext in, an age v1 file out, one 64 KiB chunk at a time.

Built for long recordings: memory stays at one chunk, the header is written
as soon as the writer exists (so even a file cut short by a crash starts
with a readable header), and each full chunk reaches the output as soon as it
is known not to be the last one.
"""

from __future__ import annotations

from collections.abc import Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Protocol

from store import age_format as fmt
from store.errors import AgeError, NoRecipientError
from store.keys import Recipient

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer


class BinarySink(Protocol):
    """Where ciphertext goes; anything with a write() that takes all bytes it is given."""

    def write(self, data: bytes, /) -> object: ...


class AgeWriter:
    """Encrypts a byte stream to one or more recipients.

    close() writes the final chunk and flushes, but leaves `fileobj` open: the
    caller owns it. A writer abandoned without close() leaves a file that
    readers report as truncated, never as complete.
    """

    def __init__(self, fileobj: BinarySink, recipients: Iterable[Recipient]) -> None:
        recipient_list = list(recipients)
        if not recipient_list:
            raise NoRecipientError("refusing to encrypt to zero recipients: nobody could read it")
        self._out = fileobj
        file_key = fmt.new_file_key()
        stanzas = [fmt.wrap_x25519(file_key, r.public_key) for r in recipient_list]
        nonce = fmt.new_payload_nonce()
        self._aead = fmt.payload_cipher(file_key, nonce)
        self._counter = 0
        # Plaintext of the chunk being filled. A full chunk waits here until
        # more bytes arrive, because only then is it known not to be the last.
        self._pending = bytearray()
        self._closed = False
        self._failed: BaseException | None = None
        self._plaintext_bytes = 0
        self._emit(fmt.encode_header(file_key, stanzas) + nonce)

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def plaintext_bytes(self) -> int:
        """Bytes accepted by write() so far."""
        return self._plaintext_bytes

    @property
    def unsealed_bytes(self) -> int:
        """Plaintext accepted but not yet encrypted to the output: it is lost if the process dies.

        A chunk is sealed only once it is full and at least one more byte follows it (the final
        chunk is flagged, and must not be empty), so ``to_seal`` more bytes push all of it out.
        """
        return len(self._pending)

    @property
    def to_seal(self) -> int:
        """How many more bytes make the writer seal everything it holds now (at least 1)."""
        return fmt.CHUNK_SIZE - len(self._pending) + 1

    def write(self, data: ReadableBuffer) -> int:
        self._check_usable()
        view = memoryview(data).cast("B")
        size = len(view)
        if not size:
            return 0
        pos = 0
        pending = self._pending
        if pending:
            pos = min(fmt.CHUNK_SIZE - len(pending), size)
            pending += view[:pos]
            if len(pending) == fmt.CHUNK_SIZE and pos < size:
                self._seal(pending, last=False)
                pending.clear()
        # Whole chunks straight from the caller's buffer, without copying, as
        # long as at least one more byte follows each of them.
        while size - pos > fmt.CHUNK_SIZE:
            self._seal(view[pos : pos + fmt.CHUNK_SIZE], last=False)
            pos += fmt.CHUNK_SIZE
        if pos < size:
            pending += view[pos:]
        self._plaintext_bytes += size
        return size

    def close(self) -> None:
        """Write the final chunk (empty only if nothing was written) and flush the output."""
        if self._closed:
            return
        self._check_usable()
        self._seal(self._pending, last=True)
        self._pending.clear()
        self._closed = True
        flush = getattr(self._out, "flush", None)
        if flush is not None:
            flush()

    def discard(self) -> None:
        """Drop buffered plaintext and refuse further use, writing nothing more."""
        self._pending[:] = bytes(len(self._pending))
        self._pending.clear()
        self._closed = True

    def __enter__(self) -> AgeWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # On an exception the stream is incomplete: marking it final would
        # make a partial recording look whole, so it is left truncated instead.
        if exc_type is None:
            self.close()
        else:
            self.discard()

    def _check_usable(self) -> None:
        if self._failed is not None:
            raise AgeError("an earlier write to the output failed; the file is incomplete")
        if self._closed:
            raise ValueError("write to a closed AgeWriter")

    def _seal(self, plaintext: bytearray | memoryview, last: bool) -> None:
        nonce = fmt.chunk_nonce(self._counter, last)
        self._emit(self._aead.encrypt(nonce, plaintext, None))
        self._counter += 1

    def _emit(self, data: bytes) -> None:
        try:
            self._out.write(data)
        except BaseException as exc:
            self._failed = exc
            raise
