"""The Typer application every ``pdmodel`` command registers on, and its shared helpers."""

from __future__ import annotations

from enum import StrEnum

import typer

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="pdmodel: ODE models of immune-related adverse events of checkpoint inhibitors.",
)


class Format(StrEnum):
    """Output formats."""

    csv = "csv"
    json = "json"


def fail(message: str, code: int = 2) -> None:
    """Print ``error: message`` to standard error and exit with ``code``."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)
