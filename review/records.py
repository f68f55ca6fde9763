"""The two records a session keeps of its own files, read and checked: the manifest (every closed
segment, each with the SHA-256 of its ciphertext, hash-chained) and the recovery records a
recorder writes after a crash (the files it closed, with theirs). Each yields what it lists and
its own verdict: complete when its chain holds, else what is wrong with it.
"""

from __future__ import annotations

import json
from typing import Any

from review.report import FileReport
from session.layout import CHAIN_START, MANIFEST, RECOVERY, chain_value, session_started


def is_recovery_record(name: str) -> bool:
    """``recovery.json.age``, or ``recovery.json.age.N`` after the same session's N-th crash."""
    return name == RECOVERY or (name.startswith(RECOVERY + ".") and name[len(RECOVERY) + 1 :].isdigit())


def parse_manifest(plain: bytes, folder: str) -> tuple[dict[str, Any] | None, FileReport]:
    """The manifest if its entries can be used at all, and the manifest's own verdict: a broken
    chain is reported, but its entries are still what the files are checked against."""
    try:
        manifest = json.loads(plain)
    except ValueError:
        return None, FileReport(MANIFEST, "tampered", "it opens with this key, but is not JSON")
    entries = manifest.get("segments") if isinstance(manifest, dict) else None
    if not isinstance(manifest, dict) or not isinstance(entries, list) or not all(map(_entry_ok, entries)):
        return None, FileReport(MANIFEST, "tampered", "it opens with this key, but is not a manifest")
    owner = str(manifest.get("session"))
    if session_started(folder) is not None and owner != folder:
        return None, FileReport(MANIFEST, "foreign", f"it is the manifest of session {owner}")
    chain = CHAIN_START
    for i, entry in enumerate(entries, start=1):
        chain = chain_value(entry, chain)
        if entry.get("chain") != chain:
            detail = f"its hash chain breaks at entry {i} ({entry['file']}): entries edited, removed or moved"
            return manifest, FileReport(MANIFEST, "tampered", detail)
    if manifest.get("chain") != chain:
        detail = "its chain head is not its last entry's: entries cut from its end"
        return manifest, FileReport(MANIFEST, "tampered", detail)
    return manifest, FileReport(MANIFEST, "complete")


def parse_recovery(name: str, plain: bytes, session: str) -> tuple[list[dict[str, Any]], FileReport]:
    """The files a recovery record lists (none unless its chain holds), and its own verdict."""
    try:
        record = json.loads(plain)
    except ValueError:
        record = None
    files = record.get("files") if isinstance(record, dict) else None
    if not isinstance(record, dict) or not isinstance(files, list) or not all(map(_record_entry_ok, files)):
        return [], FileReport(name, "tampered", "it opens with this key, but is not a recovery record")
    if record.get("session") != session:
        return [], FileReport(name, "foreign", f"it is a record of session {record.get('session')}")
    chain = CHAIN_START
    for entry in files:
        chain = chain_value(entry, chain)
        if entry.get("chain") != chain:
            return [], FileReport(name, "tampered", f"its hash chain breaks at {entry['file']}")
    if record.get("chain") != chain:
        return [], FileReport(name, "tampered", "its chain head is not its last entry's")
    return files, FileReport(name, "complete")


def _entry_ok(entry: object) -> bool:
    return (
        isinstance(entry, dict)
        and isinstance(entry.get("camera"), str)
        and isinstance(entry.get("file"), str)
        and isinstance(entry.get("start_s"), int | float)
        and isinstance(entry.get("end_s"), int | float)
        and isinstance(entry.get("sha256"), str)
    )


def _record_entry_ok(entry: object) -> bool:
    return (
        isinstance(entry, dict)
        and isinstance(entry.get("file"), str)
        and isinstance(entry.get("sha256"), str)
    )
