"""The monitor clock offset: estimated robustly, reported when first known and when it drifts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sync.monitor_clock import MonitorClock

T0 = datetime(2026, 3, 1, 10, 0, 0, tzinfo=UTC)


def feed(clock: MonitorClock, seconds: range, offset_s: float, *, aware: bool = True) -> list[float]:
    reports = []
    for i in seconds:
        host = T0 + timedelta(seconds=i, milliseconds=300)
        monitor = (T0 + timedelta(seconds=i + offset_s)).replace(microsecond=0)
        if not aware:
            monitor = monitor.astimezone().replace(tzinfo=None)
        reported = clock.observe(monitor, host)
        if reported is not None:
            reports.append(reported)
    return reports


def test_offset_reported_once_then_only_when_it_moves() -> None:
    clock = MonitorClock()
    assert feed(clock, range(0, 20), 42.0) == [41.7]  # second resolution: 42 s minus 0.3 s
    assert feed(clock, range(20, 40), 42.0) == []
    reports = feed(clock, range(40, 80), 47.0)  # someone set the monitor's clock
    assert len(reports) == 1 and abs(reports[0] - 46.7) < 1.01


def test_naive_monitor_time_is_local_wall_time() -> None:
    clock = MonitorClock()
    feed(clock, range(0, 10), -3.0, aware=False)
    assert clock.offset_s is not None and abs(clock.offset_s + 3.3) < 0.01


def test_values_of_one_record_count_once() -> None:
    clock = MonitorClock()
    stamp = T0.replace(tzinfo=None)
    for _ in range(10):
        clock.observe(stamp, T0)
    assert clock.offset_s is None  # one record is not an estimate
