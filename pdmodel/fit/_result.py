"""Load a fit's run folder and predict calibrated incidence curves from it.

``load_fit(path)`` checks the published results of a run folder written by ``pdmodel fit`` (or
the committed ``fits/reference``) against their manifest, then reads ``config.toml`` and
``results/posterior.nc``; :meth:`Fit.incidence` simulates a regimen for posterior draws
(pdmodel.fit._predict) and returns the posterior mean curve, the credible band of the
population incidence and the interval of the incidence *proportion a trial arm of typical
size would report* (beta-binomial posterior predictive, so between-trial heterogeneity and
binomial noise are included).
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import jax
import lazy_loader as _lazy
import numpy as np
from jaxtyping import Float, Int
from tqdm import tqdm

from ..errors import FitLoadError
from ..io import atomic_write_bytes
from ..regimen import Regimen
from ..vocab import GRADES, ORGAN_CHOICES, check_choices
from ._config import FitConfig, fit_spec, load_config
from ._parameters import FitSpec
from ._posterior import unconstrained_draws
from ._predict import (
    AGENT_SLOTS,
    TYPICAL_ARM_SIZE,
    bands,
    curves,
    interpolate_days,
    observation_draws,
    population,
)
from ._run_folder import verify_results

xr = _lazy.load("xarray")  # imported when a posterior is read or a Dataset built: fast start

MAX_ARM_SIZE = 100_000
"""Largest trial arm a predictive interval is computed for."""

PREDICT_DRAWS = 100
"""Posterior draws (evenly thinned) behind a prediction by default; benchmarks/predict.py
gives the Monte Carlo error against all stored draws."""


@dataclass(frozen=True)
class IncidenceCurve:
    """A calibrated incidence curve as numpy arrays (:meth:`Fit.curve`).

    ``day`` days from the first dose ``[day]``; ``bands`` fractions 0-1 ``[day]``: ``mean``
    (posterior mean), ``ci_lower``/``ci_upper`` (credible band of the population incidence),
    ``lower``/``median``/``upper`` (predictive quantiles of the proportion a trial arm
    reports); ``attrs`` what the curve is (regimen, organ, grade, endpoint, interval,
    arm_size, fit, method, draws, patients, policy, mc_se_mean).
    """

    day: Float[np.ndarray, " day"]
    bands: dict[str, Float[np.ndarray, " day"]]
    attrs: dict

    def to_dataset(self) -> xr.Dataset:
        """The curve as the xarray Dataset :meth:`Fit.incidence` returns."""
        return xr.Dataset({k: ("day", v) for k, v in self.bands.items()},
                          coords={"day": self.day}, attrs=dict(self.attrs))


@dataclass(frozen=True)
class Fit:
    """A calibrated fit: its config, parameterisation and posterior draws (unconstrained).

    Returned by :func:`load_fit`; :meth:`incidence` turns it into calibrated curves.

    Attributes
    ----------
    path : pathlib.Path
        The run folder.
    config : FitConfig
        The resolved fit configuration (``config.toml``).
    spec : FitSpec
        Fitted parameters, priors and the unconstrained layout of ``draws``.
    draws : numpy.ndarray [draw, parameter]
        Posterior draws of the unconstrained vector (``spec.to_params`` maps one to
        :class:`Params`).
    method : str
        How the draws were made (e.g. ``"laplace"``).

    Examples
    --------
    >>> import dataclasses
    >>> import pathlib
    >>> import pdmodel as pdm
    >>> reference = pathlib.Path(pdm.__file__).parents[1] / "fits" / "reference"
    >>> fit = pdm.load_fit(reference)
    >>> few = dataclasses.replace(fit, draws=fit.draws[:3])  # 3 draws: a quick look
    >>> cur = few.incidence("nivolumab 240 mg q2w", days=28, organ="any", grade="any",
    ...                     patients=4)
    >>> list(cur.data_vars), cur.sizes["day"]
    (['mean', 'median', 'lower', 'upper', 'ci_lower', 'ci_upper'], 28)
    """

    path: Path
    config: FitConfig
    spec: FitSpec
    draws: Float[np.ndarray, "draw param"]
    method: str
    _memo: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def datatree(self) -> xr.DataTree:
        """The fit's arviz ``DataTree``, loaded in memory.

        Returns
        -------
        xarray.DataTree
            Groups ``posterior`` (natural scale, one variable per fitted field),
            ``log_likelihood`` and ``posterior_predictive`` (``y`` by training ``row``, exact
            model), ``observed_data``, ``constant_data`` (arm sizes ``n``) and, for NUTS,
            ``sample_stats``; ready for ``arviz.summary``, ``arviz.loo``,
            ``arviz.plot_ppc_dist``.

        Examples
        --------
        >>> import pathlib
        >>> import pdmodel as pdm
        >>> fit = pdm.load_fit(pathlib.Path(pdm.__file__).parents[1] / "fits" / "reference")
        >>> sorted(fit.datatree().children)[:3]
        ['constant_data', 'log_likelihood', 'observed_data']
        """
        with xr.open_datatree(self.path / "results" / "posterior.nc", engine="h5netcdf") as t:
            return t.load()

    def incidence(self, regimen: Regimen | str, *args, **kwargs) -> xr.Dataset:
        """:meth:`curve` (same arguments) as an xarray Dataset: variables ``mean``, ``median``,
        ``lower``, ``upper``, ``ci_lower``, ``ci_upper`` by ``day``, the curve's description in
        ``attrs``."""
        return self.curve(regimen, *args, **kwargs).to_dataset()

    def curve(
        self,
        regimen: Regimen | str,
        days: int = 365,
        organ: str = "any",
        grade: str = "any",
        covariates: dict | None = None,
        *,
        endpoint: str = "immune_related",
        interval: float = 0.9,
        arm_size: int = TYPICAL_ARM_SIZE,
        patients: int | None = None,
        seed: int = 0,
        policy: str = "natural",
        draws: int | None = PREDICT_DRAWS,
        progress: bool = False,
    ) -> IncidenceCurve:
        """Posterior incidence curve of ``organ`` × ``grade`` for ``regimen`` (days 1..days).

        ``covariates`` are keyword arguments of :meth:`Population.sample` (e.g.
        ``{"preexisting_ad": 1.0}``, ``{"tumour": "nsclc"}``, ``{"weight_kg": 60}``,
        ``{"a0_positive_fraction": 1.0}``) plus ``"setting"`` (``metastatic``: stop times as
        in the fit; ``adjuvant``: one year; absent: treatment to the horizon); ``endpoint`` is
        the reporting definition (``ENDPOINTS``); ``policy`` ``natural`` (no rescue) or
        ``default`` (``ManagementPolicy()``). ``draws`` posterior draws, evenly thinned
        (``None``: all), times ``patients`` virtual patients (default: the fit's).

        Returns ``mean`` (posterior mean), ``ci_lower``/``ci_upper`` (central ``interval``
        credible band of the population incidence), ``lower``/``median``/``upper``
        (predictive quantiles of the proportion an arm of ``arm_size`` reports) by ``day``;
        all fractions 0-1, monotone in ``day``. Curves of every organ and grade are kept per
        fit, so asking for another organ or grade recomputes nothing.
        """
        check_choices([organ], [grade])
        if not 0 < interval < 1:
            raise ValueError(f"interval must be in (0, 1), got {interval!r}")
        if not (isinstance(arm_size, int | np.integer) and 1 <= arm_size <= MAX_ARM_SIZE):
            raise ValueError(f"arm_size must be a whole number 1-{MAX_ARM_SIZE}, got "
                             f"{arm_size!r}")
        reg = Regimen.parse(regimen) if isinstance(regimen, str) else regimen
        idx = self._draw_index(draws)
        key = (str(reg), int(days), tuple(sorted((covariates or {}).items())), endpoint,
               policy, patients, seed, len(idx))
        if key not in self._memo:
            for k in [k for k in self._memo if k[0] != "obs"]:
                del self._memo[k]  # one set of curves at a time: memory stays bounded
            self._memo[key] = self._curves(reg, int(days), covariates, endpoint, policy,
                                           patients, seed, idx, progress)
        curves_, phi, sd = self._memo[key]
        oi, gi = ORGAN_CHOICES.index(organ), GRADES.index(grade)
        inc = curves_[:, :, oi, gi]  # at band_knots; the guideline policy daily
        if inc.shape[1] != int(days):
            inc = interpolate_days(inc, int(days))
        b = bands(inc, phi, interval=interval, arm_size=int(arm_size), trial_sd=sd)
        return IncidenceCurve(
            day=np.arange(1, int(days) + 1, dtype=float),
            bands={k: b[k] for k in ("mean", "median", "lower", "upper", "ci_lower", "ci_upper")},
            attrs={"regimen": str(reg), "organ": organ, "grade": grade, "endpoint": endpoint,
                   "interval": interval, "arm_size": int(arm_size), "fit": str(self.path),
                   "method": self.method, "draws": len(idx),
                   "patients": int(patients or self.config.model.patients), "policy": policy,
                   "mc_se_mean": float(np.max(inc.std(0)) / np.sqrt(len(idx)))},
        )

    def _draw_index(self, draws: int | None) -> Int[np.ndarray, " draw"]:
        n = self.draws.shape[0]
        if draws is None or draws >= n:
            return np.arange(n)
        if not (isinstance(draws, int | np.integer) and draws >= 1):
            raise ValueError(f"draws must be a positive whole number or None, got {draws!r}")
        return np.linspace(0, n - 1, int(draws)).round().astype(int)

    def _curves(self, reg: Regimen, days: int, covariates: dict | None, endpoint: str,
                policy: str, patients: int | None, seed: int, idx, progress: bool):
        m = self.config.model
        cov = {"tumour": m.tumour} | dict(covariates or {})
        pop = population(jax.random.key(seed), patients or m.patients,
                         max_agents=max(AGENT_SLOTS, len(reg.agents)), **cov)
        u = self.draws[idx]
        bar = tqdm(total=len(idx), desc="posterior draws", unit="draw", leave=False,
                   disable=not progress)
        inc = curves(self.spec, u, reg, pop, days=days, steps_per_day=m.steps_per_day,
                     refine=m.refine, models=dict(m.pk_models) or None, endpoint=endpoint,
                     policy=policy, at_knots=policy != "guideline",
                     progress=lambda done: bar.update(done - bar.n))
        bar.close()
        if ("obs", len(idx)) not in self._memo:  # the same for every regimen and covariate
            self._memo[("obs", len(idx))] = observation_draws(self.spec, u)
        return (inc, *self._memo[("obs", len(idx))])


def load_fit(path: str | Path) -> Fit:
    """Load the fit in run folder ``path`` (``config.toml`` + ``results/posterior.nc``),
    after checking its published results against their manifest.

    ``results/MANIFEST.json`` (written when the results were published) lists the SHA-256
    and size of every result file and of ``config.toml``; before anything is read, every
    listed file must be there with its hash, no unlisted file may be in ``results/`` (hidden
    files aside) and ``config.toml`` must be the one the results were published with
    (:func:`pdmodel.fit._run_folder.verify_results`, about 20 ms for the reference fit).
    Results without a manifest in a real ``results/`` folder, published before pdmodel wrote
    manifests, are loaded with a ``UserWarning``.

    Parameters
    ----------
    path : str or pathlib.Path
        A run folder written by ``pdmodel fit``, or the committed ``fits/reference``.

    Returns
    -------
    Fit
        The configuration, parameterisation and posterior draws.

    Raises
    ------
    ResultsIntegrityError
        A result file changed, truncated, missing or added after publishing, ``config.toml``
        edited, the manifest missing or corrupt, ``results`` a broken link; the message names
        the file and says how to restore the results. A :class:`FitLoadError`.
    FitLoadError
        Not a fit (``config.toml`` or ``results/`` missing), an unreadable posterior, draws
        for other parameters than this pdmodel fits, or non-finite draws.

    Examples
    --------
    >>> import pathlib
    >>> import pdmodel as pdm
    >>> reference = pathlib.Path(pdm.__file__).parents[1] / "fits" / "reference"
    >>> fit = pdm.load_fit(reference)
    >>> fit.method, fit.draws.shape[1] == fit.spec.size
    ('laplace', True)
    """
    path = Path(path)
    cfg_path = path / "config.toml"
    if not cfg_path.is_file():
        raise FitLoadError(f"{path} is not a fit: config.toml missing ({cfg_path}); run "
                           "'pdmodel fit' or use fits/reference")
    published = verify_results(path)
    post_path = published.folder / "posterior.nc"
    if not post_path.is_file():
        raise FitLoadError(f"{path} is not a fit: posterior.nc missing "
                           f"({path / 'results' / 'posterior.nc'}); run 'pdmodel fit' or use "
                           "fits/reference")
    config = load_config(cfg_path)
    spec = fit_spec(config)
    method = config.nuts.method if config.nuts.method == "laplace" else "nuts"
    listed = published.manifest.files.get("posterior.nc") if published.manifest else None
    cache = _draws_cache(post_path, spec, listed.sha256 if listed else None)
    cached = _cached_draws(cache)
    if cached is not None:
        return Fit(path=path, config=config, spec=spec, draws=cached, method=method)
    try:
        tree = xr.open_datatree(post_path, engine="h5netcdf")
        posterior = tree["posterior"].to_dataset().load()
        names = json.loads(tree.attrs.get("pdmodel_parameters", "null"))
        tree.close()
    except Exception as err:  # noqa: BLE001 - any read failure is a corrupt file
        raise FitLoadError(f"cannot read {post_path} as a pdmodel posterior (arviz DataTree "
                           f"with a posterior group): {err}") from err
    if names != list(spec.names):
        raise FitLoadError(f"{post_path} was written for other parameters than this pdmodel "
                           f"fits ({len(names or [])} vs {spec.size}); refit with "
                           "'pdmodel fit'")
    try:
        u = unconstrained_draws(spec, posterior)
    except KeyError as err:
        raise FitLoadError(f"{post_path}: {err.args[0]}; refit with 'pdmodel fit'") from err
    draws = u.reshape(-1, u.shape[-1])
    if not np.all(np.isfinite(draws)):
        raise FitLoadError(f"{post_path} holds non-finite draws")
    _cache_draws(cache, draws)
    return Fit(path=path, config=config, spec=spec, draws=draws, method=method)


def _draws_cache(post_path: Path, spec: FitSpec, sha256: str | None) -> Path | None:
    """Where the stacked draws of ``post_path`` are kept, or ``None``: next to JAX's
    persistent compilation cache, when one is configured (never in the run folder), keyed by
    the file's SHA-256 from the manifest (else its path, size and time) and the parameter
    names."""
    cache = jax.config.jax_compilation_cache_dir
    if not cache:
        return None
    if sha256 is None:
        st = post_path.stat()
        source = (str(post_path.resolve()), st.st_size, st.st_mtime_ns)
    else:
        source = sha256
    key = hashlib.sha256(repr((source, spec.names)).encode()).hexdigest()[:24]
    return Path(cache) / "pdmodel-draws" / f"{key}.npy"


def _cached_draws(f: Path | None) -> Float[np.ndarray, "draw param"] | None:
    try:
        return None if f is None or not f.is_file() else np.load(f)
    except (OSError, ValueError):
        return None


def _cache_draws(f: Path | None, draws) -> None:
    if f is None:
        return
    try:
        f.parent.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        np.save(buf, draws)
        atomic_write_bytes(f, buf.getvalue())
    except OSError:
        pass  # read-only cache: read the netCDF next time
