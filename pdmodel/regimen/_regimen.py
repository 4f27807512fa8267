"""Dosing regimens of immune checkpoint inhibitors, as Python objects and as text.

Units: time in days, doses in mg (flat) or mg/kg (weight-based), infusion durations in
minutes in the text form.

Text grammar (case-insensitive, extra whitespace tolerated)::

    regimen  := phase (", then" phase)* [", stop at day" NUM]
    phase    := item (" + " item)*
    item     := AGENT NUM UNIT modifier*
    UNIT     := "mg" | "mg/kg"
    modifier := "q" NUM "w" | "q" NUM "d"      dosing interval, weeks or days
              | "x" INT | "once"               number of doses (absent: until treatment stops)
              | "over" NUM "min"               infusion duration (absent: the label's)
              | "from day" NUM                 first dose, days after the phase starts
    NUM      := plain decimal number: ASCII digits with at most one "." (2.5, 240, .5)

A number is never read the lenient way of Python's ``float``: ``2_40``, ``1e3``, ``inf``,
``nan`` and non-ASCII digits are refused, and so is a decimal comma (``2,5``), with a message
that says so.

AGENT is an INN or brand name known to :func:`pdmodel.vocab.get_agent`.  An interval and/or
count written after an item also applies to the preceding items of the same phase that have
neither: ``nivolumab 1 mg/kg + ipilimumab 3 mg/kg q3w x4`` doses both agents q3w x4, while
``pembrolizumab 200 mg q3w + ipilimumab 50 mg q6w x4`` gives each its own schedule.
``x1``/``once`` without an interval is a single dose.  Each phase starts when the previous one
ends, i.e. when its next dose would be due (:attr:`Phase.duration_days`), so a phase followed
by ``then`` needs a finite count and at least one interval (``tremelimumab 300 mg q4w x1``).
Examples::

    nivolumab 240 mg q2w
    nivolumab 1 mg/kg + ipilimumab 3 mg/kg q3w x4, then nivolumab 480 mg q4w
    tremelimumab 300 mg x1 + durvalumab 1500 mg q4w
    cemiplimab 350 mg q3w over 30 min
    nivolumab 240 mg q2w from day 7, stop at day 180

``str(regimen)`` prints the canonical form, which parses back to an equal regimen.
"""

from __future__ import annotations

import difflib
import math
import numbers
import re
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Literal, NamedTuple

from pdmodel.vocab import AGENTS, get_agent

from ..errors import (
    InvalidDoseError,
    MissingWeightError,
    RegimenError,
    RegimenSyntaxError,
    UnknownAgentError,
)

__all__ = [
    "AgentDose", "Infusion", "InvalidDoseError", "MissingWeightError", "Phase", "Regimen",
    "RegimenError", "RegimenSyntaxError", "Schedule", "UnknownAgentError",
]

MINUTES_PER_DAY = 1440.0
UNITS = ("mg", "mg/kg")


def _fmt(x: float) -> str:
    """Shortest plain decimal text (no exponent, no trailing ``.0``) that parses back to
    exactly ``x``: ``240``, ``0.3``, ``0.00001`` (``repr`` would give ``1e-05``)."""
    return str(int(x)) if x.is_integer() else format(Decimal(repr(x)), "f")


def _fmt_interval(days: float) -> str:
    weeks = days / 7
    return f"q{int(weeks)}w" if weeks.is_integer() and weeks * 7 == days else f"q{_fmt(days)}d"


def _number(value: object, what: str, field: str, *, strict: bool = True,
            maximum: float = math.inf) -> float:
    """``value`` as a finite float, > 0 (``strict``) or >= 0, and <= ``maximum``."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    x = float(value) if ok else math.nan
    if not (math.isfinite(x) and (x > 0 if strict else x >= 0) and x <= maximum):
        cap = f" and <= {_fmt(maximum)}" if math.isfinite(maximum) else ""
        bound = ">" if strict else ">="
        raise InvalidDoseError(f"{what} must be a finite number {bound} 0{cap}, got {value!r}",
                               field)
    return x + 0.0  # also turns -0.0 into 0.0


def _resolve_agent(name: object, where: str = "") -> str:
    """INN of an agent given by INN or brand name; ``where`` is appended to the error."""
    try:
        return get_agent(name).name  # type: ignore[arg-type]
    except (KeyError, AttributeError):
        pass
    choices = {a.brand.lower(): a.name for a in AGENTS.values()} | {n: n for n in AGENTS}
    close = difflib.get_close_matches(str(name).strip().lower(), choices, n=1)
    hint = f"; did you mean {choices[close[0]]!r}?" if close else ""
    raise UnknownAgentError(
        f"unknown agent {name!r}{where}; known agents: {', '.join(AGENTS)}{hint}", "agent")


@dataclass(frozen=True)
class Schedule:
    """When doses are given.

    Attributes
    ----------
    interval_days : float or None
        Time between consecutive doses, days; ``None`` only for a single dose.
    n_doses : int or None
        Number of doses; ``None`` means until treatment stops.

    Examples
    --------
    >>> import pdmodel as pdm
    >>> str(pdm.Schedule(interval_days=21.0, n_doses=4))
    'q3w x4'
    """

    interval_days: float | None
    n_doses: int | None

    def __post_init__(self):
        if self.interval_days is not None:
            object.__setattr__(self, "interval_days", _number(
                self.interval_days, "dosing interval (days)", "interval_days"))
        n = self.n_doses
        if n is not None:
            if not isinstance(n, numbers.Integral) or isinstance(n, bool) or n < 1:
                raise InvalidDoseError(f"number of doses must be a whole number >= 1, got {n!r}",
                                       "n_doses")
            object.__setattr__(self, "n_doses", int(n))
        if self.interval_days is None and self.n_doses != 1:
            raise InvalidDoseError(
                "a schedule without an interval must be a single dose (n_doses=1), got "
                f"n_doses={n!r}; give an interval such as 'q3w'", "n_doses")

    def __str__(self) -> str:
        parts = [] if self.interval_days is None else [_fmt_interval(self.interval_days)]
        if self.n_doses is not None:
            parts.append(f"x{self.n_doses}")
        return " ".join(parts)


@dataclass(frozen=True)
class AgentDose:
    """One agent's dosing within a phase.

    Attributes
    ----------
    agent : str
        INN (brand names are accepted and normalised to the INN).
    amount : float
        Dose per infusion, in ``unit``.
    unit : {"mg", "mg/kg"}
        Flat dose (mg) or weight-based dose (mg per kg body weight).
    schedule : Schedule
        Interval and number of doses.
    infusion_min : float or None
        Infusion duration, minutes, in (0, 1440]; ``None`` (also stored when the value equals
        the label's) means the label default.
    start_day : float
        First dose, days after the start of the phase (>= 0).

    Examples
    --------
    >>> import pdmodel as pdm
    >>> dose = pdm.AgentDose("Yervoy", 3, "mg/kg", pdm.Schedule(21.0, 4))
    >>> str(dose), dose.infusion_minutes
    ('ipilimumab 3 mg/kg q3w x4', 90.0)
    """

    agent: str
    amount: float
    unit: Literal["mg", "mg/kg"]
    schedule: Schedule
    infusion_min: float | None = None
    start_day: float = 0.0

    def __post_init__(self):
        def put(name, value):
            object.__setattr__(self, name, value)

        put("agent", _resolve_agent(self.agent))
        put("amount", _number(self.amount, "dose amount", "amount"))
        unit = self.unit.strip().lower() if isinstance(self.unit, str) else self.unit
        if unit not in UNITS:
            raise InvalidDoseError(f"dose unit must be 'mg' or 'mg/kg', got {self.unit!r}", "unit")
        put("unit", unit)
        if not isinstance(self.schedule, Schedule):
            raise InvalidDoseError(f"schedule must be a Schedule, got {self.schedule!r}",
                                   "schedule")
        if self.infusion_min is not None:
            m = _number(self.infusion_min, "infusion duration (min)", "infusion_min",
                        maximum=MINUTES_PER_DAY)
            put("infusion_min", None if m == AGENTS[self.agent].infusion_min else m)
        put("start_day", _number(self.start_day, "start day", "start_day", strict=False))
        interval = self.schedule.interval_days
        if interval is not None and interval <= self.infusion_minutes / MINUTES_PER_DAY:
            raise InvalidDoseError(
                f"dosing interval of {_fmt(interval)} days must be longer than the "
                f"{_fmt(self.infusion_minutes)}-min infusion of {self.agent}", "interval_days")

    @property
    def infusion_minutes(self) -> float:
        """Infusion duration, minutes, with the label default resolved."""
        return AGENTS[self.agent].infusion_min if self.infusion_min is None else self.infusion_min

    def __str__(self) -> str:
        parts = [self.agent, _fmt(self.amount), self.unit, str(self.schedule)]
        if self.infusion_min is not None:
            parts.append(f"over {_fmt(self.infusion_min)} min")
        if self.start_day:
            parts.append(f"from day {_fmt(self.start_day)}")
        return " ".join(parts)


@dataclass(frozen=True)
class Phase:
    """Doses given together; each agent at most once.

    Attributes
    ----------
    doses : tuple of AgentDose
        At least one; any iterable is stored as a tuple.

    Examples
    --------
    >>> import pdmodel as pdm
    >>> q3w_x4 = pdm.Schedule(21.0, 4)
    >>> phase = pdm.Phase((pdm.AgentDose("nivolumab", 1, "mg/kg", q3w_x4),
    ...                    pdm.AgentDose("ipilimumab", 3, "mg/kg", q3w_x4)))
    >>> phase.duration_days  # days until the next phase starts
    84.0
    """

    doses: tuple[AgentDose, ...]

    def __post_init__(self):
        doses = tuple(self.doses)
        if not doses:
            raise RegimenError("a phase needs at least one dose", "doses")
        seen: set[str] = set()
        for d in doses:
            if not isinstance(d, AgentDose):
                raise RegimenError(f"phase doses must be AgentDose objects, got {d!r}", "doses")
            if d.agent in seen:
                raise RegimenError(f"agent {d.agent!r} appears more than once in a phase; give "
                                   "each agent once per phase", "agent")
            seen.add(d.agent)
        object.__setattr__(self, "doses", doses)

    @property
    def duration_days(self) -> float:
        """Days from the start of the phase until its next dose would be due.

        ``inf`` if any dose continues until treatment stops; otherwise the maximum over doses of
        ``start_day + n_doses * interval_days``, where a single dose without an interval counts
        as ``start_day`` (it adds no time after itself).
        """
        ends = []
        for d in self.doses:
            n, interval = d.schedule.n_doses, d.schedule.interval_days
            if n is None:
                return math.inf
            ends.append(d.start_day + (0.0 if interval is None else n * interval))
        return max(ends)

    def __str__(self) -> str:
        return " + ".join(map(str, self.doses))


class Infusion(NamedTuple):
    """One infusion of one agent, as returned by :meth:`Regimen.infusions`.

    Attributes
    ----------
    agent : str
        INN.
    start : float
        Start, days from the first dose of the regimen.
    duration : float
        Infusion duration, days.
    amount : float
        Dose given, mg (mg/kg doses resolved with the body weight).
    dose : float
        The prescribed dose, in ``unit``.
    unit : str
        ``"mg"`` or ``"mg/kg"`` (so callers can keep body weight symbolic).

    Examples
    --------
    >>> import pdmodel as pdm
    >>> inf = pdm.Regimen.parse("ipilimumab 3 mg/kg q3w x4").infusions(days=30, weight_kg=80)
    >>> [(i.start, i.amount) for i in inf]
    [(0.0, 240.0), (21.0, 240.0)]
    >>> inf[0].duration * 24 * 60  # minutes
    90.0
    """

    agent: str
    start: float
    duration: float
    amount: float
    dose: float
    unit: str


@dataclass(frozen=True)
class Regimen:
    """A sequence of phases, each starting when the previous one ends.

    Attributes
    ----------
    phases : tuple of Phase
        At least one; all but the last must have finite :attr:`Phase.duration_days` and at least
        one dose with an interval (which fixes when the next phase starts).
    stop_day : float or None
        Treatment discontinuation, day (>= 0): no infusion starts at or after it.

    Examples
    --------
    >>> import pdmodel as pdm
    >>> reg = pdm.Regimen.parse(
    ...     "nivolumab 1 mg/kg + ipilimumab 3 mg/kg q3w x4, then nivolumab 480 mg q4w")
    >>> str(reg)
    'nivolumab 1 mg/kg q3w x4 + ipilimumab 3 mg/kg q3w x4, then nivolumab 480 mg q4w'
    >>> reg.agents, reg.phase_starts
    (('nivolumab', 'ipilimumab'), (0.0, 84.0))
    >>> pdm.Regimen.parse(str(reg)) == reg
    True
    """

    phases: tuple[Phase, ...]
    stop_day: float | None = None

    def __post_init__(self):
        phases = tuple(self.phases)
        if not phases or not all(isinstance(p, Phase) for p in phases):
            raise RegimenError(f"a regimen needs one or more Phase objects, got {phases!r}",
                               "phases")
        for k, ph in enumerate(phases[:-1], 1):
            end = ph.duration_days
            if end == math.inf:
                dose = next(d for d in ph.doses if d.schedule.n_doses is None)
                raise RegimenError(
                    f"phase {k} never ends: {str(dose)!r} has no dose count (e.g. 'x4'), so it "
                    f"cannot be followed by 'then' phase {k + 1}", "phases")
            if all(d.schedule.interval_days is None for d in ph.doses):
                raise RegimenError(
                    f"phase {k} ({str(ph)!r}) has only single doses without an interval, so the "
                    f"start of phase {k + 1} is undefined; give one, e.g. 'q4w x1'", "phases")
            for d in ph.doses:
                if d.start_day >= end:
                    raise RegimenError(
                        f"{str(d)!r} starts on day {_fmt(d.start_day)} of phase {k}, not before "
                        f"the phase ends (day {_fmt(end)})", "phases")
        object.__setattr__(self, "phases", phases)
        if self.stop_day is not None:
            object.__setattr__(self, "stop_day", _number(self.stop_day, "stop day", "stop_day",
                                                         strict=False))

    @classmethod
    def parse(cls, text: str) -> Regimen:
        """Parse the text form described in the module docstring.

        Raises
        ------
        RegimenSyntaxError, UnknownAgentError, InvalidDoseError, RegimenError
            With the offending token quoted and its phase/item or character position.
        """
        return _parse(text)

    def __str__(self) -> str:
        text = ", then ".join(map(str, self.phases))
        return text if self.stop_day is None else f"{text}, stop at day {_fmt(self.stop_day)}"

    @property
    def agents(self) -> tuple[str, ...]:
        """INNs in order of first appearance."""
        return tuple(dict.fromkeys(d.agent for p in self.phases for d in p.doses))

    @property
    def needs_weight(self) -> bool:
        """Whether any dose is in mg/kg."""
        return any(d.unit == "mg/kg" for p in self.phases for d in p.doses)

    @property
    def phase_starts(self) -> tuple[float, ...]:
        """Start day of each phase."""
        starts = [0.0]
        for p in self.phases[:-1]:
            starts.append(starts[-1] + p.duration_days)
        return tuple(starts)

    @property
    def duration_days(self) -> float:
        """Sum of the phase durations, days (``inf`` if the last phase is open-ended)."""
        return self.phase_starts[-1] + self.phases[-1].duration_days

    def stop_at(self, day: float) -> Regimen:
        """Copy with treatment discontinued at ``day`` (replaces any earlier stop day)."""
        return replace(self, stop_day=day)

    def __add__(self, other: Regimen) -> Regimen:
        """Give two regimens together, merging their doses phase by phase.

        The phase counts must match, and so must the stop days if both are set.
        """
        if not isinstance(other, Regimen):
            return NotImplemented
        if len(self.phases) != len(other.phases):
            raise RegimenError(f"cannot add a {len(other.phases)}-phase regimen ({str(other)!r}) "
                               f"to a {len(self.phases)}-phase one ({str(self)!r})", "phases")
        stops = {s for s in (self.stop_day, other.stop_day) if s is not None}
        if len(stops) > 1:
            raise RegimenError(f"cannot add regimens with different stop days {sorted(stops)!r}",
                               "stop_day")
        phases = (Phase(a.doses + b.doses) for a, b in zip(self.phases, other.phases, strict=True))
        return Regimen(tuple(phases), stops.pop() if stops else None)

    def then(self, other: Regimen) -> Regimen:
        """Append ``other``'s phases after this regimen's last phase.

        A stop day of ``other`` counts from the start of ``other``; this regimen must have none.
        """
        if self.stop_day is not None:
            raise RegimenError(f"cannot append phases after a stopped regimen ({str(self)!r})",
                               "stop_day")
        phases = self.phases + other.phases
        stop = None
        if other.stop_day is not None and self.phases[-1].duration_days < math.inf:
            stop = self.duration_days + other.stop_day
        return Regimen(phases, stop)

    def infusions(self, *, days: float, weight_kg: float | None = None) -> list[Infusion]:
        """Every infusion starting before ``days`` and before :attr:`stop_day`.

        Parameters
        ----------
        days : float
            Horizon, days (finite, >= 0).
        weight_kg : float, optional
            Body weight, kg (finite, > 0); required if :attr:`needs_weight`.

        Returns
        -------
        list of Infusion
            Sorted by (start, agent), amounts in mg, durations in days.
        """
        horizon = _number(days, "days", "days", strict=False)
        weight = None
        if weight_kg is not None:
            weight = _number(weight_kg, "weight_kg (body weight, kg)", "weight_kg")
        elif self.needs_weight:
            dose = next(d for p in self.phases for d in p.doses if d.unit == "mg/kg")
            raise MissingWeightError(f"weight_kg is required: {str(dose)!r} doses {dose.agent} "
                                     "in mg/kg", "weight_kg")
        end = horizon if self.stop_day is None else min(horizon, self.stop_day)
        out = []
        for start, phase in zip(self.phase_starts, self.phases, strict=True):
            for d in phase.doses:
                n, interval = d.schedule.n_doses, d.schedule.interval_days or 0.0
                mg = d.amount * weight if d.unit == "mg/kg" else d.amount
                i = 0
                while (n is None or i < n) and (t := start + d.start_day + i * interval) < end:
                    out.append(Infusion(d.agent, t, d.infusion_minutes / MINUTES_PER_DAY, mg,
                                       d.amount, d.unit))
                    i += 1
        return sorted(out, key=lambda inf: (inf.start, inf.agent))


# --- text parser ---------------------------------------------------------------------------

_TOKEN = re.compile(r"[,+]|[^\s,+]+")
_INTERVAL = re.compile(r"q(.*)([wd])")
_COUNT = re.compile(r"x(.*)")
_MINUTES = ("min", "mins", "minute", "minutes")
_EXPECTED = "expected 'qNw', 'qNd', 'xN', 'once', 'over N min' or 'from day N'"


class _Tok(NamedTuple):
    text: str
    pos: int


@dataclass
class _Item:
    """An item being parsed: constructor arguments plus the source token of each field."""

    args: dict
    tokens: dict
    where: str


def _span(text: str, toks: list[_Tok]) -> str:
    return text[toks[0].pos:toks[-1].pos + len(toks[-1].text)]


_PLAIN_NUMBER = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
"""A number token: ASCII digits with at most one ``.``. A leading ``-`` is read so that a
negative value gets the range error of its field (``dose amount must be ... > 0``)."""

_NON_FINITE = re.compile(r"[-+]?(?:nan|inf|infinity)", re.IGNORECASE)
"""``nan`` and ``inf``: read as such so that the range check names the field (must be finite)."""

_DECIMAL_COMMA = re.compile(r"[0-9]+,[0-9]+")

_PLAIN_NUMBER_HINT = ("write a plain decimal number: ASCII digits 0-9 with at most one '.' (no "
                     "'_', exponent, sign or thousands separator), e.g. 240 or 2.5")


def _number_or_none(s: str) -> float | None:
    """``s`` as a float if it is a number of the text form (:data:`_PLAIN_NUMBER`, or nan/inf
    for the constructors to reject with the field's name), else None."""
    return float(s) if _PLAIN_NUMBER.fullmatch(s) or _NON_FINITE.fullmatch(s) else None


def _float(s: str, what: str, where: str) -> float:
    """The number token ``s`` (dose, infusion time, start or stop day), or a syntax error that
    quotes it: ``non-numeric`` without any digit, ``malformed`` otherwise."""
    x = _number_or_none(s)
    if x is not None:
        return x
    if not any(c.isdigit() for c in s):
        raise RegimenSyntaxError(f"non-numeric {what} {s!r} in {where}; expected a number")
    raise RegimenSyntaxError(f"malformed {what} {s!r} in {where}; {_PLAIN_NUMBER_HINT}")


def _check_decimal_comma(text: str) -> None:
    """Refuse a decimal comma (``2,5 mg/kg``): ``,`` only separates phases and the stop clause,
    so a comma between digits is a decimal comma or a thousands separator."""
    m = _DECIMAL_COMMA.search(text)
    if m is None:
        return
    number = m.group()
    thousands = len(number.split(",")[1]) == 3
    alt = f" (or {number.replace(',', '')!r} if ',' separates thousands)" if thousands else ""
    raise RegimenSyntaxError(
        f"decimal comma in {number!r} at position {m.start()}: write numbers with a decimal "
        f"point, e.g. {number.replace(',', '.')!r}{alt}; ',' separates phases ('..., then "
        "...') and the stop clause")


def _build(where: str | None, tokens: dict, factory, *args, **kwargs):
    """``factory(*args, **kwargs)``, adding the offending token and its location to errors."""
    try:
        return factory(*args, **kwargs)
    except RegimenError as e:
        tok = tokens.get(e.field)
        if tok is None and where is None:
            raise
        loc = where if tok is None else f"{tok!r} in {where}"
        raise type(e)(f"{e} ({loc})", e.field) from None


def _is_modifier(low: str) -> bool:
    matched = _INTERVAL.fullmatch(low) or _COUNT.fullmatch(low)
    return matched is not None or low in ("once", "over", "from")


def _parse(text: str) -> Regimen:
    if not isinstance(text, str):
        raise TypeError(f"regimen text must be a str, got {type(text).__name__}")
    _check_decimal_comma(text)
    toks = [_Tok(m.group(), m.start()) for m in _TOKEN.finditer(text)]
    if not toks:
        raise RegimenSyntaxError(f"empty regimen text {text!r}; expected e.g. "
                                 "'nivolumab 240 mg q2w'")
    clauses: list[tuple[_Tok | None, list[_Tok]]] = [(None, [])]
    for t in toks:
        if t.text == ",":
            clauses.append((t, []))
        else:
            clauses[-1][1].append(t)
    phases: list[Phase] = []
    stop: list[_Tok] | None = None
    for comma, body in clauses:
        head = body[0].text.lower() if body else None
        if stop is not None:
            raise RegimenSyntaxError(
                f"the stop clause {_span(text, stop)!r} must come last, but "
                f"{text[comma.pos:].strip()!r} follows it at position {comma.pos}")
        if comma is None:
            phases.append(_parse_phase(text, body, 1, 0))
        elif head == "then":
            phases.append(_parse_phase(text, body[1:], len(phases) + 1, body[0].pos + 4))
        elif head == "stop":
            stop = body
        else:
            got = "nothing" if head is None else repr(body[0].text)
            raise RegimenSyntaxError(f"expected 'then' or 'stop at day N' after ',' at position "
                                     f"{comma.pos}, got {got}")
    if stop is None:
        return _build(None, {}, Regimen, tuple(phases))
    clause = _span(text, stop)
    if len(stop) != 4 or [t.text.lower() for t in stop[:3]] != ["stop", "at", "day"]:
        raise RegimenSyntaxError(f"malformed stop clause {clause!r} at position {stop[0].pos}; "
                                 "expected 'stop at day N'")
    where = f"the stop clause {clause!r}"
    day = _float(stop[3].text, "stop day", where)
    return _build(where, {"stop_day": stop[3].text}, Regimen, tuple(phases), day)


def _parse_phase(text: str, toks: list[_Tok], p: int, pos: int) -> Phase:
    if not toks:
        raise RegimenSyntaxError(f"empty phase {p} at position {pos}; expected an item such as "
                                 "'nivolumab 240 mg q2w'")
    groups: list[list[_Tok]] = [[]]
    pluses = []
    for t in toks:
        if t.text == "+":
            groups.append([])
            pluses.append(t)
        else:
            groups[-1].append(t)
    for j, group in enumerate(groups):
        if not group:
            plus, side = (pluses[j - 1], "after") if j else (pluses[0], "before")
            raise RegimenSyntaxError(f"dangling '+' at position {plus.pos} in phase {p}; "
                                     f"expected an item {side} it")
    items = [_parse_item(text, group, p, j) for j, group in enumerate(groups, 1)]
    pending: list[_Item] = []
    for item in items:
        sched = {k: v for k, v in item.args.items() if k in ("interval_days", "n_doses")}
        if not sched:
            pending.append(item)
            continue
        schedule = _build(item.where, item.tokens, Schedule, sched.get("interval_days"),
                          sched.get("n_doses"))
        for it in [*pending, item]:
            for k in ("interval_days", "n_doses"):
                it.args.pop(k, None)
                if k in item.tokens:
                    it.tokens[k] = item.tokens[k]
            it.args["schedule"] = schedule
        pending = []
    if pending:
        raise RegimenSyntaxError(
            f"missing interval in {pending[0].where}; expected a schedule such as 'q2w' (until "
            "stopped), 'q3w x4' or 'x1', after this item or a later one in the same phase")
    doses = [_build(it.where, it.tokens, AgentDose, **it.args) for it in items]
    return _build(f"phase {p}: {_span(text, toks)!r}", {}, Phase, tuple(doses))


def _parse_item(text: str, toks: list[_Tok], p: int, j: int) -> _Item:
    where = f"item {j} of phase {p} ({_span(text, toks)!r})"
    agent = _resolve_agent(toks[0].text, f" in {where}")
    low = [t.text.lower() for t in toks]
    if len(toks) < 2 or low[1] in UNITS or _is_modifier(low[1]):
        got = repr(toks[1].text) if len(toks) > 1 else "nothing"
        raise RegimenSyntaxError(f"missing dose after {toks[0].text!r} in {where}; expected a "
                                 f"number then 'mg' or 'mg/kg', got {got}")
    amount = _float(toks[1].text, "dose", where)
    if len(toks) < 3 or _is_modifier(low[2]):
        raise RegimenSyntaxError(f"missing unit after dose {toks[1].text!r} in {where}; "
                                 "expected 'mg' or 'mg/kg'")
    item = _Item({"agent": agent, "amount": amount, "unit": low[2]},
                 {"amount": toks[1].text, "unit": toks[2].text}, where)
    labels = {"interval_days": "interval", "n_doses": "dose count",
              "infusion_min": "infusion time", "start_day": "start day"}

    def put(key: str, value: object, source: str) -> None:
        if key in item.tokens:
            raise RegimenSyntaxError(f"duplicate {labels[key]} {source!r} in {where} (already "
                                     f"given {item.tokens[key]!r})")
        item.args[key], item.tokens[key] = value, source

    i = 3
    while i < len(toks):
        t, word = toks[i], low[i]
        clause = _span(text, toks[i:i + 3])
        if m := _INTERVAL.fullmatch(word):
            number = _number_or_none(m[1])
            if number is None:
                raise RegimenSyntaxError(f"malformed interval {t.text!r} in {where}; expected "
                                         "'qNw' (weeks) or 'qNd' (days), N a plain decimal "
                                         "number (digits with at most one '.')")
            put("interval_days", number * (7 if m[2] == "w" else 1), t.text)
        elif word == "once" or (m := _COUNT.fullmatch(word)):
            count = 1.0 if word == "once" else _number_or_none(m[1])
            if count is None:
                raise RegimenSyntaxError(f"malformed dose count {t.text!r} in {where}; expected "
                                         "'xN' with N a whole number (digits 0-9)")
            put("n_doses", int(count) if count.is_integer() else count, t.text)
        elif word == "over":
            if len(toks) < i + 3 or low[i + 2] not in _MINUTES:
                raise RegimenSyntaxError(f"malformed infusion time {clause!r} in {where}; "
                                         "expected 'over N min'")
            put("infusion_min", _float(toks[i + 1].text, "infusion time", where), clause)
            i += 2
        elif word == "from":
            if len(toks) < i + 3 or low[i + 1] != "day":
                raise RegimenSyntaxError(f"malformed start {clause!r} in {where}; expected "
                                         "'from day N'")
            put("start_day", _float(toks[i + 2].text, "start day", where), clause)
            i += 2
        else:
            hint = " (separate phases with ', then' and end with ', stop at day N')" \
                if word in ("then", "stop") else ""
            raise RegimenSyntaxError(f"unexpected {t.text!r} at position {t.pos} in {where}; "
                                     f"{_EXPECTED}{hint}")
        i += 1
    return item
