"""The bedside button: sources that read it, and the supervised thread that turns it into gestures.

Every button is a ``ButtonSource``. Three kinds:

- ``ModemLineButton``: a contact closure on a serial port's modem status lines (any pyserial URL);
  the port's output lines can light a lamp in the button.
- ``EvdevButton``: a USB HID button or foot switch through Linux evdev (the optional ``evdev``
  package, ``pip install neoflix-capture[hid]``). No lamp.
- ``ScriptedButton``: replays a script of presses, for the demo and tests.

``ButtonController`` polls one source, feeds a ``GestureRecognizer`` and sets the lamp to what
the ``lamp`` callback says; ``supervision.Supervisor`` (kind ``button``) reopens the source with
back-off when it vanishes and logs a loss and a recovery once each, not once per retry.

Threads: the controller's thread owns the source and the recognizer and is the only one to call
them; ``on_gesture`` and ``lamp`` run on that thread, so they must return quickly and guard
whatever they share with the daemon under its own lock. ``health()`` may be called from any
thread and reads under ``_lock``. ``start``/``stop`` belong to the owner's thread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any, Literal, Protocol

import serial
import structlog

from control.gestures import Gesture, GestureRecognizer
from supervision.backoff import Backoff
from supervision.health import DeviceHealth
from supervision.supervisor import Supervisor, describe_error

ModemInput = Literal["CTS", "DSR", "CD", "RI"]
ModemOutput = Literal["DTR", "RTS"]

log = structlog.get_logger()


class ButtonSource(Protocol):
    """One physical (or scripted) button. Not thread-safe: one thread calls all of these."""

    def open(self) -> None: ...

    def pressed(self) -> bool | None:
        """The contact now; ``None`` when it cannot be read. A source may raise instead (with
        the reason); the controller treats both as a lost device."""
        ...

    def set_lamp(self, on: bool) -> None: ...
    def close(self) -> None: ...
    def describe(self) -> str: ...


# -- serial modem lines --------------------------------------------------------------------------


class ModemLineButton:
    """A button wired to a serial port's modem lines, read with pyserial (any URL it accepts).

    Wiring on the DB-9 of a USB-RS232 adapter (the default lines)::

        RTS (pin 7) ──── button ──── CTS (pin 8)        RTS is held on as the supply
        DTR (pin 4) ── 1 kΩ ──▶|── GND (pin 5)          lamp LED, with a 1N4148 reversed across it

    Pins 7 and 8 sit side by side. Pressed, the button puts RTS's +5…12 V on CTS; released,
    the adapter's receiver pulls CTS back to off. An RS-232 output swings to −5…12 V when off,
    more than an LED stands in reverse, hence the diode; it gives a few mA, enough for an LED,
    while a 12 V arcade lamp needs a transistor or relay module on DTR. Lines that are neither
    supply nor lamp are held off. ``active_low`` is for a normally-closed contact or any
    circuit where the line reads on while the button is up.
    """

    def __init__(
        self,
        url: str,
        *,
        line: ModemInput = "CTS",
        lamp_line: ModemOutput | None = "DTR",
        supply_line: ModemOutput | None = "RTS",
        active_low: bool = False,
    ) -> None:
        if line not in ("CTS", "DSR", "CD", "RI"):
            raise ValueError(f"line must be CTS, DSR, CD or RI (got {line!r})")
        for name, value in (("lamp_line", lamp_line), ("supply_line", supply_line)):
            if value not in (None, "DTR", "RTS"):
                raise ValueError(f"{name} must be DTR, RTS or None (got {value!r})")
        if lamp_line is not None and lamp_line == supply_line:
            raise ValueError(f"{lamp_line} cannot be both the lamp and the button's supply")
        self.url = url
        self.line = line
        self.lamp_line = lamp_line
        self.supply_line = supply_line
        self.active_low = active_low
        self._port: serial.Serial | None = None

    @property
    def port(self) -> serial.Serial | None:
        """The open port, for diagnostics (and for tests on ``loop://``, where RTS shows on CTS)."""
        return self._port

    def open(self) -> None:
        port = serial.serial_for_url(self.url, do_not_open=True, exclusive=True)
        # Set before opening, so the supply is there from the start and the lamp never flashes.
        port.dtr = self.supply_line == "DTR"
        port.rts = self.supply_line == "RTS"
        port.open()
        self._port = port

    def pressed(self) -> bool | None:
        if self._port is None:
            return None
        level = bool(getattr(self._port, self.line.lower()))  # cts, dsr, cd, ri
        return level != self.active_low

    def set_lamp(self, on: bool) -> None:
        if self._port is not None and self.lamp_line is not None:
            setattr(self._port, self.lamp_line.lower(), on)

    def close(self) -> None:
        port, self._port = self._port, None
        if port is None:
            return
        try:
            if self.lamp_line is not None:
                setattr(port, self.lamp_line.lower(), False)
        except Exception:  # a vanished adapter has no lamp to switch off
            pass
        port.close()

    def describe(self) -> str:
        lamp = f", lamp on {self.lamp_line}" if self.lamp_line else ""
        supply = f" from {self.supply_line}" if self.supply_line else ""
        low = " (active low)" if self.active_low else ""
        return f"button on {self.line}{supply}{low} of {self.url}{lamp}"


# -- USB HID through evdev -----------------------------------------------------------------------

# Linux input event numbers (linux/input-event-codes.h): a stable kernel ABI.
EV_SYN = 0
EV_KEY = 1
SYN_REPORT = 0
SYN_DROPPED = 3


class KeyState:
    """Whether one key is down, followed from a device's (type, code, value) events.

    Key values: 1 down, 2 auto-repeat (still down), 0 up. ``SYN_DROPPED`` means the kernel's
    buffer overflowed and events were lost: everything up to the next ``SYN_REPORT`` is
    unreliable, after which ``needs_resync`` asks the owner to read the key's real state.
    """

    def __init__(self, code: int, held: bool = False) -> None:
        self.code = code
        self.pressed = held
        self.needs_resync = False
        self._dropping = False

    def feed(self, type_: int, code: int, value: int) -> None:
        if type_ == EV_SYN:
            if code == SYN_DROPPED:
                self._dropping = True
            elif code == SYN_REPORT and self._dropping:
                self._dropping = False
                self.needs_resync = True
            return
        if type_ == EV_KEY and code == self.code and not self._dropping:
            self.pressed = value != 0

    def resync(self, held: bool) -> None:
        self.pressed = held
        self.needs_resync = False


class EvdevButton:
    """A USB HID button or foot switch (a one-key keyboard, to Linux), read through evdev.

    ``device`` is its event node, best a stable name from ``/dev/input/by-id/``; ``key`` a key
    name from linux/input-event-codes.h (``KEY_ENTER``, ``BTN_0``...) or its number. With
    ``grab`` the device is held exclusively, so its presses never type into a console or
    another program. HID buttons have no lamp: ``set_lamp`` does nothing, and the team sees the
    recording state elsewhere (the screen, a separate lamp).
    """

    def __init__(self, device: str, key: str | int = "KEY_ENTER", *, grab: bool = True) -> None:
        self.device = device
        self.key = key
        self.grab = grab
        self._dev: Any = None
        self._keys: KeyState | None = None

    def open(self) -> None:
        evdev = _import_evdev()
        code = self._keycode(evdev)
        dev = evdev.InputDevice(self.device)
        try:
            if self.grab:
                dev.grab()
            self._keys = KeyState(code, code in dev.active_keys())
        except BaseException:
            dev.close()
            raise
        self._dev = dev

    def pressed(self) -> bool | None:
        dev, keys = self._dev, self._keys
        if dev is None or keys is None:
            return None
        try:
            for event in dev.read():  # everything queued since the last poll
                keys.feed(event.type, event.code, event.value)
        except BlockingIOError:
            pass  # nothing new; an unplugged device raises OSError instead, which we pass on
        if keys.needs_resync:
            keys.resync(keys.code in dev.active_keys())
        return keys.pressed

    def set_lamp(self, on: bool) -> None:
        pass  # no lamp on a HID button

    def close(self) -> None:
        dev, self._dev, self._keys = self._dev, None, None
        if dev is not None:
            dev.close()  # also releases the grab

    def describe(self) -> str:
        return f"HID button {self.key} on {self.device}"

    def _keycode(self, evdev: Any) -> int:
        if isinstance(self.key, int):
            return self.key
        code = evdev.ecodes.ecodes.get(self.key)
        if not isinstance(code, int):
            raise ValueError(
                f"unknown key {self.key!r}: use a name from linux/input-event-codes.h "
                "such as KEY_ENTER or BTN_0, or its number (evtest shows what a button sends)"
            )
        return code


def _import_evdev() -> Any:
    try:
        # An optional extra, without type hints: absent here, untyped where installed.
        import evdev  # type: ignore[import-not-found, import-untyped, unused-ignore]
    except ImportError as exc:
        raise RuntimeError(
            "USB HID buttons need the evdev package: pip install neoflix-capture[hid]"
        ) from exc
    return evdev


# -- scripted ------------------------------------------------------------------------------------


class ScriptedButton:
    """Replays ``(seconds since first opened, state)`` steps: ``True`` pressed, ``False`` up,
    ``None`` unplugged (reads fail, and so does ``open``). For the demo and tests.

    ``lamp_changes`` lists ``(seconds since first opened, on)`` for each ``set_lamp``; read it
    from another thread only after the controller has stopped.
    """

    def __init__(
        self,
        script: Sequence[tuple[float, bool | None]],
        *,
        clock_ns: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        times = [at for at, _ in script]
        if times != sorted(times):
            raise ValueError("script steps must be in time order")
        self._script = list(script)
        self._clock_ns = clock_ns
        self._t0: int | None = None
        self._open = False
        self.opens = 0
        self.lamp_changes: list[tuple[float, bool]] = []

    def _elapsed_s(self) -> float:
        if self._t0 is None:
            self._t0 = self._clock_ns()
        return (self._clock_ns() - self._t0) / 1e9

    def _state(self) -> bool | None:
        now = self._elapsed_s()
        state: bool | None = False
        for at, step in self._script:
            if at > now:
                break
            state = step
        return state

    def open(self) -> None:
        if self._state() is None:
            raise OSError("scripted button is unplugged")
        self._open = True
        self.opens += 1

    def pressed(self) -> bool | None:
        return self._state() if self._open else None

    def set_lamp(self, on: bool) -> None:
        self.lamp_changes.append((self._elapsed_s(), on))

    def close(self) -> None:
        self._open = False

    def describe(self) -> str:
        return f"scripted button ({len(self._script)} steps)"


# -- the supervised controller -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ButtonHealth(DeviceHealth):
    """The button's ``DeviceHealth`` (``delivered`` counts polls), and how many gestures it saw."""

    gestures: int = 0


class ButtonController:
    """Polls ``source`` on its own thread and reports gestures; see the module docstring.

    ``lamp(t_ns)`` says whether the lamp should be lit at ``t_ns`` (usually
    ``lamp_level(lamp_pattern(...), t_ns)``); the source is told only when that changes.
    """

    def __init__(
        self,
        source: ButtonSource,
        on_gesture: Callable[[Gesture], None],
        *,
        lamp: Callable[[int], bool],
        clock_ns: Callable[[], int] = time.monotonic_ns,
        poll_ms: float = 10,
        recognizer: GestureRecognizer | None = None,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 10.0,
        callback_log_interval_s: float = 60.0,
    ) -> None:
        if poll_ms <= 0:
            raise ValueError("poll_ms must be > 0")
        self._source = source
        self._on_gesture = on_gesture
        self._lamp = lamp
        self._clock_ns = clock_ns
        self._poll_s = poll_ms / 1000
        self._recognizer = recognizer or GestureRecognizer()
        self._lock = threading.Lock()
        self._gestures = 0  # published under _lock
        self._supervisor = Supervisor(
            "button",
            "button",
            self,
            clock_ns=clock_ns,
            backoff=Backoff(backoff_initial_s, backoff_max_s),
            callback_log_interval_s=callback_log_interval_s,
            log_context={"source": source.describe()},
        )

    # -- owner's side ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start polling. A controller runs once; make a new one to poll again."""
        self._supervisor.start()

    def stop(self, timeout_s: float = 1.0) -> bool:
        """Stop polling and close the source (its lamp goes dark). False if the thread outlived
        ``timeout_s`` (only an open that hangs in the driver can do that; the thread is a daemon)."""
        return self._supervisor.stop(timeout_s)

    @property
    def running(self) -> bool:
        return self._supervisor.running

    @property
    def source(self) -> ButtonSource:
        return self._source

    def health(self) -> ButtonHealth:
        device = self._supervisor.health()
        with self._lock:
            gestures = self._gestures
        return ButtonHealth(
            **{f.name: getattr(device, f.name) for f in fields(DeviceHealth)}, gestures=gestures
        )

    # -- the connection the supervisor drives (controller thread) ------------------------------

    def describe(self) -> str:
        return self._source.describe()

    def open(self) -> None:
        self._source.open()

    def close(self) -> None:
        self._source.close()

    def serve(self, device: Supervisor) -> str:
        """Poll until the button cannot be read; gestures out, the lamp kept as ``lamp`` says.
        A read that raises is the supervisor's to report (a loss, with its words)."""
        t = self._clock_ns()  # one reading per poll: an injected clock sees the rhythm
        # A press that began before the first reading is nobody's gesture (held, or stuck).
        self._deliver(device, self._recognizer.resync(t), t)
        lit: bool | None = None  # unknown until set: the first poll always sets it
        try:
            while not device.stopping.is_set():
                pressed = self._source.pressed()
                if pressed is None:
                    return "the button cannot be read"
                device.delivered(t)  # live once it has been read, not merely opened
                self._deliver(device, self._recognizer.edge(pressed, t), t)
                want = self._lamp_wanted(device, t, lit)
                if want != lit:
                    try:
                        self._source.set_lamp(want)
                    except Exception as exc:  # broad: serial, evdev and scripts fail in their own words
                        return f"lamp: {describe_error(exc)}"  # the reason names the lamp, not the contact
                    lit = want
                if device.stopping.wait(self._poll_s):
                    break
                t = self._clock_ns()
            return "stopped"
        finally:
            if not device.stopping.is_set():
                # Lost: an armed discard must not stay armed (nor be confirmed) while we cannot see.
                self._deliver(device, self._recognizer.resync(t), t)

    def _lamp_wanted(self, device: Supervisor, t: int, lit: bool | None) -> bool:
        try:
            return bool(self._lamp(t))
        except Exception:  # broad: a failing lamp callback must not cost the button
            device.callback_failed(t, "lamp")
            return bool(lit)  # keep showing what it showed

    def _deliver(self, device: Supervisor, gestures: list[Gesture], t: int) -> None:
        for gesture in gestures:
            with self._lock:
                self._gestures += 1
            log.debug("button_gesture", gesture=str(gesture), source=self._source.describe())
            try:
                self._on_gesture(gesture)
            except Exception:  # broad: a failing receiver must not cost the button
                device.callback_failed(t, "on_gesture")
