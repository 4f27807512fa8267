"""The search: optax on a continuous relaxation, then rounding and a local discrete search.

**Relaxation.** Doses are continuous already (:mod:`._arrays`): ``d = lo + (hi − lo)·σ(z)``.
Intervals and counts are positions ``t ∈ [0, n − 1]`` along their lists of allowed values
(``t = (n − 1)·σ(y)``); a fractional position is the *lottery* between the two neighbouring
schedules, whose risk and metrics are the linear interpolation of theirs (multilinear over
several discrete variables). The relaxed risk is exact at every allowed schedule and its
gradient in ``t`` is the difference between neighbours; no infusion is ever smeared in time
(the solver steps to every infusion edge). The gradient of the risk in the doses is
forward-mode AD through the PK and PD solvers (``jax.jacfwd``: a few dose variables), the
constraints' by reverse mode through the typical patient's PK. Constraints enter as a
quadratic penalty whose weight grows geometrically over the Adam steps (optax). Several
starts run together (``vmap``).

**Discrete phase.** Each start's relaxed optimum is rounded to the allowed set; a local search
then evaluates the exact risk on the neighbours (discrete variables ±1, doses ±2 steps and the
smallest dose meeting the constraints there) and moves to the best feasible one until none
improves. Constraint metrics are cheap (the typical patient's PK), so feasibility is checked
before any risk is computed, and an infeasible specification is detected on the whole space.
"""

from __future__ import annotations

import itertools
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Float, Int

from ._arrays import DesignArrays, metrics, risk_draws, summarise

RISK_BATCH = 8
"""Regimens per call of the exact risk program (padded; one compilation)."""


class Relaxed(NamedTuple):
    """The relaxed search's result per start: doses ``[start, var]`` (units of each
    variable), positions ``[start, axis]`` along the discrete variables, and the history of
    relaxed risk ``[step, start]``."""

    doses: Float[np.ndarray, "start var"]
    positions: Float[np.ndarray, "start axis"]
    risk: Float[np.ndarray, "step start"]


def corners(t: Float[Array, " axis"], shape: tuple[int, ...]):
    """Candidate indices ``[corner]`` (row-major over ``shape``) around positions ``t`` and
    their interpolation weights ``[corner]`` (differentiable in ``t``)."""
    relaxed = [i for i, n in enumerate(shape) if n > 1]
    base, frac = [], []
    for i, n in enumerate(shape):
        if n > 1:
            f = jnp.clip(jnp.floor(t[i]), 0, n - 2)
            base.append(f.astype(int))
            frac.append(t[i] - f)
        else:
            base.append(jnp.zeros((), int))
    strides = np.cumprod((1,) + tuple(shape[::-1]))[:-1][::-1]
    idx, wts = [], []
    for bits in itertools.product((0, 1), repeat=len(relaxed)):
        pos = list(base)
        w = jnp.ones(())
        for b, i, fr in zip(bits, relaxed, frac, strict=True):
            pos[i] = pos[i] + b
            w = w * (fr if b else 1.0 - fr)
        idx.append(sum(int(s) * p for s, p in zip(strides, pos, strict=True)))
        wts.append(w)
    return jnp.stack(idx), jnp.stack(wts)


@eqx.filter_jit
def relaxed_search(arr: DesignArrays, z0: Float[Array, "start var"],
                   y0: Float[Array, "start axis"], lo: Float[Array, " var"],
                   hi: Float[Array, " var"], levels: Float[Array, " con"],
                   scales: Float[Array, " con"], risk_scale: Float[Array, ""], *,
                   shape: tuple[int, ...], steps: int, learning_rate: float = 0.1,
                   rho: tuple[float, float] = (1.0, 1000.0)):
    """Adam on the penalised relaxed problem from every start (one ``lax.scan``).

    Returns the final logits ``z`` (doses) and ``y`` (positions) ``[start, ·]`` and the
    relaxed risk at each step ``[step, start]``.
    """
    tmax = jnp.asarray([n - 1 for n in shape], float)
    opt = optax.adam(learning_rate)

    def value_and_jac(d, c):
        f = lambda d: summarise(arr, risk_draws(arr, c, d))  # noqa: E731
        jac, val = jax.jacfwd(lambda d: (f(d), f(d)), has_aux=True)(d)
        return val, jac

    def one(x, state, weight):
        z, y = x
        d0 = lo + (hi - lo) * jax.nn.sigmoid(z)
        cands, _ = corners(tmax * jax.nn.sigmoid(y), shape)
        val, jac = jax.vmap(value_and_jac, in_axes=(None, 0))(d0, cands)

        def loss(x):
            z, y = x
            d = lo + (hi - lo) * jax.nn.sigmoid(z)
            _, w = corners(tmax * jax.nn.sigmoid(y), shape)
            risk = jnp.sum(w * (val + jac @ (d - d0)))  # exact value and slope at d0
            m = w @ jax.vmap(metrics, in_axes=(None, 0, None))(arr, cands, d)
            viol = jnp.maximum(levels - m, 0.0) / scales
            return risk / risk_scale + weight * jnp.sum(viol**2), risk

        grad, risk = jax.grad(loss, has_aux=True)(x)
        updates, state = opt.update(grad, state)
        return optax.apply_updates(x, updates), state, risk

    x0 = (z0, y0)
    state0 = jax.vmap(opt.init)(x0)
    weights = jnp.geomspace(rho[0], rho[1], steps)

    def body(carry, weight):
        x, state = carry
        x, state, risk = jax.vmap(one, in_axes=(0, 0, None))(x, state, weight)
        return (x, state), risk

    ((z, y), _), history = jax.lax.scan(body, (x0, state0), weights)
    return z, y, history


@eqx.filter_jit
def risk_batch(arr: DesignArrays, cands: Int[Array, " point"],
               doses: Float[Array, "point var"]) -> Float[Array, "point draw"]:
    """Exact risk of each regimen for each draw ``[point, draw]``."""
    return jax.vmap(risk_draws, in_axes=(None, 0, 0))(arr, cands, doses)


@eqx.filter_jit
def metric_batch(arr: DesignArrays, cands: Int[Array, " point"],
                 doses: Float[Array, "point var"]) -> Float[Array, "point con"]:
    """Constraint metrics of each regimen ``[point, con]``."""
    return jax.vmap(metrics, in_axes=(None, 0, 0))(arr, cands, doses)


class Evaluator:
    """Exact evaluations with a memory: risk per draw and metrics of ``(cand, dose indices)``
    points; counts the regimens whose risk was simulated."""

    def __init__(self, arr: DesignArrays, dose_values: list[np.ndarray]):
        self.arr = arr
        self.values = dose_values
        self.risk: dict[tuple, np.ndarray] = {}
        self.metric: dict[tuple, np.ndarray] = {}

    def doses(self, point: tuple) -> np.ndarray:
        """Dose values of ``point = (cand, i_1, ..., i_var)``."""
        return np.array([v[i] for v, i in zip(self.values, point[1:], strict=True)], float)

    def metrics(self, points: list[tuple]) -> np.ndarray:
        """Metrics ``[point, con]`` (computed in chunks of 4096)."""
        todo = [p for p in dict.fromkeys(points) if p not in self.metric]
        for k in range(0, len(todo), 4096):
            chunk = todo[k:k + 4096]
            n = len(chunk)
            pad = chunk + [chunk[-1]] * (_bucket(n) - n)
            out = np.asarray(metric_batch(self.arr, jnp.asarray([p[0] for p in pad]),
                                          jnp.asarray(np.stack([self.doses(p) for p in pad]))))
            self.metric.update(zip(chunk, out[:n], strict=True))
        n_con = len(self.arr.kinds)
        return np.stack([self.metric[p] for p in points]) if points else np.zeros((0, n_con))

    def risks(self, points: list[tuple]) -> np.ndarray:
        """Risk per draw ``[point, draw]`` (batches of :data:`RISK_BATCH`)."""
        todo = [p for p in dict.fromkeys(points) if p not in self.risk]
        for k in range(0, len(todo), RISK_BATCH):
            chunk = todo[k:k + RISK_BATCH]
            pad = chunk + [chunk[-1]] * (RISK_BATCH - len(chunk))
            out = np.asarray(risk_batch(self.arr, jnp.asarray([p[0] for p in pad]),
                                        jnp.asarray(np.stack([self.doses(p) for p in pad]))))
            self.risk.update(zip(chunk, out[:len(chunk)], strict=True))
        return np.stack([self.risk[p] for p in points])

    def statistic(self, draws: np.ndarray) -> np.ndarray:
        """The objective's statistic over the last axis (draws)."""
        q = self.arr.quantile
        return draws.mean(-1) if np.isnan(q) else np.quantile(draws, q, axis=-1)


def _bucket(n: int) -> int:
    """Padded batch size (powers of two from 8): few distinct compilations."""
    return max(8, 1 << (n - 1).bit_length())


def violation(m: np.ndarray, levels: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """Total scaled violation of the constraints ``[..., con] → [...]`` (0 = feasible)."""
    return np.sum(np.maximum(levels - m, 0.0) / scales, axis=-1)


def local_search(ev: Evaluator, seeds: list[tuple], shape: tuple[int, ...],
                 levels: np.ndarray, scales: np.ndarray, *, radius: int = 2,
                 max_rounds: int = 20, tol: float = 1e-9) -> tuple | None:
    """Best feasible point reached from ``seeds`` by moving to the best neighbour (discrete
    variables ±1 combined with doses ±``radius`` steps, or the smallest feasible dose of one
    variable), until no neighbour improves. ``None`` if no feasible point was found."""

    def key(p):
        v = violation(ev.metric[p], levels, scales)
        if v > tol:
            return (1, v)
        return (0, float(ev.statistic(ev.risks([p])[0])))

    ev.metrics(seeds)
    best = min(seeds, key=key)
    for _ in range(max_rounds):
        nbrs = _neighbours(ev, best, shape, levels, scales, radius)
        m = ev.metrics(nbrs)
        ok = [p for p, mi in zip(nbrs, m, strict=True) if violation(mi, levels, scales) <= tol]
        pool = ok if ok else nbrs
        if ok:
            ev.risks(ok)
        cand = min(pool + [best], key=key)
        if cand == best or key(cand) >= key(best):
            break
        best = cand
    return best if violation(ev.metric[best], levels, scales) <= tol else None


def _neighbours(ev: Evaluator, p: tuple, shape: tuple[int, ...], levels, scales,
                radius: int) -> list[tuple]:
    cand, idx = p[0], list(p[1:])
    pos = np.unravel_index(cand, shape)
    out = []
    for delta in itertools.product(*[(-1, 0, 1) if n > 1 else (0,) for n in shape]):
        q = tuple(int(np.clip(a + b, 0, n - 1)) for a, b, n in zip(pos, delta, shape, strict=True))
        c = int(np.ravel_multi_index(q, shape))
        out.append((c, *idx))
        for k, vals in enumerate(ev.values):
            for s in range(-radius, radius + 1):
                j = int(np.clip(idx[k] + s, 0, len(vals) - 1))
                out.append((c, *idx[:k], j, *idx[k + 1:]))
            # smallest feasible dose of variable k here, the others held
            line = [(c, *idx[:k], j, *idx[k + 1:]) for j in range(len(vals))]
            ok = np.nonzero(violation(ev.metrics(line), levels, scales) <= 1e-9)[0]
            if ok.size:
                out.append(line[int(ok[0])])
    return list(dict.fromkeys(out))


def nearest(values: np.ndarray, x: float) -> int:
    """Index of the allowed value nearest ``x``."""
    return int(np.argmin(np.abs(values - x)))
