"""NUTS (numpyro) on any log-density of the unconstrained vector.

Chains run in the coordinates whitened by the Laplace approximation (``u = û + L z``), so the
sampler starts with a well-conditioned geometry and its diagonal mass-matrix adaptation only
has to correct what the Laplace approximation got wrong. Chains are split across devices
(``chain_method="parallel"``) when there are at least as many devices as chains, and vectorised
on one device otherwise — the same code on CPU, one GPU or several.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

from ._emulator import Whitening


class NutsResult(NamedTuple):
    """Draws and per-draw sampler statistics, ``[chain, draw, ...]``."""

    u: Float[np.ndarray, "chain draw param"]  # unconstrained
    log_density: Float[np.ndarray, "chain draw"]  # log density the sampler saw
    diverging: Bool[np.ndarray, "chain draw"]
    acceptance_rate: Float[np.ndarray, "chain draw"]
    n_steps: Int[np.ndarray, "chain draw"]  # leapfrog steps
    step_size: Float[np.ndarray, " chain"]  # adapted step size
    seconds: float  # wall time of warm-up + sampling (compile included)
    chain_method: str


def chain_method(chains: int) -> str:
    """``"parallel"`` (one chain per device) when enough devices exist, else ``"vectorized"``."""
    return "parallel" if chains > 1 and jax.local_device_count() >= chains else "vectorized"


def run_nuts(
    log_density: Callable[[Float[Array, " param"]], Float[Array, ""]],
    whitening: Whitening,
    key,
    *,
    chains: int = 4,
    warmup: int = 500,
    draws: int = 1000,
    target_accept: float = 0.85,
    max_tree_depth: int = 8,
    init_scale: float = 0.5,
    progress: bool = True,
) -> NutsResult:
    """Sample ``log_density(u)`` with NUTS; chains start at ``û + L·init_scale·N(0, I)``."""
    from numpyro.infer import MCMC, NUTS

    n = whitening.mean.shape[0]

    def potential(z):
        return -log_density(whitening.to_u(z))

    kernel = NUTS(potential_fn=potential, target_accept_prob=target_accept,
                  max_tree_depth=max_tree_depth)
    method = chain_method(chains)
    mcmc = MCMC(kernel, num_warmup=warmup, num_samples=draws, num_chains=chains,
                chain_method=method, progress_bar=progress)
    k_init, k_run = jax.random.split(key)
    z0 = init_scale * jax.random.normal(k_init, (chains, n))
    if chains == 1:
        z0 = z0[0]
    t0 = time.perf_counter()
    mcmc.run(k_run, init_params=z0,
             extra_fields=("diverging", "accept_prob", "num_steps", "potential_energy",
                           "adapt_state.step_size"))
    z = np.asarray(mcmc.get_samples(group_by_chain=True))
    seconds = time.perf_counter() - t0
    extra = {k: np.asarray(v) for k, v in mcmc.get_extra_fields(group_by_chain=True).items()}
    u = np.asarray(jax.vmap(jax.vmap(whitening.to_u))(jnp.asarray(z)))
    return NutsResult(
        u=u, log_density=-extra["potential_energy"], diverging=extra["diverging"].astype(bool),
        acceptance_rate=extra["accept_prob"], n_steps=extra["num_steps"],
        step_size=extra["adapt_state.step_size"][:, -1], seconds=seconds, chain_method=method)


MIN_PSIS_DRAWS = 50
"""Fewer importance weights than this give no Pareto k̂ (NaN)."""


def psis_check(log_weights: np.ndarray) -> tuple[float, float]:
    """Pareto k̂ and relative effective sample size of importance weights
    ``exp(log_weights)`` (any shape; pooled). k̂ < 0.7: the proposal is
    reliable; NaN with fewer than ``MIN_PSIS_DRAWS`` weights."""
    from arviz_stats.base import array_stats

    lw = np.asarray(log_weights, dtype=float).reshape(-1)
    if lw.size < MIN_PSIS_DRAWS:
        return float("nan"), float("nan")
    lw = lw - lw.max()
    smoothed, khat = array_stats.psislw(lw, r_eff=1.0)
    w = np.exp(smoothed - smoothed.max())
    w /= w.sum()
    return float(khat), float(1.0 / np.sum(w**2) / lw.size)
