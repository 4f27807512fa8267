"""Public simulation API of the irAE model: ``simulate`` and ``incidence``.

``IraeProblem`` prepares what does not depend on the parameters (dosing grid, PK models,
Cholesky factors of the published Omegas); :func:`incidence_array` is the differentiable core
(parameters → incidence curves) that fitting code calls under ``jax.jit``/``jax.grad``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr
from jax.scipy.special import ndtr

from ..pk._catalogue import PKModelSpec
from ..pk._model import TwoCompartmentPK
from ..pk._occupancy import potencies, target_matrix
from ..pk._simulate import individual_parameters, model_specs
from ..regimen._grid import DosingGrid, dosing_grid
from ..regimen._regimen import Regimen
from ..vocab import AGENTS, GRADES, ORGAN_CHOICES, ORGANS, TARGETS, check_choices, get_agent
from ._equations import PatientPD
from ._parameters import IraeModel
from ._population import MAX_PK_ETA, Population, patient_sharding
from ._rescue import ManagementPolicy, check_policy_values
from .solvers._full import Daily, Events, PatientInputs, log_thresholds, simulate_patient

STEPS_PER_DAY = 2
"""Default PD steps per day of the fast solver (0.5-day steps)."""
REFINE = 2
"""Default geometric refinement levels inside each infusion."""


class IraeProblem(eqx.Module):
    """A regimen prepared for simulation over ``days`` with ``steps_per_day`` PD steps a day.

    Holds what does not depend on the fitted parameters; build it once with :meth:`build` and
    pass it to :func:`incidence_array` under ``jax.jit``/``jax.grad``.

    Attributes
    ----------
    specs : tuple of PKModelSpec
        Published PK model of each agent.
    agents : tuple of str
        Agents of the regimen, in order of first appearance.
    days : int
        Simulated days from the first dose.
    steps_per_day : int
        PD steps a day of the fixed-grid solver.
    grid : DosingGrid
        Step edges (days) and infusion rates on them.
    ec50 : array [agent]
        Serum EC50 of each agent, mg/L.
    targets : array [agent, target]
        One-hot map from agents to :data:`TARGETS`.
    target_index, agent_index : array [agent]
        Index of each agent's target in :data:`TARGETS` and of the agent in :data:`AGENTS`.
    chol : tuple of arrays
        Cholesky factors of the published random-effect covariances, one per agent.

    Examples
    --------
    >>> import jax
    >>> import pdmodel as pdm
    >>> problem = pdm.IraeProblem.build("nivolumab 240 mg q2w", days=28)
    >>> problem.agents, problem.days
    (('nivolumab',), 28)
    >>> pop = pdm.Population.sample(jax.random.key(0), 4, max_agents=1)
    >>> inc = pdm.incidence_array(pdm.IraeModel(), problem, pop, pdm.ManagementPolicy.none())
    >>> inc.shape  # [day, organ choice (any + 6 organs), grade]
    (28, 7, 3)
    """

    specs: tuple[PKModelSpec, ...] = eqx.field(static=True)
    agents: tuple[str, ...] = eqx.field(static=True)
    days: int = eqx.field(static=True)
    steps_per_day: int = eqx.field(static=True)
    grid: DosingGrid
    ec50: jnp.ndarray
    targets: jnp.ndarray
    target_index: jnp.ndarray
    agent_index: jnp.ndarray
    chol: tuple[jnp.ndarray, ...]

    @classmethod
    def build(
        cls,
        regimen: Regimen | str,
        *,
        days: int = 365,
        steps_per_day: int = STEPS_PER_DAY,
        models: Mapping[str, str] | None = None,
        refine: int = REFINE,
    ) -> IraeProblem:
        """Prepare ``regimen`` (text or :class:`Regimen`) for ``days`` (whole days).

        ``steps_per_day`` PD steps a day, each infusion further cut in ``refine`` geometric
        sub-steps (see :func:`pdmodel.regimen._grid.step_edges`).
        """
        if isinstance(regimen, str):
            regimen = Regimen.parse(regimen)
        if not (isinstance(days, int | np.integer) and days >= 1):
            raise ValueError(f"days must be a whole number of days >= 1, got {days!r}")
        if not (isinstance(steps_per_day, int | np.integer) and 1 <= steps_per_day <= 1000):
            raise ValueError(f"steps_per_day must be an integer 1-1000, got {steps_per_day!r}")
        agents = regimen.agents
        specs = model_specs(regimen, models)
        pot = potencies()
        chol = []
        for s in specs:
            if s.n_eta > MAX_PK_ETA:
                raise ValueError(f"{s.agent} has {s.n_eta} random effects; at most {MAX_PK_ETA}")
            chol.append(jnp.asarray(np.linalg.cholesky(s.omega) if s.n_eta else np.zeros((0, 0))))
        return cls(
            specs=specs, agents=agents, days=int(days), steps_per_day=int(steps_per_day),
            grid=dosing_grid(regimen, agents, int(days), int(steps_per_day), int(refine)),
            ec50=jnp.array([pot[a].ec50 for a in agents]),
            targets=target_matrix(agents),
            target_index=jnp.array([TARGETS.index(get_agent(a).target) for a in agents]),
            agent_index=jnp.array([list(AGENTS).index(a) for a in agents]),
            chol=tuple(chol),
        )

    @property
    def michaelis_menten(self) -> bool:
        """Whether any agent has target-mediated elimination (static solver switch)."""
        return any(s.michaelis_menten for s in self.specs)

    def patient_pk(self, pop: Population) -> TwoCompartmentPK:
        """Individual PK of every patient ``[patient, agent]`` (independent of the PD model)."""

        def one(w, z_pk):
            etas = [self.chol[j] @ z_pk[j, : s.n_eta] if s.n_eta else None
                    for j, s in enumerate(self.specs)]
            return individual_parameters(self.specs, w, etas)

        return jax.vmap(one)(pop.weight_kg, pop.z_pk)

    def patient_inputs(self, model: IraeModel, pop: Population) -> PatientInputs:
        """Per-patient inputs (batched over the population) — differentiable in ``model``."""
        return PatientInputs(self.patient_pk(pop), patient_pd(model, pop), pop.weight_kg,
                             pop.stop_day, pop.z_threshold)

    def potency(self, model: IraeModel) -> tuple[jnp.ndarray, jnp.ndarray]:
        """In-vivo EC50 (mg/L) and agent-effect weight of each agent of the regimen."""
        ec50 = self.ec50 * model.ec50_scale[self.target_index]
        return ec50, jnp.exp(model.agent_effect[self.agent_index])

    def run(self, model: IraeModel, pop: Population,
            policy: ManagementPolicy) -> tuple[Daily, Events]:
        """Simulate every patient (``vmap``); arrays gain a leading ``patient`` axis."""
        inputs = self.patient_inputs(model, pop)
        ec50, weight = self.potency(model)

        def one(p):
            return simulate_patient(model, p, self.grid, ec50, self.targets, weight, policy,
                                    steps_per_day=self.steps_per_day,
                                    michaelis_menten=self.michaelis_menten)

        return jax.vmap(one)(inputs)


def patient_pd(model: IraeModel, pop: Population) -> PatientPD:
    """Each patient's PD constants: covariates and random effects applied to ``model``."""
    tumour = model.tumour_effect[pop.tumour]  # [patient, organ]
    shared = model.omega_s * pop.z_pd[:, 2:3]
    return PatientPD(
        e0=1.0 + (model.ad_e0 - 1.0) * pop.preexisting_ad,
        a0=pop.a0,
        a_ctla4=model.a_ctla4 * jnp.exp(model.omega_a * pop.z_pd[:, 1]),
        g_pd1=model.g_pd1 * jnp.exp(model.omega_g * pop.z_pd[:, 0]),
        susceptibility=model.susceptibility * tumour
        * jnp.exp(shared + model.omega_so * pop.z_organ),
    )


def drug_probability(model: IraeModel, max_injury: jnp.ndarray) -> jnp.ndarray:
    """Natural-course probability of each grade ``[..., organ, grade]`` from running maxima
    ``[..., organ]``, with the threshold variability integrated out (docs/model.md §4.3)."""
    x = jnp.log(jnp.maximum(max_injury, 1e-12))[..., None] - log_thresholds(model)
    return ndtr(x / jnp.sqrt(model.sigma[:, None] ** 2 + model.tau**2))


def incidence_array(
    model: IraeModel,
    problem: IraeProblem,
    pop: Population,
    policy: ManagementPolicy,
    *,
    background: bool = True,
    at_days: tuple[int, ...] | None = None,
    batch_size: int | None = None,
    weights: jnp.ndarray | None = None,
) -> jnp.ndarray:
    """Population cumulative incidence ``[day, organ_choice, grade]``: the jittable core.

    Differentiable in ``model``; deterministic given ``pop`` (common random numbers), so it
    can sit inside a loss under ``jax.jit``/``jax.grad`` (use ``eqx.filter_jit``).

    Parameters
    ----------
    model : IraeModel
        Parameters (natural scale).
    problem : IraeProblem
        The prepared regimen (:meth:`IraeProblem.build`).
    pop : Population
        Virtual patients (PK random-effect slots for every agent of the regimen).
    policy : ManagementPolicy
        Immunosuppressant management (``ManagementPolicy.none()`` for the natural course).
    background : bool
        Include drug-independent background events.
    at_days : tuple of int, optional
        Only these days (whole days, 1..``problem.days``; static) — much cheaper when a
        likelihood needs a few horizons. ``None``: days 1..``problem.days``.
    batch_size : int, optional
        Simulate at most this many patients at a time (a ``lax.scan`` over chunks that sums
        the incidence of each chunk; static). Bounds the working memory of the simulation to
        one chunk — the population itself stays in memory; for populations larger than that,
        see :func:`incidence_streaming`. Same result as unchunked to rounding (~1e-16).
    weights : array [patient], optional
        Weights of the patients in the population average (default: all equal), e.g. 0 for
        the padding copies of ``Population.shard(pad=True)``.

    A population sharded across devices (:meth:`Population.shard`) is simulated on all of
    them in parallel; the result is the same as on one device to rounding.

    Returns
    -------
    jax.Array [day, organ_choice, grade]
        Fraction of patients (0-1) with an event by each day; ``organ_choice`` is
        ``("any",) + ORGANS`` ("any" combines organs per patient), grades :data:`GRADES`.

    Examples
    --------
    >>> import equinox as eqx
    >>> import jax
    >>> import pdmodel as pdm
    >>> problem = pdm.IraeProblem.build("nivolumab 240 mg q2w", days=28)
    >>> pop = pdm.Population.sample(jax.random.key(0), 4, max_agents=1)
    >>> policy = pdm.ManagementPolicy.none()
    >>> def any_grade(model):  # a scalar of the model: jax.grad/eqx.filter_grad it to fit
    ...     return pdm.incidence_array(model, problem, pop, policy, at_days=(14, 28))[:, 0, 0]
    >>> inc = eqx.filter_jit(any_grade)(pdm.IraeModel())
    >>> inc.shape, bool(inc[1] >= inc[0])
    ((2,), True)
    """
    idx = _day_index(problem, at_days)
    if batch_size is not None and not (isinstance(batch_size, int | np.integer)
                                       and batch_size >= 1):
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    n = pop.size
    if batch_size is None or batch_size >= n:
        daily, _ = problem.run(model, pop, policy)
        m = daily.max_injury
        days = jnp.arange(1, problem.days + 1, dtype=m.dtype)
        if idx is not None:
            m, days = m[:, idx], days[idx]
        return incidence_from_max(model, m, pop, policy, background=background, days=days,
                                  weights=weights)
    # chunked: patient b * n_chunks + c goes to chunk c (a population split evenly across
    # devices stays split within every chunk); padding copies get weight 0
    batch = int(batch_size)
    n_chunks = -(-n // batch)
    size = n_chunks * batch
    dtype = jnp.result_type(float)
    w = jnp.ones(n, dtype) if weights is None else jnp.asarray(weights, dtype)
    w = jnp.concatenate([w, jnp.zeros(size - n, dtype)])

    def split(x):
        return jnp.swapaxes(x.reshape((batch, n_chunks) + x.shape[1:]), 0, 1)

    chunks = jax.tree.map(split, (pop.pad_to(size), w))

    def body(acc, chunk):
        return acc + _weighted_sum(model, problem, *chunk, policy, background, idx), None

    n_days = problem.days if idx is None else len(idx)
    acc0 = jnp.zeros((n_days, len(ORGAN_CHOICES), len(GRADES)), dtype)
    total, _ = jax.lax.scan(body, acc0, chunks)
    return total / jnp.sum(w)


def _day_index(problem: IraeProblem, at_days) -> np.ndarray | None:
    """0-based indices of ``at_days`` (validated), or ``None`` for every day."""
    if at_days is None:
        return None
    idx = np.asarray(at_days, dtype=int) - 1
    if idx.ndim != 1 or np.any(idx < 0) or np.any(idx >= problem.days):
        raise ValueError(f"at_days must lie in 1..{problem.days}, got {at_days!r}")
    return idx


def _weighted_sum(model, problem, pop, weights, policy, background, idx):
    """``Σ_i w_i · incidence_i`` over the patients of ``pop`` ``[day, organ_choice, grade]``."""
    daily, _ = problem.run(model, pop, policy)
    m = daily.max_injury
    days = jnp.arange(1, problem.days + 1, dtype=m.dtype)
    if idx is not None:
        m, days = m[:, idx], days[idx]
    per = per_patient_incidence(model, m, pop, policy, background=background, days=days)
    return jnp.tensordot(weights.astype(per.dtype), per, axes=1)


@eqx.filter_jit
def _chunk_sum(model, problem, pop, weights, policy, background, at_days):
    return _weighted_sum(model, problem, pop, weights, policy, background,
                         _day_index(problem, at_days))


def incidence_streaming(
    model: IraeModel,
    problem: IraeProblem,
    population: Population | Callable[[int], Population],
    policy: ManagementPolicy | None = None,
    *,
    batch_size: int = 8192,
    n: int | None = None,
    devices: Sequence | None = None,
    background: bool = True,
    at_days: tuple[int, ...] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Population incidence ``[day, organ_choice, grade]`` in bounded memory, chunk by chunk.

    Patients are simulated ``batch_size`` at a time by one compiled function (every chunk has
    the same shape; the last is padded with weight-0 copies) and only the running sum of the
    per-patient incidence curves is kept, so memory does not grow with the population: a
    million patients × 1 year fits in a few hundred MB. Not differentiable (the chunks are a
    Python loop); for gradients use :func:`incidence_array` (``batch_size=...``).

    Parameters
    ----------
    model, problem : as in :func:`incidence_array`.
    population : a :class:`Population` (sliced into chunks), or a function ``chunk(k)``
        returning the ``k``-th chunk of ``batch_size`` patients (``k = 0, 1, ...``; e.g.
        ``lambda k: Population.sample(jax.random.fold_in(key, k), batch_size)``) for
        populations that are never held in memory at once; then ``n`` is required.
    policy : immunosuppressant management (``None``: natural course).
    batch_size : patients per chunk (rounded up to a multiple of the device count).
    n : total number of patients (only with a chunk function; the last chunk's surplus
        patients are left out).
    devices : split every chunk across these devices (``jax.sharding``, axis ``"patient"``);
        ``None``: JAX's default placement.
    background, at_days : as in :func:`incidence_array`.
    progress : called as ``progress(patients_done, n)`` after each chunk.

    Returns
    -------
    numpy.ndarray [day, organ_choice, grade]
        Fraction of patients with an event by each day, float64 (the chunk sums are
        accumulated in float64 on the host).

    Examples
    --------
    >>> import jax
    >>> import numpy as np
    >>> import pdmodel as pdm
    >>> problem = pdm.IraeProblem.build("nivolumab 240 mg q2w", days=28)
    >>> pop = pdm.Population.sample(jax.random.key(0), 4, max_agents=1)
    >>> chunked = pdm.incidence_streaming(pdm.IraeModel(), problem, pop, batch_size=2)
    >>> whole = pdm.incidence_array(pdm.IraeModel(), problem, pop, pdm.ManagementPolicy.none())
    >>> chunked.shape, bool(np.allclose(chunked, whole))
    ((28, 7, 3), True)
    """
    policy = ManagementPolicy.none() if policy is None else policy
    at_days = None if at_days is None else tuple(int(d) for d in at_days)
    _day_index(problem, at_days)
    if not (isinstance(batch_size, int | np.integer) and batch_size >= 1):
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    devices = None if devices is None else list(devices)
    n_dev = 1 if devices is None else len(devices)
    batch = -(-int(batch_size) // n_dev) * n_dev
    if isinstance(population, Population):
        if n is not None and n != population.size:
            raise ValueError(f"n={n} but the population has {population.size} patients")
        n = population.size

        def chunk(k):
            return population.take(slice(k * batch, min((k + 1) * batch, n)))
    elif callable(population):
        if not (isinstance(n, int | np.integer) and n >= 1):
            raise ValueError("n (the number of patients) is required with a chunk function")
        chunk = population
    else:
        raise TypeError("population must be a Population or a function of the chunk index, "
                        f"got {type(population).__name__}")
    n = int(n)
    n_chunks = -(-n // batch)
    dtype = jnp.result_type(float)
    sharding = None if devices is None else patient_sharding(devices)
    total = None
    pending = None  # (device result, patients) of the chunk before: convert while this runs
    for k in range(n_chunks):
        size = min(batch, n - k * batch)
        pop = chunk(k)
        if pop.size < size:
            raise ValueError(f"chunk {k} has {pop.size} patients, expected {size}")
        pop = pop.take(slice(0, size)).pad_to(batch)
        w = (jnp.arange(batch) < size).astype(dtype)
        if sharding is not None:
            pop, w = jax.device_put((pop, w), sharding)
        out = _chunk_sum(model, problem, pop, w, policy, background, at_days)
        if pending is not None:
            total = _accumulate(total, pending, progress, n)
        pending = (out, k * batch + size)
    total = _accumulate(total, pending, progress, n)
    return total / n


def _accumulate(total, pending, progress, n):
    out, done = pending
    s = np.asarray(out, dtype=np.float64)
    if progress is not None:
        progress(done, n)
    return s if total is None else total + s


def incidence_from_max(model, max_injury, pop, policy, *, background=True, days=None,
                       drug_weight=1.0, background_weight=1.0, weights=None):
    """Incidence ``[day, organ_choice, grade]`` from running maxima ``[patient, day, organ]``.

    ``days`` (days since the first dose, for the background hazard) defaults to 1, 2, ...
    ``drug_weight``/``background_weight``: fractions of drug-related and background events a
    reporting definition counts (κ_e, β_e of docs/model.md §5.2; 1 and 1 = all events).
    ``weights`` [patient]: weights of the population average (default: all equal).
    """
    per = per_patient_incidence(model, max_injury, pop, policy, background=background,
                                days=days, drug_weight=drug_weight,
                                background_weight=background_weight)
    if weights is None:
        return jnp.mean(per, axis=0)
    weights = jnp.asarray(weights, per.dtype)
    return jnp.tensordot(weights, per, axes=1) / jnp.sum(weights)


def per_patient_incidence(model, max_injury, pop, policy, *, background=True, days=None,
                          drug_weight=1.0, background_weight=1.0):
    """Each patient's probability of an event by each day ``[patient, day, organ_choice,
    grade]`` (arguments as in :func:`incidence_from_max`)."""
    if policy.enabled:
        # patient's own thresholds were used for triggering: condition on them
        x = jnp.log(jnp.maximum(max_injury, 1e-12))[..., None] - log_thresholds(model)
        z = (model.sigma * pop.z_threshold)[:, None, :, None]
        p = ndtr((x - z) / model.tau)
    else:
        p = drug_probability(model, max_injury)
    p = drug_weight * p
    if background:
        if days is None:
            days = jnp.arange(1, max_injury.shape[1] + 1, dtype=p.dtype)
        p_bg = -jnp.expm1(-model.background[None, None] * days[None, :, None, None])
        p = 1.0 - (1.0 - p) * (1.0 - background_weight * p_bg)
    p_any = 1.0 - jnp.prod(1.0 - p, axis=2, keepdims=True)
    return jnp.concatenate([p_any, p], axis=2)


_incidence_jit = eqx.filter_jit(incidence_array)


def _resolve(regimen, pop, days, steps_per_day, refine, models, policy):
    """Validate the public arguments; build the problem and the policy."""
    problem = IraeProblem.build(regimen, days=days, steps_per_day=steps_per_day, models=models,
                                refine=refine)
    if not isinstance(pop, Population):
        raise TypeError(f"population must be a pdmodel.Population, got {type(pop).__name__}")
    if pop.z_pk.shape[1] < len(problem.agents):
        raise ValueError(f"population has PK random-effect slots for {pop.z_pk.shape[1]} agents "
                         f"but the regimen has {len(problem.agents)}; sample it with "
                         f"max_agents={len(problem.agents)}")
    policy = ManagementPolicy.none() if policy is None else policy
    check_policy_values(policy)
    return problem, policy


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
    problem, policy = _resolve(regimen, population, days, steps_per_day, refine, models, policy)
    n = population.size
    pop = population if devices is None else population.shard(list(devices), pad=True)
    daily, events = eqx.filter_jit(IraeProblem.run)(problem, model, pop, policy)
    daily, events = jax.tree.map(lambda x: np.asarray(x)[:n], (daily, events))
    dayc = np.arange(1, problem.days + 1, dtype=float)

    def nan_inf(x):
        x = np.asarray(x, dtype=float)
        return np.where(np.isinf(x), np.nan, x)

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
            "onset": (("patient", "organ", "grade"), nan_inf(events.onset), {"units": "day"}),
            "resolution": (("patient", "organ"), nan_inf(events.resolution), {"units": "day"}),
            "steroid_start": (("patient",), nan_inf(events.steroid_start), {"units": "day"}),
            "infliximab_doses": (("patient",), np.asarray(events.infliximab_doses)),
        },
        coords={"day": dayc, "agent": list(problem.agents), "organ": list(ORGANS),
                "grade": list(GRADES), "patient": np.arange(population.size)},
        attrs={"regimen": str(Regimen.parse(regimen) if isinstance(regimen, str) else regimen),
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
    problem, policy = _resolve(regimen, population, days, steps_per_day, refine, models, policy)
    if batch_size is not None:
        arr = incidence_streaming(model, problem, population, policy, batch_size=batch_size,
                                  devices=devices, background=background)
    elif devices is not None:
        devices = list(devices)
        pop = population.shard(devices, pad=True)
        w = jax.device_put((jnp.arange(pop.size) < population.size).astype(jnp.result_type(float)),
                           patient_sharding(devices))
        arr = np.asarray(_incidence_jit(model, problem, pop, policy, background=background,
                                        weights=w))
    else:
        arr = np.asarray(_incidence_jit(model, problem, population, policy,
                                        background=background))
    io = [ORGAN_CHOICES.index(o) for o in organs]
    ig = [GRADES.index(g) for g in grades]
    da = xr.DataArray(
        arr[:, io][:, :, ig], dims=("day", "organ", "grade"),
        coords={"day": np.arange(1, problem.days + 1, dtype=float), "organ": organs,
                "grade": grades},
        attrs={"units": "fraction of patients", "background": str(background)},
    )
    if isinstance(organ, str):
        da = da.squeeze("organ", drop=True)
    if isinstance(grade, str):
        da = da.squeeze("grade", drop=True)
    return da


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


def _km_median(time: np.ndarray, event: np.ndarray) -> float:
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
