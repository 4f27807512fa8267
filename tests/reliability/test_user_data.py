"""Reliability: a user's own incidence file through ``pdmodel fit``, on the bundled data's path.

The file is checked by the ``pdmodel data check`` rules first (a file with problems stops the
fit with exit 1 and the full report), then harmonised as the bundled table
(``pdmodel.data.load_user_incidence``), so that ``_training_rows`` and the design get every
column they need (``fit_default``, ``backbone``, ``setting_model``, ``regimen_model``, ...);
before, such a file ended in ``KeyError: 'fit_default'``.

The user file is 4 rows of CheckMate 026 (nivolumab 3 mg/kg q2w, NSCLC), copied from the
bundled table in the user format (``tests/data/user_incidence_checkmate026.csv``). A whole fit,
even tiny, takes about 4 minutes on one core (compiling the likelihood, its Hessian and the
outputs), so the default run checks the rows, the design and the log density (about 20 s), and
the end-to-end fit is the ``slow`` test at the bottom.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from pdmodel.cli import app
from pdmodel.errors import ConfigError, DataError
from pdmodel.fit import apply_overrides, build_design, fit_spec, load_config, log_density_of
from pdmodel.fit._pipeline import _training_rows

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_TOML = ROOT / "fits" / "default.toml"
USER = ROOT / "tests" / "data" / "user_incidence_checkmate026.csv"
CORPUS = ROOT / "tests" / "data" / "corpus"
USER_IDS = ["inc-0380", "inc-0381", "inc-0384", "inc-0388"]
TINY = ["model.days=28", "output.weeks=2", "model.patients=4"]


def config(*overrides: str):
    return apply_overrides(load_config(DEFAULT_TOML), [*TINY, *overrides])


@pytest.fixture(scope="module")
def user_rows() -> pd.DataFrame:
    return _training_rows(config(f"data.incidence={USER}"))


def test_user_rows_have_what_the_fit_needs(user_rows):
    assert user_rows["row_id"].tolist() == USER_IDS
    assert (user_rows["fit_default"] == 1).all() and (user_rows["exclusion_reason"] == "").all()
    assert set(user_rows["regimen_model"]) == {"nivolumab 3 mg/kg q2w"}
    assert set(user_rows["backbone"]) == {""} and set(user_rows["arm_class"]) == {"anti-PD-1"}
    assert set(user_rows["tumour_model"]) == {"nsclc"}
    assert set(user_rows["setting_model"]) == {"metastatic"}
    assert user_rows["events_used"].tolist() == [190, 47, 37, 26]
    # the same columns, with the same values, as the bundled rows they were copied from
    bundled = _training_rows(config())
    bundled = bundled[bundled["row_id"].isin(USER_IDS)].reset_index(drop=True)
    for col in ("organ_model", "term_level", "grade_min", "grade_max", "events_used",
                "agents_model", "backbone", "arm_class", "setting_model", "regimen_model",
                "tumour_model", "fit_default"):
        assert user_rows[col].tolist() == bundled[col].tolist(), col


def test_user_rows_build_a_design_with_a_finite_log_density(user_rows):
    import jax
    import jax.numpy as jnp

    design = build_design(user_rows, patients=4, seed=0, max_days=28)
    assert list(design.obs.n) == [267] * 4 and len(design.trials) == 1
    assert len(design.units) == 1 and set(design.regimens) == {"nivolumab 3 mg/kg q2w"}
    spec = fit_spec(config(f"data.incidence={USER}"))
    value = jax.jit(lambda u: log_density_of(spec, design, u))(jnp.zeros(spec.size))
    assert np.isfinite(float(value))


def _write(tmp_path: Path, rows: list[str]) -> Path:
    path = tmp_path / "mine.csv"
    header = USER.read_text().splitlines()[0]
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def test_use_all_fits_every_row_the_model_can(tmp_path):
    """``data.use = "all"`` adds the rows excluded by a choice of the default fit (a backbone
    without a control arm), not the ones the model cannot simulate."""
    src = "Example (synthetic)"
    path = _write(tmp_path, [
        f"a1,{src},nivolumab,nivolumab 240 mg q2w,100,30,,immune_related,any,any,,,,",
        f"a2,{src},nivolumab,nivolumab 240 mg q2w,100,2,,immune_related,any,4,,,,",
        f"a3,{src},pembrolizumab+chemotherapy,pembrolizumab 200 mg q3w,100,40,,"
        "immune_related,any,any,,,,",
        f"a4,{src},atezolizumab+bevacizumab,atezolizumab 1200 mg q3w,100,20,,"
        "immune_related,any,any,,,,"])
    default = _training_rows(config(f"data.incidence={path}"))
    assert default.loc[default["fit_default"] == 1, "row_id"].tolist() == ["a1"]
    reasons = dict(zip(default["row_id"], default["exclusion_reason"], strict=True))
    assert "grade band 4-4 not resolved" in reasons["a2"]
    assert reasons["a3"] == "backbone without a control arm (chemotherapy)"
    assert reasons["a4"].startswith("backbone not modelled (bevacizumab")
    everything = _training_rows(config(f"data.incidence={path}", "data.use=all"))
    assert everything.loc[everything["fit_default"] == 1, "row_id"].tolist() == [
        "a1", "a3"]


# (extra overrides, error class, words the message must hold)
API_CASES = [
    pytest.param([f"data.incidence={USER}", 'data.exclude_rows=["inc-380"]'], ConfigError,
                 ["data.exclude_rows", "unknown row_id 'inc-380'", "did you mean 'inc-0380'"],
                 id="exclude-typo-user-file"),
    pytest.param(['data.exclude_rows=["inc-001", "inc-0002"]'], ConfigError,
                 ["data.exclude_rows: unknown row_id 'inc-001' (did you mean 'inc-0001'?)",
                  "bundled"], id="exclude-typo-bundled"),
    pytest.param([f"data.incidence={USER}", f"data.exclude_rows={json.dumps(USER_IDS)}"],
                 DataError, ["no row can be fitted", "left out by data.exclude_rows"],
                 id="everything-excluded"),
    pytest.param([f"data.incidence={CORPUS / 'many_errors.csv'}"], DataError,
                 ["5 problems", "line 2 (row_id ex-01), field 'agents'",
                  "line 7 (row_id ex-06), field 'percent'"], id="invalid-user-file"),
]


@pytest.mark.parametrize(("overrides", "exc", "words"), API_CASES)
def test_training_rows_errors_name_the_problem(overrides, exc, words):
    with pytest.raises(exc) as err:
        _training_rows(config(*overrides))
    assert type(err.value) is exc
    for w in words:
        assert w in str(err.value), str(err.value)
    if exc is ConfigError:
        assert err.value.source == "data.exclude_rows"


def _bad_file(tmp_path: Path, kind: str) -> Path:
    if kind.endswith(".csv"):
        return CORPUS / kind
    path = tmp_path / "bad.csv"
    if kind == "binary":
        path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    elif kind == "empty":
        path.write_text("")
    elif kind == "decimal-comma":
        text = USER.read_text().replace(",71.0,", ',"71,0",')
        path.write_text(text)
    return path


# (bad file: a corpus file or a kind made here, exit code, words of the report)
CLI_CASES = [
    pytest.param("many_errors.csv", 1,
                 ["many_errors.csv: 5 problems", "line 2 (row_id ex-01), field 'agents'",
                  "did you mean 'nivolumab'", "line 4 (row_id ex-03), field 'n'",
                  "line 7 (row_id ex-06), field 'regimen'"], id="cli-invalid-file"),
    pytest.param("stray_quote.csv", 1,
                 ["line 4 (row_id ex-03), field 'notes': unbalanced quote"],
                 id="cli-stray-quote"),
    pytest.param("regimen_mg_m2.csv", 1, ["line 7 (row_id ex-06), field 'regimen'", "mg/m2"],
                 id="cli-bad-regimen"),
    pytest.param("missing_column.csv", 1,
                 ["line 1 (header), field 'endpoint': missing required column"],
                 id="cli-missing-column"),
    pytest.param("decimal-comma", 1,
                 ["line 2 (row_id inc-0380), field 'percent'", "decimal comma"],
                 id="cli-decimal-comma"),
    pytest.param("binary", 1, ["bad.csv", "binary"], id="cli-binary-file"),
    pytest.param("empty", 1, ["bad.csv", "empty file"], id="cli-empty-file"),
]


@pytest.mark.parametrize(("bad", "code", "words"), CLI_CASES)
def test_fit_with_a_bad_user_file_shows_the_report(tmp_path, bad, code, words):
    path = _bad_file(tmp_path, bad)
    res = CliRunner().invoke(app, ["fit", str(DEFAULT_TOML), "--set", f"data.incidence={path}",
                                   "--set", f"output.folder={tmp_path / 'run'}",
                                   "--no-progress"])
    assert res.exit_code == code, res.output
    assert res.stderr.startswith("error: ") and "Traceback" not in res.output
    for w in words:
        assert w in res.stderr, res.stderr
    assert not (tmp_path / "run").exists()  # nothing fitted, no run folder


def test_fit_with_an_unknown_excluded_row_exits_2(tmp_path):
    res = CliRunner().invoke(app, ["fit", str(DEFAULT_TOML), "--set", f"data.incidence={USER}",
                                   "--set", 'data.exclude_rows=["inc-0384", "inc-388"]',
                                   "--set", f"output.folder={tmp_path / 'run'}"])
    assert res.exit_code == 2, res.output
    assert "data.exclude_rows: unknown row_id 'inc-388' (did you mean 'inc-0388'?)" in res.stderr


@pytest.mark.slow
def test_tiny_fit_of_a_user_file_end_to_end(tmp_path):
    """``pdmodel fit`` on the 4-row user file, tiny settings (about 4 minutes on one core)."""
    out = tmp_path / "run"
    res = CliRunner().invoke(app, [
        "fit", str(DEFAULT_TOML), "--no-progress", "--set", f"data.incidence={USER}",
        "--set", f"output.folder={out}", "--set", "map.starts=1", "--set", "map.adam_steps=2",
        "--set", "map.lbfgs_steps=1", "--set", "nuts.method=laplace", "--set", "nuts.draws=6",
        *[a for o in TINY for a in ("--set", o)],
        "--set", 'output.curves_regimens=["nivolumab 240 mg q2w"]',
        "--set", 'model.fixed=["susceptibility", "k_rep", "log_gap2", "log_gap3", '
                 '"background", "agent_effect", "w_ab", "w_pd", "w_ctla4"]'])
    assert res.exit_code == 0, res.output
    assert "data: 4 arm-level rows of 1 studies" in res.output
    ppc = pd.read_csv(out / "results" / "ppc.csv")
    assert sorted(ppc["row_id"]) == USER_IDS
    design = pd.read_csv(out / "results" / "design.csv")
    assert sorted(design["row_id"]) == USER_IDS
    assert set(design["regimen_simulated"]) == {"nivolumab 3 mg/kg q2w"}
