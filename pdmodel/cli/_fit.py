"""``pdmodel fit``: the main job, calibration to the bundled data into a run folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._app import app
from ._distributed import Coordinator, NumProcesses, ProcessId, start_processes
from ._jax_setup import setup_jax


@app.command()
def fit(
    config: Annotated[Path, typer.Argument(help="Fit configuration (TOML).")] = Path(
        "fits/default.toml"
    ),
    resume: Annotated[
        bool, typer.Option(help="Continue a killed run in the same folder from its checkpoints.")
    ] = False,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a config key, e.g. --set map.starts=1 "
                     "(repeatable)."),
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
    coordinator: Coordinator = None,
    num_processes: NumProcesses = None,
    process_id: ProcessId = None,
) -> None:
    """Calibrate the irAE model to the bundled incidence data (MAP, Laplace approximation,
    then NUTS on an emulator checked against the exact model; nuts.method selects) and write a
    run folder: posterior (arviz DataTree), diagnostics (R-hat, ESS, divergences), parameters,
    incidence curves, predictive and onset checks, plots.

    In a multi-process run (--coordinator ...) MAP starts, the Laplace Hessian's columns, NUTS
    chains and the exact solves at the draws are split across the processes; process 0
    computes the results and writes the run folder."""
    setup_jax()
    procs = start_processes(coordinator, num_processes, process_id)
    from ..fit import apply_overrides, load_config, run_fit

    with procs.guard():
        cfg = load_config(config)
        if set_:
            cfg = apply_overrides(cfg, list(set_))
        out = run_fit(cfg, resume=resume, progress=progress and procs.is_main,
                      echo=procs.echo)
        procs.echo(f"results written to {out}")
