"""How often each protocol's monitor sends a value, and how old a value may grow before it is stale.

One table for everyone who reasons about a monitor's rhythm: the overlay greys a value once it is
older than its monitor's ``stale_after_s`` (default from here), and doctor waits long enough for a
few samples. It names protocols rather than importing the parsers, so configuration can read it
without loading every family.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

#: Seconds between two samples in each protocol's normal output (PROTOCOLS.md summary table): the
#: longest gap a healthy monitor of that family leaves, not its best case.
SAMPLE_INTERVAL_S: Final[Mapping[str, float]] = {
    "masimo": 2.0,  # ~1 Hz; the Rad-87 sends trend lines every 2 s
    "intellivue": 1.0,  # extended poll of numerics, 1 s
    "ge_s5": 5.0,  # displayed numerics no faster than every 5 s
    "medibus": 2.0,
    "nellcor": 2.0,
    "nonin": 1.0,
    "line_format": 2.0,  # unknown device; a typical monitor's line rate
}

#: Room on top of two sample intervals: a sample that arrives late by a serial line's worth of
#: jitter, or one the monitor skipped, must not grey a value that is still current.
STALE_MARGIN_S: Final = 1.0


def sample_interval_s(protocol: str) -> float:
    """``protocol``'s sample interval; raises ``KeyError`` for a protocol it does not know."""
    return SAMPLE_INTERVAL_S[protocol]


def default_stale_after_s(protocol: str) -> float:
    """How old a value of ``protocol`` may be and still be shown as current: one missed sample
    is tolerated, two are not."""
    return 2 * sample_interval_s(protocol) + STALE_MARGIN_S
