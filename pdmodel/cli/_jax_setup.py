"""Global JAX switches of the command line (float64, the persistent compilation cache).

Set at the entry point, never on import: pdmodel itself makes no assumption about the platform
and the same code runs on CPU and GPU (``JAX_PLATFORMS`` picks the device).
"""

from __future__ import annotations

from ..io import CACHE_ENV as CACHE_ENV
from ..io import NO_CACHE_ENV as NO_CACHE_ENV
from ..io import compilation_cache_dir as compilation_cache_dir
from ..io import enable_compilation_cache


def setup_jax() -> None:
    """float64 on, and the persistent compilation cache (:func:`enable_compilation_cache`)."""
    import jax

    jax.config.update("jax_enable_x64", True)
    enable_compilation_cache()
