"""Global JAX switches of the command line (float64, the persistent compilation cache).

Set at the entry point, never on import: pdmodel itself makes no assumption about the platform
and the same code runs on CPU and GPU (``JAX_PLATFORMS`` picks the device).
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "PDMODEL_CACHE_DIR"
"""Environment variable: folder of the persistent JAX compilation cache."""
NO_CACHE_ENV = "PDMODEL_NO_CACHE"
"""Environment variable: set to 1 to switch the persistent compilation cache off."""


def setup_jax() -> None:
    """float64 on, and the persistent compilation cache (:func:`enable_compilation_cache`)."""
    import jax

    jax.config.update("jax_enable_x64", True)
    enable_compilation_cache()


def compilation_cache_dir() -> Path | None:
    """Folder of the persistent compilation cache the CLI uses, or ``None`` when switched off.

    ``$PDMODEL_NO_CACHE`` (any value but ``""``/``0``) switches it off; otherwise
    ``$PDMODEL_CACHE_DIR``, else ``$XDG_CACHE_HOME/pdmodel/jax`` (default
    ``~/.cache/pdmodel/jax``).
    """
    if os.environ.get(NO_CACHE_ENV, "").strip() not in ("", "0"):
        return None
    path = os.environ.get(CACHE_ENV, "").strip()
    if path:
        return Path(path).expanduser()
    base = os.environ.get("XDG_CACHE_HOME", "").strip() or Path.home() / ".cache"
    return Path(base) / "pdmodel" / "jax"


def enable_compilation_cache() -> Path | None:
    """Turn on JAX's persistent compilation cache (entry points only: a global switch).

    Every compiled program (even the small ones of single array operations, which a short
    ``pdmodel predict`` compiles by the dozen) is stored on disk and reused by later runs with
    the same shapes, JAX/XLA version and device, so a second ``pdmodel fit``/``predict``
    starts without recompiling; pdmodel also keeps its traced prediction programs and the
    stacked draws of fits there. A cache folder already configured for JAX
    (``JAX_COMPILATION_CACHE_DIR``) is kept. Returns the folder in use, or ``None``.
    """
    import jax

    path = compilation_cache_dir()
    if path is None:
        return None
    if jax.config.jax_compilation_cache_dir:
        return Path(jax.config.jax_compilation_cache_dir)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None  # read-only home, etc.: run without the cache
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    return path
