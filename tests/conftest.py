"""Test configuration: float64 everywhere, CPU, shared-data location."""

import os
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# the CLI commands run in-process here: keep them off the user's persistent JAX cache
os.environ.setdefault("PDMODEL_NO_CACHE", "1")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
