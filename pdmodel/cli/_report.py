"""``pdmodel report RUN_DIR``: (re)draw a fit's ``results/report.html``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..errors import EXIT_RUNTIME
from ._app import app, fail
from ._jax_setup import setup_jax


@app.command()
def report(
    run: Annotated[Path, typer.Argument(help="Fit run folder (with results/).")],
    no_progress: Annotated[bool, typer.Option("--no-progress", help="No progress bar.")]
    = False,
) -> None:
    """Write RUN/results/report.html: one self-contained page (figures inlined) with the data,
    calibrated curves, checks, parameters, convergence verdict and provenance of a fit."""
    setup_jax()
    import sys

    from ..fit import write_report

    try:
        out = write_report(run, progress=not no_progress and sys.stderr.isatty())
    except OSError as err:
        fail(f"cannot read or write {err.filename or run}: {err.strerror or err}",
             code=EXIT_RUNTIME)
    typer.echo(str(out))
