"""``neoflix-capture devices``: what is plugged in, in the words the config and udev rules need.

Lists V4L2 cameras (with the pixel formats, sizes and rates the driver offers), ALSA capture
devices, serial ports and input devices that send keys (a bedside button), each with its stable
names (``/dev/v4l/by-id``, ``/dev/serial/by-id``, ``/dev/input/by-id``) and the USB vendor,
product and serial a udev rule matches on (systemd/99-neoflix.rules).

Everything is read from sysfs, ``/proc/asound`` and the ``/dev`` symlinks udev made, plus the
V4L2 query ioctls on the camera nodes: no dependency, no running recorder needed. Querying a
camera's formats does not disturb a recorder that is streaming from it. ``sys_root`` lets tests
point all of it at a fake tree.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

# --- V4L2 query ioctls (linux/videodev2.h) ----------------------------------------------------------


def _iowr(nr: int, size: int) -> int:
    return (3 << 30) | (size << 16) | (ord("V") << 8) | nr


_CAPABILITY = struct.Struct("=16s32s32sIII12x")  # struct v4l2_capability, 104 bytes
_FMTDESC = struct.Struct("=III32sII12x")  # struct v4l2_fmtdesc, 64 bytes
_FRMSIZE = struct.Struct("=III6I8x")  # struct v4l2_frmsizeenum, 44 bytes
_FRMIVAL = struct.Struct("=IIIII6I8x")  # struct v4l2_frmivalenum, 52 bytes
VIDIOC_QUERYCAP = (2 << 30) | (_CAPABILITY.size << 16) | (ord("V") << 8) | 0
VIDIOC_ENUM_FMT = _iowr(2, _FMTDESC.size)
VIDIOC_ENUM_FRAMESIZES = _iowr(74, _FRMSIZE.size)
VIDIOC_ENUM_FRAMEINTERVALS = _iowr(75, _FRMIVAL.size)
V4L2_BUF_TYPE_VIDEO_CAPTURE = 1
V4L2_CAP_VIDEO_CAPTURE = 0x00000001
V4L2_CAP_DEVICE_CAPS = 0x80000000
_DISCRETE = 1

Ioctl = Callable[[int, int, bytearray], object]


@dataclass
class CameraFormat:
    fourcc: str
    description: str
    sizes: list[tuple[int, int, list[float]]] = field(default_factory=list)  # w, h, rates
    other: str = ""  # stepwise/continuous ranges, described

    def describe(self) -> str:
        if self.other:
            return f"{self.fourcc} {self.other}"
        sizes = ", ".join(
            f"{w}x{h}" + (f" @ {'/'.join(f'{r:g}' for r in rates)}" if rates else "")
            for w, h, rates in self.sizes
        )
        return f"{self.fourcc} ({self.description}): {sizes or 'no sizes listed'}"


def fourcc_text(code: int) -> str:
    return "".join(chr((code >> (8 * i)) & 0xFF) for i in range(4)).strip()


def is_capture_node(fd: int, ioctl: Ioctl = fcntl.ioctl) -> tuple[bool, str]:
    """(does this node capture video, the card name) from VIDIOC_QUERYCAP.

    UVC cameras have a second node per camera that carries only metadata; it must not go in
    the config.
    """
    buf = bytearray(_CAPABILITY.size)
    ioctl(fd, VIDIOC_QUERYCAP, buf)
    _driver, card, _bus, _version, caps, device_caps = _CAPABILITY.unpack(buf)
    effective = device_caps if caps & V4L2_CAP_DEVICE_CAPS else caps
    return bool(effective & V4L2_CAP_VIDEO_CAPTURE), _cstr(card)


def query_formats(fd: int, ioctl: Ioctl = fcntl.ioctl, limit: int = 64) -> list[CameraFormat]:
    """The formats, sizes and frame rates a capture node offers (ENUM_FMT/FRAMESIZES/INTERVALS)."""
    formats: list[CameraFormat] = []
    for index in range(limit):
        buf = bytearray(_FMTDESC.pack(index, V4L2_BUF_TYPE_VIDEO_CAPTURE, 0, b"", 0, 0))
        if not _try(ioctl, fd, VIDIOC_ENUM_FMT, buf):
            break
        _i, _t, _flags, desc, pixfmt, _mbus = _FMTDESC.unpack(buf)
        fmt = CameraFormat(fourcc_text(pixfmt), _cstr(desc))
        for size_index in range(limit):
            sbuf = bytearray(_FRMSIZE.pack(size_index, pixfmt, 0, 0, 0, 0, 0, 0, 0))
            if not _try(ioctl, fd, VIDIOC_ENUM_FRAMESIZES, sbuf):
                break
            _si, _pf, kind, a, b, _step_w, d, e, _step_h = _FRMSIZE.unpack(sbuf)
            if kind != _DISCRETE:
                # Stepwise: min_w, max_w, step_w, min_h, max_h, step_h.
                fmt.other = f"any size {a}x{d} to {b}x{e}"
                break
            fmt.sizes.append((a, b, _frame_rates(fd, ioctl, pixfmt, a, b, limit)))
        formats.append(fmt)
    return formats


def _frame_rates(fd: int, ioctl: Ioctl, pixfmt: int, w: int, h: int, limit: int) -> list[float]:
    rates: list[float] = []
    for index in range(limit):
        buf = bytearray(_FRMIVAL.pack(index, pixfmt, w, h, 0, 0, 0, 0, 0, 0, 0))
        if not _try(ioctl, fd, VIDIOC_ENUM_FRAMEINTERVALS, buf):
            break
        _i, _pf, _w, _h, kind, num, den, *_ = _FRMIVAL.unpack(buf)
        if kind != _DISCRETE or num == 0:
            break
        rates.append(round(den / num, 2))
    return rates


def _try(ioctl: Ioctl, fd: int, request: int, buf: bytearray) -> bool:
    try:
        ioctl(fd, request, buf)
    except OSError:
        return False  # EINVAL marks the end of every V4L2 enumeration
    return True


def _cstr(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace").strip()


# --- sysfs helpers ----------------------------------------------------------------------------------


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None


def _usb_attrs(device_link: Path) -> dict[str, str]:
    """idVendor/idProduct/serial/product of the USB device above a sysfs ``device`` link."""
    try:
        here = Path(os.path.realpath(device_link))
    except OSError:
        return {}
    for _ in range(5):
        vendor = _read(here / "idVendor")
        if vendor is not None:
            attrs = {"idVendor": vendor}
            for name in ("idProduct", "serial", "manufacturer", "product"):
                value = _read(here / name)
                if value:
                    attrs[name] = value
            return attrs
        if here.parent == here:
            break
        here = here.parent
    return {}


def _stable_names(root: Path, folders: tuple[str, ...], node: str) -> list[str]:
    """Symlinks under ``folders`` (relative to root) that point at /dev/``node``."""
    names: list[str] = []
    for folder in folders:
        base = root / folder
        with contextlib.suppress(OSError):
            for link in sorted(base.iterdir()):
                if link.is_symlink() and Path(os.path.realpath(link)).name == node:
                    names.append("/" + str(link.relative_to(root)))
    return names


def _udev_match(attrs: dict[str, str]) -> str:
    keys = [k for k in ("idVendor", "idProduct", "serial") if k in attrs]
    return ", ".join(f'ATTRS{{{k}}}=="{attrs[k]}"' for k in keys)


def _usb_words(attrs: dict[str, str]) -> str:
    if not attrs:
        return ""
    words = f"usb {attrs['idVendor']}:{attrs.get('idProduct', '????')}"
    name = " ".join(v for v in (attrs.get("manufacturer"), attrs.get("product")) if v)
    if name:
        words += f' "{name}"'
    if "serial" in attrs:
        words += f" serial {attrs['serial']}"
    return words


# --- the listing ------------------------------------------------------------------------------------


def list_devices(out: TextIO, *, sys_root: Path = Path("/")) -> int:
    """Print cameras, audio inputs, serial ports and input devices (bedside buttons); returns 0
    (listing never fails)."""
    _cameras(out, sys_root)
    out.write("\n")
    _audio(out, sys_root)
    out.write("\n")
    _serial(out, sys_root)
    out.write("\n")
    _inputs(out, sys_root)
    stable = sys_root / "dev" / "neoflix"
    if stable.is_dir():
        out.write("\nStable names made by the neoflix udev rules:\n")
        for link in sorted(stable.iterdir()):
            out.write(f"  /dev/neoflix/{link.name} -> {Path(os.path.realpath(link)).name}\n")
    return 0


def _cameras(out: TextIO, root: Path) -> None:
    out.write('Cameras (V4L2): in the config, source = { kind = "v4l2", device = "<stable name>" }\n')
    base = root / "sys" / "class" / "video4linux"
    nodes = sorted(base.glob("video*"), key=lambda p: _natural(p.name)) if base.is_dir() else []
    if not nodes:
        out.write("  none found\n")
        return
    for node in nodes:
        dev = root / "dev" / node.name
        name = _read(node / "name") or "?"
        capture: bool | None = None
        formats: list[CameraFormat] = []
        problem = ""
        try:
            fd = os.open(dev, os.O_RDWR | os.O_NONBLOCK)
        except OSError as exc:
            problem = f"cannot open {dev}: {exc.strerror}"
        else:
            try:
                capture, card = is_capture_node(fd)
                name = card or name
                if capture:
                    formats = query_formats(fd)
            except OSError as exc:
                problem = f"not queryable: {exc.strerror}"
            finally:
                os.close(fd)
        if capture is False:
            out.write(f"  /dev/{node.name}  {name}: not a capture node (metadata), skip it\n")
            continue
        index = _read(node / "index")
        attrs = _usb_attrs(node / "device")
        out.write(f"  /dev/{node.name}  {name}" + (f"  ({_usb_words(attrs)})" if attrs else "") + "\n")
        for stable in _stable_names(root, ("dev/v4l/by-id", "dev/v4l/by-path"), node.name):
            out.write(f"      stable name: {stable}\n")
        if problem:
            out.write(f"      formats: {problem}\n")
            if index not in (None, "0"):
                out.write(f"      (index {index}: probably a camera's metadata node)\n")
        for fmt in formats:
            out.write(f"      {fmt.describe()}\n")
        if attrs:
            out.write(f"      udev rule match: {_udev_match(attrs)}\n")


def _natural(name: str) -> tuple[str, int]:
    m = re.match(r"(\D*)(\d*)", name)
    assert m is not None
    return m.group(1), int(m.group(2) or -1)


_CARD_LINE = re.compile(r"^\s*(\d+)\s+\[(\S+)\s*\]:\s*(\S+)\s+-\s+(.*)$")


def _audio(out: TextIO, root: Path) -> None:
    out.write('Audio inputs (ALSA): in the config, [audio] source = { kind = "alsa", device = "<name>" }\n')
    cards_text = _read(root / "proc" / "asound" / "cards")
    found = False
    for line in (cards_text or "").splitlines():
        m = _CARD_LINE.match(line)
        if not m:
            continue
        number, card_id, driver, long_name = m.groups()
        card_dir = root / "proc" / "asound" / f"card{number}"
        pcms = sorted(card_dir.glob("pcm*c"), key=lambda p: _natural(p.name[3:-1]))
        if not pcms:
            continue  # playback only
        found = True
        usb = _read(card_dir / "usbid")
        out.write(f"  card {number} {card_id}: {long_name} ({driver}{', usb ' + usb if usb else ''})\n")
        for pcm in pcms:
            dev = pcm.name[3:-1]
            info = _read(pcm / "info") or ""
            pcm_name = next(
                (ln.split(":", 1)[1].strip() for ln in info.splitlines() if ln.startswith("name:")),
                "",
            )
            out.write(f"      plughw:CARD={card_id},DEV={dev}   {pcm_name}\n")
    if not found:
        out.write("  none found\n")
    else:
        out.write(
            "  (plughw converts rate and channels in ALSA; CARD=<id> survives replugging, a card\n"
            "   number may not)\n"
        )


#: The serial port families listed (/dev/ttyUSB0 ...): USB adapters, USB modems (CDC ACM), PC
#: UARTs and ARM boards' UARTs. The unit allows each of them (DeviceAllow=char-tty<family>).
SERIAL_FAMILIES = ("USB", "ACM", "S", "AMA")
_SERIAL = re.compile(rf"^tty({'|'.join(SERIAL_FAMILIES)})\d+$")


def _serial(out: TextIO, root: Path) -> None:
    out.write('Serial ports: in the config, [[monitors]] port = "<stable name>"\n')
    base = root / "sys" / "class" / "tty"
    ports = sorted((p for p in base.glob("tty*") if _SERIAL.match(p.name)), key=lambda p: _natural(p.name))
    found = False
    for port in ports:
        # Every PC lists ttyS0-31; only ports with a UART behind them (type not 0) exist.
        if port.name.startswith("ttyS") and _read(port / "type") in (None, "0"):
            continue
        found = True
        _node(out, root, f"/dev/{port.name}", port / "device", "dev/serial", port.name)
    if not found:
        out.write("  none found\n")


def _node(out: TextIO, root: Path, heading: str, device: Path, links: str, node: str) -> None:
    """One serial port or input device: its node, what USB says it is, its stable names under
    ``links``/by-id and by-path, and the match a udev rule needs."""
    attrs = _usb_attrs(device)
    out.write(f"  {heading}" + (f"  ({_usb_words(attrs)})" if attrs else "") + "\n")
    for stable in _stable_names(root, (f"{links}/by-id", f"{links}/by-path"), node):
        out.write(f"      stable name: {stable}\n")
    if attrs:
        out.write(f"      udev rule match: {_udev_match(attrs)}\n")


def _inputs(out: TextIO, root: Path) -> None:
    out.write(
        'Input devices (a bedside button): in the config, [button] kind = "hid", '
        'device = "<stable name>"\n'
    )
    base = root / "sys" / "class" / "input"
    events = sorted(base.glob("event*"), key=lambda p: _natural(p.name)) if base.is_dir() else []
    found = False
    for event in events:
        # A button sends keys; lid switches, HDMI jacks and the PC speaker send none.
        keys = _read(event / "device" / "capabilities" / "key")
        if keys is not None and not keys.replace("0", "").replace(" ", ""):
            continue
        found = True
        name = _read(event / "device" / "name") or "?"
        _node(out, root, f"/dev/input/{event.name}  {name}", event / "device", "dev/input", event.name)
    if not found:
        out.write("  none found\n")
