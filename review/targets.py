"""The SpO2 target band drawn on the review plots: the pre-ductal saturation a newborn is expected
to reach minute by minute after birth.

The default is the table of the neonatal resuscitation guidelines (ERC/ILCOR): 1 min 60–65 %,
2 min 65–70 %, 3 min 70–75 %, 4 min 75–80 %, 5 min 80–85 %, 10 min 85–95 %. Between two listed
minutes the band runs linearly from one to the next, after the last it stays, and before the
first there is none (the guidelines name no target then). A unit may set its own table with
``export --spo2-targets "1:60-65,2:65-70,..."``.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_SPEC = "1:60-65,2:65-70,3:70-75,4:75-80,5:80-85,10:85-95"


@dataclass(frozen=True, slots=True)
class Target:
    minute: float  # after birth (or after the recording's start when no birth was marked)
    low: float
    high: float


class TargetSpecError(ValueError):
    """A target table that cannot be read (the message says which entry and why)."""


def parse_targets(spec: str) -> list[Target]:
    """``"1:60-65,2:65-70"`` → targets in minute order; ``TargetSpecError`` names a bad entry."""
    targets: list[Target] = []
    for raw in spec.split(","):
        entry = raw.strip()
        if not entry:
            continue
        try:
            minute_text, band = entry.split(":", 1)
            low_text, high_text = band.split("-", 1)
            target = Target(float(minute_text), float(low_text), float(high_text))
        except ValueError:
            raise TargetSpecError(
                f"SpO2 target {entry!r}: expected MINUTE:LOW-HIGH, for example 5:80-85"
            ) from None
        if not (target.minute >= 0 and 0 <= target.low <= target.high <= 100):
            raise TargetSpecError(
                f"SpO2 target {entry!r}: the minute must be 0 or more and 0 <= LOW <= HIGH <= 100"
            )
        targets.append(target)
    if not targets:
        raise TargetSpecError("SpO2 targets: none given (expected MINUTE:LOW-HIGH, ...)")
    targets.sort(key=lambda t: t.minute)
    if len({t.minute for t in targets}) != len(targets):
        raise TargetSpecError("SpO2 targets: a minute is listed twice")
    return targets


DEFAULT_TARGETS = parse_targets(DEFAULT_SPEC)


def band_polygon(targets: list[Target], origin_s: float, end_s: float) -> list[tuple[float, float, float]]:
    """The band as (time, low, high) corners in the caller's time (``origin_s`` is minute 0),
    from the first listed minute to ``end_s``; empty when the band starts after ``end_s``."""
    corners = [(origin_s + t.minute * 60.0, t.low, t.high) for t in targets]
    if not corners or corners[0][0] >= end_s:
        return []
    out = [c for c in corners if c[0] <= end_s]
    last_t, last_low, last_high = out[-1]
    if last_t < end_s:
        following = next((c for c in corners if c[0] > end_s), None)
        if following is None:
            out.append((end_s, last_low, last_high))
        else:  # cut the sloping edge at the end of the plot
            f = (end_s - last_t) / (following[0] - last_t)
            out.append(
                (end_s, last_low + f * (following[1] - last_low), last_high + f * (following[2] - last_high))
            )
    return out
