"""Under scripts/test a skip for want of an independent judge is a failure, not a quiet skip."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT_CONFTEST = Path(__file__).parents[2] / "conftest.py"
SAMPLE = """
import pytest

@pytest.fixture
def age_cli():
    pytest.skip("the reference age tool is not installed")

def test_interop(age_cli):
    pass

@pytest.mark.skipif(True, reason="ffprobe is not installed")
def test_playback():
    pass

def test_decode():
    pytest.skip("needs ffmpeg (Debian package ffmpeg)")

def test_unrelated():
    pytest.skip("needs a USB camera")
"""


def run(folder: Path, require: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "NEOFLIX_REQUIRE_JUDGES"}
    if require is not None:
        env["NEOFLIX_REQUIRE_JUDGES"] = require
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rA", str(folder)],
        capture_output=True, text=True, timeout=120, env=env, cwd=folder,
    )
    return result.stdout


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    # The suite's own hook, loaded from the repository's root conftest by path.
    (tmp_path / "conftest.py").write_text(
        "import importlib.util\n"
        f"spec = importlib.util.spec_from_file_location('suite_hooks', {str(ROOT_CONFTEST)!r})\n"
        "hooks = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(hooks)\n"
        "pytest_runtest_makereport = hooks.pytest_runtest_makereport\n"
    )
    (tmp_path / "test_sample.py").write_text(SAMPLE)
    return tmp_path


def test_a_missing_judge_fails_when_judges_are_required(folder: Path) -> None:
    out = run(folder, "1")
    # A skip in the test fails it; one in setup (a fixture, a mark) is an error: either fails CI.
    assert "1 failed, 1 skipped, 2 errors" in out, out
    for reason in ("the reference age tool is not installed", "ffprobe is not installed"):
        assert f"NEOFLIX_REQUIRE_JUDGES is set, yet this test would skip: {reason}" in out
    assert "SKIPPED [1] test_sample.py" in out and "needs a USB camera" in out


def test_without_the_variable_a_missing_judge_only_skips(folder: Path) -> None:
    assert "4 skipped" in run(folder, None)
    assert "4 skipped" in run(folder, "0")
