"""Helpers shared by the vitals tests.

The checks every monitor family must pass (any chunking gives the same samples; garbage,
truncated or corrupted input never raises and the next good record is read; no-value markers
never become numbers), running a link on a pty against a simulator, a TCP monitor server, a
sample collector, waiting.

Each family's test module calls these with its own data; what only one family does stays in its
module.
"""

from __future__ import annotations

import contextlib
import os
import random
import select
import socket
import statistics
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar

from vitals.families import PARSERS, make_parser
from vitals.link import SerialLink
from vitals.parser import MonitorParser
from vitals.pty import PtyPair
from vitals.sample import Parameter, VitalSample
from vitals.simulators import MonitorSimulator
from vitals.simulators.masimo import MasimoSimulator, StabilisationScript

# A steady baby: values from the first line, no noise, so a test can assert exact numbers.
STEADY = StabilisationScript(
    no_sensor_s=0,
    acquire_s=0,
    spo2_start=95,
    spo2_end=95,
    bpm_start=140,
    bpm_end=140,
    pi_start=2.5,
    pi_end=2.5,
    spo2_noise=0,
    bpm_noise=0,
    pi_noise=0,
)


ItemT = TypeVar("ItemT")
ItemT_co = TypeVar("ItemT_co", covariant=True)


class Fed(Protocol[ItemT_co]):
    """What a chunking test feeds: a family's parser, or one layer of it (a frame decoder)."""

    @property
    def stats(self) -> object: ...

    def feed(self, data: bytes, host_ns: int) -> Sequence[ItemT_co]: ...


class Startable(Protocol):
    """A link or a simulator: both run a thread of their own between ``start`` and ``stop``."""

    def start(self) -> None: ...
    def stop(self) -> None: ...


class GoesSilent(Protocol):
    """A simulator whose interface can restart: silent, its session with the host forgotten."""

    def go_silent(self) -> None: ...
    def come_back(self) -> None: ...


FedT = TypeVar("FedT", bound=Fed[object])
ParserT = TypeVar("ParserT", bound=MonitorParser)
DeviceT = TypeVar("DeviceT", bound=Startable)


# -- any chunking gives the same samples -------------------------------------------------------

# Every chunk arrives at this instant, so two runs can differ only in where the data was cut.
CHUNK_NS = 5


def feed_in_chunks(fed: Fed[ItemT], data: bytes, cuts: Iterable[int]) -> list[ItemT]:
    """Feed ``data`` cut at the positions ``cuts`` (those past its end are ignored); all it gave."""
    out: list[ItemT] = []
    last = 0
    for cut in [*sorted(c for c in cuts if c <= len(data)), len(data)]:
        out.extend(fed.feed(data[last:cut], CHUNK_NS))
        last = cut
    return out


def seeded_chunkings(data: bytes, *, seed: int, rounds: int, max_cuts: int) -> list[list[int]]:
    """``rounds`` random ways to cut ``data`` (1 to ``max_cuts`` cuts, the same ones every run for
    one ``seed``, so a failure can be replayed), then one byte at a time."""
    rng = random.Random(seed)
    cut_lists = [
        [rng.randrange(len(data) + 1) for _ in range(rng.randrange(1, max_cuts + 1))] for _ in range(rounds)
    ]
    return [*cut_lists, list(range(len(data)))]


def stats_of(fed: Fed[object]) -> dict[str, object]:
    """What a chunking run must end in by default: the same counters."""
    return {"stats": fed.stats}


def describe_cuts(data: bytes, cuts: Sequence[int]) -> str:
    """How a chunking run cut ``data``, for its failure message."""
    inside = sorted(c for c in cuts if c <= len(data))
    if inside == list(range(len(data))):
        return "one byte at a time"
    return f"in {len(inside) + 1} chunks cut at {inside}"


def assert_chunking_invariant(
    make: Callable[[], FedT],
    data: bytes,
    chunkings: Iterable[Sequence[int]],
    *,
    state: Callable[[FedT], dict[str, object]] = stats_of,
) -> dict[str, object]:
    """However ``data`` is cut (each of ``chunkings`` is a list of cut positions), a fresh parser
    from ``make`` gives what it gives fed ``data`` in one piece, and ends in the same ``state``.
    Returns the state of the one-piece run."""
    whole = make()
    reference = feed_in_chunks(whole, data, [])
    expected = state(whole)
    # Data that gives nothing would pass whatever the parser did with the cuts.
    assert reference, "fed in one piece the data gives nothing: a chunking test on it proves nothing"
    for cuts in chunkings:
        fed = make()
        got = feed_in_chunks(fed, data, cuts)
        assert got == reference, f"fed {describe_cuts(data, cuts)}: not what it gives in one piece"
        assert state(fed) == expected, f"fed {describe_cuts(data, cuts)}: ends unlike the one-piece run"
    return expected


# -- garbage never raises, and the next good record is read ------------------------------------

# The garbage arrives at GARBAGE_NS, the good record after it at GOOD_NS: a sample's stamp says
# which of the two its record began in.
GARBAGE_NS, GOOD_NS = 0, 1


def damaged(record: bytes, at: int, byte: int, *, truncate: bool) -> bytes:
    """``record`` cut off before ``at``, or with the byte at ``at`` replaced by ``byte``; an ``at``
    past the end means the last byte."""
    at = min(at, len(record) - 1)
    return record[:at] if truncate else record[:at] + bytes([byte]) + record[at + 1 :]


@dataclass(frozen=True)
class SampleRules:
    """What every sample of a family obeys, whatever the parser was fed."""

    # Flags that make a number unfit to show; a sample without a number is never valid anyway.
    invalid_when: frozenset[str] = frozenset({"out_of_range"})
    # When given, a sample without a value carries one of these to say why.
    missing_says: frozenset[str] = frozenset()
    value_types: tuple[type, ...] = (float,)


BASIC_RULES = SampleRules()


def assert_samples_sane(samples: Iterable[object], rules: SampleRules = BASIC_RULES) -> None:
    """Each is a ``VitalSample`` that keeps ``rules``."""
    for s in samples:
        assert isinstance(s, VitalSample), f"not a VitalSample: {s!r}"
        assert s.value is None or isinstance(s.value, rules.value_types), f"a value of another type: {s}"
        if s.value is None or s.flags & rules.invalid_when:
            assert s.valid is False, f"shown as a valid reading: {s}"
        if s.value is None and rules.missing_says:
            assert s.flags & rules.missing_says, f"no value, and none of {rules.missing_says} says why: {s}"


def assert_resyncs_after(
    make: Callable[[], ParserT],
    garbage: bytes,
    good: bytes,
    *,
    between: Callable[[ParserT], object] | None = None,
    rules: SampleRules = BASIC_RULES,
) -> list[VitalSample]:
    """Whatever ``garbage`` holds, a parser from ``make`` neither raises nor loses count of a byte,
    every sample keeps ``rules``, and the ``good`` record after it reads exactly as it does on its
    own. ``between`` checks the parser after the garbage. Returns the good record's samples, for
    the caller's own expectations."""
    parser = make()
    from_garbage = parser.feed(garbage, GARBAGE_NS)
    if between is not None:
        between(parser)
    from_good = parser.feed(good, GOOD_NS)
    parser.poll(0)  # what a talk-first parser sends next comes from the same state: it must not raise
    assert parser.stats.bytes_in == len(garbage) + len(good), f"bytes went uncounted: {parser.stats}"
    assert_samples_sane([*from_garbage, *from_good], rules)
    alone = make().feed(good, GOOD_NS)
    assert alone, "the good record gives nothing even on its own: nothing to resync to"
    assert from_good == alone, "after the garbage the good record did not read as it does on its own"
    return from_good


# -- no-value markers never become numbers ------------------------------------------------------


def assert_no_value(sample: VitalSample, *also: str, only: bool = False) -> None:
    """A no-value marker came through as one: no number, not valid, flagged ``no_value`` and
    ``also`` (and nothing else when ``only``)."""
    assert sample.value is None, f"a no-value marker became the number {sample.value}: {sample}"
    assert sample.valid is False, f"a sample without a value is marked valid: {sample}"
    expected = {"no_value", *also}
    if only:
        assert sample.flags == expected, f"flags {set(sample.flags)}, expected exactly {expected}"
    else:
        assert expected <= sample.flags, f"flags {set(sample.flags)} lack {expected - sample.flags}"


# -- records --------------------------------------------------------------------------------------


def assert_registered(
    protocol: str, cls: type[ParserT], options: Mapping[str, Any] | None = None, **link_settings: object
) -> ParserT:
    """``protocol`` names ``cls``; a parser made by that name with ``options`` is one, and its port
    opens with ``link_settings`` (the settings named). Returns the parser."""
    assert PARSERS[protocol] is cls, f"{protocol!r} names {PARSERS.get(protocol)}"
    parser = make_parser(protocol, "monitor", **(options or {}))
    assert isinstance(parser, cls), parser
    opens_with = {name: getattr(parser.link_settings, name) for name in link_settings}
    assert opens_with == dict(link_settings), f"{protocol}'s port opens with other settings"
    return parser


def by_parameter(samples: Iterable[VitalSample]) -> dict[Parameter, VitalSample]:
    """The samples keyed by parameter: one each, as one record gives them."""
    out: dict[Parameter, VitalSample] = {}
    for s in samples:
        assert s.parameter not in out, f"two {s.parameter} samples: {out[s.parameter]} and {s}"
        out[s.parameter] = s
    return out


def read_one_record(parser: MonitorParser, data: bytes, host_ns: int = 7) -> dict[Parameter, VitalSample]:
    """The samples of the one record ``data`` holds, by parameter."""
    samples = parser.feed(data, host_ns)
    assert parser.stats.records_ok == 1, parser.stats
    return by_parameter(samples)


def assert_not_a_record(parser: MonitorParser, data: bytes, *, garbage_bytes: int) -> None:
    """``data``, one complete line or frame, is rejected whole: nothing read, one bad record, and
    ``garbage_bytes`` of it counted as garbage."""
    assert parser.feed(data, 0) == [], f"read as a record: {data!r}"
    assert parser.stats.records_bad == 1, parser.stats
    assert parser.stats.garbage_bytes == garbage_bytes, parser.stats


def parse_clean(parser: MonitorParser, data: bytes) -> list[VitalSample]:
    """What ``parser`` reads from ``data``, which holds no bad record and no garbage (a
    simulator's own output)."""
    samples = parser.feed(data, 0)
    assert parser.stats.records_bad == 0, f"a simulator wrote a bad record: {parser.stats}"
    assert parser.stats.garbage_bytes == 0, f"a simulator wrote garbage: {parser.stats}"
    return samples


# -- a simulator at one end of a line, a link at the other ----------------------------------------

# Reconnect within a fraction of a second, so a test that drops the line does not wait out the
# production backoff.
FAST_RETRY: dict[str, Any] = {"backoff_initial_s": 0.05, "backoff_max_s": 0.2}


def pty_link(
    monitor: str,
    pair: PtyPair,
    parser: MonitorParser,
    on_samples: Callable[[list[VitalSample]], None],
    **options: Any,
) -> SerialLink:
    """A link reading the pty's slave end as the monitor's port, retrying fast unless ``options``
    say otherwise."""
    return SerialLink(monitor, pair.slave_path, parser, on_samples, **{**FAST_RETRY, **options})


@contextmanager
def running(
    link: SerialLink, device: Startable | None = None, *, device_first: bool = False
) -> Iterator[SerialLink]:
    """Run ``link``, and the ``device`` at the other end of its line, for the ``with`` body; then
    stop them in the reverse order, also when the body fails.

    A monitor that waits to be asked (``device_first``) must be listening when the link's greeting
    goes out. Otherwise the link's port is opened first, so nothing a monitor sends on its own is
    lost before the port is open.
    """
    started: list[Startable] = []
    try:
        if device is not None and device_first:
            device.start()
            started.append(device)
        link.start()
        started.append(link)
        if not device_first:
            assert wait_for(lambda: link.health().port_open), f"the port never opened: {link.health()}"
            if device is not None:
                device.start()
                started.append(device)
        yield link
    finally:
        for part in reversed(started):
            part.stop()


def sensor_off_then_on(sim: MonitorSimulator, collector: Collector, parameter: Parameter) -> None:
    """With ``parameter`` flowing, take the sensor off until two invalid samples of it have come
    through, then put it back on until a valid one follows."""
    assert wait_for(lambda: len(collector.values(parameter)) >= 1), f"no valid {parameter} before"
    sim.sensor_off()
    assert wait_for(lambda: len(collector.values(parameter, valid=False)) >= 2), f"no invalid {parameter}"
    sim.sensor_on()
    before = len(collector.values(parameter))
    assert wait_for(lambda: len(collector.values(parameter)) > before), f"no valid {parameter} after"


@contextmanager
def falls_silent(
    sim: GoesSilent, collector: Collector, parameter: Parameter, *, recover_s: float
) -> Iterator[None]:
    """Once samples flow, the monitor is silent for the ``with`` body; then it comes back, and more
    than two further ``parameter`` samples must arrive within ``recover_s``."""
    assert wait_for(lambda: collector.count() > 0), "no samples before the monitor fell silent"
    sim.go_silent()
    yield
    sim.come_back()
    before = len(collector.values(parameter))
    assert wait_for(lambda: len(collector.values(parameter)) > before + 2, recover_s), (
        f"the monitor came back, but no more {parameter} within {recover_s} s"
    )


def assert_only_values(collector: Collector, expected: Mapping[Parameter, float]) -> None:
    """Each parameter's valid samples all carried its one expected (steady) value."""
    seen = {parameter: set(collector.values(parameter)) for parameter in expected}
    steady = {parameter: {value} for parameter, value in expected.items()}
    assert seen == steady, "valid samples with other values than the steady ones"


@dataclass
class PipeRun(Generic[DeviceT]):
    """What ``run_on_a_pipe`` saw of a device."""

    device: DeviceT
    data: bytes  # what it wrote; empty when nobody read
    elapsed_s: float  # from start() until stop() returned
    stop_s: float  # how long stop() took


def run_on_a_pipe(
    make_device: Callable[[int], DeviceT], run_s: float, *, read: bool = True
) -> PipeRun[DeviceT]:
    """Run a device that writes into a pipe for ``run_s``. With ``read=False`` the read end is
    closed first, so every write fails, as on a port nobody reads."""
    r, w = os.pipe()
    if not read:
        os.close(r)
    try:
        device = make_device(w)
        started = time.monotonic()
        device.start()
        try:
            time.sleep(run_s)
        finally:
            stopping = time.monotonic()
            device.stop()
        stopped = time.monotonic()
        data = b""
        while read and select.select([r], [], [], 0)[0]:
            data += os.read(r, 65536)
    finally:
        if read:
            os.close(r)
        os.close(w)
    return PipeRun(device, data, stopped - started, stopped - stopping)


def mean_of(readings: Iterable[object], name: str) -> float:
    """The mean of one field over a simulator's readings, to check the trend of its course."""
    return statistics.mean(float(getattr(reading, name)) for reading in readings)


def read_for(source: socket.socket | int, duration_s: float) -> bytes:
    """All that arrives on ``source`` (a socket, or a descriptor) in the next ``duration_s``."""
    data = b""
    deadline = time.monotonic() + duration_s
    while (left := deadline - time.monotonic()) > 0:
        if select.select([source], [], [], left)[0]:
            data += source.recv(65536) if isinstance(source, socket.socket) else os.read(source, 65536)
    return data


# -- waiting, collecting, a monitor behind a TCP port ------------------------------------------


def wait_for(predicate: Callable[[], bool], timeout_s: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


class Collector:
    """An ``on_samples`` callback that keeps what it is given (called on the link's thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.samples: list[VitalSample] = []
        self.calls = 0

    def __call__(self, samples: list[VitalSample]) -> None:
        with self._lock:
            self.calls += 1
            self.samples.extend(samples)

    def values(self, parameter: Parameter, *, valid: bool = True) -> list[float | None]:
        with self._lock:
            return [s.value for s in self.samples if s.parameter is parameter and s.valid is valid]

    def count(self) -> int:
        with self._lock:
            return len(self.samples)


class _SocketOut:
    def __init__(self, conn: socket.socket) -> None:
        self._conn = conn

    def write(self, data: bytes) -> int:
        self._conn.sendall(data)
        return len(data)


class MonitorServer:
    """A serial-to-Ethernet converter stand-in: a simulator behind a TCP port.

    ``stop()`` takes it away (connections and listener closed); ``start()`` brings it back on the
    same port, as a converter that rebooted would. ``silent=True`` accepts and sends nothing.
    """

    def __init__(self, *, interval_s: float = 0.05, silent: bool = False) -> None:
        self.interval_s = interval_s
        self.silent = silent
        self.port = 0
        self.accepted = 0
        self._listener: socket.socket | None = None
        self._conns: list[tuple[socket.socket, MasimoSimulator | None]] = []
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"socket://127.0.0.1:{self.port}"

    def start(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(4)
        listener.settimeout(0.05)
        self.port = listener.getsockname()[1]
        self._listener = listener
        self._thread = threading.Thread(target=self._accept, args=(listener,), daemon=True)
        self._thread.start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # listener closed
            conn.settimeout(1.0)
            sim = None
            if not self.silent:
                sim = MasimoSimulator(
                    _SocketOut(conn),
                    interval_s=self.interval_s,
                    script=STEADY,
                    start_time=datetime(2024, 5, 1, 10, 0, 0),
                )
                sim.start()
            with self._lock:
                self.accepted += 1
                self._conns.append((conn, sim))

    def stop(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        if self._thread is not None:
            self._thread.join(1.0)
            self._thread = None
        with self._lock:
            conns, self._conns = self._conns, []
        for conn, sim in conns:
            if sim is not None:
                sim.stop()
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()
