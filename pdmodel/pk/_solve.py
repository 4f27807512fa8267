"""Concentration-time profiles: exact superposition for linear PK, diffrax for the rest.

This is the only module that calls diffrax's solver for PK. Both paths are pure functions of
arrays, so they can be ``jax.vmap``-ed over patients and parameters.

* :func:`concentrations_analytic` — closed-form bi-exponential response to each zero-order
  infusion, summed (superposition). Exact for constant linear clearance.
* :func:`concentrations_ode` — the full model (time-varying clearance, Michaelis-Menten
  elimination) with an adaptive Runge-Kutta solver that steps exactly to every infusion start
  and stop (``ClipStepSizeController(jump_ts=...)``), so dose discontinuities are never smoothed.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import lazy_loader as _lazy
from jaxtyping import Array, Float, Int

from ._model import TwoCompartmentPK

diffrax = _lazy.load("diffrax")  # imported on first ODE solve: the library starts fast

PAD_START = 1.0e9
"""Start day used for padding slots in :class:`InfusionTable` (never reached)."""


class InfusionTable(eqx.Module):
    """Zero-order infusions of one agent, padded to a fixed length so shapes are static.

    Attributes
    ----------
    start : infusion start times, days (padding slots at :data:`PAD_START`).
    duration : infusion durations, days (> 0).
    dose_mg : fixed part of each dose, mg.
    dose_mg_per_kg : body-weight part of each dose, mg/kg.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> import pdmodel as pdm
    >>> table = pdm.InfusionTable(start=jnp.array([0.0, 21.0]), duration=jnp.array([1 / 16] * 2),
    ...                          dose_mg=jnp.zeros(2), dose_mg_per_kg=jnp.array([3.0, 3.0]))
    >>> table.amounts(80.0).tolist(), float(table.first_dose())
    ([240.0, 240.0], 0.0)
    """

    start: Float[Array, "*batch n"]
    duration: Float[Array, "*batch n"]
    dose_mg: Float[Array, "*batch n"]
    dose_mg_per_kg: Float[Array, "*batch n"]

    def amounts(self, weight_kg: Float[Array, ""] | float) -> Float[Array, "*batch n"]:
        """Dose of each infusion in mg for a patient of ``weight_kg`` kg."""
        return self.dose_mg + self.dose_mg_per_kg * weight_kg

    def first_dose(self) -> Float[Array, "*batch"]:
        """Day of the first real infusion (``PAD_START`` when there is none)."""
        return jnp.min(self.start, axis=-1)


def _rates(pk: TwoCompartmentPK) -> tuple[
    Float[Array, "*batch"], Float[Array, "*batch"], Float[Array, "*batch"], Float[Array, "*batch"]
]:
    """Disposition exponents (alpha > beta, 1/day) and their coefficients (1/L)."""
    k10 = pk.cl / pk.vc
    k12 = pk.q / pk.vc
    k21 = pk.q / pk.vp
    s = k10 + k12 + k21
    disc = jnp.sqrt(s * s - 4.0 * k10 * k21)
    alpha = 0.5 * (s + disc)
    beta = 2.0 * k10 * k21 / (s + disc)  # = (s - disc)/2 without cancellation
    coef_a = (alpha - k21) / (pk.vc * (alpha - beta))
    coef_b = (k21 - beta) / (pk.vc * (alpha - beta))
    return alpha, beta, coef_a, coef_b


def concentrations_analytic(
    pk: TwoCompartmentPK,
    infusions: InfusionTable,
    amounts: Float[Array, " n"],
    ts: Float[Array, " t"],
) -> Float[Array, " t"]:
    """Central concentration (mg/L) at ``ts`` (days) for constant linear clearance.

    Each infusion of rate ``R = amount/duration`` contributes
    ``R·Σ_λ c_λ/λ·(1 − e^{−λ·min(τ, T)})·e^{−λ·max(τ − T, 0)}`` with ``τ`` the time since its
    start; contributions add because the model is linear. ``tv_*`` and ``vmax`` are ignored.
    """
    alpha, beta, coef_a, coef_b = _rates(pk)
    tau = ts[:, None] - infusions.start[None, :]
    on = jnp.clip(tau, 0.0, infusions.duration[None, :])
    off = jnp.maximum(tau - infusions.duration[None, :], 0.0)
    rate = amounts / infusions.duration

    def mode(lam, coef):
        return coef / lam * (-jnp.expm1(-lam * on)) * jnp.exp(-lam * off)

    return jnp.sum(rate[None, :] * (mode(alpha, coef_a) + mode(beta, coef_b)), axis=-1)


class SolverOptions(eqx.Module):
    """Tolerances and step budget of the adaptive PK ODE solve (``method="ode"``).

    Attributes
    ----------
    rtol : float
        Relative tolerance of the adaptive step-size controller.
    atol : float
        Absolute tolerance, mg (the state is drug amounts).
    max_steps : int
        Most solver steps before the solve is reported as failed.

    Examples
    --------
    >>> import pdmodel as pdm
    >>> ds = pdm.simulate_pk("ipilimumab 3 mg/kg q3w x4", days=42, weight_kg=80,
    ...                      options=pdm.SolverOptions(rtol=1e-6, atol=1e-8))
    >>> ds.attrs["method"]
    'ode'
    """

    rtol: float = eqx.field(static=True, default=1e-8)
    atol: float = eqx.field(static=True, default=1e-10)
    max_steps: int = eqx.field(static=True, default=100_000)


def _vector_field(t, y, args):
    pk, start, stop, rate, t_first = args
    a_c, a_p, _ = y
    conc = a_c / pk.vc
    infusing = jnp.sum(jnp.where((t >= start) & (t < stop), rate, 0.0))
    cl = pk.clearance(t - t_first)
    elim = cl * conc + pk.michaelis_menten(jnp.maximum(conc, 0.0))
    dist = pk.q * (conc - a_p / pk.vp)
    return jnp.stack([infusing - elim - dist, dist, elim])


def amounts_ode(
    pk: TwoCompartmentPK,
    infusions: InfusionTable,
    amounts: Float[Array, " n"],
    ts: Float[Array, " t"],
    options: SolverOptions = SolverOptions(),
) -> tuple[Float[Array, "t 3"], Int[Array, ""]]:
    """Central, peripheral and cumulatively eliminated amounts (mg) at ``ts`` (days).

    Returns the amounts and diffrax's result code (0 = success); the solver never throws,
    so a failed patient in a ``vmap``-ed population is reported rather than aborting all.
    """
    stop = infusions.start + infusions.duration
    rate = amounts / infusions.duration
    t_first = infusions.first_dose()
    jump_ts = jnp.sort(jnp.concatenate([infusions.start, stop]))
    t0 = jnp.minimum(ts[0], 0.0)
    t1 = ts[-1]
    controller = diffrax.ClipStepSizeController(
        diffrax.PIDController(rtol=options.rtol, atol=options.atol), jump_ts=jump_ts
    )
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(_vector_field),
        diffrax.Tsit5(),
        t0=t0,
        t1=t1,
        dt0=None,
        y0=jnp.zeros(3, dtype=jnp.result_type(float)),
        args=(pk, infusions.start, stop, rate, t_first),
        saveat=diffrax.SaveAt(ts=ts),
        stepsize_controller=controller,
        max_steps=options.max_steps,
        throw=False,
    )
    return sol.ys, sol.result._value


def concentrations_ode(
    pk: TwoCompartmentPK,
    infusions: InfusionTable,
    amounts: Float[Array, " n"],
    ts: Float[Array, " t"],
    options: SolverOptions = SolverOptions(),
) -> Float[Array, " t"]:
    """Central concentration (mg/L) at ``ts`` (days) for the full model; NaN where it failed."""
    ys, result = amounts_ode(pk, infusions, amounts, ts, options)
    conc = ys[:, 0] / pk.vc
    return jnp.where(result == 0, conc, jnp.nan)


def is_linear(pk: TwoCompartmentPK) -> bool:
    """True when every agent has constant linear clearance (concrete arrays only)."""
    leaves = (pk.tv_emax, pk.tv_imax, pk.vmax)
    return all(bool(jnp.all(jnp.asarray(x) == 0)) for x in leaves)


def concentrations(
    pk: TwoCompartmentPK,
    infusions: InfusionTable,
    weight_kg: Float[Array, ""] | float,
    ts: Float[Array, " t"],
    *,
    method: str,
    options: SolverOptions = SolverOptions(),
) -> Float[Array, "t agent"]:
    """Concentrations of every agent (leading ``agent`` axis on ``pk`` and ``infusions``).

    ``method`` is ``"analytic"`` (constant linear clearance only) or ``"ode"``.
    """
    amounts = infusions.amounts(weight_kg)
    if method == "analytic":
        fn = jax.vmap(concentrations_analytic, in_axes=(0, 0, 0, None))
        return fn(pk, infusions, amounts, ts).T
    if method == "ode":
        fn = jax.vmap(concentrations_ode, in_axes=(0, 0, 0, None, None))
        return fn(pk, infusions, amounts, ts, options).T
    raise ValueError(f"unknown PK method {method!r}; expected 'analytic' or 'ode'")
