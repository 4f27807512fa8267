"""``pdmodel predict``: calibrated incidence curves for one or more regimens from a fit."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from ..errors import EXIT_RUNTIME
from ._app import Format, app, fail
from ._jax_setup import setup_jax

KEYS = ("mean", "lower", "upper", "ci_lower", "ci_upper")
"""Curves written by ``predict`` (``mean``, ``lower``, ``upper`` first: the stable contract)."""


class Policy(StrEnum):
    """Immunosuppressant rescue (``pdmodel.fit._predict.POLICIES``): none (natural course),
    the default policy as the fit's trials were managed, or the full per-patient guideline
    policy (a what-if)."""

    natural = "natural"
    default = "default"
    guideline = "guideline"


@app.command()
def predict(
    regimen: Annotated[list[str], typer.Option(
        help='Regimen text, e.g. "nivolumab 240 mg q2w"; repeat for several.')],
    fit: Annotated[Path, typer.Option("--fit", help="Fit run folder.")] = Path("fits/reference"),
    weeks: Annotated[float, typer.Option(help="Weeks from the first dose.")] = 52.0,
    organ: Annotated[str, typer.Option(help="any, skin, gi, liver, lung, thyroid, pituitary")]
    = "any",
    grade: Annotated[str, typer.Option(help="any, 2+ or 3+")] = "any",
    endpoint: Annotated[str, typer.Option(help="Reporting definition: immune_related, "
                                          "treatment_related, immune_mediated, select, "
                                          "all_cause.")] = "immune_related",
    weight: Annotated[float, typer.Option(help="Median body weight of the arm, kg.")] = 80.0,
    setting: Annotated[str | None, typer.Option(
        help="metastatic (treatment stops as in the fit, median 125 days) or adjuvant "
             "(early-disease level, one year of treatment); default: treatment to the end.")]
    = None,
    tumour: Annotated[str | None, typer.Option(
        help="melanoma, nsclc, rcc or other (default: the fit's).")] = None,
    preexisting_ad: Annotated[float, typer.Option(
        "--preexisting-ad", help="Fraction of patients with pre-existing autoimmune disease "
                                 "(0-1; 1 = a patient who has it).")] = 0.0,
    antibody_positive: Annotated[float | None, typer.Option(
        "--antibody-positive", help="Fraction of patients with anti-thyroid antibodies before "
        "treatment (0-1; 1 = a positive patient, 0 = a negative one; default: 0.21, as in "
        "trial populations, Okada 2020).")] = None,
    policy: Annotated[Policy, typer.Option(help=(
        "natural (no rescue: the counterfactual course), default (steroids from grade 2 as "
        "the fit's trials managed their patients; treatment durations as given) or guideline "
        "(the full per-patient policy: also holds infusions at grade 2, stops them at grade "
        ">= 3, infliximab acts; a what-if, not what the fit was calibrated under)."))
    ] = Policy.natural,
    arm_size: Annotated[int, typer.Option(
        "--arm-size", help="Patients in the trial arm of the predictive interval.")] = 300,
    draws: Annotated[int, typer.Option(help="Posterior draws (evenly thinned).")] = 100,
    plot: Annotated[Path | None, typer.Option(help="Also draw the curves and bands to this "
                                              "PNG file.")] = None,
    no_progress: Annotated[bool, typer.Option("--no-progress", help="No progress bar.")]
    = False,
    format: Annotated[Format, typer.Option("--format", help="Output format.")] = Format.csv,
    no_server: Annotated[bool, typer.Option(
        "--no-server", help="Compute in this process even when `pdmodel serve` runs.")]
    = False,
) -> None:
    """Calibrated cumulative incidence of an irAE for each regimen: posterior mean, 90%
    credible band of the population incidence (ci_lower, ci_upper) and 90% interval of the
    proportion a trial arm of --arm-size patients would report (lower, upper)."""
    from ._options import PredictOptions, checked

    opts = checked(PredictOptions, weeks=weeks, weight=weight, setting=setting, tumour=tumour,
                   preexisting_ad=preexisting_ad, antibody_positive=antibody_positive,
                   arm_size=arm_size, draws=draws, plot=plot)
    covariates = {"weight_kg": opts.weight, "preexisting_ad": opts.preexisting_ad,
                  "setting": opts.setting}
    if opts.antibody_positive is not None:  # else the population's default prevalence
        covariates["a0_positive_fraction"] = opts.antibody_positive
    covariates |= {"tumour": opts.tumour} if opts.tumour else {}
    setup_jax()
    progress = not no_progress and sys.stderr.isatty()
    result = loaded_fit(fit)
    curves = [result.curve(r, days=opts.days, organ=organ, grade=grade,
                               covariates=covariates, endpoint=endpoint, policy=policy.value,
                               arm_size=opts.arm_size, draws=opts.draws, progress=progress)
              for r in regimen]
    if plot is not None:
        from ..fit import plot_bands

        try:
            plot.write_bytes(plot_bands([c.to_dataset() for c in curves]))
        except OSError as err:
            fail(f"--plot: cannot write {plot}: {err}", code=EXIT_RUNTIME)
    sys.stdout.write((to_json(curves, str(fit)) if format is Format.json
                      else to_csv(curves)) + "\n")


_FITS: dict[Path, tuple[tuple, object]] = {}
"""Fits this process has loaded, with the stamp of their files (a long-lived process,
``pdmodel serve``, reuses them and the programs and draws they keep)."""


def loaded_fit(path: Path):
    """The :class:`pdmodel.fit.Fit` in run folder ``path``, loaded once per process while its
    ``config.toml`` and published results stay the same (the version ``results`` points to,
    and the size and modification time of every file in it); any change loads it again, with
    the checks of :func:`pdmodel.fit.load_fit`, as a new process would."""
    from ..fit import load_fit

    folder = Path(path).resolve()
    try:
        results = (folder / "results").resolve()
        files = sorted(p for p in results.rglob("*") if p.is_file())
        stamp = (str(results), (folder / "config.toml").read_bytes(),
                 tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files))
    except OSError:  # not a fit, or a file gone meanwhile: load_fit says what is wrong
        return load_fit(path)
    hit = _FITS.get(folder)
    if hit is not None and hit[0] == stamp:
        return hit[1]
    fit = load_fit(path)
    _FITS[folder] = (stamp, fit)
    return fit


def to_json(curves: list, fit: str) -> str:
    """One regimen: the README's object (``regimen``, ``organ``, ``grade``, ``days``, ``mean``,
    ``lower``, ``upper``, ``interval``, ``fit``, then ``ci_lower``, ``ci_upper``, ``arm_size``,
    ``draws``, ``policy``, ``endpoint``); several: ``{"curves": [object, ...]}``.
    ``curves``: :class:`pdmodel.fit.IncidenceCurve` objects."""
    docs = []
    for c in curves:
        a = c.attrs
        doc = {"regimen": a["regimen"], "organ": a["organ"], "grade": a["grade"],
               "days": [float(d) for d in c.day]}
        doc |= {k: [float(x) for x in c.bands[k]] for k in ("mean", "lower", "upper")}
        doc |= {"interval": float(a["interval"]), "fit": fit}
        doc |= {k: [float(x) for x in c.bands[k]] for k in ("ci_lower", "ci_upper")}
        doc |= {"arm_size": int(a["arm_size"]), "draws": int(a["draws"]),
                "policy": a["policy"], "endpoint": a["endpoint"]}
        docs.append(doc)
    return json.dumps(docs[0] if len(docs) == 1 else {"curves": docs})


def to_csv(curves: list) -> str:
    """``day,mean,lower,upper,ci_lower,ci_upper``; with several regimens a leading
    ``regimen`` column (``curves``: :class:`pdmodel.fit.IncidenceCurve` objects)."""
    many = len(curves) > 1
    lines = [("regimen," if many else "") + "day," + ",".join(KEYS)]
    for c in curves:
        lead = f'"{c.attrs["regimen"]}",' if many else ""
        cols = [c.bands[k] for k in KEYS]
        lines += [lead + f"{d:g}," + ",".join(f"{col[i]:.6g}" for col in cols)
                  for i, d in enumerate(c.day)]
    return "\n".join(lines)
