"""The managed training arms' approximation against what it stands for: one managed unit per
agent combination (its label regimen over 365 days, what ``pdmodel fit`` solves) against one per
training arm (each arm's own regimen, horizon and treatment duration), at a fit's MAP.

Reports the change of every training row's model mean (grade ≥ 3 rows and all), the total
log-likelihood and the gradient cost of the log density with each (docs/model.md §5.9). Needs a
finished ``pdmodel fit`` run folder with its checkpoints (``make fit`` → ``fits/runs/default``):
``python -m benchmarks.managed_units [RUN_FOLDER]``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import equinox as eqx
import jax
import numpy as np

from benchmarks.common import write_result

ROOT = Path(__file__).resolve().parents[1]


def _gradient_seconds(log_density, u, repeat=3) -> float:
    grad = jax.jit(jax.grad(log_density))
    grad(u).block_until_ready()
    times = []
    for k in range(repeat):
        t0 = time.perf_counter()
        grad(u + 1e-9 * (k + 1)).block_until_ready()
        times.append(time.perf_counter() - t0)
    return min(times)


def main(argv=None) -> dict:
    jax.config.update("jax_enable_x64", True)
    from pdmodel.fit import load_config
    from pdmodel.fit._design import stack_regimens
    from pdmodel.fit._likelihood import log_density, predicted_probability, total_loglik
    from pdmodel.fit._management import ManagementDesign
    from pdmodel.fit._pipeline import _prepare

    argv = sys.argv[1:] if argv is None else argv
    run = Path(argv[0]) if argv else ROOT / "fits" / "runs" / "default"
    config = load_config(run / "config.toml")
    if config.model.arms != "managed":
        raise SystemExit(f"{run}: fitted with model.arms = {config.model.arms!r}, not managed")
    u = np.load(run / "checkpoints" / "map.npz")["u"]
    fit = _prepare(config, False, print)
    d, m = fit.design, config.model
    man = d.management
    units = man.units + d.units
    per_arm = eqx.tree_at(lambda x: x.management, d, ManagementDesign(
        rows=man.rows, units=units,
        stacked=stack_regimens(units, d.population, steps_per_day=m.steps_per_day,
                               refine=m.refine, models=dict(m.pk_models) or None),
        arm_unit=tuple(len(man.units) + i for i in range(len(d.units)))))
    params = fit.spec.to_params(u)
    mu = np.asarray(predicted_probability(params, d))
    mu_arm = np.asarray(predicted_probability(params, per_arm))
    o = d.obs.arrays()
    g3 = np.asarray(o.lo) >= 3
    diff = mu_arm - mu
    worst = int(np.argmax(np.abs(diff)))
    out = {
        "run": str(run.resolve().relative_to(ROOT) if run.resolve().is_relative_to(ROOT)
                   else run),
        "managed_units": {"per_agent_combination": len(man.units), "per_arm": len(units)},
        "rows": int(len(mu)), "grade3_rows": int(g3.sum()),
        "grade3_mean": {"per_agent_combination": float(mu[g3].mean()),
                        "per_arm": float(mu_arm[g3].mean())},
        "grade3_mean_abs_change": float(np.abs(diff[g3]).mean()),
        "max_abs_change": float(np.abs(diff).max()),
        "max_change_row": {"row_id": o.row_id[worst], "regimen": d.units[o.regimen[worst]].regimen,
                           "per_agent_combination": float(mu[worst]),
                           "per_arm": float(mu_arm[worst])},
        "loglik": {"per_agent_combination": float(total_loglik(params, d)),
                   "per_arm": float(total_loglik(params, per_arm))},
        "gradient_s": {name: _gradient_seconds(lambda v, des=des: log_density(v, fit.spec, des),
                                               u)
                       for name, des in (("per_agent_combination", d), ("per_arm", per_arm))},
    }
    print(out)
    write_result("managed_units", out)
    return out


if __name__ == "__main__":
    main()
