"""Shared helpers: timing, machine description, writing results atomically."""

import json
import os
import platform
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def machine_info() -> dict:
    import jax

    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "devices": [str(d) for d in jax.devices()],
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def timed(fn, *args, repeat: int = 3):
    """Best wall time of ``repeat`` calls (results blocked until ready) and the last result."""
    import jax

    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = jax.block_until_ready(fn(*args))
        best = min(best, time.perf_counter() - t)
    return best, out


def write_result(name: str, payload: dict) -> Path:
    """Write ``results/<name>.json`` atomically (temp file + rename)."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    with tempfile.NamedTemporaryFile("w", dir=RESULTS, suffix=".tmp", delete=False) as f:
        json.dump(payload | {"machine": machine_info()}, f, indent=2)
    os.replace(f.name, path)
    return path
