"""The public entry points: :func:`design` and :func:`trade_off` (with :class:`TradeOff`)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DesignError, DesignInfeasibleError
from ..fit import Fit
from ..io import atomic_write_bytes, atomic_write_text
from ._criteria import Constraint, MaxInfusions, Risk, parse_constraint
from ._problem import DesignProblem, DesignResult


def design(template: str, variables: Mapping, *, constraints: Sequence[Constraint | str] = (),
           risk: Risk | None = None, fit: Fit | str | Path | None = None,
           covariates: Mapping | None = None, draws: int = 32, patients: int = 16,
           starts: int = 3, steps: int = 25, seed: int = 0) -> DesignResult:
    """The regimen of lowest severe-irAE risk that meets the constraints.

    Parameters
    ----------
    template : str
        Regimen text with placeholders, e.g. ``"nivolumab {dose} q{interval}w"`` or
        ``"nivolumab 480 mg q4w + ipilimumab {ipi} q{every}w x{n}"``.
    variables : mapping of str to Dose, Interval, Count or text
        One per placeholder: ``"1-10 mg/kg"``, ``"240-960 mg vial 40"``, ``"2-8 weeks"``,
        ``"3,6,12 weeks"``, ``"1-4 doses"`` (:func:`pdmodel.dosing_design.parse_variable`).
    constraints : sequence of constraints or their text
        ``"trough PD-1 >= 0.9 weeks 12-52"``, ``"exposure nivolumab >= 20 ug/mL weeks 0-52"``,
        ``"infusions <= 13 per year"`` (:mod:`pdmodel.dosing_design`).
    risk : Risk
        The objective (default: grade ≥ 3 irAE of any organ by week 52, posterior mean).
    fit : Fit, run folder or None
        Posterior of a calibrated fit (``load_fit``); ``None``: draws from the priors.
    covariates : mapping
        Keyword arguments of :meth:`pdmodel.Population.sample` (``tumour``,
        ``preexisting_ad``, ``weight_kg``, ``median_duration_days``, ...); by default the
        fit's tumour, 80 kg, no pre-existing autoimmune disease, treatment throughout.
    draws, patients : posterior draws (evenly spaced) and virtual patients per draw.
    starts, steps : starts and Adam steps of the relaxed search.
    seed : seed of the population, prior draws and starts.

    Returns
    -------
    DesignResult

    Raises
    ------
    DesignError
        A bad specification; ``err.field`` names the variable, constraint or option.
    DesignInfeasibleError
        No regimen of the space meets the constraints (the message gives each constraint's
        best level in the space).

    Examples
    --------
    >>> import pdmodel as pdm
    >>> res = pdm.design("nivolumab {dose} q{interval}w",
    ...                  {"dose": "1-3 mg/kg step 1", "interval": "2-3 weeks"},
    ...                  constraints=["trough PD-1 >= 0.9 weeks 4-8"],
    ...                  risk=pdm.Risk(week=8), draws=2, patients=2, starts=1, steps=3)
    >>> pdm.Regimen.parse(res.regimen).agents, 0 <= res.risk <= 1
    (('nivolumab',), True)
    """
    problem = DesignProblem.build(template, variables, constraints=constraints, risk=risk,
                                  fit=fit, covariates=covariates, draws=draws,
                                  patients=patients, seed=seed)
    return problem.solve(starts=starts, steps=steps)


@dataclass(frozen=True)
class TradeOff:
    """The Pareto front of a trade-off sweep (:func:`trade_off`).

    Attributes
    ----------
    sweep : the swept constraint (its text at the first level); ``metric``: its metric.
    levels : the swept levels.
    results : the design at each level (``None`` where infeasible).
    references : (regimen, risk per draw, metrics) of each labelled regimen.
    objective : the risk's description.
    """

    sweep: str
    metric: str
    levels: tuple[float, ...]
    results: tuple[DesignResult | None, ...]
    references: tuple[tuple[str, np.ndarray, np.ndarray], ...]
    objective: str
    sweep_index: int = 0

    def rows(self) -> list[dict]:
        """One row per level and per reference regimen (CSV/JSON records)."""
        out = []
        for level, r in zip(self.levels, self.results, strict=True):
            if r is None:
                out.append({"kind": "optimum", "level": level, "feasible": False,
                            "regimen": "", "risk": np.nan, "risk_mean": np.nan,
                            "risk_lower": np.nan, "risk_upper": np.nan, "metric": np.nan})
                continue
            out.append({"kind": "optimum", "level": level, "feasible": True,
                        "regimen": r.regimen, "risk": r.risk, "risk_mean": r.risk_mean,
                        "risk_lower": r.risk_lower, "risk_upper": r.risk_upper,
                        "metric": r.metrics[self.metric]})
        for text, draws, m in self.references:
            value = float(m[self.sweep_index])
            out.append({"kind": "reference", "level": np.nan, "feasible": True,
                        "regimen": text, "risk": float(draws.mean()),
                        "risk_mean": float(draws.mean()),
                        "risk_lower": float(np.quantile(draws, 0.05)),
                        "risk_upper": float(np.quantile(draws, 0.95)),
                        "metric": -value if "infusion" in self.metric else value})
        return out

    def to_csv(self) -> str:
        """The rows as CSV text."""
        buf = io.StringIO()
        rows = self.rows()
        w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        w.writeheader()
        for row in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
        return buf.getvalue()

    def to_json(self) -> str:
        """The front as JSON text (``nan`` written as ``null``)."""
        rows = [{k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in r.items()}
                for r in self.rows()]
        return json.dumps({"objective": self.objective, "sweep": self.sweep,
                           "metric": self.metric, "interval": 0.9, "rows": rows}, indent=2)

    def plot(self, ax=None):
        """Risk (posterior mean, 90% credible band) against the swept metric, with the
        reference regimens labelled. Returns the matplotlib figure."""
        import matplotlib

        if ax is None:
            matplotlib.use("Agg", force=False)
            import matplotlib.pyplot as plt

            fig, ax = plt.subplots(figsize=(7.5, 4.8))
        else:
            fig = ax.figure
        rows = [r for r in self.rows() if r["kind"] == "optimum" and r["feasible"]]
        x = np.array([r["metric"] for r in rows])
        pct = 100.0
        ax.fill_between(x, pct * np.array([r["risk_lower"] for r in rows]),
                        pct * np.array([r["risk_upper"] for r in rows]), alpha=0.25,
                        color="tab:red", label="90% credible band")
        ax.plot(x, pct * np.array([r["risk_mean"] for r in rows]), "o-", color="tab:red",
                label="optimal regimen (posterior mean)")
        for r in rows:
            ax.annotate(r["regimen"], (r["metric"], pct * r["risk_mean"]), fontsize=6,
                        xytext=(3, 3), textcoords="offset points", color="tab:red")
        for r in (r for r in self.rows() if r["kind"] == "reference"):
            ax.errorbar(r["metric"], pct * r["risk_mean"],
                        yerr=[[pct * (r["risk_mean"] - r["risk_lower"])],
                              [pct * (r["risk_upper"] - r["risk_mean"])]],
                        fmt="s", color="k", ms=5, capsize=3)
            ax.annotate(r["regimen"], (r["metric"], pct * r["risk_mean"]), fontsize=7,
                        xytext=(4, -10), textcoords="offset points")
        ax.set(xlabel=self.metric, ylabel=f"{self.objective} (%)",
               title="Trade-off: lowest risk at each constraint level")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        return fig

    def write(self, folder: str | Path, stem: str = "tradeoff") -> list[Path]:
        """Write ``<stem>.csv``, ``<stem>.json`` and ``<stem>.png`` to ``folder`` (atomic)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        paths = [folder / f"{stem}.{ext}" for ext in ("csv", "json", "png")]
        atomic_write_text(paths[0], self.to_csv())
        atomic_write_text(paths[1], self.to_json())
        fig = self.plot()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=120)
        atomic_write_bytes(paths[2], buf.getvalue())
        import matplotlib.pyplot as plt

        plt.close(fig)
        return paths


def trade_off(template: str, variables: Mapping, sweep: Constraint | str,
              levels: Sequence[float], *, constraints: Sequence[Constraint | str] = (),
              references: Sequence[str] = (), risk: Risk | None = None,
              fit: Fit | str | Path | None = None, covariates: Mapping | None = None,
              draws: int = 32, patients: int = 16, starts: int = 3, steps: int = 25,
              seed: int = 0) -> TradeOff:
    """The Pareto front: the lowest risk at each level of the ``sweep`` constraint.

    For each level, the regimen of :func:`design` with the ``sweep`` constraint at that level
    (the other ``constraints`` at their own). The specification (space, posterior draws,
    virtual patients) is prepared once for every level. Levels no regimen meets are kept as
    infeasible rows.

    Parameters
    ----------
    template : str
        Regimen text with placeholders, as in :func:`design`.
    variables : mapping of str to Dose, Interval, Count or text
        One per placeholder, as in :func:`design`.
    sweep : constraint or its text
        The constraint swept, e.g. ``"trough PD-1 >= 0.9 weeks 12-52"``; its own level is
        replaced by each of ``levels``.
    levels : sequence of float
        Levels of ``sweep``, in its unit: fractions 0-1 for occupancy, µg/mL for exposure,
        visits per year for infusions.
    constraints : sequence of constraints or their text
        Further constraints, at their own levels at every point of the front.
    references : sequence of str
        Regimens (same agents as the template) evaluated for comparison: rows of kind
        ``"reference"`` and labelled points on the plot.
    risk : Risk
        The objective (default: grade ≥ 3 irAE of any organ by week 52, posterior mean).
    fit : Fit, run folder or None
        Posterior of a calibrated fit (``load_fit``); ``None``: draws from the priors.
    covariates : mapping
        Keyword arguments of :meth:`pdmodel.Population.sample`, as in :func:`design`.
    draws, patients : int
        Posterior draws (evenly spaced) and virtual patients per draw.
    starts, steps : int
        Starts and Adam steps of the relaxed search at each level.
    seed : int
        Seed of the population, prior draws and starts.

    Returns
    -------
    TradeOff
        The design at each level (``None`` where infeasible) and the reference regimens;
        ``rows()``, ``to_csv()``, ``to_json()``, ``plot()`` and ``write(folder)``
        (``tradeoff.csv``, ``.json``, ``.png``).

    Raises
    ------
    DesignError
        A bad specification (``err.field`` names it), or no ``levels``.

    Examples
    --------
    A level no regimen of the space reaches gives an infeasible row (quick: nothing is
    optimised); feasible levels give the designed regimen, its risk and the swept metric.

    >>> import pdmodel as pdm
    >>> front = pdm.trade_off("nivolumab {dose} q{interval}w",
    ...                       {"dose": "1-3 mg/kg step 1", "interval": "2-3 weeks"},
    ...                       "trough PD-1 >= 0.5 weeks 4-8", [0.999], risk=pdm.Risk(week=8),
    ...                       draws=2, patients=2, starts=1, steps=3)
    >>> front.sweep, front.levels
    ('trough PD-1 >= 0.5 weeks 4-8', (0.999,))
    >>> [(r["kind"], r["level"], r["feasible"]) for r in front.rows()]
    [('optimum', 0.999, False)]
    """
    sweep_c = parse_constraint(sweep, "sweep") if isinstance(sweep, str) else sweep
    if len(levels) == 0:
        raise DesignError("give at least one level to sweep", "levels")
    problem = DesignProblem.build(template, variables, constraints=[sweep_c, *constraints],
                                  risk=risk, fit=fit, covariates=covariates, draws=draws,
                                  patients=patients, seed=seed, references=references)
    base = [getattr(c, "per_year", None) if isinstance(c, MaxInfusions) else c.at_least
            for c in problem.constraints]
    results = []
    for level in levels:
        try:
            results.append(problem.solve([float(level), *base[1:]], starts=starts,
                                         steps=steps))
        except DesignInfeasibleError:
            results.append(None)
    return TradeOff(sweep=str(sweep_c), metric=sweep_c.name,
                    levels=tuple(float(x) for x in levels), results=tuple(results),
                    references=tuple(problem.reference_values()),
                    objective=str(problem.risk))
