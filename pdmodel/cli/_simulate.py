"""``pdmodel simulate``: concentrations, occupancy and (uncalibrated) incidence for a regimen."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from ..errors import EXIT_RUNTIME
from ._app import Format, app, fail
from ._distributed import Coordinator, NumProcesses, ProcessId, start_processes
from ._jax_setup import setup_jax


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
    organ: Annotated[
        list[str] | None,
        typer.Option(help="Also output irAE incidence for this organ (any, skin, gi, liver, "
                     "lung, thyroid, pituitary); repeatable."),
    ] = None,
    grade: Annotated[
        list[str] | None,
        typer.Option(help="Grade(s) for --organ: any, 2+, 3+ (default any); repeatable."),
    ] = None,
    patients: Annotated[int, typer.Option(help="Virtual patients for incidence.")] = 1000,
    seed: Annotated[int, typer.Option(help="Random seed of the virtual population.")] = 0,
    coordinator: Coordinator = None,
    num_processes: NumProcesses = None,
    process_id: ProcessId = None,
) -> None:
    """Simulate concentrations (µg/mL), receptor occupancy (0-1) and, with --organ/--grade,
    irAE incidence curves from the model's default (prior-mean, uncalibrated) parameters.

    The virtual patients are split across every device (all processes' in a multi-process run,
    --coordinator ...; process 0 writes the output)."""
    from ._options import SimulateOptions, checked

    opts = checked(SimulateOptions, weeks=weeks, weight=weight, step=step, patients=patients,
                   seed=seed, output=output)
    setup_jax()
    procs = start_processes(coordinator, num_processes, process_id)
    from ..io import atomic_write_text
    from ..pk import simulate_pk
    from ..regimen import Regimen

    with procs.guard():
        reg = Regimen.parse(regimen)  # parsed and checked once, here at the boundary
        ds = simulate_pk(reg, days=opts.weeks * 7.0, weight_kg=opts.weight, step=opts.step)
        curves = None
        if organ or grade:
            curves = _incidence_curves(reg, ds, organ or ["any"], grade or ["any"],
                                       opts.weight, opts.patients, opts.seed)
        text = to_json(ds, curves) if format is Format.json else to_csv(ds, curves)
        procs.barrier("simulate-done")  # every process finished before anything is written
        if not procs.is_main:
            return
        if output is None:
            sys.stdout.write(text)
        else:
            try:
                atomic_write_text(output, text)
            except OSError as err:
                fail(f"--output: cannot write {output}: {err.strerror or err}",
                     code=EXIT_RUNTIME)


def _incidence_curves(regimen, ds, organs, grades, weight, patients, seed):
    """Incidence ``{organ: {grade: values on ds.day}}`` from the default model parameters."""
    import math

    import jax
    import numpy as np

    from ..irae import IraeModel, Population, incidence

    days = max(1, math.ceil(float(ds.day.values[-1])))
    pop = Population.sample(jax.random.key(seed), patients, weight_kg=weight or 80.0,
                            max_agents=ds.sizes["agent"])
    # patients split across every device of the run (global mesh in a multi-process run)
    devices = jax.devices() if jax.device_count() > 1 else None
    inc = incidence(IraeModel(), regimen, pop, days=days, organ=list(organs),
                    grade=list(grades), devices=devices)
    grid = np.concatenate([[0.0], inc.day.values])
    out = {}
    for o in organs:
        for g in grades:
            vals = np.concatenate([[0.0], inc.sel(organ=o, grade=g).values])
            out.setdefault(o, {})[g] = np.interp(ds.day.values, grid, vals)
    return out


def to_json(ds, curves=None) -> str:
    """``{"day", "concentration": {agent: [...]}, "occupancy": {target: [...]}}``, plus
    ``"incidence": {organ: {grade: [...]}}`` when curves are given."""
    doc = {
        "day": [float(d) for d in ds.day.values],
        "concentration": {str(a): [float(x) for x in ds.concentration.sel(agent=a).values]
                          for a in ds.agent.values},
        "occupancy": {str(t): [float(x) for x in ds.occupancy.sel(target=t).values]
                      for t in ds.target.values},
    }
    if curves is not None:
        doc["incidence"] = {o: {g: [float(x) for x in v] for g, v in by.items()}
                            for o, by in curves.items()}
    return json.dumps(doc) + "\n"


def to_csv(ds, curves=None) -> str:
    """One row per day: ``day, concentration_<agent>..., occupancy_<target>...`` and
    ``incidence_<organ>_<grade>...`` when curves are given."""
    cols = ["day"] + [f"concentration_{a}" for a in ds.agent.values]
    cols += [f"occupancy_{t}" for t in ds.target.values]
    extra = [(o, g, v) for o, by in (curves or {}).items() for g, v in by.items()]
    cols += [f"incidence_{o}_{g}" for o, g, _ in extra]
    lines = [",".join(cols)]
    conc, occ = ds.concentration.values, ds.occupancy.values
    for i, d in enumerate(ds.day.values):
        vals = [f"{d:g}"] + [f"{x:.6g}" for x in conc[i]] + [f"{x:.6g}" for x in occ[i]]
        vals += [f"{v[i]:.6g}" for _, _, v in extra]
        lines.append(",".join(vals))
    return "\n".join(lines) + "\n"
