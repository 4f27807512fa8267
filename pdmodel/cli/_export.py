"""``pdmodel export sbml|antimony``: one virtual patient's whole model for another engine."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from ..errors import EXIT_RUNTIME
from ._app import app, fail
from ._jax_setup import setup_jax


class ExportFormat(StrEnum):
    """File formats of ``pdmodel export``."""

    sbml = "sbml"
    antimony = "antimony"


class PolicyChoice(StrEnum):
    """Immunosuppressant rescue in the exported model."""

    natural = "natural"
    default = "default"


@app.command()
def export(
    format: Annotated[ExportFormat, typer.Argument(help="sbml (SBML Level 3) or antimony.")],
    regimen: Annotated[str, typer.Option(help='Regimen text, e.g. "nivolumab 240 mg q2w".')],
    output: Annotated[Path, typer.Option("--output", "-o", help="File to write.")],
    fit: Annotated[Path | None, typer.Option(
        "--fit", help="Fit run folder (default fits/reference); values are its posterior "
        "mean, or --draw K.")] = None,
    prior: Annotated[bool, typer.Option(
        "--prior", help="Use the prior means (IraeModel defaults) instead of a fit.")] = False,
    patient: Annotated[str, typer.Option(
        help="'typical' (80 kg, random effects 0) or a virtual patient number.")] = "typical",
    policy: Annotated[PolicyChoice, typer.Option(
        help="natural course, or the default management policy (steroids, infliximab, "
        "holds) as events.")] = PolicyChoice.natural,
    draw: Annotated[int | None, typer.Option(
        help="0-based posterior draw of the fit instead of the posterior mean.")] = None,
    days: Annotated[int, typer.Option(help="Dosing horizon, days.")] = 365,
) -> None:
    """Write the model of one virtual patient on a regimen as SBML or Antimony: PK of each
    agent, occupancy, immune and organ-injury states, running maximum, grade thresholds, and
    infusions (and rescue) as events, with units and the source of every value."""
    setup_jax()
    from ..export import export_antimony, export_sbml
    from ..irae import ManagementPolicy

    if prior and fit is not None:
        fail("give either --fit DIR or --prior, not both")
    if prior and draw is not None:
        fail("--draw selects a posterior draw of a fit; it cannot be used with --prior")
    source = None if prior else (fit if fit is not None else Path("fits/reference"))
    write = export_sbml if format is ExportFormat.sbml else export_antimony
    rescue = ManagementPolicy() if policy is PolicyChoice.default else None
    try:
        write(regimen, fit=source, draw=draw, patient=patient, policy=rescue, days=days,
              path=output)
    except OSError as err:
        fail(f"cannot write {err.filename or 'the output'}: {err.strerror or err}",
             code=EXIT_RUNTIME)
    typer.echo(f"wrote {output}", err=True)
