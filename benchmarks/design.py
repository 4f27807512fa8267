"""Regimen design: the gradient-based search against brute force on the same space.

The nivolumab example of the README (dose 1-10 mg/kg in 0.1 mg/kg steps × interval 2-8 weeks,
PD-1 trough ≥ 97% over weeks 12-52 so that the constraint binds), risk of grade ≥ 3 irAE by
week 52 over prior draws. Brute force simulates every feasible point of the full allowed grid
(91 doses × 7 intervals); the search simulates what its local phase visits. Both share one
prepared problem, so compile time is reported apart. ``python -m benchmarks.design``.
"""

import time

import jax

jax.config.update("jax_enable_x64", True)

from benchmarks.common import write_result  # noqa: E402
from pdmodel.dosing_design import DesignProblem  # noqa: E402


def main(argv=None) -> dict:
    t = time.perf_counter()
    problem = DesignProblem.build(
        "nivolumab {dose} q{interval}w", {"dose": "1-10 mg/kg", "interval": "2-8 weeks"},
        constraints=["trough PD-1 >= 0.97 weeks 12-52"], draws=16, patients=16)
    build = time.perf_counter() - t
    t = time.perf_counter()
    first = problem.solve()  # includes compilation
    first_s = time.perf_counter() - t
    problem.evaluator.risk.clear()
    t = time.perf_counter()
    found = problem.solve()
    grad_s = time.perf_counter() - t
    t = time.perf_counter()
    best, n = problem.brute_force()
    brute_s = time.perf_counter() - t
    out = {
        "space": "nivolumab 1-10 mg/kg (0.1 steps) x q2w-q8w, trough PD-1 >= 0.97 weeks 12-52",
        "build_s": build, "first_solve_s_incl_compile": first_s, "gradient_s": grad_s,
        "gradient_regimens_simulated": found.evaluations, "gradient_risk": found.risk,
        "gradient_regimen": found.regimen, "brute_force_s": brute_s,
        "brute_force_regimens_simulated": n, "brute_force_risk": best.risk,
        "brute_force_regimen": best.regimen, "speedup": brute_s / grad_s,
        "gap": found.risk - best.risk, "first_regimen": first.regimen,
    }
    for k, v in out.items():
        print(f"{k}: {v}")
    write_result("design", out)
    return out


if __name__ == "__main__":
    main()
