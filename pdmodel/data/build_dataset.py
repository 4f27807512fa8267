"""Write pdmodel/data/irae_{incidence,timing,management}.csv from the curated shared tables.

Run by hand from the repository root (the CSVs are committed)::

    python pdmodel/data/build_dataset.py [SHARED_DATA_DIR]     # default: ../shared/data

Every row and every original column of ``shared/data/irae_*.csv`` is copied verbatim (same
order, same text); harmonised columns are appended (docs/data.md "Added columns").  The script
stops with an error when a shared ``agents`` label is not in the tables below, so a new label is
classified by a person, never guessed.  It also checks that the default-fit incidence rows pass
:func:`pdmodel.data.validate_incidence`.
"""

from __future__ import annotations

import csv
import sys
from collections import Counter
from pathlib import Path

from pdmodel.data import (
    bundled_incidence_as_schema,
    events_from_percent,
    followup_weeks,
    grade_range,
    load_incidence,
    organ_model,
    term_level,
    validate_incidence,
)
from pdmodel.errors import RegimenError
from pdmodel.regimen import Regimen
from pdmodel.vocab import CLASSES, get_agent

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
DEFAULT_SHARED = ROOT.parent / "shared" / "data"

CONTROL_LABELS = {"placebo", "chemotherapy", "gp100"}
"""Arms without a checkpoint inhibitor (gp100 is a peptide vaccine)."""

NON_ICI_PARTNERS = {"gp100", "cabozantinib"}
"""Non-checkpoint-inhibitor components of an ICI arm; dropped from ``agents_model``."""

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
}

AGENT_ALIASES = {
    "ipilimumab (both ipilimumab arms)": "ipilimumab",  # MDX010-20 ipi and ipi+gp100 arms
}


def agents_model(label: str) -> list[str]:
    """Canonical checkpoint inhibitors of a shared ``agents`` label ([] for controls/pools)."""
    label = AGENT_ALIASES.get(label.strip(), label.strip())
    if label in POOLED_LABELS or label in CONTROL_LABELS:
        return []
    out = []
    for tok in label.split("+"):
        tok = tok.strip()
        if tok in NON_ICI_PARTNERS:
            continue
        try:
            out.append(get_agent(tok).name)
        except KeyError:
            sys.exit(f"build_dataset: unclassified agents label {label!r}: add it to "
                     "POOLED_LABELS, CONTROL_LABELS, NON_ICI_PARTNERS or AGENT_ALIASES")
    return out


def arm_class(icis: list[str], label: str, control: bool) -> str:
    if control or label.strip() in CONTROL_LABELS:
        return "control"
    if not icis:
        return "pooled"
    classes = {CLASSES[get_agent(a).target] for a in icis}
    return classes.pop() if len(classes) == 1 else "combination"


def _int(s: str) -> int | None:
    try:
        x = float(s)
    except ValueError:
        return None
    return int(x) if x.is_integer() else None


def _fmt(x: float | None) -> str:
    return "" if x is None else f"{x:.4f}".rstrip("0").rstrip(".")


def parses(regimen: str) -> bool:
    try:
        Regimen.parse(regimen)
    except RegimenError:
        return False
    return True


def _grades(band: str) -> tuple[str, str]:
    rng = grade_range(band)
    if rng is None:
        sys.exit(f"build_dataset: unknown grade band {band!r}")
    return str(rng[0]), str(rng[1])


def _organ(term: str) -> str:
    if term.strip().lower() not in {"adrenal", "kidney", "diabetes", "other"} and \
            not organ_model(term):
        sys.exit(f"build_dataset: unknown organ term {term!r}")
    return organ_model(term)


def incidence_row(r: dict) -> dict:
    organ = _organ(r["organ"])
    gmin, gmax = _grades(r["grade"])
    n = _int(r["n"])
    events = _int(r["events"])
    if events is None and r["percent"].strip() and n is not None:
        events = events_from_percent(r["percent"].strip(), n)
    icis = agents_model(r["agents"])
    control = r["control_arm"].strip() == "1"
    cls = arm_class(icis, r["agents"], control)
    reasons = []
    if r["verified"].strip() != "1":
        reasons.append("not verified")
    if r["notes"].startswith("NOT AN INCIDENCE"):
        reasons.append("not an incidence (share of fatal cases)")
    if r["endpoint"] == "fatal":
        reasons.append("fatal endpoint")
    if not organ:
        reasons.append("organ not modelled")
    if n is None:
        reasons.append("n unknown")
    if events is None:
        reasons.append("events unknown")
    if cls == "pooled":
        reasons.append("class-level or mixed pool (no agent to simulate)")
    return {
        "organ_model": organ,
        "term_level": term_level(r["organ"]),
        "grade_min": gmin, "grade_max": gmax,
        "events_used": "" if events is None else str(events),
        "regimen_parsed": "1" if parses(r["regimen"]) else "0",
        "agents_model": ";".join(icis),
        "arm_class": cls,
        "followup_weeks": _fmt(followup_weeks(r["followup"])),
        "fit_default": "0" if reasons else "1",
        "exclusion_reason": "; ".join(reasons),
    }


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
        "fit_default": "0" if reasons else "1",
        "exclusion_reason": "; ".join(reasons),
    }


def management_row(r: dict) -> dict:
    return {"organ_model": _organ(r["organ"]),
            "agents_model": ";".join(agents_model(r["agents"]))}


def build(shared: Path, out: Path = HERE) -> dict[str, int]:
    counts = {}
    for kind, fn in (("incidence", incidence_row), ("timing", timing_row),
                     ("management", management_row)):
        src = shared / f"irae_{kind}.csv"
        with src.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            columns = list(reader.fieldnames or [])
            rows = list(reader)
        added = [fn(r) for r in rows]
        fields = columns + [c for c in added[0] if c not in columns]
        dst = out / f"irae_{kind}.csv"
        with dst.open("w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=fields, lineterminator="\n")
            w.writeheader()
            for r, a in zip(rows, added, strict=True):
                w.writerow(r | a)
        counts[kind] = len(rows)
        if "fit_default" in added[0]:
            kept = sum(a["fit_default"] == "1" for a in added)
            why = Counter(x for a in added for x in a["exclusion_reason"].split("; ") if x)
            print(f"{dst.relative_to(ROOT)}: {len(rows)} rows, fit_default {kept}; "
                  f"excluded for: {dict(why.most_common())}")
        else:
            print(f"{dst.relative_to(ROOT)}: {len(rows)} rows")
    df = load_incidence(out / "irae_incidence.csv")
    fit = bundled_incidence_as_schema(df[df["fit_default"] == 1].reset_index(drop=True))
    issues = validate_incidence(fit, allow_unparsed_regimen=True)
    if issues:
        sys.exit("build_dataset: fit_default rows do not validate:\n"
                 + "\n".join(map(str, issues)))
    return counts


if __name__ == "__main__":
    build(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_SHARED)
