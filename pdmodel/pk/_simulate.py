"""``simulate_pk``: regimen → concentration and receptor occupancy as an ``xarray.Dataset``.

The array core (:func:`pk_arrays`) is a pure function of JAX arrays — individual parameters
stacked over agents, padded infusion tables, body weight and output times — so populations
are a ``jax.vmap`` over it. This module only prepares those arrays and labels the result.
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp
import lazy_loader as _lazy
import numpy as np
from jaxtyping import Float

from ..regimen import Regimen
from ..vocab import TARGETS
from ._catalogue import PKModelSpec, pk_model
from ._model import TwoCompartmentPK, stack_models
from ._occupancy import occupancy, potencies, target_matrix
from ._solve import PAD_START, InfusionTable, SolverOptions, concentrations

xr = _lazy.load("xarray")  # imported when a result is built: the library starts fast


def infusion_table(regimen: Regimen, days: float, agents: tuple[str, ...]) -> InfusionTable:
    """Infusions of each of ``agents`` that start before ``days``, padded to one length.

    mg/kg doses are kept in ``dose_mg_per_kg`` so body weight can stay a (traced) array.
    """
    per_agent: dict[str, list] = {a: [] for a in agents}
    for inf in regimen.infusions(days=days, weight_kg=1.0):
        per_agent[inf.agent].append(inf)
    n = max(1, max(len(v) for v in per_agent.values()))
    shape = (len(agents), n)
    start = np.full(shape, PAD_START)
    duration = np.ones(shape)
    fixed = np.zeros(shape)
    per_kg = np.zeros(shape)
    for i, a in enumerate(agents):
        for j, inf in enumerate(per_agent[a]):
            start[i, j] = inf.start
            duration[i, j] = inf.duration
            if inf.unit == "mg/kg":
                per_kg[i, j] = inf.dose
            else:
                fixed[i, j] = inf.dose
    return InfusionTable(
        start=jnp.asarray(start), duration=jnp.asarray(duration),
        dose_mg=jnp.asarray(fixed), dose_mg_per_kg=jnp.asarray(per_kg),
    )


def model_specs(
    regimen: Regimen, models: Mapping[str, str] | None = None
) -> tuple[PKModelSpec, ...]:
    """The PK model of each agent of ``regimen`` (``models`` overrides the defaults)."""
    models = dict(models or {})
    return tuple(pk_model(a, models.get(a)) for a in regimen.agents)


def individual_parameters(
    specs: tuple[PKModelSpec, ...], weight_kg=None, etas=None
) -> TwoCompartmentPK:
    """Individual parameters of each agent stacked on a leading ``agent`` axis.

    ``etas`` is ``None`` or a sequence with one random-effect vector per agent.
    Combination-specific values apply when the other agents are in ``specs``.
    """
    agents = frozenset(s.agent for s in specs)
    return stack_models([
        s.individual(weight_kg, None if etas is None else etas[i], with_agents=agents - {s.agent})
        for i, s in enumerate(specs)
    ])


def pk_arrays(
    pk: TwoCompartmentPK,
    table: InfusionTable,
    weight_kg,
    ts,
    ec50,
    targets,
    *,
    method: str,
    options: SolverOptions = SolverOptions(),
):
    """Concentrations ``[t, agent]`` (mg/L) and occupancy ``[t, target]`` (0-1): the core.

    Pure in its array arguments; ``method`` (``"analytic"`` or ``"ode"``) and ``options`` are
    static. ``jax.vmap`` over ``pk``/``weight_kg`` gives a population.
    """
    conc = concentrations(pk, table, weight_kg, ts, method=method, options=options)
    return conc, occupancy(conc, ec50, targets)


def simulate_pk(
    regimen: Regimen | str,
    *,
    days: float = 365.0,
    weight_kg: float | None = None,
    step: float = 1.0,
    models: Mapping[str, str] | None = None,
    method: str = "auto",
    options: SolverOptions = SolverOptions(),
) -> xr.Dataset:
    """Simulate the typical patient's serum concentrations and receptor occupancy.

    Parameters
    ----------
    regimen : Regimen or its text form (e.g. ``"nivolumab 240 mg q2w"``).
    days : simulated time from the first dose, days.
    weight_kg : body weight, kg. Required for mg/kg doses; ``None`` uses each PK model's
        reference weight (flat doses only).
    step : spacing of the output grid, days.
    models : PK model id per agent, e.g. ``{"pembrolizumab": "elassaiss-schaap2017"}``.
    method : ``"analytic"`` (exact superposition; linear PK only), ``"ode"`` (adaptive solver
        stepping to every infusion start and stop) or ``"auto"`` (analytic when all agents
        have constant linear clearance).
    options : ODE tolerances and step budget.

    Returns
    -------
    xarray.Dataset
        ``concentration[day, agent]`` in µg/mL and ``occupancy[day, target]`` (fraction 0-1)
        for targets PD-1, PD-L1, CTLA-4, with the regimen and PK sources in ``attrs``.

    Raises
    ------
    RegimenError
        Unparseable regimen, or mg/kg doses without ``weight_kg``.
    ValueError
        Bad ``days``, ``step``, ``weight_kg`` or ``method``.

    Examples
    --------
    >>> import pdmodel as pdm
    >>> ds = pdm.simulate_pk("nivolumab 240 mg q2w", days=56)
    >>> float(ds.occupancy.sel(target="PD-1", day=56)) > 0.9
    True
    """
    regimen = _checked_regimen(regimen, days, step, weight_kg)
    specs = model_specs(regimen, models)
    method = _solver_method(specs, method)
    agents = regimen.agents
    ts = np.arange(0.0, days + 0.5 * step, step)
    table = infusion_table(regimen, days, agents)
    pk = individual_parameters(specs, weight_kg)
    ec50 = jnp.array([potencies()[a].ec50 for a in agents])
    wt = 0.0 if weight_kg is None else weight_kg
    conc, occ = jax.jit(pk_arrays, static_argnames=("method", "options"))(
        pk, table, wt, jnp.asarray(ts), ec50, target_matrix(agents),
        method=method, options=options,
    )
    if not np.all(np.isfinite(np.asarray(conc))):
        raise RuntimeError(
            "the PK ODE solver failed (non-finite concentrations); try a larger "
            "options.max_steps or looser tolerances"
        )
    return _pk_dataset(regimen, specs, weight_kg, method, ts, conc, occ)


def _checked_regimen(regimen: Regimen | str, days: float, step: float,
                     weight_kg: float | None) -> Regimen:
    """``regimen`` parsed, after checking :func:`simulate_pk`'s ``days``, ``step`` and
    ``weight_kg`` (required for mg/kg doses)."""
    if isinstance(regimen, str):
        regimen = Regimen.parse(regimen)
    _check_positive("days", days)
    _check_positive("step", step)
    if weight_kg is not None:
        _check_positive("weight_kg", weight_kg)
    if regimen.needs_weight and weight_kg is None:
        regimen.infusions(days=days, weight_kg=None)  # raises MissingWeightError with details
    return regimen


def _solver_method(specs: tuple[PKModelSpec, ...], method: str) -> str:
    """``"analytic"`` or ``"ode"`` for ``method`` (``"auto"``: analytic when every agent has
    constant linear clearance); raises if analytic is asked for nonlinear PK."""
    if method == "auto":
        method = "analytic" if all(s.linear for s in specs) else "ode"
    if method == "analytic" and not all(s.linear for s in specs):
        nonlinear = [s.agent for s in specs if not s.linear]
        raise ValueError(
            f"method='analytic' needs constant linear clearance, but {nonlinear} have "
            "time-varying or target-mediated clearance; use method='ode' or 'auto'"
        )
    return method


def _pk_dataset(regimen: Regimen, specs: tuple[PKModelSpec, ...], weight_kg: float | None,
                method: str, ts: Float[np.ndarray, " day"], conc, occ) -> xr.Dataset:
    """:func:`simulate_pk`'s labelled dataset: concentrations ``[day, agent]`` (mg/L) and
    occupancy ``[day, target]`` at ``ts`` (days), with the regimen and sources in ``attrs``."""
    agents = regimen.agents
    pot = potencies()
    return xr.Dataset(
        {
            "concentration": (("day", "agent"), np.asarray(conc),
                              {"units": "ug/mL", "long_name": "serum concentration"}),
            "occupancy": (("day", "target"), np.asarray(occ),
                          {"units": "1", "long_name": "fractional receptor occupancy"}),
        },
        coords={"day": ("day", ts, {"units": "day"}), "agent": list(agents),
                "target": list(TARGETS)},
        attrs={
            "regimen": str(regimen),
            "weight_kg": "model reference" if weight_kg is None else float(weight_kg),
            "method": method,
            "pk_models": "; ".join(f"{s.agent}: {s.model} ({s.source})" for s in specs),
            "potency": "; ".join(f"{a}: EC50 {pot[a].ec50:g} ug/mL ({pot[a].source})"
                                 for a in agents),
        },
    )


def _check_positive(name: str, value) -> None:
    try:
        ok = bool(np.isfinite(value) and value > 0)
    except TypeError:
        ok = False
    if not ok:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
