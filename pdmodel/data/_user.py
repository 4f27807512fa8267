"""A user's own incidence or timing table on the path of the bundled one: checked by the rules
of ``pdmodel data check``, then harmonised by the functions that build the bundled tables
(``_harmonise``), so that the fit reads it exactly as it reads the bundled table.

A user's row maps onto the shared row format the build reads: ``study`` ← a ``study`` column if
the file has one, else ``source`` (or ``citation``): rows with the same study share a trial
effect; ``verified`` ← a ``verified`` column if the file has one (1 = verified), else 1 (the
user vouches for the figures); ``control_arm`` = 1 when ``agents`` names no checkpoint
inhibitor; ``regimen_note`` and ``followup`` ← columns of those names if present (a planned
course "up to 1 year", a printed follow-up text), else blank. The
vocabulary columns (endpoint, organ, grade, setting, and quantity, statistic of a timing table)
are lower-cased, as the bundled tables write them. A ``followup_weeks`` cell, when given, is the
follow-up; the harmonised columns the file may already have (a copy of bundled rows) are
computed again.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..errors import DataError, format_issues
from ._bundled import typed_table
from ._cells import cell_number
from ._check import checked_cells
from ._harmonise import incidence_rows, timing_rows
from ._vocabulary import split_agents

__all__ = ["load_user_incidence", "load_user_timing"]

_LOWER = ("endpoint", "organ", "grade", "setting", "quantity", "statistic")
"""Vocabulary columns, validated case-insensitively, written in lower case as bundled."""


def _checked_rows(path: str | Path, kind: str) -> list[dict[str, str]]:
    """The rows of a valid ``kind`` table as shared-format text cells, with ``row_id`` (the
    line number where blank) and ``_line`` (the spreadsheet line).

    Raises
    ------
    DataFileError
        The file is missing, binary or not CSV.
    DataError
        The table has problems: the message is the full report (:func:`format_issues`).
    """
    df, issues = checked_cells(path, kind)
    if issues:
        raise DataError(format_issues(issues, str(path)), issues)
    rows = []
    for line, cells in zip(df.attrs["lines"], df.to_dict("records"), strict=True):
        source = cells.get("source") or cells.get("citation", "")
        row = dict(cells) | {c: cells[c].lower() for c in _LOWER if c in cells}
        row |= {"row_id": cells.get("row_id") or str(line), "study": cells.get("study") or source,
                "citation": source, "verified": cells.get("verified", "1"),
                "control_arm": "0" if split_agents(cells["agents"])[0] else "1", "_line": line}
        for col in ("regimen", "regimen_note", "followup", "setting", "tumour", "notes"):
            row.setdefault(col, "")
        rows.append(row)
    return rows


def _table(rows: list[dict], added: list[dict], kind: str, path: str | Path) -> pd.DataFrame:
    df = pd.DataFrame([r | a for r, a in zip(rows, added, strict=True)], dtype=str)
    lines = [int(x) for x in df.pop("_line")]
    out = typed_table(df, kind)
    out.attrs.update(lines=lines, source=str(path))
    return out


def load_user_incidence(path: str | Path) -> pd.DataFrame:
    """A user's incidence CSV, checked and harmonised as the bundled table.

    The file is validated with the rules of ``pdmodel data check`` (:data:`INCIDENCE_SCHEMA`),
    then gets the columns the build adds to the bundled table (``organ_model``,
    ``grade_min``, ``events_used``, ``agents_model``, ``backbone``, ``arm_class``,
    ``setting_model``, ``regimen_model``, ``fit_default``, ``exclusion_reason``, ...; see
    docs/data.md §2), computed by the same functions, so that the fit uses it as it uses the
    bundled table. The row rules are the bundled ones: e.g. an arm whose backbone has no
    control arm in the file, or a single grade band (3, 4, 5), gets ``fit_default = 0`` with
    the reason.

    Parameters
    ----------
    path : str or Path
        CSV in the long format of :data:`INCIDENCE_SCHEMA`.

    Returns
    -------
    DataFrame
        One row per data row, typed as :func:`load_incidence` types the bundled table;
        ``attrs["lines"]`` holds each row's spreadsheet line.

    Raises
    ------
    DataFileError
        The file is missing, binary or not CSV.
    DataError
        The table has problems: the message is the full report, one line per problem (as
        ``pdmodel data check`` prints it), and ``issues`` holds them.
    """
    rows = _checked_rows(path, "incidence")
    added = incidence_rows(rows, assume_doses=False)
    for r, a in zip(rows, added, strict=True):
        weeks = cell_number(r.get("followup_weeks", ""))
        if weeks is not None:  # the file's own follow-up, not a text to parse
            a["followup_weeks"] = f"{weeks:.4f}".rstrip("0").rstrip(".")
    return _table(rows, added, "incidence", path)


def load_user_timing(path: str | Path) -> pd.DataFrame:
    """A user's timing CSV (:data:`TIMING_SCHEMA`), checked by the rules of ``pdmodel data
    check --kind timing`` and harmonised as the bundled timing table (``organ_model``,
    ``grade_min``, ``grade_max``, ``agents_model``, ``fit_default``, ``exclusion_reason``).

    ``value_orig`` (the bundled table's printed value) is the ``value_weeks`` cell.

    Raises
    ------
    DataFileError, DataError
        As :func:`load_user_incidence`.
    """
    rows = _checked_rows(path, "timing")
    for r in rows:
        r.setdefault("value_orig", r.get("value_weeks", ""))
        for col in ("value_weeks", "fraction"):
            r.setdefault(col, "")
    return _table(rows, timing_rows(rows), "timing", path)
