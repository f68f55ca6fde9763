"""Fixtures for the encrypted store tests: keys, and the reference `age` tools as judges."""

from __future__ import annotations

import io
import shutil
import subprocess
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from store.age_writer import AgeWriter
from store.keys import Identity, Recipient, identity_file_text

AGE = shutil.which("age")
AGE_KEYGEN = shutil.which("age-keygen")


@pytest.fixture(scope="session")
def identity() -> Identity:
    return Identity.generate()


@pytest.fixture(scope="session")
def identity_file(tmp_path_factory: pytest.TempPathFactory, identity: Identity) -> Path:
    """Our identity, in a key file written by our own identity_file_text."""
    path = tmp_path_factory.mktemp("keys") / "identity.txt"
    path.write_text(identity_file_text(identity, datetime.now(UTC)))
    path.chmod(0o600)
    return path


AgeRun = Callable[..., "subprocess.CompletedProcess[bytes]"]


@pytest.fixture(scope="session")
def age_cli() -> AgeRun:
    """Run the reference `age` binary with the given arguments and stdin bytes."""
    if AGE is None:
        pytest.skip("the reference age tool is not installed")
    age = AGE

    def run(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([age, *args], input=stdin, capture_output=True, timeout=30)

    return run


@pytest.fixture(scope="session")
def age_keygen(tmp_path_factory: pytest.TempPathFactory) -> Callable[[], Path]:
    """Make a fresh key file with the reference `age-keygen`."""
    if AGE_KEYGEN is None:
        pytest.skip("the reference age-keygen tool is not installed")
    keygen = AGE_KEYGEN
    folder = tmp_path_factory.mktemp("keygen")
    counter = iter(range(1_000_000))

    def make() -> Path:
        path = folder / f"key{next(counter)}.txt"
        subprocess.run([keygen, "-o", str(path)], check=True, capture_output=True, timeout=30)
        return path

    return make


@pytest.fixture(scope="session")
def public_key_of() -> Callable[[Path], str]:
    """The recipient that the reference `age-keygen -y` derives from a key file."""
    if AGE_KEYGEN is None:
        pytest.skip("the reference age-keygen tool is not installed")
    keygen = AGE_KEYGEN

    def run(path: Path) -> str:
        result = subprocess.run([keygen, "-y", str(path)], capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    return run


@pytest.fixture(scope="session")
def encrypt() -> Callable[[bytes, Sequence[Recipient]], bytes]:
    """Encrypt bytes with our AgeWriter, in one write."""

    def run(data: bytes, recipients: Sequence[Recipient]) -> bytes:
        out = io.BytesIO()
        writer = AgeWriter(out, recipients)
        writer.write(data)
        writer.close()
        return out.getvalue()

    return run
