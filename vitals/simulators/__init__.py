"""Monitor simulators: each writes one family's wire format to a pty or serial port.

They exist so the demo and the tests go through a real serial device path, with the same parser
and link code as a monitor at the bedside.
"""

from __future__ import annotations

import importlib
from typing import Any, Protocol


class MonitorSimulator(Protocol):
    """What every family's simulator offers (module attribute ``SIMULATOR`` is its class).

    Constructed as ``SIMULATOR(fd_or_port, *, time_scale=1.0, seed=0)``: it writes the family's
    wire format to the pty master (or serial port) it is given and, for protocols where the host
    talks first, reads and answers the host's requests on the same descriptor.
    """

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def sensor_off(self) -> None: ...
    def sensor_on(self) -> None: ...


def make_simulator(protocol: str, out: Any, **options: Any) -> MonitorSimulator:
    """The simulator for ``protocol`` (its module is ``vitals.simulators.<protocol>``)."""
    try:
        module = importlib.import_module(f"vitals.simulators.{protocol}")
    except ModuleNotFoundError:
        raise ValueError(f"no simulator for monitor protocol {protocol!r}") from None
    simulator: MonitorSimulator = module.SIMULATOR(out, **options)
    return simulator
