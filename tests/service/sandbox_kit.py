"""Run a command under the seccomp rules a unit file asks systemd for, without systemd.

    python sandbox_kit.py UNIT_FILE -- COMMAND [ARGS...]

Reads the unit's SystemCallFilter= (groups expanded by ``systemd-analyze syscall-filter``),
SystemCallErrorNumber=, MemoryDenyWriteExecute= and RestrictAddressFamilies=, installs the same
rules as separate seccomp filters (as systemd does, so the strictest answer wins) through
libseccomp, and executes COMMAND under them. An approximation of the sandbox for a test: the
mount, device and namespace settings are not reproduced here.
"""

from __future__ import annotations

import ctypes
import errno
import os
import socket
import subprocess
import sys
from pathlib import Path

_ALLOW = 0x7FFF0000
_CMP_EQ = 4
_CMP_MASKED_EQ = 7
_PROT_WRITE, _PROT_EXEC, _SHM_EXEC = 0x2, 0x4, 0o100000


def _errno_action(code: int) -> int:
    return 0x00050000 | (code & 0xFFFF)


class _Cmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("a", ctypes.c_uint64), ("b", ctypes.c_uint64)]


def _lib() -> ctypes.CDLL:
    lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_rule_add_array.argtypes = [
        ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint, ctypes.POINTER(_Cmp)
    ]  # fmt: skip
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    return lib


def available() -> bool:
    try:
        _lib()
    except OSError:
        return False
    return True


def syscall_groups() -> dict[str, list[str]]:
    out = subprocess.run(
        ["systemd-analyze", "syscall-filter", "--no-pager"], capture_output=True, text=True, check=True
    ).stdout
    groups: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in out.splitlines():
        if line.startswith("@"):
            current = groups.setdefault(line.strip(), [])
        elif current is not None and line.strip() and not line.strip().startswith("#"):
            current.append(line.strip())
    return groups


def expand(items: list[str], groups: dict[str, list[str]]) -> set[str]:
    names: set[str] = set()
    for item in items:
        names |= expand(groups[item], groups) if item.startswith("@") else {item}
    return names


def unit_settings(unit: Path) -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in unit.read_text().splitlines():
        if line and not line.startswith(("#", "[")) and "=" in line:
            key, value = line.split("=", 1)
            settings.setdefault(key, []).append(value)
    return settings


def allowed_syscalls(settings: dict[str, list[str]]) -> set[str]:
    """SystemCallFilter= lines in order: an allow list, then ``~`` lines taking calls away."""
    groups = syscall_groups()
    lines = settings.get("SystemCallFilter", [])
    if not lines or lines[0].startswith("~"):
        raise ValueError("expected SystemCallFilter= to start with an allow list")
    allowed: set[str] = set()
    for value in lines:
        names = expand(value.lstrip("~").split(), groups)
        allowed = allowed - names if value.startswith("~") else allowed | names
    # systemd always lets these through: it needs them to start the program and end it.
    return allowed | {"execve", "exit", "exit_group", "rt_sigreturn"}


def install_filters(settings: dict[str, list[str]]) -> None:
    lib = _lib()

    def rule(ctx: int, action: int, name: str, *cmps: _Cmp) -> None:
        number = lib.seccomp_syscall_resolve_name(name.encode())
        if number < 0:
            return  # not on this architecture
        array = (_Cmp * max(1, len(cmps)))(*cmps)
        rc = lib.seccomp_rule_add_array(ctx, action, number, len(cmps), array)
        if rc not in (0, -errno.EEXIST):
            raise OSError(-rc, f"seccomp rule for {name}")

    filters = []
    error = getattr(errno, settings.get("SystemCallErrorNumber", ["EPERM"])[0])
    base = lib.seccomp_init(_errno_action(error))
    for name in sorted(allowed_syscalls(settings)):
        rule(base, _ALLOW, name)
    filters.append(base)
    if settings.get("MemoryDenyWriteExecute") == ["yes"]:
        mdwe = lib.seccomp_init(_ALLOW)
        deny = _errno_action(errno.EPERM)
        both = _PROT_WRITE | _PROT_EXEC
        rule(mdwe, deny, "mmap", _Cmp(2, _CMP_MASKED_EQ, both, both))
        rule(mdwe, deny, "mprotect", _Cmp(2, _CMP_MASKED_EQ, _PROT_EXEC, _PROT_EXEC))
        rule(mdwe, deny, "pkey_mprotect", _Cmp(2, _CMP_MASKED_EQ, _PROT_EXEC, _PROT_EXEC))
        rule(mdwe, deny, "shmat", _Cmp(2, _CMP_MASKED_EQ, _SHM_EXEC, _SHM_EXEC))
        filters.append(mdwe)
    families = settings.get("RestrictAddressFamilies")
    if families:
        keep = {int(getattr(socket, name)) for name in families[0].split()}
        af = lib.seccomp_init(_ALLOW)
        for family in range(64):
            if family not in keep:
                rule(af, _errno_action(errno.EAFNOSUPPORT), "socket", _Cmp(0, _CMP_EQ, family, 0))
        filters.append(af)
    # The allow list last: it does not allow seccomp() itself, so no filter could follow it.
    for ctx in reversed(filters):
        rc = lib.seccomp_load(ctx)  # libseccomp sets no_new_privs first, as the unit does
        if rc:
            raise OSError(-rc, "seccomp_load")


def main(argv: list[str]) -> None:
    unit, sep, *command = argv
    if sep != "--" or not command:
        raise SystemExit(__doc__)
    install_filters(unit_settings(Path(unit)))
    os.execvp(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
