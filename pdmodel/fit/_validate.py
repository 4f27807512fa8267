"""Cross-validation by study (``pdmodel validate``): refit without each fold's studies, predict
their arms, and score the predictions against a class-average table (docs/model.md §5.6).

Folds
    The groups (studies by default; ``by``) of the configuration's training rows are split into
    ``folds`` folds of about equal numbers of rows: groups in an order shuffled by the config
    seed, then largest first, each to the fold with the fewest rows so far
    (:func:`group_folds`). ``folds`` of 0, or at least the number of groups, leaves one group
    out at a time.

Refit
    Each fold is fitted by MAP + Laplace (:func:`map_fit`, :func:`laplace_scale`), not NUTS:
    the fold's log posterior is the fit's, with the held-out rows' likelihood terms given
    weight 0 (:func:`masked_log_density`). The design is that of all the configuration's rows,
    so every fold runs the same compiled programs (the weights are a program input) and the
    held-out arms are simulated exactly as the fit simulates training arms. No held-out count
    enters the fold's posterior.

Prediction
    ``draws`` vectors from the fold's Laplace approximation give ``μ`` of every held-out row
    (:func:`predicted_probability`) and ``φ``; ``REPLICATES`` beta-binomial counts per draw
    for the row's ``n`` (:func:`predictive_counts`, a numpy Generator seeded by the config
    seed and the fold) give the predictive interval. The log-loss per patient is
    ``−log mean_d P_d(sequence) / n``, with ``P_d`` the beta-binomial probability of the
    observed sequence of ``y`` events in ``n`` patients (the binomial coefficient left out, as
    in the per-patient Bernoulli log-loss it generalises).

Baseline
    A class-average table from the same fold's training rows only
    (:func:`class_average_table`): the pooled proportion ``(Σy + ½)/(Σn + 1)`` per (drug class,
    organ, grade band, endpoint), falling back to (organ, grade band, endpoint), to (organ,
    grade band), then to all rows, with its own beta-binomial ``φ`` fitted by maximum
    likelihood on the training rows.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from jax.scipy.special import gammaln
from jaxtyping import Array, Float, Int
from scipy import special
from scipy.optimize import minimize_scalar
from tqdm import tqdm

from ..errors import ConfigError, SimulationError
from ..numerics import PROB_FLOOR
from ._config import FitConfig
from ._design import Design, select_rows
from ._emulator import Whitening
from ._figures import _pyplot, png
from ._likelihood import (
    beta_binomial_logpmf,
    predicted_probability,
    predictive_counts,
    total_loglik,
)
from ._map import laplace_scale, map_fit
from ._parameters import FitSpec
from ._pipeline import _prepare, _training_rows
from ._run_folder import RunFolder

__all__ = ["validate", "group_folds", "class_average_table", "class_average_probability",
           "masked_log_density", "BaselineTable", "VALIDATION_BY", "DEFAULT_FOLDS",
           "DEFAULT_DRAWS", "REPLICATES", "ARM_KEY"]

VALIDATION_BY: dict[str, str] = {"study": "study", "agents": "agents_model",
                                 "setting": "setting_model", "tumour": "tumour_model"}
"""``by`` choices and the incidence column that names each row's group."""

DEFAULT_FOLDS = 10
"""Folds of ``pdmodel validate`` (leave-one-group-out when there are fewer groups)."""

DEFAULT_DRAWS = 200
"""Draws of the Laplace approximation per fold."""

REPLICATES = 25
"""Predictive counts per draw and held-out row (interval from ``draws × REPLICATES``)."""

INTERVAL = 0.9
"""Central predictive interval reported."""

DRAW_BATCH = 25
"""Draws evaluated per compiled call (one program for every fold)."""

ARM_KEY = ("study", "agents", "regimen", "n", "setting", "tumour")
"""An arm: rows with the same study, agents, printed regimen, n, setting and tumour (as in
``pdmodel.data.coverage``); its rows are its organ × grade band × endpoint counts."""

BASELINE_LEVELS = ("class×organ×grade×endpoint", "organ×grade×endpoint", "organ×grade", "all")
"""Fallback levels of the class-average table, most specific first."""

_FOLD_STREAM = 1000  # fold k uses key fold_in(key(seed), _FOLD_STREAM + k) and rng (seed, ...)


# --------------------------------------------------------------------------- folds


def group_folds(groups: Sequence[str], folds: int, seed: int) -> tuple[tuple[str, ...], ...]:
    """Split the groups named by ``groups`` (one entry per row) into folds balanced by rows.

    Parameters
    ----------
    groups : sequence of str
        The group of every row (e.g. its study); the number of rows per group is its weight.
    folds : int
        Number of folds; 0, or at least the number of groups, gives one group per fold.
    seed : int
        Seed of the shuffle that breaks ties between groups of equal size.

    Returns
    -------
    tuple of tuple of str
        The groups of each fold (sorted); every group in exactly one fold.

    Examples
    --------
    >>> from pdmodel.fit import group_folds
    >>> group_folds(["a", "a", "a", "b", "b", "c", "d"], 2, seed=0)
    (('a', 'd'), ('b', 'c'))
    """
    counts = pd.Series(list(groups), dtype=object).value_counts()
    names = sorted(counts.index)
    if len(names) < 2:
        raise ConfigError("pdmodel validate", [
            f"cross-validation needs at least 2 groups, got {len(names)} ({', '.join(names)})"])
    if folds < 0 or folds == 1:
        raise ConfigError("pdmodel validate", [
            f"folds must be 0 (leave one group out) or >= 2, got {folds}"])
    k = len(names) if folds == 0 or folds >= len(names) else folds
    rng = np.random.default_rng((seed, _FOLD_STREAM))
    order = [names[i] for i in rng.permutation(len(names))]
    order.sort(key=lambda g: -int(counts[g]))  # stable: ties keep the shuffled order
    load, members = [0] * k, [[] for _ in range(k)]
    for g in order:
        j = min(range(k), key=lambda i: (load[i], i))
        members[j].append(g)
        load[j] += int(counts[g])
    return tuple(tuple(sorted(m)) for m in members)


def _group_of(rows: pd.DataFrame, by: str) -> pd.Series:
    col = VALIDATION_BY[by]
    if col not in rows:
        raise ConfigError("pdmodel validate", [f"by = {by!r} needs the column {col!r}, which "
                                               "the incidence table does not have"])
    text = rows[col].fillna("").astype(str).str.strip()
    if by == "agents":
        text = text.where(text != "", "control")
    return text.where(text != "", "(none)")


# --------------------------------------------------------------------------- baseline


def _band_label(gmin, gmax) -> str:
    """The resolved grade band of a row (3-4 and 3-5 count as 3+, as in the likelihood)."""
    gmin, gmax = int(gmin), int(gmax)
    if (gmin, gmax) == (1, 2):
        return "1-2"
    return {1: "any", 2: "2+"}.get(gmin, "3+")


def _drug_class(rows: pd.DataFrame) -> pd.Series:
    """Drug class of each row's arm: ``arm_class`` (anti-PD-1, anti-PD-L1, anti-CTLA-4,
    combination, control) with its backbone, e.g. ``anti-PD-1 + chemotherapy``,
    ``control + placebo``."""
    cls = rows["arm_class"].fillna("").astype(str)
    bb = rows["backbone"].fillna("").astype(str) if "backbone" in rows else cls.map(lambda _: "")
    bb = bb.where((bb != "") | (cls != "control"), "placebo")
    return cls.where(bb == "", cls + " + " + bb)


def _cell_keys(rows: pd.DataFrame) -> list[pd.Series]:
    """The keys of each fallback level (:data:`BASELINE_LEVELS`) for every row."""
    band = pd.Series([_band_label(a, b) for a, b in zip(rows.grade_min, rows.grade_max,
                                                        strict=True)], index=rows.index)
    cell = rows["organ_model"].astype(str) + "|" + band
    endpoint = "|" + rows["endpoint"].astype(str)
    return [_drug_class(rows) + "|" + cell + endpoint, cell + endpoint, cell,
            pd.Series("all", index=rows.index)]


class BaselineTable(NamedTuple):
    """Class-average table (:func:`class_average_table`)."""

    levels: tuple[dict[str, float], ...]  # per level of BASELINE_LEVELS: key -> proportion
    phi: float  # beta-binomial concentration fitted on the training rows


def _counts(rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    return (rows["events_used"].to_numpy(float), rows["n"].to_numpy(float))


def _sequence_logpmf(y, n, mu, phi):
    """log probability of one sequence of ``y`` events in ``n`` patients under
    ``BetaBinomial(n, μφ, (1 − μ)φ)`` (:func:`beta_binomial_logpmf` without its binomial
    coefficient), as numpy float64."""
    y, n, mu, phi = (jnp.asarray(x, jnp.float64) for x in (y, n, mu, phi))
    log_choose = gammaln(n + 1.0) - gammaln(y + 1.0) - gammaln(n - y + 1.0)
    return np.asarray(beta_binomial_logpmf(y, n, mu, phi) - log_choose)


def class_average_table(train: pd.DataFrame) -> BaselineTable:
    """The class-average table of the training rows ``train`` (bundled incidence format).

    Pooled proportion ``(Σy + ½)/(Σn + 1)`` per (drug class with backbone, organ, grade band,
    endpoint), per (organ, grade band, endpoint), per (organ, grade band) and over all rows
    (:data:`BASELINE_LEVELS`); ``φ`` maximises the beta-binomial likelihood of
    the training rows given their most specific cell's proportion.
    """
    y, n = _counts(train)
    levels = []
    for keys in _cell_keys(train):
        sums = pd.DataFrame({"k": keys.to_numpy(), "y": y, "n": n}).groupby("k").sum()
        levels.append({str(k): float((r.y + 0.5) / (r.n + 1.0)) for k, r in sums.iterrows()})
    table = BaselineTable(tuple(levels), 1.0)
    mu, _ = class_average_probability(table, train)

    def nll(log_phi):
        return -float(np.sum(_sequence_logpmf(y, n, mu, np.exp(log_phi))))

    best = minimize_scalar(nll, bounds=(0.0, np.log(1e5)), method="bounded")
    return table._replace(phi=float(np.exp(best.x)))


def class_average_probability(table: BaselineTable,
                              rows: pd.DataFrame) -> tuple[Float[np.ndarray, " row"],
                                                           Int[np.ndarray, " row"]]:
    """Proportion the table predicts for ``rows``, and the level it came from (index into
    :data:`BASELINE_LEVELS`)."""
    p = np.full(len(rows), np.nan)
    level = np.full(len(rows), -1)
    for i, keys in enumerate(_cell_keys(rows)):
        got = keys.map(table.levels[i]).to_numpy(float)
        new = np.isnan(p) & ~np.isnan(got)
        p[new], level[new] = got[new], i
    return np.clip(p, PROB_FLOOR, 1 - PROB_FLOOR), level


# --------------------------------------------------------------------------- model


def masked_log_density(spec: FitSpec, design: Design, weight: Float[Array, " row"],
                       u: Float[Array, " param"]) -> Float[Array, ""]:
    """Log posterior of ``u`` with row ``r``'s likelihood term weighted by ``weight[r]``.

    :func:`log_density` when every weight is 1; a cross-validation fold gives its held-out
    rows weight 0. ``u`` last, for ``jax.tree_util.Partial(masked_log_density, spec, design,
    weight)``: the weights are then an input of the compiled programs, so every fold of one
    design runs the same programs.
    """
    return spec.log_prior(u) + total_loglik(spec.to_params(u), design, weight)


def _mu_phi_of(spec: FitSpec, design: Design, u: Float[Array, " param"]):
    p = spec.to_params(u)
    return predicted_probability(p, design), p.obs.concentration, p.obs.trial_sd


@eqx.filter_jit
def _mu_phi_batch(us: Float[Array, "draw param"], f):
    """``μ`` of every design row and ``φ`` at each of ``us`` (``f``: a Partial of
    :func:`_mu_phi_of`, so the design is an input)."""
    return jax.vmap(f)(us)


class _FoldResult(NamedTuple):
    """One fold's held-out predictions (the checkpoint's arrays)."""

    rows: Int[np.ndarray, " held"]  # positions in the design's rows
    mean: Float[np.ndarray, " held"]  # mean of μ over the draws
    lower: Float[np.ndarray, " held"]  # predictive interval of the proportion y/n
    upper: Float[np.ndarray, " held"]
    logloss_model: Float[np.ndarray, " held"]  # nats per patient
    baseline: Float[np.ndarray, " held"]  # class-average proportion
    baseline_level: Int[np.ndarray, " held"]
    logloss_baseline: Float[np.ndarray, " held"]
    logloss_binomial: Float[np.ndarray, " held"]  # class average, binomial
    mu: Float[np.ndarray, "draw held"]
    u_map: Float[np.ndarray, " param"]
    log_density: Float[np.ndarray, ""]
    baseline_phi: Float[np.ndarray, ""]
    nonconcave: Int[np.ndarray, ""]
    dropped_draws: Int[np.ndarray, ""] = np.asarray(0)  # draws whose solve was not finite


class _Setup(NamedTuple):
    config: FitConfig
    spec: FitSpec
    design: Design
    rows: pd.DataFrame  # the design's rows, in its order
    groups: pd.Series  # group of every row
    key: jax.Array
    draws: int
    interval: float


def _fold(s: _Setup, k: int, held_groups: tuple[str, ...], stage: Callable[[str], None]
          ) -> tuple[_FoldResult, dict]:
    """Fit fold ``k`` without ``held_groups`` and predict their rows."""
    c = s.config.map
    held = np.flatnonzero(s.groups.isin(held_groups).to_numpy())
    weight = np.ones(len(s.rows))
    weight[held] = 0.0
    ld = jax.tree_util.Partial(masked_log_density, s.spec, s.design, jnp.asarray(weight))
    key = jax.random.fold_in(s.key, _FOLD_STREAM + k)

    t0 = time.perf_counter()
    stage("MAP")
    best = map_fit(ld, s.spec.prior_location(), jax.random.fold_in(key, 1),
                   scale=s.spec.prior_scale(), starts=c.starts, adam_steps=c.adam_steps,
                   adam_lr=c.adam_lr, lbfgs_steps=c.lbfgs_steps)
    t1 = time.perf_counter()
    stage("Laplace")
    lap = laplace_scale(ld, best.u)
    t2 = time.perf_counter()
    stage("predict")
    z = jax.random.normal(jax.random.fold_in(key, 2), (s.draws, s.spec.size))
    us = Whitening.from_laplace(best.u, lap.cov).to_u(z)
    f = jax.tree_util.Partial(_mu_phi_of, s.spec, s.design)
    pad = -s.draws % DRAW_BATCH
    us = jnp.concatenate([us, jnp.broadcast_to(us[-1:], (pad, s.spec.size))])
    parts = [_mu_phi_batch(us[i:i + DRAW_BATCH], f) for i in range(0, len(us), DRAW_BATCH)]
    mu = np.concatenate([np.asarray(m) for m, _, _ in parts])[:s.draws, held]  # [draw, held]
    phi = np.concatenate([np.asarray(p) for _, p, _ in parts])[:s.draws]
    sd = np.concatenate([np.asarray(t) for _, _, t in parts])[:s.draws]
    held_rows = s.rows.iloc[held]
    y, n = _counts(held_rows)
    # a Laplace draw far in a tail can give a solve that is not finite: left out and counted
    ok = np.isfinite(mu).all(axis=1) & np.isfinite(phi) & np.isfinite(sd)
    if ok.sum() < max(2, s.draws // 2):
        raise SimulationError(f"validation fold {k + 1}: {s.draws - int(ok.sum())} of {s.draws} "
                       f"Laplace draws give a non-finite prediction (the fold's MAP or "
                       f"Laplace approximation failed)")
    mu, phi, sd = mu[ok], phi[ok], sd[ok]

    rng = np.random.default_rng((s.config.seed, _FOLD_STREAM + k))
    # a held-out study is a new trial: one effect z per draw and study, shared by its rows
    trial = np.asarray(s.design.obs.trial)[held]
    _, trial = np.unique(trial, return_inverse=True)
    z = rng.normal(size=(s.draws, trial.max() + 1))[ok][:, trial]  # [draw, held]
    m = np.clip(mu, 1e-12, 1 - 1e-12)
    mu = 1.0 / (1.0 + np.exp(-(np.log(m / (1 - m)) + sd[:, None] * z)))
    counts = predictive_counts(rng, np.repeat(mu, REPLICATES, axis=0),
                               np.repeat(phi, REPLICATES), n[None].astype(np.int64))
    tail = (1 - s.interval) / 2
    lower, upper = np.quantile(counts / n[None], [tail, 1 - tail], axis=0)
    seq = _sequence_logpmf(y[None], n[None], mu, phi[:, None])  # [draw, held]
    mix = np.logaddexp.reduce(seq, axis=0) - np.log(len(mu))
    t3 = time.perf_counter()

    train = s.rows.iloc[np.flatnonzero(weight)]
    table = class_average_table(train)
    base, level = class_average_probability(table, held_rows)
    base_seq = _sequence_logpmf(y, n, base, table.phi)
    binom = y * np.log(base) + (n - y) * np.log1p(-base)
    seconds = {"map_s": t1 - t0, "laplace_s": t2 - t1, "predict_s": t3 - t2}
    res = _FoldResult(
        rows=held, mean=mu.mean(0), lower=lower, upper=upper, logloss_model=-mix / n,
        baseline=base, baseline_level=level, logloss_baseline=-base_seq / n,
        logloss_binomial=-binom / n, mu=mu, u_map=np.asarray(best.u),
        log_density=np.asarray(best.log_density), baseline_phi=np.asarray(table.phi),
        nonconcave=np.asarray(lap.nonconcave), dropped_draws=np.asarray(s.draws - ok.sum()))
    return res, seconds


# --------------------------------------------------------------------------- outputs


def _arm_label(r) -> str:
    what = str(r["regimen"]).strip() or str(r["agents"]).strip() or "control"
    return f"{what} (n={int(r['n'])})"


def validation_table(s: _Setup, folds: tuple[tuple[str, ...], ...],
                     results: list[_FoldResult]) -> pd.DataFrame:
    """One line per held-out row (arm × organ × grade band × endpoint), in the design's
    order."""
    parts = []
    for k, res in enumerate(results):
        r = s.rows.iloc[res.rows]
        y, n = _counts(r)
        obs = y / n
        covered = (obs >= res.lower) & (obs <= res.upper)
        parts.append(pd.DataFrame({
            "position": res.rows, "fold": k, "group": s.groups.iloc[res.rows].to_numpy(),
            "study": r["study"].to_numpy(), "arm": [_arm_label(x) for _, x in r.iterrows()],
            "row_id": r["row_id"].to_numpy(), "agents": r["agents"].fillna("").to_numpy(),
            "regimen_model": r.get("regimen_model", r["regimen"]).fillna("").to_numpy(),
            "setting": r["setting"].fillna("").to_numpy(),
            "tumour": r["tumour"].fillna("").to_numpy(),
            "drug_class": _drug_class(r).to_numpy(), "organ": r["organ_model"].to_numpy(),
            "term": r["organ"].to_numpy(),
            "grade": [_band_label(a, b) for a, b in zip(r.grade_min, r.grade_max,
                                                        strict=True)],
            "endpoint": r["endpoint"].to_numpy(), "n": n.astype(int), "events": y.astype(int),
            "observed": obs, "mean": res.mean, "lower": res.lower, "upper": res.upper,
            "covered": covered, "width": res.upper - res.lower,
            "logloss_model": res.logloss_model, "logloss_baseline": res.logloss_baseline,
            "baseline_mean": res.baseline,
            "baseline_level": [BASELINE_LEVELS[i] for i in res.baseline_level],
            "logloss_baseline_binomial": res.logloss_binomial}))
    table = pd.concat(parts).sort_values("position", kind="stable")
    return table.drop(columns="position").reset_index(drop=True)


def arms_table(table: pd.DataFrame) -> pd.DataFrame:
    """One line per held-out arm (:data:`ARM_KEY`): its rows, the share of them inside their
    interval, mean width and mean log-losses per patient."""
    key = ["fold", "study", "arm", "agents", "regimen_model", "setting", "tumour", "n"]
    g = table.groupby(key, sort=False, dropna=False)
    return g.agg(rows=("row_id", "size"), covered=("covered", "mean"),
                 width=("width", "mean"), logloss_model=("logloss_model", "mean"),
                 logloss_baseline=("logloss_baseline", "mean")).reset_index()


def logloss_floor(observed: np.ndarray) -> np.ndarray:
    """Lowest log-loss per patient any predictor can reach on a row (nats): the entropy of
    its observed proportion, shape of ``observed``.

    The observed sequence's probability under any mixture of independent Bernoulli draws
    (every predictor scored here) is at most ``p^y (1-p)^(n-y)`` at ``p = y/n``.
    """
    p = np.asarray(observed, float)
    return -(special.xlogy(p, p) + special.xlogy(1.0 - p, 1.0 - p))


def _scores(table: pd.DataFrame) -> dict:
    """Coverage, width and log-losses (pooled per patient, and averaged over rows), with
    the floor no predictor can pass and the share of the table's excess over it the model
    removes."""
    n = table["n"].to_numpy(float)
    model = float(np.sum(table.logloss_model * n) / n.sum())
    base = float(np.sum(table.logloss_baseline * n) / n.sum())
    binom = float(np.sum(table.logloss_baseline_binomial * n) / n.sum())
    floor = float(np.sum(logloss_floor(table.observed.to_numpy()) * n) / n.sum())
    return {
        "coverage": float(table.covered.mean()), "mean_width": float(table.width.mean()),
        "logloss_model": model, "logloss_baseline": base, "logloss_baseline_binomial": binom,
        "logloss_improvement": 1.0 - model / base,
        "logloss_floor": floor,
        "logloss_improvement_attainable": 1.0 - floor / base,
        "logloss_excess_removed": 1.0 - (model - floor) / (base - floor),
        "logloss_model_row_mean": float(table.logloss_model.mean()),
        "logloss_baseline_row_mean": float(table.logloss_baseline.mean()),
    }


def plot_calibration(table: pd.DataFrame, interval: float) -> bytes:
    """PNG: observed proportion of every held-out row against its predicted mean, with the
    predictive interval (square-root axes)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 6))
    sqrt = (lambda x: np.sqrt(np.clip(x, 0, None)), np.square)
    for covered, color, label in ((True, "C0", "inside"), (False, "C3", "outside")):
        t = table[table.covered == covered]
        ax.vlines(t["mean"], t.lower, t.upper, color=color, alpha=0.35, lw=1)
        ax.scatter(t["mean"], t.observed, s=12, color=color,
                   label=f"{label} the {interval:.0%} interval ({len(t)} rows)")
    ax.plot([0, 1], [0, 1], color="k", lw=0.8)
    ax.set_xscale("function", functions=sqrt)
    ax.set_yscale("function", functions=sqrt)
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="predicted mean proportion (held out)",
           ylabel="observed proportion",
           title="cross-validation by study: observed vs predicted (MAP + Laplace)")
    ax.title.set_fontsize(9)
    ax.legend(fontsize=7, loc="upper left")
    return png(fig)


def summary_line(summary: dict) -> str:
    """The one-line summary ``pdmodel validate`` prints."""
    s = summary
    return (f"validation ({s['folds']} folds by {s['by']}, {s['rows']} held-out rows, "
            f"{s['arms']} arms; MAP + Laplace): {s['interval']:.0%} interval coverage "
            f"{s['coverage']:.2f}, mean width {s['mean_width']:.3f}, log-loss "
            f"{s['logloss_model']:.4f} vs class average {s['logloss_baseline']:.4f} nats per "
            f"patient ({100 * s['logloss_improvement']:.1f}% lower; no predictor can be more "
            f"than {100 * s['logloss_improvement_attainable']:.1f}% lower: floor "
            f"{s['logloss_floor']:.4f})")


# --------------------------------------------------------------------------- pipeline


_ARRAYS = _FoldResult._fields


def _settings(by: str, n_folds: int, draws: int, interval: float) -> dict:
    return {"by": by, "folds": n_folds, "draws": draws, "replicates": REPLICATES,
            "interval": interval}


def validation_folder(config: FitConfig) -> Path:
    """Default output folder: ``<output.folder>/validation``."""
    return Path(config.output.folder) / "validation"


def validate(config: FitConfig, *, by: str = "study", folds: int = DEFAULT_FOLDS,
             draws: int = DEFAULT_DRAWS, folder: str | Path | None = None,
             resume: bool = False, progress: bool = True, echo=print) -> Path:
    """Cross-validate the fit of ``config`` by study; returns the ``results`` folder.

    Each fold's groups are held out, the rest fitted by MAP + Laplace (not NUTS), and the
    held-out rows predicted (module docstring; docs/model.md §5.6). Writes, in the run folder
    ``folder`` (default ``<output.folder>/validation``), ``checkpoints/`` (one per finished
    fold: ``resume=True`` skips them) and ``results/``: ``validation.csv`` (one line per
    held-out row), ``arms.csv`` (per held-out arm), ``summary.json`` and ``calibration.png``.

    Parameters
    ----------
    config : FitConfig
        The fit whose rows, model, priors, population and MAP settings are validated.
    by : str
        Grouping held out together: ``"study"`` (default), ``"agents"``, ``"setting"`` or
        ``"tumour"`` (:data:`VALIDATION_BY`).
    folds : int
        Number of folds (0 or at least the number of groups: leave one group out).
    draws : int
        Laplace draws per fold.
    folder : path, optional
        Run folder of the validation.
    resume : bool
        Continue an interrupted validation from its fold checkpoints.
    progress : bool
        Progress bar (on a terminal).
    echo : callable
        Where log lines go.

    Returns
    -------
    Path
        The ``results`` folder.

    Raises
    ------
    ConfigError
        Bad ``by``, ``folds`` or ``draws``, or fewer than two groups.
    RunFolderError
        The folder is locked or holds another configuration's run (without ``resume``).

    Examples
    --------
    A whole validation refits every fold (minutes to hours), so it is not run here:
    ``pdm.validate(load_config("fits/default.toml"), by="study", folds=10)``, or
    ``pdmodel validate fits/default.toml --folds 10``. The folds are those of
    :func:`group_folds` on the rows' groups (here studies, weighted by their rows):

    >>> from pdmodel.fit import group_folds
    >>> studies = ["CheckMate 067"] * 3 + ["KEYNOTE-002"] * 2 + ["CA184-024"]
    >>> group_folds(studies, 2, seed=0)
    (('CheckMate 067',), ('CA184-024', 'KEYNOTE-002'))
    >>> group_folds(studies, 0, seed=0)  # 0: leave one study out
    (('CheckMate 067',), ('KEYNOTE-002',), ('CA184-024',))

    The options are checked before any data are read or fitted:

    >>> import pdmodel as pdm
    >>> from pdmodel.fit import FitConfig
    >>> try:
    ...     pdm.validate(FitConfig(), by="country")
    ... except pdm.PdmodelError as err:  # a ConfigError
    ...     print(err)
    pdmodel validate: by must be one of 'study', 'agents', 'setting', 'tumour', got 'country'
    """
    problems = []
    if by not in VALIDATION_BY:
        problems.append(f"by must be one of {', '.join(map(repr, VALIDATION_BY))}, got {by!r}")
    if not isinstance(draws, int) or draws < 2:
        problems.append(f"draws must be an integer >= 2, got {draws!r}")
    if not isinstance(folds, int) or isinstance(folds, bool):
        problems.append(f"folds must be an integer, got {folds!r}")
    if problems:
        raise ConfigError("pdmodel validate", problems)
    jax.config.update("jax_enable_x64", True)
    t_start = time.perf_counter()
    selected = select_rows(_training_rows(config)).drop_duplicates("row_id")
    split = group_folds(_group_of(selected, by).tolist(), folds, config.seed)  # checks first
    fit = _prepare(config, progress, echo)
    rows = selected.set_index("row_id", drop=False).loc[list(fit.design.obs.row_id)]
    rows = rows.reset_index(drop=True)
    groups = _group_of(rows, by)
    s = _Setup(config, fit.spec, fit.design, rows, groups, jax.random.key(config.seed), draws,
               INTERVAL)
    settings = _settings(by, len(split), draws, INTERVAL)
    echo(f"validation: {len(split)} folds by {by} ({groups.nunique()} groups), MAP + Laplace "
         f"per fold, {draws} draws")
    path = Path(folder) if folder is not None else validation_folder(config)
    with RunFolder.open(path, config, resume=resume, seed=config.seed) as run:
        results, seconds, reused = [], [], 0
        bar = tqdm(total=len(split), desc="validation folds", disable=None if progress else True)
        for k, held in enumerate(split):
            name = f"fold_{by}_{len(split)}_{k:03d}"
            saved = run.load_checkpoint(name) if resume else None
            if saved is not None and (saved[1].get("settings") != settings
                                      or saved[1].get("groups") != list(held)):
                saved = None
            if saved is None:
                res, secs = _fold(s, k, held, lambda what, k=k: bar.set_postfix_str(
                    f"fold {k + 1}: {what}"))
                run.save_checkpoint(name, res._asdict(), {"settings": settings,
                                                          "groups": list(held),
                                                          "seconds": secs})
            else:
                res = _FoldResult(**{f: saved[0][f] for f in _ARRAYS if f in saved[0]})
                secs, reused = saved[1]["seconds"], reused + 1
            results.append(res)
            seconds.append(secs)
            bar.update(1)
        bar.close()
        table = validation_table(s, split, results)
        arms = arms_table(table)
        summary = {
            "method": "MAP + Laplace per fold (not NUTS)", **settings, "groups": len(set(groups)),
            "rows": len(table), "arms": len(arms), **_scores(table),
            "arm_coverage": float(arms.covered.mean()),
            "baseline": "class-average table of the fold's training rows: (Σy + 1/2)/(Σn + 1) "
                        "per drug class × organ × grade band × endpoint, else organ × grade "
                        "band × endpoint, else organ × grade band, else all; beta-binomial "
                        "with its own φ fitted on the training rows",
            "fold_groups": [list(h) for h in split],
            "fold_rows": [len(r.rows) for r in results],
            "fold_dropped_draws": [int(r.dropped_draws) for r in results],
            "fold_seconds": seconds, "folds_reused": reused,
            "map_settings": {"starts": config.map.starts, "adam_steps": config.map.adam_steps,
                             "lbfgs_steps": config.map.lbfgs_steps},
            "parameters": fit.spec.size, "patients": config.model.patients,
            "total_seconds": time.perf_counter() - t_start,
        }
        files = {"validation.csv": table.to_csv(index=False),
                 "arms.csv": arms.to_csv(index=False),
                 "summary.json": json.dumps(summary, indent=2) + "\n",
                 "calibration.png": plot_calibration(table, INTERVAL)}
        out = run.publish(files)
    echo(summary_line(summary))
    return out
