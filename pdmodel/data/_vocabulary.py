"""Published terms mapped onto pdmodel's vocabulary: organ terms, grade bands, endpoint and
grade aliases, agent labels, follow-up durations and the shared rounding rule for counts.

The canonical vocabularies (organs, grades, endpoints, agents, ...) are :mod:`pdmodel.vocab`;
this module only says how the published tables' wording maps onto them.
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal

from ..vocab import ASSUMED_REGIMENS, CONTROL_AGENTS, get_agent

__all__ = [
    "ASSUMED_REGIMENS", "ENDPOINT_ALIASES", "GRADE_ALIASES", "GRADE_BANDS", "ORGAN_TERMS",
    "SPECIFIC_TERMS",
    "TIMING_QUANTITIES", "TIMING_STATISTICS", "WEEKS_PER_MONTH", "WEEKS_PER_YEAR",
    "backbone_name", "course_weeks", "treatment_weeks", "tumour_type", "window_weeks",
    "events_from_percent", "followup_weeks", "grade_range",
    "organ_model", "round_half_up",
    "split_agents", "term_level",
]

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

GRADE_ALIASES: dict[str, str] = {
    ">=1": "any", "1+": "any", "all": "any", "≥1": "any", ">=2": "2+", "≥2": "2+", "2-5": "2+",
    "2-4": "2+", ">=3": "3+", "≥3": "3+", "3-5": "3-5", "1-5": "any"}
"""Common spellings of a grade band → the band to suggest instead."""

ENDPOINT_ALIASES: dict[str, str] = {
    "drug_related": "treatment_related", "drug-related": "treatment_related",
    "treatment-related": "treatment_related", "trae": "treatment_related",
    "irae": "immune_related", "immune-related": "immune_related",
    "imae": "immune_mediated", "immune-mediated": "immune_mediated",
    "all-cause": "all_cause", "any": "all_cause", "select_ae": "select",
}
"""Common spellings of an endpoint → the endpoint to suggest instead."""


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


COMPONENT_ALIASES: dict[str, str] = {"gp100": "vaccine"}
"""Printed names of non-checkpoint-inhibitor components → :data:`CONTROL_AGENTS` names."""


def backbone_name(components) -> str:
    """Backbone of an arm from its non-checkpoint-inhibitor components: the non-placebo ones
    joined by ``+`` in :data:`CONTROL_AGENTS` order (``""`` for none), e.g.
    ``["chemotherapy", "placebo", "trastuzumab"]`` → ``"trastuzumab+chemotherapy"``."""
    names = {COMPONENT_ALIASES.get(c, c) for c in components} - {"placebo"}
    return "+".join(c for c in CONTROL_AGENTS if c in names)


_COURSE = re.compile(r"up to (\d+(?:\.\d+)?)\s*(weeks?|months?|years?)")
_COURSE_DOSES = re.compile(r"up to (\d+) doses")


def course_weeks(text: str, interval_weeks: float | None = None) -> float | None:
    """Planned maximum treatment duration in weeks printed in a regimen note, else None:
    ``"up to 1 year"`` → 52.14, ``"up to 96 weeks"`` → 96, ``"up to 18 doses"`` with a
    3-week interval → 54 (months × 4.345, years × 52.14, as in shared/data)."""
    t = str(text).lower()
    m = _COURSE.search(t)
    if m:
        return round(float(m.group(1)) * _FOLLOWUP_UNITS[m.group(2)], 4)
    m = _COURSE_DOSES.search(t)
    if m and interval_weeks:
        return round(int(m.group(1)) * interval_weeks, 4)
    return None


_TREATMENT = re.compile(r"median (?:time on treatment|treatment duration) (\d+(?:\.\d+)?) "
                        r"(months?|mo|weeks?)")
_TREATMENT_DOSES = re.compile(r"median (\d+) doses")
_WINDOW = re.compile(r"(\d+) (?:days?|d) after (?:the )?(?:last|end)")


def treatment_weeks(text: str, interval_weeks: float | None = None) -> float | None:
    """Median treatment duration in weeks printed in a follow-up text, else None:
    ``"median time on treatment 4.1 months"`` → 17.8145, ``"median 4 doses"`` with a 3-week
    interval → 12 (the fourth dose starts the fourth interval)."""
    t = str(text).lower()
    m = _TREATMENT.search(t)
    if m:
        unit = {"mo": "months"}.get(m.group(2), m.group(2))
        return round(float(m.group(1)) * _FOLLOWUP_UNITS[unit], 4)
    m = _TREATMENT_DOSES.search(t)
    if m and interval_weeks:
        return round(int(m.group(1)) * interval_weeks, 4)
    return None


def window_weeks(text: str) -> float | None:
    """Reporting window after the last dose in weeks printed in a follow-up text, else None:
    ``"first dose to 100 days after last dose"`` → 14.2857."""
    m = _WINDOW.search(str(text).lower())
    return round(int(m.group(1)) / 7, 4) if m else None


def tumour_type(text: str) -> str:
    """The model's tumour type (:data:`~pdmodel.vocab.TUMOURS`) of a printed tumour: melanoma,
    NSCLC, renal cell carcinoma, else ``other`` (other tumours and mixed populations)."""
    t = re.sub(r"\([^)]*\)", "", str(text).lower())  # drop parenthesised details
    if ";" in t or t.startswith("mixed"):
        return "other"
    if "melanoma" in t:
        return "melanoma"
    if "nsclc" in t or "non-small" in t:
        return "nsclc"
    if "renal cell" in t or "rcc" in t:
        return "rcc"
    return "other"


def split_agents(text: str) -> tuple[list[str], list[str], list[str]]:
    """(checkpoint inhibitors, control components, bad tokens) of an ``agents`` cell."""
    icis, controls, bad = [], [], []
    for tok in text.split("+"):
        t = tok.strip().lower()
        t = COMPONENT_ALIASES.get(t, t)
        if t in CONTROL_AGENTS:
            controls.append(t)
            continue
        try:
            icis.append(get_agent(t).name)
        except KeyError:
            bad.append(tok.strip())
    return icis, controls, bad


