"""The vocabulary of a design: the risk to minimise and the constraints to meet.

Objective (:class:`Risk`): the probability of a grade ≥ ``grade`` event of ``organ`` (``any``
combines organs per patient) by week ``week``, averaged over virtual patients, for each
posterior draw; summarised over draws by the mean (``stat="mean"``) or an upper quantile
(``stat="q90"``: risk-averse). Drug-related events under the natural course (no rescue);
drug-independent background events only with ``background=True``.

Constraints, each a function of the typical patient's serum PK (body weight of the
population's median, no random effects):

* :class:`TroughOccupancy` ``trough PD-1 >= 0.9 weeks 12-52`` — the lowest serum occupancy of
  the target (``PD-1``, ``PD-L1``, ``CTLA-4``) over the window, 0-1;
* :class:`AverageExposure` ``exposure nivolumab >= 20 ug/mL weeks 0-52`` — the time-averaged
  serum concentration of an agent over the window, µg/mL;
* :class:`MaxInfusions` ``infusions <= 13 per year`` — infusion visits (days with at least one
  infusion) in the first 52 weeks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import DesignError, RegimenError
from ..vocab import GRADES, ORGAN_CHOICES, TARGETS, get_agent


@dataclass(frozen=True)
class Risk:
    """Objective: grade ≥ ``grade`` incidence of ``organ`` by week ``week``.

    The fraction of virtual patients (0-1) with an event of ``organ`` of grade ≥ ``grade`` by
    week ``week``, drug-related, under the natural course (no rescue), for each posterior
    draw; summarised over the draws by ``stat``. Pass it as ``risk=`` to :func:`design` or
    :func:`trade_off` (default: ``Risk()``, grade ≥ 3 irAE of any organ by week 52).

    Attributes
    ----------
    organ : str
        ``"any"`` (any organ, combined per patient) or one of :data:`pdmodel.ORGANS`.
    grade : str
        Lowest grade counted: ``"any"``, ``"2+"`` or ``"3+"``.
    week : float
        Horizon, weeks from the first dose (0 < week ≤ 520, a whole number of days).
    stat : str
        Summary over posterior draws: ``"mean"``, or ``"qNN"``, the NN-th percentile (e.g.
        ``"q90"``: risk-averse).
    background : bool
        Also count drug-independent background events.

    Examples
    --------
    >>> import pdmodel as pdm
    >>> risk = pdm.Risk(organ="gi", grade="3+", week=26, stat="q90")
    >>> print(risk)
    grade 3+ gi irAE by week 26 (posterior q90)
    >>> risk.days, risk.quantile
    (182, 0.9)
    >>> risk.check()  # raises DesignError naming a bad field; this one is valid
    >>> print(pdm.Risk())  # the default objective
    grade 3+ any irAE by week 52 (posterior mean)
    """

    organ: str = "any"
    grade: str = "3+"
    week: float = 52.0
    stat: str = "mean"
    background: bool = False

    def check(self) -> None:
        """Raise :class:`DesignError` naming the field."""
        if self.organ not in ORGAN_CHOICES:
            raise DesignError(f"unknown organ {self.organ!r}; expected one of {ORGAN_CHOICES}",
                              "risk.organ")
        if self.grade not in GRADES:
            raise DesignError(f"unknown grade {self.grade!r}; expected one of {GRADES}",
                              "risk.grade")
        if not (0 < self.week <= 520 and float(self.week * 7).is_integer()):
            raise DesignError(f"week must be in (0, 520] and a whole number of days, got "
                              f"{self.week!r}", "risk.week")
        self.quantile  # noqa: B018 - validates stat

    @property
    def days(self) -> int:
        """Horizon, days."""
        return int(round(self.week * 7))

    @property
    def quantile(self) -> float | None:
        """``None`` for the mean, else the quantile (0-1) of ``stat``."""
        if self.stat == "mean":
            return None
        m = re.fullmatch(r"q(\d{1,2})", self.stat)
        if not m or not 0 < int(m.group(1)) < 100:
            raise DesignError(f"stat must be 'mean' or 'qNN' (e.g. 'q90'), got {self.stat!r}",
                              "risk.stat")
        return int(m.group(1)) / 100

    def __str__(self) -> str:
        stat = "posterior mean" if self.stat == "mean" else f"posterior {self.stat}"
        return f"grade {self.grade} {self.organ} irAE by week {self.week:g} ({stat})"


@dataclass(frozen=True)
class TroughOccupancy:
    """Lowest serum occupancy of ``target`` over weeks ``start``-``end`` ≥ ``at_least`` (0-1)."""

    target: str
    at_least: float
    start: float = 0.0
    end: float = 52.0
    label = "trough"
    unit = ""

    def check(self, field: str, agents: tuple[str, ...]) -> None:
        """Raise :class:`DesignError` naming ``field``."""
        if self.target not in TARGETS:
            raise DesignError(f"unknown target {self.target!r}; expected one of {TARGETS}",
                              field)
        hit = [a for a in agents if get_agent(a).target == self.target]
        if not hit:
            raise DesignError(f"no agent of the regimen ({', '.join(agents)}) binds "
                              f"{self.target}", field)
        if not 0 < self.at_least < 1:
            raise DesignError(f"occupancy level must be a fraction in (0, 1), got "
                              f"{self.at_least!r} (write 0.9 or 90%)", field)
        _check_window(self, field)

    @property
    def name(self) -> str:
        """Short label of the metric (for tables and plots)."""
        return f"trough {self.target} occupancy, weeks {self.start:g}-{self.end:g}"

    def __str__(self) -> str:
        return f"trough {self.target} >= {self.at_least:g} weeks {self.start:g}-{self.end:g}"


@dataclass(frozen=True)
class AverageExposure:
    """Time-averaged serum concentration of ``agent`` over weeks ``start``-``end`` ≥
    ``at_least`` (µg/mL)."""

    agent: str
    at_least: float
    start: float = 0.0
    end: float = 52.0
    label = "exposure"
    unit = "ug/mL"

    def check(self, field: str, agents: tuple[str, ...]) -> None:
        """Raise :class:`DesignError` naming ``field``."""
        if self.agent not in agents:
            raise DesignError(f"agent {self.agent!r} is not in the regimen ({', '.join(agents)})",
                              field)
        if not self.at_least > 0:
            raise DesignError(f"exposure level must be positive (ug/mL), got {self.at_least!r}",
                              field)
        _check_window(self, field)

    @property
    def name(self) -> str:
        """Short label of the metric (for tables and plots)."""
        return f"average {self.agent} concentration, weeks {self.start:g}-{self.end:g} (ug/mL)"

    def __str__(self) -> str:
        return (f"exposure {self.agent} >= {self.at_least:g} ug/mL weeks "
                f"{self.start:g}-{self.end:g}")


@dataclass(frozen=True)
class MaxInfusions:
    """At most ``per_year`` infusion visits in the first 52 weeks."""

    per_year: float
    label = "infusions"
    unit = "per year"

    def check(self, field: str, agents: tuple[str, ...]) -> None:
        """Raise :class:`DesignError` naming ``field``."""
        if not self.per_year >= 1:
            raise DesignError(f"infusions per year must be >= 1, got {self.per_year!r}", field)

    @property
    def at_least(self) -> float:
        """The constraint as a lower bound on ``-visits``."""
        return -float(self.per_year)

    @property
    def name(self) -> str:
        """Short label of the metric."""
        return "infusion visits in the first year"

    def __str__(self) -> str:
        return f"infusions <= {self.per_year:g} per year"


Constraint = TroughOccupancy | AverageExposure | MaxInfusions

_WEEKS = r"(?:\s+weeks?\s+(?P<a>[0-9.]+)\s*-\s*(?P<b>[0-9.]+))?"
_TROUGH = re.compile(r"^trough\s+(?P<target>\S+)\s*>=\s*(?P<x>[0-9.]+)\s*(?P<pct>%)?" + _WEEKS
                     + r"\s*$", re.I)
_EXPOSURE = re.compile(r"^exposure\s+(?P<agent>\S+)\s*>=\s*(?P<x>[0-9.]+)\s*(?P<unit>\S+)?"
                       + _WEEKS + r"\s*$", re.I)
_INFUSIONS = re.compile(r"^infusions\s*<=\s*(?P<x>[0-9.]+)\s*(?:per\s+year|/\s*year)?\s*$", re.I)


def parse_constraint(text: str, field: str = "constraint") -> Constraint:
    """A constraint from its text form (see the module docstring); weeks default to 0-52.

    Raises :class:`DesignError` naming ``field`` for text that is none of the forms, or an
    exposure unit other than ``ug/mL`` (= ``mg/L``).
    """
    s = text.strip()
    if m := _TROUGH.match(s):
        x = float(m.group("x")) / (100 if m.group("pct") else 1)
        target = _canonical_target(m.group("target"))
        return TroughOccupancy(target, x, *_window(m))
    if m := _EXPOSURE.match(s):
        unit = (m.group("unit") or "ug/mL").lower().replace("µ", "u")
        if unit not in ("ug/ml", "mg/l"):
            raise DesignError(f"exposure is in ug/mL (= mg/L), got unit {m.group('unit')!r} "
                              "(contradictory units)", field)
        try:
            agent = get_agent(m.group("agent")).name
        except RegimenError as err:
            raise DesignError(str(err), field) from None
        return AverageExposure(agent, float(m.group("x")), *_window(m))
    if m := _INFUSIONS.match(s):
        return MaxInfusions(float(m.group("x")))
    raise DesignError(f"cannot read constraint {text!r}; expected 'trough PD-1 >= 0.9 weeks "
                      "12-52', 'exposure nivolumab >= 20 ug/mL weeks 0-52' or 'infusions <= 13 "
                      "per year'", field)


def _canonical_target(name: str) -> str:
    for t in TARGETS:
        if t.lower().replace("-", "") == name.lower().replace("-", ""):
            return t
    return name  # unknown: reported by check() with the list of targets


def _window(m) -> tuple[float, float]:
    return (0.0, 52.0) if m.group("a") is None else (float(m.group("a")), float(m.group("b")))


def _check_window(c, field: str) -> None:
    if not (0 <= c.start < c.end <= 520):
        raise DesignError(f"empty or invalid window weeks {c.start:g}-{c.end:g} (need "
                          "0 <= start < end <= 520)", field)
