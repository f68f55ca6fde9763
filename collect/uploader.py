"""One file into the archive: one PUT, checked by the server, never over anything already there.

The PUT carries the SHA-256 the edge recorded for the file (the manifest's, for a segment) as
``ChecksumSHA256``: the server computes the digest of what it received and refuses the object
(``BadDigest``) unless they match, so whatever it stores under the key has exactly that digest.
``If-None-Match: *`` makes it refuse any PUT over an existing key (412): nothing is ever
overwritten, whatever happened before.

A 412 means the key is taken. The edge then asks the server (HEAD with ``ChecksumMode``) for the
stored digest and compares. Write-only keys may not ask (HEAD needs read rights on AWS, Ceph and
SeaweedFS alike): the object is then taken as this file's, because only this table's keys may
write under its prefix, the file has not changed since it closed, and every PUT of this key
carried the same digest, which the server enforces. That case is logged as such.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from collect.archive import error_code, http_status, sha256_b64
from store.age_format import VERSION_LINE

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client


class UploadFailed(Exception):
    """The archive did not take the file; ``reason`` says why in a few words, ``retry`` whether
    trying again later can help."""

    def __init__(self, reason: str, *, retry: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry = retry


@dataclass(frozen=True)
class Stored:
    """The archive's answer for one file."""

    # "put": stored now; "verified": there already with the same digest; "present": there
    # already, and these keys may not read it (see the module docstring).
    how: str
    etag: str


class NotOurs(Exception):
    """A file in a session's folder that the recorder did not write as it writes its files."""


def open_own(path: Path) -> BinaryIO:
    """Open a session file to send, only if it is what the recorder writes there: a regular
    file, not a link (whatever a link points at, the service user may read it, and the archive
    must never receive it), and for an ``.age`` name an age file. Nothing plain leaves the PC,
    even if someone put it in the storage folder."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # the last part of the path is a symbolic link
            raise NotOurs("a symbolic link") from exc
        raise
    body = os.fdopen(fd, "rb")
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise NotOurs("not a regular file")
        if path.name.endswith(".age") and body.read(len(VERSION_LINE)) != VERSION_LINE:
            raise NotOurs("not an age file")
        body.seek(0)
    except BaseException:
        body.close()
        raise
    return body


def still_matches(path: Path, sha256_hex: str) -> bool:
    """Whether the file on the disk still has the digest recorded when it closed (after a
    refusal: was it the transfer or the disk that changed the bytes?)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest() == sha256_hex


def put_file(client: S3Client, bucket: str, key: str, body: bytes | BinaryIO, sha256_hex: str) -> Stored:
    """PUT ``body`` under ``key`` with its recorded digest; see the module docstring."""
    try:
        answer = client.put_object(
            Bucket=bucket, Key=key, Body=body, ChecksumSHA256=sha256_b64(sha256_hex), IfNoneMatch="*"
        )
    except Exception as exc:
        code = error_code(exc)
        if code in ("PreconditionFailed", "412") or http_status(exc) == 412:
            return _already_there(client, bucket, key, sha256_hex)
        if code in ("BadDigest", "XAmzContentSHA256Mismatch", "InvalidDigest"):
            raise UploadFailed(f"the archive refused the bytes: {code} (not the SHA-256 sent)") from exc
        raise UploadFailed(_describe(exc)) from exc
    echoed = answer.get("ChecksumSHA256")
    if echoed is not None and echoed != sha256_b64(sha256_hex):
        # The server says it stored other bytes than we checked: never count that as collected.
        raise UploadFailed(f"the archive reports another SHA-256 for {key}", retry=False)
    return Stored("put", str(answer.get("ETag", "")))


def _already_there(client: S3Client, bucket: str, key: str, sha256_hex: str) -> Stored:
    try:
        head = client.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    except Exception as exc:
        if http_status(exc) == 403:
            return Stored("present", "")
        raise UploadFailed(f"{key} is in the archive already, cannot check it: {_describe(exc)}") from exc
    stored = head.get("ChecksumSHA256")
    if stored is None:
        return Stored("present", str(head.get("ETag", "")))
    if stored.split("-")[0] != sha256_b64(sha256_hex):
        raise UploadFailed(
            f"{key} is in the archive already with another SHA-256: it is left as it is (nothing is "
            "overwritten); the archive's operator must look at it",
            retry=False,
        )
    return Stored("verified", str(head.get("ETag", "")))


def _describe(exc: BaseException) -> str:
    code = error_code(exc)
    text = str(exc).strip() or code
    return text if code in text else f"{code}: {text}"
