"""The systemd unit, sysusers/tmpfiles snippets and udev rules, checked by systemd's own tools."""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from cli.devices import SERIAL_FAMILIES

SYSTEMD = Path(__file__).resolve().parents[2] / "systemd"
UNIT = SYSTEMD / "neoflix-capture.service"
MAX_EXPOSURE = 2.0

needs_systemd = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="needs systemd-analyze (Debian package systemd)"
)


def options(text: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line and not line.startswith(("#", "[")) and "=" in line:
            key, value = line.split("=", 1)
            found.setdefault(key, []).append(value)
    return found


@needs_systemd
def test_security_exposure_is_at_most_2(capsys: pytest.CaptureFixture[str]) -> None:
    done = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", "--no-pager", str(UNIT)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    m = re.search(r"Overall exposure level for neoflix-capture\.service: ([\d.]+)", done.stdout)
    assert m, done.stdout + done.stderr
    exposure = float(m.group(1))
    with capsys.disabled():
        print(f"\nsystemd-analyze security --offline=yes: exposure {exposure} (limit {MAX_EXPOSURE})")
    assert exposure <= MAX_EXPOSURE, done.stdout

    # Every setting the analysis still counts against the unit has its reason written beside it.
    text = UNIT.read_text()
    lines = text.splitlines()
    for row in done.stdout.splitlines():
        if not row.startswith("✗"):
            continue
        name = row[1:].split()[0].split("=")[0].split("/")[0]
        explained = re.search(rf"^#.*\b{name}=", text, re.M) is not None or any(
            line.startswith(f"{name}=") and lines[i - 1].startswith("#") for i, line in enumerate(lines)
        )
        assert explained, f"{name}: left off or loosened without a reason in the unit"


@needs_systemd
def test_unit_verifies(tmp_path: Path) -> None:
    # verify insists that ExecStart's program exists; point it at a stand-in with the same job.
    program = tmp_path / "neoflix-capture"
    program.write_text("#!/bin/sh\nexit 0\n")
    program.chmod(0o755)
    unit = tmp_path / "neoflix-capture.service"
    unit.write_text(UNIT.read_text().replace("/opt/neoflix-capture/venv/bin/neoflix-capture", str(program)))
    done = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "neoflix-capture" not in done.stderr, done.stderr


def test_unit_has_what_the_recorder_relies_on() -> None:
    opts = options(UNIT.read_text())
    assert opts["Type"] == ["notify"]
    assert opts["Restart"] == ["on-failure"]
    assert opts["RestartPreventExitStatus"] == ["78"]  # config errors (EX_CONFIG) are final
    assert int(opts["WatchdogSec"][0]) >= 20  # well above the daemon's 5 s stall detection
    assert opts["User"] == ["neoflix"]
    assert set(opts["SupplementaryGroups"][0].split()) == {"video", "audio", "dialout", "input"}
    assert opts["UMask"] == ["0077"]
    assert opts["MemorySwapMax"] == ["0"]
    assert opts["LimitCORE"] == ["0"]
    assert opts["CapabilityBoundingSet"] == [""]
    assert opts["ProtectSystem"] == ["strict"]
    assert opts["DevicePolicy"] == ["closed"]
    allowed = {a.split()[0] for a in opts["DeviceAllow"]}
    assert allowed == {
        "char-video4linux", "char-alsa", "char-ttyUSB", "char-ttyACM", "char-ttyS", "char-ttyAMA",
        "char-input",
    }  # fmt: skip
    # Every serial port `neoflix-capture devices` offers for the config can be opened by the service.
    assert {f"char-tty{family}" for family in SERIAL_FAMILIES} <= allowed
    assert opts["SystemCallFilter"][0] == "@system-service"
    assert set(opts["RestrictAddressFamilies"][0].split()) == {"AF_UNIX", "AF_INET", "AF_INET6"}
    for name in ("StateDirectory", "RuntimeDirectory", "ConfigurationDirectory"):
        assert opts[name] == ["neoflix-capture"]
    exec_start = opts["ExecStart"][0]
    assert exec_start.endswith("run --config /etc/neoflix-capture/config.toml")


@pytest.mark.skipif(shutil.which("systemd-sysusers") is None, reason="needs systemd-sysusers")
def test_sysusers_and_tmpfiles_apply(tmp_path: Path) -> None:
    sysusers = tmp_path / "etc/sysusers.d/neoflix-capture.conf"
    tmpfiles = tmp_path / "etc/tmpfiles.d/neoflix-capture.conf"
    sysusers.parent.mkdir(parents=True)
    tmpfiles.parent.mkdir(parents=True)
    shutil.copy(SYSTEMD / "neoflix-capture.sysusers", sysusers)
    shutil.copy(SYSTEMD / "neoflix-capture.tmpfiles", tmpfiles)
    for argv in (
        ["systemd-sysusers", f"--root={tmp_path}", str(sysusers)],
        ["systemd-tmpfiles", f"--root={tmp_path}", "--create", str(tmpfiles)],
    ):
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        assert "ignoring" not in done.stderr.lower() and "failed" not in done.stderr.lower(), done.stderr
    passwd = (tmp_path / "etc/passwd").read_text()
    assert re.search(r"^neoflix:x:\d+:\d+:neoflix-capture recorder:/var/lib/neoflix-capture:\S*nologin$",
                     passwd, re.M)  # fmt: skip
    assert (tmp_path / "var/lib/neoflix-capture/recordings").is_dir()
    # tmpfiles must never age out recordings: no Age column on any line.
    for line in tmpfiles.read_text().splitlines():
        if line and not line.startswith("#"):
            assert line.split()[-1] == "-", line


_RULE_PART = re.compile(r'^(?P<key>[A-Z_]+(\{[^}]+\})?)(?P<op>==|!=|\+=|:=|=)"(?P<value>[^"]*)"$')
_MATCH_KEYS = {"SUBSYSTEM", "KERNEL", "ATTR", "ATTRS", "ENV"}
_ASSIGN_KEYS = {"SYMLINK", "GROUP", "MODE"}


def test_udev_rules_template_is_well_formed() -> None:
    rules = [
        line for line in (SYSTEMD / "99-neoflix.rules").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]  # fmt: skip
    links = []
    for rule in rules:
        for part in (p.strip() for p in rule.split(", ")):
            m = _RULE_PART.match(part)
            assert m, f"not a udev key: {part!r} in {rule!r}"
            key = m.group("key").split("{")[0]
            if m.group("op") in ("==", "!="):
                assert key in _MATCH_KEYS, part
            else:
                assert key in _ASSIGN_KEYS, part
            if key == "SYMLINK":
                links.append(m.group("value"))
        # A placeholder never matches a real device: an unfilled rule does nothing.
        assert 'ATTRS{idVendor}=="XXXX"' in rule
    assert links == [
        "neoflix/camera-0", "neoflix/camera-1", "neoflix/monitor-0", "neoflix/monitor-1", "neoflix/button-0"
    ]  # fmt: skip


def _rule_matches(rule: str, node: dict[str, str]) -> bool:
    """Whether a rule's match keys (==, !=, with udev's * glob) all hold for a node's properties
    (keys as the rule writes them: SUBSYSTEM, KERNEL, ENV{...}, ATTRS{...})."""
    for part in (p.strip() for p in rule.split(", ")):
        m = _RULE_PART.match(part)
        assert m, part
        if m.group("op") not in ("==", "!="):
            continue
        found = fnmatch.fnmatchcase(node.get(m.group("key"), ""), m.group("value"))
        if found != (m.group("op") == "=="):
            return False
    return True


def test_the_button_rule_names_a_foot_switchs_keyboard_node_not_its_mouse() -> None:
    rule = next(
        line for line in (SYSTEMD / "99-neoflix.rules").read_text().splitlines()
        if not line.startswith("#") and "neoflix/button-0" in line
    )  # fmt: skip
    filled = rule.replace('ATTRS{idVendor}=="XXXX"', 'ATTRS{idVendor}=="3553"').replace(
        'ATTRS{idProduct}=="XXXX"', 'ATTRS{idProduct}=="b001"'
    )
    usb = {"SUBSYSTEM": "input", "ATTRS{idVendor}": "3553", "ATTRS{idProduct}": "b001"}
    # One foot switch as the kernel and 60-input-id.rules present it: interface 0 a keyboard,
    # interface 1 a mouse, each with an event node and the mouse with a legacy node too.
    keyboard = {**usb, "KERNEL": "event5", "ENV{ID_INPUT}": "1", "ENV{ID_INPUT_KEY}": "1",
                "ENV{ID_INPUT_KEYBOARD}": "1"}  # fmt: skip
    mouse = {**usb, "KERNEL": "event6", "ENV{ID_INPUT}": "1", "ENV{ID_INPUT_MOUSE}": "1"}
    legacy_mouse = {**mouse, "KERNEL": "mouse2"}
    keyboard_parent = {**usb, "KERNEL": "input17", "ENV{ID_INPUT_KEYBOARD}": "1"}  # no node to read
    assert _rule_matches(filled, keyboard)
    assert not _rule_matches(filled, mouse)
    assert not _rule_matches(filled, legacy_mouse)
    assert not _rule_matches(filled, keyboard_parent)
    assert not _rule_matches(rule, keyboard)  # the template's placeholders match nothing


def _private_mounts_work() -> bool:
    if os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("udevadm") is None:
        return False
    done = subprocess.run(["unshare", "-m", "true"], capture_output=True, timeout=30, check=False)
    return done.returncode == 0 and Path("/sys/class/net/lo").exists()


@pytest.mark.skipif(
    not _private_mounts_work(), reason="needs root, unshare and udevadm (to parse the rules as udev does)"
)
def test_udev_itself_reads_every_rule_of_the_template(tmp_path: Path) -> None:
    # udev's own parser, on the template with its placeholders filled in, seen in place of
    # /etc/udev/rules.d in a mount namespace of its own (the machine's rules stay untouched).
    # systemd 252 has no "udevadm verify"; "udevadm test" reads every rules file and names each
    # line it cannot use.
    rules = tmp_path / "rules.d"
    rules.mkdir()
    text = (SYSTEMD / "99-neoflix.rules").read_text().replace('"XXXX"', '"3553"')
    (rules / "99-neoflix.rules").write_text(text.replace("\n#SUBSYSTEM", "\nSUBSYSTEM"))  # the variants too
    (rules / "98-broken.rules").write_text('SUBSYSTEM=="input", ENV{ID_INPUT_KEYBOARD}=="1" BROKEN\n')
    script = f"mount --bind {rules} /etc/udev/rules.d && udevadm test --action=add /sys/class/net/lo"
    done = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, timeout=60,
                          check=False)  # fmt: skip
    out = done.stdout + done.stderr
    assert "Reading rules file: /etc/udev/rules.d/99-neoflix.rules" in out, out
    assert "98-broken.rules:1" in out  # the parser does name a bad line
    assert [line for line in out.splitlines() if "99-neoflix.rules:" in line] == []
