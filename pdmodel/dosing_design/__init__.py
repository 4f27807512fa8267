"""Regimen design: the safest schedule that keeps the target engaged.

A *template* (regimen text with placeholders) and its decision variables (:class:`Dose`,
:class:`Interval`, :class:`Count`) span the design space; a :class:`Risk` (grade ≥ g irAE of
an organ by week W, posterior mean or upper quantile) is minimised subject to constraints
(:class:`TroughOccupancy`, :class:`AverageExposure`, :class:`MaxInfusions`, or their text:
``"trough PD-1 >= 0.9 weeks 12-52"``, ``"exposure nivolumab >= 20 ug/mL weeks 0-52"``,
``"infusions <= 13 per year"``). :func:`design` (also ``pdmodel.design``) searches by optax on a
continuous relaxation, then rounds and searches locally on the allowed set
(:mod:`._search`); :func:`trade_off` sweeps a constraint level for the Pareto front;
:meth:`DesignProblem.brute_force` is the exhaustive check. docs/design.md has the details.

The subpackage is called ``dosing_design`` so that ``pdmodel.design`` stays the function.
"""

from ._api import TradeOff as TradeOff
from ._api import design as design
from ._api import trade_off as trade_off
from ._criteria import AverageExposure as AverageExposure
from ._criteria import MaxInfusions as MaxInfusions
from ._criteria import Risk as Risk
from ._criteria import TroughOccupancy as TroughOccupancy
from ._criteria import parse_constraint as parse_constraint
from ._problem import DesignProblem as DesignProblem
from ._problem import DesignResult as DesignResult
from ._search import Relaxed as Relaxed
from ._space import Count as Count
from ._space import Dose as Dose
from ._space import Interval as Interval
from ._space import parse_variable as parse_variable

__all__ = [
    "design", "trade_off", "TradeOff", "DesignProblem", "DesignResult", "Relaxed", "Risk",
    "TroughOccupancy", "AverageExposure", "MaxInfusions", "parse_constraint", "Dose",
    "Interval", "Count", "parse_variable",
]
