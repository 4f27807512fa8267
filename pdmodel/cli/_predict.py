"""``pdmodel predict``: calibrated incidence curves for a regimen from a fit."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from ._app import Format, app, fail
from ._jax_setup import setup_jax


@app.command()
def predict(
    regimen: Annotated[str, typer.Option(help='Regimen text, e.g. "nivolumab 240 mg q2w".')],
    fit: Annotated[Path, typer.Option("--fit", help="Fit run folder.")] = Path("fits/reference"),
    weeks: Annotated[float, typer.Option(help="Weeks from the first dose.")] = 52.0,
    organ: Annotated[str, typer.Option(help="any, skin, gi, liver, lung, thyroid, pituitary")]
    = "any",
    grade: Annotated[str, typer.Option(help="any, 2+ or 3+")] = "any",
    endpoint: Annotated[str, typer.Option(help="Reporting definition: immune_related, "
                                          "treatment_related, immune_mediated, select, "
                                          "all_cause.")] = "immune_related",
    weight: Annotated[float, typer.Option(help="Median body weight of the arm, kg.")] = 80.0,
    format: Annotated[Format, typer.Option("--format", help="Output format.")] = Format.csv,
) -> None:
    """Calibrated cumulative incidence of an irAE for a regimen, with the 90% interval of the
    proportion a trial arm of typical size (300 patients) would report."""
    setup_jax()
    import math

    from ..errors import FitLoadError, RegimenError
    from ..fit import load_fit

    try:
        result = load_fit(fit)
        ds = result.incidence(regimen, days=max(1, math.ceil(weeks * 7)), organ=organ,
                              grade=grade, covariates={"weight_kg": weight}, endpoint=endpoint)
    except (FitLoadError, RegimenError, ValueError) as err:
        fail(str(err))
    if format is Format.json:
        doc = {"regimen": ds.attrs["regimen"], "organ": organ, "grade": grade,
               "days": [float(d) for d in ds.day.values],
               "mean": [float(x) for x in ds["mean"].values],
               "lower": [float(x) for x in ds["lower"].values],
               "upper": [float(x) for x in ds["upper"].values],
               "interval": float(ds.attrs["interval"]), "fit": str(fit)}
        sys.stdout.write(json.dumps(doc) + "\n")
    else:
        lines = ["day,mean,lower,upper"]
        lines += [f"{d:g},{m:.6g},{lo:.6g},{hi:.6g}" for d, m, lo, hi in
                  zip(ds.day.values, ds["mean"].values, ds["lower"].values, ds["upper"].values,
                      strict=True)]
        sys.stdout.write("\n".join(lines) + "\n")
