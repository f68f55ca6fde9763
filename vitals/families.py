"""The monitor families this recorder speaks, by protocol name: the one list of them.

Each family is imported here by name and listed once in ``PARSERS``. A family module registers
nothing and never imports this one, only the contract (``vitals.parser``), so imports run one way
(this module → families → contract) and none depends on which was imported first. Adding a
family is one import and one row here, its name in ``config.models`` and its rhythm in
``vitals.cadence`` (tests hold the three lists equal).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final

from vitals.ge_s5 import GeS5Parser
from vitals.intellivue import IntelliVueParser
from vitals.line_format import LineFormatParser
from vitals.masimo import MasimoParser
from vitals.medibus import MedibusParser
from vitals.nellcor import NellcorParser
from vitals.nonin import NoninParser
from vitals.parser import MonitorParser

__all__ = ["PARSERS", "make_parser"]

#: Protocol name (as configuration spells it, and as the class's ``protocol`` says) → parser class.
#: Read-only: the set of families is fixed when the program is built, not at run time.
PARSERS: Final[Mapping[str, type[MonitorParser]]] = MappingProxyType(
    {
        "masimo": MasimoParser,
        "intellivue": IntelliVueParser,
        "ge_s5": GeS5Parser,
        "medibus": MedibusParser,
        "nellcor": NellcorParser,
        "nonin": NoninParser,
        "line_format": LineFormatParser,
    }
)


def make_parser(protocol: str, monitor: str, **options: Any) -> MonitorParser:
    """A fresh parser for ``protocol``; ``options`` go to the family's constructor.

    Raises ``ValueError`` naming the known protocols when ``protocol`` is unknown, so a
    configuration error says what would have been accepted.
    """
    try:
        cls = PARSERS[protocol]
    except KeyError:
        known = ", ".join(sorted(PARSERS))
        raise ValueError(f"unknown monitor protocol {protocol!r} (known: {known})") from None
    return cls(monitor, **options)
