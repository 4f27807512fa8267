"""Multi-process runs of the commands: ``jax.distributed`` settings, start-up, and failure.

A command adopts it with three options and one call::

    @app.command()
    def simulate(..., coordinator: Coordinator = None, num_processes: NumProcesses = None,
                 process_id: ProcessId = None):
        setup_jax()
        procs = start_processes(coordinator, num_processes, process_id)
        with procs.guard():
            ...                                   # the same computation on every process
            procs.barrier("simulate-done")        # every process finished: safe to write
            if procs.is_main:
                ...                               # only process 0 writes

Settings, first found wins: the options; the environment variables ``PDMODEL_COORDINATOR``
(``HOST:PORT`` of process 0), ``PDMODEL_NUM_PROCESSES``, ``PDMODEL_PROCESS_ID``; a launcher JAX
detects by itself (SLURM ``srun``, Open MPI ``mpirun``, with more than one task; or any
launcher JAX knows with ``PDMODEL_DISTRIBUTED=auto``; ``PDMODEL_DISTRIBUTED=off`` disables the
detection). Nothing set: a single-process run, exactly as before.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

import typer

from ..errors import exit_code

COORDINATOR_ENV = "PDMODEL_COORDINATOR"
NUM_PROCESSES_ENV = "PDMODEL_NUM_PROCESSES"
PROCESS_ID_ENV = "PDMODEL_PROCESS_ID"
DISTRIBUTED_ENV = "PDMODEL_DISTRIBUTED"
"""``auto``: let JAX detect any launcher it knows; ``off``: never detect one."""
TIMEOUT_ENV = "PDMODEL_DISTRIBUTED_TIMEOUT"
"""Seconds to wait for all processes to start, and at each barrier (default 600)."""

_PANEL = "Multi-process run (jax.distributed; see docs/scaling.md)"

Coordinator = Annotated[str | None, typer.Option(
    "--coordinator", envvar=COORDINATOR_ENV, rich_help_panel=_PANEL, show_default=False,
    help="HOST:PORT of process 0 of a multi-process run (every process passes the same).")]
NumProcesses = Annotated[int | None, typer.Option(
    "--num-processes", envvar=NUM_PROCESSES_ENV, min=1, rich_help_panel=_PANEL,
    show_default=False, help="Number of processes of a multi-process run.")]
ProcessId = Annotated[int | None, typer.Option(
    "--process-id", envvar=PROCESS_ID_ENV, min=0, rich_help_panel=_PANEL, show_default=False,
    help="This process's index, 0 .. num-processes - 1 (0 writes the results).")]


@dataclass(frozen=True)
class Processes:
    """The processes of this run, as this process sees them."""

    index: int = 0
    count: int = 1
    coordinator: str | None = None
    timeout_s: float = 600.0

    @property
    def is_main(self) -> bool:
        """Whether this process writes the outputs (process 0)."""
        return self.index == 0

    @property
    def distributed(self) -> bool:
        """Whether more than one process takes part."""
        return self.count > 1

    def echo(self, message: str = "", **kwargs) -> None:
        """``typer.echo`` on the main process only (the others stay quiet)."""
        if self.is_main:
            typer.echo(message, **kwargs)

    def barrier(self, name: str) -> None:
        """Wait for every process (at most ``timeout_s``); raises ``DistributedError``."""
        from ..distributed import barrier

        barrier(name, self.timeout_s)

    @contextlib.contextmanager
    def guard(self) -> Iterator[None]:
        """Turn a failure of this or another process into one clear message and its exit code.

        In a multi-process run an error (a ``DistributedError``, a collective broken by a dead
        peer, any exception) is printed as ``error: process I of N failed: ...`` and the
        process exits at once with :func:`pdmodel.errors.exit_code` of the error (3 for a
        runtime failure), without waiting for the others at JAX's shutdown
        barrier (which would abort with a long native trace). A single-process run lets the
        exception through unchanged.
        """
        if not self.distributed:
            yield
            return
        try:
            yield
        except (typer.Exit, typer.Abort, SystemExit) as stop:
            code = getattr(stop, "exit_code", getattr(stop, "code", 1)) or 0
            if code:
                _exit_now(code)
            raise
        except BaseException as err:  # noqa: BLE001 - every failure ends the whole run
            first = str(err).strip().splitlines()
            typer.echo(f"error: process {self.index} of {self.count} failed: "
                       f"{type(err).__name__}: {first[0] if first else ''}", err=True)
            _exit_now(exit_code(err))


def _exit_now(code: int) -> None:
    """Exit without JAX's shutdown barrier (the peers are gone or will fail on their own)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(int(code))


_ADDRESS = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$")


def _timeout_s() -> float:
    text = os.environ.get(TIMEOUT_ENV, "").strip()
    if not text:
        return 600.0
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        _fail(f"${TIMEOUT_ENV} must be a positive number of seconds, got {text!r}")
    return value


def launcher_processes() -> int | None:
    """Processes started by a launcher JAX detects (SLURM ``srun``, Open MPI), else ``None``.

    ``$PDMODEL_DISTRIBUTED=auto`` reports ``-1`` (let JAX detect any launcher it knows),
    ``off`` ``None``.
    """
    mode = os.environ.get(DISTRIBUTED_ENV, "").strip().lower()
    if mode in ("off", "0", "no", "false"):
        return None
    if mode == "auto":
        return -1
    env = os.environ
    slurm = ("SLURM_JOB_ID", "SLURM_STEP_NODELIST", "SLURM_NTASKS", "SLURM_PROCID",
             "SLURM_LOCALID")
    for count in ((env.get("SLURM_NTASKS") if all(v in env for v in slurm) else None),
                  env.get("OMPI_COMM_WORLD_SIZE")):
        if count and count.strip().isdigit() and int(count) > 1:
            return int(count)
    return None


def start_processes(coordinator: str | None = None, num_processes: int | None = None,
                    process_id: int | None = None) -> Processes:
    """Start ``jax.distributed`` when the settings (or a launcher) ask for it.

    Call once, at the start of a command, before any JAX computation. Returns the
    :class:`Processes` of the run (one process when nothing is set). Exits with a clear
    message when the settings are inconsistent or the processes cannot meet within
    ``$PDMODEL_DISTRIBUTED_TIMEOUT`` seconds.
    """
    timeout = _timeout_s()
    coordinator = coordinator or os.environ.get(COORDINATOR_ENV, "").strip() or None
    num_processes = _env_int(NUM_PROCESSES_ENV) if num_processes is None else num_processes
    process_id = _env_int(PROCESS_ID_ENV) if process_id is None else process_id
    given = (coordinator, num_processes, process_id)
    if all(v is None for v in given):
        if launcher_processes() is None:
            return Processes(timeout_s=timeout)
    elif num_processes == 1 and coordinator is None:
        return Processes(timeout_s=timeout)  # one process: nothing to start
    else:
        _check_settings(coordinator, num_processes, process_id)
    import jax

    try:  # CPU collectives between processes (GPUs use NCCL, TPUs their own)
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    except (AttributeError, ValueError):  # pragma: no cover - JAX without the option
        pass
    try:
        jax.distributed.initialize(coordinator, num_processes, process_id,
                                   initialization_timeout=max(1, round(timeout)))
    except Exception as err:  # noqa: BLE001 - JAX raises several kinds here
        where = f"coordinator {coordinator}" if coordinator else "the launcher's coordinator"
        _fail(f"could not start a multi-process run (process {process_id}, "
              f"{num_processes} processes, {where}) within {timeout:g} s: "
              f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err) else ''}."
              " Check that every process was started with the same --coordinator and "
              "--num-processes and a distinct --process-id, and that process 0 can be reached "
              "at that address")
    return Processes(jax.process_index(), jax.process_count(), coordinator, timeout)


def _env_int(name: str) -> int | None:
    text = os.environ.get(name, "").strip()
    if not text:
        return None
    if not text.isdigit():
        _fail(f"${name} must be a non-negative integer, got {text!r}")
    return int(text)


def _check_settings(coordinator, num_processes, process_id) -> None:
    """The explicit settings, checked; a launcher may supply the ones left out."""
    if coordinator is not None and not _ADDRESS.match(coordinator.strip()):
        _fail(f"--coordinator must be HOST:PORT (e.g. node01:12355), got {coordinator!r}")
    if num_processes is not None and process_id is not None and process_id >= num_processes:
        _fail(f"--process-id must lie in 0..{num_processes - 1} (--num-processes "
              f"{num_processes}), got {process_id}")
    if launcher_processes() is None and None in (coordinator, num_processes, process_id):
        missing = [name for name, v in (("--coordinator", coordinator),
                                        ("--num-processes", num_processes),
                                        ("--process-id", process_id)) if v is None]
        _fail(f"a multi-process run needs {', '.join(missing)} too (or "
              f"${COORDINATOR_ENV}, ${NUM_PROCESSES_ENV}, ${PROCESS_ID_ENV}), unless a "
              "launcher JAX detects (SLURM srun, Open MPI) supplies them")


def _fail(message: str) -> None:
    from ._app import fail

    fail(message)
