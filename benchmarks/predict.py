"""``pdmodel predict`` latency (issue 16) and the Monte Carlo cost of its speed.

* whole process, cold (empty compilation cache) and warm (median of runs), the imports a
  prediction needs (``from pdmodel.fit import Fit``) and ``import jax`` alone (the floor
  under any JAX program), and answered by a running ``pdmodel serve``;
* in one process: a second ``Fit.incidence`` for another organ/grade, covariate and regimen of
  the same shape, with the number of XLA compilations;
* error of the defaults (``PREDICT_DRAWS`` of the stored draws, curves computed at
  ``band_knots`` and interpolated) against every stored draw and every day.

``python -m benchmarks.predict [--runs N]`` → ``benchmarks/results/predict.json``.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import machine_info, write_result

ROOT = Path(__file__).resolve().parents[1]
REGIMEN = "nivolumab 240 mg q2w"
FIT = "fits/reference"


def _run(args: list[str], env: dict) -> float:
    t = time.perf_counter()
    proc = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    return time.perf_counter() - t


def whole_process(runs: int) -> dict:
    """Cold and warm ``pdmodel predict`` (json, one regimen, 52 weeks), seconds."""
    exe = [sys.executable, "-m", "pdmodel.cli", "predict", "--regimen", REGIMEN, "--fit", FIT,
           "--format", "json"]
    if not (ROOT / "pdmodel" / "cli" / "__main__.py").is_file():
        exe = [str(Path(sys.executable).with_name("pdmodel")), *exe[3:]]
    with tempfile.TemporaryDirectory() as cache:
        env = {k: v for k, v in os.environ.items()
               if k not in ("PDMODEL_NO_CACHE", "JAX_COMPILATION_CACHE_DIR",
                            "PYTHONDONTWRITEBYTECODE")} | {"PDMODEL_CACHE_DIR": cache,
                                                           "PDMODEL_SERVER": "off"}
        cold = _run(exe, env)
        warm = [_run(exe, env) for _ in range(runs)]
        imp = [_run([sys.executable, "-c", "from pdmodel.fit import Fit"], env)
               for _ in range(runs)]
        jax_only = [_run([sys.executable, "-c", "import jax"], env) for _ in range(runs)]
        served = _served(exe, env | {"PDMODEL_SERVER": str(Path(cache) / "predict.sock")},
                         runs)
    return {"cold_s": cold, "warm_s": warm, "warm_median_s": statistics.median(warm),
            "import_for_predict_median_s": statistics.median(imp),
            "import_jax_median_s": statistics.median(jax_only),
            "served_s": served, "served_median_s": statistics.median(served),
            "target_warm_median_s": 2.0}


def _served(exe: list[str], env: dict, runs: int) -> list[float]:
    """Whole-process ``pdmodel predict`` answered by a running ``pdmodel serve`` (started,
    warmed on the same fit, stopped here), seconds per run."""
    server = subprocess.Popen([sys.executable, "-m", "pdmodel.cli", "serve", "--fit", FIT],
                              cwd=ROOT, env=env, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while not Path(env["PDMODEL_SERVER"]).exists():
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("pdmodel serve did not start")
            time.sleep(0.2)
        _run(exe, env)  # this fit's first request
        return [_run(exe, env) for _ in range(runs)]
    finally:
        _run([sys.executable, "-m", "pdmodel.cli", "serve", "--stop"], env)
        server.wait(60)


def in_process() -> dict:
    """Second-call latency and compilations of ``Fit.incidence``; Monte Carlo error."""
    import jax
    import numpy as np

    jax.config.update("jax_enable_x64", True)
    import pdmodel as pdm
    from pdmodel.fit import _predict
    from pdmodel.fit._likelihood import reported_incidence
    from pdmodel.fit._result import PREDICT_DRAWS
    from tests.test_scale import CompileCounter

    fit = pdm.load_fit(ROOT / FIT)
    out = {"draws_default": PREDICT_DRAWS, "draws_stored": int(fit.draws.shape[0]),
           "patients": fit.config.model.patients}
    t = time.perf_counter()
    fit.incidence(REGIMEN, days=364, grade="3+")
    out["first_call_s"] = time.perf_counter() - t
    # five second calls of each kind, each asking for something not computed before
    calls = {
        "other_organ_grade": [(REGIMEN, {"organ": o, "grade": g}) for o, g in
                              [("gi", "any"), ("skin", "2+"), ("liver", "3+"),
                               ("thyroid", "any"), ("lung", "2+")]],
        "other_covariate": [(REGIMEN, {"grade": "3+", "covariates": {"preexisting_ad": x}})
                            for x in (0.2, 0.4, 0.6, 0.8, 1.0)],
        "other_regimen_same_shape": [(f"nivolumab {d} mg/kg q2w", {"grade": "3+"})
                                     for d in (1, 2, 3, 6, 10)]}
    for name, runs in calls.items():
        seconds, compilations = [], 0
        for reg, kw in runs:
            with CompileCounter() as c:
                t = time.perf_counter()
                fit.incidence(reg, days=364, **kw)
                seconds.append(time.perf_counter() - t)
            compilations += c.count
        out[name] = {"seconds": statistics.median(seconds), "runs_s": seconds,
                     "compilations": compilations}
    out["target_second_call_s"] = 0.3
    # Monte Carlo and interpolation error of the defaults, 1-year curves, grades any and 3+
    errs = {}
    for grade in ("any", "3+"):
        fast = fit.incidence(REGIMEN, days=364, grade=grade)
        full = fit.incidence(REGIMEN, days=364, grade=grade, draws=None)
        errs[grade] = {k: float(np.max(np.abs(fast[k] - full[k]))) for k in fast.data_vars}
        errs[grade]["mc_se_mean_default"] = fast.attrs["mc_se_mean"]
    out["max_abs_error_default_vs_all_draws"] = errs
    # quadrature of a new trial's effect in the predictive band: default nodes vs 60
    fit.curve(REGIMEN, days=364)  # the default draws again
    key = next(k for k in fit._memo if k[0] != "obs")
    at_knots, phi, sd = fit._memo[key]
    quad = {}
    for gi, grade in enumerate(pdm.GRADES):
        mu = _predict.interpolate_days(at_knots[:, :, 0, gi], 364)
        b = _predict.bands(mu, phi, interval=0.9, arm_size=300, trial_sd=sd)
        ref = _predict.bands(mu, phi, interval=0.9, arm_size=300, trial_sd=sd, trial_nodes=60)
        quad[grade] = max(float(np.max(np.abs(b[k] - ref[k]))) for k in ("lower", "upper"))
    out["trial_nodes"] = _predict.TRIAL_NODES
    out["max_abs_error_trial_nodes_vs_60"] = quad
    m = fit.config.model
    reg = pdm.Regimen.parse(REGIMEN)
    pop = _predict.population(jax.random.key(0), m.patients, max_agents=2, tumour=m.tumour)
    prob = pdm.IraeProblem.build(reg, days=364, steps_per_day=m.steps_per_day, refine=m.refine)
    u = fit.draws[:: max(1, len(fit.draws) // 20)][:20]
    fast = _predict.curves(fit.spec, u, reg, pop, days=364, steps_per_day=m.steps_per_day,
                           refine=m.refine)
    one = jax.jit(lambda x: reported_incidence(fit.spec.to_params(x), prob, pop,
                                               "immune_related"))
    exact = np.stack([np.asarray(one(x)) for x in u])
    out["max_abs_error_interpolation_vs_daily"] = float(np.max(np.abs(fast - exact)))
    out["knots"] = int(len(_predict.band_knots(364)))
    return out


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    runs = int(argv[argv.index("--runs") + 1]) if "--runs" in argv else 5
    payload = {"machine": machine_info(), "regimen": REGIMEN, "fit": FIT,
               "whole_process": whole_process(runs), "in_process": in_process()}
    path = write_result("predict", payload)
    print(path)
    return payload


if __name__ == "__main__":
    main()
