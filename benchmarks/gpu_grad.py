"""Likelihood cost on the current device: the compile/steady times of ``benchmarks.scale``
(8 patients × 365 days) and log-density / value-and-gradient at the size of ``fits/gpu.toml``
(512 patients × 8 regimens, 2 steps a day, refine 2, 730 days). About 90 s on one H100;
``benchmarks/results/gpu_grad_h100.log`` is its output there.

    python -m benchmarks.gpu_grad
"""

from __future__ import annotations

import json
import time

import jax


def main() -> None:
    jax.config.update("jax_enable_x64", True)
    from benchmarks.scale import compile_times
    from pdmodel._likelihood import build_design, log_density
    from pdmodel._params import FitSpec

    print(json.dumps(compile_times(), indent=1), flush=True)
    t = time.perf_counter()
    design = build_design(patients=512, days=730, steps_per_day=2, refine=2)
    print(f"gpu.toml-sized design (512 patients x 8 regimens, 2 steps/day, refine 2): built in "
          f"{time.perf_counter() - t:.1f} s", flush=True)
    spec = FitSpec.default()
    u = spec.prior_location()

    def ld(u):
        return log_density(u, spec, design)

    for name, fn in (("log_density", jax.jit(ld)),
                     ("value_and_grad", jax.jit(jax.value_and_grad(ld)))):
        t = time.perf_counter()
        jax.block_until_ready(fn(u))
        first = time.perf_counter() - t
        steady = []
        for k in range(3):
            t = time.perf_counter()
            jax.block_until_ready(fn(u + 0.01 * (k + 1)))
            steady.append(time.perf_counter() - t)
        print(f"{name}: first call {first:.1f} s, steady {1e3 * min(steady):.1f} ms", flush=True)


if __name__ == "__main__":
    main()
