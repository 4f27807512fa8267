"""``pdmodel data check``: validate an incidence or timing table of your own;
``pdmodel data summary``: where the default fit is informed by data (docs/data.md)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from ..errors import DataError, DataFileError

__all__ = ["Kind", "SummaryFormat", "check_command", "data_app", "summary_command"]


class Kind(StrEnum):
    """Kinds of data table ``pdmodel data check`` validates."""

    incidence = "incidence"
    timing = "timing"


class SummaryFormat(StrEnum):
    """Output formats of ``pdmodel data summary``."""

    text = "text"
    csv = "csv"
    markdown = "markdown"


data_app = typer.Typer(
    add_completion=False, no_args_is_help=True,
    help="Published irAE data: check your own incidence or timing table, or see what the "
         "default fit is calibrated to (docs/data.md).")


@data_app.command("check")
def check_command(
    file: Annotated[Path, typer.Argument(help="CSV file in the pdmodel long format.")],
    kind: Annotated[Kind, typer.Option(help="Table format (docs/data.md).")] = Kind.incidence,
) -> None:
    """Validate FILE: list every problem (exit 1) or print a summary (exit 0).

    Problems are printed as "line N (row_id X), field 'F': message" (header = line 1).
    A missing, unreadable or non-CSV file is invalid data too: one "error:" line, exit 1.
    """
    from ..data import check_file

    issues, summary = check_file(file, kind.value)  # DataFileError: exit 1 (cli._app)
    if issues:
        for i in issues:
            typer.echo(str(i), err=True)
        typer.echo(summary, err=True)
        raise typer.Exit(1)
    typer.echo(summary)


@data_app.command("summary")
def summary_command(
    file: Annotated[Path | None, typer.Argument(
        help="Incidence table in the bundled format (default: the bundled table).")] = None,
    fmt: Annotated[SummaryFormat, typer.Option(
        "--format", help="text (aligned columns), csv or markdown.")] = SummaryFormat.text,
    all_rows: Annotated[bool, typer.Option(
        "--all", help="Count every row, not only the default-fit rows.")] = False,
) -> None:
    """Coverage of the calibration data: for each agent, combination and control backbone,
    the studies, arms, patients, rows, organ x grade cells, endpoints, settings, backbones
    and simulated regimens in the default fit (docs/data.md §4).

    Groups with few arms or cells rest mostly on the priors. A file that cannot be read or is
    not in the bundled format exits 1.
    """
    from ..data import coverage, coverage_markdown, load_incidence

    try:
        df = load_incidence(file)
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise DataFileError(f"cannot read {file}: {e}") from None
    missing = {"fit_default", "agents_model", "organ_model"} - set(df.columns)
    if missing:
        raise DataError(f"{file} is not in the bundled format (docs/data.md §2): missing "
                        f"column(s) {', '.join(sorted(missing))}")
    table = coverage(df, default_fit_only=not all_rows)
    if fmt is SummaryFormat.csv:
        typer.echo(table.to_csv(index=False), nl=False)
    elif fmt is SummaryFormat.markdown:
        typer.echo(coverage_markdown(table), nl=False)
    else:
        with_organs = table.assign(organs=table["organs"].str.replace(";", ","))
        typer.echo(with_organs.to_string(index=False))
