"""The design space: a regimen template and its decision variables.

A template is regimen text (:meth:`pdmodel.Regimen.parse` grammar) with named placeholders,
e.g. ``"nivolumab {dose} q{interval}w"`` or
``"nivolumab 480 mg q4w + ipilimumab {ipi} q{every}w x{n}"``. Each placeholder is one
decision variable:

* :class:`Dose` — written right after an agent name; the amount of every dose of that
  placeholder, in mg or mg/kg, continuous in ``[lo, hi]`` for the gradient search and rounded
  to ``step`` (or to whole vials, ``vial_mg``) in the end;
* :class:`Interval` — written as ``q{name}w``; dosing interval in whole weeks (a range or a
  list);
* :class:`Count` — written as ``x{name}``; number of doses (a range or a list).

Intervals and counts are discrete: every combination is a *candidate schedule*, prepared once
(:class:`DesignSpace.candidates`).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ..errors import DesignError, RegimenError
from ..regimen import Regimen
from ..vocab import get_agent

UNITS = ("mg", "mg/kg")
"""Dose units of :class:`Dose`."""

DEFAULT_STEP = {"mg": 10.0, "mg/kg": 0.1}
"""Rounding of a :class:`Dose` without ``step`` or ``vial_mg`` (mg, mg/kg)."""


@dataclass(frozen=True)
class Dose:
    """A dose in ``[lo, hi]`` (``unit`` mg or mg/kg), rounded to ``step`` or whole vials.

    ``vial_mg`` (flat doses only): doses are whole multiples of one vial, mg; ``step``:
    rounding of the dose in its unit (default :data:`DEFAULT_STEP`).

    Examples
    --------
    >>> from pdmodel.dosing_design import Dose
    >>> Dose(240, 480, "mg", vial_mg=120).values().tolist()
    [240.0, 360.0, 480.0]
    """

    lo: float
    hi: float
    unit: str = "mg/kg"
    step: float | None = None
    vial_mg: float | None = None

    def check(self, name: str) -> None:
        """Raise :class:`DesignError` naming ``name`` if the range or unit is unusable."""
        if self.unit not in UNITS:
            raise DesignError(f"unknown dose unit {self.unit!r}; expected one of {UNITS}", name)
        if not (np.isfinite(self.lo) and np.isfinite(self.hi) and 0 < self.lo <= self.hi):
            raise DesignError(f"empty or invalid dose range {self.lo:g}-{self.hi:g} "
                              f"{self.unit} (need 0 < lo <= hi)", name)
        if self.vial_mg is not None:
            if self.unit != "mg":
                raise DesignError(f"vial rounding (vial {self.vial_mg:g} mg) needs a flat dose "
                                  f"in mg, but the range is in {self.unit} (contradictory "
                                  "units)", name)
            if not self.vial_mg > 0:
                raise DesignError(f"vial size must be positive, got {self.vial_mg!r}", name)
        if self.step is not None and not self.step > 0:
            raise DesignError(f"dose step must be positive, got {self.step!r}", name)
        if self.values().size == 0:
            raise DesignError(f"no dose of {self.lo:g}-{self.hi:g} {self.unit} is a multiple "
                              f"of {self.resolution:g} {self.unit}", name)

    @property
    def resolution(self) -> float:
        """Spacing of the allowed doses, in ``unit``."""
        return self.vial_mg or self.step or DEFAULT_STEP[self.unit]

    def values(self) -> np.ndarray:
        """Allowed doses after rounding ``[value]`` (in ``unit``, increasing)."""
        r = self.resolution
        k = np.arange(np.ceil(self.lo / r - 1e-9), np.floor(self.hi / r + 1e-9) + 1)
        return np.round(k * r, 10)

    def text(self, value: float) -> str:
        """``value`` as regimen text, e.g. ``"3.5 mg/kg"``."""
        return f"{_number(value)} {self.unit}"


@dataclass(frozen=True)
class Interval:
    """A dosing interval in whole weeks: ``lo``-``hi`` or the listed ``values``.

    Examples
    --------
    >>> from pdmodel.dosing_design import Interval
    >>> Interval(2, 4).choices(), Interval(values=(3, 6)).choices()
    ((2, 3, 4), (3, 6))
    """

    lo: int | None = None
    hi: int | None = None
    values: tuple[int, ...] | None = None
    noun = "interval (weeks)"

    def choices(self) -> tuple[int, ...]:
        """The allowed values, increasing."""
        if self.values is not None:
            return tuple(sorted({int(v) for v in self.values}))
        return tuple(range(int(self.lo), int(self.hi) + 1))

    def check(self, name: str) -> None:
        """Raise :class:`DesignError` naming ``name`` for an empty or non-integer range."""
        vals = self.values if self.values is not None else (self.lo, self.hi)
        if any(v is None or float(v) != int(v) or int(v) < 1 for v in vals):
            raise DesignError(f"{self.noun} must be whole numbers >= 1, got {vals!r}", name)
        if not self.choices():
            raise DesignError(f"empty {self.noun} range {self.lo}-{self.hi}", name)


@dataclass(frozen=True)
class Count(Interval):
    """A number of doses: ``lo``-``hi`` or the listed ``values``."""

    noun = "number of doses"


Variable = Dose | Interval | Count


@dataclass(frozen=True)
class Candidate:
    """One candidate schedule: a value of every discrete variable (``index`` into each)."""

    index: tuple[int, ...]
    values: tuple[int, ...]


@dataclass(frozen=True)
class DesignSpace:
    """A template with its variables, checked (:func:`design_space` builds it).

    Attributes
    ----------
    template : the regimen text with placeholders.
    doses : dose variables by name, with the agent each doses (``dose_agents``).
    discrete : interval and count variables by name.
    agents : agents of the regimen, in order of first appearance.
    """

    template: str
    doses: dict[str, Dose]
    dose_agents: dict[str, str]
    discrete: dict[str, Interval]
    agents: tuple[str, ...]

    @property
    def shape(self) -> tuple[int, ...]:
        """Number of choices of each discrete variable."""
        return tuple(len(v.choices()) for v in self.discrete.values())

    def candidates(self) -> list[Candidate]:
        """Every combination of the discrete variables (row-major over :attr:`shape`)."""
        choices = [v.choices() for v in self.discrete.values()]
        return [Candidate(idx, tuple(c[i] for c, i in zip(choices, idx, strict=True)))
                for idx in itertools.product(*(range(len(c)) for c in choices))]

    def render(self, doses: Mapping[str, float], discrete: tuple[int, ...]) -> str:
        """Regimen text for dose values (by name, in each variable's unit) and discrete
        values (in :attr:`discrete` order)."""
        fields = {n: self.doses[n].text(doses[n]) for n in self.doses}
        fields |= {n: str(int(v)) for n, v in zip(self.discrete, discrete, strict=True)}
        return self.template.format(**fields)

    def regimen(self, doses: Mapping[str, float], discrete: tuple[int, ...]) -> Regimen:
        """The parsed regimen of :meth:`render`."""
        return Regimen.parse(self.render(doses, discrete))


_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_VAR_TEXT = re.compile(
    r"^\s*(?P<lo>[0-9.]+)\s*(?:-\s*(?P<hi>[0-9.]+))?\s*(?P<unit>mg/kg|mg|weeks?|w|doses?)?"
    r"(?:\s+(?P<kind>step|vial)\s+(?P<res>[0-9.]+)\s*(?:mg/kg|mg)?)?\s*$", re.IGNORECASE)


def parse_variable(name: str, text: str) -> Variable:
    """A variable from text: ``"1-10 mg/kg"``, ``"240-960 mg vial 40"``, ``"1-3 mg/kg step
    0.5"``, ``"2-8 weeks"``, ``"3,6,12 weeks"``, ``"2-4 doses"``.

    Raises :class:`DesignError` naming ``name`` when the text is not one of these forms.
    """
    raw = text.strip()
    listed = re.fullmatch(r"\s*([0-9]+(?:\s*,\s*[0-9]+)+)\s*(weeks?|w|doses?)?\s*", raw, re.I)
    if listed:
        values = tuple(int(v) for v in listed.group(1).split(","))
        unit = (listed.group(2) or "").lower()
        return Count(values=values) if unit.startswith("dose") else Interval(values=values)
    m = _VAR_TEXT.match(raw)
    if not m:
        raise DesignError(f"cannot read {text!r}; expected e.g. '1-10 mg/kg', '240-960 mg vial "
                          "40', '2-8 weeks', '3,6,12 weeks' or '2-4 doses'", name)
    lo = float(m.group("lo"))
    hi = float(m.group("hi") or m.group("lo"))
    unit = (m.group("unit") or "").lower()
    kind, res = m.group("kind"), m.group("res")
    if unit in UNITS:
        step = float(res) if kind and kind.lower() == "step" else None
        vial = float(res) if kind and kind.lower() == "vial" else None
        return Dose(lo, hi, unit, step=step, vial_mg=vial)
    if kind:
        raise DesignError(f"'{kind}' applies to doses (mg or mg/kg) only: {text!r}", name)
    if unit.startswith("dose"):
        return Count(_whole(lo, name), _whole(hi, name))
    if unit in ("w", "week", "weeks"):
        return Interval(_whole(lo, name), _whole(hi, name))
    raise DesignError(f"{text!r} has no unit: write mg, mg/kg, weeks or doses", name)


def design_space(template: str, variables: Mapping[str, Variable | str]) -> DesignSpace:
    """Check ``template`` against ``variables`` and return the :class:`DesignSpace`.

    Raises :class:`DesignError` (``field``: the variable name, or ``"template"``) for an
    unknown or unused placeholder, a placeholder in the wrong place for its kind (a dose after
    an agent name, an interval as ``q{name}w``, a count as ``x{name}``), a unit written in the
    template that contradicts the variable's, an empty range, or a template whose regimens
    do not parse.
    """
    if not isinstance(template, str) or not template.strip():
        raise DesignError("the regimen template is empty", "template")
    variables = {n: parse_variable(n, v) if isinstance(v, str) else v
                 for n, v in dict(variables).items()}
    names = _PLACEHOLDER.findall(template)
    for n in names:
        if n not in variables:
            raise DesignError(f"placeholder {{{n}}} has no variable; declared: "
                              f"{sorted(variables) or 'none'}", n)
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise DesignError("each placeholder may appear once in the template", dup[0])
    for n in variables:
        if n not in names:
            raise DesignError(f"variable {n!r} is not used in the template {template!r}", n)
    if not variables:
        raise DesignError("the template has no placeholder: nothing to design "
                          "(e.g. 'nivolumab {dose} q{interval}w')", "template")
    doses: dict[str, Dose] = {}
    agents: dict[str, str] = {}
    discrete: dict[str, Interval] = {}
    text = template
    for n, var in variables.items():
        if not isinstance(var, Dose | Interval):
            raise DesignError(f"expected Dose, Interval, Count or text, got {type(var).__name__}",
                              n)
        var.check(n)
        if isinstance(var, Dose):
            m = re.search(r"([A-Za-z][A-Za-z0-9-]*)\s+\{" + n + r"\}(\s*(mg/kg|mg)\b)?",
                          template, re.IGNORECASE)
            if not m:
                raise DesignError(f"a dose placeholder must follow an agent name, e.g. "
                                  f"'nivolumab {{{n}}}'", n)
            try:
                agent = get_agent(m.group(1)).name
            except RegimenError as err:
                raise DesignError(str(err), n) from None
            written = (m.group(3) or "").lower()
            if written and written != var.unit:
                raise DesignError(f"the template writes {{{n}}} {written} but the range is in "
                                  f"{var.unit} (contradictory units)", n)
            if written:  # the variable renders its own unit
                text = text.replace(m.group(0), f"{m.group(1)} {{{n}}}")
            doses[n], agents[n] = var, agent
        else:
            want = f"x{{{n}}}" if isinstance(var, Count) else f"q{{{n}}}w"
            if want not in template.replace(" ", ""):
                kind = "a number of doses" if isinstance(var, Count) else "an interval in weeks"
                raise DesignError(f"{kind} must be written as '{want}' in the template", n)
            discrete[n] = var
    space = DesignSpace(text, doses, agents, discrete, ())
    first = space.candidates()[0]
    lows = {n: d.values()[0] for n, d in doses.items()}
    try:
        reg = space.regimen(lows, first.values)
    except RegimenError as err:
        raise DesignError(f"{space.render(lows, first.values)!r}: {err}", "template") from None
    return DesignSpace(text, doses, agents, discrete, reg.agents)


def _whole(x: float, name: str) -> int:
    if x != int(x):
        raise DesignError(f"expected a whole number, got {x:g}", name)
    return int(x)


def _number(x: float) -> str:
    """``x`` as plain decimal text (no exponent: the regimen grammar has none)."""
    return np.format_float_positional(float(x), precision=6, unique=True, fractional=False,
                                      trim="-")
