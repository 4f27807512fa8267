"""The long-format schemas of an incidence table and a timing table, column by column."""

from __future__ import annotations

from dataclasses import dataclass

from ..vocab import AGENTS, CONTROL_AGENTS, ENDPOINTS, SETTINGS
from ._vocabulary import GRADE_BANDS, ORGAN_TERMS, TIMING_QUANTITIES, TIMING_STATISTICS

__all__ = ["INCIDENCE_SCHEMA", "TIMING_SCHEMA", "ColumnSpec"]


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
