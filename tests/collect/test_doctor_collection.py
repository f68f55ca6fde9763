"""``doctor`` tests the archive with the table's own keys: a small write under
``<site>/<table>/.doctor/`` that the archive takes, and a plain warning naming the cause when it
refuses."""

from __future__ import annotations

import io
from pathlib import Path

from seaweed_kit import Seaweed

from cli.doctor import run_doctor
from store.keys import Identity


def config(tmp: Path, collection: str) -> Path:
    path = tmp / "station.toml"
    path.write_text(
        f"""
[station]
control_socket = "{tmp / 'control.sock'}"
[[cameras]]
name = "closeup"
source = {{ kind = "test_pattern" }}
width = 320
height = 240
fps = 10
[storage]
directory = "{tmp / 'recordings'}"
audit_log = "{tmp / 'audit.jsonl'}"
recipients = ["{Identity.generate().recipient}"]
{collection}
"""
    )
    return path


def collection_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line[5:].startswith("collection:")]


def test_doctor_writes_a_probe_with_the_tables_keys_and_names_a_refusal(
    seaweed: Seaweed, tmp_path: Path
) -> None:
    keys = seaweed.write_credentials(tmp_path / "keys")
    out = io.StringIO()
    run_doctor(config(tmp_path, seaweed.collection_toml(keys)), out, timeout_s=3)
    [line] = collection_lines(out.getvalue())
    assert line.startswith("OK   collection:"), out.getvalue()
    probes = seaweed.keys_under(f"{seaweed.site}/{seaweed.table}/.doctor/")
    assert len(probes) == 1 and probes[0] in line

    wrong = tmp_path / "wrong-keys"
    wrong.write_text("[default]\naws_access_key_id = NOSUCHKEY\naws_secret_access_key = nope\n")
    out = io.StringIO()
    run_doctor(config(tmp_path, seaweed.collection_toml(wrong)), out, timeout_s=3)
    [line] = collection_lines(out.getvalue())
    assert line.startswith("WARN collection:") and "InvalidAccessKeyId" in line, out.getvalue()
