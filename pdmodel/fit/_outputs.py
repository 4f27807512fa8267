"""The results of ``pdmodel fit``: every file of ``<run>/results``, from the fitted posterior.

The stored draws are re-evaluated with the *exact* model (their ODE features come from the
pipeline's ``exact`` stage): pointwise log-likelihood and posterior predictive of the training
rows, parameter summaries with R-hat and ESS, incidence curves with bands, the onset-timing
check, diagnostics, the arviz DataTree, two plots and ``report.html`` (pdmodel.fit._report).
:func:`results_files` returns them as ``{relative path: content}`` for
:meth:`RunFolder.publish`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import xarray as xr
from jaxtyping import Array, Float, Int
from tqdm import tqdm

from ..data import load_user_timing
from ..distributed import chunk_map
from ..errors import FitLoadError
from ..io import versions_info
from ..regimen import Regimen
from ..vocab import GRADES, ORGAN_CHOICES
from ._checks import (
    management_check,
    management_summary,
    onset_check,
    onset_summary,
    subgroup_check,
    subgroup_summary,
)
from ._config import FitConfig, dump_config
from ._design import Design
from ._figures import natural_course, plot_ppc, png
from ._likelihood import features_probability, predictive_counts, row_loglik
from ._nuts import NutsResult
from ._parameters import FitSpec
from ._posterior import dim_name, element_label, posterior_variables
from ._predict import (
    AGENT_SLOTS,
    TYPICAL_ARM_SIZE,
    bands,
    curves,
    observation_draws,
    population,
)
from ._report import ResultFiles, report_html
from ._result import load_fit
from ._run_folder import MANIFEST, RunFolder, published_folder, verify_results, visible_files

CURVE_ENDPOINT = "immune_related"
"""Curves are reported as trials report immune-related adverse events (background included at
the fitted immune-related attribution)."""

CURVE_POLICIES = ("natural", "default")
"""The two forms of every curve in ``curves.csv`` (``pdmodel.fit._predict.POLICIES``): the
natural course (no rescue: with managed training arms the counterfactual) and under the
default management policy as the training arms are fitted under it (the smooth managed course:
docs/model.md §5.9)."""

CURVE_COLUMNS = ("mean", "lower", "median", "upper", "ci_lower", "ci_upper")
"""``curves.csv`` value columns (after regimen, organ, grade, endpoint, day)."""

MAX_DRAWS = 200
"""At most this many posterior draws are simulated for the incidence-curve bands."""

MIN_DIAGNOSTIC_DRAWS = 20
"""Fewer draws per chain than this (smoke runs) leave R-hat and ESS undefined (NaN)."""

ONSET_DRAWS = 40
"""Posterior draws simulated for the onset-timing check (pdmodel.fit._checks)."""

METHOD_DESCRIPTIONS = {
    "emulator": "NUTS on the emulated likelihood (exact-model PSIS check)",
    "exact": "NUTS on the exact likelihood",
    "laplace": "Laplace approximation at the MAP (not NUTS; PSIS check against the exact "
               "posterior)",
}
"""``diagnostics.json`` ``method`` for each ``nuts.method``."""


class Mode(NamedTuple):
    """The MAP and its Laplace scale, as the results report them."""

    u: Float[Array, " param"]  # unconstrained MAP
    laplace_sd: Float[np.ndarray, " param"]  # Laplace SD, unconstrained scale
    starts_log_density: Float[np.ndarray, " start"]  # log posterior reached from each start
    grad_norm: Float[np.ndarray, " start"]  # final gradient norm of each start


class PosteriorSample(NamedTuple):
    """The posterior draws and what the sampling stages computed at them."""

    draws: Float[np.ndarray, "chain draw param"]  # all draws (R-hat and ESS)
    stored: Float[np.ndarray, "chain stored_draw param"]  # = draws[:, ::step]
    step: int  # thinning step of ``stored``
    features: Float[np.ndarray, "stored_draw feature"]  # exact ODE features at ``stored``
    nuts: NutsResult | None  # sampler statistics (None for Laplace draws)
    # exact − emulated log-likelihood (emulator only)
    log_w: Float[np.ndarray, " stored_draw"] | None
    # the training rows' model means at ``stored`` when a stage computed them (else None)
    mu: Float[np.ndarray, "stored_draw row"] | None = None


class Predictions(NamedTuple):
    """The exact model at the stored draws, ``[draw, row]``."""

    mu: Float[np.ndarray, "draw row"]  # model mean probability of every training row
    pointwise: Float[np.ndarray, "draw row"]  # beta-binomial log-likelihood of every row
    y_rep: Int[np.ndarray, "draw row"]  # posterior predictive counts (int32)


def results_files(config: FitConfig, spec: FitSpec, design: Design, mode: Mode,
                  sample: PosteriorSample, info: dict, timings: dict, progress: bool) -> dict:
    """Every file of ``results/`` as ``{relative path: bytes or text}``.

    ``info`` (diagnostics of the stages: Laplace, emulator, PSIS) is appended to
    ``diagnostics.json``; ``timings`` gains ``results_s``.
    """
    t0 = time.perf_counter()
    parts = {}

    def timed(name, fn, *args, **kwargs):  # seconds of each part (diagnostics.json)
        start = time.perf_counter()
        out = fn(*args, **kwargs)
        parts[name] = time.perf_counter() - start
        return out

    table = summary_table(spec, sample.draws)
    flat = sample.stored.reshape(-1, spec.size)
    pred = timed("predictions_s", exact_predictions, spec, design, flat, sample.features,
                 seed=config.seed, mus=sample.mu)
    ppc = ppc_table(design, pred)
    curve_draws = flat[np.linspace(0, len(flat) - 1, min(MAX_DRAWS, len(flat))).astype(int)]

    def checks():  # onset, subgroups and management, one after the other
        return (timed("onset_s", onset_table, config, spec, curve_draws),
                timed("subgroups_s", subgroup_check, spec, design, curve_draws,
                      seed=config.seed),
                timed("management_s", management_check, spec, design, curve_draws,
                      seed=config.seed))

    # the checks run beside the curves (their parts' seconds overlap): each part compiles
    # its own programs, on one core, while the other part computes
    with ThreadPoolExecutor(1) as pool:
        checked = pool.submit(checks)
        curves = timed("curves_s", incidence_curves, config, spec, curve_draws, progress)
        onset, subgroups, management = checked.result()
    timings["results_s"] = time.perf_counter() - t0
    timings["results_parts_s"] = {k: parts[k] for k in ("predictions_s", "curves_s", "onset_s",
                                                          "subgroups_s", "management_s")}
    diagnostics = (run_diagnostics(config, sample, table, mode, ppc, timings) | info
                   | onset_summary(onset) | subgroup_summary(subgroups)
                   | management_summary(management)
                   | {"onset_rows_fitted": 0 if design.onset is None
                      else len(design.onset.rows.row_id)})
    files = {
        "parameters.csv": parameters_table(spec, flat, mode, table).to_csv(index=False),
        "diagnostics.csv": table.to_csv(index=False),
        "ppc.csv": ppc.to_csv(index=False),
        "curves.csv": curves.to_csv(index=False),
        "onset.csv": onset.to_csv(index=False),
        "subgroups.csv": subgroups.to_csv(index=False),
        "management.csv": management.to_csv(index=False),
        "diagnostics.json": json.dumps(_jsonable(diagnostics), indent=2),
        "posterior.nc": datatree_bytes(spec, design, sample, pred),
        "plots/curves.png": plot_curves(curves),
        "plots/ppc.png": plot_ppc(ppc),
    }
    files["report.html"] = report_html(ResultFiles(files, top={
        "config.toml": dump_config(config), "seed.txt": f"{config.seed}\n",
        "versions.json": json.dumps(versions_info(), indent=2)}))
    return files


# --------------------------------------------------------------------------- tables


def summary_table(spec: FitSpec, draws: Float[np.ndarray, "chain draw param"]) -> pd.DataFrame:
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


def exact_predictions(spec: FitSpec, design: Design, flat: Float[np.ndarray, "draw param"],
                      features: Float[np.ndarray, "draw feature"], *,
                      seed: int, mus: Float[np.ndarray, "draw row"] | None = None
                      ) -> Predictions:
    """Model means, pointwise log-likelihood and posterior predictive counts of the training
    rows at the draws ``flat`` ``[draw, parameter]`` with their exact ODE ``features``
    (predictive draws from ``numpy.random.default_rng(seed)``); ``mus``: the means when
    already computed (the Laplace check's exact log posterior computes them)."""
    if mus is None:
        mus = chunk_map(jax.jit(jax.vmap(features_probability(spec, design))), flat, features,
                        size=DRAW_CHUNK)
    obs = jax.vmap(lambda u: spec.to_params(u).obs)(jnp.asarray(flat))
    phi, trial_sd = np.asarray(obs.concentration), np.asarray(obs.trial_sd)
    n = np.asarray(design.obs.n, float)
    # each row alone, its trial effect integrated out (docs/model.md §5.2)
    pointwise = chunk_map(jax.jit(jax.vmap(
        lambda u, mu: row_loglik(spec.to_params(u), design, mu))), flat, mus,
        size=DRAW_CHUNK)  # [draw, row]
    # replicated arms: a new trial effect per draw and row, then the beta-binomial
    y_rep = predictive_counts(np.random.default_rng(seed), mus, phi, n.astype(int)[None],
                              trial_sd=trial_sd).astype(np.int32)  # [draw, row]
    return Predictions(mus, pointwise, y_rep)


DRAW_CHUNK = 50
"""Draws per compiled call of :func:`exact_predictions` (the chunks run on a thread per core:
each call solves the managed course at its draws, one core busy)."""


def parameters_table(spec: FitSpec, flat: Float[np.ndarray, "draw param"], mode: Mode,
                     table: pd.DataFrame) -> pd.DataFrame:
    """Every fitted parameter on the natural scale: MAP, posterior mean and 5/50/95%
    quantiles, R-hat and ESS (from ``table``), prior and Laplace SD."""
    nat = np.asarray(jax.vmap(spec.natural_values)(jnp.asarray(flat)))
    at_mode = np.asarray(spec.natural_values(mode.u))
    q = np.quantile(nat, [0.05, 0.5, 0.95], axis=0)
    return pd.DataFrame({
        "parameter": spec.names, "map": at_mode, "mean": nat.mean(0), "q05": q[0], "q50": q[1],
        "q95": q[2], "r_hat": table.r_hat, "ess_bulk": table.ess_bulk,
        "ess_tail": table.ess_tail,
        "prior": [f"{e.prior.dist}({e.prior.median}, {e.prior.sd})" for e in spec.entries],
        "laplace_sd_unconstrained": np.asarray(mode.laplace_sd),
    })


def ppc_table(design: Design, pred: Predictions) -> pd.DataFrame:
    """Posterior predictive check of the training rows: observed proportion, predicted mean
    and the 90% predictive interval of the proportion (``covered``: inside it)."""
    o = design.obs.arrays()
    y, n = np.asarray(o.y, float), np.asarray(o.n, float)
    prop = pred.y_rep / n[None]
    lo, hi = np.quantile(prop, [0.05, 0.95], axis=0)
    obs = y / n
    covered = (obs >= lo) & (obs <= hi)
    return pd.DataFrame({"row_id": design.obs.row_id, "regimen": [
        design.regimens[r] if r >= 0 else "control" for r in design.obs.regimen],
        "n": n.astype(int), "observed": obs, "predicted_mean": pred.mu.mean(0), "lower_90": lo,
        "upper_90": hi, "covered": covered})


def incidence_curves(config: FitConfig, spec: FitSpec, draws: Float[np.ndarray, "draw param"],
                     progress: bool) -> pd.DataFrame:
    """Weekly incidence of every ``output.curves_regimens`` regimen by organ and grade, as
    :data:`CURVE_ENDPOINT` reports it, in its two forms (``policy``: :data:`CURVE_POLICIES`)
    over ``draws``: ``mean``, ``lower``/``median``/``upper`` (predictive interval of an arm of
    ``TYPICAL_ARM_SIZE``, as ``pdmodel predict``) and ``ci_lower``/``ci_upper`` (credible band
    of the population incidence); the same computation as :meth:`Fit.incidence`
    (pdmodel.fit._predict)."""
    m, days = config.model, 7 * config.output.weeks
    weekly = np.arange(0, days, 7)
    phi, sd = observation_draws(spec, draws)
    frames = []
    for text in tqdm(config.output.curves_regimens, desc="curves", disable=not progress):
        reg = Regimen.parse(text)
        pop = population(jax.random.key(config.seed), m.patients, tumour=m.tumour,
                         max_agents=max(AGENT_SLOTS, len(reg.agents)))
        for policy in CURVE_POLICIES:
            inc = curves(spec, draws, reg, pop, days=days, steps_per_day=m.steps_per_day,
                         refine=m.refine, models=dict(m.pk_models) or None,
                         endpoint=CURVE_ENDPOINT, policy=policy)  # [draw, day, organ, grade]
            for oi, organ in enumerate(ORGAN_CHOICES):
                for gi, grade in enumerate(GRADES):
                    b = bands(inc[:, :, oi, gi], phi, interval=config.output.interval,
                              arm_size=TYPICAL_ARM_SIZE, trial_sd=sd)
                    frames.append(pd.DataFrame(
                        {"regimen": text, "organ": organ, "grade": grade,
                         "endpoint": CURVE_ENDPOINT, "policy": policy, "day": weekly + 1}
                        | {k: b[k][weekly] for k in CURVE_COLUMNS}))
    return pd.concat(frames, ignore_index=True)


def onset_table(config: FitConfig, spec: FitSpec,
                draws: Float[np.ndarray, "draw param"]) -> pd.DataFrame:
    """:func:`onset_check` at about :data:`ONSET_DRAWS` of ``draws`` (evenly thinned), against
    the timing table of ``data.timing`` (bundled, a user file checked and harmonised as the
    bundled one, or ``none``: no check)."""
    m, where = config.model, config.data.timing
    if where == "none":
        return pd.DataFrame()
    timing = None if where == "bundled" else load_user_timing(where)
    return onset_check(spec, draws[:: max(1, len(draws) // ONSET_DRAWS)], days=m.days,
                       patients=max(m.patients, 64), seed=config.seed,
                       steps_per_day=m.steps_per_day, refine=m.refine, tumour=m.tumour,
                       timing=timing)


# --------------------------------------------------------------------------- diagnostics


def run_diagnostics(config: FitConfig, sample: PosteriorSample, table: pd.DataFrame,
                    mode: Mode, ppc: pd.DataFrame, timings: dict) -> dict:
    """The sampler and MAP part of ``diagnostics.json`` (the stages' ``info`` follows it)."""
    nuts, draws = sample.nuts, sample.draws
    return {
        "method": METHOD_DESCRIPTIONS[config.nuts.method],
        "chains": int(draws.shape[0]), "draws_per_chain": int(draws.shape[1]),
        "stored_draws": int(sample.stored.shape[0] * sample.stored.shape[1]),
        "max_r_hat": _nanmax(table.r_hat), "min_ess_bulk": _nanmin(table.ess_bulk),
        "min_ess_tail": _nanmin(table.ess_tail),
        "divergences": None if nuts is None else int(nuts.diverging.sum()),
        "mean_acceptance": None if nuts is None else float(nuts.acceptance_rate.mean()),
        "mean_leapfrog_steps": None if nuts is None else float(nuts.n_steps.mean()),
        "nuts_chain_method": None if nuts is None else nuts.chain_method,
        "min_ess_bulk_per_second": (
            None if nuts is None or _nanmin(table.ess_bulk) is None
            else _nanmin(table.ess_bulk) / nuts.seconds),
        "map_log_posterior_by_start": np.asarray(mode.starts_log_density).tolist(),
        "map_grad_norm_by_start": np.asarray(mode.grad_norm).tolist(),
        "ppc_coverage_90": float(ppc.covered.to_numpy().mean()),
        "rows": int(len(ppc)), "seed": config.seed, "timings_s": timings,
    }


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


def datatree_bytes(spec: FitSpec, design: Design, sample: PosteriorSample,
                   pred: Predictions) -> bytes:
    """arviz DataTree: posterior, log_likelihood, posterior_predictive, observed_data,
    constant_data and (NUTS) sample_stats, as netCDF bytes."""
    import arviz_base as azb

    stored, step, nuts = sample.stored, sample.step, sample.nuts
    variables, dims, coords = posterior_variables(spec, stored)
    chains, n_stored = stored.shape[:2]
    shape = (chains, n_stored, -1)
    rows = list(design.obs.row_id)
    data = {
        "posterior": variables,
        "log_likelihood": {"y": pred.pointwise.reshape(shape)},
        "posterior_predictive": {"y": pred.y_rep.reshape(shape)},
        "observed_data": {"y": np.asarray(design.obs.y)},
        "constant_data": {"n": np.asarray(design.obs.n)},
    }
    if nuts is not None:
        stats = {"diverging": nuts.diverging[:, ::step],
                 "acceptance_rate": nuts.acceptance_rate[:, ::step],
                 "n_steps": nuts.n_steps[:, ::step], "lp": nuts.log_density[:, ::step]}
        if sample.log_w is not None:
            stats["log_importance_weight"] = sample.log_w.reshape(chains, n_stored)
        data["sample_stats"] = stats
    elif sample.log_w is not None:  # Laplace draws: their importance weights
        data["sample_stats"] = {"log_importance_weight": sample.log_w.reshape(chains, n_stored)}
    dims = dims | {"y": ["row"], "n": ["row"]}
    coords = coords | {"row": rows}
    tree = azb.from_dict(data, dims=dims, coords=coords)
    tree.attrs["pdmodel_parameters"] = json.dumps(list(spec.names))
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "posterior.nc")
        tree.to_netcdf(path, engine="h5netcdf", encoding=netcdf_encoding(tree))
        return Path(path).read_bytes()


def netcdf_encoding(tree) -> dict:
    """Lossless compression of every variable of a DataTree (gzip after byte shuffling: the
    reference posterior's 1,000 draws × 344 rows of log-likelihood and predictive take 3.9 MB
    instead of 5.4 MB); values are unchanged."""
    return {node.path: {v: {"zlib": True, "complevel": 6, "shuffle": True}
                        for v in node.data_vars}
            for node in tree.subtree if node.data_vars}


# --------------------------------------------------------------------------- plots


def plot_curves(curves: pd.DataFrame) -> bytes:
    """PNG: any-organ incidence (mean, credible band) of every regimen, grades any and 3+."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = natural_course(curves)
    regs = curves.regimen.unique()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), sharey=False)
    for ax, grade in zip(axes, ("any", "3+"), strict=True):
        for r in regs:
            c = curves[(curves.regimen == r) & (curves.organ == "any") & (curves.grade == grade)]
            ax.plot(c.day / 7, c["mean"], label=r[:40])
            ax.fill_between(c.day / 7, c.ci_lower, c.ci_upper, alpha=0.15)
        ax.set(xlabel="weeks since first dose", ylabel="cumulative incidence",
               title=f"any irAE, grade {grade}")
    axes[0].legend(fontsize=6)
    return png(fig)


def write_report(run: str | Path, *, progress: bool = False) -> Path:
    """Redraw the report of the fit in ``run`` and publish it: a new version of ``results/``
    with the same files, the new ``report.html`` and their manifest; returns its path.

    The results are verified first (:func:`verify_results`; results published before
    manifests are taken as they are, with a warning, and get a manifest). The run folder is
    locked meanwhile, so no fit publishes in between. A ``curves.csv`` written before the
    predictive band or the managed form was added is recomputed in memory from the fit (when
    this pdmodel can still load it; float64, as :func:`run_fit`), so the report shows both
    bands and both forms.

    Raises
    ------
    FitLoadError
        ``run`` has no published results.
    ResultsIntegrityError
        The published results do not match their manifest (the message names the file).
    RunLockedError
        A fit is running in ``run``.
    """
    run = Path(run)
    if published_folder(run) is None:  # before locking: a wrong path creates nothing
        raise FitLoadError(f"{run} is not a fit: results/ missing ({run / 'results'}); run "
                           "'pdmodel fit' first")
    with RunFolder(run) as folder:
        published = verify_results(run)
        names = (list(published.manifest.files) if published.manifest is not None
                 else visible_files(published.folder))
        kept = {n: (published.folder / n).read_bytes() for n in names if n != "report.html"}
        rf = ResultFiles.from_folder(run)
        rf = dataclasses.replace(rf, files={n: rf.files[n] for n in rf.files if n != MANIFEST})
        curves = rf.csv("curves.csv")
        if curves is not None and ("ci_lower" not in curves or "policy" not in curves):
            jax.config.update("jax_enable_x64", True)  # as run_fit: the fit is float64
            try:
                fit = load_fit(run)
            except FitLoadError:
                fit = None
            if fit is not None:
                draws = fit.draws[np.linspace(0, len(fit.draws) - 1,
                                              min(MAX_DRAWS, len(fit.draws))).astype(int)]
                fresh = incidence_curves(fit.config, fit.spec, draws, progress)
                rf = dataclasses.replace(rf, files=rf.files | {"curves.csv": fresh.to_csv(
                    index=False)})
        out = folder.publish(kept | {"report.html": report_html(rf)})
    return out / "report.html"
