"""The bundled tables ``pdmodel/data/irae_{incidence,timing,management}.csv``, loaded typed.

They are the curated shared tables (``shared/data``) with harmonised columns added by
``pdmodel/data/build_dataset.py`` (docs/data.md). The loaders are for the fit pipeline and the
command line; the model layers never read them.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pandas as pd

from ._cells import cell_text, float_column, int_column
from ._vocabulary import split_agents

__all__ = ["bundled_incidence_as_schema", "load_incidence", "load_management", "load_timing",
           "management_counts", "typed_table"]

_INT_COLUMNS = {
    "incidence": ("n", "events", "derived", "control_arm", "verified", "grade_min", "grade_max",
                  "events_used", "regimen_parsed", "fit_default"),
    "timing": ("n_events", "derived", "verified", "grade_min", "grade_max", "fit_default"),
    "management": ("numerator", "denominator", "derived", "verified"),
}
_FLOAT_COLUMNS = {
    "incidence": ("percent", "followup_weeks", "course_weeks", "treatment_weeks",
                  "window_weeks"),
    "timing": ("value_weeks", "window_weeks", "fraction"),
    "management": ("value",),
}


def typed_table(df: pd.DataFrame, kind: str) -> pd.DataFrame:
    """A table of text cells with the count columns of the bundled ``kind`` (``incidence``,
    ``timing``, ``management``) as Int64 and its decimal columns as Float64 (blank = <NA>)."""
    df = df.copy()
    for col in _INT_COLUMNS[kind]:
        if col in df:
            df[col] = int_column(df[col])
    for col in _FLOAT_COLUMNS[kind]:
        if col in df:
            df[col] = float_column(df[col])
    return df


def _load(kind: str, path: str | Path | None) -> pd.DataFrame:
    if path is None:
        ref = resources.files("pdmodel") / "data" / f"irae_{kind}.csv"
        with ref.open("r", encoding="utf-8") as fh:
            df = pd.read_csv(fh, dtype=str, keep_default_na=False)
    else:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    return typed_table(df, kind)


def load_incidence(path: str | Path | None = None) -> pd.DataFrame:
    """Incidence table: bundled (``path=None``) or a file in the same format.

    Text columns are str (blank = ``""``); counts are Int64 and percentages Float64 (blank =
    <NA>).  Columns: the shared ``irae_incidence.csv`` columns plus ``organ_model``,
    ``term_level``, ``grade_min``, ``grade_max``, ``events_used``, ``regimen_parsed``,
    ``agents_model``, ``backbone``, ``arm_class``, ``setting_model``, ``regimen_model``,
    ``regimen_basis``, ``course_weeks``, ``treatment_weeks``, ``window_weeks``,
    ``tumour_model``, ``followup_weeks``, ``fit_default``,
    ``exclusion_reason`` (docs/data.md).
    """
    return _load("incidence", path)


def load_timing(path: str | Path | None = None) -> pd.DataFrame:
    """Timing table (weeks): bundled (``path=None``) or a file in the same format."""
    return _load("timing", path)


def load_management(path: str | Path | None = None) -> pd.DataFrame:
    """Immunosuppressant-management table: bundled (``path=None``) or a file in that format."""
    return _load("management", path)


def management_counts(row_ids, management: pd.DataFrame | None = None, *,
                      kind: str = "management") -> pd.DataFrame:
    """The rows ``row_ids`` of the management table (bundled by default), in that order, with
    their count: ``y`` (``numerator``) of ``n`` (``denominator``), integers.

    Raises
    ------
    ValueError
        If a row is missing or has no numerator and denominator (the message names the row
        and calls it a ``kind`` row).
    """
    m = load_management() if management is None else management
    m = m.set_index("row_id", drop=False)
    out = []
    for row_id in row_ids:
        if row_id not in m.index:
            raise ValueError(f"{kind} row {row_id} is not in the management table")
        r = m.loc[row_id]
        if not (pd.notna(r.numerator) and pd.notna(r.denominator) and r.denominator > 0):
            raise ValueError(f"{kind} row {row_id}: numerator and denominator are needed, "
                             f"got {r.numerator!r} of {r.denominator!r}")
        out.append(r.to_dict() | {"n": int(r.denominator), "y": int(r.numerator)})
    return pd.DataFrame(out)


def bundled_incidence_as_schema(df: pd.DataFrame | None = None) -> pd.DataFrame:
    """The bundled incidence table in :data:`INCIDENCE_SCHEMA` columns.

    ``source`` ← ``citation``; ``agents`` ← ``agents_model`` joined with ``+`` plus the
    non-checkpoint-inhibitor components of the arm (gp100 → vaccine); ``regimen`` ← the regimen
    the arm is simulated with (``regimen_model``; the printed ``regimen`` for control arms);
    ``followup_weeks`` ← the parsed follow-up; other schema columns are copied. The default-fit
    rows pass :func:`validate_incidence` with no issue.
    """
    df = load_incidence() if df is None else df
    agents = []
    for shared, model in zip(df["agents"], df["agents_model"], strict=True):
        parts = [a for a in cell_text(model).split(";") if a]
        parts += split_agents(cell_text(shared))[1]
        agents.append("+".join(parts) if parts else cell_text(shared))
    cols = ["row_id", "citation", "regimen", "n", "events", "percent", "endpoint", "organ",
            "grade", "followup_weeks", "tumour", "setting", "notes"]
    out = df[cols].rename(columns={"citation": "source"}).copy()
    out.insert(2, "agents", agents)
    simulated = df["regimen_model"].map(cell_text)
    out["regimen"] = simulated.where(simulated != "", out["regimen"])
    return out

