"""Maximum a posteriori fits: Adam (optax), then L-BFGS-B (scipy), from several starts.

Works on any log-density of an unconstrained vector (``pdmodel.fit.log_density``).
Starts are the prior centre plus draws from the prior (explicit key); they run on a thread per
core (:func:`pdmodel.distributed.thread_map`: a compiled solve keeps one core busy) through the
same compiled value-and-gradient program, which the Laplace Hessian's columns then share the
same way; the best is returned together with every start's result so multi-modality is
visible. In a multi-process run (``jax.distributed``) the starts and the Hessian's columns are
split across the processes and gathered (:mod:`pdmodel.distributed`): every process returns
what one process would.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import scipy.optimize
from jaxtyping import Array, Float

from ..distributed import map_rows, thread_map


class MapResult(NamedTuple):
    """Result of :func:`map_fit`."""

    u: Float[Array, " param"]  # best unconstrained vector
    log_density: Float[Array, ""]  # its log posterior
    starts_u: Float[Array, "start param"]  # optimum reached from each start
    starts_log_density: Float[Array, " start"]
    grad_norm: Float[Array, " start"]  # final gradient norm


def map_fit(
    log_density: Callable[[Float[Array, " param"]], Float[Array, ""]],
    u0: Float[Array, " param"],
    key,
    *,
    scale: Float[Array, " param"] | float = 1.0,
    starts: int = 4,
    adam_steps: int = 300,
    adam_lr: float = 0.05,
    lbfgs_steps: int = 100,
    progress: Callable[[int, int], None] | None = None,
) -> MapResult:
    """Maximise ``log_density`` from ``u0`` and ``starts - 1`` prior draws ``u0 + scale·z``.

    ``progress(done, total)`` is called on the host after each start (for progress bars).
    """
    n = u0.shape[0]
    z = jax.random.normal(key, (max(starts - 1, 0), n))
    inits = jnp.concatenate([u0[None], u0[None] + jnp.asarray(scale) * z])

    done, lock = [0], threading.Lock()

    def one(k):
        u, ld, gn = _optimise(inits[int(k)], log_density, adam_lr, adam_steps, lbfgs_steps)
        with lock:
            done[0] += 1
            if progress is not None:
                progress(done[0], inits.shape[0])
        return np.concatenate([np.asarray(u), [float(ld), float(gn)]])

    def optimise(ks):  # this process's starts, a thread per core
        if len(ks) > 1:  # compiled once, before the threads share it
            _value_and_grad(inits[int(ks[0])], log_density)
        return np.stack(thread_map(one, ks))

    out = jnp.asarray(map_rows(optimise, np.arange(inits.shape[0])))
    us, lds, gn = out[:, :n], out[:, n], out[:, n + 1]
    best = jnp.argmax(jnp.where(jnp.isfinite(lds), lds, -jnp.inf))
    return MapResult(us[best], lds[best], us, lds, gn)


LBFGS_EVALUATIONS = 2
"""L-BFGS may spend at most this many log-density evaluations per allowed iteration
(``lbfgs_steps``): iterations that do not lower the loss (at the optimum, or where the
objective is not smooth enough) each spend up to the line search's 20 evaluations; a fold of
``pdmodel validate`` once spent 900 s so."""

LBFGS_STALL = (3, 1e-3)
"""L-BFGS stops once this many iterations in a row have lowered the loss by less than this
much in all (log-density units; the posterior's scale is 1). On the bundled fit the last
iterations gain a few 1e-4 each at about 1 s an evaluation, and the stop leaves the point
0.003-0.005 below the optimum: about 0.1 posterior SD."""


def _value_and_grad(u, log_density):
    """``(log_density(u), its gradient)``, jitted on both (the log-density too: a
    ``jax.tree_util.Partial`` holding the design passes its arrays as inputs, not constants).
    The one compiled program of the likelihood that every MAP start, every step of Adam and
    L-BFGS and the Laplace Hessian share: compiling the whole optimiser as one program traced
    the likelihood three times (Adam, L-BFGS, its line search) and took 124 s against 30 s for
    the bundled fit.

    ``u`` goes in as a host array: jit keys its compiled programs on whether an argument is
    committed to a device, and Adam's iterates (outputs of compiled calls) are while L-BFGS's
    and the starts are not, so the one program was compiled twice (45 s more for the bundled
    fit, 35 s for the tests' tiny fit)."""
    return _value_and_grad_compiled(np.asarray(u), log_density)


@eqx.filter_jit
def _value_and_grad_compiled(u, log_density):
    """:func:`_value_and_grad`, compiled."""
    return jax.value_and_grad(log_density)(u)


def _optimise(u, log_density, adam_lr: float, adam_steps: int, lbfgs_steps: int):
    """One start: Adam (optax), then L-BFGS-B (scipy) for at most ``lbfgs_steps`` iterations
    and ``LBFGS_EVALUATIONS × lbfgs_steps`` evaluations, or until it stalls
    (:data:`LBFGS_STALL`), both driven from the host through
    :func:`_value_and_grad`; returns the best point reached, ``(u, log density, gradient
    norm)``. Non-finite gradient entries count as 0 (Adam); a non-finite log density is a
    wall to L-BFGS-B's line search."""
    adam = optax.adam(adam_lr)
    update = jax.jit(adam.update)
    state = adam.init(u)
    for _ in range(adam_steps):
        _, g = _value_and_grad(u, log_density)
        g = jnp.where(jnp.isfinite(g), g, 0.0)
        updates, state = update(-g, state, u)
        u = optax.apply_updates(u, updates)
    best = {"loss": np.inf, "u": np.asarray(u, np.float64), "g": None}

    def loss_and_grad(x):
        v, g = _value_and_grad(jnp.asarray(x, u.dtype), log_density)
        loss, g = -float(v), -np.asarray(g, np.float64)
        if not np.isfinite(loss):
            return np.inf, np.zeros_like(x)
        if loss < best["loss"]:
            best.update(loss=loss, u=np.array(x, np.float64), g=g)
        return loss, np.where(np.isfinite(g), g, 0.0)

    iterations, gain = LBFGS_STALL
    losses = []

    def stalled(intermediate_result):
        losses.append(float(intermediate_result.fun))
        if len(losses) > iterations and losses[-1 - iterations] - losses[-1] < gain:
            raise StopIteration

    if lbfgs_steps > 0:
        scipy.optimize.minimize(loss_and_grad, best["u"], jac=True, method="L-BFGS-B",
                                callback=stalled,
                                options={"maxiter": lbfgs_steps,
                                         "maxfun": LBFGS_EVALUATIONS * lbfgs_steps})
    else:
        loss_and_grad(best["u"])
    g = np.zeros_like(best["u"]) if best["g"] is None else best["g"]
    return (jnp.asarray(best["u"], u.dtype), jnp.asarray(-best["loss"], u.dtype),
            jnp.asarray(np.linalg.norm(g), u.dtype))


class Laplace(NamedTuple):
    """Gaussian approximation at the mode (unconstrained scale)."""

    sd: Float[Array, " param"]
    cov: Float[Array, "param param"]
    nonconcave: int  # directions where the log-density is not strictly concave
    remeasured: int = 0  # directions whose curvature was measured again on the value


CURVATURE_STEP = 0.03
"""Step (unconstrained scale, along an eigenvector) of the second difference of the log
density that measures again the curvature of a direction the gradient-based Hessian found
non-concave (:func:`laplace_scale`): wider than the kinks of the running maxima, below the
posterior SDs of those directions (0.05-0.1 in the bundled fit)."""


def laplace_scale(log_density: Callable[[Float[Array, " param"]], Float[Array, ""]],
                  u: Float[Array, " param"], step: float = 1e-3) -> Laplace:
    """Laplace approximation of the posterior at the mode ``u``.

    The Hessian is the forward difference of the (compiled) gradient, symmetrised: n + 1
    gradient calls, far cheaper to compile than forward-over-reverse through the ODE solver
    (central differences took twice the calls for a change of order ``step`` relative, far
    below the approximation's own error). The step, 1e-3 on the unconstrained scale, is
    wider than the kinks of the solvers' running maxima: at 1e-4 the managed-arms fit had a
    non-concave direction whose log density fell along it at curvature −3.9 measured over
    ±0.1-0.5 (the gradient's small jumps, not the posterior's shape); at 1e-3 every direction
    is concave and the SDs agree to 1e-4. Directions of non-negative curvature (a ridge, or
    not quite at the mode) would give a negative variance; there the magnitude of the
    curvature is used (SoftAbs-like, floored at 1e-6) and they are counted in ``nonconcave``
    so reports can flag them.

    A kink of the gradient within the step (the solvers' running maxima and the smoothed onset
    medians are continuous but not everywhere smooth) can still make the forward difference
    non-concave along a direction where the log density itself is concave: the bundled fit
    of 2026-12-05 (late) had two such directions, curvature −578 and −139 from the gradient,
    while the log density fell along both by 0.012-0.015 at ±0.01 and about 1 at ±0.1. Each
    non-concave direction's curvature is therefore measured again by the second difference of
    the log density along its eigenvector at ±:data:`CURVATURE_STEP`; where that is concave
    it replaces the eigenvalue (counted in ``remeasured``), otherwise the direction stays
    non-concave.
    """
    n = u.shape[0]
    g0 = _value_and_grad(u, log_density)[1]

    def column(k):
        return np.asarray((_value_and_grad(u.at[k].add(step), log_density)[1] - g0) / step)

    def columns(ks):  # this process's columns of the Hessian, as rows, a thread per core
        return np.stack(thread_map(column, ks))

    h = jnp.asarray(map_rows(columns, np.arange(n))).T
    w, v = jnp.linalg.eigh(-0.5 * (h + h.T))
    remeasured = 0
    if bool(jnp.any(w <= 0)):
        f0 = _value_and_grad(u, log_density)[0]
        for i in np.flatnonzero(np.asarray(w) <= 0):
            d = CURVATURE_STEP * v[:, i]
            second = (_value_and_grad(u + d, log_density)[0]
                      + _value_and_grad(u - d, log_density)[0] - 2.0 * f0)
            curvature = -float(second) / CURVATURE_STEP**2
            if curvature > 0:
                w = w.at[i].set(curvature)
                remeasured += 1
    nonconcave = int(jnp.sum(w <= 0))
    w = jnp.maximum(jnp.abs(w), 1e-6)
    cov = (v / w) @ v.T
    return Laplace(jnp.sqrt(jnp.diag(cov)), cov, nonconcave, remeasured)
