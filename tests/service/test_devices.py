"""``neoflix-capture devices`` against a fake /sys, /dev and /proc/asound, and a fake V4L2 driver."""

from __future__ import annotations

import errno
import io
import os
import struct
from pathlib import Path
from typing import ClassVar

from cli.devices import (
    _CAPABILITY,
    _FMTDESC,
    _FRMIVAL,
    _FRMSIZE,
    VIDIOC_ENUM_FMT,
    VIDIOC_ENUM_FRAMEINTERVALS,
    VIDIOC_ENUM_FRAMESIZES,
    VIDIOC_QUERYCAP,
    fourcc_text,
    is_capture_node,
    list_devices,
    query_formats,
)


def fourcc(text: str) -> int:
    return int.from_bytes(text.encode(), "little")


def test_ioctl_numbers_match_videodev2_h() -> None:
    # The values the kernel header's _IOR/_IOWR macros give on every Linux architecture we run on.
    assert VIDIOC_QUERYCAP == 0x80685600
    assert VIDIOC_ENUM_FMT == 0xC0405602
    assert VIDIOC_ENUM_FRAMESIZES == 0xC02C564A
    assert VIDIOC_ENUM_FRAMEINTERVALS == 0xC034564B
    assert (_CAPABILITY.size, _FMTDESC.size, _FRMSIZE.size, _FRMIVAL.size) == (104, 64, 44, 52)


class FakeDriver:
    """Answers the enumeration ioctls the way a UVC camera driver does."""

    # fourcc → (description, {size: [fps]})
    formats: ClassVar[dict[str, tuple[str, dict[tuple[int, int], list[int]]]]] = {
        "MJPG": ("Motion-JPEG", {(1920, 1080): [30, 15], (1280, 720): [30, 15]}),
        "YUYV": ("YUYV 4:2:2", {(640, 480): [30]}),
    }

    def __init__(self, capture: bool = True) -> None:
        self.capture = capture

    def __call__(self, fd: int, request: int, buf: bytearray) -> None:
        def end() -> OSError:
            return OSError(errno.EINVAL, os.strerror(errno.EINVAL))

        if request == VIDIOC_QUERYCAP:
            caps = 0x80000000 | 0x04000000 | 0x1  # DEVICE_CAPS | STREAMING | VIDEO_CAPTURE
            device_caps = 0x04000000 | (0x1 if self.capture else 0x00800000)  # META_CAPTURE
            buf[:] = _CAPABILITY.pack(b"uvcvideo", b"HD Pro Webcam C920", b"usb-0000:00:14.0-2", 1, caps,
                                      device_caps)
        elif request == VIDIOC_ENUM_FMT:
            index, kind, *_ = _FMTDESC.unpack(buf)
            names = list(self.formats)
            if kind != 1 or index >= len(names):
                raise end()
            name = names[index]
            buf[:] = _FMTDESC.pack(index, kind, 0, self.formats[name][0].encode(), fourcc(name), 0)
        elif request == VIDIOC_ENUM_FRAMESIZES:
            index, pixfmt, *_ = _FRMSIZE.unpack(buf)
            sizes = list(self.formats[fourcc_text(pixfmt)][1])
            if index >= len(sizes):
                raise end()
            w, h = sizes[index]
            buf[:] = _FRMSIZE.pack(index, pixfmt, 1, w, h, 0, 0, 0, 0)
        elif request == VIDIOC_ENUM_FRAMEINTERVALS:
            index, pixfmt, w, h, *_ = _FRMIVAL.unpack(buf)
            rates = self.formats[fourcc_text(pixfmt)][1][(w, h)]
            if index >= len(rates):
                raise end()
            buf[:] = _FRMIVAL.pack(index, pixfmt, w, h, 1, 1, rates[index], 0, 0, 0, 0)
        else:
            raise OSError(errno.ENOTTY, os.strerror(errno.ENOTTY))


def test_formats_sizes_and_rates_from_the_driver() -> None:
    formats = query_formats(3, FakeDriver())
    assert [f.describe() for f in formats] == [
        "MJPG (Motion-JPEG): 1920x1080 @ 30/15, 1280x720 @ 30/15",
        "YUYV (YUYV 4:2:2): 640x480 @ 30",
    ]


def test_metadata_nodes_are_told_apart() -> None:
    assert is_capture_node(3, FakeDriver()) == (True, "HD Pro Webcam C920")
    assert is_capture_node(3, FakeDriver(capture=False)) == (False, "HD Pro Webcam C920")


def test_stepwise_sizes_are_described() -> None:
    def driver(fd: int, request: int, buf: bytearray) -> None:
        if request == VIDIOC_ENUM_FMT and _FMTDESC.unpack(buf)[0] == 0:
            buf[:] = _FMTDESC.pack(0, 1, 0, b"YUYV 4:2:2", fourcc("YUYV"), 0)
        elif request == VIDIOC_ENUM_FRAMESIZES:
            buf[:] = _FRMSIZE.pack(0, fourcc("YUYV"), 3, 32, 1920, 2, 32, 1080, 2)
        else:
            raise OSError(errno.EINVAL, "end")

    assert [f.describe() for f in query_formats(3, driver)] == ["YUYV any size 32x32 to 1920x1080"]


# --- a fake machine ---------------------------------------------------------------------------------


def link(path: Path, target: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(target)


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def fake_machine(root: Path) -> None:
    """A PC with a USB webcam (video0 + metadata video1), a USB sound card, two serial adapters
    and a USB foot switch."""
    usb_cam = root / "sys/devices/pci0000:00/0000:00:14.0/usb1/1-2"
    write(usb_cam / "idVendor", "046d\n")
    write(usb_cam / "idProduct", "082d\n")
    write(usb_cam / "serial", "A1B2C3D4\n")
    write(usb_cam / "product", "HD Pro Webcam C920\n")
    for n in (0, 1):
        node = usb_cam / "1-2:1.0" / "video4linux" / f"video{n}"
        write(node / "name", "HD Pro Webcam C920\n")
        write(node / "index", f"{n}\n")
        link(node / "device", "../..")
        link(root / f"sys/class/video4linux/video{n}", os.path.relpath(node, root / "sys/class/video4linux"))
        write(root / f"dev/video{n}", "")  # not a device: the ioctls fail, as on a stale node
        link(root / f"dev/v4l/by-id/usb-046d_HD_Pro_Webcam_C920_A1B2C3D4-video-index{n}", f"../../video{n}")
    link(root / "dev/v4l/by-path/pci-0000:00:14.0-usb-0:2:1.0-video-index0", "../../video0")

    write(root / "proc/asound/cards", (
        " 0 [PCH            ]: HDA-Intel - HDA Intel PCH\n"
        "                      HDA Intel PCH at 0xf7f10000 irq 32\n"
        " 1 [Device         ]: USB-Audio - USB PnP Sound Device\n"
        "                      C-Media Electronics Inc. USB PnP Sound Device at usb-0000:00:14.0-3\n"
        " 2 [HDMI           ]: HDA-Intel - HDA Intel HDMI\n"
        "                      HDA Intel HDMI at 0xf7f14000 irq 33\n"
    ))  # fmt: skip
    write(root / "proc/asound/card0/pcm0c/info", "card: 0\ndevice: 0\nname: ALC892 Analog\n")
    write(root / "proc/asound/card0/pcm0p/info", "card: 0\ndevice: 0\nname: ALC892 Analog\n")
    write(root / "proc/asound/card1/pcm0c/info", "card: 1\ndevice: 0\nname: USB Audio\n")
    write(root / "proc/asound/card1/usbid", "0d8c:0014\n")
    write(root / "proc/asound/card2/pcm3p/info", "card: 2\ndevice: 3\nname: HDMI 0\n")  # playback only

    for n, (port, vendor, product, serial, name) in enumerate([
        ("1-3", "067b", "2303", None, "usb-Prolific_Technology_Inc._USB-Serial_Controller-if00-port0"),
        ("1-4", "0403", "6001", "FT5XYZ12", "usb-FTDI_FT232R_USB_UART_FT5XYZ12-if00-port0"),
    ]):
        usb = root / f"sys/devices/pci0000:00/0000:00:14.0/usb1/{port}"
        write(usb / "idVendor", vendor + "\n")
        write(usb / "idProduct", product + "\n")
        if serial:
            write(usb / "serial", serial + "\n")
        tty = usb / f"{port}:1.0" / f"ttyUSB{n}" / "tty" / f"ttyUSB{n}"
        link(tty / "device", "../..")
        link(root / f"sys/class/tty/ttyUSB{n}", os.path.relpath(tty, root / "sys/class/tty"))
        link(root / f"dev/serial/by-id/{name}", f"../../ttyUSB{n}")
    for n, uart in ((0, "4"), (1, "0")):  # ttyS0 has a UART, ttyS1 is a placeholder
        write(root / f"sys/class/tty/ttyS{n}/type", uart + "\n")
    write(root / "sys/class/tty/tty1/dev", "4:1\n")  # a virtual console: not a serial port
    # A USB foot switch (a HID keyboard that sends one key), the power button, and an HDMI jack
    # that sends no keys at all.
    switch = root / "sys/devices/pci0000:00/0000:00:14.0/usb1/1-5"
    write(switch / "idVendor", "05f3\n")
    write(switch / "idProduct", "00ff\n")
    write(switch / "product", "VEC USB Footpedal\n")
    inputs = [
        (switch / "1-5:1.0/0003:05F3:00FF.0001/input/input7", 3, "VEC  VEC USB Footpedal", "7 0 0 0"),
        (root / "sys/devices/LNXSYSTM:00/LNXPWRBN:00/input/input2", 1, "Power Button", "10000000000000 0"),
        (root / "sys/devices/pci0000:00/0000:00:1f.3/sound/card0/input9", 5, "HDA Intel PCH HDMI", "0"),
    ]
    for device, n, name, keys in inputs:
        write(device / "name", name + "\n")
        write(device / "capabilities/key", keys + "\n")
        event = device / f"event{n}"
        link(event / "device", "..")
        link(root / f"sys/class/input/event{n}", os.path.relpath(event, root / "sys/class/input"))
    link(root / "dev/input/by-id/usb-VEC_VEC_USB_Footpedal-event-kbd", "../event3")
    link(root / "dev/input/by-path/pci-0000:00:14.0-usb-0:5:1.0-event-kbd", "../event3")
    link(root / "dev/neoflix/camera-0", "../video0")
    link(root / "dev/neoflix/monitor-0", "../ttyUSB1")
    link(root / "dev/neoflix/button-0", "../input/event3")


def test_listing_names_what_the_config_and_udev_rules_need(tmp_path: Path) -> None:
    fake_machine(tmp_path)
    out = io.StringIO()
    assert list_devices(out, sys_root=tmp_path) == 0
    text = out.getvalue()
    print(text)
    cameras, rest = text.split("Audio inputs", 1)
    audio, rest = rest.split("Serial ports", 1)
    serial, inputs = rest.split("Input devices", 1)
    assert '/dev/video0  HD Pro Webcam C920  (usb 046d:082d "HD Pro Webcam C920" serial A1B2C3D4)' in cameras
    assert "stable name: /dev/v4l/by-id/usb-046d_HD_Pro_Webcam_C920_A1B2C3D4-video-index0" in cameras
    assert "stable name: /dev/v4l/by-path/pci-0000:00:14.0-usb-0:2:1.0-video-index0" in cameras
    assert (
        'udev rule match: ATTRS{idVendor}=="046d", ATTRS{idProduct}=="082d", ATTRS{serial}=="A1B2C3D4"'
        in cameras
    )
    assert "formats: not queryable" in cameras
    assert "(index 1: probably a camera's metadata node)" in cameras

    assert "plughw:CARD=PCH,DEV=0   ALC892 Analog" in audio
    assert "card 1 Device: USB PnP Sound Device (USB-Audio, usb 0d8c:0014)" in audio
    assert "plughw:CARD=Device,DEV=0   USB Audio" in audio
    assert "HDMI" not in audio  # playback only

    assert "/dev/ttyUSB0  (usb 067b:2303)" in serial
    assert (
        "stable name: /dev/serial/by-id/usb-Prolific_Technology_Inc._USB-Serial_Controller-if00-port0"
        in serial
    )
    assert (
        'udev rule match: ATTRS{idVendor}=="0403", ATTRS{idProduct}=="6001", ATTRS{serial}=="FT5XYZ12"'
        in serial
    )
    assert "/dev/ttyS0" in serial
    assert "/dev/ttyS1" not in serial and "tty1" not in serial
    assert '/dev/input/event3  VEC  VEC USB Footpedal  (usb 05f3:00ff "VEC USB Footpedal")' in inputs
    assert "stable name: /dev/input/by-id/usb-VEC_VEC_USB_Footpedal-event-kbd" in inputs
    assert "stable name: /dev/input/by-path/pci-0000:00:14.0-usb-0:5:1.0-event-kbd" in inputs
    assert 'udev rule match: ATTRS{idVendor}=="05f3", ATTRS{idProduct}=="00ff"' in inputs
    assert "/dev/input/event1  Power Button" in inputs  # sends a key: could be a button, so listed
    assert "HDMI" not in inputs  # sends no keys
    assert "/dev/neoflix/camera-0 -> video0" in text
    assert "/dev/neoflix/button-0 -> event3" in text
    assert "/dev/neoflix/monitor-0 -> ttyUSB1" in text


def test_an_empty_machine_says_so(tmp_path: Path) -> None:
    out = io.StringIO()
    assert list_devices(out, sys_root=tmp_path) == 0
    assert out.getvalue().count("none found") == 4


def test_struct_layout_round_trips() -> None:
    packed = _FRMIVAL.pack(0, fourcc("MJPG"), 1280, 720, 1, 1, 30, 0, 0, 0, 0)
    assert struct.unpack_from("=5I", packed) == (0, fourcc("MJPG"), 1280, 720, 1)
