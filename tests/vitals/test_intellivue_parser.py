"""IntelliVue poll replies → samples: worked frames, FLOAT, states, labels, time, chunking, garbage."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from functools import partial

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from vitals_testkit import (
    CHUNK_NS,
    SampleRules,
    assert_chunking_invariant,
    assert_no_value,
    assert_registered,
    assert_resyncs_after,
    assert_samples_sane,
    damaged,
    seeded_chunkings,
)

from vitals.intellivue import (
    NOM_ATTR_ID_LABEL,
    NOM_ATTR_ID_LABEL_STRING,
    NOM_ATTR_NU_CMPD_VAL_OBS,
    NOM_ATTR_NU_VAL_OBS,
    NOM_METRIC_NOS,
    IntelliVueParser,
    decode_float,
    decode_label_string,
    encode_float,
    encode_label_string,
    u32,
)
from vitals.intellivue_framing import encode_frame
from vitals.sample import Parameter, VitalSample
from vitals.simulators.intellivue import (
    accept_message,
    compound_value,
    mds_create_event,
    numeric_value,
    observation,
    poll_reply,
)

# PROTOCOLS.md §2.10, the synthetic extended-poll reply: HR 142, SpO2 91, pleth pulse NaN.
WORKED_REPLY = bytes.fromhex(
    "C0 11 01 00 74 E1 00 00 02 00 02 00 6C 00 01 00 07 00 66 00 21 00 00 00 00 F1 3B 00 5C "
    "00 01 00 00 00 12 D6 87 20 24 05 17 10 30 15 00 00 01 00 06 00 00 00 01 00 42 "
    "00 00 00 03 00 3C "
    "01 01 00 01 00 0E 09 50 00 0A 41 82 00 00 0A A0 00 00 00 8E "
    "01 02 00 01 00 0E 09 50 00 0A 4B B8 00 00 02 20 00 00 00 5B "
    "01 03 00 01 00 0E 09 50 00 0A 48 22 00 00 0A A0 00 7F FF FF "
    "81 CE C1"
)
NAN = 0x007FFFFF
BPM, PERCENT, MMHG, CMH2O, ML = 0x0AA0, 0x0220, 0x0F20, 0x0F40, 0x0652


def nu(
    handle: int, physio: int, value: float | int | None, unit: int, *, state: int = 0, decimals: int = 0
) -> bytes:
    raw = NAN if value is None else encode_float(value, decimals)
    return observation(handle, (NOM_ATTR_NU_VAL_OBS, numeric_value(physio, state, unit, raw)))


def reply(*observations: bytes, rel: int = 0, abs_time: datetime | None = None, **kw: object) -> bytes:
    return encode_frame(poll_reply(1, list(observations), rel_time=rel, abs_time=abs_time, **kw))  # type: ignore[arg-type]


def feed(*frames: bytes, parser: IntelliVueParser | None = None) -> list[VitalSample]:
    parser = parser or IntelliVueParser("iv")
    return parser.feed(b"".join(frames), 5)


def one(frame: bytes) -> VitalSample:
    samples = feed(frame)
    assert len(samples) == 1, samples
    return samples[0]


def test_registered_with_its_link_settings() -> None:
    assert_registered(
        "intellivue", IntelliVueParser, baudrate=115200, bytesize=8, parity="N", stopbits=1,
        xonxoff=False, rtscts=False,
    )  # fmt: skip


def test_worked_poll_reply() -> None:
    parser = IntelliVueParser("bed 3")
    samples = parser.feed(WORKED_REPLY, 77)
    assert [(s.parameter, s.value, s.unit, s.source, s.valid) for s in samples] == [
        (Parameter.HR, 142.0, "/min", "ECG", True),
        (Parameter.SPO2, 91.0, "%", "pleth", True),
        (Parameter.PR, None, "/min", "pleth", False),
    ]
    assert samples[2].flags == {"no_value"}
    assert samples[0].flags == frozenset() and not samples[0].alarm
    assert {s.host_ns for s in samples} == {77} and {s.monitor for s in samples} == {"bed 3"}
    # No MDS-create time base yet: the reply's own absolute stamp is the monitor time.
    assert {s.monitor_time for s in samples} == {datetime(2024, 5, 17, 10, 30, 15)}
    assert (parser.stats.records_ok, parser.stats.records_bad, parser.stats.garbage_bytes) == (1, 0, 0)
    assert parser.stats.bytes_in == len(WORKED_REPLY)


def test_the_simulators_encoder_reproduces_the_worked_reply() -> None:
    frame = reply(
        nu(0x0101, 0x4182, 142, BPM),
        nu(0x0102, 0x4BB8, 91, PERCENT),
        nu(0x0103, 0x4822, None, BPM),
        rel=1_234_567,
        abs_time=datetime(2024, 5, 17, 10, 30, 15),
    )
    assert frame == WORKED_REPLY


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        (0xFEFE7960, -1000.0),  # Float.java main()
        (0xFD007D00, 32.0),  # Float.java main()
        (0xFF00016D, 36.5),
        (0x0000008E, 142.0),
        (0x02000003, 300.0),
        (0x00FFFFFF, -1.0),
    ],
)
def test_float_values(raw: int, value: float) -> None:
    assert decode_float(raw).value == value
    assert decode_float(raw).special is None


@pytest.mark.parametrize(
    ("mantissa", "special"),
    [
        (0x7FFFFF, "nan"),
        (0x800000, "nres"),
        (0x7FFFFE, "infinite"),
        (0x800002, "infinite"),
        (0x800001, "reserved"),
    ],
)
@pytest.mark.parametrize("exponent", [0x00, 0xFF, 0x7F, 0x80])
def test_float_specials_are_never_numbers(mantissa: int, special: str, exponent: int) -> None:
    assert decode_float(exponent << 24 | mantissa) == decode_float(mantissa)
    assert decode_float(mantissa).value is None
    assert decode_float(mantissa).special == special


@given(value=st.integers(-8_000_000, 8_000_000), decimals=st.integers(0, 4))
def test_float_round_trip(value: int, decimals: int) -> None:
    x = value / 10**decimals
    assert decode_float(encode_float(x, decimals)).value == pytest.approx(x, abs=10**-decimals / 2)


@pytest.mark.parametrize(
    ("state", "valid", "flags"),
    [
        (0x8000, False, {"invalid"}),
        (0x4000, False, {"questionable"}),
        (0x2000, False, {"unavailable"}),
        (0x1000, False, {"calibration_ongoing"}),
        (0x0800, False, {"test_data"}),
        (0x0400, True, {"demo_data"}),
        (0x0040, True, {"early_indication"}),
        (0x0020, True, {"msmt_ongoing"}),
        (0x0001, True, {"alarm_inhibited"}),
        (0x0080, True, set()),
        (0x0200, True, {"state_0x0200"}),
        (0x8400, False, {"invalid", "demo_data"}),
    ],
)
def test_measurement_state(state: int, valid: bool, flags: set[str]) -> None:
    s = one(reply(nu(1, 0x4182, 120, BPM, state=state)))
    assert s.value == 120.0  # the number is kept for the record, validity says whether to show it
    assert (s.valid, s.flags) == (valid, flags)
    assert not s.alarm


def test_in_alarm_sets_alarm() -> None:
    s = one(reply(nu(1, 0x4BB8, 80, PERCENT, state=0x0002)))
    assert s.alarm and s.valid and s.flags == {"in_alarm"}


@pytest.mark.parametrize(
    ("physio", "unit", "value", "parameter", "unit_text", "source"),
    [
        (0x4182, BPM, 150, Parameter.HR, "/min", "ECG"),
        (0x4822, BPM, 148, Parameter.PR, "/min", "pleth"),
        (0x480A, BPM, 148, Parameter.PR, "/min", "pulse"),
        (0x4BB8, PERCENT, 93, Parameter.SPO2, "%", "pleth"),
        (0x500A, 0x0AE0, 45, Parameter.RR, "/min", "impedance"),
        (0x5012, 0x0AE0, 40, Parameter.RR, "/min", "airway"),
        (0x5284, PERCENT, 30, Parameter.FIO2, "%", "airway"),
        (0x7498, PERCENT, 40, Parameter.FIO2, "%", "ventilator"),
        (0x51A8, CMH2O, 5, Parameter.PEEP, "cmH2O", ""),
        (0x5109, CMH2O, 22, Parameter.PIP, "cmH2O", ""),
        (0x510B, CMH2O, 11, Parameter.MAP_AW, "cmH2O", ""),
        (0x513C, ML, 18, Parameter.VTE, "mL", ""),
        (0x50B0, MMHG, 38, Parameter.ETCO2, "mmHg", "airway"),
        (0x50B0, 0x0F03, 5.1, Parameter.ETCO2, "kPa", "airway"),
        (0x4B48, 0x17A0, 36.8, Parameter.TEMP, "°C", ""),
        (0x4BB0, 0x0200, 1.4, Parameter.PI, "", "pleth"),
    ],
)
def test_physio_ids_and_units(
    physio: int, unit: int, value: float, parameter: Parameter, unit_text: str, source: str
) -> None:
    s = one(reply(nu(7, physio, value, unit, decimals=1)))
    assert (s.parameter, s.value, s.unit, s.source, s.valid) == (parameter, value, unit_text, source, True)


def test_unknown_physio_ids_are_counted_not_sampled() -> None:
    parser = IntelliVueParser("iv")
    samples = parser.feed(reply(nu(1, 0x4A15, 60, MMHG), nu(2, 0x418A, 140, BPM), nu(3, 0x4182, 140, BPM)), 0)
    assert [s.parameter for s in samples] == [Parameter.HR]  # ABP and beat-to-beat HR are not recorded
    assert parser.unmapped_numerics == 2


def test_units_that_do_not_fit_invalidate() -> None:
    odd = one(reply(nu(1, 0x4182, 140, 0x1234)))
    assert (odd.value, odd.unit, odd.valid) == (140.0, "", False) and odd.flags == {"unknown_unit"}
    wrong = one(reply(nu(1, 0x4182, 140, MMHG)))
    assert (wrong.unit, wrong.valid) == ("mmHg", False) and wrong.flags == {"unexpected_unit"}


@pytest.mark.parametrize(
    ("physio", "unit", "value"),
    [
        (0x4BB8, PERCENT, 101),
        (0x4BB8, PERCENT, -1),
        (0x4182, BPM, 351),
        (0x5284, PERCENT, 120),
        (0x51A8, CMH2O, -3),
    ],
)
def test_out_of_range_is_invalid(physio: int, unit: int, value: int) -> None:
    s = one(reply(nu(1, physio, value, unit)))
    assert s.value == value and not s.valid and s.flags == {"out_of_range"}


def test_compound_nbp() -> None:
    compound = compound_value(
        numeric_value(0x4A05, 0, MMHG, encode_float(62)),
        numeric_value(0x4A06, 0, MMHG, encode_float(35)),
        numeric_value(0x4A07, 0x0020, MMHG, encode_float(44)),
    )
    samples = feed(
        reply(observation(0x0105, (NOM_ATTR_ID_LABEL, u32(0x24A04)), (NOM_ATTR_NU_CMPD_VAL_OBS, compound)))
    )
    assert [(s.parameter, s.value, s.unit, s.valid) for s in samples] == [
        (Parameter.NBP_SYS, 62.0, "mmHg", True),
        (Parameter.NBP_DIA, 35.0, "mmHg", True),
        (Parameter.NBP_MEAN, 44.0, "mmHg", True),
    ]
    assert samples[2].flags == {"msmt_ongoing"}


def test_nbp_not_yet_measured_is_no_value() -> None:
    compound = compound_value(*(numeric_value(p, 0, MMHG, NAN) for p in (0x4A05, 0x4A06, 0x4A07)))
    samples = feed(reply(observation(0x0105, (NOM_ATTR_NU_CMPD_VAL_OBS, compound))))
    assert [(s.value, s.valid, s.flags) for s in samples] == [(None, False, {"no_value"})] * 3


def test_linked_results_and_single_polls_decode_the_same() -> None:
    objects = (nu(1, 0x4182, 150, BPM), nu(2, 0x4BB8, 92, PERCENT))
    plain = [(s.parameter, s.value) for s in feed(reply(*objects))]
    assert plain == [(Parameter.HR, 150.0), (Parameter.SPO2, 92.0)]
    for state in (1, 2, 3):
        assert [(s.parameter, s.value) for s in feed(reply(*objects, linked=(state, 1)))] == plain
    assert [(s.parameter, s.value) for s in feed(reply(*objects, extended=False))] == plain
    assert [(s.parameter, s.value) for s in feed(reply(*objects, extended=False, linked=(1, 1)))] == plain


def test_unknown_attributes_and_contexts_are_skipped() -> None:
    handle_obj = observation(
        9,
        (0x0921, b"\x00\x09"),  # NOM_ATTR_ID_HANDLE
        (0x1234, b"\x01\x02\x03"),  # unknown, odd length
        (NOM_ATTR_NU_VAL_OBS, numeric_value(0x4182, 0, BPM, encode_float(133))),
        (0x096D, b""),  # empty
    )
    wave = observation(10, (0x096E, b"\x41\x82\x00\x00\x00\x04\x01\x02\x03\x04"))  # samples, not numerics
    s = feed(reply(wave, handle_obj))
    assert [(x.parameter, x.value) for x in s] == [(Parameter.HR, 133.0)]


def test_label_string_fallback_for_metric_nos() -> None:
    parser = IntelliVueParser("iv")
    first = reply(
        observation(
            0x0201,
            (NOM_ATTR_ID_LABEL_STRING, encode_label_string("PEEP")),
            (NOM_ATTR_NU_VAL_OBS, numeric_value(NOM_METRIC_NOS, 0, CMH2O, encode_float(6))),
        ),
        observation(
            0x0202,
            (NOM_ATTR_NU_VAL_OBS, numeric_value(NOM_METRIC_NOS, 0, PERCENT, encode_float(35))),
            (NOM_ATTR_ID_LABEL_STRING, encode_label_string("FiO2")),  # after the value: still used
        ),
        observation(
            0x0203,
            (NOM_ATTR_ID_LABEL_STRING, encode_label_string("sFiO2")),  # a setting, not a measurement
            (NOM_ATTR_NU_VAL_OBS, numeric_value(NOM_METRIC_NOS, 0, PERCENT, encode_float(35))),
        ),
        observation(0x0204, (NOM_ATTR_NU_VAL_OBS, numeric_value(NOM_METRIC_NOS, 0, CMH2O, encode_float(9)))),
    )
    samples = parser.feed(first, 0)
    assert [(s.parameter, s.value, s.source) for s in samples] == [
        (Parameter.PEEP, 6.0, "external"),
        (Parameter.FIO2, 35.0, "external"),
    ]
    assert parser.unmapped_numerics == 2
    # Later replies carry only values: the labels are remembered per object handle.
    later = reply(
        observation(0x0201, (NOM_ATTR_NU_VAL_OBS, numeric_value(NOM_METRIC_NOS, 0, CMH2O, encode_float(7)))),
        observation(
            0x0202, (NOM_ATTR_NU_VAL_OBS, numeric_value(NOM_METRIC_NOS, 0, PERCENT, encode_float(30)))
        ),
    )
    assert [(s.parameter, s.value) for s in parser.feed(later, 0)] == [
        (Parameter.PEEP, 7.0),
        (Parameter.FIO2, 30.0),
    ]
    # A new association may hand out the same handles to other objects.
    parser.feed(encode_frame(mds_create_event(1, 0, None, 0)), 0)
    assert parser.feed(later, 0) == []


@pytest.mark.parametrize(
    ("label", "parameter"),
    [
        ("PIP", Parameter.PIP),
        ("TV", Parameter.VTE),
        ("VTe", Parameter.VTE),
        ("VTi", Parameter.VTI),
        ("Leak", Parameter.LEAK),
    ],
)
def test_common_ventilator_labels(label: str, parameter: Parameter) -> None:
    unit = {Parameter.PIP: CMH2O, Parameter.LEAK: PERCENT}.get(parameter, ML)
    s = one(
        reply(
            observation(
                3,
                (NOM_ATTR_ID_LABEL_STRING, encode_label_string(label)),
                (NOM_ATTR_NU_VAL_OBS, numeric_value(NOM_METRIC_NOS, 0, unit, encode_float(12))),
            )
        )
    )
    assert (s.parameter, s.source, s.valid) == (parameter, "external", True)


@pytest.mark.parametrize(
    ("label", "parameter"), [(None, Parameter.VTE), ("TV", Parameter.VTE), ("TVin", Parameter.VTI)]
)
def test_tidal_volume_is_expiratory_unless_labelled_inspiratory(
    label: str | None, parameter: Parameter
) -> None:
    avas = [(NOM_ATTR_NU_VAL_OBS, numeric_value(0x513C, 0, ML, encode_float(17)))]
    if label:
        avas.insert(0, (NOM_ATTR_ID_LABEL_STRING, encode_label_string(label)))
    assert one(reply(observation(4, *avas))).parameter is parameter


def test_label_strings_decode_utf16_and_ascii() -> None:
    assert decode_label_string(encode_label_string("SpO\u2082")) == "SpO\u2082"
    assert decode_label_string(b"\x00\x06\x00P\x00I\x00P") == "PIP"
    assert decode_label_string(b"\x00\x06PIP\x00\x00\x00") == "PIP"
    assert decode_label_string(b"\x00\x04PEEP") == "PEEP"
    assert decode_label_string(b"\x00\x40") == ""  # length beyond the data: what is there
    assert decode_label_string(b"") == ""


BASE = datetime(2024, 5, 1, 10, 0, 0)


def test_monitor_time_from_the_mds_create_time_base() -> None:
    parser = IntelliVueParser("iv")
    parser.feed(encode_frame(mds_create_event(1, 0, BASE, 1_000_000)), 0)
    # The reply's own absolute stamp is ignored when the base is known (often unset anyway).
    later = reply(nu(1, 0x4182, 140, BPM), rel=1_000_000 + 90 * 8000 + 4, abs_time=datetime(1999, 1, 1))
    assert {s.monitor_time for s in parser.feed(later, 0)} == {BASE + timedelta(seconds=90, microseconds=500)}
    earlier = reply(nu(1, 0x4182, 140, BPM), rel=1_000_000 - 8000)
    assert parser.feed(earlier, 0)[0].monitor_time == BASE - timedelta(seconds=1)


def test_monitor_time_across_the_relative_counter_wrap() -> None:
    parser = IntelliVueParser("iv")
    parser.feed(encode_frame(mds_create_event(1, 0, BASE, 0xFFFFFFFF - 7999)), 0)
    s = parser.feed(reply(nu(1, 0x4182, 140, BPM), rel=16_000), 0)[0]
    assert s.monitor_time == BASE + timedelta(seconds=3)


def test_no_time_at_all_is_none() -> None:
    assert one(reply(nu(1, 0x4182, 140, BPM))).monitor_time is None  # 0xFF-filled absolute time
    parser = IntelliVueParser("iv")
    parser.feed(encode_frame(mds_create_event(1, 0, None, 500)), 0)  # base without absolute time
    assert parser.feed(reply(nu(1, 0x4182, 140, BPM)), 0)[0].monitor_time is None


@pytest.mark.parametrize(
    "cut",
    [
        lambda m: m[:-1],  # last byte of the last value missing
        lambda m: m[:30],
        lambda m: m[:46] + b"\x00\x01\xff\xff" + m[50:],  # PollInfoList length beyond the end
        lambda m: m[:52] + b"\x00\x09" + m[54:],  # more observations than there are
        lambda m: m[:58] + b"\x00\x02" + m[60:],  # two attributes where there is one
        lambda m: m[:64] + b"\x00\x02" + m[66:],  # a NuObsValue only 2 bytes long
    ],
)
def test_truncated_structures_are_bad_records(cut: object) -> None:
    message = poll_reply(1, [nu(1, 0x4182, 140, BPM)], rel_time=0)
    parser = IntelliVueParser("iv")
    assert parser.feed(encode_frame(cut(message)), 0) == []  # type: ignore[operator]
    assert (parser.stats.records_ok, parser.stats.records_bad) == (0, 1)
    assert len(parser.feed(encode_frame(message), 0)) == 1


def test_other_messages_are_understood_and_ignored() -> None:
    parser = IntelliVueParser("iv")
    roer = b"\xe1\x00\x00\x02\x00\x03\x00\x06\x00\x01\x00\x03\x00\x00"
    event = b"\xe1\x00\x00\x02\x00\x01\x00\x06\x00\x01\x00\x00\x00\x00"  # unconfirmed event report
    assert parser.feed(encode_frame(roer) + encode_frame(event) + encode_frame(accept_message()), 0) == []
    assert (parser.stats.records_ok, parser.stats.records_bad, parser.errors_received) == (3, 0, 1)
    assert parser.feed(encode_frame(b"\x42junk"), 0) == []
    assert parser.stats.records_bad == 1


# -- chunking, garbage, corruption ------------------------------------------------------------------


def stream(seed: int = 3) -> bytes:
    """An association's worth of traffic from a monitor, with noise between frames."""
    rng = random.Random(seed)
    frames = [encode_frame(accept_message()), encode_frame(mds_create_event(1, 0, BASE, 10_000))]
    for i in range(12):
        frames.append(
            reply(
                observation(
                    0x0201,
                    (NOM_ATTR_ID_LABEL_STRING, encode_label_string("PIP")),
                    (NOM_ATTR_NU_VAL_OBS, numeric_value(NOM_METRIC_NOS, 0, CMH2O, encode_float(20 + i, 1))),
                ),
                nu(1, 0x4182, rng.randint(90, 160), BPM),
                nu(2, 0x4BB8, rng.choice([None, 60 + i]), PERCENT, state=rng.choice([0, 0x2000, 0x0400])),
                rel=10_000 + i * 8000,
                linked=(1, 1) if i % 3 == 0 else None,
            )
        )
    out = b""
    for frame in frames:
        out += rng.choice([b"", b"\x00\x00", b"\xc1", b"\x7d\x7d", b"\xc0\x11\x01", b"noise"]) + frame
    return out


STREAM = stream()


new_parser = partial(IntelliVueParser, "iv")


def test_stream_reference() -> None:
    parser = new_parser()
    samples = parser.feed(STREAM, CHUNK_NS)
    assert len(samples) == 12 * 3
    assert parser.stats.records_ok == 14 and parser.stats.garbage_bytes > 0
    pip = [s.value for s in samples if s.parameter is Parameter.PIP]
    assert pip == [20 + i for i in range(12)]
    assert samples[-1].monitor_time == BASE + timedelta(seconds=11)


def test_seeded_random_chunkings_agree() -> None:
    chunkings = seeded_chunkings(STREAM, seed=2024, rounds=150, max_cuts=39)
    assert_chunking_invariant(new_parser, STREAM, chunkings)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cuts=st.lists(st.integers(0, len(STREAM)), max_size=60))
def test_any_chunking_gives_the_same_samples(cuts: list[int]) -> None:
    assert_chunking_invariant(new_parser, STREAM, [cuts])


GOOD = reply(nu(1, 0x4182, 141, BPM), nu(2, 0x4BB8, 95, PERCENT))
# A unit that does not fit the metric makes its number as unfit to show as one out of range.
IV_RULES = SampleRules(invalid_when=frozenset({"out_of_range", "unknown_unit", "unexpected_unit"}))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=1500))
def test_random_bytes_never_raise_and_the_next_frame_is_read(data: bytes) -> None:
    after = assert_resyncs_after(new_parser, data, GOOD, rules=IV_RULES)
    assert [(s.parameter, s.value) for s in after] == [(Parameter.HR, 141.0), (Parameter.SPO2, 95.0)]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    payload=st.binary(max_size=300),
    prefix=st.sampled_from(
        [b"", b"\xe1\x00\x00\x02", b"\xe1\x00\x00\x02\x00\x02", b"\xe1\x00\x00\x02\x00\x05"]
    ),
)
def test_well_framed_nonsense_never_raises(payload: bytes, prefix: bytes) -> None:
    # The FCS is right, so the message layer itself must cope with any content.
    parser = new_parser()
    assert_samples_sane(parser.feed(encode_frame(prefix + payload), 0), IV_RULES)
    assert parser.stats.records_ok + parser.stats.records_bad == 1
    assert len(parser.feed(GOOD, 1)) == 2


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    position=st.integers(0, len(GOOD) - 1),
    value=st.integers(0, 255),
    truncate=st.integers(0, len(GOOD)),
)
def test_corrupted_and_truncated_frames_then_resync(position: int, value: int, truncate: int) -> None:
    corrupted = damaged(GOOD, position, value, truncate=False)
    after = assert_resyncs_after(new_parser, corrupted + GOOD[:truncate], GOOD, rules=IV_RULES)
    assert [s.value for s in after] == [141.0, 95.0]


@settings(max_examples=300, deadline=None)
@given(
    mantissa=st.sampled_from([0x7FFFFF, 0x800000, 0x7FFFFE, 0x800002, 0x800001]),
    exponent=st.integers(0, 255),
    physio=st.sampled_from([0x4182, 0x4BB8, 0x4822, 0x5284, 0x51A8, 0x5109, 0x4A05, NOM_METRIC_NOS]),
    state=st.integers(0, 0xFFFF),
    unit=st.sampled_from([BPM, PERCENT, CMH2O, MMHG, 0x0000, 0xFFFF]),
)
def test_no_value_markers_never_become_numbers(
    mantissa: int, exponent: int, physio: int, state: int, unit: int
) -> None:
    label = (NOM_ATTR_ID_LABEL_STRING, encode_label_string("FiO2"))
    value = (NOM_ATTR_NU_VAL_OBS, numeric_value(physio, state, unit, exponent << 24 | mantissa))
    compound = (
        NOM_ATTR_NU_CMPD_VAL_OBS,
        compound_value(numeric_value(physio, state, unit, exponent << 24 | mantissa)),
    )
    samples = feed(reply(observation(1, label, value), observation(2, label, compound)))
    assert len(samples) == 2
    for s in samples:
        assert_no_value(s)
