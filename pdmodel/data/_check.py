"""Checking a CSV file: every problem, or a summary of a valid table (``pdmodel data check``)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pandas as pd

from ..errors import DataIssue
from ..vocab import ORGAN_CHOICES
from ._cells import cell_number, cell_text
from ._read import read_csv_cells
from ._validate import validate_incidence, validate_timing
from ._vocabulary import GRADE_BANDS, organ_model, split_agents

__all__ = ["check_file", "checked_cells"]


def _summary_incidence(df: pd.DataFrame, name: str) -> str:
    col = {c: [cell_text(v) for v in df[c]] if c in df else [""] * len(df)
           for c in ("source", "citation", "agents", "regimen", "n", "organ", "grade",
                     "endpoint")}
    src = [s or c for s, c in zip(col["source"], col["citation"], strict=True)]
    arms = {(s, a.lower(), r, n) for s, a, r, n in
            zip(src, col["agents"], col["regimen"], col["n"], strict=True)}
    agents = Counter(t for a in col["agents"] for part in split_agents(a)[:2] for t in part)
    organs = [organ_model(o) or o.lower() for o in col["organ"]]
    grades = [g.lower() for g in col["grade"]]
    table = Counter(zip(organs, grades, strict=True))
    ns = [int(x) for x in (cell_number(v) for v in col["n"]) if x is not None]
    lines = [f"{name}: valid incidence table",
             f"rows: {len(df)}", f"arms: {len(arms)} (distinct source × agents × regimen × n)",
             "agents (rows): " + ", ".join(f"{a} {k}" for a, k in agents.most_common()),
             "endpoints (rows): " + ", ".join(
                 f"{e} {k}" for e, k in Counter(x.lower() for x in col["endpoint"]).most_common()),
             f"n range: {min(ns)}-{max(ns)}" if ns else "n range: -"]
    gcols = [g for g in GRADE_BANDS if g in set(grades)]
    ocols = [o for o in ORGAN_CHOICES if o in set(organs)]
    lines.append("organ x grade (rows):")
    lines.append("  " + "organ".ljust(10) + "".join(g.rjust(6) for g in gcols))
    for o in ocols:
        lines.append("  " + o.ljust(10) + "".join(str(table.get((o, g), 0)).rjust(6)
                                                  for g in gcols))
    return "\n".join(lines)


def _summary_timing(df: pd.DataFrame, name: str) -> str:
    def count(c):
        vals = Counter(cell_text(v).lower() for v in df[c]) if c in df else Counter()
        return ", ".join(f"{k} {v}" for k, v in vals.most_common())
    organs = Counter(organ_model(cell_text(o)) for o in df["organ"]) if "organ" in df else Counter()
    return "\n".join([f"{name}: valid timing table", f"rows: {len(df)}",
                      f"agents (rows): {count('agents')}",
                      "organs (rows): " + ", ".join(f"{k} {v}" for k, v in organs.most_common()),
                      f"quantities (rows): {count('quantity')}",
                      f"statistics (rows): {count('statistic')}"])


def checked_cells(path: str | Path, kind: str = "incidence"
                  ) -> tuple[pd.DataFrame, list[DataIssue]]:
    """The cells of a CSV file (:func:`read_csv_cells`) and every issue of the file and of
    the ``kind`` table (``incidence`` or ``timing``), sorted by line.

    Raises
    ------
    DataFileError
        The file is missing, binary or not a CSV table.
    """
    if kind not in ("incidence", "timing"):
        raise ValueError(f"kind must be 'incidence' or 'timing', got {kind!r}")
    df, issues = read_csv_cells(path)
    issues += (validate_incidence if kind == "incidence" else validate_timing)(df)
    return df, sorted(issues, key=lambda i: i.row)


def check_file(path: str | Path, kind: str = "incidence") -> tuple[list[DataIssue], str]:
    """Validate a CSV file: (every issue, summary text).

    The summary describes the table (rows, arms, agents, organ × grade counts, endpoints, n
    range) when it is valid, and counts the problems otherwise.

    Raises
    ------
    DataFileError
        The file is missing, binary or not a CSV table.
    """
    df, issues = checked_cells(path, kind)
    if issues:
        return issues, (f"{path}: {len(issues)} problem{'s' if len(issues) != 1 else ''} "
                        f"in {len(df)} data rows")
    summary = (_summary_incidence if kind == "incidence" else _summary_timing)(df, str(path))
    return issues, summary
