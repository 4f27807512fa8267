"""Regenerate the malformed CSVs of this folder from valid.csv: python make_corpus.py.

Each file breaks valid.csv in one place (or a few, for the multi-error case); the expected line,
field and message pattern of each are in tests/data/test_data.py (CORPUS).
"""

import csv
from pathlib import Path

HERE = Path(__file__).resolve().parent


def rows():
    with (HERE / "valid.csv").open(newline="") as fh:
        return [dict(r) for r in csv.DictReader(fh)]


def write(name, table, fields=None):
    fields = fields or list(table[0])
    with (HERE / name).open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields, lineterminator="\n", extrasaction="ignore")
        w.writeheader()
        w.writerows(table)


def change(name, index, **cells):
    table = rows()
    table[index].update(cells)
    write(name, table)


change("events_gt_n.csv", 1, events="140", percent="")
change("percent_150.csv", 2, percent="150")
change("percent_negative.csv", 2, percent="-1")
change("percent_text.csv", 2, percent="30%")
change("unknown_agent.csv", 5, agents="nivolumb")
change("unknown_organ.csv", 3, organ="heart")
change("unmodelled_organ.csv", 3, organ="adrenal")
change("unknown_grade.csv", 0, grade="6")
change("unknown_endpoint.csv", 4, endpoint="drug_related")
change("fatal_endpoint.csv", 4, endpoint="fatal")
change("regimen_mg_m2.csv", 5, regimen="nivolumab 3 mg/m2 q2w")
change("regimen_missing.csv", 7, regimen="")
change("regimen_agent_mismatch.csv", 7, regimen="nivolumab 240 mg q2w")
change("missing_source.csv", 6, source="")
change("n_zero.csv", 7, n="0", events="", percent="12.0")
change("n_nonnumeric.csv", 0, n="about 130")
change("n_blank.csv", 0, n="")
change("events_fraction.csv", 3, events="2.5")
change("events_negative.csv", 3, events="-2")
change("no_events_no_percent.csv", 6, events="", percent="")
change("inconsistent_percent.csv", 1, events="20", percent="25.0")
change("followup_negative.csv", 0, followup_weeks="-3")
change("duplicate_row_id.csv", 4, row_id="ex-02")

table = rows()
write("missing_column.csv", table, [f for f in table[0] if f != "endpoint"])
write("missing_events_and_percent_columns.csv", table,
      [f for f in table[0] if f not in ("events", "percent")])

table = rows()
table[0].update(agents="nivolumb", organ="heart")
table[2].update(n="0")
table[5].update(regimen="nivolumab 3 mg/m2 q2w", percent="150")
write("many_errors.csv", table)

with (HERE / "too_many_fields.csv").open("w", newline="") as fh:
    text = (HERE / "valid.csv").read_text().splitlines()
    text[2] += ",extra"
    fh.write("\n".join(text) + "\n")

# a stray quote opening the free-text `notes` cell of ex-03 (line 4): a CSV reader runs lines
# 4-6 into one row (up to the next quote, in ex-05's regimen) and would see 6 rows, not 8
with (HERE / "stray_quote.csv").open("w", newline="") as fh:
    text = (HERE / "valid.csv").read_text().splitlines()
    text[3] = text[3].replace(",percent only", ',"percent only')
    fh.write("\n".join(text) + "\n")
