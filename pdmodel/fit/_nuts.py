"""NUTS (numpyro) on any log-density of the unconstrained vector.

Chains run in the coordinates whitened by the Laplace approximation (``u = û + L z``), so the
sampler starts with a well-conditioned geometry and its diagonal mass-matrix adaptation only
has to correct what the Laplace approximation got wrong. Chains are split across devices
(``chain_method="parallel"``) when there are at least as many devices as chains, and vectorised
on one device otherwise — the same code on CPU, one GPU or several. In a multi-process run
(``jax.distributed``) each process runs its share of the chains (:func:`pdmodel.distributed.
process_share`) with the keys and starting points the single-process run gives them, and the
draws are gathered, so every process holds all chains, the same as on one process.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

from ..distributed import gather_shares, process_count, process_share
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

    k_init, k_run = jax.random.split(key)
    z0 = init_scale * jax.random.normal(k_init, (chains, n))
    # chains split across processes when each gets at least one (else all run all of them)
    split = process_count() > 1 and chains >= process_count()
    share = process_share(chains) if split else range(chains)
    mine = len(share)
    if split:
        keys = jax.random.split(k_run, chains)[share.start:share.stop]  # what MCMC.run does
        run_key, z_init = (keys, z0[share.start:share.stop]) if mine > 1 else (keys[0],
                                                                                z0[share.start])
        method = _local_parallel(mine) if chain_method(mine) == "parallel" else "vectorized"
    else:
        run_key, z_init = k_run, (z0 if chains > 1 else z0[0])
        method = chain_method(chains)
    # a pmap over devices (chains in parallel): what the potential closes over, uncommitted
    closed = (log_density, whitening) if method == "vectorized" else _uncommitted(
        (log_density, whitening))

    @jax.jit  # numpyro starts the chains outside jit (vmapped, op by op) and calls it there
    def potential(z):
        ld, white = closed
        return -ld(white.to_u(z))

    kernel = NUTS(potential_fn=potential, target_accept_prob=target_accept,
                  max_tree_depth=max_tree_depth)
    mcmc = MCMC(kernel, num_warmup=warmup, num_samples=draws, num_chains=mine,
                chain_method=method, progress_bar=progress)
    t0 = time.perf_counter()
    mcmc.run(run_key, init_params=z_init,
             extra_fields=("diverging", "accept_prob", "num_steps", "potential_energy",
                           "adapt_state.step_size"))
    z = np.asarray(mcmc.get_samples(group_by_chain=True))
    extra = {k: np.asarray(v) for k, v in mcmc.get_extra_fields(group_by_chain=True).items()}
    if split:
        z = gather_shares(z, chains)
        extra = {k: gather_shares(v, chains) for k, v in extra.items()}
        method = "parallel" if callable(method) else method
    seconds = time.perf_counter() - t0
    u = np.asarray(jax.vmap(jax.vmap(whitening.to_u))(jnp.asarray(z)))
    return NutsResult(
        u=u, log_density=-extra["potential_energy"], diverging=extra["diverging"].astype(bool),
        acceptance_rate=extra["accept_prob"], n_steps=extra["num_steps"],
        step_size=extra["adapt_state.step_size"][:, -1], seconds=seconds, chain_method=method)


def _uncommitted(tree):
    """``tree`` with its jax arrays copied through the host, so that none is committed to a
    device. A ``pmap`` over several devices refuses to close over an array committed to one
    (the design's arrays are: outputs of compiled solves) once its program comes from the
    persistent compilation cache (jax 0.12.1: "closed over constant sharding with device ids
    [0]")."""
    return jax.tree.map(lambda x: jnp.asarray(np.asarray(x)) if isinstance(x, jax.Array)
                        and not jnp.issubdtype(x.dtype, jax.dtypes.prng_key) else x, tree)


def _local_parallel(chains: int) -> Callable:
    """numpyro ``chain_method``: one chain per local device of this process (``pmap`` over
    this process's devices only; numpyro's ``"parallel"`` would span every process's)."""
    return functools.partial(jax.pmap, devices=jax.local_devices()[:chains])


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
