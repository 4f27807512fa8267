"""Run every benchmark: ``python -m benchmarks`` (or ``make bench``); ``--quick``: only the
scale benchmark at small sizes (a few minutes). ``benchmarks.predict``: ``pdmodel predict``
latency, cold and warm.

pdmodel's population runs use one XLA CPU device per core (set here, before JAX starts), so
patients are split across both cores of the machine; the scipy and RoadRunner baselines are
the single-process loops a user would write.
"""

import os

os.environ.setdefault("XLA_FLAGS", f"--xla_force_host_platform_device_count={os.cpu_count()}")

import importlib.util  # noqa: E402
import sys  # noqa: E402

from benchmarks import irae_population, pk_population, scale  # noqa: E402

if __name__ == "__main__":
    quick = "--quick" in sys.argv[1:]
    if not quick:
        pk_population.main([])
        irae_population.main([])
    scale.main(["--quick"] if quick else [])
    # MAP/NUTS benchmark: benchmarks/fit.py with a main(), when it exists
    if importlib.util.find_spec("benchmarks.fit") is not None:
        from benchmarks import fit

        fit.main()
    if not quick:
        from benchmarks import design

        design.main()
    if not quick:
        from benchmarks import predict

        predict.main([])
