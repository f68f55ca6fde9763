"""The audit log on a full disk: no entry lost, no crash, the chain whole once room returns."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from session.audit import AuditLog, verify


def test_entries_wait_for_room_and_are_written_in_order_when_it_returns(
    small_disk: Callable[[str], Any],
) -> None:
    disk = small_disk("1m")
    path = disk.path / "audit.jsonl"
    log = AuditLog(path)
    log.append("service_started", table="T")
    disk.fill()
    # The file's last page still has room: markers fill it, then the disk is truly full.
    written = 1
    while "held" not in (entry := log.append("marker", by="button", marker_kinds=["other"])):
        written += 1
        assert written < 200, "the disk never filled"
    stopped = log.append("recording_stopped", session="20261204T010000Z-abcdef", segments=3)
    assert entry["held"] and stopped["held"] and log.held == 2
    assert len(path.read_text().splitlines()) == written
    assert log.retry_held() == 2  # still no room: still held, nothing half-written
    assert verify(path) == []
    disk.free_up()
    assert log.retry_held() == 0
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["event"] for r in rows[-2:]] == ["marker", "recording_stopped"]
    assert [r["seq"] for r in rows] == list(range(1, written + 3))
    assert rows[-2]["utc"] == entry["utc"]  # when it happened, not when there was room
    assert verify(path) == []
    log.close()
