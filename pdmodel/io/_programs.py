"""Compiled programs kept on disk: a new process skips Python tracing as well as compilation.

JAX's persistent compilation cache (switched on by the command line) saves compiling, but a
new process still traces and lowers every program in Python, which for pdmodel's prediction
programs costs more than running them. :func:`stored_call` keeps each program, traced once,
as a serialized ``jax.export`` module next to that cache.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from pathlib import Path

import lazy_loader as _lazy

from ._atomic import atomic_write_bytes

jax = _lazy.load("jax")  # imported on first use: the command line starts without JAX

_PROGRAMS: dict[str, Callable] = {}


def package_source_hash() -> str:
    """Hash of pdmodel's Python source as it is on disk now (without importing JAX)."""
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for f in sorted(root.rglob("*.py")):
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


@functools.cache
def source_hash() -> str:
    """Hash of pdmodel's source and JAX's version (stored programs are rebuilt when either
    changes)."""
    h = hashlib.sha256(jax.__version__.encode())
    h.update(package_source_hash().encode())
    return h.hexdigest()[:16]


def stored_call(name: str, fn: Callable, *args):
    """``fn(*args)`` (arrays in, arrays out), traced once per shape and kept on disk as a
    serialized ``jax.export`` program in ``<compilation cache>/pdmodel-export`` when JAX's
    persistent compilation cache is configured; otherwise ``jax.jit``.

    ``name`` must name everything static about ``fn`` (arguments bound by
    ``functools.partial``, closed-over settings): programs are found by ``name``, the
    arguments' tree structure, shapes and dtypes, the backend and :func:`source_hash`. A
    read-only cache folder is used for reading only. Called on traced arguments (inside
    ``vmap``, ``grad`` or ``jit``) it is ``fn(*args)``, so it stays transformable.
    """
    leaves, tree = jax.tree.flatten(args)
    if any(isinstance(x, jax.core.Tracer) for x in leaves):
        return fn(*args)  # inside vmap, grad or jit: trace through (stored programs don't batch)
    spec = [jax.ShapeDtypeStruct(x.shape, x.dtype) for x in leaves]
    key = hashlib.sha256(repr((name, str(tree), [(s.shape, str(s.dtype)) for s in spec],
                               jax.default_backend(), jax.config.jax_enable_x64)).encode())
    key = key.hexdigest()[:24]
    if key not in _PROGRAMS:
        flat = jax.jit(lambda *xs: fn(*jax.tree.unflatten(tree, xs)))
        cache = jax.config.jax_compilation_cache_dir
        if not cache:
            _PROGRAMS[key] = flat
        else:
            path = Path(cache) / "pdmodel-export" / f"{name}-{source_hash()}-{key}.bin"
            try:
                exported = jax.export.deserialize(bytearray(path.read_bytes()))
            except OSError:  # not stored yet (or removed meanwhile)
                exported = jax.export.export(flat)(*spec)
                try:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    atomic_write_bytes(path, bytes(exported.serialize()))
                    _prune_other_sources(path.parent)
                except OSError:
                    pass  # read-only cache: trace again next time
            _PROGRAMS[key] = jax.jit(exported.call)
    return _PROGRAMS[key](*leaves)


@functools.cache
def _prune_other_sources(folder: Path) -> None:
    """Remove the programs stored by other pdmodel sources or JAX versions (they are never read
    again: their names carry another :func:`source_hash`); once per process and folder."""
    for f in folder.glob("*.bin"):
        if f"-{source_hash()}-" not in f.name:
            try:
                f.unlink()
            except OSError:
                pass  # another process removed it, or a read-only folder
