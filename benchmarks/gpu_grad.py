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
    from benchmarks.scale import compile_times, likelihood_times
    from pdmodel.data import load_incidence
    from pdmodel.fit import build_design

    print(json.dumps(compile_times(), indent=1), flush=True)
    t = time.perf_counter()
    design = build_design(load_incidence(), patients=512, days=730, steps_per_day=2, refine=2)
    print(f"gpu.toml-sized design (512 patients x 8 regimens, 2 steps/day, refine 2): built in "
          f"{time.perf_counter() - t:.1f} s", flush=True)
    for name, r in likelihood_times(design, repeats=3).items():
        if isinstance(r, dict):
            print(f"{name}: first call {r['first_call_s']:.1f} s, steady "
                  f"{1e3 * r['steady_s']:.1f} ms", flush=True)

if __name__ == "__main__":
    main()
