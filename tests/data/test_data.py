"""Bundled irAE data, the incidence schema validator and ``pdmodel data check``."""

import csv
import importlib.util
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import pdmodel.data as D
from pdmodel.cli import app
from pdmodel.data._harmonise import RESOLVED_BANDS
from pdmodel.regimen import Regimen
from pdmodel.vocab import AGENTS, BACKBONES, ORGAN_CHOICES, SETTING_DETAILS
from tests.conftest import SHARED_DATA

ROOT = Path(__file__).resolve().parents[2]
CORPUS = Path(__file__).resolve().parent / "corpus"
needs_shared = pytest.mark.skipif(not (SHARED_DATA / "irae_incidence.csv").exists(),
                                  reason="shared/data not available")
runner = CliRunner()

BUNDLED_RELEASE = {"incidence": 587, "timing": 219, "management": 157}
"""Rows of each table in the release the bundled dataset was built from (the second release of
shared/data). A later release may add rows after these; the tests then compare the bundle with
the rows it holds."""


def run(*args):
    return runner.invoke(app, ["data", *map(str, args)])


@pytest.fixture(scope="module")
def inc():
    return D.load_incidence()


def row(df, row_id):
    got = df[df["row_id"] == row_id]
    assert len(got) == 1, row_id
    return got.iloc[0]


# ------------------------------------------------------------------ bundled data


def test_bundled_files_load_with_types(inc):
    tim, man = D.load_timing(), D.load_management()
    assert (len(inc), len(tim), len(man)) == tuple(BUNDLED_RELEASE.values())
    for col in ("n", "events", "events_used", "grade_min", "grade_max", "fit_default",
                "regimen_parsed", "verified"):
        assert str(inc[col].dtype) == "Int64", col
    assert str(inc["percent"].dtype) == "Float64"
    for df in (inc, tim, man):
        assert df["citation"].str.strip().ne("").all()
        assert df["url"].str.startswith("http").all()
        assert df["row_id"].is_unique
    assert set(inc["organ_model"]) <= set(ORGAN_CHOICES) | {""}
    assert set(inc["arm_class"]) == {"control", "anti-PD-1", "anti-PD-L1", "anti-CTLA-4",
                                     "combination", "pooled"}
    assert ((inc["grade_min"] >= 1) & (inc["grade_min"] <= inc["grade_max"])
            & (inc["grade_max"] <= 5)).all()


def _shared_rows(kind: str) -> list[dict]:
    with (SHARED_DATA / f"irae_{kind}.csv").open(newline="") as fh:
        return list(csv.DictReader(fh))


@needs_shared
def test_bundled_copies_every_shared_row_and_column_verbatim():
    """Every bundled row is the shared row of the same ``row_id``, every shared column copied
    verbatim, in the shared order (a newer release may have rows the bundle does not yet)."""
    for kind, rows in BUNDLED_RELEASE.items():
        shared = _shared_rows(kind)
        with (ROOT / "pdmodel" / "data" / f"irae_{kind}.csv").open(newline="") as fh:
            bundled = list(csv.DictReader(fh))
        assert len(bundled) == rows and len(shared) >= rows, kind
        by_id = {s["row_id"]: s for s in shared}
        assert [b["row_id"] for b in bundled] == [s["row_id"] for s in shared
                                                  if s["row_id"] in {b["row_id"] for b in bundled}]
        for b in bundled:
            s = by_id[b["row_id"]]
            assert {k: b[k] for k in s} == s, b["row_id"]


@needs_shared
def test_build_script_reproduces_the_committed_files(tmp_path, capsys):
    """``build_dataset.py`` run on the shared tables of the bundled release (the shared files
    cut to the bundled ``row_id``s) rebuilds the committed CSVs byte for byte."""
    spec = importlib.util.spec_from_file_location(
        "build_dataset", ROOT / "pdmodel" / "data" / "build_dataset.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    shutil.copytree(SHARED_DATA, tmp_path / "shared", ignore=shutil.ignore_patterns("pk_*"))
    for kind in BUNDLED_RELEASE:
        with (ROOT / "pdmodel" / "data" / f"irae_{kind}.csv").open(newline="") as fh:
            ids = {r["row_id"] for r in csv.DictReader(fh)}
        src = SHARED_DATA / f"irae_{kind}.csv"
        lines = src.read_text(encoding="utf-8").splitlines(keepends=True)
        records = list(csv.reader(lines))
        assert len(records) == len(lines), f"{src.name}: a record spans lines"
        id_col = records[0].index("row_id")
        kept = [lines[0]] + [ln for ln, rec in zip(lines[1:], records[1:], strict=True)
                             if rec[id_col] in ids]
        (tmp_path / "shared" / src.name).write_text("".join(kept), encoding="utf-8")
    (tmp_path / "out").mkdir()
    mod.ROOT = tmp_path  # only used to print relative paths
    assert mod.build(tmp_path / "shared", tmp_path / "out") == BUNDLED_RELEASE
    for kind in BUNDLED_RELEASE:
        new = (tmp_path / "out" / f"irae_{kind}.csv").read_bytes()
        assert new == (ROOT / "pdmodel" / "data" / f"irae_{kind}.csv").read_bytes(), kind


def test_hand_checked_mappings(inc):
    rash = inc[inc["organ"] == "rash"].iloc[0]
    assert (rash["organ_model"], rash["term_level"]) == ("skin", "specific")
    hypo = inc[inc["organ"] == "hypophysitis"].iloc[0]
    assert (hypo["organ_model"], hypo["term_level"]) == ("pituitary", "specific")
    gi = inc[inc["organ"] == "gi"].iloc[0]
    assert (gi["organ_model"], gi["term_level"]) == ("gi", "group")
    for organ in ("adrenal", "kidney", "diabetes", "other"):
        sub = inc[inc["organ"] == organ]
        assert (sub["organ_model"] == "").all() and (sub["fit_default"] == 0).all()
        assert sub["exclusion_reason"].str.contains("organ not modelled").all()
    for grade, lo_hi in (("3-5", (3, 5)), ("any", (1, 5)), ("1-2", (1, 2)), ("3-4", (3, 4)),
                         ("2+", (2, 5)), ("5", (5, 5))):
        sub = inc[inc["grade"] == grade]
        assert len(sub) and (sub["grade_min"] == lo_hi[0]).all(), grade
        assert (sub["grade_max"] == lo_hi[1]).all(), grade

    # CheckMate 067 (CMAJ 2019 table): 33% rash, n = 315 approximated, events blank
    r = row(inc, "inc-0089")
    assert (r["study"], r["organ"], r["n"], r["percent"]) == ("CheckMate 067", "rash", 315, 33.0)
    assert pd.isna(r["events"])
    assert r["events_used"] == D.round_half_up(33.0 * 315 / 100) == 104  # 103.95 → 104
    r = row(inc, "inc-0292")  # 27.3% of 315 = 85.995 → 86
    assert pd.isna(r["events"]) and r["events_used"] == 86 and r["fit_default"] == 1
    # events present → used as is
    r = row(inc, "inc-0001")
    assert r["events_used"] == r["events"] == 409

    combo = inc[inc["agents"] == "nivolumab+ipilimumab"]
    assert (combo["agents_model"] == "nivolumab;ipilimumab").all()
    assert (combo["arm_class"] == "combination").all()
    gp = inc[inc["agents"] == "ipilimumab+gp100"]
    assert (gp["agents_model"] == "ipilimumab").all() and (gp["arm_class"] == "anti-CTLA-4").all()
    assert (gp["backbone"] == "vaccine").all()
    # "ipilimumab 3 mg/kg q3w x4 + gp100 peptide vaccine": the vaccine item is not dosed
    assert (gp["regimen_parsed"] == 1).all()
    assert (gp["regimen_model"] == "ipilimumab 3 mg/kg q3w x4").all()
    ctrl = inc[inc["control_arm"] == 1]
    assert (ctrl["arm_class"] == "control").all() and (ctrl["agents_model"] == "").all()
    assert (ctrl["regimen_model"] == "").all()
    pools = inc[inc["agents"].str.contains("class|ICIs|monotherapy or combination")]
    assert (pools["arm_class"] == "pooled").all() and (pools["fit_default"] == 0).all()
    assert row(inc, "inc-0001")["regimen_parsed"] == 1  # nivolumab 3 mg/kg q2w
    # the followup texts that are pure durations (months × 4.345)
    parsed = inc[inc["followup_weeks"].notna()]
    assert set(parsed["followup"]) == {"median 7.9 months", "median 8.6 months",
                                       "median 15.7 months", "minimum follow-up 36.0 months"}
    months = parsed["followup"].str.extract(r"([0-9.]+) months")[0].astype(float)
    assert np.allclose(parsed["followup_weeks"].astype(float), months * 4.345)


def test_backbones_and_controls(inc):
    """ICI + backbone arms keep their checkpoint inhibitors and name the backbone; control
    arms carry only a backbone (or none: placebo); unmodelled backbones are left out."""
    kn811 = inc[inc["agents"] == "pembrolizumab+trastuzumab+chemotherapy"]
    assert (kn811["agents_model"] == "pembrolizumab").all()
    assert (kn811["backbone"] == "trastuzumab+chemotherapy").all()
    assert (kn811["arm_class"] == "anti-PD-1").all()
    ctrl = inc[inc["agents"] == "placebo+trastuzumab+chemotherapy"]
    assert (ctrl["backbone"] == "trastuzumab+chemotherapy").all()
    assert (ctrl["arm_class"] == "control").all()
    assert (inc.loc[inc["agents"] == "placebo", "backbone"] == "").all()
    assert (inc.loc[inc["agents"] == "placebo+chemotherapy", "backbone"] == "chemotherapy").all()
    assert (inc.loc[inc["agents"] == "sorafenib", "backbone"] == "sorafenib").all()
    poseidon = inc[inc["agents"] == "tremelimumab+durvalumab+chemotherapy"]
    assert (poseidon["agents_model"] == "tremelimumab;durvalumab").all()
    assert (poseidon["arm_class"] == "combination").all()
    for label, backbone in (("atezolizumab+bevacizumab", "bevacizumab"),
                            ("nivolumab+cabozantinib", "cabozantinib")):
        sub = inc[inc["agents"] == label]
        assert len(sub) and (sub["backbone"] == backbone).all() and (sub["fit_default"] == 0).all()
        assert sub["exclusion_reason"].str.contains(f"backbone not modelled ({backbone}",
                                                    regex=False).all()
    fit = inc[inc["fit_default"] == 1]
    assert set(fit["backbone"]) == {"", *BACKBONES} - {"cetuximab+chemotherapy"} or \
        set(fit["backbone"]) <= {"", *BACKBONES}
    # every backbone of an ICI arm in the fit is given alone in a control arm of the fit
    assert set(fit.loc[fit["arm_class"] != "control", "backbone"]) - {""} <= \
        set(fit.loc[fit["arm_class"] == "control", "backbone"])


def test_regimen_each_arm_is_simulated_with(inc):
    """Every ICI arm of the default fit names a regimen that parses, and why it is that one."""
    fit = inc[(inc["fit_default"] == 1) & (inc["arm_class"] != "control")]
    for text in set(fit["regimen_model"]):
        assert str(Regimen.parse(text)) == text
    basis = fit["regimen_basis"]
    assert basis.ne("").all()
    printed = fit["regimen_parsed"] == 1
    assert (fit.loc[printed, "regimen_model"].map(Regimen.parse)
            == fit.loc[printed, "regimen"].map(lambda t: Regimen.parse(t.split(" + gp100")[0]))
            ).all()
    assert basis[~printed].str.startswith("dose not printed: assumed").all()
    assert basis[printed].isin(["printed in the source",
                                "trial design, recorded by the curator (regimen_note)"]).all()
    stride = inc[inc["regimen"] == "tremelimumab 300 mg once + durvalumab 1500 mg q4w"]
    assert (stride["regimen_model"] == "tremelimumab 300 mg x1 + durvalumab 1500 mg q4w").all()
    # every agent and tremelimumab + durvalumab have at least one arm in the default fit
    agents = {a for cell in fit["agents_model"] for a in cell.split(";")}
    assert agents == set(AGENTS)
    assert "tremelimumab;durvalumab" in set(fit["agents_model"])
    # fixed courses from the regimen note; settings the shared table codes `mixed`
    assert set(inc.loc[inc["study"] == "CheckMate 238", "course_weeks"].dropna()) == {52.14}
    assert set(inc.loc[inc["study"] == "CheckMate 816", "setting_model"]) == {"neoadjuvant"}
    assert set(inc.loc[inc["study"].str.startswith("KEYNOTE-671"), "setting_model"]) == {
        "perioperative"}
    assert set(inc["setting_model"]) <= set(SETTING_DETAILS)


def test_fit_default_rule(inc):
    rule = ((inc["verified"] == 1) & inc["n"].notna() & inc["events_used"].notna()
            & (inc["organ_model"] != "") & (inc["endpoint"] != "fatal")
            & ~inc["notes"].str.startswith("NOT AN INCIDENCE") & (inc["arm_class"] != "pooled")
            & inc["backbone"].isin(["", *BACKBONES])
            & pd.Series([(a, b) in RESOLVED_BANDS for a, b in zip(
                inc.grade_min, inc.grade_max, strict=True)], index=inc.index))
    assert (inc["fit_default"] == 1).eq(rule).all()
    assert ((inc["fit_default"] == 1) == (inc["exclusion_reason"] == "")).all()
    assert int(rule.sum()) == 344
    fatal = inc[inc["notes"].str.startswith("NOT AN INCIDENCE")]
    assert len(fatal) == 17 and (fatal["fit_default"] == 0).all()

    tim = D.load_timing()
    orig = tim["value_orig"]
    rule = ((tim["verified"] == 1) & (tim["value_weeks"].notna() | tim["fraction"].notna())
            & (tim["organ_model"] != "") & ~tim["study"].str.startswith("Unidentified")
            & ~orig.str.endswith("+") & (orig != "NR") & ~orig.str.startswith("<"))
    assert (tim["fit_default"] == 1).eq(rule).all() and int(rule.sum()) == 95
    assert ((tim["fit_default"] == 1) == (tim["exclusion_reason"] == "")).all()


def test_fit_default_rows_validate(inc):
    fit = inc[inc["fit_default"] == 1].reset_index(drop=True)
    schema = D.bundled_incidence_as_schema(fit)
    assert D.validate_incidence(schema) == []
    # the printed labels of arms whose source gives no dose are what the schema refuses
    printed = schema.assign(regimen=fit["regimen"])
    strict = D.validate_incidence(printed)
    assert strict and {i.field for i in strict} == {"regimen"}
    unparsed = fit[(fit["regimen_parsed"] == 0) & (fit["arm_class"] != "control")]
    assert {i.row_id for i in strict} >= set(unparsed["row_id"])


def test_docs_counts_match_the_data(inc):
    text = (ROOT / "docs" / "data.md").read_text()
    fit = inc[inc["fit_default"] == 1]
    grades = ["any", "1-2", "2+", "3+", "3-5", "3-4"]  # single grades 3, 4, 5 are excluded
    for organ in ORGAN_CHOICES:
        sub = fit[fit["organ_model"] == organ]
        cells = [int((sub["grade"] == g).sum()) for g in grades] + [len(sub)]
        assert f"| {organ} | " + " | ".join(map(str, cells)) + " |" in text, organ
    assert set(fit["grade"]) <= set(grades)
    assert f"**Kept: {len(fit)} of {len(inc)} rows; excluded: {len(inc) - len(fit)}.**" in text
    for name in D.INCIDENCE_SCHEMA:
        assert f"| `{name}` |" in text, name


# ------------------------------------------------------------------ helpers


def test_round_half_up_and_followup_parser():
    assert [D.round_half_up(x) for x in (0.5, 1.5, 2.5, 103.95, 2.4999)] == [1, 2, 3, 104, 2]
    assert D.events_from_percent("27.3", 315) == 86
    assert D.followup_weeks("median 12.5 months") == pytest.approx(12.5 * 4.345)
    assert D.followup_weeks("2 years") == pytest.approx(104.28)
    assert D.followup_weeks("median follow-up 18 months") == pytest.approx(78.21)
    assert D.followup_weeks("90 days") == pytest.approx(12.8571, abs=1e-4)
    for text in ("30 days after last dose", "pooled trial data (median time on treatment 4.1 "
                 "months)", "median 4 doses (range 1-4)", "label", "", "0 months",
                 "early onset: first dose to 90 d after last dose"):
        assert D.followup_weeks(text) is None, text


def test_backbone_course_and_agent_vocabulary():
    assert D.backbone_name(["chemotherapy", "placebo", "trastuzumab"]) == \
        "trastuzumab+chemotherapy"
    assert D.backbone_name(["gp100"]) == "vaccine" and D.backbone_name(["placebo"]) == ""
    assert D.backbone_name(["chemotherapy", "cetuximab"]) == "cetuximab+chemotherapy"
    assert D.split_agents("Keytruda+trastuzumab+chemotherapy") == (
        ["pembrolizumab"], ["trastuzumab", "chemotherapy"], [])
    assert D.split_agents("ipilimumab+gp100") == (["ipilimumab"], ["vaccine"], [])
    assert D.split_agents("nivolumab+aspirin")[2] == ["aspirin"]
    assert D.course_weeks("up to 1 year; regimen as recorded") == 52.14
    assert D.course_weeks("up to 96 weeks") == 96
    assert D.course_weeks("placebo q3w up to 18 doses (placebo arm)", 3.0) == 54
    assert D.course_weeks("placebo q3w up to 18 doses") is None  # no interval given
    assert D.course_weeks("pooled analysis") is None
    assert D.treatment_weeks("pooled trial data (median time on treatment 4.1 months)") == \
        pytest.approx(4.1 * 4.345)
    assert D.treatment_weeks("median treatment duration 4.2 mo (label)") == \
        pytest.approx(4.2 * 4.345)
    assert D.treatment_weeks("median 4 doses (range 1-4)", 3.0) == 12
    assert D.treatment_weeks("label") is None
    assert D.window_weeks("first dose to 100 days after last dose") == pytest.approx(100 / 7,
                                                                                      abs=1e-4)
    assert D.window_weeks("on treatment or within 30 days after end of the treatment") == \
        pytest.approx(30 / 7, abs=1e-4)
    assert [D.tumour_type(t) for t in (
        "melanoma (untreated advanced)", "advanced NSCLC (stage III/IV, no EGFR/ALK/ROS1; "
        "first-line)", "renal cell carcinoma (advanced)", "extensive-stage SCLC (first-line)",
        "melanoma; NSCLC", "mixed (19 cancer types)")] == [
        "melanoma", "nsclc", "rcc", "other", "other", "other"]


def test_issue_format():
    i = D.DataIssue(5, "r-4", "n", "0", "n must be > 0, got 0")
    assert str(i) == "line 5 (row_id r-4), field 'n': n must be > 0, got 0"
    assert str(D.DataIssue(0, "", "endpoint", "", "missing")).startswith("line 1 (header)")


def test_validator_never_raises_or_hides_nan():
    df = pd.DataFrame({
        "row_id": ["a", None, "c"], "source": ["x", "y", np.nan],
        "agents": ["nivolumab", 3.0, "Opdivo+placebo"],
        "regimen": ["nivolumab 240 mg q2w", None, "nivolumab 240 mg q2w"],
        "n": [100.0, np.nan, np.inf], "events": [np.nan, "abc", 5],
        "percent": [np.nan, "nan", 200.0], "endpoint": ["select", "x", None],
        "organ": ["lung", 7, "skin"], "grade": ["3+", "≥3", "any"],
    })
    issues = D.validate_incidence(df)
    text = "\n".join(map(str, issues))
    assert "line 2 (row_id a), field 'events': neither events nor percent" in text
    assert "line 3 (row_id 3), field 'n': n is required" in text  # blank row_id → line number
    assert "field 'percent': percent 'nan' is not a number" in text
    assert "field 'grade': unknown grade band '≥3' (did you mean '3+'?)" in text
    assert "line 4 (row_id c), field 'n': n 'inf' is not a number" in text
    assert "line 4 (row_id c), field 'source'" in text
    assert "line 4 (row_id c), field 'percent': percent must be between 0 and 100" in text
    assert D.validate_incidence(pd.DataFrame()) != []


# ------------------------------------------------------------------ user files and the CLI


def test_valid_user_csv_passes():
    res = run("check", CORPUS / "valid.csv")
    assert res.exit_code == 0, res.output
    out = res.stdout
    for pat in (r"rows: 8\b", r"arms: 6\b", r"agents \(rows\): ipilimumab 5", r"n range: 100-300",
                r"endpoints \(rows\): immune_related 4", r"organ x grade",
                r"\n  gi +1 +1 +0 +0 +0\n"):
        assert re.search(pat, out), (pat, out)
    df = D.read_incidence_csv(CORPUS / "valid.csv")
    r = df[df["row_id"] == "ex-03"].iloc[0]  # percent only: 30% of 130
    assert pd.isna(r["events"]) and r["events_used"] == 39 and r["organ_model"] == "gi"
    assert (r["grade_min"], r["grade_max"]) == (1, 5)
    issues, summary = D.check_file(CORPUS / "valid.csv")
    assert issues == [] and "valid incidence table" in summary


# (file, line, field, message pattern): each file breaks valid.csv (see make_corpus.py)
MALFORMED = [
    ("events_gt_n.csv", 3, "events", r"events 140 > n 130"),
    ("percent_150.csv", 4, "percent", r"between 0 and 100, got 150"),
    ("percent_negative.csv", 4, "percent", r"between 0 and 100, got -1"),
    ("percent_text.csv", 4, "percent", r"'30%' is not a number"),
    ("unknown_agent.csv", 7, "agents", r"unknown agent 'nivolumb' \(did you mean 'nivolumab'\?\)"),
    ("unknown_organ.csv", 5, "organ", r"unknown organ 'heart'"),
    ("unmodelled_organ.csv", 5, "organ", r"'adrenal' is not modelled"),
    ("unknown_grade.csv", 2, "grade", r"unknown grade band '6'"),
    ("unknown_endpoint.csv", 6, "endpoint",
     r"unknown endpoint 'drug_related' \(did you mean 'treatment_related'\?\)"),
    ("fatal_endpoint.csv", 6, "endpoint", r"'fatal'.*not an incidence endpoint"),
    ("regimen_mg_m2.csv", 7, "regimen", r"does not parse: .*'mg/m2'"),
    ("regimen_missing.csv", 9, "regimen", r"regimen is required"),
    ("regimen_agent_mismatch.csv", 9, "regimen", r"doses nivolumab but agents says pembrolizumab"),
    ("missing_source.csv", 8, "source", r"empty source"),
    ("n_zero.csv", 9, "n", r"n must be > 0, got 0"),
    ("n_nonnumeric.csv", 2, "n", r"'about 130' is not a number"),
    ("n_blank.csv", 2, "n", r"n is required"),
    ("events_fraction.csv", 5, "events", r"'2\.5' is not a whole number"),
    ("events_negative.csv", 5, "events", r"events must be >= 0"),
    ("no_events_no_percent.csv", 8, "events", r"neither events nor percent"),
    ("inconsistent_percent.csv", 3, "percent", r"20/130 = 15\.38% disagrees with percent 25"),
    ("followup_negative.csv", 2, "followup_weeks", r"must be > 0, got -3"),
    ("duplicate_row_id.csv", 6, "row_id", r"duplicate row_id 'ex-02' \(first used on line 3\)"),
    ("missing_column.csv", 1, "endpoint", r"missing required column 'endpoint'"),
    ("missing_events_and_percent_columns.csv", 1, "events",
     r"missing required column 'events' or 'percent'"),
    ("too_many_fields.csv", 3, "", r"row has 15 fields but the header has 14"),
    ("stray_quote.csv", 4, "notes",
     r"unbalanced quote: column 'notes' opens a '\"' .* runs lines 4-6 together"),
]


def test_corpus_is_complete():
    files = {p.name for p in CORPUS.glob("*.csv")} - {"valid.csv", "many_errors.csv"}
    assert files == {m[0] for m in MALFORMED}
    assert len(MALFORMED) >= 15


@pytest.mark.parametrize(("name", "line", "field", "pattern"), MALFORMED,
                         ids=[m[0] for m in MALFORMED])
def test_malformed_csv_is_rejected_with_line_and_field(name, line, field, pattern):
    res = run("check", CORPUS / name)
    assert res.exit_code == 1, res.output
    where = r"line 1 \(header\)" if line == 1 else rf"line {line} \(row_id [^)]+\)"
    assert re.search(rf"^{where}, field '{field}': .*{pattern}", res.stderr, re.M), res.stderr
    assert res.stdout == ""
    assert re.search(r"\d+ problems? in 8 data rows", res.stderr)


def test_every_problem_is_reported():
    res = run("check", CORPUS / "many_errors.csv")
    assert res.exit_code == 1
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("line ")]
    assert [re.match(r"line (\d+) .*field '(\w+)'", ln).groups() for ln in lines] == [
        ("2", "agents"), ("2", "organ"), ("4", "n"), ("7", "regimen"), ("7", "percent")]
    with pytest.raises(D.DataError) as err:
        D.read_incidence_csv(CORPUS / "many_errors.csv")
    assert len(err.value.issues) == 5 and str(err.value).count("\nline ") == 5
    df = D.read_incidence_csv(CORPUS / "many_errors.csv", strict=False)
    assert len(df.attrs["issues"]) == 5 and pd.isna(df.loc[5, "percent"])


def test_unreadable_files_exit_1(tmp_path):
    binary = tmp_path / "image.csv"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    empty = tmp_path / "empty.csv"
    empty.write_text("\n\n")
    prose = tmp_path / "notes.csv"
    prose.write_text("just a sentence\nand another\n")
    latin = tmp_path / "bytes.csv"
    latin.write_bytes(b"row_id,source\n\x81\x8d\x8f\x90\x9d\n")
    for path, msg in ((binary, "binary"), (empty, "empty file"), (prose, "not a CSV table"),
                      (latin, "not a CSV text file"), (tmp_path / "missing.csv", "no such file"),
                      (tmp_path, "is a directory")):
        res = run("check", path)
        assert res.exit_code == 1, (path, res.output)
        assert res.stderr.startswith("error: ") and msg in res.stderr, res.stderr
        with pytest.raises(D.DataFileError):
            D.check_file(path)


def test_header_names_blank_lines_and_row_numbers(tmp_path):
    text = (CORPUS / "valid.csv").read_text().splitlines()
    text[0] = text[0].upper().replace("SOURCE", "Citation")  # names are case-insensitive
    text.insert(3, "")  # a blank spreadsheet row keeps its line number: ex-03 is on line 5
    assert text[4].startswith("ex-03,")
    text[4] = text[4].replace("ex-03", "")  # blank row_id → the line number is shown
    path = tmp_path / "x.csv"
    path.write_text("\n".join(text) + "\n")
    assert D.check_file(path)[0] == []
    text[4] = text[4].replace("Yervoy", "yervoi")
    path.write_text("\n".join(text) + "\n")
    issues, _ = D.check_file(path)
    assert len(issues) == 1 and str(issues[0]).startswith("line 5 (row_id 5), field 'agents'")
    assert "did you mean 'yervoy'" in issues[0].message


def test_timing_kind(tmp_path):
    good = tmp_path / "timing.csv"
    good.write_text(
        "row_id,source,agents,regimen,organ,grade,quantity,statistic,value_weeks,window_weeks,"
        "fraction,n_events\n"
        "t1,Example (synthetic),ipilimumab,ipilimumab 3 mg/kg q3w x4,colitis,2+,onset,median,"
        "7.5,,,20\n"
        "t2,Example (synthetic),ipilimumab,,any,2+,onset,fraction_by,,4.345,0.4,20\n")
    res = run("check", good, "--kind", "timing")
    assert res.exit_code == 0, res.output
    assert "rows: 2" in res.stdout
    bad = tmp_path / "bad_timing.csv"
    bad.write_text(good.read_text().replace("median,7.5", "mode,-1").replace("0.4,20", ",20"))
    res = run("check", bad, "--kind", "timing")
    assert res.exit_code == 1
    assert re.search(r"line 2 \(row_id t1\), field 'statistic': unknown statistic 'mode'",
                     res.stderr)
    assert re.search(r"line 2 \(row_id t1\), field 'value_weeks': .*>= 0", res.stderr)
    assert re.search(r"line 3 \(row_id t2\), field 'fraction': fraction is required", res.stderr)


def test_stray_quote_swallows_no_row():
    """A stray quote in a free-text cell is reported where it opens, and the lines a CSV
    reader would run into that cell are read as rows of their own, with their line numbers."""
    df, issues = D.read_csv_cells(CORPUS / "stray_quote.csv")
    assert df.attrs["lines"] == list(range(2, 10))
    assert df["row_id"].tolist() == [f"ex-0{k}" for k in range(1, 9)]
    assert df.loc[2, "notes"] == '"percent only' and df.loc[4, "regimen"].startswith("nivolumab")
    assert [(i.row, i.row_id, i.field) for i in issues] == [(4, "ex-03", "notes")]
    assert D.check_file(CORPUS / "stray_quote.csv")[0] == issues
    # the rows after it still get every check, on their own lines
    df.loc[df["row_id"] == "ex-06", "n"] = "0"
    assert [(i.row, i.field) for i in D.validate_incidence(df)] == [(7, "n")]


def test_pandera_schema_is_the_validator():
    """``validate_incidence`` is the pandera schema plus the messages: the schema fails on the
    same cells, its check names say which rule."""
    import pandera.pandas as pa

    schema = D.incidence_table_schema()
    assert isinstance(schema, pa.DataFrameSchema)
    assert set(D.INCIDENCE_SCHEMA) <= set(schema.columns)
    df, _ = D.read_csv_cells(CORPUS / "many_errors.csv")
    with pytest.raises(pa.errors.SchemaErrors) as err:
        schema.validate(df.astype(str), lazy=True)
    checks = set(err.value.failure_cases["check"])
    assert {"agents: known agents", "organ: modelled organ", "n: in range",
            "regimen: doses the arm's agents", "percent: in range"} <= checks
    schema.validate(D.read_csv_cells(CORPUS / "valid.csv")[0].astype(str), lazy=True)
    assert isinstance(D.timing_table_schema(), pa.DataFrameSchema)


def test_number_cells_are_plain_numbers():
    """Cells Python's float() or Decimal() would read leniently are not numbers."""
    for text in ("1_30", "\u0663", "\uff13", "nan", "inf", "-inf", "1,5", "0x10", "", "1e400"):
        assert D._cells.cell_number(text) is None, text
    for text, value in (("130", 130.0), ("-1", -1.0), ("+3", 3.0), (".5", 0.5), ("5.", 5.0),
                        ("1E-05", 1e-05), (" 7 ", 7.0)):
        assert D._cells.cell_number(text) == value, text


# ------------------------------------------------------------------ user tables on the fit path


def test_user_table_is_harmonised_as_the_bundled_table(tmp_path):
    """The bundled rows that pass the schema, written as a user's file with their shared
    columns only, get exactly the bundled added columns from ``load_user_incidence``."""
    raw = pd.read_csv(ROOT / "pdmodel" / "data" / "irae_incidence.csv", dtype=str,
                      keep_default_na=False)
    shared = list(raw.columns[:raw.columns.get_loc("organ_model")])
    added = list(raw.columns[raw.columns.get_loc("organ_model"):])
    bad = {i.row_id for i in D.validate_incidence(raw[shared])}
    user = raw[~raw["row_id"].isin(bad)]
    assert len(user) == 241 and (user["fit_default"] == "1").sum() == 218
    user[shared].to_csv(tmp_path / "mine.csv", index=False)
    got = D.load_user_incidence(tmp_path / "mine.csv")
    want = D.load_incidence()
    want = want[want["row_id"].isin(user["row_id"])].reset_index(drop=True)
    pd.testing.assert_frame_equal(got[["row_id", *added]], want[["row_id", *added]],
                                  check_dtype=False)
    assert got.attrs["lines"] == list(range(2, 243))


def test_user_table_columns_for_the_fit():
    df = D.load_user_incidence(CORPUS / "valid.csv")
    for col in ("fit_default", "backbone", "setting_model", "regimen_model", "agents_model",
                "arm_class", "tumour_model", "events_used", "grade_min", "grade_max",
                "organ_model", "term_level", "study", "exclusion_reason"):
        assert col in df, col
    assert str(df["fit_default"].dtype) == "Int64" and (df["fit_default"] == 1).all()
    r = df[df["row_id"] == "ex-03"].iloc[0]  # Yervoy, percent only
    assert (r["agents_model"], r["events_used"], r["regimen_model"], r["followup_weeks"]) == (
        "ipilimumab", 39, "ipilimumab 3 mg/kg q3w x4", 52.0)
    assert df.loc[df["row_id"] == "ex-07", "arm_class"].item() == "control"
    assert df.loc[df["row_id"] == "ex-08", "tumour_model"].item() == "nsclc"


def test_user_table_with_problems_raises_the_full_report():
    with pytest.raises(D.DataError) as err:
        D.load_user_incidence(CORPUS / "many_errors.csv")
    issues, _ = D.check_file(CORPUS / "many_errors.csv")
    assert err.value.issues == issues
    assert str(err.value) == D.format_issues(issues, str(CORPUS / "many_errors.csv"))
    with pytest.raises(D.DataFileError, match="no such file"):
        D.load_user_incidence(CORPUS / "missing.csv")
    with pytest.raises(D.DataError, match="unbalanced quote"):
        D.load_user_incidence(CORPUS / "stray_quote.csv")


def test_user_timing_table_is_harmonised_as_the_bundled_table(tmp_path):
    raw = pd.read_csv(ROOT / "pdmodel" / "data" / "irae_timing.csv", dtype=str,
                      keep_default_na=False)
    shared = list(raw.columns[:raw.columns.get_loc("organ_model")])
    added = list(raw.columns[raw.columns.get_loc("organ_model"):])
    bad = {i.row_id for i in D.validate_timing(raw[shared])}
    user = raw[~raw["row_id"].isin(bad)]
    assert len(user) >= 10
    user[shared].to_csv(tmp_path / "t.csv", index=False)
    got = D.load_user_timing(tmp_path / "t.csv")
    want = D.load_timing()
    want = want[want["row_id"].isin(user["row_id"])].reset_index(drop=True)
    pd.testing.assert_frame_equal(got[["row_id", *added]], want[["row_id", *added]],
                                  check_dtype=False)


def test_usable_for_fit():
    assert D.usable_for_fit("") and D.usable_for_fit("not verified")
    assert D.usable_for_fit("not verified; backbone without a control arm (chemotherapy)")
    for reason in ("organ not modelled", "fatal endpoint", "n unknown",
                   "not verified; class-level or mixed pool (no agent to simulate)",
                   "backbone not modelled (bevacizumab: no control arm gives it)"):
        assert not D.usable_for_fit(reason), reason


# ------------------------------------------------------------------ coverage


def test_data_summary_covers_every_agent(inc):
    """``pdmodel data summary``: every agent and tremelimumab + durvalumab have an arm in the
    default fit, control backbones are listed, and the counts are those of the rows."""
    table = D.coverage(inc)
    groups = list(table["arm_group"])
    for agent in AGENTS:
        assert agent in groups, agent
        assert int(table.loc[table["arm_group"] == agent, "arms"].iloc[0]) >= 1
    assert {"nivolumab+ipilimumab", "tremelimumab+durvalumab", "control: placebo",
            "control: chemotherapy", "control: trastuzumab+chemotherapy"} <= set(groups)
    fit = inc[inc["fit_default"] == 1]
    assert int(table["rows"].sum()) == len(fit)
    avelumab = table[table["arm_group"] == "avelumab"].iloc[0]
    sub = fit[fit["agents_model"] == "avelumab"]
    assert avelumab["rows"] == len(sub) and avelumab["studies"] == sub["study"].nunique()
    assert avelumab["organ_grade_cells"] == len(sub.drop_duplicates(["organ_model", "grade"]))
    assert list(table.columns) == list(D.COVERAGE_COLUMNS)

    res = run("summary", "--format", "csv")
    assert res.exit_code == 0, res.output
    assert pd.read_csv(pd.io.common.StringIO(res.output))["arm_group"].tolist() == groups
    res = run("summary")
    assert res.exit_code == 0 and "tremelimumab+durvalumab" in res.output
    md = run("summary", "--format", "markdown").output
    assert md.startswith("| arm_group | studies |")
    # the same table is in docs/data.md
    text = (ROOT / "docs" / "data.md").read_text()
    for line in md.splitlines()[2:]:
        assert line in text, line


def test_data_summary_bad_file(tmp_path):
    res = run("summary", tmp_path / "missing.csv")
    assert res.exit_code == 1 and "error: cannot read" in res.output
    plain = tmp_path / "plain.csv"
    plain.write_text("row_id,n\nr1,5\n")
    res = run("summary", plain)
    assert res.exit_code == 1 and "missing column(s) agents_model, fit_default" in res.output


def test_every_default_row_enters_the_design(inc):
    """The fit drops no `fit_default` row silently: its grade band is one the model resolves."""
    from pdmodel.fit import select_rows

    assert len(select_rows(inc)) == int((inc["fit_default"] == 1).sum())
