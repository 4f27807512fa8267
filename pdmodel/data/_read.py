"""Reading a CSV file: every cell as text with its spreadsheet line, and a user incidence table
read, validated and typed."""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from pathlib import Path
from typing import NamedTuple

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


class _Record(NamedTuple):
    """One CSV record: its first and last spreadsheet line and its fields."""

    first: int
    last: int
    fields: list[str]


def _records(text: str, path: str | Path) -> list[_Record]:
    """Every record of ``text`` with the physical lines it spans (a quoted field may span
    several lines)."""
    reader = csv.reader(io.StringIO(text, newline=""))
    out: list[_Record] = []
    try:
        for fields in reader:
            first = out[-1].last + 1 if out else 1
            out.append(_Record(first, reader.line_num, fields))
    except csv.Error as e:
        raise DataFileError(f"{path}: not a valid CSV file (line {reader.line_num}: {e})") \
            from None
    return out


def _quote_left_open(line: str) -> bool:
    """Whether a quote opens a field of ``line`` and is not closed on it (the CSV reader
    would go on reading the next line into that field)."""
    reader = csv.reader([line.rstrip("\r\n") + "\n", "\n"])
    next(reader, None)
    return reader.line_num > 1


def _split_swallowed(records: list[_Record], text: str, header: list[str] | None
                     ) -> tuple[list[_Record], list[DataIssue]]:
    """Records whose quote is left open, read again line by line, with an issue per line
    where a quote opens and is not closed.

    A quote that opens a field and is not closed on its line makes the CSV reader swallow the
    following lines into that field up to the next quote (a stray ``"`` in a free-text cell
    turns five rows into one), or, on the last line, the rest of the line into one cell.
    pdmodel tables never hold a line break in a cell, so such a quote is an error at the line
    where it opens, and every line is read on its own, the open quote taken as a character of
    its cell, so that the other rows are still checked.
    """
    physical = io.StringIO(text, newline="").readlines()
    out, issues = [], []
    for rec in records:
        if rec.last == rec.first and not _quote_left_open(physical[rec.first - 1]):
            out.append(rec)
            continue
        for k in range(rec.first, rec.last + 1):
            line = physical[k - 1]
            fields = next(csv.reader([line.rstrip("\r\n")]), [])
            if not _quote_left_open(line):
                out.append(_Record(k, k, fields))
                continue
            # the line as typed: the cells after the open quote split at their commas
            rest = next(csv.reader([fields[-1]]), [""])
            out.append(_Record(k, k, fields[:-1] + ['"' + rest[0], *rest[1:]]))
            column = len(fields) - 1
            if header is None:
                name, rid, field = "the header", "", ""
            else:
                field = header[column] if column < len(header) else ""
                name = f"column '{field}'" if field else f"field {column + 1}"
                at = header.index("row_id") if "row_id" in header else column
                rid = fields[at].strip() if at < column else ""
            effect = (f"so a CSV reader runs lines {k}-{rec.last} together into one row"
                      if k == rec.first and rec.last > k else
                      "so a CSV reader reads the rest of the line as one cell"
                      if k == rec.first else "so a CSV reader joins it to the next lines")
            issues.append(DataIssue(
                0 if header is None else k, rid or str(k), field, "",
                f"unbalanced quote: {name} opens a '\"' that is not closed on line {k}, "
                f"{effect}; remove the stray '\"' or close it (a cell cannot hold a line "
                "break)"))
    return out, issues


def read_csv_cells(path: str | Path) -> tuple[pd.DataFrame, list[DataIssue]]:
    """All cells of a CSV file as text (blank = ``""``), plus structural issues.

    Header names are stripped and lower-cased. Rows with more fields than the header are
    reported; shorter rows are padded with blanks. A quote that is not closed on its line
    (which would make the following lines one cell) is reported at the line where it opens,
    and the lines it would swallow are read as rows of their own. ``df.attrs["lines"]`` holds
    the spreadsheet line of every row.

    Raises
    ------
    DataFileError
        The file is missing, binary, empty or not CSV.
    """
    text = _read_text(path)
    if not text.strip():
        raise DataFileError(f"{path}: empty file (expected a CSV header line)")
    records = _records(text, path)
    # non-blank records; blank lines keep their line number
    numbered = [r for r in records if any(c.strip() for c in r.fields)]
    if not numbered:
        raise DataFileError(f"{path}: empty file (expected a CSV header line)")
    head, issues = _split_swallowed(numbered[:1], text, None)
    header = [h.strip().lower() for h in head[0].fields]
    if len(header) < 2:
        raise DataFileError(f"{path}: not a CSV table (the header line has {len(header)} "
                            "column; expected comma-separated column names)")
    body, swallowed = _split_swallowed(head[1:] + numbered[1:], text, header)
    issues += swallowed
    dup = [h for h, k in Counter(header).items() if k > 1]
    for h in dup:
        issues.append(DataIssue(0, "", h, h, f"column '{h}' appears more than once"))
    width = len(header)
    rows, lines = [], []
    for rec in body:
        if not any(c.strip() for c in rec.fields):
            continue
        if len(rec.fields) > width and any(c.strip() for c in rec.fields[width:]):
            rid = rec.fields[header.index("row_id")].strip() if "row_id" in header else ""
            issues.append(DataIssue(rec.first, rid or str(rec.first), "", "",
                                    f"row has {len(rec.fields)} fields but the header has "
                                    f"{width}"))
        rows.append([c.strip() for c in (rec.fields + [""] * width)[:width]])
        lines.append(rec.first)
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
