"""A design space prepared as arrays, and the pure functions that evaluate regimens in it.

Every candidate schedule (combination of intervals and counts, :mod:`._space`) is laid on the
likelihood solver's flat step grid (:func:`pdmodel.regimen.step_grid`), all padded to one
number of steps and stacked, so one compiled program serves every candidate. Doses are
continuous: the grid's infusion rates are linear in the doses, so the template is rendered
once with every dose at 1 unit (``base``) and once per dose variable at 2 units; the
difference is that variable's rate per unit (``delta``), and a regimen with doses ``d`` has
rates ``base + Σ_k (d_k − 1)·delta_k`` — exact, and differentiable in ``d``. PK is then
propagated exactly on the grid (:func:`pdmodel.irae.solvers.stage_concentrations`) for every
virtual patient, and the PD state of every patient × posterior draw is integrated by
:func:`pdmodel.irae.solvers.max_injury_course` up to the risk horizon.

Constraints use the typical patient's PK on a second grid that covers their windows.
"""

from __future__ import annotations

from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from ..irae import (
    IraeModel,
    IraeProblem,
    Population,
    drug_probability,
    graded_background,
    patient_pd,
)
from ..irae.solvers import RateConstants, max_injury_course, stage_concentrations, stage_effects
from ..pk import occupancy
from ..regimen import StepGrid, flat_step_edges, step_grid
from ..vocab import GRADES, ORGAN_CHOICES, TARGETS
from ._criteria import AverageExposure, Constraint, MaxInfusions, Risk, TroughOccupancy
from ._space import DesignSpace

KIND = {TroughOccupancy: 0, AverageExposure: 1, MaxInfusions: 2}
"""Code of each constraint kind in :attr:`DesignArrays.kinds`."""


class Grids(eqx.Module):
    """Candidate schedules on one step grid each, stacked ``[cand, ...]``.

    ``grid``: rates with every dose variable at 1 unit; ``delta_mg``, ``delta_kg``: extra rate
    per unit of each dose variable ``[cand, var, cell, agent]`` (mg/day per mg, mg/kg/day per
    mg/kg).
    """

    grid: StepGrid
    delta_mg: Float[Array, "cand var cell agent"]
    delta_kg: Float[Array, "cand var cell agent"]

    def at(self, cand: Int[Array, ""], doses: Float[Array, " var"]) -> StepGrid:
        """Candidate ``cand``'s grid with doses ``doses`` (each variable in its unit)."""
        g = jax.tree.map(lambda x: x[cand], self.grid)
        extra = doses - 1.0
        return eqx.tree_at(
            lambda s: (s.rate_mg, s.rate_mg_per_kg), g,
            (g.rate_mg + jnp.tensordot(extra, self.delta_mg[cand], 1),
             g.rate_mg_per_kg + jnp.tensordot(extra, self.delta_kg[cand], 1)))


class DesignArrays(eqx.Module):
    """Everything the search evaluates, as arrays (build with :func:`design_arrays`).

    Attributes
    ----------
    risk_grids, metric_grids : candidate grids up to the risk horizon / the last constraint
        window (typical patient).
    models : IraeModel with a leading ``draw`` axis (posterior draws, or the prior model).
    population : virtual patients of the risk.
    patient_pk, typical_pk : PK of each virtual patient ``[patient, agent]`` / the typical
        patient ``[agent]``.
    ec50, targets : serum EC50 (mg/L) ``[agent]``; one-hot agent → target ``[agent, target]``.
    target_index, agent_index : ``[agent]``, as in :class:`pdmodel.IraeProblem`.
    organ, grade : index of the risk's organ choice and grade; ``quantile``: ``nan`` for the
        posterior mean, else the quantile over draws.
    background : include background events; ``horizon``: risk horizon, days.
    kinds, columns : constraint kinds (:data:`KIND`) and the target or agent column of each.
    windows : per candidate and constraint, weight of each metric step ``[cand, con, mstep]``.
    visits : infusion visits in the first 52 weeks ``[cand]``.
    """

    risk_grids: Grids
    metric_grids: Grids
    models: IraeModel
    population: Population
    patient_pk: object
    typical_pk: object
    typical_weight: Float[Array, ""]
    ec50: Float[Array, " agent"]
    targets: Float[Array, "agent target"]
    target_index: Int[Array, " agent"]
    agent_index: Int[Array, " agent"]
    windows: Float[Array, "cand con mstep"]
    visits: Float[Array, " cand"]
    horizon: float
    quantile: float
    kinds: tuple[int, ...] = eqx.field(static=True)
    columns: tuple[int, ...] = eqx.field(static=True)
    organ: int = eqx.field(static=True)
    grade: int = eqx.field(static=True)
    background: bool = eqx.field(static=True)
    michaelis_menten: bool = eqx.field(static=True)

    @property
    def n_draws(self) -> int:
        """Number of posterior draws (1 for the prior model)."""
        return self.models.g_pd1.shape[0]


def design_arrays(space: DesignSpace, risk: Risk, constraints: Sequence[Constraint],
                  models: IraeModel, population: Population, *,
                  extra: Sequence[str] = (), steps_per_day: int = 1,
                  refine: int = 1, models_pk: dict | None = None) -> DesignArrays:
    """Prepare ``space`` (and the fixed regimens ``extra``, appended after the candidates).

    ``models``: IraeModel with a leading draw axis; ``population``: virtual patients (PK
    random-effect slots for the regimen's agents); ``steps_per_day``/``refine``: solver grid
    (:func:`pdmodel.regimen.step_grid`).
    """
    cands = space.candidates()
    ones = dict.fromkeys(space.doses, 1.0)
    regimens = [[space.regimen(ones, c.values)]
                + [space.regimen(ones | {n: 2.0}, c.values) for n in space.doses]
                for c in cands]
    regimens += [[r] + [r] * len(space.doses) for r in extra]  # fixed: zero deltas
    agents = space.agents
    risk_days = risk.days
    ends = [c.end for c in constraints if not isinstance(c, MaxInfusions)]
    metric_days = max(1, int(np.ceil(7 * max(ends)))) if ends else 1
    kw = dict(steps_per_day=steps_per_day, refine=refine)
    risk_grids = _stack(regimens, agents, risk_days, **kw)
    metric_grids = (risk_grids if metric_days == risk_days
                    else _stack(regimens, agents, metric_days, **kw))
    problem = IraeProblem.build(regimens[0][0], days=1, models=models_pk)
    typical = Population.typical(1, weight_kg=float(jnp.median(population.weight_kg)),
                                 max_agents=population.z_pk.shape[1])
    pk_of = jax.jit(lambda pop: problem.patient_pk(pop))  # one program, not op by op
    kinds, columns, windows = [], [], []
    for c in constraints:
        kinds.append(KIND[type(c)])
        if isinstance(c, TroughOccupancy):
            columns.append(TARGETS.index(c.target))
        elif isinstance(c, AverageExposure):
            columns.append(agents.index(c.agent))
        else:
            columns.append(0)
        windows.append(_window_weights(np.asarray(metric_grids.grid.edges), c))
    n_cand = len(regimens)
    windows = (np.stack(windows, axis=1) if windows
               else np.zeros((n_cand, 0, metric_grids.grid.edges.shape[1] - 1)))
    visits = [len({round(i.start, 6) for i in r[0].infusions(days=364.0, weight_kg=1.0)})
              for r in regimens]
    return DesignArrays(
        risk_grids=risk_grids, metric_grids=metric_grids, models=models, population=population,
        patient_pk=pk_of(population), typical_pk=jax.tree.map(lambda x: x[0], pk_of(typical)),
        typical_weight=typical.weight_kg[0],
        ec50=problem.ec50, targets=problem.targets, target_index=problem.target_index,
        agent_index=problem.agent_index, windows=jnp.asarray(windows),
        visits=jnp.asarray(visits, float), horizon=float(risk_days),
        quantile=float("nan") if risk.quantile is None else float(risk.quantile),
        kinds=tuple(kinds), columns=tuple(columns), organ=ORGAN_CHOICES.index(risk.organ),
        grade=GRADES.index(risk.grade), background=bool(risk.background),
        michaelis_menten=problem.michaelis_menten,
    )


def subset(arr: DesignArrays, draws: int, patients: int) -> DesignArrays:
    """``arr`` with only its first ``draws`` posterior draws and ``patients`` patients (the
    relaxed search's cheaper objective)."""
    def first(tree, n):
        return jax.tree.map(lambda x: x[:n], tree)

    return eqx.tree_at(lambda a: (a.models, a.population, a.patient_pk), arr,
                       (first(arr.models, draws), first(arr.population, patients),
                        first(arr.patient_pk, patients)))


def _stack(regimens, agents, days: int, *, steps_per_day: int, refine: int) -> Grids:
    """:class:`Grids` of ``regimens`` (per candidate: base, then one per dose variable);
    stacked in numpy (no per-array device work)."""
    n_steps = max(flat_step_edges(r, days, steps_per_day, refine).size - 1
                  for rs in regimens for r in rs)
    grids, d_mg, d_kg = [], [], []
    for rs in regimens:
        gs = [jax.tree.map(np.asarray, step_grid(r, agents, days, steps_per_day, refine,
                                                 n_steps)) for r in rs]
        base = gs[0]
        for g in gs[1:]:
            if not np.array_equal(g.edges, base.edges):
                raise AssertionError("dose variables must not move infusions (internal error)")
        grids.append(base)
        shape = (len(gs) - 1,) + base.rate_mg.shape
        d_mg.append(np.reshape([g.rate_mg - base.rate_mg for g in gs[1:]], shape))
        d_kg.append(np.reshape([g.rate_mg_per_kg - base.rate_mg_per_kg for g in gs[1:]], shape))
    stacked = jax.tree.map(lambda *x: jnp.asarray(np.stack(x)), *grids)
    return Grids(stacked, jnp.asarray(np.stack(d_mg)), jnp.asarray(np.stack(d_kg)))


def _window_weights(edges: np.ndarray, c: Constraint) -> np.ndarray:
    """Weight of each step ``[cand, step]`` in constraint ``c``'s window: the step length
    (days) for steps inside weeks ``start``-``end`` (exposure averages), else 0."""
    lo, hi = edges[:, :-1], edges[:, 1:]
    if isinstance(c, MaxInfusions):
        return np.zeros(lo.shape)
    inside = (lo >= 7 * c.start - 1e-9) & (hi <= 7 * c.end + 1e-9) & (hi > lo)
    return np.where(inside, hi - lo, 0.0)


def risk_draws(arr: DesignArrays, cand: Int[Array, ""],
               doses: Float[Array, " var"]) -> Float[Array, " draw"]:
    """Risk of the objective (fraction of patients, 0-1) for each posterior draw ``[draw]``:
    candidate ``cand`` with ``doses`` (each dose variable in its unit)."""
    grid = arr.risk_grids.at(cand, doses)
    pop = arr.population
    conc = jax.vmap(lambda pk, w, stop: stage_concentrations(
        pk, grid, w, stop, michaelis_menten=arr.michaelis_menten))(
        arr.patient_pk, pop.weight_kg, pop.stop_day)  # [patient, step, 3, agent]
    organ, grade = arr.organ, arr.grade

    def one(model: IraeModel):
        ec50 = arr.ec50 * model.ec50_scale[arr.target_index]
        weight = jnp.exp(model.agent_effect[arr.agent_index])
        pd = patient_pd(model, pop)
        rates = RateConstants.of(model)

        def patient(c, pd_i):
            eff = stage_effects(model, c, ec50, arr.targets, weight)
            return max_injury_course(rates, pd_i, eff, grid.edges)

        m = jax.vmap(patient)(conc, pd)  # [patient, organ]
        p = drug_probability(model, m)[..., grade]  # [patient, organ]
        if arr.background:
            p_bg = -jnp.expm1(-graded_background(model.background)[:, grade] * arr.horizon)
            p = 1.0 - (1.0 - p) * (1.0 - p_bg)
        p = 1.0 - jnp.prod(1.0 - p, axis=-1) if organ == 0 else p[:, organ - 1]
        return jnp.mean(p)

    return jax.vmap(one)(arr.models)


def summarise(arr: DesignArrays, draws: Float[Array, "*batch draw"]) -> Float[Array, "*batch"]:
    """The risk statistic over draws: mean, or the quantile :attr:`DesignArrays.quantile`."""
    if np.isnan(arr.quantile):
        return jnp.mean(draws, axis=-1)
    return jnp.quantile(draws, arr.quantile, axis=-1)


def metrics(arr: DesignArrays, cand: Int[Array, ""],
            doses: Float[Array, " var"]) -> Float[Array, " con"]:
    """Each constraint's metric for candidate ``cand`` with ``doses`` ``[con]``: trough
    occupancy (0-1), average concentration (µg/mL) or minus the infusion visits a year, so
    that every constraint reads ``metric >= level``."""
    if not arr.kinds:
        return jnp.zeros(0)
    grid = arr.metric_grids.at(cand, doses)
    conc = stage_concentrations(arr.typical_pk, grid, arr.typical_weight, jnp.inf,
                                michaelis_menten=arr.michaelis_menten)  # [step, 3, agent]
    occ = occupancy(conc, arr.ec50, arr.targets)  # [step, 3, target]
    out = []
    for j, (kind, col) in enumerate(zip(arr.kinds, arr.columns, strict=True)):
        w = arr.windows[cand, j]
        if kind == 0:
            ends = jnp.minimum(occ[:, 0, col], occ[:, 2, col])
            out.append(jnp.min(jnp.where(w > 0, ends, 1.0)))
        elif kind == 1:
            c = conc[:, :, col]
            mean = (c[:, 0] + 4.0 * c[:, 1] + c[:, 2]) / 6.0  # Simpson over each step
            out.append(jnp.sum(w * mean) / jnp.sum(w))
        else:
            out.append(-arr.visits[cand])
    return jnp.stack(out)


def constraint_scales(constraints: Sequence[Constraint]) -> np.ndarray:
    """Scale of each constraint's violation (occupancy: ``1 − level``; exposure: the level;
    infusions: the maximum), so that penalties are comparable."""
    out = []
    for c in constraints:
        if isinstance(c, TroughOccupancy):
            out.append(max(1.0 - c.at_least, 0.01))
        elif isinstance(c, AverageExposure):
            out.append(c.at_least)
        else:
            out.append(c.per_year)
    return np.asarray(out, float)

