"""Short NUTS run for ``gpu_check.sh``: ESS per second on the default device.

Near the committed reference fit (its posterior mean and covariance stand in for the MAP and
Laplace stages), an emulator is trained from exact solves and NUTS (4 chains) runs on it; the
exact log-density gradient — what ``nuts.method = "exact"`` pays per leapfrog step — is timed
too. ``--cpu``: smaller sizes for a CPU smoke run.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    cpu = "--cpu" in argv
    jax.config.update("jax_enable_x64", True)
    import arviz_stats as azs
    import xarray as xr

    from pdmodel import load_fit
    from pdmodel.data import load_incidence
    from pdmodel.fit import (
        Whitening,
        build_design,
        features_loglik,
        fit_emulator,
        log_density,
        log_max_injury,
        ode_parameter_index,
        run_nuts,
    )

    fit = load_fit(ROOT / "fits" / "reference")
    spec = fit.spec
    whitening = Whitening.from_laplace(jnp.asarray(fit.draws.mean(0)), np.cov(fit.draws.T))
    design = build_design(load_incidence(), patients=8 if cpu else 32)
    loglik = features_loglik(spec, design)
    grad = jax.jit(jax.grad(lambda u: log_density(u, spec, design)))
    t0 = time.perf_counter()
    jax.block_until_ready(grad(whitening.mean))
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    jax.block_until_ready(grad(whitening.mean + 1e-6))
    grad_s = time.perf_counter() - t0
    print(f"exact log-density gradient: {grad_s * 1e3:.1f} ms (compile {compile_s:.1f} s), "
          f"{design.population.size} patients x {len(design.regimens)} regimens", flush=True)
    t0 = time.perf_counter()
    emu, report, _ = fit_emulator(lambda u: log_max_injury(spec.to_params(u), design), loglik,
                                  whitening, ode_parameter_index(spec), jax.random.key(0),
                                  design_points=64 if cpu else 128, steps=500 if cpu else 1000)
    emu_s = time.perf_counter() - t0
    print(f"emulator: {emu_s:.1f} s ({report.design_points} exact solves + training), held-out "
          f"log-likelihood error {report.loglik_rmse:.2f} nats", flush=True)
    n = 100 if cpu else 200

    def target(u):
        return spec.log_prior(u) + loglik(u, emu(u))

    res = run_nuts(target, whitening, jax.random.key(1), chains=4, warmup=n, draws=n,
                   progress=False)
    ds = xr.Dataset({"u": (("chain", "draw", "parameter"), res.u)})
    ess = float(azs.ess(ds, method="bulk")["u"].min())
    rhat = float(azs.rhat(ds)["u"].max())
    out = {"device": str(jax.devices()[0]), "exact_gradient_s": grad_s,
           "exact_gradient_compile_s": compile_s, "emulator_s": emu_s,
           "emulator_loglik_rmse": report.loglik_rmse, "nuts_s": res.seconds,
           "min_ess_bulk": ess, "max_r_hat": rhat, "ess_per_s": ess / res.seconds,
           "divergences": int(res.diverging.sum())}
    print(f"NUTS: 4 chains x ({n} warm-up + {n} draws) in {res.seconds:.1f} s (compile "
          f"included), min bulk ESS {ess:.0f}, max R-hat {rhat:.3f}, {out['divergences']} "
          f"divergences -> {out['ess_per_s']:.1f} ESS/s on {out['device']}")
    return out


if __name__ == "__main__":
    main()
