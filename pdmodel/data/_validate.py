"""Validation of an incidence or timing table: every problem at once, never raising on bad data.

Problems carry spreadsheet line numbers (header = line 1, first data row = line 2, or the lines
recorded in ``df.attrs["lines"]`` by :func:`pdmodel.data.read_csv_cells`).
"""

from __future__ import annotations

import difflib
from functools import lru_cache

import pandas as pd

from ..errors import DataIssue, RegimenError
from ..regimen import Regimen
from ..vocab import AGENTS, CONTROL_AGENTS, ENDPOINTS, ORGAN_CHOICES, SETTINGS
from ._cells import cell_number, cell_text
from ._schema import INCIDENCE_SCHEMA, TIMING_SCHEMA, ColumnSpec
from ._vocabulary import (
    ENDPOINT_ALIASES,
    GRADE_ALIASES,
    GRADE_BANDS,
    ORGAN_TERMS,
    TIMING_QUANTITIES,
    TIMING_STATISTICS,
    split_agents,
)

__all__ = ["validate_incidence", "validate_timing"]


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
            cells = {str(k): cell_text(v) for k, v in rec.items()}
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
        x = cell_number(s)
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
            icis, _controls, bad = split_agents(text)
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
    r.choice("grade", tuple(GRADE_BANDS), aliases=GRADE_ALIASES, label="grade band")


def _check_counts(r: _Row) -> None:
    """n, events and percent: present, in range, and events/n agreeing with percent."""
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


def _check_endpoint(r: _Row) -> None:
    if r.get("endpoint").lower() == "fatal":
        r.issue("endpoint", "endpoint 'fatal' (deaths or shares of fatal cases) is not an "
                f"incidence endpoint for fitting; allowed: {', '.join(ENDPOINTS)}")
    else:
        r.choice("endpoint", ENDPOINTS, aliases=ENDPOINT_ALIASES)


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
        _check_counts(r)
        _check_endpoint(r)
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
