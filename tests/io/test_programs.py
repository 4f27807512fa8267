"""Stored programs (pdmodel.io.stored_call): same results as the function, on disk next to the
compilation cache, and transformable (the test session configures a compilation cache,
tests/conftest.py, so the stored path is the one exercised here)."""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from pdmodel.io import source_hash, stored_call
from pdmodel.irae import Population


def _f(x, y):
    return jnp.sin(x) * y, jnp.cumsum(x)


def test_stored_call_equals_the_function_and_is_kept_on_disk():
    x, y = jnp.linspace(0.0, 1.0, 7), jnp.asarray(2.0)
    got = stored_call("test_programs_f", _f, x, y)
    want = _f(x, y)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-12)
    cache = jax.config.jax_compilation_cache_dir
    if cache:  # the test session has one
        stored = list((Path(cache) / "pdmodel-export").glob(f"test_programs_f-{source_hash()}-*"))
        assert stored, "no stored program next to the compilation cache"


def test_stored_call_is_transformable():
    x = jnp.linspace(0.0, 1.0, 5)
    batched = jax.vmap(lambda v: stored_call("test_programs_f", _f, v, 3.0)[0])(
        jnp.stack([x, 2 * x]))
    np.testing.assert_allclose(np.asarray(batched[1]), np.asarray(jnp.sin(2 * x) * 3.0))
    grad = jax.grad(lambda v: stored_call("test_programs_f", _f, v, 3.0)[0].sum())(x)
    np.testing.assert_allclose(np.asarray(grad), np.asarray(3.0 * jnp.cos(x)), rtol=1e-12)


def test_population_sample_under_vmap_equals_one_by_one():
    keys = jax.random.split(jax.random.key(0), 3)
    batched = jax.vmap(lambda k: Population.sample(k, 4, preexisting_ad=0.5).z_pd)(keys)
    single = np.stack([np.asarray(Population.sample(k, 4, preexisting_ad=0.5).z_pd)
                       for k in keys])
    np.testing.assert_array_equal(np.asarray(batched), single)


def test_programs_of_other_sources_are_pruned(tmp_path):
    """Storing a program removes those stored by another pdmodel source or JAX version
    (never read again), and keeps the current ones."""
    from pdmodel.io._programs import _prune_other_sources

    stale = tmp_path / "natural_curves-0123456789abcdef-ffff.bin"
    current = tmp_path / f"natural_curves-{source_hash()}-ffff.bin"
    for f in (stale, current):
        f.write_bytes(b"x")
    _prune_other_sources(tmp_path)
    assert not stale.exists() and current.exists()
