"""Run every benchmark: ``python -m benchmarks`` (or ``make bench``).

pdmodel's population runs use one XLA CPU device per core (set here, before JAX starts), so
patients are split across both cores of the machine; the scipy and RoadRunner baselines are
the single-process loops a user would write.
"""

import os

os.environ.setdefault("XLA_FLAGS", f"--xla_force_host_platform_device_count={os.cpu_count()}")

from benchmarks import irae_population, pk_population

if __name__ == "__main__":
    pk_population.main()
    irae_population.main()
