"""scripts/install into a staging root: install twice, validate, upgrade, refuse, uninstall, purge.

Offline, as on a PC without package access: the wheelhouse is made from the project's own
virtualenv (its installed distributions zipped back into wheels), pip's configuration is
switched off, and every pip call gets --no-index. Nothing outside the staging root is touched.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import sys
import tomllib
from collections.abc import Callable, Iterator
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from service_testkit import project_wheel, repack_wheel, runtime_distributions

from store.keys import Identity

CHECKOUT = Path(__file__).resolve().parents[2]
INSTALL = CHECKOUT / "scripts" / "install"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("systemd-sysusers") is None or shutil.which("systemd-analyze") is None,
        reason="needs systemd's tools (Debian package systemd)",
    ),
    pytest.mark.skipif(os.geteuid() != 0, reason="giving staged files to the service user needs root"),
]


def hid_library() -> metadata.Distribution | None:
    """The USB-button library's wheel distribution, where this virtualenv has it (the dev extra
    brings it on x86_64): the wheelhouse then offers it, as one made for such PCs does."""
    try:
        return metadata.distribution("evdev-binary")
    except metadata.PackageNotFoundError:
        return None


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheelhouse")
    for dist in runtime_distributions():
        repack_wheel(dist, out)
    hid = hid_library()
    if hid is not None:
        repack_wheel(hid, out)
    project_wheel(CHECKOUT, out)
    return out


def installer(root: Path, wheelhouse: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """run(*args) → CompletedProcess, staged in root, with an environment that cannot go online."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull  # no site index, no extra find-links, no constraints
    python = getattr(sys, "_base_executable", sys.executable)  # the Python the wheels were built for
    wheel = next(wheelhouse.glob("neoflix_capture-*.whl"))

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(INSTALL), "--root", str(root), "--python", python, "--wheelhouse", str(wheelhouse),
             "--wheel", str(wheel), *args],
            capture_output=True, text=True, env=env, timeout=300, check=False,
        )  # fmt: skip
        print(f"$ install {' '.join(args)}\n{done.stdout}{done.stderr}")
        return done

    return run


@pytest.fixture
def run_install(tmp_path: Path, wheelhouse: Path) -> Iterator[tuple[Path, object]]:
    """(staging root, run(*args) → CompletedProcess) with an environment that cannot go online."""
    root = tmp_path / "root"
    yield root, installer(root, wheelhouse)


def snapshot(root: Path) -> dict[str, tuple[object, ...]]:
    """Every path under root with type, mode, owner and content (programs by venv name only)."""
    seen: dict[str, tuple[object, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root)
        if rel_dir.parts[:3] == ("opt", "neoflix-capture", "venvs") and len(rel_dir.parts) > 3:
            dirnames.clear()
            continue
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            st = path.lstat()
            key = str(path.relative_to(root))
            if stat.S_ISLNK(st.st_mode):
                seen[key] = ("link", os.readlink(path))
            elif stat.S_ISDIR(st.st_mode):
                seen[key] = ("dir", stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)
            else:
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                seen[key] = ("file", stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, digest)
    return seen


def ids(root: Path, table: str, name: str) -> int:
    for line in (root / "etc" / table).read_text().splitlines():
        fields = line.split(":")
        if fields[0] == name:
            return int(fields[2])
    raise AssertionError(f"{name} not in {table}")


def test_install_is_idempotent_and_keeps_config_and_recordings(
    run_install: tuple[Path, object], tmp_path: Path
) -> None:
    root, run = run_install
    assert callable(run)

    # A fresh PC, no config given: the example goes in, and the service is enabled but not
    # started, since the example has no review key yet.
    first = run()
    assert first.returncode == 0, first.stderr
    config = root / "etc/neoflix-capture/config.toml"
    assert config.read_text() == (CHECKOUT / "config/example.toml").read_text()
    assert "NOT STARTED" in first.stdout
    assert "storage.recipients" in first.stdout + first.stderr

    uid, gid = ids(root, "passwd", "neoflix"), ids(root, "group", "neoflix")
    for group in ("video", "audio", "dialout", "input"):
        lines = (root / "etc/group").read_text().splitlines()
        members = next(g for g in lines if g.startswith(group + ":")).split(":")[3]
        assert "neoflix" in members.split(",")
    st = config.stat()
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o640, 0, gid)
    state = root / "var/lib/neoflix-capture"
    assert (stat.S_IMODE(state.stat().st_mode), state.stat().st_uid) == (0o750, uid)
    recordings = state / "recordings"
    assert (stat.S_IMODE(recordings.stat().st_mode), recordings.stat().st_uid) == (0o700, uid)
    unit = root / "etc/systemd/system/neoflix-capture.service"
    assert unit.read_text() == (CHECKOUT / "systemd/neoflix-capture.service").read_text()
    wants = root / "etc/systemd/system/multi-user.target.wants/neoflix-capture.service"
    assert wants.is_symlink()
    assert (root / "etc/udev/rules.d/99-neoflix.rules").is_file()
    program = root / "opt/neoflix-capture/venv/bin/neoflix-capture"
    assert os.access(program, os.X_OK)
    if hid_library() is not None:  # offered as a wheel: installed, so a button added later works
        venv_python = root / "opt/neoflix-capture/venv/bin/python"
        assert subprocess.run([str(venv_python), "-c", "import evdev"], check=False).returncode == 0
    cli_link = os.readlink(root / "usr/local/bin/neoflix-capture")
    assert cli_link == "/opt/neoflix-capture/venv/bin/neoflix-capture"

    # Again: nothing changes, nothing is rebuilt.
    before = snapshot(root)
    second = run()
    assert second.returncode == 0, second.stderr
    assert "already installed" in second.stdout
    assert snapshot(root) == before

    # A config handed over later never replaces the one there; it is put beside it.
    recipient = str(Identity.generate().recipient)
    station = tmp_path / "station.toml"
    station.write_text(
        (CHECKOUT / "config/example.toml").read_text().replace(
            "recipients = []", f'recipients = ["{recipient}"]'
        )
    )
    third = run("--config", str(station))
    assert third.returncode == 0, third.stderr
    assert config.read_text() == (CHECKOUT / "config/example.toml").read_text()
    assert (config.parent / "config.toml.new").read_text() == station.read_text()

    # IT edits the config: now it validates, and the unit verifies as installed.
    shutil.copy(station, config)
    fourth = run()
    assert fourth.returncode == 0, fourth.stderr
    assert "1 recipient(s)" in fourth.stdout and "NOT STARTED" not in fourth.stdout
    verify_unit(root)

    # Upgrade keeps the edited config, switches to a freshly built program, keeps the old one.
    edited = config.read_text().replace('table = "Resus 1"', 'table = "Resus 2"')
    config.write_text(edited)
    old_program = os.readlink(root / "opt/neoflix-capture/venv")
    upgrade = run("--upgrade")
    assert upgrade.returncode == 0, upgrade.stderr
    assert config.read_text() == edited
    new_program = os.readlink(root / "opt/neoflix-capture/venv")
    assert new_program != old_program
    assert (root / "opt/neoflix-capture" / old_program).is_dir()  # for a manual rollback

    # An upgrade the config does not pass changes nothing, not even the snippets the new
    # version would have brought (here the installed tmpfiles snippet is an older one).
    config.write_text(edited.replace("fps = 30", "fps = 120"))
    tmpfiles = root / "etc/tmpfiles.d/neoflix-capture.conf"
    tmpfiles.write_text(tmpfiles.read_text() + "# as an older version wrote it\n")
    before_refusal = snapshot(root)
    refused = run("--upgrade")
    assert refused.returncode == 78
    assert "the running version stays" in refused.stderr
    assert snapshot(root) == before_refusal
    assert os.readlink(root / "opt/neoflix-capture/venv") == new_program
    assert sorted(p.name for p in (root / "opt/neoflix-capture/venvs").iterdir()) == sorted(
        Path(p).name for p in (old_program, new_program)
    )
    config.write_text(edited)

    # Uninstall removes the program and the unit, keeps config, udev rules and recordings.
    session = recordings / "20260101T000000Z-abcdef"
    session.mkdir()
    (session / "closeup-000001.ts.age").write_bytes(b"age-encryption.org/v1\n")
    gone = run("--uninstall")
    assert gone.returncode == 0, gone.stderr
    assert not (root / "opt/neoflix-capture").exists()
    assert not unit.exists() and not wants.exists()
    assert not (root / "usr/local/bin/neoflix-capture").exists()
    assert config.read_text() == edited
    assert (root / "etc/udev/rules.d/99-neoflix.rules").is_file()
    assert (session / "closeup-000001.ts.age").is_file()
    assert "neoflix:" in (root / "etc/passwd").read_text()

    purged = run("--uninstall", "--purge")
    assert purged.returncode == 0, purged.stderr
    assert not config.parent.exists()
    assert not state.exists()
    assert not (root / "etc/udev/rules.d/99-neoflix.rules").exists()


def verify_unit(root: Path) -> None:
    """systemd-analyze verify on the unit as installed, its program resolved inside the root."""
    units = root / "usr/lib/systemd/system"
    # The distribution's units (multi-user.target, sysinit.target ...) that the check follows.
    shutil.copytree("/usr/lib/systemd/system", units, symlinks=True)
    try:
        done = subprocess.run(
            ["systemd-analyze", "verify", f"--root={root}", "/etc/systemd/system/neoflix-capture.service"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    finally:
        shutil.rmtree(root / "usr/lib/systemd")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "neoflix-capture" not in done.stderr, done.stderr


def test_install_refuses_what_it_cannot_do(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(INSTALL), "--root", str(tmp_path / "root"), "--upgrade"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    assert "not installed here" in done.stderr
    done = subprocess.run(
        [str(INSTALL), "--purge"], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 1
    assert "--purge goes with --uninstall" in done.stderr


def build_backend() -> metadata.Distribution | None:
    """The setuptools pyproject's build-system asks for, if this virtualenv has that one: a
    wheelhouse made offline needs it to build the program from the checkout."""
    build_system = tomllib.loads((CHECKOUT / "pyproject.toml").read_text())["build-system"]
    wanted = Requirement(build_system["requires"][0])
    try:
        dist = metadata.distribution(wanted.name)
    except metadata.PackageNotFoundError:
        return None
    return dist if wanted.specifier.contains(dist.version, prereleases=True) else None


@pytest.mark.skipif(
    build_backend() is None,
    reason="building from the checkout offline needs pyproject's build backend (setuptools>=68) "
    "in this virtualenv, to put in the wheelhouse",
)
def test_a_wheelhouse_from_the_checkout_installs_offline(tmp_path: Path, wheelhouse: Path) -> None:
    backend = build_backend()
    assert backend is not None
    # "Package access" for --make-wheelhouse: an index of what this virtualenv has (the runtime
    # packages and the build backend), reached through pip's own settings, never the network.
    index = tmp_path / "index"
    index.mkdir()
    for whl in wheelhouse.glob("*.whl"):
        if not whl.name.startswith("neoflix_capture-"):
            shutil.copy(whl, index)
    repack_wheel(backend, index)
    hid = hid_library()
    if hid is not None:
        repack_wheel(hid, index)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    python = getattr(sys, "_base_executable", sys.executable)
    had_build = (CHECKOUT / "build").exists()

    made = tmp_path / "wheelhouse"
    done = subprocess.run(
        [str(INSTALL), "--python", python, "--make-wheelhouse", str(made)],
        capture_output=True, text=True, timeout=300, check=False,
        env={**env, "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(index)},
    )  # fmt: skip
    print(done.stdout + done.stderr)
    assert done.returncode == 0, done.stderr
    names = {p.name.split("-")[0].lower() for p in made.glob("*.whl")}
    assert {"neoflix_capture", "setuptools", "numpy", "pyserial"} <= names
    assert ("evdev_binary" in names) == (hid is not None)  # the hid extra goes in where it can

    # The offline PC: the program built from the checkout, with that wheelhouse and nothing else.
    root = tmp_path / "root"
    done = subprocess.run(
        [str(INSTALL), "--root", str(root), "--python", python, "--wheelhouse", str(made), "--no-start"],
        capture_output=True, text=True, timeout=300, check=False, env=env,
    )  # fmt: skip
    print(done.stdout + done.stderr)
    assert done.returncode == 0, done.stderr
    assert f"from {CHECKOUT} (offline, from {made})" in done.stdout
    venv_python = root / "opt/neoflix-capture/venv/bin/python"
    probe = subprocess.run(
        [str(venv_python), "-c", "import recorder.daemon, cli.main; print(cli.main.__file__)"],
        capture_output=True, text=True, timeout=60, check=False, cwd=tmp_path,  # not the checkout's
    )  # fmt: skip
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.startswith(str(root / "opt/neoflix-capture/venv/"))  # installed, not the checkout
    assert (CHECKOUT / "build").exists() == had_build  # pip built in a copy, not in the checkout


def credentials_file(path: Path, key_id: str) -> Path:
    path.write_text(f"[default]\naws_access_key_id = {key_id}\naws_secret_access_key = secret-{key_id}\n")
    path.chmod(0o600)
    return path


def test_a_table_of_many_gets_its_own_settings_and_keys(
    run_install: tuple[Path, object], tmp_path: Path
) -> None:
    root, run = run_install
    assert callable(run)
    recipient = str(Identity.generate().recipient)
    template = tmp_path / "unit.toml"  # the unit's template: everything the tables share
    example = (CHECKOUT / "config/example.toml").read_text()
    template.write_text(example.replace("recipients = []", f'recipients = ["{recipient}"]'))
    keys = credentials_file(tmp_path / "resus-3.ini", "AKIARESUS3")
    table = [
        "--config", str(template), "--table-name", "Resus 3", "--site", "st-elsewhere-nicu",
        "--table", "resus-3", "--collect-endpoint", "https://s3.hospital.example",
        "--collect-bucket", "neoflix-recordings", "--collect-credentials", str(keys),
        "--set", "storage.retention_days=14",
    ]  # fmt: skip
    first = run(*table)
    assert first.returncode == 0, first.stderr
    assert "1 recipient(s)" in first.stdout and "NOT STARTED" not in first.stdout  # check-config passed
    config = root / "etc/neoflix-capture/config.toml"
    text = config.read_text()
    assert text.startswith("# Rendered by scripts/install from unit.toml with:\n")
    data = tomllib.loads(text)
    assert data["station"]["table"] == "Resus 3"
    assert data["storage"]["retention_days"] == 14
    assert data["storage"]["recipients"] == [recipient]
    assert data["collection"] == {
        "enabled": True, "site": "st-elsewhere-nicu", "table": "resus-3",
        "endpoint": "https://s3.hospital.example", "bucket": "neoflix-recordings",
        "credentials_file": "/etc/neoflix-capture/collection.credentials",
    }  # fmt: skip
    installed_keys = root / "etc/neoflix-capture/collection.credentials"
    st = installed_keys.stat()
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o640, 0, ids(root, "group", "neoflix"))
    assert installed_keys.read_bytes() == keys.read_bytes()

    # The same loop run again: nothing changes.
    before = snapshot(root)
    again = run(*table)
    assert again.returncode == 0, again.stderr
    assert "already as these settings make it" in again.stdout
    assert snapshot(root) == before

    # Other settings, other keys, on a table that has its config: nothing is replaced unasked.
    new_keys = credentials_file(tmp_path / "resus-3-new.ini", "AKIAROTATED")
    changed = [*table[:3], "Resus 3 (east)", *table[4:]]
    changed[changed.index(str(keys))] = str(new_keys)
    kept = run(*changed)
    assert kept.returncode == 0, kept.stderr
    assert config.read_text() == text and installed_keys.read_bytes() == keys.read_bytes()
    beside = tomllib.loads((config.parent / "config.toml.new").read_text())
    assert beside["station"]["table"] == "Resus 3 (east)"
    assert "--replace-config" in kept.stdout and "diff -u" in kept.stdout

    # A replacement the program refuses leaves the config as it was.
    refused = run(*changed, "--set", "cameras[0].fps=120", "--replace-config")
    assert refused.returncode == 78
    assert "cameras[0].fps: Input should be less than or equal to 60" in refused.stdout + refused.stderr
    assert "the config and keys stay as they were" in refused.stderr
    assert config.read_text() == text and installed_keys.read_bytes() == keys.read_bytes()

    replaced = run(*changed, "--replace-config")
    assert replaced.returncode == 0, replaced.stderr
    assert tomllib.loads(config.read_text())["station"]["table"] == "Resus 3 (east)"
    assert (config.parent / "config.toml.old").read_text() == text
    assert not (config.parent / "config.toml.new").exists()
    assert installed_keys.read_bytes() == new_keys.read_bytes()
    assert stat.S_IMODE(installed_keys.stat().st_mode) == 0o640


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--site", "St Elsewhere"], "--site 'St Elsewhere': a slug is 1 to 40 characters"),
        (["--table", "resus-3-"], "--table 'resus-3-': a slug"),
        (["--collect-endpoint", "s3.hospital.example"], "an http:// or https:// URL"),
        (["--collect-bucket", "Neoflix_Recordings"], "S3 bucket naming rules"),
        (["--set", "storage.retention_days"], "--set storage.retention_days: KEY=VALUE"),
        (["--set", "cameras[2].fps=15"], "cameras[2].fps: the template has only 1 entries there"),
        (["--upgrade", "--table", "resus-3"], "--upgrade and --uninstall never change the config"),
    ],
)
def test_bad_settings_are_refused_before_anything_is_installed(
    tmp_path: Path, args: list[str], message: str
) -> None:
    root = tmp_path / "root"
    done = subprocess.run(
        [str(INSTALL), "--root", str(root), *args], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 1
    assert message in done.stderr
    assert not root.exists() or not any(root.iterdir())


@pytest.mark.parametrize("problem", ["world-writable", "group-writable", "symlink", "not keys"])
def test_a_credentials_file_others_could_have_written_is_refused(tmp_path: Path, problem: str) -> None:
    keys = credentials_file(tmp_path / "keys.ini", "AKIA")
    given = keys
    if problem == "world-writable":
        keys.chmod(0o602)
    elif problem == "group-writable":
        keys.chmod(0o620)
    elif problem == "symlink":
        given = tmp_path / "link.ini"
        given.symlink_to(keys)
    else:
        keys.write_text("[default]\nkey = value\n")
    root = tmp_path / "root"
    done = subprocess.run(
        [str(INSTALL), "--root", str(root), "--collect-credentials", str(given)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    expected = {
        "world-writable": "group- or world-writable (mode 602)",
        "group-writable": "group- or world-writable (mode 620)",
        "symlink": "is a symlink",
        "not keys": "not an AWS shared-credentials file",
    }[problem]
    assert expected in done.stderr
    assert not root.exists() or not any(root.iterdir())


def test_a_usb_button_config_without_its_library_stops_the_install(
    tmp_path: Path, wheelhouse: Path
) -> None:
    # A wheelhouse made without the USB-button library, for a table whose config has a button.
    bare = tmp_path / "wheelhouse"
    bare.mkdir()
    for whl in wheelhouse.glob("*.whl"):
        if not whl.name.startswith(("evdev_binary-", "evdev-")):
            (bare / whl.name).symlink_to(whl)
    recipient = str(Identity.generate().recipient)
    station = tmp_path / "station.toml"
    station.write_text(
        (CHECKOUT / "config/example.toml").read_text()
        .replace("recipients = []", f'recipients = ["{recipient}"]')
        .replace('kind = "none"', 'kind = "hid"\ndevice = "/dev/neoflix/button-0"')
    )  # fmt: skip
    root = tmp_path / "root"
    done = installer(root, bare)("--config", str(station))
    assert done.returncode == 1
    assert 'the config says button.kind = "hid", but the USB-button library' in done.stderr
    assert not (root / "etc/neoflix-capture/config.toml").exists()
    assert not (root / "opt/neoflix-capture/venv").exists()
