"""Hooks for the whole test suite (here at the root, not in tests/: a conftest in tests/ would put
that folder on ``sys.path``, where tests/store would shadow the ``store`` package).

The independent judges (the ``age`` CLI, ``ffmpeg``/``ffprobe``) must not vanish quietly.

Tests that need a judge skip when it is not installed, so a bare ``pytest`` on a workstation
still runs. Where the judges are known to be there (``scripts/test`` installs them and sets
``NEOFLIX_REQUIRE_JUDGES=1``), such a skip would drop the interop and playback checks from CI
without a trace: under that variable it is reported as a failure instead.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import pytest

REQUIRE = "NEOFLIX_REQUIRE_JUDGES"
# A skip reason naming one of these is a skip for want of a judge.
_JUDGE = re.compile(r"(?<![\w-])(age|age-keygen|ffmpeg|ffprobe|chromium)(?![\w-])")


def required() -> bool:
    return os.environ.get(REQUIRE, "") not in ("", "0")


def names_a_judge(reason: str) -> bool:
    return _JUDGE.search(reason) is not None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Generator[None, Any, None]:
    outcome = yield
    report = outcome.get_result()
    if not (report.skipped and required()):
        return
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    if names_a_judge(reason):
        report.outcome = "failed"
        report.longrepr = f"{REQUIRE} is set, yet this test would skip: {reason.removeprefix('Skipped: ')}"


class SmallDisk:
    """A tmpfs mounted for one test: ``path``, ``fill`` it, ``free_up`` again."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._filler = path / ".filler"

    def free(self) -> int:
        return shutil.disk_usage(self.path).free

    def fill(self, leave: int = 0) -> None:
        """Write a filler file until at most ``leave`` bytes are free."""
        with open(self._filler, "ab") as f:
            while (free := self.free()) > leave:
                try:
                    f.write(b"\0" * min(free - leave, 1 << 20))
                    f.flush()
                except OSError:
                    break

    def free_up(self) -> None:
        self._filler.unlink(missing_ok=True)


@pytest.fixture
def small_disk(tmp_path_factory: pytest.TempPathFactory) -> Generator[Callable[[str], SmallDisk], None, None]:
    """``small_disk("4m")``: a fresh tmpfs of that size, for tests that fill a disk for real.

    Mounting needs root (CI runs as root); elsewhere the test is skipped and says why.
    """
    mounted: list[Path] = []

    def mount(size: str) -> SmallDisk:
        if os.geteuid() != 0:
            pytest.skip("filling a real disk needs a tmpfs, and mounting one needs root")
        where = tmp_path_factory.mktemp("disk")
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(where)],
            capture_output=True, text=True, check=False,
        )
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
        mounted.append(where)
        return SmallDisk(where)

    yield mount
    for where in mounted:
        subprocess.run(["umount", "-l", str(where)], capture_output=True, check=False)
