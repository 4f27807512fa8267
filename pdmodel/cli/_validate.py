"""``pdmodel validate``: cross-validation of a fit configuration by study (MAP + Laplace)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._app import app
from ._jax_setup import setup_jax


@app.command()
def validate(
    config: Annotated[Path, typer.Argument(help="Fit configuration (TOML).")] = Path(
        "fits/default.toml"
    ),
    by: Annotated[str, typer.Option(
        help="Rows held out together: study, agents, setting or tumour.")] = "study",
    folds: Annotated[int, typer.Option(
        help="Folds, balanced by rows (0, or at least the number of groups: leave one group "
             "out).")] = 10,
    draws: Annotated[int, typer.Option(help="Laplace draws per fold.")] = 200,
    output: Annotated[Path | None, typer.Option(
        help="Run folder of the validation (default: <output.folder>/validation).",
        show_default=False)] = None,
    resume: Annotated[
        bool, typer.Option(help="Continue an interrupted validation from its fold "
                                "checkpoints.")
    ] = False,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a config key, e.g. --set map.starts=1 "
                     "(repeatable)."),
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar (on a terminal).")] = True,
) -> None:
    """Cross-validate the fit of CONFIG by study: for each fold, refit without its studies
    (MAP + Laplace, not NUTS), predict their arms, and score the 90% predictive intervals and
    the log-loss per patient against a class-average table of the same training rows.

    Writes results/validation.csv (one line per held-out row), arms.csv, summary.json and
    calibration.png in the run folder, and prints a one-line summary."""
    setup_jax()
    from ..fit import apply_overrides, load_config
    from ..fit import validate as run_validation

    cfg = load_config(config)
    if set_:
        cfg = apply_overrides(cfg, list(set_))
    out = run_validation(cfg, by=by, folds=folds, draws=draws, folder=output,
                         resume=resume, progress=progress, echo=typer.echo)
    typer.echo(f"results written to {out}")
