"""Helpers for the service tests: the service manager's end of sd_notify, daemon-like status dicts,
and an offline wheelhouse made from the project's own virtualenv."""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import socket
import tomllib
import zipfile
from importlib import metadata
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name


class NotifySocket:
    """The service manager's end of sd_notify: a datagram socket that collects messages."""

    def __init__(self, sock: socket.socket, env_value: str) -> None:
        self.sock = sock
        self.env_value = env_value  # what NOTIFY_SOCKET is set to
        self.messages: list[dict[str, str]] = []

    def drain(self, timeout_s: float = 0.0) -> list[dict[str, str]]:
        """Messages that arrived (waiting up to ``timeout_s`` for the first), parsed into fields."""
        got: list[dict[str, str]] = []
        if timeout_s > 0:
            self.sock.settimeout(timeout_s)
        else:
            self.sock.setblocking(False)
        while True:
            try:
                data = self.sock.recv(65536)
            except (BlockingIOError, TimeoutError):
                break
            got.append(parse_message(data))
            self.sock.setblocking(False)
        self.messages += got
        return got


def parse_message(data: bytes) -> dict[str, str]:
    return dict(line.split("=", 1) for line in data.decode().split("\n") if "=" in line)


def camera_status(
    state: str = "live", frames: int = 100, write_errors: int = 0, packets_dropped: int = 0, **extra: Any
) -> dict[str, Any]:
    """One camera's entry as ``Daemon.status()`` writes it."""
    return {
        "health": {"state": state, "delivered": frames, "rate": 30.0, "last_error": None},
        "frames_encoded": frames,
        "frames_dropped": 0,
        "no_signal_frames": 0,
        "packets_dropped": packets_dropped,
        "write_errors": write_errors,
        "preroll_s": 10.0,
        "preroll_bytes": 1000,
        **extra,
    }


def daemon_status(
    cameras: dict[str, dict[str, Any]] | None = None,
    *,
    state: str = "idle",
    elapsed_s: float | None = None,
    audio: str | None = None,
    monitors: dict[str, str] | None = None,
    free: int | None = 100 * 1024**3,
) -> dict[str, Any]:
    """A status dict shaped like ``Daemon.status()``."""
    return {
        "state": state,
        "session": None,
        "elapsed_s": elapsed_s,
        "cameras": cameras if cameras is not None else {"closeup": camera_status()},
        "audio": {"state": audio, "frames": 10} if audio is not None else None,
        "monitors": {n: {"monitor": n, "state": s} for n, s in (monitors or {}).items()},
        "vitals_samples": 0,
        "storage_free_bytes": free,
        "last_session": None,
    }


# --- an offline wheelhouse from what the project's virtualenv already has ------------------------


def runtime_distributions(
    project: str = "neoflix-capture", extras: tuple[str, ...] = ("collect",)
) -> list[metadata.Distribution]:
    """The installed distributions ``project`` needs at run time with ``extras`` (the installer
    always puts in the collect extra), itself excluded."""
    seen: dict[str, metadata.Distribution] = {}
    todo = [project]
    top = canonicalize_name(project)
    while todo:
        name = canonicalize_name(todo.pop())
        if name in seen:
            continue
        dist = metadata.distribution(name)
        seen[name] = dist
        envs = [{"extra": e} for e in ("", *(extras if name == top else ()))]
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is None or any(req.marker.evaluate(env) for env in envs):
                todo.append(req.name)
    del seen[canonicalize_name(project)]
    return list(seen.values())


def repack_wheel(dist: metadata.Distribution, out_dir: Path) -> Path:
    """Zip an installed distribution back into a wheel, from the files its RECORD lists.

    Scripts installed outside site-packages and the installer's own bookkeeping are left out;
    pip writes those again when it installs the wheel.
    """
    files = [f for f in dist.files or [] if not str(f).startswith("..") and "__pycache__" not in str(f)]
    info_dir = next(str(f).split("/")[0] for f in files if str(f).split("/")[0].endswith(".dist-info"))
    skip = {f"{info_dir}/{n}" for n in ("RECORD", "INSTALLER", "REQUESTED", "direct_url.json")}
    wheel_meta = (Path(str(dist.locate_file(f"{info_dir}/WHEEL")))).read_text()
    tags = [line.split(":", 1)[1].strip() for line in wheel_meta.splitlines() if line.startswith("Tag:")]
    parts = [sorted({t.split("-")[i] for t in tags}) for i in range(3)]
    tag = "-".join(".".join(p) for p in parts)
    name = dist.metadata["Name"].replace("-", "_")
    path = out_dir / f"{name}-{dist.version}-{tag}.whl"
    record: list[str] = []
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for f in files:
            rel = str(f)
            if rel in skip:
                continue
            data = Path(str(dist.locate_file(f))).read_bytes()
            zf.writestr(rel, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append(f"{rel},sha256={digest},{len(data)}")
        record.append(f"{info_dir}/RECORD,,")
        zf.writestr(f"{info_dir}/RECORD", "\n".join(record) + "\n")
    return path


def _packages(checkout: Path, setuptools_cfg: dict[str, Any]) -> list[str]:
    """The packages pyproject names: a plain list, or what ``packages.find`` finds (its ``include``
    patterns matched against every folder with an ``__init__.py``, as setuptools matches them)."""
    listed = setuptools_cfg["packages"]
    if isinstance(listed, list):
        return [str(name) for name in listed]
    include: list[str] = listed["find"].get("include", ["*"])
    found = []
    for init in sorted(checkout.rglob("__init__.py")):
        rel = init.parent.relative_to(checkout)
        if any(part.startswith(".") for part in rel.parts) or "tests" in rel.parts:
            continue
        name = ".".join(rel.parts)
        if any(fnmatch.fnmatchcase(name, pattern) for pattern in include):
            found.append(name)
    if not found:
        raise AssertionError(f"pyproject's packages.find matched nothing in {checkout}")
    return found


def project_wheel(checkout: Path, out_dir: Path) -> Path:
    """The project as a wheel, from the checkout's packages and its installed metadata.

    Building it with setuptools would need a setuptools newer than the virtualenv has, from the
    network; this puts the same files in the same places (pyproject's packages and package-data).
    """
    project = tomllib.loads((checkout / "pyproject.toml").read_text())
    version = project["project"]["version"]
    installed = metadata.distribution("neoflix-capture")
    info_dir = f"neoflix_capture-{version}.dist-info"
    setuptools_cfg = project["tool"]["setuptools"]
    package_data: dict[str, list[str]] = setuptools_cfg.get("package-data", {})
    path = out_dir / f"neoflix_capture-{version}-py3-none-any.whl"
    record: list[str] = []

    def add(zf: zipfile.ZipFile, rel: str, data: bytes) -> None:
        zf.writestr(rel, data)
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{rel},sha256={digest},{len(data)}")

    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for package in _packages(checkout, setuptools_cfg):
            base = checkout / package.replace(".", "/")
            for src in sorted(base.glob("*.py")):
                add(zf, src.relative_to(checkout).as_posix(), src.read_bytes())
            for pattern in package_data.get(package, []):
                for src in sorted(base.glob(pattern)):
                    add(zf, src.relative_to(checkout).as_posix(), src.read_bytes())
        # An editable install keeps its metadata as METADATA (dist-info) or PKG-INFO (egg-info).
        meta = installed.read_text("METADATA") or installed.read_text("PKG-INFO") or ""
        add(zf, f"{info_dir}/METADATA", meta.encode())
        add(zf, f"{info_dir}/entry_points.txt", (installed.read_text("entry_points.txt") or "").encode())
        wheel = b"Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        add(zf, f"{info_dir}/WHEEL", wheel)
        record.append(f"{info_dir}/RECORD,,")
        zf.writestr(f"{info_dir}/RECORD", "\n".join(record) + "\n")
    return path
