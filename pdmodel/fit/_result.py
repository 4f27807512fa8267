"""Load a fit's run folder and predict calibrated incidence curves from it.

``load_fit(path)`` reads ``config.toml`` and ``results/posterior.nc`` of a run folder written
by ``pdmodel fit`` (or the committed ``fits/reference``); :meth:`Fit.incidence` simulates a
regimen for every posterior draw and returns the posterior mean curve and the interval of the
incidence *proportion a trial arm of typical size would report* (beta-binomial posterior
predictive, so between-trial heterogeneity and binomial noise are included).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr
from jaxtyping import Float

from ..errors import FitLoadError
from ..irae import IraeProblem, Population
from ..regimen import Regimen
from ..vocab import ENDPOINTS, GRADES, ORGAN_CHOICES, check_choices
from ._config import FitConfig, fit_spec, load_config
from ._likelihood import predictive_counts, reported_incidence
from ._parameters import FitSpec
from ._posterior import unconstrained_draws

TYPICAL_ARM_SIZE = 300
"""Patients in the 'typical trial arm' of predictive intervals (CheckMate 067 arms: 313-315)."""




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
    (['mean', 'median', 'lower', 'upper'], 28)
    """

    path: Path
    config: FitConfig
    spec: FitSpec
    draws: Float[np.ndarray, "draw param"]
    method: str

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

    def incidence(
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
    ) -> xr.Dataset:
        """Posterior incidence curve of ``organ`` × ``grade`` for ``regimen`` (days 1..days).

        ``covariates`` are keyword arguments of :meth:`Population.sample` (e.g.
        ``{"preexisting_ad": 1.0}``, ``{"tumour": "nsclc"}``, ``{"weight_kg": 60}``);
        ``endpoint`` is the reporting definition (``ENDPOINTS``). Returns ``mean``, ``lower``,
        ``upper`` (central ``interval`` of the proportion reported by an arm of ``arm_size``)
        and ``median`` by ``day``.
        """
        check_choices([organ], [grade])
        if endpoint not in ENDPOINTS:
            raise ValueError(f"unknown endpoint {endpoint!r}; expected one of {ENDPOINTS}")
        if not 0 < interval < 1:
            raise ValueError(f"interval must be in (0, 1), got {interval!r}")
        reg = Regimen.parse(regimen) if isinstance(regimen, str) else regimen
        m = self.config.model
        problem = IraeProblem.build(reg, days=int(days), steps_per_day=m.steps_per_day,
                                    refine=m.refine, models=dict(m.pk_models) or None)
        kw = {"tumour": m.tumour} | dict(covariates or {})
        pop = Population.sample(jax.random.key(seed), patients or m.patients,
                                max_agents=len(reg.agents), **kw)
        io, ig = ORGAN_CHOICES.index(organ), GRADES.index(grade)
        spec = self.spec

        def one(u):
            params = spec.to_params(u)
            inc = reported_incidence(params, problem, pop, endpoint)
            return inc[:, io, ig], params.obs.concentration

        mu, phi = jax.lax.map(jax.jit(one), jnp.asarray(self.draws))
        mu = np.asarray(mu)
        reported = predictive_counts(np.random.default_rng(seed), mu, phi, arm_size) / arm_size
        a = (1 - interval) / 2
        lo, med, hi = np.quantile(reported, [a, 0.5, 1 - a], axis=0)
        day = np.arange(1, int(days) + 1, dtype=float)
        return xr.Dataset(
            {"mean": ("day", mu.mean(0)), "median": ("day", med), "lower": ("day", lo),
             "upper": ("day", hi)},
            coords={"day": day},
            attrs={"regimen": str(reg), "organ": organ, "grade": grade, "endpoint": endpoint,
                   "interval": interval, "arm_size": arm_size, "fit": str(self.path),
                   "method": self.method, "draws": int(self.draws.shape[0])},
        )


def load_fit(path: str | Path) -> Fit:
    """Load the fit in run folder ``path`` (``config.toml`` + ``results/posterior.nc``).

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
    FitLoadError
        Missing files, an unreadable posterior, draws for other parameters than this pdmodel
        fits, or non-finite draws.

    Examples
    --------
    >>> import pathlib
    >>> import pdmodel as pdm
    >>> reference = pathlib.Path(pdm.__file__).parents[1] / "fits" / "reference"
    >>> fit = pdm.load_fit(reference)
    >>> fit.method, fit.draws.shape[1] == fit.spec.size
    ('nuts', True)
    """
    path = Path(path)
    cfg_path, post_path = path / "config.toml", path / "results" / "posterior.nc"
    for f in (cfg_path, post_path):
        if not f.is_file():
            raise FitLoadError(f"{path} is not a fit: {f.name} missing ({f}); run "
                               "'pdmodel fit' or use fits/reference")
    config = load_config(cfg_path)
    try:
        tree = xr.open_datatree(post_path, engine="h5netcdf")
        posterior = tree["posterior"].to_dataset().load()
        names = json.loads(tree.attrs.get("pdmodel_parameters", "null"))
        tree.close()
    except Exception as err:  # noqa: BLE001 - any read failure is a corrupt file
        raise FitLoadError(f"cannot read {post_path} as a pdmodel posterior (arviz DataTree "
                           f"with a posterior group): {err}") from err
    spec = fit_spec(config)
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
    method = config.nuts.method if config.nuts.method == "laplace" else "nuts"
    return Fit(path=path, config=config, spec=spec, draws=draws, method=method)
