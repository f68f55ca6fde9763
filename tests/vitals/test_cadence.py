"""How old a monitor's value may grow: one rule per protocol, from its own sample interval."""

from __future__ import annotations

import pytest

from config.loading import ConfigError, parse_config
from config.models import MonitorConfig
from vitals.cadence import SAMPLE_INTERVAL_S, default_stale_after_s
from vitals.families import PARSERS

RECIPIENT = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"


def station(monitor: str) -> str:
    return f"""
[[cameras]]
name = "closeup"
source = {{ kind = "test_pattern" }}
[storage]
recipients = ["{RECIPIENT}"]
[[monitors]]
name = "patient"
port = "/dev/ttyUSB0"
{monitor}
"""


def test_every_protocol_has_a_sample_interval() -> None:
    assert set(SAMPLE_INTERVAL_S) == set(PARSERS)


@pytest.mark.parametrize("protocol", sorted(SAMPLE_INTERVAL_S))
def test_a_value_survives_one_missed_sample_but_not_two(protocol: str) -> None:
    interval = SAMPLE_INTERVAL_S[protocol]
    assert 2 * interval < default_stale_after_s(protocol) < 3 * interval + 1


@pytest.mark.parametrize(
    ("protocol", "stale_after_s"), [("ge_s5", 11.0), ("intellivue", 3.0), ("masimo", 5.0)]
)
def test_the_default_follows_the_protocol(protocol: str, stale_after_s: float) -> None:
    config = parse_config(station(f'protocol = "{protocol}"'))
    assert config.monitors[0].stale_after_s == stale_after_s


def test_ge_values_stay_current_between_two_five_second_updates() -> None:
    # The bug this replaces: 3 s for every protocol greyed GE values for 2 s of every 5.
    mon = MonitorConfig(name="patient", protocol="ge_s5", port="/dev/ttyUSB0")
    assert mon.stale_after_s > SAMPLE_INTERVAL_S["ge_s5"]


def test_a_configured_value_is_kept() -> None:
    config = parse_config(station('protocol = "ge_s5"\nstale_after_s = 7.5'))
    assert config.monitors[0].stale_after_s == 7.5


def test_a_limit_shorter_than_the_sample_interval_is_refused_naming_the_field() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(station('protocol = "ge_s5"\nstale_after_s = 3.0'), source="station.toml")
    message = str(err.value)
    assert "station.toml: monitors[0]: stale_after_s: 3 s is shorter than the 5 s" in message
    assert "default of 11 s" in message


def test_an_unknown_protocol_is_the_only_complaint() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(station('protocol = "philips"'))
    assert "protocol" in str(err.value) and "stale_after_s" not in str(err.value)
