"""``pdmodel fit``: calibrate the irAE model to the incidence data and write a run folder.

Stages (each checkpointed, so ``--resume`` continues a killed run):

1. ``map`` — multi-start optax MAP (Adam, then L-BFGS);
2. ``laplace`` — Gaussian approximation at the mode (whitens the sampler's coordinates);
3. ``emulator`` (``nuts.method = "emulator"``) — exact ODE solves at design points, from which
   an emulator of the ODE features is trained (pdmodel.fit._emulator);
4. ``nuts`` — numpyro NUTS, several chains, on the emulated or the exact likelihood;
5. results — the stored draws (thinned to at most ``MAX_STORED_DRAWS``) are re-evaluated with
   the *exact* model: pointwise log-likelihood, posterior predictive, PSIS check of the
   emulator; incidence curves with bands; diagnostics; plots. Published atomically into
   ``<folder>/results``.

``nuts.method = "laplace"`` skips 3–4 and uses draws of the Laplace approximation (quick looks).
"""

from __future__ import annotations

import io
import json
import math
import os
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import xarray as xr
from tqdm import tqdm

from ..data import load_incidence
from ..irae import IraeProblem, Population
from ..regimen import Regimen
from ..vocab import GRADES, ORGAN_CHOICES
from ._checks import onset_check
from ._config import FitConfig, fit_spec
from ._emulator import Whitening, emulator_from_design, evaluate, solve_design
from ._likelihood import (
    Design,
    beta_binomial_logpmf,
    build_design,
    drug_probabilities,
    log_density,
    log_max_injury,
    ode_parameter_index,
    predicted_probability,
    reported_incidence,
)
from ._map import laplace_scale, map_fit
from ._nuts import NutsResult, psis_check, run_nuts
from ._parameters import FitSpec
from ._posterior import dim_name, element_label, posterior_variables
from ._run_folder import RunFolder

CURVE_ENDPOINT = "immune_related"
"""Curves are reported as trials report immune-related adverse events (background included at
the fitted immune-related attribution)."""

MAX_DRAWS = 200
"""At most this many posterior draws are simulated for the incidence-curve bands."""

MAX_STORED_DRAWS = 1000
"""Draws kept in ``posterior.nc`` (chains thinned evenly); R-hat and ESS are computed on all."""

MIN_DIAGNOSTIC_DRAWS = 20
"""Fewer draws per chain than this (smoke runs) leave R-hat and ESS undefined (NaN)."""

PSIS_KHAT_OK = 0.7
"""Pareto k̂ below which the emulated posterior is a reliable proposal for the exact one."""

MAX_REFINE_ROUNDS = 1
"""If k̂ is too high, the emulator is retrained with the exact solves at the stored draws and
NUTS rerun, at most this many times."""

ONSET_DRAWS = 40
"""Posterior draws simulated for the onset-timing check (pdmodel.fit._checks)."""

EMULATOR_WIDTH = 128
EMULATOR_STEPS = 2000
"""Emulator MLP hidden width and optax training steps (pdmodel.fit._emulator)."""


def _training_rows(config: FitConfig) -> pd.DataFrame:
    path = None if config.data.incidence == "bundled" else config.data.incidence
    df = load_incidence(path)
    if config.data.use == "all":
        df = df.assign(fit_default=1)
    return df[~df["row_id"].isin(config.data.exclude_rows)]


def _log_density_of(spec: FitSpec, design: Design, u: jnp.ndarray) -> jnp.ndarray:
    return log_density(u, spec, design)


def _features_of(spec: FitSpec, design: Design, u: jnp.ndarray) -> jnp.ndarray:
    return log_max_injury(spec.to_params(u), design)


def run_fit(config: FitConfig, *, resume: bool = False, progress: bool = True,
            echo=print) -> Path:
    """Run the fit described by ``config``; returns the results folder."""
    jax.config.update("jax_enable_x64", True)
    m = config.model
    design = build_design(_training_rows(config), patients=m.patients, seed=config.seed,
                          steps_per_day=m.steps_per_day, refine=m.refine, tumour=m.tumour,
                          models=dict(m.pk_models) or None)
    spec = fit_spec(config)
    echo(f"data: {len(design.obs.n)} arm-level rows, {len(design.regimens)} simulated regimens; "
         f"{spec.size} fitted parameters")

    # Partials, not closures: the jitted stages take them as arguments, so the design's arrays
    # are inputs of the compiled programs rather than constants folded into them
    ld = jax.tree_util.Partial(_log_density_of, spec, design)

    key = jax.random.key(config.seed)
    timings: dict[str, float] = {}
    with RunFolder.open(config.output.folder, config, resume=resume, seed=config.seed) as run:
        t0 = time.perf_counter()
        saved = run.load_checkpoint("map") if run.resume else None
        if saved is None:
            bar = tqdm(total=config.map.starts, desc="MAP starts", disable=not progress)
            res = map_fit(ld, spec.prior_location(), jax.random.fold_in(key, 1),
                          scale=spec.prior_scale(), starts=config.map.starts,
                          adam_steps=config.map.adam_steps, adam_lr=config.map.adam_lr,
                          lbfgs_steps=config.map.lbfgs_steps,
                          progress=lambda done, total: bar.update(1))
            bar.close()
            saved = ({"u": np.asarray(res.u), "starts_u": np.asarray(res.starts_u),
                      "starts_log_density": np.asarray(res.starts_log_density),
                      "grad_norm": np.asarray(res.grad_norm)}, {})
            run.save_checkpoint("map", saved[0], {"seconds": time.perf_counter() - t0})
        map_arrays = saved[0]
        timings["map_s"] = float(saved[1].get("seconds", time.perf_counter() - t0))
        u_map = jnp.asarray(map_arrays["u"])
        echo(f"MAP log posterior {float(ld(u_map)):.2f} (starts: "
             f"{np.round(map_arrays['starts_log_density'], 2).tolist()})")
        lap = run.load_checkpoint("laplace") if run.resume else None
        if lap is None:
            sd, cov, nonconcave = laplace_scale(ld, u_map)
            lap = ({"sd": np.asarray(sd), "cov": np.asarray(cov),
                    "nonconcave": np.asarray(nonconcave)}, {})
            run.save_checkpoint("laplace", lap[0])
        whitening = Whitening.from_laplace(u_map, lap[0]["cov"])
        info = {"laplace_nonconcave_directions": int(lap[0]["nonconcave"])}
        method = config.nuts.method
        loglik = features_loglik(spec, design)
        nuts, emulator, log_w = None, None, None
        if method == "laplace":
            n_draws = min(config.nuts.draws, MAX_STORED_DRAWS)
            z = jax.random.normal(jax.random.fold_in(key, 2), (1, n_draws, spec.size))
            draws = np.asarray(whitening.to_u(z))
            echo(f"Laplace approximation: {n_draws} draws (no NUTS)")
        if method == "emulator":
            emulator, report, des = _emulator_stage(run, config, spec, design, whitening, key,
                                                    progress, echo)
            info["emulator"] = report._asdict()
        extra_u, extra_f = [], []
        for round_ in range(1 + (MAX_REFINE_ROUNDS if method == "emulator" else 0)):
            suffix = "" if round_ == 0 else f"_refined{round_}"
            if method != "laplace":
                if round_ > 0:
                    emulator, report = _train(
                        des, spec, design, whitening, key,
                        extra=(np.concatenate(extra_u), np.concatenate(extra_f)))
                    info["emulator_refined"] = report._asdict()
                    echo(f"emulator refined with {sum(map(len, extra_u))} exact solves at "
                         f"posterior draws; NUTS again")

                def target(u, emulator=emulator):
                    if emulator is None:
                        return ld(u)
                    return spec.log_prior(u) + loglik(u, emulator(u))

                nuts = _nuts_stage(run, "nuts" + suffix, config, whitening, target, key,
                                   progress, echo)
                draws = nuts.u
                timings["nuts_s"] = timings.get("nuts_s", 0.0) + nuts.seconds
            step = _thin_step(draws)
            stored = draws[:, ::step]
            feats = _exact_stage(run, "exact" + suffix, spec, design, stored, progress)
            if emulator is None:
                break
            flat = stored.reshape(-1, spec.size)
            exact_ll = np.asarray(jax.vmap(loglik)(jnp.asarray(flat), jnp.asarray(feats)))
            emulated = np.asarray(jax.jit(jax.vmap(
                lambda u, e=emulator: loglik(u, e(u))))(jnp.asarray(flat)))
            log_w = exact_ll - emulated
            khat, rel_ess = psis_check(log_w)
            info |= {"psis_khat": khat, "psis_relative_ess": rel_ess,
                     "importance_log_weight_sd": float(np.std(log_w)),
                     "emulator_refinements": round_}
            echo(f"emulator check against the exact likelihood at {len(flat)} draws: Pareto k "
                 f"= {khat:.2f} ({'reliable' if khat < PSIS_KHAT_OK else 'not reliable'})")
            if not khat >= PSIS_KHAT_OK:  # reliable, or too few draws to tell (NaN)
                break
            extra_u.append(flat)
            extra_f.append(feats)
        if emulator is not None and info["psis_khat"] >= PSIS_KHAT_OK:
            echo("WARNING: the emulated posterior is not a reliable stand-in for the exact one "
                 "(Pareto k >= 0.7): raise nuts.design_points or use nuts.method = \"exact\"")
        files = _results(config, spec, design, u_map, lap[0]["sd"], draws, stored, step, feats,
                         nuts, log_w, map_arrays, info | {"timings": timings}, progress)
        return run.publish(files)


def _exact_stage(run, stage, spec, design, stored, progress) -> np.ndarray:
    """Exact ODE features (log max injury) at every stored draw ``[draw, feature]``."""
    saved = run.load_checkpoint(stage) if run.resume else None
    if saved is not None:
        return saved[0]["features"]
    flat = jnp.asarray(stored.reshape(-1, stored.shape[-1]))
    bar = tqdm(total=flat.shape[0], desc="exact model at posterior draws",
               disable=not progress)
    feats = evaluate(jax.tree_util.Partial(_features_of, spec, design), flat,
                     progress=lambda done: bar.update(done - bar.n))
    bar.close()
    run.save_checkpoint(stage, {"features": feats})
    return feats


def features_loglik(spec: FitSpec, design: Design):
    """``loglik(u, f)``: total log-likelihood given the ODE features ``f`` (log max injury)."""
    o = design.obs.arrays()
    y, n = jnp.asarray(o.y, float), jnp.asarray(o.n, float)

    def loglik(u, f):
        p = spec.to_params(u)
        mu = predicted_probability(p, design, drug_probabilities(p, design, f))
        return jnp.sum(beta_binomial_logpmf(y, n, mu, p.obs.concentration))

    return loglik


def _emulator_stage(run, config, spec, design, whitening, key, progress, echo):
    """Design solves (checkpointed) and emulator training (deterministic, redone on resume)."""
    index = ode_parameter_index(spec)
    saved = run.load_checkpoint("emulator") if run.resume else None
    if saved is None:
        t0 = time.perf_counter()
        bar = tqdm(total=config.nuts.design_points + 2 * len(index) + 1,
                   desc="emulator design (exact solves)", disable=not progress)
        des = solve_design(jax.tree_util.Partial(_features_of, spec, design), whitening,
                           index, _emulator_key(key), design_points=config.nuts.design_points,
                           progress=lambda done, total: bar.update(done - bar.n))
        bar.close()
        run.save_checkpoint("emulator", des, {"seconds": time.perf_counter() - t0})
    else:
        des = saved[0]
    emu, report = _train(des, spec, design, whitening, key)
    echo(f"emulator: {report.design_points} design points, held-out log-likelihood error "
         f"{report.loglik_rmse:.2f} nats RMS (linear part alone {report.loglik_rmse_linear:.2f};"
         f" spread {report.loglik_sd:.1f})")
    return emu, report, des


def _emulator_key(key):
    return jax.random.fold_in(key, 3)


def _train(des, spec, design, whitening, key, extra=None):
    return emulator_from_design(des, features_loglik(spec, design), whitening,
                                ode_parameter_index(spec), _emulator_key(key), extra=extra,
                                width=EMULATOR_WIDTH, steps=EMULATOR_STEPS)


def _nuts_stage(run, stage, config, whitening, target, key, progress, echo) -> NutsResult:
    saved = run.load_checkpoint(stage) if run.resume else None
    if saved is not None:
        a, meta = saved
        return NutsResult(u=a["u"], log_density=a["log_density"], diverging=a["diverging"],
                          acceptance_rate=a["acceptance_rate"], n_steps=a["n_steps"],
                          step_size=a["step_size"], seconds=float(meta["seconds"]),
                          chain_method=str(meta["chain_method"]))
    c = config.nuts
    echo(f"NUTS ({c.method} likelihood): {c.chains} chains x ({c.warmup} warm-up + {c.draws} "
         "draws)")
    res = run_nuts(target, whitening, jax.random.fold_in(key, 4), chains=c.chains,
                   warmup=c.warmup, draws=c.draws, target_accept=c.target_accept,
                   max_tree_depth=c.max_tree_depth, progress=progress)
    arrays = {k: np.asarray(getattr(res, k)) for k in
              ("u", "log_density", "diverging", "acceptance_rate", "n_steps", "step_size")}
    run.save_checkpoint(stage, arrays, {"seconds": res.seconds,
                                         "chain_method": res.chain_method})
    echo(f"NUTS: {res.seconds:.0f} s, {int(res.diverging.sum())} divergences, mean "
         f"{res.n_steps.mean():.1f} leapfrog steps per draw")
    return res


def _thin_step(draws: np.ndarray) -> int:
    """Even thinning that keeps at most ``MAX_STORED_DRAWS`` draws over all chains."""
    chains, n = draws.shape[:2]
    return max(1, math.ceil(chains * n / MAX_STORED_DRAWS))


def _summary_table(spec, draws) -> pd.DataFrame:
    """R-hat (rank-normalised) and bulk/tail ESS of every scalar parameter, all draws."""
    import arviz_stats as azs

    variables, dims, coords = posterior_variables(spec, draws)
    ds = xr.Dataset({k: (("chain", "draw", *dims.get(k, [])), v) for k, v in variables.items()},
                    coords=coords)
    enough = draws.shape[1] >= MIN_DIAGNOSTIC_DRAWS
    rhat = azs.rhat(ds) if draws.shape[0] > 1 and enough else None
    bulk = azs.ess(ds, method="bulk") if enough else None
    tail = azs.ess(ds, method="tail") if enough else None
    rows = []
    for k, e in enumerate(spec.entries):
        sel = {} if e.index is None else {dim_name(e.field): element_label(e.field, e.index)}

        def get(d, sel=sel, e=e):
            return float("nan") if d is None else float(d[e.field].sel(sel))

        rows.append((spec.names[k], get(rhat), get(bulk), get(tail)))
    return pd.DataFrame(rows, columns=["parameter", "r_hat", "ess_bulk", "ess_tail"])


def _results(config, spec, design, u_map, sd, draws, stored, step, feats, nuts, log_w,
             map_arrays, info, progress) -> dict:
    import arviz_base as azb

    files = {}
    t0 = time.perf_counter()
    table = _summary_table(spec, draws)
    flat = stored.reshape(-1, spec.size)

    def exact_mu(u, f):
        p = spec.to_params(u)
        return predicted_probability(p, design, drug_probabilities(p, design, f))

    mus = np.asarray(jax.jit(jax.vmap(exact_mu))(jnp.asarray(flat), jnp.asarray(feats)))
    phi = np.asarray(jax.vmap(lambda u: spec.to_params(u).obs.concentration)(jnp.asarray(flat)))
    o = design.obs.arrays()
    y, n = np.asarray(o.y, float), np.asarray(o.n, float)
    pointwise = np.asarray(jax.vmap(lambda mu, ph: beta_binomial_logpmf(y, n, mu, ph))(
        jnp.asarray(mus), jnp.asarray(phi)))  # [draw, row]
    rng = np.random.default_rng(config.seed)
    p_arm = rng.beta(np.clip(mus * phi[:, None], 1e-9, None),
                     np.clip((1 - mus) * phi[:, None], 1e-9, None))
    y_rep = rng.binomial(n.astype(int)[None], p_arm).astype(np.int32)  # [draw, row]
    # parameters on the natural scale
    nat = np.asarray(jax.vmap(spec.natural_values)(jnp.asarray(flat)))
    mode = np.asarray(spec.natural_values(u_map))
    q = np.quantile(nat, [0.05, 0.5, 0.95], axis=0)
    params = pd.DataFrame({
        "parameter": spec.names, "map": mode, "mean": nat.mean(0), "q05": q[0], "q50": q[1],
        "q95": q[2], "r_hat": table.r_hat, "ess_bulk": table.ess_bulk,
        "ess_tail": table.ess_tail,
        "prior": [f"{e.prior.dist}({e.prior.median}, {e.prior.sd})" for e in spec.entries],
        "laplace_sd_unconstrained": np.asarray(sd),
    })
    files["parameters.csv"] = params.to_csv(index=False)
    files["diagnostics.csv"] = table.to_csv(index=False)
    # posterior predictive check of the training rows
    prop = y_rep / n[None]
    lo, hi = np.quantile(prop, [0.05, 0.95], axis=0)
    obs = y / n
    covered = (obs >= lo) & (obs <= hi)
    ppc = pd.DataFrame({"row_id": design.obs.row_id, "regimen": [
        design.regimens[r] if r >= 0 else "control" for r in design.obs.regimen],
        "n": n.astype(int), "observed": obs, "predicted_mean": mus.mean(0), "lower_90": lo,
        "upper_90": hi, "covered": covered})
    files["ppc.csv"] = ppc.to_csv(index=False)
    # incidence curves by regimen x organ x grade
    curve_draws = flat[np.linspace(0, len(flat) - 1, min(MAX_DRAWS, len(flat))).astype(int)]
    curves = _curves(config, spec, curve_draws, progress)
    files["curves.csv"] = curves.to_csv(index=False)
    m = config.model
    onset = onset_check(spec, curve_draws[:: max(1, len(curve_draws) // ONSET_DRAWS)],
                        days=m.days, patients=max(m.patients, 64), seed=config.seed,
                        steps_per_day=m.steps_per_day, refine=m.refine, tumour=m.tumour)
    files["onset.csv"] = onset.to_csv(index=False)
    info["onset_within_range"] = (f"{int(onset.within.sum())}/{len(onset)}" if len(onset)
                                  else None)
    timings = info.pop("timings")
    timings["results_s"] = time.perf_counter() - t0
    diagnostics = {
        "method": {"emulator": "NUTS on the emulated likelihood (exact-model PSIS check)",
                   "exact": "NUTS on the exact likelihood",
                   "laplace": "Laplace approximation at the MAP (not NUTS)"}[config.nuts.method],
        "chains": int(draws.shape[0]), "draws_per_chain": int(draws.shape[1]),
        "stored_draws": int(len(flat)),
        "max_r_hat": _nanmax(table.r_hat), "min_ess_bulk": _nanmin(table.ess_bulk),
        "min_ess_tail": _nanmin(table.ess_tail),
        "divergences": None if nuts is None else int(nuts.diverging.sum()),
        "mean_acceptance": None if nuts is None else float(nuts.acceptance_rate.mean()),
        "mean_leapfrog_steps": None if nuts is None else float(nuts.n_steps.mean()),
        "nuts_chain_method": None if nuts is None else nuts.chain_method,
        "min_ess_bulk_per_second": (
            None if nuts is None or _nanmin(table.ess_bulk) is None
            else _nanmin(table.ess_bulk) / nuts.seconds),
        "map_log_posterior_by_start": np.asarray(map_arrays["starts_log_density"]).tolist(),
        "map_grad_norm_by_start": np.asarray(map_arrays["grad_norm"]).tolist(),
        "ppc_coverage_90": float(covered.mean()),
        "rows": int(len(n)), "seed": config.seed, "timings_s": timings,
    } | info
    files["diagnostics.json"] = json.dumps(_jsonable(diagnostics), indent=2)
    files["posterior.nc"] = _datatree_bytes(azb, spec, design, stored, step, nuts, pointwise,
                                            y_rep, log_w)
    files["plots/curves.png"] = _plot_curves(curves)
    files["plots/ppc.png"] = _plot_ppc(ppc)
    return files


def _nanmax(x):
    x = np.asarray(x, float)
    return None if np.all(np.isnan(x)) else float(np.nanmax(x))


def _nanmin(x):
    x = np.asarray(x, float)
    return None if np.all(np.isnan(x)) else float(np.nanmin(x))


def _jsonable(x):
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    return x


def _datatree_bytes(azb, spec, design, stored, step, nuts, pointwise, y_rep, log_w) -> bytes:
    """arviz DataTree: posterior, log_likelihood, posterior_predictive, observed_data,
    constant_data and (NUTS) sample_stats, as netCDF bytes."""
    variables, dims, coords = posterior_variables(spec, stored)
    chains, n_stored = stored.shape[:2]
    shape = (chains, n_stored, -1)
    rows = list(design.obs.row_id)
    data = {
        "posterior": variables,
        "log_likelihood": {"y": pointwise.reshape(shape)},
        "posterior_predictive": {"y": y_rep.reshape(shape)},
        "observed_data": {"y": np.asarray(design.obs.y)},
        "constant_data": {"n": np.asarray(design.obs.n)},
    }
    if nuts is not None:
        stats = {"diverging": nuts.diverging[:, ::step],
                 "acceptance_rate": nuts.acceptance_rate[:, ::step],
                 "n_steps": nuts.n_steps[:, ::step], "lp": nuts.log_density[:, ::step]}
        if log_w is not None:
            stats["log_importance_weight"] = log_w.reshape(chains, n_stored)
        data["sample_stats"] = stats
    dims = dims | {"y": ["row"], "n": ["row"]}
    coords = coords | {"row": rows}
    tree = azb.from_dict(data, dims=dims, coords=coords)
    tree.attrs["pdmodel_parameters"] = json.dumps(list(spec.names))
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "posterior.nc")
        tree.to_netcdf(path, engine="h5netcdf")
        return Path(path).read_bytes()


def _curves(config, spec, draws, progress) -> pd.DataFrame:
    days = 7 * config.output.weeks
    alpha = (1.0 - config.output.interval) / 2
    rows = []
    for text in tqdm(config.output.curves_regimens, desc="curves", disable=not progress):
        reg = Regimen.parse(text)
        prob = IraeProblem.build(reg, days=days, steps_per_day=config.model.steps_per_day,
                                 refine=config.model.refine)
        pop = Population.sample(jax.random.key(config.seed), config.model.patients,
                                tumour=config.model.tumour, max_agents=len(reg.agents))

        def one(u, prob=prob, pop=pop):
            return reported_incidence(spec.to_params(u), prob, pop, CURVE_ENDPOINT)

        inc = np.asarray(jax.lax.map(jax.jit(one), jnp.asarray(draws)))  # [draw, day, o, g]
        qs = np.quantile(inc, [alpha, 0.5, 1 - alpha], axis=0)
        mean = inc.mean(0)
        for oi, organ in enumerate(ORGAN_CHOICES):
            for gi, grade in enumerate(GRADES):
                for d in range(0, days, 7):
                    rows.append((text, organ, grade, CURVE_ENDPOINT, d + 1, mean[d, oi, gi],
                                 qs[0, d, oi, gi], qs[1, d, oi, gi], qs[2, d, oi, gi]))
    return pd.DataFrame(rows, columns=["regimen", "organ", "grade", "endpoint", "day", "mean",
                                       "lower", "median", "upper"])


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return buf.getvalue()


def _plot_curves(curves: pd.DataFrame) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    regs = curves.regimen.unique()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), sharey=False)
    for ax, grade in zip(axes, ("any", "3+"), strict=True):
        for r in regs:
            c = curves[(curves.regimen == r) & (curves.organ == "any") & (curves.grade == grade)]
            ax.plot(c.day / 7, c["mean"], label=r[:40])
            ax.fill_between(c.day / 7, c.lower, c.upper, alpha=0.15)
        ax.set(xlabel="weeks since first dose", ylabel="cumulative incidence",
               title=f"any irAE, grade {grade}")
    axes[0].legend(fontsize=6)
    return _png(fig)


def _plot_ppc(ppc: pd.DataFrame) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5))
    ax.vlines(ppc.predicted_mean, ppc.lower_90, ppc.upper_90, lw=0.6, alpha=0.5,
              label="90% predictive interval")
    ax.scatter(ppc.predicted_mean, ppc.observed, s=8, c=np.where(ppc.covered, "C0", "C3"),
               label="observed")
    ax.plot([0, 1], [0, 1], "k--", lw=0.8)
    ax.legend(fontsize=7)
    ax.set(xlabel="predicted mean incidence", ylabel="observed incidence",
           title=f"training arms: {ppc.covered.mean():.0%} inside 90% intervals")
    return _png(fig)
