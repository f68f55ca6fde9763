"""The archive: an S3-compatible bucket, reached with boto3.

The edge holds write-only keys (its bucket policy lets it put objects under its own
``<site>/<table>/`` and nothing else); the review side holds keys that may also read, list and
delete. Both build their client here, with the settings every non-AWS server needs:
checksums only where the call asks for one (boto3 1.36 and later add CRC checksums by default,
which several S3-compatible servers refuse) and botocore's own retries kept short, since the
collector has its own back-off and a queue that survives restarts.
"""

from __future__ import annotations

import base64
import configparser
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client


class ArchiveUnavailable(Exception):
    """boto3 (the ``collect`` extra) is not installed, or the keys cannot be read."""


@dataclass(frozen=True)
class Keys:
    access_key_id: str
    secret_access_key: str


def read_keys(path: Path, profile: str = "default") -> Keys:
    """An AWS shared-credentials file's ``[profile]`` keys, with a clear error naming the file."""
    parser = configparser.ConfigParser(interpolation=None)
    try:
        with open(path, encoding="utf-8") as f:
            parser.read_file(f)
    except OSError as exc:
        raise ArchiveUnavailable(f"{path}: cannot read the archive's keys: {exc.strerror or exc}") from exc
    except configparser.Error as exc:
        raise ArchiveUnavailable(f"{path}: not a credentials file: {exc}") from exc
    if not parser.has_section(profile):
        raise ArchiveUnavailable(f"{path}: no [{profile}] section")
    section = parser[profile]
    key_id = section.get("aws_access_key_id", "").strip()
    secret = section.get("aws_secret_access_key", "").strip()
    if not key_id or not secret:
        raise ArchiveUnavailable(f"{path}: [{profile}] needs aws_access_key_id and aws_secret_access_key")
    return Keys(key_id, secret)


def make_client(
    endpoint: str, region: str, keys: Keys, *, timeout_s: float = 30.0, attempts: int = 2
) -> S3Client:
    try:
        import boto3
        from botocore.config import Config
    except ImportError as exc:  # pragma: no cover - the extra is part of every test install
        raise ArchiveUnavailable(
            "collection needs boto3: install the 'collect' extra (pip install 'neoflix-capture[collect]')"
        ) from exc
    config = Config(
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        retries={"max_attempts": attempts, "mode": "standard"},
        connect_timeout=timeout_s,
        read_timeout=timeout_s,
        s3={"addressing_style": "path"},  # an on-premises endpoint has no per-bucket host names
    )
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=keys.access_key_id,
        aws_secret_access_key=keys.secret_access_key,
        config=config,
    )


def sha256_b64(hex_digest: str) -> str:
    """S3's ``ChecksumSHA256`` (base64 of the digest) from the manifest's hex digest."""
    return base64.b64encode(bytes.fromhex(hex_digest)).decode()


def error_code(exc: BaseException) -> str:
    """The S3 error code of a botocore ClientError ("BadDigest", "412", ...), else the class name."""
    response: Any = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        if code:
            return str(code)
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if status:
            return str(status)
    return type(exc).__name__


def http_status(exc: BaseException) -> int | None:
    response: Any = getattr(exc, "response", None)
    if isinstance(response, dict):
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return int(status) if status else None
    return None
