"""Reliability: ``pdmodel data check`` on bad or unusual CSV files.

Each case breaks ``tests/data/corpus/valid.csv`` (8 data rows, lines 2-9) as a user's
spreadsheet or editor might: the command must exit 1 and name the spreadsheet line and the
field (``line N (row_id X), field 'F': ...``), never call a broken file valid, never end in a
traceback. Files that cannot be read as a table at all (missing, binary, empty, another
delimiter) exit 1 with one ``error:`` line naming the file.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pdmodel.cli import app

VALID = Path(__file__).resolve().parents[1] / "data" / "corpus" / "valid.csv"
LINES = VALID.read_text().splitlines()
HEADER = LINES[0].split(",")


def cell(line: int, column: str, value: str):
    """An edit: set one cell of the given spreadsheet line (quote ``value`` yourself)."""
    def edit(lines: list[str]) -> list[str]:
        out = list(lines)
        fields = next(csv.reader([out[line - 1]]))
        fields[HEADER.index(column)] = value
        out[line - 1] = ",".join(f'"{f}"' if "," in f and not f.startswith('"') else f
                                 for f in fields)
        return out
    return edit


def replace_in(line: int, old: str, new: str):
    def edit(lines: list[str]) -> list[str]:
        out = list(lines)
        assert old in out[line - 1], (old, out[line - 1])
        out[line - 1] = out[line - 1].replace(old, new, 1)
        return out
    return edit


# (edit of valid.csv, spreadsheet line, field, pattern the message must match)
CASES = [
    # stray and unbalanced quotes
    pytest.param(replace_in(4, ",percent only", ',"percent only'), 4, "notes",
                 r"unbalanced quote: column 'notes'.*lines 4-6 together", id="stray-quote-notes"),
    pytest.param(replace_in(9, ",NSCLC,", ',"NSCLC,'), 9, "tumour",
                 r"unbalanced quote: column 'tumour'.*rest of the line as one cell",
                 id="stray-quote-last-row-to-eof"),
    pytest.param(replace_in(3, ",Example A", ',"Example A'), 3, "source",
                 r"unbalanced quote: column 'source'.*lines 3-6", id="stray-quote-source"),
    pytest.param(replace_in(2, ",synthetic test row", ',"synthetic ""test"" row'), 2, "notes",
                 r"unbalanced quote", id="stray-quote-with-escaped-quotes"),
    # numbers written the ways float() or a spreadsheet would still read
    pytest.param(cell(2, "n", "1_30"), 2, "n", r"'1_30' is not a number", id="n-underscore"),
    pytest.param(cell(2, "percent", "60,0"), 2, "percent",
                 r"'60,0' is not a number \(decimal comma\? write '60\.0'\)",
                 id="percent-decimal-comma"),
    pytest.param(cell(3, "events", "\u0662\u0660"), 3, "events", r"is not a number",
                 id="events-arabic-indic-digits"),
    pytest.param(cell(3, "events", "\uff12\uff10"), 3, "events", r"is not a number",
                 id="events-fullwidth-digits"),
    pytest.param(cell(2, "n", "1e400"), 2, "n", r"'1e400' is not a number", id="n-overflow"),
    pytest.param(cell(2, "percent", "inf"), 2, "percent", r"'inf' is not a number",
                 id="percent-inf"),
    pytest.param(cell(2, "n", "-130"), 2, "n", r"n must be > 0, got -130", id="n-negative"),
    pytest.param(cell(2, "n", "130.5"), 2, "n", r"'130\.5' is not a whole number",
                 id="n-fractional"),
    pytest.param(cell(4, "followup_weeks", "one year"), 4, "followup_weeks",
                 r"'one year' is not a number", id="followup-text"),
    pytest.param(cell(2, "events", "140"), 2, "events", r"events 140 > n 130",
                 id="events-above-n"),
    # vocabulary, with a did-you-mean
    pytest.param(cell(2, "grade", "\u22653"), 2, "grade", r"did you mean '3\+'",
                 id="grade-unicode-ge"),
    pytest.param(cell(2, "endpoint", "irAE"), 2, "endpoint",
                 r"did you mean 'immune_related'", id="endpoint-alias"),
    pytest.param(cell(5, "organ", "hypophysis"), 5, "organ",
                 r"unknown organ 'hypophysis' \(did you mean 'hypophysitis'\?\)",
                 id="organ-typo"),
    pytest.param(cell(2, "setting", "neoadjuvant"), 2, "setting",
                 r"unknown setting 'neoadjuvant'.*allowed: metastatic", id="setting-unknown"),
    pytest.param(cell(7, "agents", "nivolumab+ipilimumab+nivolumab"), 7, "agents",
                 r"agent named twice", id="agent-twice"),
    pytest.param(cell(7, "agents", "Opdivoo"), 7, "agents", r"did you mean 'opdivo'",
                 id="agent-brand-typo"),
    # regimen text
    pytest.param(cell(7, "regimen", "nivolumab 2_40 mg q2w"), 7, "regimen",
                 r"does not parse: malformed dose '2_40'", id="regimen-underscore"),
    pytest.param(cell(7, "regimen", "nivolumab 2,5 mg/kg q2w"), 7, "regimen",
                 r"does not parse: decimal comma in '2,5'.*'2\.5'", id="regimen-decimal-comma"),
    pytest.param(cell(8, "regimen", "pembrolizumab 200 mg q3w"), 8, "regimen",
                 r"regimen doses pembrolizumab but agents 'placebo' names no checkpoint",
                 id="control-arm-doses-ici"),
    # structure
    pytest.param((lambda lines: lines[:3] + [lines[3] + ",extra,more"] + lines[4:]), 4, "",
                 r"row has 16 fields but the header has 14", id="too-many-fields"),
    pytest.param((lambda lines: lines[:2] + [",".join(lines[2].split(",")[:5])]
                     + lines[3:]), 3, "events", r"neither events nor percent",
                 id="short-row"),
    pytest.param(replace_in(5, "ex-04", "ex-01"), 5, "row_id",
                 r"duplicate row_id 'ex-01' \(first used on line 2\)", id="duplicate-row-id"),
    pytest.param((lambda lines: [lines[0].replace("organ,", "organs,")] + lines[1:]), 1,
                 "organ", r"missing required column 'organ'", id="header-renamed-column"),
    pytest.param((lambda lines: [lines[0].replace("notes", "grade")] + lines[1:]), 1,
                 "grade", r"column 'grade' appears more than once", id="header-duplicate"),
    pytest.param((lambda lines: lines[:1]), 1, "", r"no data rows", id="header-only"),
    pytest.param((lambda lines: [lines[0].replace("notes", '"notes')] + lines[1:]), 1, "",
                 r"unbalanced quote: the header", id="stray-quote-header"),
]


def run(path: Path, *options: str):
    return CliRunner().invoke(app, ["data", "check", str(path), *options])


def test_the_unbroken_file_is_valid():
    res = run(VALID)
    assert res.exit_code == 0 and "rows: 8" in res.stdout, res.output


@pytest.mark.parametrize(("edit", "line", "field", "pattern"), CASES)
def test_broken_file_exits_1_naming_line_and_field(tmp_path, edit, line, field, pattern):
    path = tmp_path / "data.csv"
    path.write_text("\n".join(edit(LINES)) + "\n", encoding="utf-8")
    res = run(path)
    assert res.exit_code == 1, res.output
    where = r"line 1 \(header\)" if line == 1 else rf"line {line} \(row_id [^)]+\)"
    assert re.search(rf"^{where}, field '{field}': .*{pattern}", res.stderr, re.M), res.stderr
    assert res.stdout == "" and "Traceback" not in res.output


def _write(tmp_path: Path, name: str, data: bytes | str | None) -> Path:
    path = tmp_path / name
    if isinstance(data, bytes):
        path.write_bytes(data)
    elif isinstance(data, str):
        path.write_text(data, encoding="utf-8")
    return path


# (file name, content: bytes, text or None for no file, words the one error line must hold)
FILE_CASES = [
    pytest.param("missing.csv", None, "no such file", id="missing-file"),
    pytest.param("image.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary",
                 id="binary-file"),
    pytest.param("empty.csv", "", "empty file", id="empty-file"),
    pytest.param("blank.csv", "\n \n\n", "empty file", id="blank-lines-only"),
    pytest.param("semicolons.csv", "\n".join(ln.replace(",", ";") for ln in LINES) + "\n",
                 "not a CSV table", id="semicolon-delimited"),
    pytest.param("bytes.csv", b"row_id,source\n\x81\x8d\x8f\x90\x9d\n", "not a CSV text file",
                 id="undecodable-bytes"),
    pytest.param("control.csv", "row_id,source\nr1,\x07bell\n", "control characters",
                 id="control-characters"),
]


@pytest.mark.parametrize(("name", "data", "words"), FILE_CASES)
def test_unreadable_file_exits_1_naming_the_file(tmp_path, name, data, words):
    path = _write(tmp_path, name, data)
    res = run(path)
    assert res.exit_code == 1, res.output
    assert res.stderr.startswith("error: ") and name in res.stderr and words in res.stderr, \
        res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.output


def test_a_directory_exits_1(tmp_path):
    res = run(tmp_path)
    assert res.exit_code == 1 and "is a directory" in res.stderr, res.output


TIMING = ("row_id,source,agents,regimen,organ,grade,quantity,statistic,value_weeks,"
          "window_weeks,fraction,n_events\n"
          "t1,Example,ipilimumab,ipilimumab 3 mg/kg q3w x4,colitis,2+,onset,median,7.5,,,20\n"
          "t2,Example,ipilimumab,,any,2+,onset,fraction_by,,4.345,0.4,20\n")

# (edit of the 2-row timing table, line, field, pattern)
TIMING_CASES = [
    pytest.param(("median,7.5", "median,7,5"), 2, "", r"row has 13 fields", id="timing-comma"),
    pytest.param(("median,7.5", "mediam,7.5"), 2, "statistic", r"did you mean 'median'",
                 id="timing-statistic-typo"),
    pytest.param(("0.4,20", "1.4,20"), 3, "fraction", r"between 0 and 1, got 1\.4",
                 id="timing-fraction-above-1"),
    pytest.param(("4.345,0.4", ",0.4"), 3, "window_weeks", r"required for a fraction_by row",
                 id="timing-fraction-by-without-window"),
    pytest.param(("onset,median", "onsett,median"), 2, "quantity", r"did you mean 'onset'",
                 id="timing-quantity-typo"),
]


def test_the_unbroken_timing_table_is_valid(tmp_path):
    res = run(_write(tmp_path, "t.csv", TIMING), "--kind", "timing")
    assert res.exit_code == 0, res.output


@pytest.mark.parametrize(("edit", "line", "field", "pattern"), TIMING_CASES)
def test_broken_timing_table_exits_1_naming_line_and_field(tmp_path, edit, line, field,
                                                           pattern):
    res = run(_write(tmp_path, "t.csv", TIMING.replace(*edit)), "--kind", "timing")
    assert res.exit_code == 1, res.output
    assert re.search(rf"^line {line} \(row_id t\d\), field '{field}': .*{pattern}",
                     res.stderr, re.M), res.stderr
