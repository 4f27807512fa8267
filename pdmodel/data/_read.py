"""Reading a CSV file: every cell as text with its spreadsheet line, and a user incidence table
read, validated and typed."""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from pathlib import Path

import pandas as pd

from ..errors import DataError, DataFileError, DataIssue, format_issues
from ._cells import cell_text, float_column, int_column
from ._validate import validate_incidence
from ._vocabulary import events_from_percent, grade_range, organ_model

__all__ = ["read_csv_cells", "read_incidence_csv"]


def _read_text(path: str | Path) -> str:
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise DataFileError(f"{p}: no such file") from None
    except IsADirectoryError:
        raise DataFileError(f"{p}: is a directory, not a CSV file") from None
    except OSError as e:
        raise DataFileError(f"{p}: cannot read ({e.strerror or e})") from None
    if b"\x00" in raw:
        raise DataFileError(f"{p}: not a CSV text file (binary content)")
    for enc in ("utf-8-sig", "cp1252"):
        try:
            text = raw.decode(enc)
        except UnicodeDecodeError:
            continue
        if re.search(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", text):
            raise DataFileError(f"{p}: not a CSV text file (control characters)")
        return text
    raise DataFileError(f"{p}: not a CSV text file (not UTF-8 text)")


def read_csv_cells(path: str | Path) -> tuple[pd.DataFrame, list[DataIssue]]:
    """All cells of a CSV file as text (blank = ``""``), plus structural issues.

    Header names are stripped and lower-cased.  Rows with more fields than the header are
    reported; shorter rows are padded with blanks.

    Raises
    ------
    DataFileError
        The file is missing, binary, empty or not CSV.
    """
    text = _read_text(path)
    if not text.strip():
        raise DataFileError(f"{path}: empty file (expected a CSV header line)")
    try:
        records = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as e:
        raise DataFileError(f"{path}: not a valid CSV file ({e})") from None
    # (spreadsheet line, fields) of non-blank records; blank lines keep their line number
    numbered = [(i + 1, rec) for i, rec in enumerate(records) if any(c.strip() for c in rec)]
    if not numbered:
        raise DataFileError(f"{path}: empty file (expected a CSV header line)")
    header = [h.strip().lower() for h in numbered[0][1]]
    issues: list[DataIssue] = []
    if len(header) < 2:
        raise DataFileError(f"{path}: not a CSV table (the header line has {len(header)} "
                            "column; expected comma-separated column names)")
    dup = [h for h, k in Counter(header).items() if k > 1]
    for h in dup:
        issues.append(DataIssue(0, "", h, h, f"column '{h}' appears more than once"))
    width = len(header)
    rows, lines = [], []
    for line, rec in numbered[1:]:
        if len(rec) > width and any(c.strip() for c in rec[width:]):
            rid = rec[header.index("row_id")].strip() if "row_id" in header else ""
            issues.append(DataIssue(line, rid or str(line), "", "",
                                    f"row has {len(rec)} fields but the header has {width}"))
        rows.append([c.strip() for c in (rec + [""] * width)[:width]])
        lines.append(line)
    if dup:  # keep the first of duplicated columns
        keep = [header.index(h) for h in dict.fromkeys(header)]
        header = [header[j] for j in keep]
        rows = [[row[j] for j in keep] for row in rows]
    df = pd.DataFrame(rows, columns=header, dtype=object)
    df.attrs["lines"] = lines
    return df, issues


def read_incidence_csv(path: str | Path, strict: bool = True) -> pd.DataFrame:
    """Read and validate a user incidence CSV (:data:`INCIDENCE_SCHEMA`).

    Returns the table with typed schema columns (``n``, ``events`` as Int64; ``percent``,
    ``followup_weeks`` as Float64; invalid cells as <NA>) and added ``organ_model``,
    ``grade_min``, ``grade_max``, ``events_used`` (events, else round-half-up(percent × n/100)).

    Raises
    ------
    DataFileError
        Unreadable or non-CSV file.
    DataError
        With ``strict`` and any issue: the message lists every issue.  Without ``strict`` the
        issues are in ``df.attrs["issues"]``.
    """
    df, issues = read_csv_cells(path)
    issues = issues + validate_incidence(df)
    if issues and strict:
        raise DataError(format_issues(issues, str(path)), issues)
    out = df.copy()
    for col in ("n", "events"):
        if col in out:
            out[col] = int_column(out[col])
    for col in ("percent", "followup_weeks"):
        if col in out:
            out[col] = float_column(out[col])
    # a cell with an issue is <NA>, never a silently wrong number
    index_of = dict(zip(df.attrs.get("lines", []), out.index, strict=True))
    for i in issues:
        if i.row in index_of and i.field in ("n", "events", "percent", "followup_weeks"):
            out.loc[index_of[i.row], i.field] = pd.NA
    if "organ" in out:
        out["organ_model"] = [organ_model(t) for t in out["organ"]]
    if "grade" in out:
        rng = [grade_range(g) or (pd.NA, pd.NA) for g in out["grade"]]
        out["grade_min"] = pd.array([a for a, _ in rng], dtype="Int64")
        out["grade_max"] = pd.array([b for _, b in rng], dtype="Int64")
    if "n" in out:
        na = pd.Series(pd.NA, index=out.index)
        used = []
        for e, p, n in zip(out.get("events", na), out.get("percent", na), out["n"],
                           strict=True):
            if not pd.isna(e):
                used.append(int(e))
            elif not pd.isna(p) and not pd.isna(n):
                used.append(events_from_percent(cell_text(p), int(n)))
            else:
                used.append(pd.NA)
        out["events_used"] = pd.array(used, dtype="Int64")
    out.attrs["issues"] = issues
    return out
