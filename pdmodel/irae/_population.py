"""Virtual populations: covariates, random effects and common random numbers.

Everything random is drawn once, from an explicit key, as standard-normal or uniform numbers;
the model's parameters only *transform* them. A population average is therefore a
deterministic, differentiable function of the parameters (common random numbers).
"""

from __future__ import annotations

import functools
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import ndtri
from jaxtyping import Array, Float, Int

from ..errors import ParameterError
from ..io import stored_call
from ..vocab import ORGANS, SETTING_LEVELS, TUMOURS

MAX_PK_ETA = 6
"""Random-effect slots per agent (the largest published Omega has 4)."""

THYROID_ANTIBODY_PREVALENCE = 0.21
"""Fraction of patients with anti-thyroid antibodies (TgAb and/or TPOAb) before treatment:
44/209 = 21.1% of anti-PD-1-treated patients, Okada N, Iwama S et al. Br J Cancer
2020;122:771-777 (shared data man-0136; 16-23% in a melanoma cohort, man-0137/0138). The
default population, and the virtual population of every fit, has this fraction positive, as
trial populations do."""

THYROID_ANTIBODY_TITRE = 5.0
"""Baseline titre of an antibody-positive patient, fold of normal (**assumed**, not fitted: it
multiplies the thyroid's susceptibility, whose effect on incidence is fitted with the
antibody-positive and -negative rows of Okada 2020, docs/model.md §4.2, §5.8)."""


class Population(eqx.Module):
    """Virtual patients (leading axis ``patient``).

    Attributes
    ----------
    weight_kg : body weight, kg.
    preexisting_ad : 1.0 with pre-existing autoimmune disease, else 0.0.
    a0 : baseline anti-thyroid antibody titre, fold of normal (1 = negative).
    tumour : index into :data:`~pdmodel.irae._parameters.TUMOURS`.
    stop_day : day treatment stops (progression, toxicity; ``inf`` = never).
    z_pk : standard normals for PK random effects ``[patient, agent slot, MAX_PK_ETA]``.
    z_pd : standard normals for g_pd1, a_ctla4, shared susceptibility ``[patient, 3]``.
    z_organ : standard normals for organ susceptibility ``[patient, organ]``.
    z_threshold : standard normals for each patient's grade thresholds ``[patient, organ]``.
    setting : index into :data:`~pdmodel.vocab.SETTING_LEVELS` (``None``: metastatic).
    z_steroid : standard normal of each patient's GI response to corticosteroids: the patient's
        colitis is steroid-refractory when ``Φ(z_steroid) < IraeModel.steroid_refractory_gi``
        (``None``, a population saved before this field: every patient responds).

    Examples
    --------
    >>> import jax
    >>> import pdmodel as pdm
    >>> pop = pdm.Population.sample(jax.random.key(0), 4, preexisting_ad=0.5, max_agents=2)
    >>> pop.size, pop.z_pk.shape
    (4, (4, 2, 6))
    >>> pdm.Population.typical(2, weight_kg=70.0).weight_kg.tolist()  # kg
    [70.0, 70.0]
    """

    weight_kg: Float[Array, " patient"]
    preexisting_ad: Float[Array, " patient"]
    a0: Float[Array, " patient"]
    tumour: Int[Array, " patient"]
    stop_day: Float[Array, " patient"]
    z_pk: Float[Array, "patient slot eta"]
    z_pd: Float[Array, "patient 3"]
    z_organ: Float[Array, "patient organ"]
    z_threshold: Float[Array, "patient organ"]
    setting: Int[Array, " patient"] | None = None
    z_steroid: Float[Array, " patient"] | None = None

    def __check_init__(self):
        check_population_values(self)

    @property
    def size(self) -> int:
        """Number of patients."""
        return self.weight_kg.shape[0]

    @classmethod
    def sample(
        cls,
        key,
        n: int,
        *,
        weight_kg: float = 80.0,
        weight_cv: float = 0.2,
        preexisting_ad: float = 0.0,
        a0: float = 1.0,
        a0_positive_fraction: float = THYROID_ANTIBODY_PREVALENCE,
        a0_positive: float = THYROID_ANTIBODY_TITRE,
        tumour: str = "melanoma",
        median_duration_days: float | None = None,
        max_agents: int = 2,
        setting: str = "metastatic",
        stratified: bool = False,
    ) -> Population:
        """Draw ``n`` virtual patients from ``key`` (a ``jax.random`` key; required).

        Parameters
        ----------
        weight_kg, weight_cv : median body weight (kg) and its log-normal CV.
        preexisting_ad : fraction of patients with pre-existing autoimmune disease.
        a0 : baseline anti-thyroid antibody titre (fold) of antibody-negative patients.
        a0_positive_fraction, a0_positive : fraction with a raised titre (default
            :data:`THYROID_ANTIBODY_PREVALENCE`, as in trials; 0 for an antibody-negative
            population, 1 for a positive one), and that titre (fold).
        tumour : tumour type of every patient (one of ``TUMOURS``).
        setting : disease setting of every patient (one of ``SETTING_LEVELS``).
        median_duration_days : median treatment duration; stop days are exponential with
            this median (``None``: treatment until the end of the simulation).
        max_agents : agent slots for PK random effects (agents in the largest regimen).
        stratified : draw every random number of a patient by Latin-hypercube sampling
            (:func:`stratified_uniform`): each of the ``n`` equal-probability strata of every
            variable holds exactly one patient, so a covariate fraction is matched to within
            one patient (e.g. the antibody-positive share) and a small population's averages
            vary much less between keys than with independent draws (the fit's virtual
            population, docs/model.md §5.1).
        """
        _check(n >= 1 and int(n) == n, "n", n, "a positive integer")
        _check(0 <= preexisting_ad <= 1, "preexisting_ad", preexisting_ad, "a fraction 0-1")
        _check(0 <= a0_positive_fraction <= 1, "a0_positive_fraction", a0_positive_fraction,
               "a fraction 0-1")
        _check(math.isfinite(weight_kg) and weight_kg > 0, "weight_kg", weight_kg,
               "a finite positive median body weight (kg)")
        _check(math.isfinite(weight_cv) and weight_cv >= 0, "weight_cv", weight_cv,
               "a finite non-negative CV")
        _check(math.isfinite(a0) and a0 > 0, "a0", a0, "a finite positive titre (fold)")
        _check(math.isfinite(a0_positive) and a0_positive > 0, "a0_positive", a0_positive,
               "a finite positive titre (fold)")
        _check(tumour in TUMOURS, "tumour", tumour, f"one of {TUMOURS}")
        _check(setting in SETTING_LEVELS, "setting", setting, f"one of {SETTING_LEVELS}")
        if median_duration_days is not None:
            _check(median_duration_days > 0 and not math.isnan(median_duration_days),
                   "median_duration_days", median_duration_days, "positive (days)")
        covariates = jnp.asarray([weight_kg, weight_cv, preexisting_ad, a0, a0_positive_fraction,
                                  a0_positive, math.inf if median_duration_days is None
                                  else median_duration_days], dtype=float)
        levels = jnp.asarray([TUMOURS.index(tumour), SETTING_LEVELS.index(setting)])
        # a stored program: lowering the random-number generator anew costs ~0.5 s a process
        return cls(*stored_call(
            f"population_n{int(n)}_a{int(max_agents)}_s{int(bool(stratified))}",
            functools.partial(_sample, n=int(n), max_agents=int(max_agents),
                              stratified=bool(stratified)),
            key, covariates, levels))

    @classmethod
    def typical(cls, n: int = 1, *, weight_kg: float = 80.0, max_agents: int = 2) -> Population:
        """``n`` identical typical patients: all random effects zero, thresholds at the median."""
        return cls(
            weight_kg=jnp.full((n,), float(weight_kg)), preexisting_ad=jnp.zeros(n),
            a0=jnp.ones(n), tumour=jnp.zeros(n, dtype=int), stop_day=jnp.full((n,), jnp.inf),
            z_pk=jnp.zeros((n, max_agents, MAX_PK_ETA)), z_pd=jnp.zeros((n, 3)),
            z_organ=jnp.zeros((n, len(ORGANS))), z_threshold=jnp.zeros((n, len(ORGANS))),
            setting=jnp.zeros(n, dtype=int), z_steroid=jnp.zeros(n),
        )

    def take(self, index) -> Population:
        """The patients at ``index`` (a slice, or integer indices) as a new population."""
        return jax.tree.map(lambda x: x[index], self)

    def pad_to(self, size: int) -> Population:
        """The population grown to ``size`` patients by repeating the last one.

        Padding patients are copies, so averages over a padded population must leave them out
        (``weights`` of :func:`pdmodel.incidence_array`); :func:`pdmodel.incidence` and
        :func:`pdmodel.simulate` do this themselves when given ``devices``.
        """
        if not (isinstance(size, int | np.integer) and size >= self.size):
            raise ValueError(f"pad_to: size must be an integer >= {self.size} (the current "
                             f"size), got {size!r}")
        extra = int(size) - self.size
        if extra == 0:
            return self
        return jax.tree.map(
            lambda x: jnp.concatenate([x, jnp.repeat(x[-1:], extra, axis=0)]), self)

    def shard(self, devices=None, *, pad: bool = False) -> Population:
        """Split the patients across ``devices`` (default: all of ``jax.devices()``).

        Every array is laid out with a :class:`jax.sharding.NamedSharding` over a one-axis
        :class:`~jax.sharding.Mesh` named ``"patient"``, so jitted computations on the sharded
        population (``incidence_array``, ``IraeProblem.run``, a likelihood) run on every device
        in parallel with no change to the code: several GPUs, or CPU cores exposed as devices
        with ``XLA_FLAGS=--xla_force_host_platform_device_count=N``. The population size must
        be a multiple of the number of devices, unless ``pad=True``: then the last patient is
        repeated up to the next multiple (see :meth:`pad_to`; leave the copies out of
        averages, or use ``incidence(..., devices=...)``/``simulate(..., devices=...)``,
        which pad, shard and unpad by themselves).
        """
        devices = list(jax.devices() if devices is None else devices)
        if not devices:
            raise ValueError("shard: no devices given")
        n_dev = len(devices)
        if pad:
            return self.pad_to(-(-self.size // n_dev) * n_dev).shard(devices)
        if self.size % n_dev:
            raise ValueError(f"cannot split {self.size} patients evenly across {n_dev} "
                             "devices; use a multiple of the device count, or shard(pad=True)")
        return put_sharded(self, patient_sharding(devices))

    def replace(self, **changes) -> Population:
        """A copy with some fields replaced (arrays broadcast to the population size)."""
        out = self
        for name, value in changes.items():
            current = getattr(self, name)
            value = jnp.broadcast_to(jnp.asarray(value, dtype=current.dtype), current.shape)
            out = eqx.tree_at(lambda p, name=name: getattr(p, name), out, value)
        return out


def patient_sharding(devices=None):
    """``NamedSharding`` splitting a leading ``patient`` axis across ``devices`` (default: all
    of ``jax.devices()``); other axes are replicated."""
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    devices = list(jax.devices() if devices is None else devices)
    return NamedSharding(Mesh(np.array(devices), ("patient",)), PartitionSpec("patient"))


def put_sharded(tree, sharding):
    """``tree``'s arrays laid out with ``sharding``. In a multi-process run (a sharding over
    devices of other processes too) each process passes its own host copy of the same values:
    JAX refuses to move an array already placed on a local device onto a global sharding."""
    if sharding.is_fully_addressable:
        return jax.device_put(tree, sharding)
    return jax.tree.map(lambda x: jax.device_put(np.asarray(x), sharding), tree)


def _check(ok: bool, name: str, value, expected: str) -> None:
    if not ok:
        raise ParameterError(f"must be {expected}, got {value!r}", f"Population.sample: {name}")


_POPULATION_RANGES = {
    "weight_kg": ("a finite positive body weight (kg)", lambda x: np.isfinite(x) & (x > 0)),
    "preexisting_ad": ("a fraction in [0, 1]", lambda x: (x >= 0) & (x <= 1)),
    "a0": ("a finite positive titre (fold of normal)", lambda x: np.isfinite(x) & (x > 0)),
    "tumour": (f"an index 0-{len(TUMOURS) - 1} into {TUMOURS}",
               lambda x: (x >= 0) & (x < len(TUMOURS))),
    "stop_day": ("a day >= 0 (inf: never stops)", lambda x: x >= 0),
    "z_pk": ("finite (standard normal draws)", np.isfinite),
    "z_pd": ("finite (standard normal draws)", np.isfinite),
    "z_organ": ("finite (standard normal draws)", np.isfinite),
    "z_threshold": ("finite (standard normal draws)", np.isfinite),
    "setting": (f"an index 0-{len(SETTING_LEVELS) - 1} into {SETTING_LEVELS}",
                lambda x: (x >= 0) & (x < len(SETTING_LEVELS))),
    "z_steroid": ("finite (standard normal draws)", np.isfinite),
}


def stratified_uniform(key, shape: tuple[int, ...]) -> Float[Array, " *shape"]:
    """Latin-hypercube uniforms ``shape`` (leading axis: patients): every column (every index
    of the trailing axes) puts exactly one of its ``n = shape[0]`` values in each stratum
    ``[i/n, (i+1)/n)``, in an order drawn independently per column."""
    n, m = shape[0], math.prod(shape[1:])
    order_key, jitter_key = jax.random.split(key)
    order = jax.vmap(lambda k: jax.random.permutation(k, n))(jax.random.split(order_key, m))
    u = (order.T + jax.random.uniform(jitter_key, (n, m))) / n
    return u.reshape(shape)


def _uniform(key, shape, stratified: bool):
    return stratified_uniform(key, shape) if stratified else jax.random.uniform(key, shape)


def _normal(key, shape, stratified: bool):
    if not stratified:
        return jax.random.normal(key, shape)
    u = stratified_uniform(key, shape)
    return ndtri(jnp.clip(u, jnp.finfo(u.dtype).tiny, 1.0 - jnp.finfo(u.dtype).eps))


def _sample(key, covariates: Float[Array, " 7"], levels: Int[Array, " 2"], *, n: int,
            max_agents: int, stratified: bool = False) -> tuple[Array, ...]:
    """The fields of :meth:`Population.sample`, in order, as one program
    (:func:`~pdmodel.io.stored_call`; covariate values are inputs, so another value compiles
    nothing). ``covariates``: weight_kg, weight_cv, preexisting_ad, a0, a0_positive_fraction,
    a0_positive, median_duration_days (``inf``: no stop); ``levels``: tumour and setting
    indices; ``stratified``: Latin-hypercube draws (:func:`stratified_uniform`)."""
    weight_kg, weight_cv, preexisting_ad, a0, a0_fraction, a0_positive, median = covariates
    keys = jax.random.split(key, 8)
    u_ad = _uniform(keys[1], (n,), stratified)
    u_ab = _uniform(keys[2], (n,), stratified)
    u_stop = _uniform(keys[3], (n,), stratified)
    stop = jnp.where(jnp.isinf(median), jnp.inf, -median / np.log(2.0) * jnp.log1p(-u_stop))
    return (
        weight_kg * jnp.exp(weight_cv * _normal(keys[0], (n,), stratified)),  # weight_kg
        (u_ad < preexisting_ad).astype(float),  # preexisting_ad
        jnp.where(u_ab < a0_fraction, a0_positive, a0) * jnp.ones(n),  # a0
        jnp.full((n,), levels[0], dtype=int),  # tumour
        stop,  # stop_day
        _normal(keys[4], (n, max_agents, MAX_PK_ETA), stratified),  # z_pk
        _normal(keys[5], (n, 3), stratified),  # z_pd
        _normal(keys[6], (n, len(ORGANS)), stratified),  # z_organ
        _normal(keys[7], (n, len(ORGANS)), stratified),  # z_threshold
        jnp.full((n,), levels[1], dtype=int),  # setting
        # its own key, so the other fields' draws are those of populations drawn before it
        _normal(jax.random.fold_in(key, 8), (n,), stratified),  # z_steroid
    )


def check_population_values(pop: Population) -> None:
    """Raise :class:`~pdmodel.errors.ParameterError` naming the field and the first patient
    whose value is out of range or NaN, or when the fields disagree on the number of
    patients. Traced or not fully addressable (multi-process) arrays are not checked."""
    sizes = {name: np.shape(getattr(pop, name))[:1] for name in _POPULATION_RANGES
             if getattr(pop, name) is not None}
    if len(set(sizes.values())) > 1:
        raise ParameterError("fields disagree on the number of patients: " + ", ".join(
            f"{k} {v[0] if v else 'scalar'}" for k, v in sizes.items()), "Population")
    for name, (expected, ok) in _POPULATION_RANGES.items():
        value = getattr(pop, name)
        if value is None or isinstance(value, jax.core.Tracer) or not getattr(
                value, "is_fully_addressable", True):
            continue
        x = np.asarray(value)
        bad = ~ok(x)
        if bad.any():
            patient = int(np.argwhere(bad)[0][0])
            raise ParameterError(f"must be {expected}; patient {patient} has "
                                 f"{np.asarray(x[patient]).tolist()!r}", f"Population.{name}")
