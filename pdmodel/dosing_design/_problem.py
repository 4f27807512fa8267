"""``DesignProblem``: a checked specification prepared once, solved for any constraint levels.

:func:`pdmodel.design` and :func:`pdmodel.dosing_design.trade_off` build one and call
:meth:`DesignProblem.solve`; the brute-force check (:meth:`DesignProblem.brute_force`) and
the reference regimens of a trade-off plot are evaluated by the same compiled programs.
"""

from __future__ import annotations

import inspect
import itertools
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from ..errors import DesignError, DesignInfeasibleError, RegimenError
from ..fit import Fit, FitSpec, load_fit
from ..irae import IraeModel, Population
from ..regimen import Regimen
from ._arrays import DesignArrays, constraint_scales, design_arrays, subset
from ._criteria import Constraint, MaxInfusions, Risk, parse_constraint
from ._search import Evaluator, Relaxed, local_search, nearest, relaxed_search
from ._space import DesignSpace, design_space

FULL_CHECK_POINTS = 200_000
"""Largest space whose constraint metrics are all computed before the search."""


@dataclass(frozen=True)
class DesignResult:
    """The designed regimen and how it was found.

    Attributes
    ----------
    regimen : regimen text (parses with :meth:`pdmodel.Regimen.parse`).
    doses, schedule : value of each dose variable (its unit) and discrete variable.
    risk : the objective's statistic (fraction of patients, 0-1).
    risk_mean, risk_lower, risk_upper : posterior mean and 90% credible interval (5th, 95th
        percentiles over draws) of the population risk.
    metrics : value of each constraint's metric (by the constraint's text).
    objective : the risk's description; ``constraints``: their texts at the levels used.
    evaluations : regimens whose risk was simulated (relaxed search excluded).
    relaxed : the relaxed search's result per start; ``seconds``: wall time of the solve.
    """

    regimen: str
    doses: dict[str, float]
    schedule: dict[str, int]
    risk: float
    risk_mean: float
    risk_lower: float
    risk_upper: float
    metrics: dict[str, float]
    objective: str
    constraints: tuple[str, ...]
    evaluations: int
    relaxed: Relaxed | None = field(repr=False, default=None)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        """JSON-ready summary (no relaxed history)."""
        return {"regimen": self.regimen, "doses": self.doses, "schedule": self.schedule,
                "risk": self.risk, "risk_mean": self.risk_mean, "risk_lower": self.risk_lower,
                "risk_upper": self.risk_upper, "metrics": self.metrics,
                "objective": self.objective, "constraints": list(self.constraints),
                "evaluations": self.evaluations, "seconds": self.seconds}

    def __str__(self) -> str:
        lines = [f"regimen: {self.regimen}",
                 f"risk ({self.objective}): {self.risk:.4f} (posterior mean {self.risk_mean:.4f},"
                 f" 90% CrI {self.risk_lower:.4f}-{self.risk_upper:.4f})"]
        lines += [f"  {name}: {value:.4g}" for name, value in self.metrics.items()]
        return "\n".join(lines)


@dataclass
class DesignProblem:
    """A design specification prepared as arrays (build with :meth:`build`)."""

    space: DesignSpace
    risk: Risk
    constraints: tuple[Constraint, ...]
    arrays: DesignArrays
    references: tuple[str, ...]
    seed: int
    evaluator: Evaluator = field(repr=False)

    @classmethod
    def build(cls, template: str, variables: Mapping, *,
              constraints: Sequence[Constraint | str] = (), risk: Risk | None = None,
              fit: Fit | str | Path | None = None, covariates: Mapping | None = None,
              draws: int = 32, patients: int = 16, seed: int = 0,
              references: Sequence[str] = ()) -> DesignProblem:
        """Check the specification (:class:`DesignError` naming the field) and prepare it.

        See :func:`pdmodel.design` for the arguments.
        """
        risk = Risk() if risk is None else risk
        if not isinstance(risk, Risk):
            raise DesignError(f"expected a Risk, got {type(risk).__name__}", "risk")
        risk.check()
        space = design_space(template, variables)
        cons = tuple(parse_constraint(c, f"constraints[{i}]") if isinstance(c, str) else c
                     for i, c in enumerate(constraints))
        for i, c in enumerate(cons):
            c.check(f"constraints[{i}]", space.agents)
        for name, value in (("draws", draws), ("patients", patients)):
            if not (isinstance(value, int | np.integer) and value >= 1):
                raise DesignError(f"must be a positive integer, got {value!r}", name)
        key = jax.random.key(seed)
        models, model_cfg = _models(fit, int(draws), jax.random.fold_in(key, 1))
        pop = _population(covariates, int(patients), len(space.agents), model_cfg,
                          jax.random.fold_in(key, 2))
        refs = []
        for i, text in enumerate(references):
            try:
                reg = Regimen.parse(text)
            except RegimenError as err:
                raise DesignError(str(err), f"references[{i}]") from None
            if reg.agents != space.agents:
                raise DesignError(f"{text!r} doses {reg.agents}, the template "
                                  f"{space.agents}: a reference must dose the same agents in "
                                  "the same order", f"references[{i}]")
            refs.append(reg)
        arrays = design_arrays(space, risk, cons, models, pop, extra=refs,
                               steps_per_day=model_cfg.get("steps_per_day", 1),
                               refine=model_cfg.get("refine", 1),
                               models_pk=model_cfg.get("pk_models"))
        values = [d.values() for d in space.doses.values()]
        return cls(space, risk, cons, arrays, tuple(str(r) for r in refs), int(seed),
                   Evaluator(arrays, values))

    # -- shapes and levels --------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        """Number of choices of each discrete variable."""
        return self.space.shape

    @property
    def n_candidates(self) -> int:
        """Candidate schedules (references excluded)."""
        return int(np.prod(self.shape)) if self.shape else 1

    def levels(self, levels: Sequence[float] | None = None) -> np.ndarray:
        """Each constraint's level as a lower bound on its metric ``[con]``."""
        if levels is None:
            return np.array([c.at_least for c in self.constraints], float)
        levels = np.asarray(levels, float)
        if levels.shape != (len(self.constraints),):
            raise DesignError(f"expected {len(self.constraints)} levels, got {levels.shape}",
                              "levels")
        return np.where([isinstance(c, MaxInfusions) for c in self.constraints], -levels,
                        levels)

    # -- solving --------------------------------------------------------------------------
    def solve(self, levels: Sequence[float] | None = None, *, starts: int = 3,
              steps: int = 25, relaxed_draws: int = 8,
              relaxed_patients: int = 8) -> DesignResult:
        """Minimise the risk subject to the constraints (at ``levels``, default their own).

        The relaxed search runs on the first ``relaxed_draws`` draws × ``relaxed_patients``
        patients (it only has to find the region); rounding and the local search use all.

        Raises :class:`DesignInfeasibleError` when no regimen of the space meets them.
        """
        t0 = time.perf_counter()
        lv = self.levels(levels)
        scales = constraint_scales(self.constraints)
        before = len(self.evaluator.risk)
        self._check_feasible(lv, scales)
        relaxed = self._relaxed(lv, scales, starts, steps, relaxed_draws, relaxed_patients)
        seeds = []
        for d, t in zip(relaxed.doses, relaxed.positions, strict=True):
            pos = tuple(int(round(x)) for x in t)
            cand = int(np.ravel_multi_index(pos, self.shape)) if self.shape else 0
            idx = [nearest(v, x) for v, x in zip(self.evaluator.values, d, strict=True)]
            up = [min(i + 1, len(v) - 1) for i, v in zip(idx, self.evaluator.values, strict=True)]
            seeds += [(cand, *idx), (cand, *up)]
        best = local_search(self.evaluator, seeds, self.shape or (1,), lv, scales)
        if best is None:
            best = self._any_feasible(lv, scales)
        return self._result(best, lv, relaxed, len(self.evaluator.risk) - before,
                            time.perf_counter() - t0)

    def _relaxed(self, lv, scales, starts: int, steps: int, n_draws: int,
                 n_patients: int) -> Relaxed:
        doses = list(self.space.doses.values())
        lo = jnp.asarray([d.lo for d in doses], float)
        hi = jnp.asarray([d.hi for d in doses], float)
        shape = self.shape or (1,)
        key = jax.random.fold_in(jax.random.key(self.seed), 3)
        k1, k2 = jax.random.split(key)
        u_d = jax.random.uniform(k1, (starts, len(doses)), minval=0.1, maxval=0.9)
        u_t = jax.random.uniform(k2, (starts, len(shape)), minval=0.1, maxval=0.9)
        u_d, u_t = u_d.at[0].set(0.5), u_t.at[0].set(0.5)  # first start: the middle
        mid = (int(np.ravel_multi_index(tuple(n // 2 for n in shape), shape)),
               *(len(v) // 2 for v in self.evaluator.values))
        scale = max(float(self.evaluator.statistic(self.evaluator.risks([mid])[0])), 1e-4)
        z, y, history = relaxed_search(
            subset(self.arrays, n_draws, n_patients), jax.scipy.special.logit(u_d),
            jax.scipy.special.logit(u_t), lo, hi,
            jnp.asarray(lv), jnp.asarray(scales), jnp.asarray(scale), shape=shape,
            steps=int(steps))
        tmax = np.array([n - 1 for n in shape], float)
        d = np.asarray(lo + (hi - lo) * jax.nn.sigmoid(z))
        t = tmax * np.asarray(jax.nn.sigmoid(y))
        return Relaxed(d, t, np.asarray(history))

    def _all_points(self) -> list[tuple]:
        ranges = [range(self.n_candidates)] + [range(len(v)) for v in self.evaluator.values]
        return list(itertools.product(*ranges))

    def _check_feasible(self, lv, scales) -> None:
        if not self.constraints:
            return
        size = self.n_candidates * int(np.prod([len(v) for v in self.evaluator.values]))
        if size > FULL_CHECK_POINTS:
            return
        points = self._all_points()
        m = self.evaluator.metrics(points)
        ok = np.all(m >= lv - 1e-12, axis=1)
        if ok.any():
            return
        lines = []
        for j, c in enumerate(self.constraints):
            k = int(np.argmax(m[:, j]))
            best = -m[k, j] if isinstance(c, MaxInfusions) else m[k, j]
            lines.append(f"constraints[{j}] '{c}': best in the space {best:.4g} "
                         f"({self.regimen_of(points[k])})")
        both = "" if len(self.constraints) == 1 else (
            " (each constraint's best is shown; together they exclude every regimen)")
        raise DesignInfeasibleError(
            "no regimen of the design space meets the constraints" + both + ":\n"
            + "\n".join(lines) + "\nwiden the ranges or relax a level", "constraints")

    def _any_feasible(self, lv, scales) -> tuple:
        points = self._all_points()
        m = self.evaluator.metrics(points)
        ok = [p for p, mi in zip(points, m, strict=True) if np.all(mi >= lv - 1e-12)]
        if not ok:
            raise DesignInfeasibleError("no regimen found that meets the constraints",
                                        "constraints")
        return local_search(self.evaluator, ok[:1], self.shape or (1,), lv, scales)

    # -- evaluation -------------------------------------------------------------------------
    def regimen_of(self, point: tuple) -> str:
        """Regimen text of ``point = (cand, dose index, ...)``."""
        doses, sched = self._values(point, self.evaluator)
        return self.space.render(doses, tuple(sched.values()))

    def _values(self, point, ev: Evaluator):
        cand = self.space.candidates()[point[0]]
        doses = dict(zip(self.space.doses, (float(x) for x in ev.doses(point)), strict=True))
        sched = dict(zip(self.space.discrete, cand.values, strict=True))
        return doses, sched

    def _result(self, point, lv, relaxed, evaluations, seconds, ev: Evaluator | None = None):
        ev = ev or self.evaluator
        draws = ev.risks([point])[0]
        m = ev.metrics([point])[0]
        doses, sched = self._values(point, ev)
        mets = {}
        cons = []
        for c, level, value in zip(self.constraints, lv, m, strict=True):
            inf = isinstance(c, MaxInfusions)
            mets[c.name] = float(-value if inf else value)
            cons.append(str(_at_level(c, -level if inf else level)))
        return DesignResult(
            regimen=self.space.render(doses, tuple(sched.values())), doses=doses,
            schedule=sched, risk=float(ev.statistic(draws)), risk_mean=float(draws.mean()),
            risk_lower=float(np.quantile(draws, 0.05)),
            risk_upper=float(np.quantile(draws, 0.95)), metrics=mets,
            objective=str(self.risk), constraints=tuple(cons), evaluations=int(evaluations),
            relaxed=relaxed, seconds=float(seconds))

    def reference_values(self) -> list[tuple[str, np.ndarray, np.ndarray]]:
        """Each reference regimen's risk per draw ``[draw]`` and metrics ``[con]``."""
        out = []
        ev = Evaluator(self.arrays, [np.ones(1)] * len(self.space.doses))
        for i, text in enumerate(self.references):
            p = (self.n_candidates + i,) + (0,) * len(self.space.doses)
            out.append((text, ev.risks([p])[0], ev.metrics([p])[0]))
        return out

    def brute_force(self, doses: Mapping[str, Sequence[float]] | None = None,
                    levels: Sequence[float] | None = None) -> tuple[DesignResult, int]:
        """Exhaustive search: the risk of every candidate schedule × every combination of
        ``doses`` (by variable; default every allowed dose) that meets the constraints.

        Returns the best feasible regimen and the number of regimens simulated.
        """
        t0 = time.perf_counter()
        lv = self.levels(levels)
        values = [np.asarray(sorted((doses or {}).get(n, d.values())), float)
                  for n, d in self.space.doses.items()]
        ev = Evaluator(self.arrays, values)
        points = list(itertools.product(range(self.n_candidates),
                                        *[range(len(v)) for v in values]))
        m = ev.metrics(points)
        ok = [p for p, mi in zip(points, m, strict=True) if np.all(mi >= lv - 1e-12)]
        if not ok:
            raise DesignInfeasibleError("no point of the grid meets the constraints",
                                        "constraints")
        stats = ev.statistic(ev.risks(ok))
        best = ok[int(np.argmin(stats))]
        return (self._result(best, lv, None, len(ok), time.perf_counter() - t0, ev), len(ok))


def _at_level(c: Constraint, level: float) -> Constraint:
    if isinstance(c, MaxInfusions):
        return MaxInfusions(level)
    return type(c)(*(level if f == "at_least" else getattr(c, f)
                     for f in c.__dataclass_fields__))


def _models(fit, draws: int, key) -> tuple[IraeModel, dict]:
    """Models ``[draw]``: evenly spaced posterior draws of ``fit``, or draws from the priors
    of :meth:`pdmodel.FitSpec.default` (``fit=None``); and the fit's solver settings."""
    if fit is None:
        spec = FitSpec.default()
        u = spec.prior_location() + spec.prior_scale() * jax.random.normal(
            key, (draws, spec.size))
        cfg = {}
    else:
        if not isinstance(fit, Fit):
            fit = load_fit(fit)
        spec = fit.spec
        n = fit.draws.shape[0]
        u = jnp.asarray(fit.draws[np.unique(np.linspace(0, n - 1, min(draws, n)).astype(int))])
        m = fit.config.model
        cfg = {"steps_per_day": m.steps_per_day, "refine": m.refine, "tumour": m.tumour,
               "pk_models": dict(m.pk_models) or None}
    return jax.jit(jax.vmap(lambda v: spec.to_params(v).model))(u), cfg


_COVARIATES = [p for p in inspect.signature(Population.sample).parameters
               if p not in ("cls", "key", "n", "max_agents")]


def _population(covariates, patients: int, n_agents: int, cfg: dict, key) -> Population:
    kw = {"tumour": cfg["tumour"]} if "tumour" in cfg else {}
    for name, value in dict(covariates or {}).items():
        if name not in _COVARIATES:
            raise DesignError(f"unknown covariate; expected one of {_COVARIATES}",
                              f"covariates.{name}")
        kw[name] = value
    try:
        return Population.sample(key, patients, max_agents=n_agents, **kw)
    except ValueError as err:
        raise DesignError(str(err), "covariates") from None
