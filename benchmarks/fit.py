"""Calibration benchmark: log-density, gradient and emulated-gradient cost and compile times
(measured here), plus MAP / NUTS wall time and ESS per second of the latest full fit run
(``make fit`` → ``fits/runs/default``; the committed ``fits/reference`` otherwise).

The full fit takes minutes, so it is not rerun here; its timings come from the run's
``diagnostics.json`` (written by ``pdmodel fit`` on the same machine kind).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.common import machine_info, write_result

ROOT = Path(__file__).resolve().parents[1]


def _time(fn, arg, repeat=5):
    t0 = time.perf_counter()
    jax.block_until_ready(fn(arg))
    first = time.perf_counter() - t0
    times = []
    for k in range(repeat):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(arg + 1e-6 * (k + 1)))
        times.append(time.perf_counter() - t0)
    return first - min(times), min(times)


def main(argv=None) -> dict:
    jax.config.update("jax_enable_x64", True)
    import equinox as eqx

    from pdmodel.data import load_incidence
    from pdmodel.fit import (
        Emulator,
        FitSpec,
        build_design,
        features_loglik,
        log_density,
        ode_parameter_index,
    )

    design = build_design(load_incidence(), patients=32)
    spec = FitSpec.default()
    u = spec.prior_location()
    ld = jax.jit(lambda v: log_density(v, spec, design))
    grad = jax.jit(jax.grad(lambda v: log_density(v, spec, design)))
    c_ld, t_ld = _time(ld, u)
    c_g, t_g = _time(grad, u)
    # the emulated likelihood NUTS differentiates (untrained MLP: same cost as a trained one)
    idx = ode_parameter_index(spec)
    n_feat = len(design.regimens) * design.population.size * 6
    emu = Emulator(idx, u[np.asarray(idx)], jnp.ones(len(idx)), jnp.full(n_feat, -3.0),
                   jnp.zeros((n_feat, len(idx))),
                   eqx.nn.MLP(len(idx), n_feat, 128, 2, key=jax.random.key(0)))
    loglik = features_loglik(spec, design)
    egrad = jax.jit(jax.grad(lambda v: spec.log_prior(v) + loglik(v, emu(v))))
    c_e, t_e = _time(egrad, u)
    run = ROOT / "fits" / "runs" / "default" / "results" / "diagnostics.json"
    source = run if run.is_file() else ROOT / "fits" / "reference" / "results" / "diagnostics.json"
    diag = json.loads(source.read_text()) if source.is_file() else {}
    timings = diag.get("timings_s", {})
    result = {
        "machine": machine_info(),
        "log_density_s": t_ld, "log_density_compile_s": c_ld,
        "gradient_s": t_g, "gradient_compile_s": c_g, "gradient_over_eval": t_g / t_ld,
        "emulated_gradient_s": t_e, "emulated_gradient_compile_s": c_e,
        "exact_over_emulated_gradient": t_g / t_e,
        "fit_run": str(source.relative_to(ROOT)) if source.is_file() else None,
        "map_s": timings.get("map_s"), "nuts_s": timings.get("nuts_s"),
        "nuts_min_ess_bulk": diag.get("min_ess_bulk"),
        "nuts_min_ess_bulk_per_s": diag.get("min_ess_bulk_per_second"),
        "nuts_max_r_hat": diag.get("max_r_hat"), "divergences": diag.get("divergences"),
        "psis_khat": diag.get("psis_khat"),
        "emulator": diag.get("emulator"),
    }
    result["by_arms"] = cost_by_arms(load_incidence(), spec)
    write_result("fit", result)
    print("\ncalibration (2-core CPU unless the machine says otherwise)")
    print(f"  log-density {t_ld * 1e3:8.1f} ms   compile {c_ld:5.1f} s")
    print(f"  gradient    {t_g * 1e3:8.1f} ms   compile {c_g:5.1f} s   "
          f"{t_g / t_ld:.1f}x one evaluation")
    print(f"  emulated gradient {t_e * 1e3:6.2f} ms   compile {c_e:5.1f} s   "
          f"{t_g / t_e:.0f}x cheaper than exact")
    if diag:
        print(f"  from {result['fit_run']}: MAP {result['map_s'] or float('nan'):.0f} s, NUTS "
              f"{result['nuts_s'] or float('nan'):.0f} s, min bulk ESS "
              f"{result['nuts_min_ess_bulk'] or float('nan'):.0f} "
              f"({result['nuts_min_ess_bulk_per_s'] or float('nan'):.1f}/s), "
              f"max R-hat {result['nuts_max_r_hat'] or float('nan'):.3f}")
    for r in result["by_arms"]:
        print(f"  {r['arms']:3d} simulated arms ({r['rows']:3d} rows): log-density "
              f"{r['log_density_s'] * 1e3:7.1f} ms, gradient {r['gradient_s'] * 1e3:7.1f} ms")
    return result


def cost_by_arms(rows, spec, sizes=(4, 8, 16, None), patients: int = 32) -> list[dict]:
    """Log-density and gradient cost per evaluation against the number of simulated arms:
    the default-fit rows of the first ``k`` arms (in the design's order; ``None``: all)."""
    from pdmodel.fit import build_design, design_table, log_density

    table = design_table(rows)
    arms = list(dict.fromkeys(zip(table.regimen_simulated, table.horizon_days,
                                  table.median_treatment_days, table.course_days,
                                  strict=True)))
    out = []
    for k in sizes:
        keep_arms = set(arms[: k or len(arms)])
        keep = [a in keep_arms or r == "" for a, r in zip(
            zip(table.regimen_simulated, table.horizon_days, table.median_treatment_days,
                table.course_days, strict=True), table.regimen_simulated, strict=True)]
        design = build_design(rows[rows.row_id.isin(table.row_id[keep])], patients=patients)
        u = spec.prior_location()
        ld = jax.jit(lambda v, d=design: log_density(v, spec, d))
        grad = jax.jit(jax.grad(lambda v, d=design: log_density(v, spec, d)))
        _, t_ld = _time(ld, u, repeat=3)
        _, t_g = _time(grad, u, repeat=3)
        out.append({"arms": len(design.units), "rows": len(design.obs.n),
                    "log_density_s": t_ld, "gradient_s": t_g})
    return out


if __name__ == "__main__":
    main()
