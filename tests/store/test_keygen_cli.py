"""``neoflix-capture keygen --out FILE``: a review key as age-keygen writes one, never overwritten."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from store.keys import load_identities


def keygen(out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", "keygen", "--out", str(out)],
        capture_output=True, text=True, timeout=60,
        preexec_fn=lambda: os.umask(0),  # the file must be private whatever the umask says
    )


def test_keygen_writes_a_private_identity_and_prints_its_recipient(
    tmp_path: Path, public_key_of: Callable[[Path], str]
) -> None:
    out = tmp_path / "review-identity.txt"
    made = keygen(out)
    assert made.returncode == 0, made.stderr
    recipient = made.stdout.strip()
    assert recipient.startswith("age1") and len(recipient) == 62
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    [identity] = load_identities(out)
    assert str(identity.recipient) == recipient
    assert public_key_of(out) == recipient  # the reference age-keygen reads it the same


def test_keygen_refuses_to_overwrite_an_existing_file(tmp_path: Path) -> None:
    out = tmp_path / "review-identity.txt"
    out.write_text("an older key that must survive\n")
    refused = keygen(out)
    assert refused.returncode != 0
    assert "already exists" in refused.stderr
    assert refused.stdout == ""
    assert out.read_text() == "an older key that must survive\n"
