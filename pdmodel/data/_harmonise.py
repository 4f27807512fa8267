"""Harmonised columns of the irAE tables: the columns ``build_dataset.py`` appends to the
bundled tables, computed row by row, and computed exactly the same way for a user's own table
(:func:`pdmodel.data.load_user_incidence`).

A row is a ``dict`` of text cells in the shared ``irae_*.csv`` format (``agents``,
``regimen``, ``regimen_note``, ``n``, ``events``, ``percent``, ``endpoint``, ``organ``,
``grade``, ``setting``, ``followup``, ``tumour``, ``notes``, ``control_arm``, ``verified``,
...); the functions return the added columns as text (docs/data.md "Added columns"). They
refuse to guess: an ``agents`` label, organ term or grade band they do not know raises
:class:`~pdmodel.DataError` (the build stops on it; a user's table is validated first).
"""

from __future__ import annotations

from ..errors import DataError, RegimenError
from ..regimen import Regimen
from ..vocab import AGENTS, BACKBONES, CLASSES, get_agent
from ._vocabulary import (
    ASSUMED_REGIMENS,
    backbone_name,
    course_weeks,
    events_from_percent,
    followup_weeks,
    grade_range,
    organ_model,
    split_agents,
    term_level,
    treatment_weeks,
    tumour_type,
    window_weeks,
)

__all__ = [
    "AGENT_ALIASES", "POLICY_REASONS", "POOLED_LABELS", "RESOLVED_BANDS", "SETTING_WORDS",
    "agents_model", "arm_class", "arm_components", "assumed_regimens", "control_backbones",
    "incidence_row", "incidence_rows", "management_rows", "parsed_regimen", "regimen_basis",
    "setting_model", "timing_rows", "usable_for_fit",
]

POOLED_LABELS = {
    # class-level or mixed pools: no single set of checkpoint inhibitors to simulate
    "anti-PD-1/PD-L1 (class)",
    "anti-PD-1/PD-L1+anti-CTLA-4 (combination)",
    "nivolumab (monotherapy or combination)",
    "ICIs (all regimens)",
    "ICIs (class-level)",
    "ICIs (mixed: anti-PD-1 and/or ipilimumab)",
    "ICI monotherapy (class)",
    "ICI combination (class)",
    "unidentified (nivolumab-based per IMAE terminology)",
    "anti-PD-1 (nivolumab or pembrolizumab)",
    "ICIs (mixed)",
    "anti-PD-1/PD-L1 (nivolumab, pembrolizumab, atezolizumab or durvalumab)",
    "ICIs (anti-PD-1/PD-L1 and/or anti-CTLA-4)",
    "ICIs (ipilimumab, anti-PD-1/PD-L1)",
    "nivolumab; nivolumab+ipilimumab; ipilimumab",
    "anti-PD-1+ipilimumab",
    "anti-PD-1 (class)",
    "ICIs (anti-CTLA-4, anti-PD-1/L1, combination)",
    "ICIs (anti-PD-1/PD-L1, anti-CTLA-4, anti-LAG3)",
    "ICIs (ipilimumab, anti-PD-1, ipilimumab+nivolumab)",
    "ICIs (not stated in excerpt)",
}

AGENT_ALIASES = {
    "ipilimumab (both ipilimumab arms)": "ipilimumab",  # MDX010-20 ipi and ipi+gp100 arms
}

SETTING_WORDS = ("perioperative", "neoadjuvant")
"""Settings the shared table codes ``mixed`` and names in ``notes`` (shared README)."""


def arm_components(label: str) -> tuple[list[str], list[str]] | None:
    """(canonical checkpoint inhibitors, non-checkpoint-inhibitor components) of a shared
    ``agents`` label, or None for a class-level or mixed pool."""
    label = AGENT_ALIASES.get(label.strip(), label.strip())
    if label in POOLED_LABELS:
        return None
    icis, others, bad = split_agents(label)
    if bad:
        raise DataError(f"unclassified agents label {label!r} ({', '.join(bad)}): add "
                 "it to POOLED_LABELS or AGENT_ALIASES, or the component to "
                 "pdmodel.vocab.CONTROL_AGENTS")
    return icis, others


def agents_model(label: str) -> list[str]:
    """Canonical checkpoint inhibitors of a shared ``agents`` label ([] for controls/pools)."""
    parts = arm_components(label)
    return [] if parts is None else parts[0]


def arm_class(icis: list[str], components: list[str] | None, control: bool) -> str:
    if control or (components and not icis):
        return "control"
    if not icis:
        return "pooled"
    classes = {CLASSES[get_agent(a).target] for a in icis}
    return classes.pop() if len(classes) == 1 else "combination"


def setting_model(setting: str, notes: str) -> str:
    """``setting`` with the neoadjuvant and perioperative arms of ``mixed`` named."""
    if setting == "mixed":
        for word in SETTING_WORDS:
            if word in notes.lower():
                return word
    return setting


def _int(s: str) -> int | None:
    try:
        x = float(s)
    except ValueError:
        return None
    return int(x) if x.is_integer() else None


def _fmt(x: float | None) -> str:
    return "" if x is None else f"{x:.4f}".rstrip("0").rstrip(".")


def parsed_regimen(text: str) -> Regimen | None:
    """The regimen a printed ``regimen`` cell doses, or None. Items that dose no checkpoint
    inhibitor (``+ gp100 peptide vaccine``) are dropped first."""
    for candidate in (text, " + ".join(item for item in text.split(" + ")
                                       if item.split(" ")[0].lower() in AGENTS)):
        try:
            return Regimen.parse(candidate)
        except RegimenError:
            continue
    return None


def _grades(band: str) -> tuple[str, str]:
    rng = grade_range(band)
    if rng is None:
        raise DataError(f"unknown grade band {band!r}")
    return str(rng[0]), str(rng[1])


def _organ(term: str) -> str:
    if term.strip().lower() not in {"adrenal", "kidney", "diabetes", "other"} and \
            not organ_model(term):
        raise DataError(f"unknown organ term {term!r}")
    return organ_model(term)


def regimen_basis(r: dict, regimen: Regimen | None) -> str:
    """Where the row's simulated regimen comes from (before the modal fallback)."""
    if regimen is None:
        return ""
    note = r["regimen_note"].lower()
    if "curator" in note or "trial design" in note:
        return "trial design, recorded by the curator (regimen_note)"
    return "printed in the source"


def _arm_key(label: str) -> tuple[str, str]:
    parts = arm_components(label)
    return ("", "") if parts is None else (";".join(parts[0]), backbone_name(parts[1]))


def assumed_regimens(rows: list[dict], parsed: list[Regimen | None]) -> dict:
    """:data:`ASSUMED_REGIMENS` with the basis each row states: ``{key: (regimen, basis)}``.
    Raises DataError (stopping the build) when an assumed regimen is printed for no study of
    those agents."""
    studies: dict[tuple[str, str], set[str]] = {}
    for r, reg in zip(rows, parsed, strict=True):
        icis, _ = _arm_key(r["agents"])
        if reg is not None and icis:
            studies.setdefault((icis, str(reg)), set()).add(r["study"])
    out = {}
    for key, text in ASSUMED_REGIMENS.items():
        printed = studies.get((key[0], text))
        if not printed:
            raise DataError(f"assumed regimen {text!r} is printed for no {key[0]} arm of "
                            "the data")
        out[key] = (text, f"dose not printed: assumed {text}, as printed for "
                          f"{', '.join(sorted(printed))}")
    return out


def control_backbones(rows: list[dict]) -> set[str]:
    """Backbones given alone in a (verified) control arm of ``rows``."""
    return {backbone_name(c[1]) for r in rows
            if (c := arm_components(r["agents"])) and not c[0] and r["verified"].strip() == "1"}


def incidence_rows(rows: list[dict], *, assume_doses: bool = True) -> list[dict]:
    """The added columns of every incidence row (docs/data.md §2).

    ``assume_doses``: an arm whose regimen does not parse is simulated at
    :data:`ASSUMED_REGIMENS` (the bundled data; each must be printed for a study of ``rows``).
    A user's table, whose regimens parse (``pdmodel data check``), passes False.
    """
    parsed = [parsed_regimen(r["regimen"]) for r in rows]
    modal = assumed_regimens(rows, parsed) if assume_doses else {}
    controls_of = control_backbones(rows)
    return [incidence_row(r, reg, modal, controls_of) for r, reg in zip(rows, parsed,
                                                                       strict=True)]


RESOLVED_BANDS = {(1, 5), (2, 5), (3, 5), (3, 4), (1, 2)}
"""Grade bands (grade_min, grade_max) the observation model predicts (docs/model.md §5.2);
single grades 3, 4, 5 are not (grade 4 and 5 are not resolved)."""

POLICY_REASONS: tuple[str, ...] = ("not verified", "backbone without a control arm")
"""Exclusion reasons (prefixes) that are choices of the default fit: a row excluded only for
these can still be simulated and fitted (``data.use = "all"``). Every other reason is
something the model cannot simulate or the data cannot say (organ not modelled, unresolved
grade band, unknown n or events, a pool without agents, an unmodelled backbone, ...)."""


def usable_for_fit(exclusion_reason: str) -> bool:
    """Whether a row with this ``exclusion_reason`` can be fitted (``data.use = "all"``):
    it has no reason other than :data:`POLICY_REASONS`."""
    reasons = [x for x in str(exclusion_reason).split("; ") if x]
    return all(x.startswith(POLICY_REASONS) for x in reasons)


def incidence_row(r: dict, reg: Regimen | None, modal: dict, controls_of: set[str]) -> dict:
    organ = _organ(r["organ"])
    gmin, gmax = _grades(r["grade"])
    n = _int(r["n"])
    events = _int(r["events"])
    if events is None and r["percent"].strip() and n is not None:
        events = events_from_percent(r["percent"].strip(), n)
    components = arm_components(r["agents"])
    icis = [] if components is None else components[0]
    backbone = "" if components is None else backbone_name(components[1])
    control = r["control_arm"].strip() == "1"
    cls = arm_class(icis, None if components is None else components[1], control)
    basis = regimen_basis(r, reg) if icis else ""
    simulated = str(reg) if (icis and reg is not None) else ""
    if icis and reg is None:
        key = ";".join(icis)
        simulated, basis = modal.get((key, backbone)) or modal.get((key, None), ("", ""))
    intervals = [d.schedule.interval_days for ph in (reg.phases if reg else ())
                 for d in ph.doses if d.schedule.interval_days]
    interval = min(intervals) / 7 if intervals else None
    course = course_weeks(r["regimen_note"], interval)
    reasons = []
    if r["verified"].strip() != "1":
        reasons.append("not verified")
    if r["notes"].startswith("NOT AN INCIDENCE"):
        reasons.append("not an incidence (share of fatal cases)")
    if r["endpoint"] == "fatal":
        reasons.append("fatal endpoint")
    if not organ:
        reasons.append("organ not modelled")
    if (int(gmin), int(gmax)) not in RESOLVED_BANDS:
        reasons.append(f"grade band {gmin}-{gmax} not resolved by the model (it resolves "
                       "grade >= 1, >= 2, >= 3 and 1-2)")
    if n is None:
        reasons.append("n unknown")
    if events is None:
        reasons.append("events unknown")
    if cls == "pooled":
        reasons.append("class-level or mixed pool (no agent to simulate)")
    if backbone and backbone not in BACKBONES:
        reasons.append(f"backbone not modelled ({backbone}: no control arm gives it)")
    elif backbone and backbone not in controls_of:
        reasons.append(f"backbone without a control arm ({backbone})")
    if icis and not simulated:
        reasons.append("no regimen for these agents")
    return {
        "organ_model": organ,
        "term_level": term_level(r["organ"]),
        "grade_min": gmin, "grade_max": gmax,
        "events_used": "" if events is None else str(events),
        "regimen_parsed": "1" if reg is not None else "0",
        "agents_model": ";".join(icis),
        "backbone": backbone,
        "arm_class": cls,
        "setting_model": setting_model(r["setting"], r["notes"]),
        "regimen_model": simulated,
        "regimen_basis": basis,
        "course_weeks": _fmt(course),
        "treatment_weeks": _fmt(treatment_weeks(r["followup"], interval)),
        "window_weeks": _fmt(window_weeks(r["followup"])),
        "tumour_model": tumour_type(r["tumour"]),
        "followup_weeks": _fmt(followup_weeks(r["followup"])),
        "fit_default": "0" if reasons else "1",
        "exclusion_reason": "; ".join(reasons),
    }


_OPDIVO_HYPOTHYROIDISM = ("171 events: the OPDIVO label pool's 'hypothyroidism/thyroiditis' "
                          "count (inc-0205, 171/1994, same source); the pool's hyperthyroidism "
                          "is tim-0136..0138 (54 events, inc-0206)")
HYPOTHYROID_ROWS = {"tim-0133": _OPDIVO_HYPOTHYROIDISM,  # median
                    "tim-0134": _OPDIVO_HYPOTHYROIDISM,  # minimum
                    "tim-0135": _OPDIVO_HYPOTHYROIDISM}  # maximum
"""Timing rows whose organ is printed as ``thyroid`` but which describe hypothyroidism, each
with the evidence in the curated tables (docs/data.md §2)."""


def thyroid_phase(row_id: str, term: str, organ: str) -> str:
    """Phase of thyroid dysfunction a timing row describes: ``hypothyroidism`` (the term, or a
    row of :data:`HYPOTHYROID_ROWS`), ``thyroiditis`` (every other thyroid row: the first
    thyroid dysfunction, usually thyrotoxic), empty for other organs (docs/model.md §5.7)."""
    if organ != "thyroid":
        return ""
    if term.strip().lower() == "hypothyroidism" or row_id in HYPOTHYROID_ROWS:
        return "hypothyroidism"
    return "thyroiditis"


def timing_row(r: dict) -> dict:
    organ = _organ(r["organ"])
    gmin, gmax = _grades(r["grade"])
    orig = r["value_orig"].strip()
    reasons = []
    if r["verified"].strip() != "1":
        reasons.append("not verified")
    if r["study"].startswith("Unidentified trial"):
        reasons.append("unidentified trial (identify before use)")
    if not organ:
        reasons.append("organ not modelled")
    if orig.endswith("+"):
        reasons.append("censored value")
    if orig.upper() == "NR":
        reasons.append("median not reached")
    if orig.startswith("<"):
        reasons.append("upper bound only")
    if not (r["value_weeks"].strip() or r["fraction"].strip()) and not reasons:
        reasons.append("no value")
    return {
        "organ_model": organ,
        "grade_min": gmin, "grade_max": gmax,
        "agents_model": ";".join(agents_model(r["agents"])),
        "thyroid_phase": thyroid_phase(r["row_id"], r["organ"], organ),
        "fit_default": "0" if reasons else "1",
        "exclusion_reason": "; ".join(reasons),
    }


def management_row(r: dict) -> dict:
    return {"organ_model": _organ(r["organ"]),
            "agents_model": ";".join(agents_model(r["agents"]))}


def timing_rows(rows: list[dict]) -> list[dict]:
    return [timing_row(r) for r in rows]


def management_rows(rows: list[dict]) -> list[dict]:
    return [management_row(r) for r in rows]
