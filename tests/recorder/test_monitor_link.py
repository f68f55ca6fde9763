"""A configured monitor's port opens with its protocol's settings, each overridable by config."""

from __future__ import annotations

from config.models import MonitorConfig
from recorder.monitor_link import link_for, port_overrides, port_words


def test_flow_control_and_data_bits_can_be_overridden() -> None:
    mon = MonitorConfig(name="vent", protocol="medibus", port="/dev/ttyUSB1", xonxoff=True, bytesize=7)
    assert port_overrides(mon) == {"xonxoff": True, "bytesize": 7}
    link = link_for(mon, lambda samples: None)
    assert link._port_settings["xonxoff"] is True and link._port_settings["bytesize"] == 7
    assert port_words(mon, link.parser) == "9600 baud 7E1 XON/XOFF"


def test_unset_overrides_keep_the_protocols_settings() -> None:
    mon = MonitorConfig(name="patient", protocol="ge_s5", port="/dev/ttyUSB0")
    assert port_overrides(mon) == {}
    link = link_for(mon, lambda samples: None)
    assert (link._port_settings["xonxoff"], link._port_settings["bytesize"]) == (False, 8)
    assert port_words(mon, link.parser) == "19200 baud 8E1 RTS/CTS"
