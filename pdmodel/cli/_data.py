"""``pdmodel data check``: validate an incidence or timing table of your own (docs/data.md)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from ..data import check_file
from ..errors import DataFileError

__all__ = ["Kind", "check_command", "data_app"]


class Kind(StrEnum):
    """Kinds of data table ``pdmodel data check`` validates."""

    incidence = "incidence"
    timing = "timing"


data_app = typer.Typer(
    add_completion=False, no_args_is_help=True,
    help="Published irAE data: check your own incidence or timing table (docs/data.md).")


@data_app.command("check")
def check_command(
    file: Annotated[Path, typer.Argument(help="CSV file in the pdmodel long format.")],
    kind: Annotated[Kind, typer.Option(help="Table format (docs/data.md).")] = Kind.incidence,
) -> None:
    """Validate FILE: list every problem (exit 1) or print a summary (exit 0).

    Problems are printed as "line N (row_id X), field 'F': message" (header = line 1).
    An unreadable or non-CSV file exits with 2.
    """
    try:
        issues, summary = check_file(file, kind.value)
    except DataFileError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    if issues:
        for i in issues:
            typer.echo(str(i), err=True)
        typer.echo(summary, err=True)
        raise typer.Exit(1)
    typer.echo(summary)
