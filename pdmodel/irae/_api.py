"""Public simulation API of the irAE model: :func:`simulate`, :func:`incidence` and
:func:`resolution_summary` (checked arguments in, ``xarray`` out)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import lazy_loader as _lazy
import numpy as np
from jaxtyping import Bool, Float

from ..errors import ParameterError, SimulationError
from ..numerics import first_non_finite
from ..regimen import Regimen
from ..vocab import GRADES, ORGAN_CHOICES, ORGANS, check_choices
from ._incidence import incidence_array, incidence_streaming
from ._parameters import IraeModel, check_model_values
from ._population import Population, check_population_values, patient_sharding, put_sharded
from ._problem import REFINE, STEPS_PER_DAY, IraeProblem
from ._rescue import ManagementPolicy, check_policy_values
from .solvers import Daily, Events

xr = _lazy.load("xarray")  # imported when a result is built: the library starts fast

_incidence_jit = eqx.filter_jit(incidence_array)


def _resolve(regimen, pop, days, steps_per_day, refine, models, policy):
    """Validate the public arguments (the regimen text is parsed here, once); build the problem
    and the policy."""
    if isinstance(regimen, str):
        regimen = Regimen.parse(regimen)
    problem = IraeProblem.build(regimen, days=days, steps_per_day=steps_per_day, models=models,
                                refine=refine)
    if not isinstance(pop, Population):
        raise TypeError(f"population must be a pdmodel.Population, got {type(pop).__name__}")
    if pop.size == 0:
        raise ParameterError("is empty (0 patients); sample at least one patient",
                             "population")
    check_population_values(pop)  # also after Population.replace / take (no __init__)
    if pop.z_pk.shape[1] < len(problem.agents):
        raise ValueError(f"population has PK random-effect slots for {pop.z_pk.shape[1]} agents "
                         f"but the regimen has {len(problem.agents)}; sample it with "
                         f"max_agents={len(problem.agents)}")
    policy = ManagementPolicy.none() if policy is None else policy
    check_policy_values(policy)
    return regimen, problem, policy


def simulate(
    model: IraeModel,
    regimen: Regimen | str,
    population: Population,
    *,
    days: int = 365,
    policy: ManagementPolicy | None = None,
    steps_per_day: int = STEPS_PER_DAY,
    refine: int = REFINE,
    models: Mapping[str, str] | None = None,
    devices: Sequence | None = None,
) -> xr.Dataset:
    """Per-patient trajectories of the full model.

    Concentrations, immune state, organ injury, immunosuppressant exposure, grade onsets and
    resolution of every virtual patient, day by day.

    Parameters
    ----------
    model : IraeModel parameters.
    regimen : Regimen or its text.
    population : virtual patients (:class:`Population`).
    days : simulated days from the first dose.
    policy : immunosuppressant management (``None``: no rescue).
    steps_per_day, refine : fixed-grid resolution: PD steps per day, and geometric
        refinement levels inside each infusion (defaults 2 and 2: incidence within ~1e-3 of
        the adaptive reference; raise both for tighter accuracy).
    models : PK model id per agent (defaults: ``pdmodel.DEFAULT_MODELS``).
    devices : split the patients across these devices (e.g. ``jax.devices()``), padding the
        population to a multiple of their number; the output has the original patients only.
        ``None``: as the population is placed (a :meth:`Population.shard`-ed population runs
        on its devices).

    Returns
    -------
    xarray.Dataset
        ``concentration[patient, day, agent]`` (µg/mL), ``effector``, ``plasma_cells``,
        ``autoantibody`` (fold of baseline) ``[patient, day]``, ``injury`` and ``max_injury``
        ``[patient, day, organ]``, ``steroid`` (mg/kg/day) and ``infliximab`` (µg/mL)
        ``[patient, day]``, ``onset[patient, organ, grade]`` (day of the patient's first
        crossing of each grade, NaN if none), ``resolution[patient, organ]`` (day injury fell
        back below grade 1 after a grade >= 2 onset), ``steroid_start[patient]``.

    Examples
    --------
    >>> import jax
    >>> import pdmodel as pdm
    >>> pop = pdm.Population.sample(jax.random.key(0), 4, max_agents=1)
    >>> ds = pdm.simulate(pdm.IraeModel(), "nivolumab 240 mg q2w", pop, days=28,
    ...                   policy=pdm.ManagementPolicy(delay_days=2.0))
    >>> dict(ds.sizes)
    {'patient': 4, 'day': 28, 'agent': 1, 'organ': 6, 'grade': 3}
    >>> ds.concentration.attrs["units"]
    'ug/mL'
    """
    _check_model(model)
    regimen, problem, policy = _resolve(regimen, population, days, steps_per_day, refine, models,
                                        policy)
    n = population.size
    pop = population if devices is None else population.shard(list(devices), pad=True)
    daily, events = eqx.filter_jit(IraeProblem.run)(problem, model, pop, policy)
    daily, events = jax.tree.map(lambda x: np.asarray(x)[:n], (daily, events))
    _check_finite_state(np.asarray(daily.state), regimen)
    return _trajectories(problem, regimen, population, policy, daily, events)


def _nan_inf(x) -> np.ndarray:
    """``x`` as floats with ``inf`` (did not happen) as NaN."""
    x = np.asarray(x, dtype=float)
    return np.where(np.isinf(x), np.nan, x)


def _trajectories(problem: IraeProblem, regimen: Regimen, population: Population,
                  policy: ManagementPolicy, daily: Daily, events: Events) -> xr.Dataset:
    """:func:`simulate`'s labelled dataset from the solver's per-patient ``daily``/``events``
    (numpy, the original patients only)."""
    dayc = np.arange(1, problem.days + 1, dtype=float)
    state = np.asarray(daily.state)
    return xr.Dataset(
        {
            "concentration": (("patient", "day", "agent"), np.asarray(daily.concentration),
                              {"units": "ug/mL"}),
            "effector": (("patient", "day"), state[..., 0], {"units": "fold of normal"}),
            "plasma_cells": (("patient", "day"), state[..., 1], {"units": "fold of baseline"}),
            "autoantibody": (("patient", "day"), state[..., 2], {"units": "fold of normal"}),
            "injury": (("patient", "day", "organ"), state[..., 3:], {"units": "grade-1 threshold"}),
            "max_injury": (("patient", "day", "organ"), np.asarray(daily.max_injury),
                           {"units": "grade-1 threshold"}),
            "steroid": (("patient", "day"), np.asarray(daily.steroid),
                        {"units": "mg/kg/day prednisone-equivalent"}),
            "infliximab": (("patient", "day"), np.asarray(daily.infliximab), {"units": "ug/mL"}),
            "onset": (("patient", "organ", "grade"), _nan_inf(events.onset), {"units": "day"}),
            "resolution": (("patient", "organ"), _nan_inf(events.resolution), {"units": "day"}),
            "steroid_start": (("patient",), _nan_inf(events.steroid_start), {"units": "day"}),
            "infliximab_doses": (("patient",), np.asarray(events.infliximab_doses)),
        },
        coords={"day": dayc, "agent": list(problem.agents), "organ": list(ORGANS),
                "grade": list(GRADES), "patient": np.arange(population.size)},
        attrs={"regimen": str(regimen),
               "policy": "none" if not policy.enabled else repr(policy)},
    )


def incidence(
    model: IraeModel,
    regimen: Regimen | str,
    population: Population,
    *,
    days: int = 365,
    organ: str | Sequence[str] = "any",
    grade: str | Sequence[str] = "any",
    policy: ManagementPolicy | None = None,
    background: bool = True,
    steps_per_day: int = STEPS_PER_DAY,
    refine: int = REFINE,
    models: Mapping[str, str] | None = None,
    batch_size: int | None = None,
    devices: Sequence | None = None,
) -> xr.DataArray:
    """Cumulative incidence of irAEs by day, as a trial would count patients with the event.

    Parameters
    ----------
    model : IraeModel parameters.
    regimen : Regimen or its text.
    population : virtual patients (:class:`Population`).
    days : simulated days from the first dose.
    organ : ``"any"`` (any organ, combined per patient) or one of ``ORGANS``, or a list.
    grade : ``"any"`` (grade >= 1), ``"2+"`` or ``"3+"``, or a list.
    policy : management policy (``None``: natural course, no rescue).
    background : include drug-independent background events (placebo-arm rates).
    steps_per_day, refine : fixed-grid resolution, as in :func:`simulate`.
    models : PK model id per agent (defaults: ``pdmodel.DEFAULT_MODELS``).
    batch_size : simulate at most this many patients at a time and keep only running sums
        (:func:`incidence_streaming`): memory stays bounded however large the population.
    devices : split the patients across these devices (e.g. ``jax.devices()``), padding to a
        multiple of their number (padding copies are left out of the average). ``None``: as
        the population is placed (a :meth:`Population.shard`-ed population runs on its
        devices).

    Returns
    -------
    xarray.DataArray
        Fraction of patients (0-1) with the event by each day; dims ``day`` (1..days), plus
        ``organ``/``grade`` when lists were given.

    Examples
    --------
    >>> import jax
    >>> import pdmodel as pdm
    >>> pop = pdm.Population.sample(jax.random.key(0), 4, max_agents=1)
    >>> inc = pdm.incidence(pdm.IraeModel(), "nivolumab 240 mg q2w", pop, days=28,
    ...                     organ=["any", "gi"], grade="2+")
    >>> inc.dims, inc.sizes["day"]
    (('day', 'organ'), 28)
    >>> bool((inc.diff("day") >= 0).all())  # cumulative
    True
    """
    organs = [organ] if isinstance(organ, str) else list(organ)
    grades = [grade] if isinstance(grade, str) else list(grade)
    check_choices(organs, grades)
    _check_model(model)
    regimen, problem, policy = _resolve(regimen, population, days, steps_per_day, refine, models,
                                        policy)
    arr = _population_incidence(model, problem, population, policy, background, batch_size,
                                devices)
    check_finite_incidence(arr, str(regimen))
    return _select(arr, organ, grade, background)


def _check_model(model) -> None:
    if not isinstance(model, IraeModel):
        raise TypeError(f"model must be a pdmodel.IraeModel, got {type(model).__name__}")
    check_model_values(model)  # also after eqx.tree_at (no __init__)


def check_finite_incidence(arr: Float[np.ndarray, "day organ_choice grade"], regimen: str
                           ) -> None:
    """Raise :class:`~pdmodel.errors.SimulationError` naming the regimen, the first day and the
    organ/grade where incidence ``arr`` is not a finite fraction (a solver failure)."""
    where = first_non_finite(arr)
    if where is not None:
        d, o, g = where
        raise SimulationError(f"incidence of {regimen!r} is not finite from day {d + 1} "
                              f"(organ {ORGAN_CHOICES[o]}, grade {GRADES[g]}): the solver failed; "
                              "check the model parameters, or raise steps_per_day/refine")


def _check_finite_state(state: np.ndarray, regimen) -> None:
    """Raise :class:`~pdmodel.errors.SimulationError` naming the first patient and day whose
    state ``[patient, day, state]`` is not finite."""
    where = first_non_finite(state)
    if where is not None:
        p, d, _ = where
        raise SimulationError(f"simulation of {str(regimen)!r} is not finite for patient {p} "
                              f"from day {d + 1}: the solver failed; check the model "
                              "parameters and the population, or raise steps_per_day/refine")


def _select(arr: Float[np.ndarray, "day organ_choice grade"], organ: str | Sequence[str],
            grade: str | Sequence[str], background: bool) -> xr.DataArray:
    """The ``organ``/``grade`` choices of incidence ``arr`` ``[day, organ_choice, grade]``,
    labelled; a single choice (a string) drops its dimension."""
    organs = [organ] if isinstance(organ, str) else list(organ)
    grades = [grade] if isinstance(grade, str) else list(grade)
    io = [ORGAN_CHOICES.index(o) for o in organs]
    ig = [GRADES.index(g) for g in grades]
    da = xr.DataArray(
        arr[:, io][:, :, ig], dims=("day", "organ", "grade"),
        coords={"day": np.arange(1, arr.shape[0] + 1, dtype=float), "organ": organs,
                "grade": grades},
        attrs={"units": "fraction of patients", "background": str(background)},
    )
    if isinstance(organ, str):
        da = da.squeeze("organ", drop=True)
    if isinstance(grade, str):
        da = da.squeeze("grade", drop=True)
    return da


def _population_incidence(model: IraeModel, problem: IraeProblem, population: Population,
                          policy: ManagementPolicy, background: bool, batch_size: int | None,
                          devices: Sequence | None) -> Float[np.ndarray, "day organ_choice grade"]:
    """Incidence ``[day, organ_choice, grade]``: streamed in chunks (``batch_size``), across
    ``devices`` (padding copies weighted 0), or in one compiled call."""
    if batch_size is not None:
        return incidence_streaming(model, problem, population, policy, batch_size=batch_size,
                                   devices=devices, background=background)
    if devices is not None:
        devices = list(devices)
        pop = population.shard(devices, pad=True)
        w = put_sharded((jnp.arange(pop.size) < population.size).astype(jnp.result_type(float)),
                        patient_sharding(devices))
        return np.asarray(_incidence_jit(model, problem, pop, policy, background=background,
                                         weights=w))
    return np.asarray(_incidence_jit(model, problem, population, policy, background=background))


def resolution_summary(trajectories: xr.Dataset) -> xr.Dataset:
    """Resolution of grade >= 2 events, per organ, from :func:`simulate` output.

    Parameters
    ----------
    trajectories : xarray.Dataset
        Output of :func:`simulate` (``onset``, ``resolution``, days).

    Returns
    -------
    xarray.Dataset
        ``patients_with_event`` (count), ``resolved`` (fraction resolved to grade <= 1 by the
        end of the simulation), ``median_days_to_resolution`` (Kaplan-Meier median from the
        grade-2 onset, unresolved patients censored at the last day; NaN if not reached), by
        ``organ``.

    Examples
    --------
    >>> import jax
    >>> import pdmodel as pdm
    >>> pop = pdm.Population.sample(jax.random.key(0), 4, max_agents=1)
    >>> ds = pdm.simulate(pdm.IraeModel(), "nivolumab 240 mg q2w", pop, days=28,
    ...                   policy=pdm.ManagementPolicy())
    >>> summary = pdm.resolution_summary(ds)
    >>> list(summary.data_vars)
    ['patients_with_event', 'resolved', 'median_days_to_resolution']
    >>> summary.sizes["organ"]
    6
    """
    horizon = float(trajectories.day.values[-1])
    onset = trajectories.onset.sel(grade="2+").values  # [patient, organ]
    resolution = trajectories.resolution.values
    counts, fractions, medians = [], [], []
    for j in range(onset.shape[1]):
        had = np.isfinite(onset[:, j])
        done = np.isfinite(resolution[:, j]) & had
        time = np.where(done, resolution[:, j], horizon)[had] - onset[had, j]
        counts.append(int(had.sum()))
        fractions.append(float(done.sum() / had.sum()) if had.any() else np.nan)
        medians.append(_km_median(time, done[had]))
    organs = trajectories.organ.values
    return xr.Dataset(
        {"patients_with_event": ("organ", counts), "resolved": ("organ", fractions),
         "median_days_to_resolution": ("organ", medians, {"units": "day"})},
        coords={"organ": organs},
    )


def _km_median(time: Float[np.ndarray, " patient"], event: Bool[np.ndarray, " patient"]) -> float:
    """Kaplan-Meier median of ``time`` with ``event`` False meaning censored."""
    if time.size == 0:
        return float("nan")
    surv = 1.0
    for t in np.unique(time[event]):
        at_risk = np.sum(time >= t)
        surv *= 1.0 - np.sum((time == t) & event) / at_risk
        if surv <= 0.5:
            return float(t)
    return float("nan")
