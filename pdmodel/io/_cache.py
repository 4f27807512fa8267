"""JAX's persistent compilation cache in pdmodel's cache folder: a later process (a command,
a notebook kernel) reuses the programs an earlier one compiled, with the same shapes, JAX/XLA
version and device, and pdmodel keeps its traced prediction programs next to them
(:func:`pdmodel.io.stored_call`).

A global JAX switch: entry points (the command line) and users turn it on, never an import.
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "PDMODEL_CACHE_DIR"
"""Environment variable: folder of the persistent JAX compilation cache."""
NO_CACHE_ENV = "PDMODEL_NO_CACHE"
"""Environment variable: set to 1 to switch the persistent compilation cache off."""


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
    """Turn on JAX's persistent compilation cache in pdmodel's cache folder.

    A global JAX switch, never made on import: the command line turns it on; in a notebook or
    script call it once, after which a new kernel's first ``Fit.incidence`` loads its programs
    instead of compiling them. Every compiled program (even the small ones of single array
    operations) is stored on disk and reused by later processes with the same shapes, JAX/XLA
    version and device; pdmodel also keeps its traced prediction programs and the stacked
    draws of fits there. A cache folder already configured for JAX
    (``JAX_COMPILATION_CACHE_DIR``) is kept.

    Returns
    -------
    pathlib.Path or None
        The folder in use (:func:`compilation_cache_dir`: ``$PDMODEL_CACHE_DIR``, else
        ``~/.cache/pdmodel/jax``), or ``None`` when switched off (``$PDMODEL_NO_CACHE=1``) or
        the folder cannot be created.

    Examples
    --------
    >>> import pdmodel as pdm
    >>> folder = pdm.enable_compilation_cache()
    >>> folder is None or folder.is_dir()
    True
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
