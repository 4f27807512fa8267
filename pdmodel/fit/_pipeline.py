"""``pdmodel fit``: calibrate the irAE model to the incidence data and write a run folder.

Stages (each checkpointed by :func:`run_stage`, so ``--resume`` continues a killed run):

1. ``map`` — multi-start optax MAP (Adam, then L-BFGS);
2. ``laplace`` — Gaussian approximation at the mode (whitens the sampler's coordinates);
3. ``emulator`` (``nuts.method = "emulator"``) — exact ODE solves at design points, from which
   an emulator of the ODE features is trained (pdmodel.fit._emulator);
4. ``nuts`` — numpyro NUTS, several chains, on the emulated or the exact likelihood;
5. ``exact`` — the exact ODE features at the stored draws (thinned to at most
   ``MAX_STORED_DRAWS``); with the emulator, a PSIS check of the emulated posterior against the
   exact likelihood, and if it fails (k̂ ≥ ``PSIS_KHAT_OK``) ``nuts_refined1`` and
   ``exact_refined1`` after retraining the emulator with those solves (up to
   ``nuts.refine_rounds`` rounds);
6. results (pdmodel.fit._outputs) — pointwise log-likelihood, posterior predictive, incidence
   curves with bands, diagnostics, plots; published atomically into ``<folder>/results``.

``nuts.method = "laplace"`` skips 3–4 and uses draws of the Laplace approximation (quick looks),
checked against the exact posterior by PSIS: stage ``exact_posterior`` stores the exact log
posterior at the stored draws and the training rows' model means, which the results stage's
predictions reuse (one solve of the managed arms per draw, not two).

In a multi-process run (``jax.distributed``) every process runs the same stages; MAP starts, the
Laplace Hessian's columns, NUTS chains and the exact solves at the draws are split across
processes and gathered (pdmodel.distributed), and only process 0 touches the run folder and
computes the results stage: it locks the folder, checkpoints, and publishes ``results/`` after
every process has reached the end (a barrier with a timeout), so a failed process leaves no new
results. ``--resume`` then needs the run folder on a file system all processes read.
"""

from __future__ import annotations

import difflib
import math
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from jaxtyping import Array, Float
from tqdm import tqdm

from ..data import load_incidence, load_user_incidence, load_user_timing, usable_for_fit
from ..distributed import (
    all_agree,
    barrier,
    chunk_map,
    is_main_process,
    map_rows,
    process_count,
)
from ..errors import ConfigError, DataError, DistributedError
from ._checks import onset_targets
from ._config import BUNDLED, FitConfig, fit_spec
from ._design import Design, build_design, design_table, select_rows
from ._emulator import (
    Emulator,
    EmulatorReport,
    Whitening,
    emulator_from_design,
    evaluate,
    exact_features_program,
    solve_design,
)
from ._likelihood import (
    features_loglik,
    features_loglik_and_means,
    log_density_of,
    log_max_injury_of,
    ode_parameter_index,
)
from ._management_data import management_targets
from ._map import Laplace, laplace_scale, map_fit
from ._nuts import NutsResult, psis_check, run_nuts
from ._outputs import Mode, PosteriorSample, results_files
from ._parameters import FitSpec
from ._run_folder import RunFolder
from ._stages import Stage, elapsed_meta, run_stage
from ._subgroup_data import subgroup_targets

MAX_STORED_DRAWS = 1000
"""Draws kept in ``posterior.nc`` (chains thinned evenly); R-hat and ESS are computed on all."""

PSIS_KHAT_OK = 0.7
"""Pareto k̂ below which the emulated posterior is a reliable proposal for the exact one."""

RESULTS_WAIT_S = 3600.0
"""How long the other processes of a multi-process run wait for process 0's results stage
(curves, checks, posterior file; about 3 minutes for the bundled fit), which only process 0
computes: computed on every process, the copies contended for the cores and took twice as
long."""

EMULATOR_WIDTH = 128
EMULATOR_STEPS = 2000
"""Emulator MLP hidden width and optax training steps (pdmodel.fit._emulator)."""


def run_fit(config: FitConfig, *, resume: bool = False, progress: bool = True,
            echo=print) -> Path:
    """Run the fit described by ``config``; returns the results folder."""
    jax.config.update("jax_enable_x64", True)
    fit = _prepare(config, progress, echo)
    with _open_run(config, resume) as run:

        def stage(s: Stage):
            if run.resume and process_count() > 1:
                all_agree(run.load_checkpoint(s.name) is not None,
                          f"whether checkpoint '{s.name}' exists (--resume reads the run "
                          "folder on every process)")
            return run_stage(run, s, run.resume)

        ahead = _compile_ahead(fit)
        best = stage(_map_stage(fit))
        # the best start's value (evaluating fit.ld here, outside jit, took 25 s op by op)
        echo(f"MAP log posterior {float(np.nanmax(best.starts_log_density)):.2f} (starts: "
             f"{np.round(best.starts_log_density, 2).tolist()})")
        t0 = time.perf_counter()
        laplace = stage(_laplace_stage(fit, best.u))
        whitening = Whitening.from_laplace(best.u, laplace.cov)
        info = {"laplace_nonconcave_directions": laplace.nonconcave,
                "laplace_remeasured_directions": laplace.remeasured}
        # wall seconds of this run (a stage read back on --resume counts its reading)
        timings = {"map_s": best.seconds, "laplace_s": time.perf_counter() - t0}
        t0 = time.perf_counter()
        ahead.join()
        if config.nuts.method == "laplace":
            sample = _laplace_sample(fit, stage, whitening, info)
        else:
            sample = _nuts_sample(fit, stage, whitening, info, timings)
        timings["sample_s"] = time.perf_counter() - t0
        mode = Mode(best.u, laplace.sd, best.starts_log_density, best.grad_norm)
        files = {}
        if is_main_process():  # the only one that writes; the others wait at the barrier
            files = results_files(config, fit.spec, fit.design, mode, sample, info, timings,
                                  progress)
            # every training row: the arm it is simulated as (regimen, horizon, treatment)
            files["design.csv"] = design_table(_training_rows(config),
                                               max_days=config.model.days).to_csv(index=False)
        barrier("fit-results", RESULTS_WAIT_S)  # every process got here: publish (process 0)
        return run.publish(files)


class _ReaderRun:
    """The run folder as a process other than 0 sees it: reads checkpoints when resuming,
    writes nothing."""

    def __init__(self, config: FitConfig, resume: bool):
        self._folder = RunFolder(config.output.folder, config)
        self.resume = resume

    def load_checkpoint(self, stage: str):
        return self._folder.load_checkpoint(stage)

    def save_checkpoint(self, stage: str, arrays, meta=None) -> None:
        return None

    def publish(self, files) -> Path:
        return self._folder.results_path

    def __enter__(self) -> _ReaderRun:
        return self

    def __exit__(self, *exc) -> None:
        return None


def _open_run(config: FitConfig, resume: bool) -> RunFolder | _ReaderRun:
    """The locked run folder on process 0; a read-only view on the others. Every process
    fails if process 0 cannot open the folder (locked, another configuration)."""
    if process_count() == 1:
        return RunFolder.open(config.output.folder, config, resume=resume, seed=config.seed)
    run, error = None, None
    if is_main_process():
        try:
            run = RunFolder.open(config.output.folder, config, resume=resume, seed=config.seed)
        except Exception as err:  # noqa: BLE001 - re-raised below, after telling the others
            error = err
    else:
        run = _ReaderRun(config, resume)
    try:
        all_agree(error is None, "opening the run folder on process 0 (1 = opened)")
    except DistributedError:
        if error is not None:
            raise error from None
        raise
    return run


# --------------------------------------------------------------------------- set-up


class _Fit(NamedTuple):
    """What every stage of one fit uses."""

    config: FitConfig
    spec: FitSpec
    design: Design
    key: jax.Array
    ld: Callable  # log posterior of u (a jax Partial: the design is an argument, not a constant)
    features: Callable  # exact ODE features of u (a jax Partial)
    loglik: Callable  # loglik(u, features)
    loglik_and_means: Callable  # (u, features) -> [total log-likelihood, rows' means...]
    posterior_and_means: Callable  # jitted, batched: (u, features) [draw, 1 + row]
    progress: bool
    echo: Callable[[str], None]


def _training_rows(config: FitConfig) -> pd.DataFrame:
    """The incidence rows of the fit: the bundled table, or a user's file checked by the rules
    of ``pdmodel data check`` and harmonised as the bundled table
    (:func:`pdmodel.data.load_user_incidence`); then ``data.use`` (``"all"``: every row the
    model can fit, :func:`pdmodel.data.usable_for_fit`) and ``data.exclude_rows``.

    Raises
    ------
    DataFileError, DataError
        A user file that cannot be read, or with problems (the message is the full report);
        no row left to fit (the message gives each row's reason).
    ConfigError
        ``data.exclude_rows`` names a ``row_id`` the table does not have (with a did-you-mean).
    """
    data = config.data
    user = data.incidence != "bundled"
    df = load_user_incidence(data.incidence) if user else load_incidence()
    table = str(data.incidence) if user else "the bundled incidence table"
    ids = df["row_id"].astype(str).tolist()
    known = set(ids)
    unknown = [r for r in data.exclude_rows if r not in known]
    if unknown:
        def digits(text: str) -> str:  # "inc-380" and "inc-0380" name the same row
            return re.sub(r"[0-9]+", lambda m: str(int(m.group())), text.lower())

        problems = []
        for r in unknown:
            close = ([i for i in ids if digits(i) == digits(str(r))]
                     or difflib.get_close_matches(str(r), ids, n=1))
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(f"unknown row_id {r!r}{hint}: not a row of {table}")
        raise ConfigError("data.exclude_rows", problems)
    if data.use == "all":
        df = df.assign(fit_default=[int(usable_for_fit(x)) for x in df["exclusion_reason"]])
    left_out = df["row_id"].isin(data.exclude_rows)
    rows = df[~left_out]
    if select_rows(rows).empty:
        why = ["left out by data.exclude_rows" if out else
               f"not fitted ({reason or 'grade band not resolved by the model'})"
               for out, reason in zip(left_out, df["exclusion_reason"], strict=True)]
        raise DataError(f"{table}: no row can be fitted (data.use = {data.use!r}):\n"
                        + "\n".join(f"row_id {r}: {w}" for r, w in zip(ids, why, strict=True)))
    return rows


def _onset_rows(config: FitConfig) -> pd.DataFrame | None:
    """Published median onsets the fit uses (:func:`onset_targets` of ``data.timing``;
    None for ``none``)."""
    where = config.data.timing
    if where == "none":
        return None
    return onset_targets(None if where == BUNDLED else load_user_timing(where))


def _subgroup_rows(config: FitConfig) -> pd.DataFrame | None:
    """Published subgroup incidences the fit uses (:func:`subgroup_targets`; None for
    ``data.subgroups = "none"``)."""
    return None if config.data.subgroups == "none" else subgroup_targets()


def _management_rows(config: FitConfig) -> pd.DataFrame | None:
    """Published management outcomes the fit uses (:func:`management_targets`; None for
    ``data.management = "none"``)."""
    return None if config.data.management == "none" else management_targets()


def _prepare(config: FitConfig, progress: bool, echo) -> _Fit:
    m = config.model
    design = build_design(_training_rows(config), patients=m.patients, seed=config.seed,
                          max_days=m.days, steps_per_day=m.steps_per_day, refine=m.refine,
                          tumour=m.tumour, models=dict(m.pk_models) or None,
                          onset=_onset_rows(config), subgroups=_subgroup_rows(config),
                          management=_management_rows(config),
                          managed_arms=m.arms == "managed")
    spec = fit_spec(config)
    onset = "" if design.onset is None else \
        f", {len(design.onset.rows.row_id)} published median onsets"
    if design.subgroups is not None:
        onset += f", {len(design.subgroups.rows.row_id)} subgroup incidences"
    if design.management is not None and design.management.rows.row_id:
        onset += f", {len(design.management.rows.row_id)} management outcomes"
    if design.management is not None and design.management.arm_unit is not None:
        onset += ", arms under the default management policy"
    echo(f"data: {len(design.obs.n)} arm-level rows of {len(design.trials)} studies"
         f"{onset}, {len(design.units)} simulated arms ({len(set(design.regimens))} regimens); "
         f"{spec.size} fitted parameters")
    # Partials, not closures: the jitted stages take them as arguments, so the design's arrays
    # are inputs of the compiled programs rather than constants folded into them
    both = features_loglik_and_means(spec, design)
    return _Fit(config, spec, design, jax.random.key(config.seed),
                jax.tree_util.Partial(log_density_of, spec, design),
                jax.tree_util.Partial(log_max_injury_of, spec, design),
                features_loglik(spec, design), both,
                jax.jit(jax.vmap(lambda u, f: both(u, f).at[0].add(spec.log_prior(u)))),
                progress, echo)


EXACT_BATCH = 16
"""Draws per compiled call of the exact ODE features (:func:`evaluate`)."""

POSTERIOR_BATCH = 50
"""Draws per compiled call of the exact log posterior and the rows' means."""


def _compile_ahead(fit: _Fit) -> threading.Thread:
    """Compile the programs of the exact solves at the draws (ODE features; for Laplace draws
    also the log posterior and the rows' means) on a background thread, started with the MAP:
    XLA compiles a program on one core, so while the MAP compiles its gradient (about 26 s
    from an empty cache) the other core would idle. The stages later call the same jitted
    functions with arguments of the same kind and find them compiled. Join it before them."""
    c, n = fit.config.nuts, fit.spec.size
    if c.method == "laplace":
        draws = min(c.draws, MAX_STORED_DRAWS)
    else:  # the stored draws: every chain thinned by the same step
        draws = c.chains * len(range(0, c.draws, _thin_step_of(c.chains, c.draws)))

    def compile_all():
        try:
            points = np.zeros((min(EXACT_BATCH, draws), n))
            exact_features_program(fit.features, points).compile()
            if c.method == "laplace":
                rows = min(POSTERIOR_BATCH, draws)
                feats = jax.eval_shape(fit.features, jnp.zeros(n)).shape
                fit.posterior_and_means.lower(np.zeros((rows, n)),
                                              np.zeros((rows, *feats))).compile()
        except Exception:
            pass  # only a head start: the stage compiles (and reports any error) itself

    thread = threading.Thread(target=compile_all, name="pdmodel-compile-ahead", daemon=True)
    thread.start()
    return thread


# --------------------------------------------------------------------------- stages


class _MapStage(NamedTuple):
    u: Float[Array, " param"]  # best unconstrained vector
    starts_log_density: Float[np.ndarray, " start"]
    grad_norm: Float[np.ndarray, " start"]
    seconds: float


def _map_stage(fit: _Fit) -> Stage:
    c = fit.config.map

    def compute():
        bar = tqdm(total=c.starts, desc="MAP starts", disable=not fit.progress)
        res = map_fit(fit.ld, fit.spec.prior_location(), jax.random.fold_in(fit.key, 1),
                      scale=fit.spec.prior_scale(), starts=c.starts, adam_steps=c.adam_steps,
                      adam_lr=c.adam_lr, lbfgs_steps=c.lbfgs_steps,
                      progress=lambda done, total: bar.update(1))
        bar.close()
        return res

    return Stage(
        "map", compute,
        to_arrays=lambda r: {"u": r.u, "starts_u": r.starts_u,
                             "starts_log_density": r.starts_log_density,
                             "grad_norm": r.grad_norm},
        from_arrays=lambda a, meta: _MapStage(jnp.asarray(a["u"]), a["starts_log_density"],
                                              a["grad_norm"], float(meta["seconds"])),
        meta=elapsed_meta)


def _laplace_stage(fit: _Fit, u_map: Float[Array, " param"]) -> Stage:
    return Stage(
        "laplace", lambda: laplace_scale(fit.ld, u_map),
        to_arrays=lambda lap: {"sd": lap.sd, "cov": lap.cov, "nonconcave": lap.nonconcave,
                               "remeasured": lap.remeasured},
        from_arrays=lambda a, meta: Laplace(a["sd"], a["cov"], int(a["nonconcave"]),
                                            int(a["remeasured"]) if "remeasured" in a else 0))


def _emulator_key(key):
    return jax.random.fold_in(key, 3)


def _emulator_stage(fit: _Fit, whitening: Whitening) -> Stage:
    """Exact solves at the emulator's design points (the training itself is deterministic: it
    is redone on resume when a later stage needs the emulator, :func:`_nuts_sample`)."""
    index = ode_parameter_index(fit.spec)

    def compute():
        bar = tqdm(total=fit.config.nuts.design_points + 2 * len(index) + 1,
                   desc="emulator design (exact solves)", disable=not fit.progress)
        des = solve_design(fit.features, whitening, index, _emulator_key(fit.key),
                           design_points=fit.config.nuts.design_points,
                           progress=lambda done, total: bar.update(done - bar.n))
        bar.close()
        return des

    return Stage("emulator", compute, to_arrays=lambda des: des,
                 from_arrays=lambda a, meta: dict(a), meta=elapsed_meta)


_NUTS_ARRAYS = ("u", "log_density", "diverging", "acceptance_rate", "n_steps", "step_size")


def _nuts_stage(fit: _Fit, name: str, whitening: Whitening,
                target: Callable[[], Callable]) -> Stage:
    """NUTS on ``target()`` (a thunk: an emulated target is trained only if this stage runs)."""
    c = fit.config.nuts

    def compute():
        fit.echo(f"NUTS ({c.method} likelihood): {c.chains} chains x ({c.warmup} warm-up + "
                 f"{c.draws} draws)")
        res = run_nuts(target(), whitening, jax.random.fold_in(fit.key, 4), chains=c.chains,
                       warmup=c.warmup, draws=c.draws, target_accept=c.target_accept,
                       max_tree_depth=c.max_tree_depth, progress=fit.progress)
        fit.echo(f"NUTS: {res.seconds:.0f} s, {int(res.diverging.sum())} divergences, mean "
                 f"{res.n_steps.mean():.1f} leapfrog steps per draw")
        return res

    return Stage(
        name, compute, to_arrays=lambda r: {k: getattr(r, k) for k in _NUTS_ARRAYS},
        from_arrays=lambda a, meta: NutsResult(
            **{k: a[k] for k in _NUTS_ARRAYS}, seconds=float(meta["seconds"]),
            chain_method=str(meta["chain_method"])),
        meta=lambda r, seconds: {"seconds": r.seconds, "chain_method": r.chain_method})


def _exact_stage(fit: _Fit, name: str,
                 stored: Float[np.ndarray, "chain stored_draw param"]) -> Stage:
    """Exact ODE features (log max injury) at every stored draw ``[draw, feature]``."""

    def compute():
        flat = np.asarray(stored.reshape(-1, stored.shape[-1]))
        bar = tqdm(total=flat.shape[0], desc="exact model at posterior draws",
                   disable=not fit.progress)
        # draws split across processes (all on one in a single-process run)
        feats = map_rows(lambda rows: evaluate(fit.features, jnp.asarray(rows),
                                               batch_size=EXACT_BATCH,
                                               progress=lambda done: bar.update(done - bar.n)),
                         flat)
        bar.close()
        return feats

    return Stage(name, compute, to_arrays=lambda f: {"features": f},
                 from_arrays=lambda a, meta: a["features"])


# --------------------------------------------------------------------------- sampling


def _thin_step(draws: Float[np.ndarray, "chain draw param"]) -> int:
    """Even thinning that keeps at most ``MAX_STORED_DRAWS`` draws over all chains."""
    return _thin_step_of(*draws.shape[:2])


def _thin_step_of(chains: int, n: int) -> int:
    """:func:`_thin_step` of ``chains`` chains of ``n`` draws."""
    return max(1, math.ceil(chains * n / MAX_STORED_DRAWS))


def _with_exact_features(fit: _Fit, stage, name: str, draws: Float[np.ndarray, "chain draw param"],
                         nuts: NutsResult | None) -> PosteriorSample:
    """``draws`` thinned for storage, with the exact features at the stored ones (stage
    ``name``)."""
    step = _thin_step(draws)
    stored = draws[:, ::step]
    feats = stage(_exact_stage(fit, name, stored))
    return PosteriorSample(draws, stored, step, feats, nuts, None)


def _laplace_sample(fit: _Fit, stage, whitening: Whitening, info: dict) -> PosteriorSample:
    """Draws of the Laplace approximation instead of NUTS (``nuts.method = "laplace"``),
    checked against the exact posterior: importance weights ``log p(u | y) − log q(u)``
    (exact log posterior at the draws over the Laplace density, up to constants) and their
    Pareto k̂ go into ``info`` (k̂ < 0.7: the Laplace draws are a usable stand-in)."""
    n_draws = min(fit.config.nuts.draws, MAX_STORED_DRAWS)
    z = jax.random.normal(jax.random.fold_in(fit.key, 2), (1, n_draws, fit.spec.size))
    draws = np.asarray(whitening.to_u(z))
    fit.echo(f"Laplace approximation: {n_draws} draws (no NUTS)")
    sample = _with_exact_features(fit, stage, "exact", draws, None)
    flat = sample.stored.reshape(-1, fit.spec.size)
    zs = np.asarray(z).reshape(-1, fit.spec.size)[:: sample.step]
    log_post, mus = stage(_exact_posterior_stage(fit, "exact_posterior", flat,
                                                 sample.features))
    log_w = log_post + 0.5 * np.sum(zs**2, axis=1)
    khat, rel_ess = psis_check(log_w)
    info |= {"psis_khat": khat, "psis_relative_ess": rel_ess,
             "importance_log_weight_sd": float(np.std(log_w)),
             "psis_check": "Laplace draws against the exact posterior"}
    fit.echo(f"Laplace check against the exact posterior at {len(flat)} draws: Pareto k "
             f"= {khat:.2f} ({'reliable' if khat < PSIS_KHAT_OK else 'not reliable'})")
    return sample._replace(log_w=log_w, mu=mus)


def _exact_posterior_stage(fit: _Fit, name: str, u: Float[np.ndarray, "draw param"],
                           features: Float[np.ndarray, "draw feature"],
                           batch: int = POSTERIOR_BATCH) -> Stage:
    """Exact log posterior ``[draw]`` at draws ``u`` given their exact ODE features, and the
    training rows' model means ``[draw, row]`` its solve of the managed arms gives (the results
    stage's predictions reuse them), in batches on a thread per core."""

    def compute():
        out = chunk_map(fit.posterior_and_means, u, features, size=batch)
        return out[:, 0], out[:, 1:]

    return Stage(name, compute,
                 to_arrays=lambda r: {"log_posterior": r[0], "mu": r[1]},
                 from_arrays=lambda a, meta: (a["log_posterior"], a["mu"]))


def _train(fit: _Fit, des: dict, whitening: Whitening, extra=None):
    return emulator_from_design(des, fit.loglik, whitening, ode_parameter_index(fit.spec),
                                _emulator_key(fit.key), extra=extra, width=EMULATOR_WIDTH,
                                steps=EMULATOR_STEPS)


def _target(fit: _Fit, emulator: Emulator | None) -> Callable:
    """What NUTS samples: the exact log posterior, or the prior plus the emulated likelihood."""
    if emulator is None:
        return fit.ld

    def target(u):
        return fit.spec.log_prior(u) + fit.loglik(u, emulator(u))

    return target


def _nuts_sample(fit: _Fit, stage, whitening: Whitening, info: dict,
                 timings: dict) -> PosteriorSample:
    """NUTS on the exact or the emulated likelihood; the emulated posterior is checked against
    the exact likelihood and, if unreliable, refined (``nuts.refine_rounds`` times). Adds the
    emulator and PSIS diagnostics to ``info`` and ``nuts_s`` to ``timings``.

    Each round's emulator is trained when a stage first needs it (its NUTS run or its check),
    so a run resumed after both are checkpointed trains none (the check's checkpoint keeps the
    training report)."""
    des, extra, trained = None, [], {}
    emulated = fit.config.nuts.method == "emulator"
    if emulated:
        des = stage(_emulator_stage(fit, whitening))

    def emulator(round_: int) -> tuple[Emulator, EmulatorReport]:
        if round_ not in trained:
            more = None if round_ == 0 else (np.concatenate([u for u, _ in extra]),
                                             np.concatenate([f for _, f in extra]))
            trained[round_] = _train(fit, des, whitening, extra=more)
            report = trained[round_][1]
            if round_ == 0:
                fit.echo(f"emulator: {report.design_points} design points, held-out "
                         f"log-likelihood error {report.loglik_rmse:.2f} nats RMS (linear "
                         f"part alone {report.loglik_rmse_linear:.2f}; spread "
                         f"{report.loglik_sd:.1f})")
            else:
                fit.echo(f"emulator refined with {sum(len(u) for u, _ in extra)} exact solves "
                         f"at posterior draws; NUTS again")
        return trained[round_]

    for round_ in range(1 + (fit.config.nuts.refine_rounds if emulated else 0)):
        suffix = "" if round_ == 0 else f"_refined{round_}"
        nuts = stage(_nuts_stage(fit, "nuts" + suffix, whitening, (
            (lambda r=round_: _target(fit, emulator(r)[0])) if emulated
            else (lambda: _target(fit, None)))))
        timings["nuts_s"] = timings.get("nuts_s", 0.0) + nuts.seconds
        sample = _with_exact_features(fit, stage, "exact" + suffix, nuts.u, nuts)
        if not emulated:
            return sample
        log_w, mus, checked = stage(_check_stage(fit, "check" + suffix,
                                                 lambda r=round_: emulator(r), sample, round_))
        info |= checked
        sample = sample._replace(log_w=log_w, mu=mus)
        if not info["psis_khat"] >= PSIS_KHAT_OK:  # reliable, or too few draws to tell (NaN)
            return sample
        extra.append((sample.stored.reshape(-1, fit.spec.size), sample.features))
    fit.echo("WARNING: the emulated posterior is not a reliable stand-in for the exact one "
             "(Pareto k >= 0.7): raise nuts.design_points or nuts.refine_rounds, or use "
             "nuts.method = \"exact\"")
    return sample


def _check_stage(fit: _Fit, name: str, emulator: Callable[[], tuple[Emulator, EmulatorReport]],
                 sample: PosteriorSample, round_: int) -> Stage:
    """:func:`_check_emulator` of round ``round_``, checkpointed: the log-weights, the rows'
    exact means and the diagnostics for ``info`` (its emulator's training report included)."""
    key = "emulator" if round_ == 0 else "emulator_refined"

    def compute():
        emu, report = emulator()
        log_w, mus, checked = _check_emulator(fit, emu, sample, round_)
        return log_w, mus, checked | {key: report._asdict()}

    return Stage(name, compute, to_arrays=lambda r: {"log_w": r[0], "mu": r[1]},
                 from_arrays=lambda a, meta: (a["log_w"], a["mu"], dict(meta["info"])),
                 meta=lambda r, seconds: {"info": r[2]})


def _check_emulator(fit: _Fit, emulator: Emulator, sample: PosteriorSample,
                    round_: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """PSIS check of the emulated posterior: importance weights exact / emulated likelihood at
    the stored draws; returns their ``log_w``, the rows' exact means ``mu`` and the diagnostics
    for ``info`` (Pareto k̂, relative ESS)."""
    flat = sample.stored.reshape(-1, fit.spec.size)
    exact = np.asarray(jax.jit(jax.vmap(fit.loglik_and_means))(jnp.asarray(flat),
                                                               jnp.asarray(sample.features)))
    exact_ll, mus = exact[:, 0], exact[:, 1:]
    emulated = np.asarray(jax.jit(jax.vmap(
        lambda u, e=emulator: fit.loglik(u, e(u))))(jnp.asarray(flat)))
    log_w = exact_ll - emulated
    khat, rel_ess = psis_check(log_w)
    fit.echo(f"emulator check against the exact likelihood at {len(flat)} draws: Pareto k "
             f"= {khat:.2f} ({'reliable' if khat < PSIS_KHAT_OK else 'not reliable'})")
    return log_w, mus, {"psis_khat": khat, "psis_relative_ess": rel_ess,
                        "importance_log_weight_sd": float(np.std(log_w)),
                        "emulator_refinements": round_}
