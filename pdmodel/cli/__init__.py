"""The ``pdmodel`` command line: ``agents``, ``simulate``, ``fit``.

Global JAX switches (float64, the persistent compilation cache) are set here, at the entry
point, never on import. pdmodel itself makes no assumption about the platform: the same code
runs on CPU and GPU (``JAX_PLATFORMS`` picks the device).
"""

from __future__ import annotations

import json
import os
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


CACHE_ENV = "PDMODEL_CACHE_DIR"
"""Environment variable: folder of the persistent JAX compilation cache."""
NO_CACHE_ENV = "PDMODEL_NO_CACHE"
"""Environment variable: set to 1 to switch the persistent compilation cache off."""


def _setup_jax() -> None:
    import jax

    jax.config.update("jax_enable_x64", True)
    enable_compilation_cache()


def compilation_cache_dir() -> Path | None:
    """Folder of the persistent compilation cache the CLI uses, or ``None`` when switched off.

    ``$PDMODEL_NO_CACHE`` (any value but ``""``/``0``) switches it off; otherwise
    ``$PDMODEL_CACHE_DIR``, else ``$XDG_CACHE_HOME/pdmodel/jax`` (default
    ``~/.cache/pdmodel/jax``).
    """
    if os.environ.get(NO_CACHE_ENV, "").strip() not in ("", "0"):
        return None
    path = os.environ.get(CACHE_ENV, "").strip()
    if path:
        return Path(path).expanduser()
    base = os.environ.get("XDG_CACHE_HOME", "").strip() or Path.home() / ".cache"
    return Path(base) / "pdmodel" / "jax"


def enable_compilation_cache() -> Path | None:
    """Turn on JAX's persistent compilation cache (entry points only: a global switch).

    Programs that took at least a second to compile are stored on disk and reused by later
    runs with the same shapes, JAX/XLA version and device, so a second ``pdmodel fit``/
    ``predict`` starts without recompiling. A cache folder already configured for JAX
    (``JAX_COMPILATION_CACHE_DIR``) is kept. Returns the folder in use, or ``None``.
    """
    import jax

    path = compilation_cache_dir()
    if path is None:
        return None
    if jax.config.jax_compilation_cache_dir:
        return Path(jax.config.jax_compilation_cache_dir)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None  # read-only home, etc.: run without the cache
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
    return path


def _fail(message: str, code: int = 2) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


@app.command()
def agents() -> None:
    """List the checkpoint inhibitors: target, class, PK model and its source, potency."""
    from ..pk import pk_model, potencies
    from ..vocab import AGENTS

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
) -> None:
    """Simulate concentrations (µg/mL), receptor occupancy (0-1) and, with --organ/--grade,
    irAE incidence curves from the model's default (prior-mean, uncalibrated) parameters."""
    _setup_jax()
    from ..errors import RegimenError
    from ..pk import simulate_pk

    try:
        ds = simulate_pk(regimen, days=weeks * 7.0, weight_kg=weight, step=step)
        curves = None
        if organ or grade:
            curves = _incidence_curves(regimen, ds, organ or ["any"], grade or ["any"],
                                       weight, patients, seed)
    except (RegimenError, ValueError) as err:
        _fail(str(err))
    if format is Format.json:
        text = to_json(ds, curves)
    else:
        text = to_csv(ds, curves)
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text)


def _incidence_curves(regimen, ds, organs, grades, weight, patients, seed):
    """Incidence ``{organ: {grade: values on ds.day}}`` from the default model parameters."""
    import math

    import jax
    import numpy as np

    from ..irae import IraeModel, Population, incidence

    if patients < 1:
        raise ValueError(f"--patients must be >= 1, got {patients}")
    days = max(1, math.ceil(float(ds.day.values[-1])))
    pop = Population.sample(jax.random.key(seed), patients, weight_kg=weight or 80.0,
                            max_agents=ds.sizes["agent"])
    inc = incidence(IraeModel(), regimen, pop, days=days, organ=list(organs),
                    grade=list(grades))
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
) -> None:
    """Calibrate the irAE model to the bundled incidence data (MAP, Laplace approximation,
    then NUTS on an emulator checked against the exact model; nuts.method selects) and write a
    run folder: posterior (arviz DataTree), diagnostics (R-hat, ESS, divergences), parameters,
    incidence curves, predictive and onset checks, plots."""
    _setup_jax()
    from ..errors import ConfigError, RunFolderError
    from ..fit import apply_overrides, load_config, run_fit

    try:
        cfg = load_config(config)
        if set_:
            cfg = apply_overrides(cfg, list(set_))
        out = run_fit(cfg, resume=resume, progress=progress, echo=typer.echo)
    except (ConfigError, RunFolderError, FileNotFoundError) as err:
        _fail(str(err))
    typer.echo(f"results written to {out}")


@app.command()
def predict(
    regimen: Annotated[str, typer.Option(help='Regimen text, e.g. "nivolumab 240 mg q2w".')],
    fit: Annotated[Path, typer.Option("--fit", help="Fit run folder.")] = Path("fits/reference"),
    weeks: Annotated[float, typer.Option(help="Weeks from the first dose.")] = 52.0,
    organ: Annotated[str, typer.Option(help="any, skin, gi, liver, lung, thyroid, pituitary")]
    = "any",
    grade: Annotated[str, typer.Option(help="any, 2+ or 3+")] = "any",
    endpoint: Annotated[str, typer.Option(help="Reporting definition: immune_related, "
                                          "treatment_related, immune_mediated, select, "
                                          "all_cause.")] = "immune_related",
    weight: Annotated[float, typer.Option(help="Median body weight of the arm, kg.")] = 80.0,
    format: Annotated[Format, typer.Option("--format", help="Output format.")] = Format.csv,
) -> None:
    """Calibrated cumulative incidence of an irAE for a regimen, with the 90% interval of the
    proportion a trial arm of typical size (300 patients) would report."""
    _setup_jax()
    import math

    from ..errors import FitLoadError, RegimenError
    from ..fit import load_fit

    try:
        result = load_fit(fit)
        ds = result.incidence(regimen, days=max(1, math.ceil(weeks * 7)), organ=organ,
                              grade=grade, covariates={"weight_kg": weight}, endpoint=endpoint)
    except (FitLoadError, RegimenError, ValueError) as err:
        _fail(str(err))
    if format is Format.json:
        doc = {"regimen": ds.attrs["regimen"], "organ": organ, "grade": grade,
               "days": [float(d) for d in ds.day.values],
               "mean": [float(x) for x in ds["mean"].values],
               "lower": [float(x) for x in ds["lower"].values],
               "upper": [float(x) for x in ds["upper"].values],
               "interval": float(ds.attrs["interval"]), "fit": str(fit)}
        sys.stdout.write(json.dumps(doc) + "\n")
    else:
        lines = ["day,mean,lower,upper"]
        lines += [f"{d:g},{m:.6g},{lo:.6g},{hi:.6g}" for d, m, lo, hi in
                  zip(ds.day.values, ds["mean"].values, ds["lower"].values, ds["upper"].values,
                      strict=True)]
        sys.stdout.write("\n".join(lines) + "\n")


from ..data import data_app  # noqa: E402

app.add_typer(data_app, name="data")


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
