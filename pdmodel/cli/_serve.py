"""``pdmodel serve``: one long-lived process that answers ``pdmodel predict`` commands.

A new ``pdmodel predict`` process spends most of its time starting: the interpreter, JAX
(over a second), the fit and its compiled programs. ``pdmodel serve`` pays that once; while it
runs, ``pdmodel predict`` hands its arguments to it over a local socket and prints the answer,
byte for byte what it would have printed itself, with the same exit code. Without a server, or
when the server cannot answer it (another pdmodel source, another environment), the command
computes in its own process as before.

The socket (and the key that authenticates a client) is in a folder only the user can read:
``$PDMODEL_SERVER`` if set, else ``$XDG_RUNTIME_DIR`` (or the temporary folder)
``/pdmodel-<uid>/predict.sock``. ``PDMODEL_SERVER=off`` (or ``predict --no-server``) never
uses a server. Requests are answered one at a time, in the client's working folder; the
server stops after ``--idle-minutes`` without a request, on ``pdmodel serve --stop``, on
Ctrl-C or SIGTERM, and removes its socket.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import sys
import tempfile
import threading
import time
import traceback
import warnings
from pathlib import Path
from typing import Annotated

import typer

from ..errors import EXIT_CLOSED_OUTPUT, EXIT_RUNTIME, EXIT_USAGE
from ._app import app, fail

SERVER_ENV = "PDMODEL_SERVER"
"""Environment variable: path of the server's socket, or ``off`` to never use a server."""

FORWARDED = ("predict",)
"""Commands a running server answers."""

_PROTOCOL = 1


def server_address() -> Path | None:
    """Path of the server's socket, or None when switched off (``PDMODEL_SERVER=off``)."""
    env = os.environ.get(SERVER_ENV, "").strip()
    if env.lower() in ("off", "0", "no"):
        return None
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_RUNTIME_DIR", "").strip() or tempfile.gettempdir()
    return Path(base) / f"pdmodel-{os.getuid()}" / "predict.sock"


def _key_path(address: Path) -> Path:
    return address.with_name(address.name + ".key")


def _environment() -> dict[str, str]:
    """Environment variables that change what a command computes (pdmodel's and JAX's)."""
    return {k: v for k, v in os.environ.items()
            if (k.startswith(("PDMODEL_", "JAX_", "XLA_")) and k != SERVER_ENV)}


def _request(argv: list[str]) -> dict:
    from ..io import package_source_hash

    return {"protocol": _PROTOCOL, "argv": list(argv), "cwd": os.getcwd(),
            "sources": package_source_hash(), "environment": _environment()}


def _connect(address: Path):
    """A connection to the server at ``address``, or None when none answers."""
    from multiprocessing import AuthenticationError
    from multiprocessing.connection import Client

    try:
        key = _key_path(address).read_bytes()
        return Client(str(address), family="AF_UNIX", authkey=key)
    except (OSError, EOFError, ValueError, AuthenticationError):  # none, stale, another key
        return None


def forward(argv: list[str]) -> int | None:
    """Run ``pdmodel <argv>`` on a running server: write its output here and return its exit
    code; None when no server answers it (the caller runs the command itself)."""
    if not argv or argv[0] not in FORWARDED or "--no-server" in argv:
        return None
    address = server_address()
    if address is None or not address.exists():
        return None
    conn = _connect(address)
    if conn is None:
        return None
    try:
        conn.send(_request(argv))
        reply = conn.recv()
    except (OSError, EOFError):  # the server stopped meanwhile, or no working folder
        return None
    except KeyboardInterrupt:  # Ctrl-C while waiting: end as an interrupted command does
        return 130
    finally:
        conn.close()
    if "code" not in reply:  # declined: another source or environment
        return None
    try:
        sys.stdout.write(reply["stdout"])
        sys.stderr.write(reply["stderr"])
    except BrokenPipeError:  # the reader went away (`| head`)
        return EXIT_CLOSED_OUTPUT
    return int(reply["code"])


def _run_command(argv: list[str], cwd: str) -> tuple[int, str, str]:
    """``pdmodel <argv>`` run in this process from folder ``cwd``: exit code, stdout,
    stderr."""
    from . import app as cli_app

    out, err = io.StringIO(), io.StringIO()
    here = os.getcwd()
    code: int | str | None = 0
    try:
        os.chdir(cwd)
        with (contextlib.redirect_stdout(out), contextlib.redirect_stderr(err),
              warnings.catch_warnings()):
            # the same filters; touching them starts a fresh "shown once" registry, so a
            # warning an earlier request saw is shown again, as a new process would
            warnings.filterwarnings("default", append=True)
            try:
                cli_app(args=argv, prog_name="pdmodel", standalone_mode=True)
            except SystemExit as done:
                code = done.code
            except Exception:  # noqa: BLE001 - the command's own bug: report it to the client
                traceback.print_exc()
                code = EXIT_RUNTIME
    except OSError as e:  # the client's folder is gone
        return EXIT_RUNTIME, "", f"error: {cwd}: {e.strerror or e}\n"
    finally:
        os.chdir(here)
    if not isinstance(code, int | None):
        err.write(f"{code}\n")
        code = 1
    return code or 0, out.getvalue(), err.getvalue()


def _answer(request: dict, sources: str) -> dict:
    """The reply to one request (``code``, ``stdout``, ``stderr``; or ``declined``)."""
    if request.get("protocol") != _PROTOCOL:
        return {"declined": "another protocol"}
    if request.get("sources") != sources:
        return {"declined": "the server runs another pdmodel source", "stale": True}
    if request.get("environment") != _environment():
        return {"declined": "the client's PDMODEL_/JAX_ environment differs"}
    argv = request.get("argv") or []
    if not argv or argv[0] not in FORWARDED:
        return {"declined": "not a command this server answers"}
    code, out, err = _run_command([a for a in argv if a != "--no-server"], request["cwd"])
    return {"code": code, "stdout": out, "stderr": err}


def _private_folder(folder: Path) -> None:
    """Create ``folder`` for the user alone; refuse one others can write to or own."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = folder.stat()
    if st.st_uid != os.getuid() or st.st_mode & 0o077:
        fail(f"{folder}: the server's folder must belong to you alone (mode 700); "
             f"set {SERVER_ENV} to another socket path", code=EXIT_USAGE)


@app.command()
def serve(
    fit: Annotated[Path, typer.Option("--fit", help="Fit to load before the first request "
                                      "(others load on first use).")] = Path("fits/reference"),
    idle_minutes: Annotated[float, typer.Option(
        "--idle-minutes", help="Stop after this many minutes without a request.")] = 60.0,
    stop: Annotated[bool, typer.Option("--stop", help="Stop the running server.")] = False,
) -> None:
    """Keep pdmodel loaded and answer `pdmodel predict` from this process (in a fraction of a
    second instead of seconds). Runs in the foreground: start it with `pdmodel serve &`."""
    from multiprocessing import AuthenticationError
    from multiprocessing.connection import Listener

    address = server_address()
    if address is None:
        fail(f"{SERVER_ENV}=off: no server address", code=EXIT_USAGE)
    if stop:
        conn = _connect(address)
        if conn is None:
            fail(f"no server answers at {address}", code=EXIT_RUNTIME)
        conn.send({"protocol": _PROTOCOL, "stop": True})
        conn.close()
        typer.echo(f"stopped the server at {address}", err=True)
        return
    if idle_minutes <= 0:
        fail(f"--idle-minutes: must be positive, got {idle_minutes:g}", code=EXIT_USAGE)
    _private_folder(address.parent)
    if _connect(address) is not None:
        fail(f"a server already answers at {address} (stop it: pdmodel serve --stop)",
             code=EXIT_USAGE)
    from ..io import package_source_hash
    from ._jax_setup import setup_jax

    setup_jax()
    sources = package_source_hash()
    if (Path(fit) / "config.toml").is_file():  # load the fit and its programs now
        _run_command(["predict", "--regimen", "nivolumab 240 mg q2w", "--fit",
                      str(Path(fit).resolve())], os.getcwd())
    for stale in (address, _key_path(address)):
        stale.unlink(missing_ok=True)
    key = os.urandom(32)
    fd = os.open(_key_path(address), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key)
    listener = Listener(str(address), family="AF_UNIX", authkey=key)
    last = [time.monotonic()]
    busy = threading.Lock()

    def watch_idle() -> None:  # a daemon thread: SIGTERM to this process after the idle time
        while True:
            time.sleep(min(5.0, idle_minutes * 60))
            with busy:
                if time.monotonic() - last[0] > idle_minutes * 60:
                    os.kill(os.getpid(), signal.SIGTERM)
                    return

    def on_term(signum, frame) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_term)
    threading.Thread(target=watch_idle, daemon=True).start()
    typer.echo(f"pdmodel serve: answering `pdmodel predict` at {address} (stops after "
               f"{idle_minutes:g} idle minutes; pdmodel serve --stop)", err=True)
    try:
        while True:
            try:
                conn = listener.accept()
            except (OSError, EOFError, AuthenticationError):  # a client without the key
                continue
            with busy, conn:
                try:
                    request = conn.recv()
                except (OSError, EOFError):
                    continue
                if not isinstance(request, dict):
                    continue
                if request.get("stop"):
                    break
                reply = _answer(request, sources)
                try:
                    conn.send(reply)
                except (OSError, EOFError):  # the client went away
                    pass
                last[0] = time.monotonic()
                if reply.get("stale"):  # pdmodel changed on disk: this process is outdated
                    typer.echo("pdmodel serve: pdmodel's source changed; stopping", err=True)
                    break
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        listener.close()
        for f in (address, _key_path(address)):
            f.unlink(missing_ok=True)
    typer.echo("pdmodel serve: stopped", err=True)
