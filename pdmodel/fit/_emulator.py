"""A cheap, differentiable emulator of the ODE part of the likelihood, for NUTS on CPU.

One exact log-density evaluation solves 8 regimens × the virtual population for a year
(~0.05 s, gradient ~0.3 s on 2 CPU cores); NUTS needs ~10⁵ gradients. The emulator replaces
only the ODE solves: the features ``f(u)`` (log running-maximum injury of every virtual
patient × organ × regimen at the horizon) as a function of the parameters the ODE depends on,

    f(u) ≈ a + J x + MLP(x),   x = (u[ode] − û[ode]) / sd[ode]

with ``a`` and ``J`` the exact value and central-difference Jacobian at the MAP ``û`` (``sd``
from the Laplace approximation) and a small MLP (equinox, trained with optax) that learns the
curvature from exact solves at design points drawn from the Laplace approximation (radius
0.6–1.4 of the typical one). Everything downstream — grade thresholds, background, endpoint
mapping, the population mean, the beta-binomial and the priors — stays exact. The training
loss weights each feature by its Gauss–Newton (Fisher) weight in the likelihood, so errors are
small where they move the likelihood.

The emulator's error is *checked, not assumed*: posterior draws are re-weighted by the exact
likelihood (Pareto-smoothed importance sampling; ``psis_check``) and the Pareto k̂ reported;
k̂ < 0.7 means the emulated posterior is a reliable proposal for the exact one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Float

from ..distributed import chunk_map
from ..numerics import LOG_FLOOR


class Whitening(NamedTuple):
    """Affine map ``u = mean + root @ z`` from whitened ``z`` to the unconstrained vector."""

    mean: Float[Array, " param"]
    root: Float[Array, "param param"]  # root @ root.T = Laplace covariance

    @classmethod
    def from_laplace(cls, mean, cov) -> Whitening:
        """Whitening by the Laplace approximation ``N(mean, cov)`` (symmetric square root
        ``V·√W·Vᵀ``, negative eigenvalues clipped). The symmetric root is unique, so covariances
        equal to rounding give roots equal to rounding; the eigenvector matrix ``V·√W`` used
        until 2026-12-05 is not where eigenvalues repeat (parameters with the same prior and no
        data): its basis of such a subspace is arbitrary, and a two-process fit drew other
        Laplace and NUTS points than the single-process one."""
        cov = np.asarray(cov)
        w, v = np.linalg.eigh(0.5 * (cov + cov.T))
        root = (v * np.sqrt(np.clip(w, LOG_FLOOR, None))) @ v.T
        return cls(jnp.asarray(mean), jnp.asarray(root))

    def to_u(self, z: Float[Array, "*batch param"]) -> Float[Array, "*batch param"]:
        """Unconstrained vector(s) of whitened ``z`` (``[..., parameter]``)."""
        return self.mean + z @ self.root.T

    def to_z(self, u: Float[Array, "*batch param"]) -> Float[Array, "*batch param"]:
        """Whitened coordinates of unconstrained ``u``."""
        return jnp.linalg.solve(self.root, (u - self.mean).T).T


class Emulator(eqx.Module):
    """``f(u) = centre + jac @ x + mlp(x)``, ``x = (u[index] − mean) / scale``."""

    index: tuple[int, ...] = eqx.field(static=True)
    mean: Float[Array, " input"]
    scale: Float[Array, " input"]
    centre: Float[Array, " feature"]
    jac: Float[Array, "feature input"]
    mlp: eqx.nn.MLP

    def inputs(self, u: Float[Array, " param"]) -> Float[Array, " input"]:
        """Standardised emulator inputs of the unconstrained vector ``u``."""
        return (u[np.asarray(self.index)] - self.mean) / self.scale

    def linear(self, u: Float[Array, " param"]) -> Float[Array, " feature"]:
        """The linear part alone (Taylor expansion at the mode)."""
        return self.centre + self.jac @ self.inputs(u)

    def __call__(self, u: Float[Array, " param"]) -> Float[Array, " feature"]:
        """Emulated features ``[feature]`` at unconstrained ``u``."""
        x = self.inputs(u)
        return self.centre + self.jac @ x + self.mlp(x)


class EmulatorReport(NamedTuple):
    """How well the emulator reproduces the exact model on held-out design points."""

    design_points: int
    validation_points: int
    inputs: int
    features: int
    loglik_rmse: float  # RMS error of the total log-likelihood (nats), held-out points
    loglik_rmse_linear: float  # the same for the linear part alone
    loglik_sd: float  # SD of the exact log-likelihood over the held-out points (scale)
    seconds: float


@eqx.filter_jit
def _map_batch(points, fn):
    """``fn`` at each point (``lax.map``). Module-level and jitted on ``fn`` too: a
    ``jax.tree_util.Partial`` holding the design passes its arrays as inputs, so the design
    solves and the exact solves at the draws of one fit share one compiled program."""
    return jax.lax.map(fn, points)


def exact_features_program(fn: Callable[[Float[Array, " param"]], Float[Array, " feature"]],
                           points: Float[np.ndarray, "point param"]):
    """The lowered program :func:`evaluate` runs on a batch shaped like ``points`` (numpy):
    ``.compile()`` it ahead of time and ``evaluate`` finds it compiled."""
    return _map_batch.lower(jnp.asarray(points), fn)


def evaluate(
    fn: Callable[[Float[Array, " param"]], Float[Array, " feature"]],
    points: Float[Array, "point param"],
    batch_size: int = 16,
    progress: Callable[[int], None] | None = None,
) -> Float[np.ndarray, "point feature"]:
    """``fn`` at every point, ``batch_size`` at a time through one compiled batched call,
    the batches on a thread per core (``progress(n_done)`` after each batch). The last batch
    is padded, so nothing recompiles.
    """
    return chunk_map(lambda chunk: _map_batch(jnp.asarray(chunk), fn), points,
                     size=batch_size, progress=progress)


def design(key, whitening: Whitening, n_points: int) -> Float[Array, "point param"]:
    """Design points ``[point, parameter]`` (unconstrained): Laplace draws whose radius is
    rescaled to 0.6–1.4 of the typical one (explicit key)."""
    k1, k2 = jax.random.split(key)
    eps = jax.random.normal(k1, (n_points, whitening.mean.shape[0]))
    r = jax.random.uniform(k2, (n_points, 1), minval=0.6, maxval=1.4)
    return whitening.to_u(r * eps)


JAC_STEP = 0.05
"""Central-difference step of the emulator's Jacobian, in Laplace marginal SDs."""


def solve_design(
    features: Callable[[Float[Array, " param"]], Float[Array, " feature"]],
    whitening: Whitening,
    index: tuple[int, ...],
    key,
    *,
    design_points: int = 512,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Exact ``features`` at the mode, at ± ``JAC_STEP`` SD along each input (for the
    Jacobian) and at ``design_points`` design points: ``{"u": [point, parameter],
    "features": [point, feature]}`` in that order. ``progress(done, total)`` counts solves."""
    k_design, _ = jax.random.split(key)
    idx = np.asarray(index)
    mode = whitening.mean
    steps_u = JAC_STEP * jnp.eye(mode.shape[0])[idx] * marginal_sd(whitening, index)[:, None]
    points = jnp.concatenate([mode[None], mode + steps_u, mode - steps_u,
                              design(k_design, whitening, design_points)])
    y = evaluate(features, points, progress=None if progress is None else
                 (lambda done: progress(done, points.shape[0])))
    return {"u": np.asarray(points), "features": y}


def marginal_sd(whitening: Whitening, index: tuple[int, ...]) -> Float[Array, " input"]:
    """Laplace marginal SD of the inputs ``u[index]`` (the emulator's input scale)."""
    return jnp.sqrt(jnp.sum(whitening.root[np.asarray(index)] ** 2, axis=1))


def emulator_from_design(
    des: dict,
    loglik: Callable[[Float[Array, " param"], Float[Array, " feature"]], Float[Array, ""]],
    whitening: Whitening,
    index: tuple[int, ...],
    key,
    *,
    extra: tuple[Float[np.ndarray, "point param"],
                 Float[np.ndarray, "point feature"]] | None = None,
    width: int = 128,
    steps: int = 3000,
    learning_rate: float = 2e-3,
) -> tuple[Emulator, EmulatorReport]:
    """Train an :class:`Emulator` on a :func:`solve_design` result, optionally with ``extra =
    (u, features)`` exact solves added to the training set (e.g. at posterior draws)."""
    t0 = time.perf_counter()
    _, k_init = jax.random.split(key)
    n_in = len(index)
    u, y = des["u"], des["features"]
    jac = ((y[1:n_in + 1] - y[n_in + 1:2 * n_in + 1]) / (2 * JAC_STEP)).T
    train_u, train_y = u[2 * n_in + 1:], y[2 * n_in + 1:]
    if extra is not None:
        train_u = np.concatenate([train_u, extra[0]])
        train_y = np.concatenate([train_y, extra[1]])
    emu, report = train_emulator(index, whitening.mean, marginal_sd(whitening, index), y[0],
                                 jac, train_u, train_y, loglik, k_init, width=width,
                                 steps=steps, learning_rate=learning_rate)
    return emu, report._replace(seconds=time.perf_counter() - t0)


def fit_emulator(
    features: Callable[[Float[Array, " param"]], Float[Array, " feature"]],
    loglik: Callable[[Float[Array, " param"], Float[Array, " feature"]], Float[Array, ""]],
    whitening: Whitening,
    index: tuple[int, ...],
    key,
    *,
    design_points: int = 512,
    width: int = 128,
    steps: int = 3000,
    learning_rate: float = 2e-3,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[Emulator, EmulatorReport, dict]:
    """Solve the design and train an :class:`Emulator` of ``features(u)`` (exact; depends on
    ``u[index]`` only).

    ``loglik(u, f) -> total log-likelihood`` given features ``f`` scores held-out errors in
    nats and gives the features' loss weights (Gauss–Newton diagonal at the mode). Returns the
    emulator, an :class:`EmulatorReport` (``seconds`` includes the solves) and the design
    (``u``, exact features) so callers can checkpoint it.
    """
    t0 = time.perf_counter()
    des = solve_design(features, whitening, index, key, design_points=design_points,
                       progress=progress)
    emu, report = emulator_from_design(des, loglik, whitening, index, key, width=width,
                                       steps=steps, learning_rate=learning_rate)
    return emu, report._replace(seconds=time.perf_counter() - t0), des


HESSIAN_BATCH = 32
"""Hessian-vector products computed together for the feature weights (bounds memory: the
full Hessian of thousands of features, taken at once, does not fit in memory)."""


@eqx.filter_jit
def _grad_and_hessian_diagonal(loglik, mode_u, f0):
    grad = jax.grad(lambda f: loglik(mode_u, f))

    def diagonal(i):
        e = jnp.zeros_like(f0).at[i].set(1.0)
        return jax.jvp(grad, (f0,), (e,))[1][i]

    return grad(f0), jax.lax.map(diagonal, jnp.arange(f0.shape[0]), batch_size=HESSIAN_BATCH)


def feature_weights(loglik, mode_u, centre) -> Float[Array, " feature"]:
    """Gauss–Newton weight of each feature: squared sensitivity of the log-likelihood plus
    the magnitude of its curvature (the Hessian's diagonal, by Hessian-vector products in
    batches of :data:`HESSIAN_BATCH`), with a floor so no feature is ignored."""
    g, h = _grad_and_hessian_diagonal(loglik, jnp.asarray(mode_u), jnp.asarray(centre))
    w = jnp.abs(h) + g**2
    return w + 1e-3 * jnp.mean(w)


@eqx.filter_jit  # compiled: op by op it was about 460 small programs (~25 s) in the tiny fit
def _held_out_logliks(loglik, emu, u, y):
    """Log-likelihood ``[point]`` at held-out points ``u`` given their exact features ``y``,
    the emulator's, and its linear part's."""
    return (jax.vmap(loglik)(u, y), jax.vmap(lambda uu: loglik(uu, emu(uu)))(u),
            jax.vmap(lambda uu: loglik(uu, emu.linear(uu)))(u))


def train_emulator(index, mode_u, scale, centre, jac, u, y, loglik, key, *, width=128,
                   steps=3000, learning_rate=2e-3) -> tuple[Emulator, EmulatorReport]:
    """Fit the MLP residual to exact features ``y`` ``[point, feature]`` at ``u``; 1/8 of
    the points are held out for the report."""
    u, y = jnp.asarray(u), jnp.asarray(y)
    n_points = u.shape[0]
    n_val = max(1, n_points // 8)
    centre, jac = jnp.asarray(centre), jnp.asarray(jac)
    mode_u = jnp.asarray(mode_u)
    lin_emu = Emulator(tuple(int(i) for i in index), mode_u[np.asarray(index)],
                       jnp.asarray(scale),
                       centre, jac, eqx.nn.MLP(len(index), y.shape[1], width, 2,
                                               activation=jax.nn.gelu, key=key))
    mlp = lin_emu.mlp
    # start at the linear emulator: last layer zero
    mlp = eqx.tree_at(lambda m: (m.layers[-1].weight, m.layers[-1].bias), mlp,
                      (jnp.zeros_like(mlp.layers[-1].weight),
                       jnp.zeros_like(mlp.layers[-1].bias)))
    x = jax.vmap(lin_emu.inputs)(u)
    resid = y - (centre + x @ jac.T)
    x_tr, r_tr = x[n_val:], resid[n_val:]
    w = feature_weights(loglik, mode_u, centre)
    w = w / jnp.mean(w)
    schedule = optax.cosine_decay_schedule(learning_rate, steps)
    opt = optax.adamw(schedule, weight_decay=1e-4)
    params, static = eqx.partition(mlp, eqx.is_inexact_array)

    def loss(p):
        m = eqx.combine(p, static)
        err = jax.vmap(m)(x_tr) - r_tr
        return jnp.mean(jnp.sum(w * err**2, axis=1))

    @jax.jit
    def train(params):
        state = opt.init(params)

        def step(carry, _):
            p, s = carry
            v, g = jax.value_and_grad(loss)(p)
            upd, s = opt.update(g, s, p)
            return (optax.apply_updates(p, upd), s), v

        (params, _), _ = jax.lax.scan(step, (params, state), None, length=steps)
        return params

    emu = eqx.tree_at(lambda e: e.mlp, lin_emu, eqx.combine(train(params), static))
    exact, emulated, lin = _held_out_logliks(loglik, emu, u[:n_val], y[:n_val])
    report = EmulatorReport(
        design_points=int(n_points), validation_points=int(n_val), inputs=len(index),
        features=int(y.shape[1]),
        loglik_rmse=float(jnp.sqrt(jnp.mean((emulated - exact) ** 2))),
        loglik_rmse_linear=float(jnp.sqrt(jnp.mean((lin - exact) ** 2))),
        loglik_sd=float(jnp.std(exact)), seconds=0.0)
    return emu, report
