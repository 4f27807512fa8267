"""``pdmodel fit``: calibrate the irAE model to the incidence data and write a run folder.

Stages (each checkpointed, so ``--resume`` continues a killed run): ``map`` (multi-start
optax MAP), ``laplace`` (Gaussian approximation of the posterior at the mode). Results
(parameters, incidence curves with bands, posterior-predictive check of the training arms,
diagnostics, plots, draws as netCDF) are published atomically into ``<folder>/results``.

The posterior here is the **Laplace approximation**; NUTS on the same log-density is the next
step of the calibration work (docs/model.md §5).
"""

from __future__ import annotations

import io
import json
from dataclasses import replace
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import xarray as xr
from tqdm import tqdm

from ._config import FitConfig
from ._data import load_incidence
from ._irae_model import GRADES
from ._likelihood import (
    build_design,
    log_density,
    predicted_probability,
    predictive_proportions,
    reported_incidence,
)
from ._map import laplace_scale, map_fit
from ._params import FitSpec, Prior
from ._population import Population
from ._regimen import Regimen
from ._runio import RunFolder
from ._simulate import ORGAN_CHOICES, IraeProblem

CURVE_ENDPOINT = "immune_related"
"""Curves are reported as trials report immune-related adverse events (background included at
the fitted immune-related attribution)."""

MAX_DRAWS = 200
"""At most this many draws (``nuts.draws`` otherwise) from the Laplace approximation are used
for bands and predictive checks."""


def fit_spec(config: FitConfig) -> FitSpec:
    """Default fit with the config's fixed fields and prior overrides applied."""
    spec = FitSpec.default(fixed=tuple(config.model.fixed))
    overrides = dict(config.model.priors)
    if not overrides:
        return spec
    entries = []
    for e in spec.entries:
        ps = overrides.get(e.field)
        if ps is None:
            entries.append(e)
            continue
        k = 0 if e.index is None else e.index[-1]

        def pick(v, k=k):
            return v[k] if isinstance(v, tuple | list) else v

        if ps.dist == "halfnormal":
            raise ValueError(f"model.priors.{e.field}: halfnormal is not available for this "
                             "field; use lognormal, logitnormal or normal")
        centre = pick(ps.mean) if ps.dist == "normal" else pick(ps.median)
        entries.append(replace(e, prior=Prior(ps.dist, float(centre), float(pick(ps.sd)))))
    return FitSpec(entries=tuple(entries), base=spec.base)


def _training_rows(config: FitConfig) -> pd.DataFrame:
    path = None if config.data.incidence == "bundled" else config.data.incidence
    df = load_incidence(path)
    if config.data.use == "all":
        df = df.assign(fit_default=1)
    return df[~df["row_id"].isin(config.data.exclude_rows)]


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

    def ld(u):
        return log_density(u, spec, design)

    key = jax.random.key(config.seed)
    with RunFolder.open(config.output.folder, config, resume=resume, seed=config.seed) as run:
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
            run.save_checkpoint("map", saved[0])
        u_map = jnp.asarray(saved[0]["u"])
        echo(f"MAP log posterior {float(ld(u_map)):.2f} (starts: "
             f"{np.round(saved[0]['starts_log_density'], 2).tolist()})")
        lap = run.load_checkpoint("laplace") if run.resume else None
        if lap is None:
            sd, cov, nonconcave = laplace_scale(ld, u_map)
            lap = ({"sd": np.asarray(sd), "cov": np.asarray(cov),
                    "nonconcave": np.asarray(nonconcave)}, {})
            run.save_checkpoint("laplace", lap[0])
        cov = np.asarray(lap[0]["cov"])
        n_draws = min(config.nuts.draws, MAX_DRAWS)
        draws = _laplace_draws(u_map, cov, jax.random.fold_in(key, 2), n_draws)
        echo(f"Laplace approximation: {n_draws} draws; computing curves and checks")
        extra = {"laplace_nonconcave_directions": int(lap[0]["nonconcave"])}
        files = _results(config, spec, design, u_map, lap[0]["sd"], draws, saved[0] | extra,
                         progress)
        return run.publish(files)


def _laplace_draws(u, cov, key, n):
    w, v = np.linalg.eigh(0.5 * (cov + cov.T))
    root = v * np.sqrt(np.clip(w, 0.0, None))
    z = np.asarray(jax.random.normal(key, (n, u.shape[0])))
    return np.asarray(u)[None] + z @ root.T


def _results(config, spec, design, u_map, sd, draws, map_arrays, progress) -> dict:
    files = {}
    # parameters on the natural scale
    nat = np.stack([np.asarray(spec.natural_values(d)) for d in draws])
    mode = np.asarray(spec.natural_values(u_map))
    q = np.quantile(nat, [0.05, 0.5, 0.95], axis=0)
    params = pd.DataFrame({
        "parameter": spec.names, "map": mode, "q05": q[0], "q50": q[1], "q95": q[2],
        "prior": [f"{e.prior.dist}({e.prior.median}, {e.prior.sd})" for e in spec.entries],
        "sd_unconstrained": np.asarray(sd),
    })
    files["parameters.csv"] = params.to_csv(index=False)
    # posterior predictive check of the training rows
    mu_fn = jax.jit(lambda u: predicted_probability(spec.to_params(u), design))
    mus = np.stack([np.asarray(mu_fn(jnp.asarray(d)))
                    for d in tqdm(draws, desc="predictive check", disable=not progress)])
    phi = np.stack([float(spec.to_params(jnp.asarray(d)).obs.concentration) for d in draws])
    n = np.asarray(design.obs.n)
    y_rep = predictive_proportions(np.random.default_rng(config.seed), mus, phi, n[None])
    lo, hi = np.quantile(y_rep, [0.05, 0.95], axis=0)
    obs = np.asarray(design.obs.y) / n
    covered = (obs >= lo) & (obs <= hi)
    ppc = pd.DataFrame({"row_id": design.obs.row_id, "regimen": [
        design.regimens[r] if r >= 0 else "control" for r in design.obs.regimen],
        "n": n, "observed": obs, "predicted_mean": mus.mean(0), "lower_90": lo, "upper_90": hi,
        "covered": covered})
    files["ppc.csv"] = ppc.to_csv(index=False)
    # incidence curves by regimen x organ x grade
    curves = _curves(config, spec, draws, progress)
    files["curves.csv"] = curves.to_csv(index=False)
    diagnostics = {
        "method": "MAP + Laplace approximation (not NUTS)",
        "map_log_posterior_by_start": np.asarray(map_arrays["starts_log_density"]).tolist(),
        "map_grad_norm_by_start": np.asarray(map_arrays["grad_norm"]).tolist(),
        "laplace_nonconcave_directions": int(map_arrays["laplace_nonconcave_directions"]),
        "ppc_coverage_90": float(covered.mean()),
        "rows": int(len(n)), "draws": int(len(draws)), "seed": config.seed,
    }
    files["diagnostics.json"] = json.dumps(diagnostics, indent=2)
    post = xr.Dataset({"u": (("chain", "draw", "parameter"), draws[None])},
                      coords={"parameter": list(spec.names)},
                      attrs={"method": "laplace", "note": "unconstrained scale"})
    files["posterior.nc"] = post.to_netcdf(engine="h5netcdf")
    files["plots/curves.png"] = _plot_curves(curves)
    files["plots/ppc.png"] = _plot_ppc(ppc)
    return files


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
