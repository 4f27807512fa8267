"""Validation of an incidence or timing table: pandera schemas over the table's cells, every
problem at once, never raising on bad data.

Each table is a pandera ``DataFrameSchema`` (:func:`incidence_table_schema`,
:func:`timing_table_schema`) over its cells as text (blank = ``""``): the columns of
:data:`INCIDENCE_SCHEMA` / :data:`TIMING_SCHEMA` with their ``required`` flags, one named check
per rule on a column (element-wise) or on a row (checks across columns), validated with
``lazy=True`` so that every failure is collected. Pandera's failure cases (check, column, row
index) are turned into :class:`DataIssue` s that name the spreadsheet line (header = line 1,
first data row = line 2, or the lines recorded in ``df.attrs["lines"]`` by
:func:`pdmodel.data.read_csv_cells`), the ``row_id``, the field, the allowed values or range,
and a did-you-mean for a name close to a known one.

The checks of one field exclude each other (a blank ``n`` is "required", not also "not a
number"), so a cell gets one message, the most basic one.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterator
from functools import cache, lru_cache
from typing import NamedTuple

import pandas as pd
import pandera.pandas as pa

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

__all__ = ["incidence_table_schema", "timing_table_schema", "validate_incidence",
           "validate_timing"]

_ALTERNATIVES: dict[str, tuple[str, ...]] = {"source": ("source", "citation"),
                                             "events": ("events", "percent")}
"""Columns that can stand in for each other: one of each group is required."""

_BRANDS = {a.brand.lower(): a.name for a in AGENTS.values()}
_AGENT_CHOICES = list(AGENTS) + list(_BRANDS) + list(CONTROL_AGENTS)
_MODELLED_ORGAN_TERMS = tuple(t for t, o in ORGAN_TERMS.items() if o)


def _hint(value: str, choices) -> str:
    close = difflib.get_close_matches(value.lower(), list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


@lru_cache(maxsize=4096)
def _parse_regimen(text: str) -> tuple[tuple[str, ...] | None, str]:
    """(agents, "") when ``text`` parses, else (None, parser message)."""
    try:
        return Regimen.parse(text).agents, ""
    except RegimenError as e:
        return None, str(e)


# --------------------------------------------------------------------------- rows and rules


class _Row:
    """One row's cells as text; ``has`` tells a column of the table from a blank cell."""

    def __init__(self, cells: dict[str, str]):
        self.cells = cells

    def has(self, col: str) -> bool:
        return col in self.cells

    def get(self, col: str) -> str:
        return self.cells.get(col, "")


def _rows(df: pd.DataFrame) -> Iterator[_Row]:
    cols = [str(c) for c in df.columns]
    for values in df.itertuples(index=False, name=None):
        yield _Row(dict(zip(cols, values, strict=True)))


class _Rule(NamedTuple):
    """One named check of a table and how its failures read.

    ``column``: the pandera column it is an element-wise check of (``problem`` gets the cell),
    or None for a check of whole rows (``problem`` gets a :class:`_Row`). ``problem`` returns
    None when the cell or row passes, else the message; ``field`` is the column it is reported
    on.
    """

    name: str
    field: str
    column: str | None
    problem: Callable


def _cell_rule(column: str, name: str, problem: Callable[[str], str | None]) -> _Rule:
    return _Rule(f"{column}: {name}", column, column, problem)


def _row_rule(field: str, name: str, problem: Callable[[_Row], str | None]) -> _Rule:
    return _Rule(f"{field}: {name}", field, None, problem)


# --------------------------------------------------------------------------- cell problems


def _number(s: str, *, integer: bool = False) -> float | None:
    """The finite number of a cell (a whole number if ``integer``), else None."""
    x = cell_number(s) if s else None
    if x is None or (integer and not x.is_integer()):
        return None
    return x


def _number_rules(col: str, *, integer: bool = False, required_what: str | None = None,
                  low: float | None = None, low_open: bool = False,
                  high: float | None = None) -> list[_Rule]:
    """Checks of a numeric column: required (``required_what`` not None), a number, a whole
    number (``integer``), within [low, high] (``low_open``: > low)."""
    rules = []
    if required_what is not None:
        rules.append(_cell_rule(col, "required", lambda s: (
            f"{col} is required{required_what}" if not s else None)))

    def not_number(s: str) -> str | None:
        if not s or cell_number(s) is not None:
            return None
        hint = (" (write the number without '%')" if s.endswith("%") else
                f" (decimal comma? write '{s.replace(',', '.')}')"
                if re.fullmatch(r"[0-9]+,[0-9]+", s) else
                " (write digits 0-9, with '.' as the decimal point)"
                if any(c.isdigit() for c in s) and not cell_number(s.strip("%")) else "")
        return f"{col} '{s}' is not a number{hint}"

    rules.append(_cell_rule(col, "a number", not_number))
    if integer:
        rules.append(_cell_rule(col, "a whole number", lambda s: (
            f"{col} '{s}' is not a whole number"
            if (x := _number(s)) is not None and not x.is_integer() else None)))

    def out_of_range(s: str) -> str | None:
        x = _number(s, integer=integer)
        if x is None:
            return None
        if low is not None and high is not None and not low <= x <= high:
            return f"{col} must be between {low:g} and {high:g}, got {s}"
        if low is not None and (x <= low if low_open else x < low):
            return f"{col} must be {'>' if low_open else '>='} {low:g}, got {s}"
        return None

    if low is not None:
        rules.append(_cell_rule(col, "in range", out_of_range))
    return rules


def _choice_rules(col: str, allowed, *, aliases: dict[str, str] | None = None,
                  label: str = "", required: bool = True) -> list[_Rule]:
    """Checks of a vocabulary column: not blank (``required``) and one of ``allowed``
    (case-insensitive), with a did-you-mean from ``aliases`` or the closest allowed value."""
    allowed = tuple(allowed)

    def unknown(s: str) -> str | None:
        low = s.lower()
        if not s or low in allowed:
            return None
        hint = f" (did you mean '{aliases[low]}'?)" if aliases and low in aliases else ""
        hint = hint or _hint(low, allowed)
        return f"unknown {label or col} '{s}'{hint}; allowed: {', '.join(allowed)}"

    rules = [_cell_rule(col, "required", lambda s: f"{col} is required" if not s else None)]
    return (rules if required else []) + [_cell_rule(col, "allowed value", unknown)]


def _organ_rules() -> list[_Rule]:
    def organ(s: str) -> str | None:
        low = s.lower()
        if not s or (low in ORGAN_TERMS and ORGAN_TERMS[low]):
            return None
        if low in ORGAN_TERMS:
            return (f"organ '{s}' is not modelled by pdmodel (modelled: "
                    f"{', '.join(ORGAN_CHOICES)} and their sub-terms)")
        return (f"unknown organ '{s}'{_hint(low, _MODELLED_ORGAN_TERMS)}; allowed: "
                f"{', '.join(_MODELLED_ORGAN_TERMS)}")

    return [_cell_rule("organ", "required", lambda s: "organ is required" if not s else None),
            _cell_rule("organ", "modelled organ", organ)]


def _agents_rules() -> list[_Rule]:
    def unknown(s: str) -> str | None:
        bad = split_agents(s)[2] if s else []
        if not bad:
            return None
        where = f" in '{s}'" if "+" in s else ""
        what = "; ".join(f"unknown agent '{b}'{_hint(b, _AGENT_CHOICES)}" if b
                         else "empty agent name" for b in bad)
        return (f"{what}{where}; known: {', '.join(AGENTS)} (or brand names), and the "
                f"controls {', '.join(CONTROL_AGENTS)}")

    def twice(s: str) -> str | None:
        icis, _, bad = split_agents(s) if s else ([], [], [])
        return f"agent named twice in '{s}'" if not bad and len(set(icis)) != len(icis) else None

    return [_cell_rule("agents", "required", lambda s: (
                "agents is required (e.g. 'nivolumab', 'nivolumab+ipilimumab', 'placebo')"
                if not s else None)),
            _cell_rule("agents", "known agents", unknown),
            _cell_rule("agents", "each agent once", twice)]


# --------------------------------------------------------------------------- row problems


def _arm_agents(r: _Row) -> list[str] | None:
    """Checkpoint inhibitors of the row's arm ([] for a control arm), None if unknown."""
    text = r.get("agents")
    if not r.has("agents") or not text:
        return None
    icis, _, bad = split_agents(text)
    return None if bad else icis


def _regimen_rule(*, regimen_required: bool, allow_unparsed: bool) -> _Rule:
    def problem(r: _Row) -> str | None:
        if not r.has("regimen"):
            return None
        reg, icis = r.get("regimen"), _arm_agents(r)
        if icis is not None and not icis:
            # control arm: free text; it must not dose a checkpoint inhibitor
            got = _parse_regimen(reg)[0] if reg else None
            return (f"regimen doses {'+'.join(got)} but agents '{r.get('agents')}' names no "
                    "checkpoint inhibitor") if got else None
        if not reg:
            return ("regimen is required for a checkpoint-inhibitor arm (e.g. 'nivolumab 3 "
                    "mg/kg q2w')") if regimen_required else None
        got, message = _parse_regimen(reg)
        if got is None:
            return None if allow_unparsed else f"regimen does not parse: {message}"
        if icis is not None and set(got) != set(icis):
            return f"regimen doses {'+'.join(got)} but agents says {'+'.join(icis)}"
        return None

    return _row_rule("regimen", "doses the arm's agents", problem)


def _source_rules() -> list[_Rule]:
    def empty(field: str) -> Callable[[_Row], str | None]:
        def problem(r: _Row) -> str | None:
            # reported on `source` if the table has it, else on `citation`
            if not r.has(field) or (field == "citation" and r.has("source")):
                return None
            if r.get("source") or r.get("citation"):
                return None
            return "empty source: give the citation of the published figure"
        return problem

    return [_row_rule("source", "not empty", empty("source")),
            _row_rule("citation", "not empty", empty("citation"))]


def _valid_counts(r: _Row) -> tuple[int | None, int | None, float | None]:
    """(n, events, percent) where each cell passes its own checks, else None."""
    n = _number(r.get("n"), integer=True)
    n = int(n) if n is not None and n > 0 else None
    e = _number(r.get("events"), integer=True)
    e = int(e) if e is not None and e >= 0 else None
    p = _number(r.get("percent"))
    p = p if p is not None and 0 <= p <= 100 else None
    return n, e, p


def _count_rules() -> list[_Rule]:
    """events and percent against n, and each other (the cells' own checks are separate)."""
    def neither(field: str) -> Callable[[_Row], str | None]:
        def problem(r: _Row) -> str | None:
            # reported on `events` if the table has it, else on `percent`
            if not r.has(field) or (field == "percent" and r.has("events")):
                return None
            return None if r.get("events") or r.get("percent") else \
                "neither events nor percent given"
        return problem

    def above_n(r: _Row) -> str | None:
        n, e, _ = _valid_counts(r)
        return f"events {e} > n {n}" if n is not None and e is not None and e > n else None

    def inconsistent(r: _Row) -> str | None:
        n, e, p = _valid_counts(r)
        if n is None or e is None or p is None or e > n:
            return None
        diff, tol = abs(100 * e / n - p), 1.0 + 50 / n
        if diff <= tol:
            return None
        return (f"events/n = {e}/{n} = {100 * e / n:.2f}% disagrees with percent "
                f"{r.get('percent')} by {diff:.2f} points (> {tol:.2f})")

    return [_row_rule("events", "events or percent given", neither("events")),
            _row_rule("percent", "events or percent given", neither("percent")),
            _row_rule("events", "at most n", above_n),
            _row_rule("percent", "agrees with events/n", inconsistent)]


def _endpoint_rules() -> list[_Rule]:
    def fatal(s: str) -> str | None:
        return ("endpoint 'fatal' (deaths or shares of fatal cases) is not an incidence "
                f"endpoint for fitting; allowed: {', '.join(ENDPOINTS)}"
                if s.lower() == "fatal" else None)

    required, allowed = _choice_rules("endpoint", ENDPOINTS, aliases=ENDPOINT_ALIASES)
    not_fatal = _cell_rule("endpoint", "not fatal", fatal)
    return [required, not_fatal,
            allowed._replace(problem=lambda s: None if s.lower() == "fatal"
                             else allowed.problem(s))]


def _fraction_by_rules() -> list[_Rule]:
    """A ``fraction_by`` timing row needs its ``fraction`` and ``window_weeks``."""
    def needs(col: str) -> Callable[[_Row], str | None]:
        def problem(r: _Row) -> str | None:
            if r.get("statistic").lower() != "fraction_by":
                return None
            if not r.has(col):
                return f"a fraction_by row needs a '{col}' column"
            return f"{col} is required for a fraction_by row" if not r.get(col) else None
        return problem

    def value_required(r: _Row) -> str | None:
        stat = r.get("statistic").lower()
        if not r.has("value_weeks") or r.get("value_weeks") or stat not in TIMING_STATISTICS:
            return None
        return "value_weeks is required" if stat != "fraction_by" else None

    return [_row_rule("value_weeks", "required unless fraction_by", value_required),
            _row_rule("window_weeks", "required for fraction_by", needs("window_weeks")),
            _row_rule("fraction", "required for fraction_by", needs("fraction"))]


def _incidence_rules(allow_unparsed: bool) -> list[_Rule]:
    return [*_source_rules(), *_agents_rules(),
            _regimen_rule(regimen_required=True, allow_unparsed=allow_unparsed),
            *_number_rules("n", integer=True, required_what=" (patients in the arm)", low=0,
                           low_open=True),
            *_number_rules("events", integer=True, low=0),
            *_number_rules("percent", low=0, high=100),
            *_count_rules(),
            *_endpoint_rules(), *_organ_rules(),
            *_choice_rules("grade", GRADE_BANDS, aliases=GRADE_ALIASES, label="grade band"),
            *_number_rules("followup_weeks", low=0, low_open=True),
            *_choice_rules("setting", SETTINGS, required=False)]


def _timing_rules(allow_unparsed: bool) -> list[_Rule]:
    return [*_source_rules(), *_agents_rules(),
            _regimen_rule(regimen_required=False, allow_unparsed=allow_unparsed),
            *_organ_rules(),
            *_choice_rules("grade", GRADE_BANDS, aliases=GRADE_ALIASES, label="grade band"),
            *_choice_rules("quantity", TIMING_QUANTITIES),
            *_choice_rules("statistic", TIMING_STATISTICS),
            *_number_rules("value_weeks", low=0), *_fraction_by_rules(),
            *_number_rules("window_weeks", low=0, low_open=True),
            *_number_rules("fraction", low=0, high=1),
            *_number_rules("n_events", integer=True, low=0, low_open=True)]


# --------------------------------------------------------------------------- pandera schemas


class _Table(NamedTuple):
    """A table schema: pandera's, and the rules and field order that turn its failure cases
    into issues."""

    schema: pa.DataFrameSchema
    rules: dict[str, _Rule]
    field_order: dict[str, int]


_HAS_ROWS = "table: has data rows"


def _unique_ids(ids: pd.Series) -> pd.Series:
    """False for a non-blank ``row_id`` used on an earlier row."""
    return ~(ids.ne("") & ids.duplicated())


def _row_check(rule: _Rule) -> pa.Check:
    return pa.Check(lambda df: pd.Series([rule.problem(r) is None for r in _rows(df)],
                                         index=df.index, dtype=bool), name=rule.name)


def _cell_check(rule: _Rule) -> pa.Check:
    return pa.Check(lambda s: rule.problem(s) is None, element_wise=True, name=rule.name)


def _build(name: str, specs: dict[str, ColumnSpec], rules: list[_Rule]) -> _Table:
    alternative = {c for group in _ALTERNATIVES.values() for c in group}
    names = list(specs)
    if "source" in specs:
        names.insert(names.index("source") + 1, "citation")
    columns = {}
    for col in names:
        spec = specs.get(col)
        checks = [_cell_check(r) for r in rules if r.column == col]
        if col == "row_id":
            checks.append(pa.Check(_unique_ids, name="row_id: unique"))
        columns[col] = pa.Column(str, checks=checks, nullable=False,
                                 required=spec is not None and spec.required
                                 and col not in alternative)
    table_checks = [pa.Check(lambda df: len(df) > 0, name=_HAS_ROWS)]
    for field, group in _ALTERNATIVES.items():
        if field in specs:
            table_checks.append(pa.Check(
                lambda df, group=group: bool(set(group) & {str(c) for c in df.columns}),
                name=f"{field}: column present"))
    table_checks += [_row_check(r) for r in rules if r.column is None]
    schema = pa.DataFrameSchema(columns, checks=table_checks, strict=False, name=name)
    return _Table(schema, {r.name: r for r in rules}, {c: k for k, c in enumerate(names)})


@cache
def _incidence_table(allow_unparsed_regimen: bool) -> _Table:
    return _build("incidence table", INCIDENCE_SCHEMA, _incidence_rules(allow_unparsed_regimen))


@cache
def _timing_table(allow_unparsed_regimen: bool) -> _Table:
    return _build("timing table", TIMING_SCHEMA, _timing_rules(allow_unparsed_regimen))


def incidence_table_schema(allow_unparsed_regimen: bool = False) -> pa.DataFrameSchema:
    """The pandera schema of an incidence table's cells as text (:data:`INCIDENCE_SCHEMA`);
    :func:`validate_incidence` turns its failure cases into issues."""
    return _incidence_table(allow_unparsed_regimen).schema


def timing_table_schema(allow_unparsed_regimen: bool = False) -> pa.DataFrameSchema:
    """The pandera schema of a timing table's cells as text (:data:`TIMING_SCHEMA`)."""
    return _timing_table(allow_unparsed_regimen).schema


# --------------------------------------------------------------------------- failures → issues


def _cells(df: pd.DataFrame) -> pd.DataFrame:
    """Every cell as stripped text (blank = ``""``), string column names (the first of
    duplicated names), a 0..n-1 index."""
    out = df.copy()
    out.columns = [str(c) for c in out.columns]
    out = out.loc[:, ~out.columns.duplicated()]
    out = out.map(cell_text) if len(out.columns) else out
    return out.astype(str).reset_index(drop=True)


def _validate(df: pd.DataFrame, table: _Table) -> list[DataIssue]:
    cells = _cells(df)
    lines = df.attrs.get("lines")
    lines = (list(lines) if lines is not None and len(lines) == len(cells)
             else [i + 2 for i in range(len(cells))])
    try:
        table.schema.validate(cells, lazy=True)
        return []
    except pa.errors.SchemaErrors as err:
        failures = err.failure_cases
    ids = cells["row_id"].tolist() if "row_id" in cells else [""] * len(cells)
    found: dict[tuple, DataIssue] = {}
    for check, column, case, index in zip(failures["check"], failures["column"],
                                          failures["failure_case"], failures["index"],
                                          strict=True):
        check = str(check)
        if check == "column_in_dataframe":  # a required column is missing
            name = str(case)
            issue = DataIssue(0, "", name, "", f"missing required column '{name}'")
        elif pd.isna(index):  # a check of the whole table
            if check == _HAS_ROWS:
                issue = DataIssue(0, "", "", "", "no data rows")
            else:
                field = check.split(":")[0]
                what = " or ".join(f"'{c}'" for c in _ALTERNATIVES[field])
                issue = DataIssue(0, "", field, "", f"missing required column {what}")
        else:
            i = int(index)
            line, rid = lines[i], ids[i] or str(lines[i])
            if check == "row_id: unique":
                first = ids.index(ids[i])
                issue = DataIssue(line, rid, "row_id", ids[i], f"duplicate row_id '{ids[i]}' "
                                  f"(first used on line {lines[first]})")
            elif check in table.rules:
                rule = table.rules[check]
                row = _Row(dict(zip(cells.columns, cells.iloc[i], strict=True)))
                message = rule.problem(row.get(str(column)) if rule.column else row)
                issue = DataIssue(line, rid, rule.field, row.get(rule.field), message)
            else:  # a check of pandera's own (none is expected on text cells)
                issue = DataIssue(line, rid, str(column), cell_text(case),
                                  f"{column} fails the check {check} (value {case!r})")
        found.setdefault((issue.row, issue.field, check), issue)  # row checks: once a row
    order = list(table.rules)

    def key(item):
        (row, field, check), _ = item
        return (row, table.field_order.get(field, len(table.field_order)),
                order.index(check) if check in order else -1)

    return [issue for _, issue in sorted(found.items(), key=key)]


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
        Empty when the table is valid, else sorted by line, then field in schema order.
        Never raises on bad data.
    """
    return _validate(df, _incidence_table(allow_unparsed_regimen))


def validate_timing(df: pd.DataFrame, *, allow_unparsed_regimen: bool = False
                    ) -> list[DataIssue]:
    """Every problem of a timing table in the :data:`TIMING_SCHEMA` format (never raises)."""
    return _validate(df, _timing_table(allow_unparsed_regimen))
