"""``neoflix-capture archive``: the review side's view of the archive (an S3 bucket).

- ``list``: the sessions in the archive, per table, with their files, bytes and any deletion
  request;
- ``apply-deletions``: for each session whose table asked for it (consent withdrawn after the
  upload, ``layout.DELETION_REQUEST``), delete every object of the session, then the request;
  says what it removed;
- ``fetch SITE/TABLE/SESSION DIR``: download a session's files into ``DIR/<session>/``, each
  checked against the SHA-256 the archive stored with it, ready for ``verify`` and ``export``
  (``export s3://bucket/site/table/session`` fetches and exports in one step).

These need keys that may read, list and delete (the reviewer's, never a table's): given by
``--credentials`` (an AWS shared-credentials file) or ``NEOFLIX_ARCHIVE_CREDENTIALS``; endpoint
and bucket by flag or ``NEOFLIX_ARCHIVE_ENDPOINT`` / ``NEOFLIX_ARCHIVE_BUCKET``.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import sys
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from session.layout import DELETION_REQUEST, SESSION_ID

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client


class ArchiveError(Exception):
    pass


@dataclass(frozen=True)
class Archive:
    client: S3Client
    bucket: str


def add_parser(sub: Any) -> None:
    archive = sub.add_parser(
        "archive", help="the archive (S3): list sessions, apply deletion requests, fetch"
    )
    actions = archive.add_subparsers(metavar="ACTION")
    listing = actions.add_parser("list", help="the sessions in the archive")
    listing.add_argument("--prefix", default="", help="only under this site/ or site/table/")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(handler=_guarded(cmd_list))
    apply = actions.add_parser(
        "apply-deletions", help="delete every session whose table asked for it, then the request"
    )
    apply.add_argument("--json", action="store_true", help="machine-readable output")
    apply.set_defaults(handler=_guarded(cmd_apply_deletions))
    fetch = actions.add_parser("fetch", help="download a session, each file checked, for verify/export")
    fetch.add_argument("session", help="SITE/TABLE/SESSION ('archive list' shows it) or s3://BUCKET/...")
    fetch.add_argument("out", type=Path, help="a folder; the session lands in OUT/<session>/")
    fetch.set_defaults(handler=_guarded(cmd_fetch))
    for c in (listing, apply, fetch):
        add_connection_flags(c)


def add_connection_flags(c: argparse.ArgumentParser) -> None:
    env = os.environ.get
    c.add_argument("--endpoint", default=env("NEOFLIX_ARCHIVE_ENDPOINT"), help="S3 endpoint URL")
    c.add_argument("--bucket", default=env("NEOFLIX_ARCHIVE_BUCKET"), help="the archive bucket")
    c.add_argument("--region", default=os.environ.get("NEOFLIX_ARCHIVE_REGION", "us-east-1"))
    c.add_argument(
        "--credentials",
        type=Path,
        default=os.environ.get("NEOFLIX_ARCHIVE_CREDENTIALS"),
        help="AWS shared-credentials file with the reviewer's keys (read, list, delete)",
    )


def connect(args: argparse.Namespace, bucket: str | None = None) -> Archive:
    from collect.archive import ArchiveUnavailable, make_client, read_keys

    bucket = bucket or args.bucket
    given = (("--endpoint", args.endpoint), ("--bucket", bucket), ("--credentials", args.credentials))
    missing = [name for name, value in given if not value]
    if missing:
        raise ArchiveError(f"the archive needs {', '.join(missing)} (or the NEOFLIX_ARCHIVE_* variables)")
    try:
        keys = read_keys(Path(args.credentials))
        return Archive(make_client(args.endpoint, args.region, keys), bucket)
    except ArchiveUnavailable as exc:
        raise ArchiveError(str(exc)) from exc


def objects(archive: Archive, prefix: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    paginator = archive.client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=archive.bucket, Prefix=prefix):
        found += [dict(o) for o in page.get("Contents", [])]
    return found


def sessions(archive: Archive, prefix: str = "") -> list[dict[str, Any]]:
    """Every ``site/table/session`` under ``prefix``, with its files, bytes and deletion request."""
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for o in objects(archive, prefix):
        parts = o["Key"].split("/")
        if len(parts) == 4 and SESSION_ID.fullmatch(parts[2]):
            grouped["/".join(parts[:3])].append(o)
    listed = []
    for where, objs in sorted(grouped.items()):
        names = [o["Key"].rsplit("/", 1)[1] for o in objs]
        listed.append(
            {
                "session": where,
                "files": sum(1 for n in names if n != DELETION_REQUEST),
                "bytes": sum(int(o["Size"]) for o in objs),
                "deletion_requested": DELETION_REQUEST in names,
            }
        )
    return listed


def apply_deletions(archive: Archive) -> list[dict[str, Any]]:
    """Delete every session with a deletion request, the request last (so a run cut short is
    finished by the next one); what was removed, per session."""
    done = []
    for s in sessions(archive):
        if not s["deletion_requested"]:
            continue
        prefix = s["session"] + "/"
        request = prefix + DELETION_REQUEST
        body = archive.client.get_object(Bucket=archive.bucket, Key=request)["Body"].read()
        keys = [o["Key"] for o in objects(archive, prefix) if o["Key"] != request]
        for key in keys:
            archive.client.delete_object(Bucket=archive.bucket, Key=key)
        archive.client.delete_object(Bucket=archive.bucket, Key=request)
        try:
            asked = json.loads(body)
        except ValueError:
            asked = {}
        done.append(
            {
                "session": s["session"],
                "objects_deleted": len(keys),
                "requested_utc": asked.get("requested_utc"),
                "reason": asked.get("reason"),
            }
        )
    return done


def parse_location(text: str, bucket: str | None) -> tuple[str | None, str]:
    """(bucket, "site/table/session") from "s3://bucket/site/table/session" or "site/table/session"."""
    text = text.strip()
    for scheme in ("s3://", "s3:/"):  # a Path argument folds "//" into "/"
        if text.startswith(scheme):
            bucket_name, _, rest = text[len(scheme) :].partition("/")
            return bucket_name, rest.strip("/")
    return bucket, text.strip("/")


def fetch(archive: Archive, where: str, out: Path) -> Path:
    """Download ``where``'s files into ``out/<session>/``, each checked against its SHA-256."""
    parts = where.split("/")
    if len(parts) != 3 or not SESSION_ID.fullmatch(parts[2]):
        raise ArchiveError(f"{where!r}: give SITE/TABLE/SESSION, as 'archive list' shows it")
    found = [o for o in objects(archive, where + "/") if not o["Key"].endswith("/" + DELETION_REQUEST)]
    if not found:
        raise ArchiveError(f"{where}: no such session in the archive")
    folder = out / parts[2]
    folder.mkdir(parents=True, exist_ok=True)
    for o in found:
        key = o["Key"]
        answer = archive.client.get_object(Bucket=archive.bucket, Key=key, ChecksumMode="ENABLED")
        data = answer["Body"].read()
        stored = answer.get("ChecksumSHA256")
        digest = base64.b64encode(hashlib.sha256(data).digest()).decode()
        if stored is not None and stored.split("-")[0] != digest:
            raise ArchiveError(f"{key}: what arrived does not match the SHA-256 the archive stored")
        name = key.rsplit("/", 1)[1]
        tmp = folder / f".{name}.part"
        tmp.write_bytes(data)
        tmp.replace(folder / name)
    return folder


def cmd_list(args: argparse.Namespace) -> int:
    listed = sessions(connect(args), args.prefix)
    if args.json:
        print(json.dumps(listed, indent=1))
        return 0
    if not listed:
        print("no sessions in the archive")
    for s in listed:
        flag = "  DELETION REQUESTED" if s["deletion_requested"] else ""
        print(f"{s['session']:<56} {s['files']:>5} files {s['bytes'] / 2**20:>9.1f} MiB{flag}")
    return 0


def cmd_apply_deletions(args: argparse.Namespace) -> int:
    done = apply_deletions(connect(args))
    if args.json:
        print(json.dumps(done, indent=1))
        return 0
    if not done:
        print("no deletion requests in the archive")
    for d in done:
        print(
            f"{d['session']}: {d['objects_deleted']} objects deleted, then the request "
            f"(requested {d['requested_utc']}, {d['reason']})"
        )
    return 0


def cmd_fetch(args: argparse.Namespace) -> int:
    bucket, where = parse_location(args.session, args.bucket)
    folder = fetch(connect(args, bucket), where, args.out)
    print(f"{where}: fetched into {folder} (each file checked against its SHA-256)")
    return 0


def _guarded(handler: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """``handler``, with an archive that cannot be used said in one line (exit 2)."""

    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except ArchiveError as exc:
            print(f"archive: {exc}", file=sys.stderr)
            return 2
        except Exception as exc:  # botocore's errors: the endpoint, the keys, the bucket
            from collect.archive import error_code

            print(f"archive: {error_code(exc)}: {exc}", file=sys.stderr)
            return 2

    return run
