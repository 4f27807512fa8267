"""Published irAE data: the bundled dataset, the incidence schema, validation and ``pdmodel data``.

The bundled files ``pdmodel/data/irae_{incidence,timing,management}.csv`` are the curated
shared tables (``shared/data``) with harmonised columns added by
``pdmodel/data/build_dataset.py``; see ``docs/data.md``.

A user's own incidence table uses the long format of :data:`INCIDENCE_SCHEMA` (one row per arm
× organ × grade band); :func:`validate_incidence` reports every problem in it at once, with
spreadsheet line numbers (header = line 1, first data row = line 2), and never raises on bad
data.  ``pdmodel data check FILE.csv`` is the command-line front end.
"""

from __future__ import annotations

import csv
import difflib
import io
import math
import re
from collections import Counter
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from enum import StrEnum
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer

from ..errors import DataError, DataFileError, DataIssue, RegimenError, format_issues
from ..regimen import Regimen
from ..vocab import AGENTS, CONTROL_AGENTS, ENDPOINTS, ORGAN_CHOICES, SETTINGS, get_agent

__all__ = [
    "ColumnSpec", "DataError", "DataFileError", "DataIssue", "INCIDENCE_SCHEMA", "TIMING_SCHEMA",
    "bundled_incidence_as_schema", "check_file", "data_app", "format_issues", "load_incidence",
    "load_management", "load_timing", "read_csv_cells", "read_incidence_csv",
    "validate_incidence", "validate_timing",
]

# --------------------------------------------------------------------------------------------
# Vocabularies
# --------------------------------------------------------------------------------------------

ORGAN_TERMS: dict[str, str] = {
    "any": "any",
    "skin": "skin", "rash": "skin", "pruritus": "skin",
    "gi": "gi", "diarrhea": "gi", "colitis": "gi",
    "liver": "liver", "hepatitis": "liver",
    "lung": "lung", "pneumonitis": "lung",
    "thyroid": "thyroid", "hypothyroidism": "thyroid", "hyperthyroidism": "thyroid",
    "pituitary": "pituitary", "hypophysitis": "pituitary",
    "adrenal": "", "kidney": "", "diabetes": "", "other": "",
}
"""Organ term of the shared vocabulary (plus ``lung``) → pdmodel organ, ``""`` if not modelled."""

SPECIFIC_TERMS: frozenset[str] = frozenset({
    "rash", "pruritus", "diarrhea", "colitis", "hepatitis", "pneumonitis", "hypothyroidism",
    "hyperthyroidism", "hypophysitis", "adrenal", "diabetes",
})
"""Organ terms that name one kind of event (``term_level = specific``); the others are groups."""

GRADE_BANDS: dict[str, tuple[int, int]] = {
    "any": (1, 5), "1-2": (1, 2), "2+": (2, 5), "3+": (3, 5), "3-5": (3, 5), "3-4": (3, 4),
    "3": (3, 3), "4": (4, 4), "5": (5, 5),
}
"""CTCAE grade band as printed → (lowest, highest) grade; bands are exclusive as printed."""

TIMING_QUANTITIES: tuple[str, ...] = ("onset", "resolution", "duration")
TIMING_STATISTICS: tuple[str, ...] = ("median", "mean", "min", "max", "q1", "q3", "fraction_by")

WEEKS_PER_MONTH = 4.345
WEEKS_PER_YEAR = 12 * WEEKS_PER_MONTH

_GRADE_ALIASES = {">=1": "any", "1+": "any", "all": "any", "≥1": "any", ">=2": "2+", "≥2": "2+",
                  "2-5": "2+", "2-4": "2+", ">=3": "3+", "≥3": "3+", "3-5": "3-5", "1-5": "any"}


_ENDPOINT_ALIASES = {
    "drug_related": "treatment_related", "drug-related": "treatment_related",
    "treatment-related": "treatment_related", "trae": "treatment_related",
    "irae": "immune_related", "immune-related": "immune_related",
    "imae": "immune_mediated", "immune-mediated": "immune_mediated",
    "all-cause": "all_cause", "any": "all_cause", "select_ae": "select",
}


def organ_model(term: str) -> str:
    """pdmodel organ of a shared-vocabulary organ term (``""`` if not modelled or unknown)."""
    return ORGAN_TERMS.get(str(term).strip().lower(), "")


def term_level(term: str) -> str:
    """``specific`` for sub-terms such as rash or colitis, ``group`` for group terms and any."""
    return "specific" if str(term).strip().lower() in SPECIFIC_TERMS else "group"


def grade_range(band: str) -> tuple[int, int] | None:
    """(lowest, highest) CTCAE grade of a grade band, or None if the band is unknown."""
    return GRADE_BANDS.get(str(band).strip().lower())


def round_half_up(x: float | str | Decimal) -> int:
    """Nearest integer, halves rounded up, computed in decimal (``2.5 → 3``, ``103.95 → 104``)."""
    return int(Decimal(str(x)).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def events_from_percent(percent: float | str, n: int) -> int:
    """round-half-up(percent × n / 100), exactly as the shared README derives counts."""
    return round_half_up(Decimal(str(percent)) * int(n) / Decimal(100))


_FOLLOWUP = re.compile(
    r"(?:(?:median|minimum|mean)\s+)?(?:follow[- ]?up\s+(?:of\s+)?)?(?:(?:median|minimum)\s+)?"
    r"(?:of\s+)?(\d+(?:\.\d+)?)\s*(days?|d|weeks?|wks?|months?|mo|years?|yrs?)"
    r"(?:\s+(?:of\s+)?follow[- ]?up)?")
_FOLLOWUP_UNITS = {"d": 1 / 7, "day": 1 / 7, "days": 1 / 7, "week": 1.0, "weeks": 1.0, "wk": 1.0,
                   "wks": 1.0, "month": WEEKS_PER_MONTH, "months": WEEKS_PER_MONTH,
                   "mo": WEEKS_PER_MONTH, "year": WEEKS_PER_YEAR, "years": WEEKS_PER_YEAR,
                   "yr": WEEKS_PER_YEAR, "yrs": WEEKS_PER_YEAR}


def followup_weeks(text: str) -> float | None:
    """Follow-up duration in weeks when ``text`` is nothing but a duration, else None.

    Conservative: ``"median 12.5 months"`` → 54.3125, ``"2 years"`` → 104.28,
    ``"median follow-up 18 months"`` → 78.21; anything with more words (``"30 days after last
    dose"``, ``"median time on treatment 4.1 months"``, ``"median 4 doses"``) → None.
    Months × 4.345, years × 52.14, days / 7, as in shared/data.
    """
    m = _FOLLOWUP.fullmatch(str(text).strip().lower())
    if not m:
        return None
    weeks = float(m.group(1)) * _FOLLOWUP_UNITS[m.group(2)]
    return round(weeks, 4) if weeks > 0 else None


# --------------------------------------------------------------------------------------------
# Schema
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ColumnSpec:
    """One column of a data schema.

    Attributes
    ----------
    name, dtype : str
        Column name and value type (``str``, ``int``, ``float``).
    required : bool
        Whether the column must be present (cells may still be blank where ``description`` says).
    allowed : tuple of str or None
        Allowed values (case-insensitive), None for free text or numbers.
    range : str
        Allowed numeric range, as text (``"> 0"``, ``"0..n"``), or ``""``.
    unit, description : str
    """

    name: str
    dtype: str
    required: bool
    allowed: tuple[str, ...] | None
    range: str
    unit: str
    description: str


def _schema(*cols: ColumnSpec) -> dict[str, ColumnSpec]:
    return {c.name: c for c in cols}


INCIDENCE_SCHEMA: dict[str, ColumnSpec] = _schema(
    ColumnSpec("row_id", "str", True, None, "unique", "",
               "row identifier, unique in the file; a blank cell uses the line number"),
    ColumnSpec("source", "str", True, None, "non-empty", "",
               "citation of the published figure; a `citation` column may be used instead "
               "(one of the two is required, and the cell must not be empty)"),
    ColumnSpec("agents", "str", True, tuple(AGENTS) + CONTROL_AGENTS, "", "",
               "'+'-joined arm components: checkpoint inhibitors (INN or brand) and/or the "
               "control components placebo, chemotherapy, vaccine (e.g. "
               "'nivolumab+ipilimumab', 'ipilimumab+vaccine', 'placebo')"),
    ColumnSpec("regimen", "str", True, None, "", "",
               "pdmodel regimen text (Regimen.parse) dosing exactly the arm's checkpoint "
               "inhibitors; free text or empty when `agents` is a control arm"),
    ColumnSpec("n", "int", True, None, "> 0", "patients",
               "patients in the arm (safety population)"),
    ColumnSpec("events", "int", True, None, "0..n", "patients",
               "patients with the event; this column and/or `percent` is required, and each "
               "row needs at least one of the two"),
    ColumnSpec("percent", "float", True, None, "0..100", "% of n",
               "percentage of the arm with the event; must agree with events/n within 1.0 "
               "percentage point + 50/n (rounding)"),
    ColumnSpec("endpoint", "str", True, ENDPOINTS, "", "",
               "attribution definition of the counted events"),
    ColumnSpec("organ", "str", True, tuple(t for t, o in ORGAN_TERMS.items() if o), "", "",
               "pdmodel organ (any, skin, gi, liver, lung, thyroid, pituitary) or a shared-data "
               "term that maps to one (rash, pruritus, diarrhea, colitis, hepatitis, "
               "pneumonitis, hypothyroidism, hyperthyroidism, hypophysitis)"),
    ColumnSpec("grade", "str", True, tuple(GRADE_BANDS), "", "CTCAE grade",
               "grade band as printed: any (>= 1), 1-2, 2+, 3+, 3-5, 3-4, 3, 4, 5"),
    ColumnSpec("followup_weeks", "float", False, None, "> 0", "weeks",
               "follow-up (or reporting window) over which the incidence is cumulative"),
    ColumnSpec("tumour", "str", False, None, "", "", "tumour type (free text)"),
    ColumnSpec("setting", "str", False, SETTINGS, "", "", "treatment setting"),
    ColumnSpec("notes", "str", False, None, "", "", "free text"),
)
"""Long-format incidence table: one row per arm × organ × grade band (user CSVs and bundled)."""

TIMING_SCHEMA: dict[str, ColumnSpec] = _schema(
    INCIDENCE_SCHEMA["row_id"], INCIDENCE_SCHEMA["source"], INCIDENCE_SCHEMA["agents"],
    ColumnSpec("regimen", "str", False, None, "", "",
               "pdmodel regimen text; blank when unknown"),
    INCIDENCE_SCHEMA["organ"], INCIDENCE_SCHEMA["grade"],
    ColumnSpec("quantity", "str", True, TIMING_QUANTITIES, "", "",
               "onset (from first dose), resolution (from onset) or duration"),
    ColumnSpec("statistic", "str", True, TIMING_STATISTICS, "", "",
               "summary statistic; fraction_by = cumulative fraction within window_weeks"),
    ColumnSpec("value_weeks", "float", True, None, ">= 0", "weeks",
               "value of the statistic (blank for fraction_by)"),
    ColumnSpec("window_weeks", "float", False, None, "> 0", "weeks",
               "window of a fraction_by row"),
    ColumnSpec("fraction", "float", False, None, "0..1", "fraction",
               "cumulative fraction of a fraction_by row"),
    ColumnSpec("n_events", "int", False, None, "> 0", "patients or events",
               "patients or events behind the statistic"),
    INCIDENCE_SCHEMA["notes"],
)
"""Long-format timing table (``pdmodel data check --kind timing``)."""


# --------------------------------------------------------------------------------------------
# Issues and errors
# --------------------------------------------------------------------------------------------










# --------------------------------------------------------------------------------------------
# Cell parsing
# --------------------------------------------------------------------------------------------


def _text(v: Any) -> str:
    """Cell as stripped text; None/NaN/NA → ``""``; integral floats lose their ``.0``."""
    if v is None:
        return ""
    try:
        if pd.isna(v):
            return ""
    except (TypeError, ValueError):
        pass
    if isinstance(v, float) and math.isfinite(v) and v.is_integer():
        return str(int(v))
    return str(v).strip()


def _number(s: str) -> float | None:
    """Finite float of ``s``, or None (non-numeric, nan, inf)."""
    try:
        x = float(Decimal(s))
    except (InvalidOperation, ValueError):
        return None
    return x if math.isfinite(x) else None


def _hint(value: str, choices) -> str:
    close = difflib.get_close_matches(value.lower(), list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


_BRANDS = {a.brand.lower(): a.name for a in AGENTS.values()}


@lru_cache(maxsize=4096)
def _parse_regimen(text: str) -> tuple[tuple[str, ...] | None, str]:
    """(agents, "") when ``text`` parses, else (None, parser message)."""
    try:
        return Regimen.parse(text).agents, ""
    except RegimenError as e:
        return None, str(e)


def _split_agents(text: str) -> tuple[list[str], list[str], list[str]]:
    """(checkpoint inhibitors, control components, bad tokens) of an ``agents`` cell."""
    icis, controls, bad = [], [], []
    for tok in text.split("+"):
        t = tok.strip().lower()
        if t in CONTROL_AGENTS:
            controls.append(t)
            continue
        try:
            icis.append(get_agent(t).name)
        except KeyError:
            bad.append(tok.strip())
    return icis, controls, bad


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


class _Rows:
    """Row iteration with line numbers, row ids and an issue list."""

    def __init__(self, df: pd.DataFrame, schema: dict[str, ColumnSpec]):
        self.df = df
        self.cols = [str(c) for c in df.columns]
        self.issues: list[DataIssue] = []
        # columns that can stand in for each other: one of each group is required
        either = {"source": ("source", "citation"), "events": ("events", "percent"),
                  "percent": ()}
        for name, spec in schema.items():
            alternatives = either.get(name, (name,))
            if not spec.required or not alternatives or set(alternatives) & set(self.cols):
                continue
            what = " or ".join(f"'{a}'" for a in alternatives)
            self.issues.append(DataIssue(0, "", name, "", f"missing required column {what}"))
        if len(df) == 0:
            self.issues.append(DataIssue(0, "", "", "", "no data rows"))
        lines = df.attrs.get("lines")
        self.lines = (list(lines) if lines is not None and len(lines) == len(df)
                      else [i + 2 for i in range(len(df))])

    def __iter__(self):
        seen: dict[str, int] = {}
        records = self.df.to_dict("records")
        for line, rec in zip(self.lines, records, strict=True):
            cells = {str(k): _text(v) for k, v in rec.items()}
            rid = cells.get("row_id", "")
            if rid:
                if rid in seen:
                    self.issues.append(DataIssue(
                        line, rid, "row_id", rid,
                        f"duplicate row_id '{rid}' (first used on line {seen[rid]})"))
                else:
                    seen[rid] = line
            yield _Row(self, line, rid or str(line), cells)


class _Row:
    def __init__(self, rows: _Rows, line: int, rid: str, cells: dict[str, str]):
        self.rows, self.line, self.rid, self.cells = rows, line, rid, cells

    def has(self, col: str) -> bool:
        return col in self.cells

    def get(self, col: str) -> str:
        return self.cells.get(col, "")

    def issue(self, field: str, message: str) -> None:
        self.rows.issues.append(DataIssue(self.line, self.rid, field, self.get(field), message))

    def number(self, col: str, *, integer: bool = False, required: bool = False,
               what: str = "") -> float | int | None:
        """Parsed number of ``col`` (None if blank/invalid; invalid is reported)."""
        s = self.get(col)
        if not s:
            if required and self.has(col):
                self.issue(col, f"{col} is required{what}")
            return None
        x = _number(s)
        if x is None:
            pct = " (write the number without '%')" if s.endswith("%") else ""
            self.issue(col, f"{col} '{s}' is not a number{pct}")
            return None
        if integer:
            if not x.is_integer():
                self.issue(col, f"{col} '{s}' is not a whole number")
                return None
            return int(x)
        return x

    def choice(self, col: str, allowed, *, aliases: dict[str, str] | None = None,
               label: str = "") -> str | None:
        s = self.get(col)
        if not self.has(col):
            return None
        low = s.lower()
        if not s:
            self.issue(col, f"{col} is required")
            return None
        if low in allowed:
            return low
        hint = ""
        if aliases and low in aliases:
            hint = f" (did you mean '{aliases[low]}'?)"
        hint = hint or _hint(low, allowed)
        self.issue(col, f"unknown {label or col} '{s}'{hint}; allowed: {', '.join(allowed)}")
        return None


def _check_source(r: _Row) -> None:
    if not (r.has("source") or r.has("citation")):
        return
    if not (r.get("source") or r.get("citation")):
        r.issue("source" if r.has("source") else "citation",
                "empty source: give the citation of the published figure")


def _check_agents_regimen(r: _Row, *, regimen_required: bool, allow_unparsed: bool) -> None:
    icis: list[str] | None = None
    if r.has("agents"):
        text = r.get("agents")
        if not text:
            r.issue("agents", "agents is required (e.g. 'nivolumab', 'nivolumab+ipilimumab', "
                    "'placebo')")
        else:
            icis, _controls, bad = _split_agents(text)
            choices = list(AGENTS) + list(_BRANDS) + list(CONTROL_AGENTS)
            for b in bad:
                what = f"unknown agent '{b}'{_hint(b, choices)}" if b else "empty agent name"
                where = f" in '{text}'" if "+" in text else ""
                r.issue("agents", f"{what}{where}; known: {', '.join(AGENTS)} (or brand names), "
                        f"and the controls {', '.join(CONTROL_AGENTS)}")
            if bad:
                icis = None
            elif len(set(icis)) != len(icis):
                r.issue("agents", f"agent named twice in '{text}'")
    if not r.has("regimen"):
        return
    reg = r.get("regimen")
    if icis is not None and not icis:
        # control arm: free text; it must not dose a checkpoint inhibitor
        got, _ = _parse_regimen(reg) if reg else (None, "")
        if got:
            r.issue("regimen", f"regimen doses {'+'.join(got)} but agents "
                    f"'{r.get('agents')}' names no checkpoint inhibitor")
        return
    if not reg:
        if regimen_required:
            r.issue("regimen", "regimen is required for a checkpoint-inhibitor arm "
                    "(e.g. 'nivolumab 3 mg/kg q2w')")
        return
    got, message = _parse_regimen(reg)
    if got is None:
        if not allow_unparsed:
            r.issue("regimen", f"regimen does not parse: {message}")
        return
    if icis is not None and set(got) != set(icis):
        r.issue("regimen", f"regimen doses {'+'.join(got)} but agents says "
                f"{'+'.join(icis)}")


def _check_organ_grade(r: _Row) -> None:
    if r.has("organ"):
        s = r.get("organ")
        low = s.lower()
        if not s:
            r.issue("organ", "organ is required")
        elif low in ORGAN_TERMS and not ORGAN_TERMS[low]:
            r.issue("organ", f"organ '{s}' is not modelled by pdmodel (modelled: "
                    f"{', '.join(ORGAN_CHOICES)} and their sub-terms)")
        elif low not in ORGAN_TERMS:
            allowed = [t for t, o in ORGAN_TERMS.items() if o]
            r.issue("organ", f"unknown organ '{s}'{_hint(low, allowed)}; allowed: "
                    f"{', '.join(allowed)}")
    r.choice("grade", tuple(GRADE_BANDS), aliases=_GRADE_ALIASES, label="grade band")


def validate_incidence(df: pd.DataFrame, *, allow_unparsed_regimen: bool = False
                       ) -> list[DataIssue]:
    """Every problem of an incidence table in the :data:`INCIDENCE_SCHEMA` format.

    Parameters
    ----------
    df : DataFrame
        One row per arm × organ × grade band; cells may be text or numbers.  Extra columns are
        ignored.
    allow_unparsed_regimen : bool
        Accept checkpoint-inhibitor regimens that :meth:`pdmodel.Regimen.parse` rejects, as
        free-text labels (``"pooled label doses"``).  Used for the bundled data, whose
        ``regimen_parsed`` column records the outcome; user data should leave it False.

    Returns
    -------
    list of DataIssue
        Empty when the table is valid.  Never raises on bad data.
    """
    rows = _Rows(df, INCIDENCE_SCHEMA)
    for r in rows:
        _check_source(r)
        _check_agents_regimen(r, regimen_required=True, allow_unparsed=allow_unparsed_regimen)
        n = r.number("n", integer=True, required=True, what=" (patients in the arm)")
        if n is not None and n <= 0:
            r.issue("n", f"n must be > 0, got {r.get('n')}")
            n = None
        has_e, has_p = bool(r.get("events")), bool(r.get("percent"))
        if (r.has("events") or r.has("percent")) and not (has_e or has_p):
            r.issue("events" if r.has("events") else "percent",
                    "neither events nor percent given")
        e = r.number("events", integer=True)
        if e is not None:
            if e < 0:
                r.issue("events", f"events must be >= 0, got {r.get('events')}")
                e = None
            elif n is not None and e > n:
                r.issue("events", f"events {e} > n {n}")
                e = None
        p = r.number("percent")
        if p is not None and not 0 <= p <= 100:
            r.issue("percent", f"percent must be between 0 and 100, got {r.get('percent')}")
            p = None
        if e is not None and p is not None and n is not None:
            diff = abs(100 * e / n - p)
            tol = 1.0 + 50 / n
            if diff > tol:
                r.issue("percent", f"events/n = {e}/{n} = {100 * e / n:.2f}% disagrees with "
                        f"percent {r.get('percent')} by {diff:.2f} points (> {tol:.2f})")
        if r.get("endpoint").lower() == "fatal":
            r.issue("endpoint", "endpoint 'fatal' (deaths or shares of fatal cases) is not an "
                    f"incidence endpoint for fitting; allowed: {', '.join(ENDPOINTS)}")
        else:
            r.choice("endpoint", ENDPOINTS, aliases=_ENDPOINT_ALIASES)
        _check_organ_grade(r)
        f = r.number("followup_weeks")
        if f is not None and f <= 0:
            r.issue("followup_weeks", f"followup_weeks must be > 0, got {r.get('followup_weeks')}")
        if r.get("setting"):
            r.choice("setting", SETTINGS)
    return rows.issues


def validate_timing(df: pd.DataFrame, *, allow_unparsed_regimen: bool = False
                    ) -> list[DataIssue]:
    """Every problem of a timing table in the :data:`TIMING_SCHEMA` format (never raises)."""
    rows = _Rows(df, TIMING_SCHEMA)
    for r in rows:
        _check_source(r)
        _check_agents_regimen(r, regimen_required=False, allow_unparsed=allow_unparsed_regimen)
        _check_organ_grade(r)
        r.choice("quantity", TIMING_QUANTITIES)
        stat = r.choice("statistic", TIMING_STATISTICS)
        v = r.number("value_weeks", required=stat != "fraction_by" and stat is not None)
        if v is not None and v < 0:
            r.issue("value_weeks", f"value_weeks must be >= 0, got {r.get('value_weeks')}")
        w = r.number("window_weeks")
        if w is not None and w <= 0:
            r.issue("window_weeks", f"window_weeks must be > 0, got {r.get('window_weeks')}")
        fr = r.number("fraction")
        if fr is not None and not 0 <= fr <= 1:
            r.issue("fraction", f"fraction must be between 0 and 1, got {r.get('fraction')}")
        if stat == "fraction_by":
            for col in ("fraction", "window_weeks"):
                if r.has(col) and not r.get(col):
                    r.issue(col, f"{col} is required for a fraction_by row")
                elif not r.has(col):
                    r.issue(col, f"a fraction_by row needs a '{col}' column")
        k = r.number("n_events", integer=True)
        if k is not None and k <= 0:
            r.issue("n_events", f"n_events must be > 0, got {r.get('n_events')}")
    return rows.issues


# --------------------------------------------------------------------------------------------
# Reading files
# --------------------------------------------------------------------------------------------


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
            out[col] = _to_int(out[col])
    for col in ("percent", "followup_weeks"):
        if col in out:
            out[col] = _to_float(out[col])
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
                used.append(events_from_percent(_text(p), int(n)))
            else:
                used.append(pd.NA)
        out["events_used"] = pd.array(used, dtype="Int64")
    out.attrs["issues"] = issues
    return out


def _to_float(col: pd.Series) -> pd.Series:
    vals = [_number(_text(v)) for v in col]
    return pd.Series(pd.array([pd.NA if v is None else v for v in vals], dtype="Float64"),
                     index=col.index, name=col.name)


def _to_int(col: pd.Series) -> pd.Series:
    vals = [_number(_text(v)) for v in col]
    return pd.Series(pd.array([int(v) if v is not None and v.is_integer() else pd.NA
                               for v in vals], dtype="Int64"), index=col.index, name=col.name)


# --------------------------------------------------------------------------------------------
# Bundled data
# --------------------------------------------------------------------------------------------

_INT_COLUMNS = {
    "incidence": ("n", "events", "derived", "control_arm", "verified", "grade_min", "grade_max",
                  "events_used", "regimen_parsed", "fit_default"),
    "timing": ("n_events", "derived", "verified", "grade_min", "grade_max", "fit_default"),
    "management": ("numerator", "denominator", "derived", "verified"),
}
_FLOAT_COLUMNS = {
    "incidence": ("percent", "followup_weeks"),
    "timing": ("value_weeks", "window_weeks", "fraction"),
    "management": ("value",),
}


def _load(kind: str, path: str | Path | None) -> pd.DataFrame:
    if path is None:
        ref = resources.files("pdmodel") / "data" / f"irae_{kind}.csv"
        with ref.open("r", encoding="utf-8") as fh:
            df = pd.read_csv(fh, dtype=str, keep_default_na=False)
    else:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    for col in _INT_COLUMNS[kind]:
        if col in df:
            df[col] = _to_int(df[col])
    for col in _FLOAT_COLUMNS[kind]:
        if col in df:
            df[col] = _to_float(df[col])
    return df


def load_incidence(path: str | Path | None = None) -> pd.DataFrame:
    """Incidence table: bundled (``path=None``) or a file in the same format.

    Text columns are str (blank = ``""``); counts are Int64 and percentages Float64 (blank =
    <NA>).  Columns: the shared ``irae_incidence.csv`` columns plus ``organ_model``,
    ``term_level``, ``grade_min``, ``grade_max``, ``events_used``, ``regimen_parsed``,
    ``agents_model``, ``arm_class``, ``followup_weeks``, ``fit_default``, ``exclusion_reason``
    (docs/data.md).
    """
    return _load("incidence", path)


def load_timing(path: str | Path | None = None) -> pd.DataFrame:
    """Timing table (weeks): bundled (``path=None``) or a file in the same format."""
    return _load("timing", path)


def load_management(path: str | Path | None = None) -> pd.DataFrame:
    """Immunosuppressant-management table: bundled (``path=None``) or a file in that format."""
    return _load("management", path)


def bundled_incidence_as_schema(df: pd.DataFrame | None = None) -> pd.DataFrame:
    """The bundled incidence table in :data:`INCIDENCE_SCHEMA` columns.

    ``source`` ← ``citation``; ``agents`` ← ``agents_model`` joined with ``+`` plus the control
    component of the arm (gp100 → vaccine); ``followup_weeks`` ← the parsed follow-up; other
    schema columns are copied.  Validate with ``allow_unparsed_regimen=True`` (the bundled
    regimens are printed labels where doses are not known; ``regimen_parsed`` says which).
    """
    df = load_incidence() if df is None else df
    controls = {"gp100": "vaccine", "placebo": "placebo", "chemotherapy": "chemotherapy"}
    agents = []
    for shared, model in zip(df["agents"], df["agents_model"], strict=True):
        parts = [a for a in _text(model).split(";") if a]
        parts += [controls[t] for t in _text(shared).split("+") if t in controls]
        agents.append("+".join(parts) if parts else _text(shared))
    cols = ["row_id", "citation", "regimen", "n", "events", "percent", "endpoint", "organ",
            "grade", "followup_weeks", "tumour", "setting", "notes"]
    out = df[cols].rename(columns={"citation": "source"}).copy()
    out.insert(2, "agents", agents)
    return out


# --------------------------------------------------------------------------------------------
# Summary and ``pdmodel data check``
# --------------------------------------------------------------------------------------------


def _summary_incidence(df: pd.DataFrame, name: str) -> str:
    col = {c: [_text(v) for v in df[c]] if c in df else [""] * len(df)
           for c in ("source", "citation", "agents", "regimen", "n", "organ", "grade",
                     "endpoint")}
    src = [s or c for s, c in zip(col["source"], col["citation"], strict=True)]
    arms = {(s, a.lower(), r, n) for s, a, r, n in
            zip(src, col["agents"], col["regimen"], col["n"], strict=True)}
    agents = Counter(t for a in col["agents"] for part in _split_agents(a)[:2] for t in part)
    organs = [organ_model(o) or o.lower() for o in col["organ"]]
    grades = [g.lower() for g in col["grade"]]
    table = Counter(zip(organs, grades, strict=True))
    ns = [int(x) for x in (_number(v) for v in col["n"]) if x is not None]
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
        vals = Counter(_text(v).lower() for v in df[c]) if c in df else Counter()
        return ", ".join(f"{k} {v}" for k, v in vals.most_common())
    organs = Counter(organ_model(_text(o)) for o in df["organ"]) if "organ" in df else Counter()
    return "\n".join([f"{name}: valid timing table", f"rows: {len(df)}",
                      f"agents (rows): {count('agents')}",
                      "organs (rows): " + ", ".join(f"{k} {v}" for k, v in organs.most_common()),
                      f"quantities (rows): {count('quantity')}",
                      f"statistics (rows): {count('statistic')}"])


def check_file(path: str | Path, kind: str = "incidence") -> tuple[list[DataIssue], str]:
    """Validate a CSV file: (every issue, summary text).

    The summary describes the table (rows, arms, agents, organ × grade counts, endpoints, n
    range) when it is valid, and counts the problems otherwise.

    Raises
    ------
    DataFileError
        The file is missing, binary or not a CSV table.
    """
    df, issues = read_csv_cells(path)
    if kind == "incidence":
        issues += validate_incidence(df)
    elif kind == "timing":
        issues += validate_timing(df)
    else:
        raise ValueError(f"kind must be 'incidence' or 'timing', got {kind!r}")
    issues.sort(key=lambda i: i.row)
    if issues:
        return issues, (f"{path}: {len(issues)} problem{'s' if len(issues) != 1 else ''} "
                        f"in {len(df)} data rows")
    summary = (_summary_incidence if kind == "incidence" else _summary_timing)(df, str(path))
    return issues, summary


class Kind(StrEnum):
    """Kinds of data table ``pdmodel data check`` validates."""

    incidence = "incidence"
    timing = "timing"


data_app = typer.Typer(
    add_completion=False, no_args_is_help=True,
    help="Published irAE data: check your own incidence or timing table (docs/data.md).")


@data_app.command("check")
def check_command(
    file: Annotated[Path, typer.Argument(help="CSV file in the pdmodel long format.")],
    kind: Annotated[Kind, typer.Option(help="Table format (docs/data.md).")] = Kind.incidence,
) -> None:
    """Validate FILE: list every problem (exit 1) or print a summary (exit 0).

    Problems are printed as "line N (row_id X), field 'F': message" (header = line 1).
    An unreadable or non-CSV file exits with 2.
    """
    try:
        issues, summary = check_file(file, kind.value)
    except DataFileError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    if issues:
        for i in issues:
            typer.echo(str(i), err=True)
        typer.echo(summary, err=True)
        raise typer.Exit(1)
    typer.echo(summary)
