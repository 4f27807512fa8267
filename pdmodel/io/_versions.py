"""Provenance of a run: Python, platform and package versions."""

from __future__ import annotations

import datetime
import platform
import sys
from importlib import metadata
from typing import Any

VERSION_PACKAGES: tuple[str, ...] = ("pdmodel", "jax", "jaxlib", "numpyro", "arviz", "diffrax",
                                     "equinox", "optax", "numpy", "xarray")
"""Packages whose versions are recorded in ``versions.json``."""


def package_versions(packages: tuple[str, ...] = VERSION_PACKAGES) -> dict[str, str | None]:
    """Installed version of each package (None when not installed)."""
    out: dict[str, str | None] = {}
    for name in packages:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def versions_info() -> dict[str, Any]:
    """Contents of ``versions.json``: python, platform, packages, time written (UTC)."""
    return {
        "python": sys.version.split()[0],
        "python_full": sys.version,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "packages": package_versions(),
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
