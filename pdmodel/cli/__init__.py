"""The ``pdmodel`` command line: ``agents``, ``simulate``, ``fit``, ``predict``, ``export``,
``design``, ``report``, ``validate``, ``serve``, ``data check``.

One module per command (``_agents``, ``_simulate``, ``_fit``, ``_predict``, ``_export``,
``_design``, ``_data``), each registering on the shared Typer ``app`` (``_app``). Global JAX
switches (float64, the persistent compilation cache, ``_jax_setup``) are set by the commands,
never on import; commands import the library lazily so that ``pdmodel --help`` starts fast.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading

from ..errors import EXIT_CLOSED_OUTPUT
from . import (  # noqa: F401  (register the commands)
    _agents,
    _design,
    _export,
    _fit,
    _predict,
    _report,
    _serve,
    _simulate,
    _validate,
)
from ._app import Format as Format
from ._app import app as app
from ._data import data_app
from ._jax_setup import CACHE_ENV as CACHE_ENV
from ._jax_setup import NO_CACHE_ENV as NO_CACHE_ENV
from ._jax_setup import compilation_cache_dir as compilation_cache_dir
from ._jax_setup import enable_compilation_cache as enable_compilation_cache
from ._jax_setup import setup_jax as setup_jax
from ._simulate import to_csv as to_csv
from ._simulate import to_json as to_json

app.add_typer(data_app, name="data")

__all__ = ["app", "main", "Format", "setup_jax", "compilation_cache_dir",
           "enable_compilation_cache", "CACHE_ENV", "NO_CACHE_ENV", "to_csv", "to_json"]


def main() -> None:
    """Console-script entry point.

    ``pdmodel predict`` is first offered to a running ``pdmodel serve`` (``_serve``), which
    prints the same output with the same exit code; otherwise the command runs here. After
    the command, its exit handlers run and its output is flushed, then the process
    ends without Python's teardown of every imported module (half a second after JAX and
    its libraries, a tenth of a short ``pdmodel predict``); when a non-daemon thread is
    still running, the normal exit waits for it instead.
    """
    forwarded = _serve.forward(sys.argv[1:])
    if forwarded is not None:  # answered by a running `pdmodel serve`
        _exit_now(forwarded)
    try:
        app()
    except SystemExit as done:
        code = done.code
    else:
        code = 0
    if any(t is not threading.main_thread() and not t.daemon for t in threading.enumerate()):
        sys.exit(code)
    if not isinstance(code, int | None):  # sys.exit("message"): print it, exit 1
        print(code, file=sys.stderr)
        code = 1
    _exit_now(code)


def _exit_now(code: int | None) -> None:
    """Run the exit handlers, flush the output and end the process with ``code``."""
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BrokenPipeError:  # the reader went away (`| head`)
            code = code or EXIT_CLOSED_OUTPUT
        except (OSError, ValueError):  # closed
            pass
    os._exit(code or 0)

