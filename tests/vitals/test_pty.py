"""The pty pair is a real, raw tty for pyserial: bytes pass unchanged, nothing is echoed."""

from __future__ import annotations

import os
import select
import termios

import serial

from vitals.pty import open_pty_pair


def test_slave_is_raw_before_anyone_configures_it() -> None:
    with open_pty_pair() as pair:
        fd = os.open(pair.slave_path, os.O_RDWR | os.O_NOCTTY)  # no termios change on open
        try:
            iflag, oflag, _, lflag, _, _, _ = termios.tcgetattr(fd)
            assert not lflag & (termios.ECHO | termios.ICANON | termios.ISIG)
            assert not iflag & (termios.ICRNL | termios.IXON)
            assert not oflag & termios.OPOST
            os.write(pair.master_fd, b"early\r\n\x00\x11\x13")
            assert os.read(fd, 100) == b"early\r\n\x00\x11\x13"
            # No echo comes back to the simulator's side.
            assert select.select([pair.master_fd], [], [], 0.1)[0] == []
        finally:
            os.close(fd)


def test_bytes_pass_unchanged_through_pyserial() -> None:
    payload = bytes(range(256)) + b"line one\r\nline two\n\r"
    with open_pty_pair() as pair:
        port = serial.Serial(pair.slave_path, 9600, timeout=0.5)
        try:
            os.write(pair.master_fd, payload)
            got = b""
            while len(got) < len(payload):
                chunk = port.read(len(payload) - len(got))
                assert chunk, "read timed out"
                got += chunk
            assert got == payload
            assert select.select([pair.master_fd], [], [], 0.1)[0] == []
            port.write(b"to the monitor\r\n")
            assert os.read(pair.master_fd, 100) == b"to the monitor\r\n"
        finally:
            port.close()


def test_close_makes_the_path_vanish_and_is_idempotent() -> None:
    pair = open_pty_pair()
    path = pair.slave_path
    port = serial.Serial(path, 9600, timeout=0.2)
    pair.close()
    pair.close()
    assert pair.closed
    assert not os.path.exists(path)
    try:
        port.read(10)
    except serial.SerialException:
        pass  # end of file reads as a disconnected device: what the link must survive
    else:
        raise AssertionError("reading a pty whose master is gone should fail")
    finally:
        port.close()
