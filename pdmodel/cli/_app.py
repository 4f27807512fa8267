"""The Typer application every ``pdmodel`` command registers on, and its shared helpers."""

from __future__ import annotations

import os
import sys
import warnings
from enum import StrEnum

import typer
from typer.core import TyperGroup

from ..errors import EXIT_CLOSED_OUTPUT, EXIT_RUNTIME, EXIT_USAGE, PdmodelError, exit_code

#: Set to 1 to let unexpected errors end in their Python traceback (for bug reports).
DEBUG_ENV = "PDMODEL_DEBUG"


class _Group(TyperGroup):
    """The command group; turns every pdmodel error into ``error: ...`` and its exit code.

    Exit codes (README, "Exit codes"): 1 invalid data, 2 usage error (also a plain
    ``ValueError`` of a library check), 3 runtime failure (a file that cannot be read or
    written, and any unexpected error, reported in one line unless ``PDMODEL_DEBUG=1``).
    """

    def invoke(self, ctx):
        shown, warnings.showwarning = warnings.showwarning, _show_warning
        try:
            return super().invoke(ctx)
        except (PdmodelError, ValueError) as err:  # library checks raise ValueError too
            if _is_cli_control(err):
                raise
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(exit_code(err)) from None
        except BrokenPipeError:  # the reader of stdout went away (`| head`): stop quietly
            try:  # what is still buffered goes nowhere, without a second error at exit
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            except (OSError, ValueError, AttributeError):
                pass  # not a real file (a test runner's stream)
            raise typer.Exit(EXIT_CLOSED_OUTPUT) from None
        except OSError as err:  # a file or folder that cannot be read or written
            typer.echo(f"error: {err.filename or 'a file'}: {err.strerror or err}", err=True)
            raise typer.Exit(EXIT_RUNTIME) from None
        except KeyboardInterrupt:
            raise
        except Exception as err:
            if _is_cli_control(err) or os.environ.get(DEBUG_ENV, "") not in ("", "0"):
                raise
            typer.echo(f"error: unexpected {type(err).__name__}: {err} (a bug in pdmodel; rerun "
                       f"with {DEBUG_ENV}=1 for the traceback and report it)", err=True)
            raise typer.Exit(EXIT_RUNTIME) from None
        finally:
            warnings.showwarning = shown


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings of a command as one ``warning: ...`` line on standard error."""
    typer.echo(f"warning: {message}", err=True)


def _is_cli_control(err: BaseException) -> bool:
    """Typer's own exits, aborts and usage errors (handled by Typer itself)."""
    return (isinstance(err, (typer.Exit, typer.Abort))
            or type(err).__module__.split(".")[0] in ("typer", "click"))


app = typer.Typer(
    cls=_Group,
    add_completion=False,
    no_args_is_help=True,
    help="pdmodel: ODE models of immune-related adverse events of checkpoint inhibitors.",
)


class Format(StrEnum):
    """Output formats."""

    csv = "csv"
    json = "json"


def fail(message: str, code: int = EXIT_USAGE) -> None:
    """Print ``error: message`` to standard error and exit with ``code`` (2: usage error)."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)
