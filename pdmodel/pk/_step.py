"""One fixed step of the two-compartment PK, propagated exactly (fast solver's PK).

Over a step of ``dt`` days the clearance is frozen at its mid-step value (time-varying clearance
changes over weeks) and target-mediated elimination ``VMAX/(KM + C)`` at the mid-step
concentration (predictor-corrector: a first pass at the start concentration predicts the end);
the remaining
linear system ``x' = A x + R(t) e1`` is then solved exactly, including the part of an infusion
that falls inside the step:

    x(dt) = e^{A dt} x(0) + R ∫_a^b e^{A(dt − u)} e1 du,
    e^{Aτ} = [(A + αI) e^{−βτ} − (A + βI) e^{−ατ}] / (α − β)

with −α, −β the eigenvalues of ``A``. Checked against the adaptive ODE solution in the tests.
"""

from __future__ import annotations

import jax.numpy as jnp

from ._model import TwoCompartmentPK


def pk_step(pk: TwoCompartmentPK, x, t, dt, on, off, rate, t_first, *, mm: bool = True,
            aligned: bool = False):
    """Advance amounts ``x = (A_c, A_p)`` (mg) from ``t`` to ``t + dt`` (days).

    ``on``/``off``: infused part of the step as offsets (days); ``rate``: mg/day while infusing;
    ``t_first``: day of the agent's first dose (time origin of time-varying clearance);
    ``mm=False`` skips the Michaelis-Menten corrector (only valid when ``vmax`` is 0);
    ``aligned=True`` promises that the step is either wholly infused (``on = 0, off = dt``) or
    not at all, which saves four exponentials (the fast solver's grid guarantees it).
    """
    cl_lin = pk.clearance(t + 0.5 * dt - t_first)
    c0 = jnp.maximum(x[0] / pk.vc, 0.0)
    pred = _linear_step(pk, x, cl_lin + pk.vmax / (pk.km + c0), dt, on, off, rate, aligned)
    if not mm:
        return pred
    c_mid = 0.5 * (c0 + jnp.maximum(pred[0] / pk.vc, 0.0))
    corrected = _linear_step(pk, x, cl_lin + pk.vmax / (pk.km + c_mid), dt, on, off, rate,
                             aligned)
    return jnp.where(pk.vmax > 0, corrected, pred)


def _linear_step(pk, x, cl, dt, on, off, rate, aligned):
    a_c, a_p = x
    k10 = cl / pk.vc
    k12 = pk.q / pk.vc
    k21 = pk.q / pk.vp
    s = k10 + k12 + k21
    disc = jnp.sqrt(s * s - 4.0 * k10 * k21)
    alpha = 0.5 * (s + disc)
    beta = 2.0 * k10 * k21 / (s + disc)
    # rows of (A + λI) for λ = α, β;  A = [[-(k10+k12), k21], [k12, -k21]]
    def apply(lam, v0, v1):
        return (-(k10 + k12) + lam) * v0 + k21 * v1, k12 * v0 + (lam - k21) * v1

    ea, eb = jnp.exp(-alpha * dt), jnp.exp(-beta * dt)
    pa0, pa1 = apply(alpha, a_c, a_p)  # (A + αI) x
    pb0, pb1 = apply(beta, a_c, a_p)  # (A + βI) x
    new_c = (pa0 * eb - pb0 * ea) / (alpha - beta)
    new_p = (pa1 * eb - pb1 * ea) / (alpha - beta)
    # infusion: ∫_a^b e^{-λ(dt-u)} du = (e^{-λ(dt-b)} - e^{-λ(dt-a)}) / λ
    if aligned:
        infusing = off > on
        ib = jnp.where(infusing, (1.0 - eb) / beta, 0.0)
        ia = jnp.where(infusing, (1.0 - ea) / alpha, 0.0)
    else:
        ib = (jnp.exp(-beta * (dt - off)) - jnp.exp(-beta * (dt - on))) / beta
        ia = (jnp.exp(-alpha * (dt - off)) - jnp.exp(-alpha * (dt - on))) / alpha
    qa0, qa1 = apply(alpha, 1.0, 0.0)
    qb0, qb1 = apply(beta, 1.0, 0.0)
    new_c = new_c + rate * (qa0 * ib - qb0 * ia) / (alpha - beta)
    new_p = new_p + rate * (qa1 * ib - qb1 * ia) / (alpha - beta)
    return jnp.stack([new_c, new_p])
