"""Where the calibration is informed by data: the default-fit incidence rows counted by agent
(and combination) and by control backbone (``pdmodel data summary``, docs/data.md §4)."""

from __future__ import annotations

import pandas as pd

from ..vocab import AGENTS, BACKBONES
from ._cells import cell_text

__all__ = ["COVERAGE_COLUMNS", "coverage", "coverage_markdown"]

COVERAGE_COLUMNS: tuple[str, ...] = (
    "arm_group", "studies", "arms", "patients", "rows", "organ_grade_cells", "organs",
    "endpoints", "settings", "backbones", "regimens")
"""Columns of :func:`coverage`: the group, then counts, then ``;``-joined vocabularies."""

_ARM_KEY = ("study", "agents", "regimen", "n", "setting", "tumour")


def _group(row) -> str:
    agents = cell_text(row["agents_model"])
    if agents:
        return agents.replace(";", "+")
    return f"control: {cell_text(row['backbone']) or 'placebo'}"


def _order(group: str) -> tuple:
    singles = {a: i for i, a in enumerate(AGENTS)}
    if group.startswith("control: "):
        name = group.removeprefix("control: ")
        return (2, BACKBONES.index(name) if name in BACKBONES else -1, group)
    if "+" in group:
        return (1, 0, group)
    return (0, singles.get(group, len(singles)), group)


def _join(values) -> str:
    return ";".join(sorted({cell_text(v) for v in values} - {""}))


def coverage(df: pd.DataFrame, *, default_fit_only: bool = True) -> pd.DataFrame:
    """Coverage of the incidence rows ``df`` (bundled format, e.g. ``load_incidence()``): one
    row per checkpoint-inhibitor set (``nivolumab``, ``nivolumab+ipilimumab``, ...), then one
    per control backbone (``control: chemotherapy``; ``control: placebo`` for placebo alone).

    An arm is one (study, agents, printed regimen, n, setting, tumour); ``patients`` sums
    ``n`` over arms (overlapping pools counted once each time they appear: an upper bound);
    ``organ_grade_cells`` counts distinct (organ, grade band) pairs; the text columns list the
    organs, endpoints, settings (``setting_model``), backbones and simulated regimens.
    """
    rows = df[df["fit_default"] == 1] if default_fit_only else df
    rows = rows.assign(arm_group=[_group(r) for _, r in rows.iterrows()])
    out = []
    for group, g in rows.groupby("arm_group", sort=False):
        arms = g.drop_duplicates(list(_ARM_KEY))
        out.append({
            "arm_group": group,
            "studies": g["study"].nunique(),
            "arms": len(arms),
            "patients": int(pd.to_numeric(arms["n"], errors="coerce").fillna(0).sum()),
            "rows": len(g),
            "organ_grade_cells": len(g.drop_duplicates(["organ_model", "grade"])),
            "organs": _join(g["organ_model"]),
            "endpoints": _join(g["endpoint"]),
            "settings": _join(g["setting_model"] if "setting_model" in g else g["setting"]),
            "backbones": _join(g["backbone"]) if "backbone" in g else "",
            "regimens": len({cell_text(x) for x in g.get("regimen_model", g["regimen"])} - {""}),
        })
    table = pd.DataFrame(out, columns=list(COVERAGE_COLUMNS))
    return table.sort_values("arm_group", key=lambda s: s.map(_order)).reset_index(drop=True)


def coverage_markdown(table: pd.DataFrame) -> str:
    """:func:`coverage` as a Markdown table (docs/data.md, fit reports)."""
    cols = list(table.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in table.iterrows():
        lines.append("| " + " | ".join(str(r[c]).replace(";", ", ") for c in cols) + " |")
    return "\n".join(lines) + "\n"
