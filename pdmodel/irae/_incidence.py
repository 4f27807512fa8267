"""Grades and incidence: from each patient's running maximum of injury to population curves.

:func:`incidence_array` is the differentiable core (parameters → incidence curves) that fitting
code calls under ``jax.jit``/``jax.grad``; :func:`incidence_streaming` sums it over populations
too large for memory, in chunks, over devices.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import log_ndtr, ndtr
from jaxtyping import Array, Float, Int

from ..numerics import LOG_FLOOR
from ..vocab import GRADES, ORGAN_CHOICES
from ._equations import log_thresholds
from ._parameters import IraeModel, graded_background
from ._population import Population, patient_sharding, put_sharded
from ._problem import IraeProblem
from ._rescue import ManagementPolicy


def drug_probability(
    model: IraeModel, max_injury: Float[Array, "*batch organ"]
) -> Float[Array, "*batch organ grade"]:
    """Natural-course probability of each grade ``[..., organ, grade]`` from running maxima
    ``[..., organ]``, with the threshold variability integrated out (docs/model.md §4.3)."""
    x = log_threshold_margin(model, max_injury)
    return ndtr(x / jnp.sqrt(model.sigma[:, None] ** 2 + model.tau**2))


def log_drug_probability(
    model: IraeModel, max_injury: Float[Array, "*batch organ"]
) -> Float[Array, "*batch organ grade"]:
    """Log of :func:`drug_probability` (accurate while the probability is small)."""
    x = log_threshold_margin(model, max_injury)
    return log_ndtr(x / jnp.sqrt(model.sigma[:, None] ** 2 + model.tau**2))


def log_threshold_margin(
    model: IraeModel, max_injury: Float[Array, "*batch organ"]
) -> Float[Array, "*batch organ grade"]:
    """Log of running maxima ``[..., organ]`` over each grade's median threshold
    ``[..., organ, grade]`` (injury floored at :data:`pdmodel.numerics.LOG_FLOOR`)."""
    return jnp.log(jnp.maximum(max_injury, LOG_FLOOR))[..., None] - log_thresholds(model)


def incidence_array(
    model: IraeModel,
    problem: IraeProblem,
    pop: Population,
    policy: ManagementPolicy,
    *,
    background: bool = True,
    at_days: tuple[int, ...] | None = None,
    batch_size: int | None = None,
    weights: Float[Array, " patient"] | None = None,
) -> Float[Array, "day organ_choice grade"]:
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
    if batch_size is None or batch_size >= pop.size:
        daily, _ = problem.run(model, pop, policy)
        m, days = _at_days(problem, daily.max_injury, idx)
        return incidence_from_max(model, m, pop, policy, background=background, days=days,
                                  weights=weights)
    return _chunked_incidence(model, problem, pop, policy, background, idx, int(batch_size),
                              weights)


def _at_days(problem: IraeProblem, max_injury: Float[Array, "patient day organ"],
             idx: Int[np.ndarray, " day"] | None):
    """Running maxima ``[patient, day, organ]`` and their days since the first dose ``[day]``,
    on the days ``idx`` (0-based; ``None``: every day)."""
    days = jnp.arange(1, problem.days + 1, dtype=max_injury.dtype)
    if idx is not None:
        max_injury, days = max_injury[:, idx], days[idx]
    return max_injury, days


def _chunked_incidence(model, problem, pop, policy, background, idx, batch: int, weights):
    """:func:`incidence_array` ``batch`` patients at a time: a ``lax.scan`` over chunks that sums
    each chunk's weighted incidence ``[day, organ_choice, grade]``."""
    # patient b * n_chunks + c goes to chunk c (a population split evenly across devices stays
    # split within every chunk); padding copies get weight 0
    n = pop.size
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


def _day_index(problem: IraeProblem, at_days) -> Int[np.ndarray, " day"] | None:
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
    m, days = _at_days(problem, daily.max_injury, idx)
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
) -> Float[np.ndarray, "day organ_choice grade"]:
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
    chunk, n = _chunk_source(population, n, batch)
    return _stream(model, problem, chunk, n, batch, policy, background, at_days, devices,
                   progress)


def _stream(model, problem, chunk, n: int, batch: int, policy, background, at_days, devices,
            progress) -> Float[np.ndarray, "day organ_choice grade"]:
    """:func:`incidence_streaming`'s loop over the chunks ``chunk(k)`` of ``batch`` patients
    (the last padded with weight-0 copies): the running sum, on the host, divided by ``n``."""
    dtype = jnp.result_type(float)
    sharding = None if devices is None else patient_sharding(devices)
    total = None
    pending = None  # (device result, patients) of the chunk before: convert while this runs
    for k in range(-(-n // batch)):
        size = min(batch, n - k * batch)
        pop = chunk(k)
        if pop.size < size:
            raise ValueError(f"chunk {k} has {pop.size} patients, expected {size}")
        pop = pop.take(slice(0, size)).pad_to(batch)
        w = (jnp.arange(batch) < size).astype(dtype)
        if sharding is not None:
            pop, w = put_sharded((pop, w), sharding)
        out = _chunk_sum(model, problem, pop, w, policy, background, at_days)
        if pending is not None:
            total = _accumulate(total, pending, progress, n)
        pending = (out, k * batch + size)
    total = _accumulate(total, pending, progress, n)
    return total / n


def _chunk_source(population: Population | Callable[[int], Population], n: int | None,
                  batch: int) -> tuple[Callable[[int], Population], int]:
    """``chunk(k)`` (the ``k``-th ``batch`` patients) and the number of patients, from a
    population or a chunk function (validated as :func:`incidence_streaming` documents)."""
    if isinstance(population, Population):
        if n is not None and n != population.size:
            raise ValueError(f"n={n} but the population has {population.size} patients")
        size = population.size

        def chunk(k):
            return population.take(slice(k * batch, min((k + 1) * batch, size)))

        return chunk, size
    if callable(population):
        if not (isinstance(n, int | np.integer) and n >= 1):
            raise ValueError("n (the number of patients) is required with a chunk function")
        return population, int(n)
    raise TypeError("population must be a Population or a function of the chunk index, "
                    f"got {type(population).__name__}")


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
        x = log_threshold_margin(model, max_injury)
        z = (model.sigma * pop.z_threshold)[:, None, :, None]
        p = ndtr((x - z) / model.tau)
    else:
        p = drug_probability(model, max_injury)
    return reported_probability(model, p, background=background, days=days,
                                drug_weight=drug_weight, background_weight=background_weight)


def reported_probability(model, p_drug, *, background=True, days=None, drug_weight=1.0,
                         background_weight=1.0):
    """Each patient's probability of a reported event by each day ``[patient, day,
    organ_choice, grade]`` from drug-related probabilities ``[patient, day, organ, grade]``:
    the reporting definition's share of drug-related events, background events, any organ
    (arguments as in :func:`incidence_from_max`)."""
    p = drug_weight * p_drug
    if background:
        if days is None:
            days = jnp.arange(1, p_drug.shape[1] + 1, dtype=p.dtype)
        p_bg = -jnp.expm1(-graded_background(model.background)[None, None]
                           * days[None, :, None, None])
        p = 1.0 - (1.0 - p) * (1.0 - background_weight * p_bg)
    p_any = 1.0 - jnp.prod(1.0 - p, axis=2, keepdims=True)
    return jnp.concatenate([p_any, p], axis=2)
