"""``pdmodel agents``: the checkpoint inhibitors, their targets, PK models and potencies."""

from __future__ import annotations

import typer

from ._app import app


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
