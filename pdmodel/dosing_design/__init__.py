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


import lazy_loader as _lazy

# names are imported on first use (``__init__.pyi`` lists them): ``import pdmodel`` starts fast
__getattr__, __dir__, _ = _lazy.attach_stub(__name__, __file__)

__all__ = [
    "design", "trade_off", "TradeOff", "DesignProblem", "DesignResult", "Relaxed", "Risk",
    "TroughOccupancy", "AverageExposure", "MaxInfusions", "parse_constraint", "Dose",
    "Interval", "Count", "parse_variable",
]
