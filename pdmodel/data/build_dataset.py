"""Write pdmodel/data/irae_{incidence,timing,management}.csv from the curated shared tables.

Run by hand from the repository root (the CSVs are committed)::

    python pdmodel/data/build_dataset.py [SHARED_DATA_DIR]     # default: ../shared/data

Every row and every original column of ``shared/data/irae_*.csv`` is copied verbatim (same
order, same text); harmonised columns are appended (docs/data.md "Added columns"), computed by
``pdmodel/data/_harmonise.py``, which also harmonises a user's own table
(:func:`pdmodel.data.load_user_incidence`).  The script stops with an error when a shared
``agents`` label is not in its tables (``POOLED_LABELS``, ``AGENT_ALIASES`` there), so a new
label is classified by a person, never guessed.  It also checks that the default-fit incidence
rows pass :func:`pdmodel.data.validate_incidence`.
"""

from __future__ import annotations

import csv
import sys
from collections import Counter
from pathlib import Path

from pdmodel.data import bundled_incidence_as_schema, load_incidence, validate_incidence
from pdmodel.data._harmonise import incidence_rows, management_rows, timing_rows
from pdmodel.errors import DataError

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
DEFAULT_SHARED = ROOT.parent / "shared" / "data"


def build(shared: Path, out: Path = HERE) -> dict[str, int]:
    counts = {}
    for kind, fn in (("incidence", incidence_rows), ("timing", timing_rows),
                     ("management", management_rows)):
        src = shared / f"irae_{kind}.csv"
        with src.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            columns = list(reader.fieldnames or [])
            rows = list(reader)
        added = fn(rows)
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
    issues = validate_incidence(fit)
    if issues:
        raise DataError("fit_default rows do not validate:\n" + "\n".join(map(str, issues)),
                        issues)
    return counts


if __name__ == "__main__":
    try:
        build(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_SHARED)
    except DataError as err:
        sys.exit(f"build_dataset: {err}")
