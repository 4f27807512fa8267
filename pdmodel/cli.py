"""The ``pdmodel`` command line: ``agents``, ``simulate``, ``fit``.

Global JAX switches (float64, platform) are set here, at the entry point, never on import.
"""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

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


def _setup_jax() -> None:
    import jax

    jax.config.update("jax_enable_x64", True)


def _fail(message: str, code: int = 2) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


@app.command()
def agents() -> None:
    """List the checkpoint inhibitors: target, class, PK model and its source, potency."""
    from ._agents import AGENTS
    from ._occupancy import potencies
    from ._pk_catalogue import pk_model

    pot = potencies()
    typer.echo("agent\ttarget\tclass\tinfusion_min\tpk_model\tpk_source\tec50_ug_per_mL\t"
               "potency_source")
    for a in AGENTS.values():
        spec = pk_model(a.name)
        p = pot[a.name]
        typer.echo(f"{a.name}\t{a.target}\t{a.drug_class}\t{a.infusion_min:g}\t{spec.model}\t"
                   f"{spec.source}\t{p.ec50:g}\t{p.source}")


@app.command()
def simulate(
    regimen: Annotated[str, typer.Option(help='Regimen text, e.g. "nivolumab 240 mg q2w".')],
    weeks: Annotated[float, typer.Option(help="Simulated weeks from the first dose.")] = 52.0,
    weight: Annotated[
        float | None, typer.Option(help="Body weight, kg (required for mg/kg doses).")
    ] = None,
    step: Annotated[float, typer.Option(help="Output grid spacing, days.")] = 1.0,
    format: Annotated[Format, typer.Option("--format", help="Output format.")] = Format.csv,
    output: Annotated[
        Path | None, typer.Option(help="Write to this file instead of standard output.")
    ] = None,
) -> None:
    """Simulate serum concentrations (µg/mL) and receptor occupancy (0-1) of a regimen."""
    _setup_jax()
    from ._regimen import RegimenError
    from ._simulate_pk import simulate_pk

    try:
        ds = simulate_pk(regimen, days=weeks * 7.0, weight_kg=weight, step=step)
    except (RegimenError, ValueError) as err:
        _fail(str(err))
    text = to_json(ds) if format is Format.json else to_csv(ds)
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text)


def to_json(ds) -> str:
    """``{"day": [...], "concentration": {agent: [...]}, "occupancy": {target: [...]}}``."""
    doc = {
        "day": [float(d) for d in ds.day.values],
        "concentration": {str(a): [float(x) for x in ds.concentration.sel(agent=a).values]
                          for a in ds.agent.values},
        "occupancy": {str(t): [float(x) for x in ds.occupancy.sel(target=t).values]
                      for t in ds.target.values},
    }
    return json.dumps(doc) + "\n"


def to_csv(ds) -> str:
    """One row per day: ``day, concentration_<agent>..., occupancy_<target>...``."""
    cols = ["day"] + [f"concentration_{a}" for a in ds.agent.values]
    cols += [f"occupancy_{t}" for t in ds.target.values]
    lines = [",".join(cols)]
    conc, occ = ds.concentration.values, ds.occupancy.values
    for i, d in enumerate(ds.day.values):
        vals = [f"{d:g}"] + [f"{x:.6g}" for x in conc[i]] + [f"{x:.6g}" for x in occ[i]]
        lines.append(",".join(vals))
    return "\n".join(lines) + "\n"


@app.command()
def fit(
    config: Annotated[Path, typer.Argument(help="Fit configuration (TOML).")] = Path(
        "fits/default.toml"
    ),
) -> None:
    """Fit the irAE model to the bundled incidence data (arrives with the calibration issue)."""
    typer.echo(
        "no fitting yet: calibration to incidence data is not implemented in this version "
        f"(config {config} not read). PK simulation is available: pdmodel simulate --help"
    )


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
