"""The exported model as plain data: quantities, rules, states and events (no SBML yet).

:func:`pdmodel.export._model_text.build_export_model` fills an :class:`ExportModel`; the
writers turn it into Antimony text (:mod:`._antimony`) or SBML Level 3 (:mod:`._sbml`).
Formulas are SBML Level 3 infix strings (``libsbml.parseL3Formula`` and Antimony read both);
``time`` is the model time in days.
"""

from __future__ import annotations

from typing import NamedTuple

NEVER = 1e9
"""Time (days) standing for "not happened" in event bookkeeping (about 2.7 million years)."""

UNITS: dict[str, tuple[str, tuple[tuple[str, float, int, float], ...]]] = {
    # id: (name, ((SBML unit kind, exponent, scale, multiplier), ...))
    "day": ("day", (("second", 1.0, 0, 86400.0),)),
    "per_day": ("1/day", (("second", -1.0, 0, 86400.0),)),
    "mg": ("mg", (("gram", 1.0, -3, 1.0),)),
    "kg": ("kg", (("gram", 1.0, 3, 1.0),)),
    "litre": ("L", (("litre", 1.0, 0, 1.0),)),
    "L_per_day": ("L/day", (("litre", 1.0, 0, 1.0), ("second", -1.0, 0, 86400.0))),
    "mg_per_day": ("mg/day", (("gram", 1.0, -3, 1.0), ("second", -1.0, 0, 86400.0))),
    "mg_per_L": ("mg/L = µg/mL", (("gram", 1.0, -3, 1.0), ("litre", -1.0, 0, 1.0))),
    "mg_per_kg": ("mg/kg", (("gram", 1.0, -3, 1.0), ("gram", -1.0, 3, 1.0))),
    "mg_per_kg_per_day": ("mg/kg/day", (("gram", 1.0, -3, 1.0), ("gram", -1.0, 3, 1.0),
                                        ("second", -1.0, 0, 86400.0))),
    "dimensionless": ("1", (("dimensionless", 1.0, 0, 1.0),)),
}
"""Unit definitions used by the export (days, mg, L, µg/mL, ...), SBML unit kinds."""

BUILTIN_UNITS = frozenset({"litre", "dimensionless"})
"""Units of :data:`UNITS` that SBML predefines (not written as unit definitions)."""

SBO_PARAMETER = 2  # quantitative systems description parameter
SBO_KINETIC = 9  # kinetic constant
SBO_MICHAELIS = 27  # Michaelis constant
SBO_VMAX = 186  # maximal velocity
SBO_HILL = 190  # Hill coefficient
SBO_CONCENTRATION = 196  # concentration of an entity pool
SBO_DURATION = 347  # duration
SBO_TIME = 345  # time
SBO_DECAY = 356  # decay constant
SBO_AMOUNT = 361  # amount of an entity pool
SBO_COEFFICIENT = 381  # biochemical proportionality coefficient
SBO_SWITCH = 389  # switch value
SBO_VOLUME = 468  # volume
SBO_PROBABILISTIC = 539  # probabilistic parameter
SBO_FRACTION = 540  # fraction of an entity pool
SBO_CONTINUOUS = 62  # continuous framework (the model)


class Quantity(NamedTuple):
    """One named quantity of the model.

    ``kind``: ``"constant"`` (``value``), ``"initial"`` (constant from the initial assignment
    ``formula``), ``"rule"`` (assignment rule ``formula``, recomputed at every time),
    ``"state"`` (ODE ``rate`` per day, initial ``value`` or ``formula``) or ``"variable"``
    (``value`` changed only by events). ``unit`` is a key of :data:`UNITS`; ``source`` the
    publication or fit the value comes from (empty: structural or derived).
    """

    id: str
    unit: str
    description: str
    value: float | None = None
    formula: str | None = None
    kind: str = "constant"
    rate: str | None = None
    source: str = ""
    sbo: int = SBO_PARAMETER


class Event(NamedTuple):
    """A discrete event: when ``trigger`` turns true, each ``(variable, formula)`` assignment
    is applied with values from the trigger time (SBML semantics, no delay)."""

    id: str
    trigger: str
    assignments: tuple[tuple[str, str], ...]
    description: str


class ExportModel(NamedTuple):
    """A whole exported model: identifiers, notes, quantities (in order), events.

    ``provenance`` maps short keys (``regimen``, ``parameters``, ``patient``, ``policy``,
    ``pdmodel``) to text; ``limitations`` lists what the file does not represent.
    """

    id: str
    name: str
    provenance: dict[str, str]
    quantities: tuple[Quantity, ...]
    events: tuple[Event, ...]
    limitations: tuple[str, ...]

    def quantity(self, id: str) -> Quantity:
        """The quantity named ``id`` (``KeyError`` if none)."""
        for q in self.quantities:
            if q.id == id:
                return q
        raise KeyError(id)

    @property
    def states(self) -> tuple[str, ...]:
        """Ids of the ODE states, in order."""
        return tuple(q.id for q in self.quantities if q.kind == "state")
