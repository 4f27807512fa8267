"""``pdmodel design``: the safest regimen that keeps the target engaged (and its trade-off)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from ._app import Format, app, fail
from ._jax_setup import setup_jax

HELP = """Design a regimen: minimise the grade >= G irAE risk subject to constraints.

\b
TEMPLATE: regimen text with {placeholders}, one per --vary, e.g.
  "nivolumab {dose} q{interval}w"
  "nivolumab 480 mg q4w + ipilimumab {ipi} q{every}w x{n}"
\b
--vary NAME=RANGE (decision variables):
  dose=1-10 mg/kg step 0.5     dose after an agent name, mg/kg (default step 0.1)
  dose=240-960 mg vial 40      flat dose, mg, in whole vials (default: 10 mg steps)
  interval=2-8 weeks | 3,6,12 weeks   written as q{interval}w
  n=2-4 doses | 2,4 doses        number of doses, written as x{n}
\b
--require CONSTRAINT (any number; weeks default 0-52):
  "trough PD-1 >= 0.9 weeks 12-52"           lowest serum occupancy (PD-1, PD-L1, CTLA-4)
  "exposure nivolumab >= 20 ug/mL weeks 0-52" time-averaged serum concentration
  "infusions <= 13 per year"                 infusion visits in the first 52 weeks
Constraints use the typical patient's PK (median body weight, no random effects).
\b
Objective: --organ O --grade G --week W --stat mean|qNN: the fraction of patients with a
grade >= G event of organ O (any = any organ) by week W, drug-related, natural course,
averaged over virtual patients; mean or NN-th percentile over the fit's posterior draws
(the priors without --fit).
\b
--sweep "trough PD-1 >= 0.9 weeks 12-52" --levels 0.5,0.7,0.9,0.95: the Pareto front
(lowest risk at each level, 90% credible band) written to --out as tradeoff.csv, .json, .png,
with the --reference regimens drawn on the plot.
"""


@app.command(help=HELP)
def design(
    template: Annotated[str, typer.Argument(help="Regimen template with {placeholders}.")],
    vary: Annotated[list[str], typer.Option("--vary", help="NAME=RANGE, one per placeholder.")],
    require: Annotated[list[str] | None, typer.Option("--require", help="A constraint.")]
    = None,
    fit: Annotated[Path | None, typer.Option("--fit", help="Fit run folder (default: the "
                                             "priors).")] = None,
    organ: Annotated[str, typer.Option(help="any, skin, gi, liver, lung, thyroid, "
                                       "pituitary")] = "any",
    grade: Annotated[str, typer.Option(help="any, 2+ or 3+")] = "3+",
    week: Annotated[float, typer.Option(help="Risk horizon, weeks.")] = 52.0,
    stat: Annotated[str, typer.Option(help="mean, or qNN (e.g. q90) over draws.")] = "mean",
    tumour: Annotated[str | None, typer.Option(help="melanoma, nsclc, rcc, other.")] = None,
    preexisting_ad: Annotated[float, typer.Option(help="Fraction with pre-existing "
                                                  "autoimmune disease.")] = 0.0,
    weight: Annotated[float, typer.Option(help="Median body weight, kg.")] = 80.0,
    draws: Annotated[int, typer.Option(help="Posterior draws used.")] = 32,
    patients: Annotated[int, typer.Option(help="Virtual patients.")] = 16,
    starts: Annotated[int, typer.Option(help="Starts of the relaxed search.")] = 3,
    steps: Annotated[int, typer.Option(help="Adam steps of the relaxed search.")] = 25,
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
    sweep: Annotated[str | None, typer.Option(help="Constraint to sweep (trade-off).")] = None,
    levels: Annotated[str | None, typer.Option(help="Comma-separated levels of --sweep.")]
    = None,
    reference: Annotated[list[str] | None, typer.Option("--reference", help="Regimen drawn "
                                                        "on the trade-off plot.")] = None,
    out: Annotated[Path, typer.Option(help="Folder of the trade-off files.")] = Path("design"),
    format: Annotated[Format, typer.Option("--format", help="Output format.")] = Format.json,
) -> None:
    """Design a regimen (see the help text above)."""
    setup_jax()
    from ..dosing_design import Risk, trade_off
    from ..dosing_design import design as run_design
    from ..errors import DesignError, RegimenError
    from ._options import DesignOptions, checked

    checked(DesignOptions, week=week, tumour=tumour, preexisting_ad=preexisting_ad,
            weight=weight, draws=draws, patients=patients, starts=starts, steps=steps, seed=seed)
    variables = {}
    for item in vary:
        name, sep, rng = item.partition("=")
        if not sep or not name.strip():
            fail(f"--vary {item!r}: expected NAME=RANGE, e.g. dose=1-10 mg/kg")
        variables[name.strip()] = rng
    covariates = {"preexisting_ad": preexisting_ad, "weight_kg": weight}
    if tumour is not None:
        covariates["tumour"] = tumour
    kw = dict(constraints=list(require or []),
              risk=Risk(organ=organ, grade=grade, week=week, stat=stat), fit=fit,
              covariates=covariates, draws=draws, patients=patients, starts=starts,
              steps=steps, seed=seed)
    try:
        if sweep is None:
            if levels is not None:
                fail("--levels needs --sweep")
            result = run_design(template, variables, **kw)
        else:
            if not levels:
                fail("--sweep needs --levels, e.g. --levels 0.5,0.7,0.9")
            try:
                values = [float(x) for x in levels.split(",")]
            except ValueError:
                fail(f"--levels {levels!r}: expected comma-separated numbers")
            front = trade_off(template, variables, sweep, values,
                              references=list(reference or []), **kw)
    except (DesignError, RegimenError) as err:  # a multi-line report, indented
        fail(str(err).replace("\n", "\n  "))
    if sweep is not None:
        paths = front.write(out)
        sys.stdout.write(front.to_csv() if format is Format.csv else front.to_json() + "\n")
        typer.echo("wrote " + ", ".join(str(p) for p in paths), err=True)
        return
    if format is Format.json:
        sys.stdout.write(json.dumps(result.to_dict()) + "\n")
    else:
        row = result.to_dict()
        cols = ["regimen", "risk", "risk_mean", "risk_lower", "risk_upper"]
        extra = list(row["metrics"])
        sys.stdout.write(",".join(cols + [f'"{m}"' for m in extra]) + "\n")
        vals = [f'"{row["regimen"]}"'] + [f"{row[c]:.6g}" for c in cols[1:]]
        vals += [f"{row['metrics'][m]:.6g}" for m in extra]
        sys.stdout.write(",".join(vals) + "\n")
