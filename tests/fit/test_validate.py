"""`pdmodel validate`: folds, the class-average baseline, the masked log density, the pipeline
(outputs, resume) and its errors, on a handful of studies."""

import json
from pathlib import Path

import equinox as eqx
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import pdmodel as pdm
import pdmodel.fit._validate as validation
from pdmodel.cli import app
from pdmodel.data import load_incidence
from pdmodel.fit import (
    class_average_probability,
    class_average_table,
    group_folds,
    masked_log_density,
    select_rows,
)
from pdmodel.fit._map import Laplace, MapResult

STUDIES = ["CASPIAN", "CASPIAN (Japan subgroup)", "DETERMINE (phase 2b)",
           "Weber 2017 pooled nivolumab melanoma"]
"""15 default-fit rows, 7 arms, 3 simulated regimens (durvalumab + chemotherapy,
tremelimumab, nivolumab) and control arms."""

FIXED = ["susceptibility", "k_rep", "log_gap2", "log_gap3", "background", "agent_effect",
         "w_ab", "w_pd", "w_ctla4"]
REQUIRED = ["study", "arm", "n", "observed", "mean", "lower", "upper", "covered",
            "logloss_model", "logloss_baseline"]


@pytest.fixture(scope="module")
def rows():
    return select_rows(load_incidence())


def _config(tmp_path, folder="run"):
    """A tiny validation: the four studies, 4 patients, a 3-step MAP."""
    excl = load_incidence().query("study not in @STUDIES").row_id.tolist()
    path = tmp_path / "tiny.toml"
    path.write_text(
        f"[data]\nexclude_rows = {json.dumps(excl)}\n"
        f"[model]\npatients = 4\nfixed = {json.dumps(FIXED)}\n"
        "[map]\nstarts = 1\nadam_steps = 2\nlbfgs_steps = 1\n"
        f"[output]\nfolder = {json.dumps(str(tmp_path / folder))}\n")
    return path


# --------------------------------------------------------------------------- folds


def test_folds_partition_the_studies_balanced_by_rows(rows):
    groups = rows.study.tolist()
    folds = group_folds(groups, 10, seed=0)
    flat = [g for f in folds for g in f]
    assert len(folds) == 10 and sorted(flat) == sorted(set(groups))  # each study once
    sizes = [int(rows.study.isin(f).sum()) for f in folds]
    assert sum(sizes) == len(rows) and max(sizes) - min(sizes) <= rows.study.value_counts().max()
    assert group_folds(groups, 10, seed=0) == folds  # deterministic for a seed
    assert group_folds(groups, 10, seed=1) != folds
    loso = group_folds(groups, 0, seed=0)
    assert sorted(len(f) for f in loso) == [1] * rows.study.nunique()
    assert group_folds(groups, 1000, seed=0) == loso
    with pytest.raises(pdm.PdmodelError, match="folds must be 0"):
        group_folds(groups, 1, seed=0)
    with pytest.raises(pdm.PdmodelError, match="at least 2 groups"):
        group_folds(["a", "a"], 2, seed=0)


# --------------------------------------------------------------------------- baseline


def test_baseline_table_uses_only_the_training_rows(rows):
    sub = rows[rows.study.isin(STUDIES)]
    held = sub.study == "Weber 2017 pooled nivolumab melanoma"
    train, test = sub[~held], sub[held]
    p, level = class_average_probability(class_average_table(train), test)
    assert np.all((p > 0) & (p < 1)) and set(level) <= {0, 1, 2, 3}
    # a table that had seen the held-out counts would predict otherwise for those rows
    shaken = test.assign(events_used=test.n)
    leaked, _ = class_average_probability(class_average_table(pd.concat([train, shaken])),
                                          test)
    assert np.all(leaked > p)


def test_baseline_falls_back_from_class_to_organ_to_all(rows):
    sub = rows[rows.study.isin(STUDIES)]
    table = class_average_table(sub)
    first = sub.iloc[[0]]
    odd = pd.concat([first,  # its own cell
                     first.assign(arm_class="combination"),  # no such class: organ x grade
                     first.assign(arm_class="combination", endpoint="unseen"),  # no endpoint
                     first.assign(organ_model="kidney")])  # no organ: all rows
    p, level = class_average_probability(table, odd)
    assert level.tolist() == [0, 1, 2, 3] and np.all((p > 0) & (p < 1))
    assert p[0] == p[1] != p[2] != p[3]  # one arm's cell: the same pooled proportion
    assert table.phi > 1


# --------------------------------------------------------------------------- model


@pytest.mark.slow
def test_masked_log_density_with_unit_weights_is_the_fit_density():
    """Two compiled ODE programs (about 30 s on a loaded 2-core machine)."""
    rows = pd.DataFrame({
        "row_id": ["r1", "r2"], "organ": ["any", "gi"], "organ_model": ["any", "gi"],
        "grade_min": [1, 3], "grade_max": 5, "n": 100, "events_used": [60, 5],
        "endpoint": "treatment_related", "term_level": "group",
        "regimen": "nivolumab 240 mg q2w", "regimen_parsed": 1, "agents_model": "nivolumab",
        "arm_class": "anti-PD-1", "fit_default": 1})
    design = pdm.build_design(rows, patients=2, days=28)
    spec = pdm.FitSpec.default()
    u = spec.prior_location()
    masked = eqx.filter_jit(masked_log_density)  # the weights are an input: one program
    full = masked(spec, design, jnp.ones(2), u)
    np.testing.assert_allclose(full, eqx.filter_jit(pdm.log_density)(u, spec, design),
                               rtol=1e-12)
    without = masked(spec, design, jnp.asarray([1.0, 0.0]), u)
    assert np.isfinite(without) and not np.isclose(full, without)


# --------------------------------------------------------------------------- pipeline


def test_validate_writes_results_and_resumes_byte_for_byte(tmp_path, monkeypatch, rows):
    """The pipeline with a stand-in MAP and Laplace (the real ones: the slow test below)."""

    weights = []

    def quick_map(ld, u0, key, **kwargs):
        weights.append(np.asarray(ld.args[2]))  # Partial(masked_log_density, spec, design, w)
        return MapResult(u0, jnp.asarray(0.0), u0[None], jnp.zeros(1), jnp.zeros(1))

    def quick_laplace(ld, u):
        return Laplace(jnp.full(u.shape, 0.1), 0.01 * jnp.eye(u.size), 0)

    monkeypatch.setattr(validation, "map_fit", quick_map)
    monkeypatch.setattr(validation, "laplace_scale", quick_laplace)
    config = _config(tmp_path)
    args = ["validate", str(config), "--folds", "3", "--draws", "6", "--no-progress"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "interval coverage" in res.output and "class average" in res.output
    out = tmp_path / "run" / "validation" / "results"
    table = pd.read_csv(out / "validation.csv")
    assert set(REQUIRED) <= set(table.columns) and len(table) == 15
    assert sorted(table.row_id) == sorted(rows[rows.study.isin(STUDIES)].row_id)
    assert (table.lower <= table["mean"]).all() and (table["mean"] <= table.upper).all()
    assert (table.covered == ((table.observed >= table.lower)
                              & (table.observed <= table.upper))).all()
    assert (table.logloss_model > 0).all() and (table.logloss_baseline > 0).all()
    # every study is held out in exactly one fold
    assert (table.groupby("study").fold.nunique() == 1).all()
    assert table.fold.nunique() == 3
    # the baseline of each fold is the class-average table of that fold's training rows only
    sub = rows[rows.study.isin(STUDIES)].set_index("row_id", drop=False)
    differs = 0
    for _, part in table.groupby("fold"):
        held = sub.loc[part.row_id]
        train = sub[~sub.study.isin(part.study)]
        expect, _ = class_average_probability(class_average_table(train), held)
        np.testing.assert_allclose(part.baseline_mean, expect, rtol=1e-12)
        # ... and the fold's MAP gave its held-out rows weight 0, every other row weight 1
        w = weights[int(part.fold.iloc[0])]
        assert w.size == len(sub) and set(np.unique(w)) == {0.0, 1.0}
        assert set(sub.row_id.iloc[np.flatnonzero(w == 0)]) == set(part.row_id)  # design order
        seen, _ = class_average_probability(class_average_table(sub), held)
        differs += int(not np.allclose(seen, expect))
    assert differs > 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["folds"] == 3 and summary["rows"] == 15 and summary["folds_reused"] == 0
    assert summary["method"].startswith("MAP + Laplace")
    assert 0 <= summary["coverage"] <= 1 and summary["mean_width"] > 0
    assert (out / "calibration.png").read_bytes()[:4] == b"\x89PNG"
    assert len(pd.read_csv(out / "arms.csv")) == summary["arms"] == 7
    # an interrupted run: one fold's checkpoint missing; --resume redoes only that fold
    before = (out / "validation.csv").read_bytes()
    checkpoints = sorted((tmp_path / "run" / "validation" / "checkpoints").glob("fold_*.json"))
    assert len(checkpoints) == 3
    checkpoints[1].unlink()
    again = CliRunner().invoke(app, args + ["--resume"])
    assert again.exit_code == 0, again.output
    assert (out / "validation.csv").read_bytes() == before
    assert json.loads((out / "summary.json").read_text())["folds_reused"] == 2


def test_a_non_finite_laplace_draw_is_left_out_and_counted(tmp_path, monkeypatch):
    """A draw whose solve is not finite (far in a Laplace tail) is dropped from that fold's
    predictions and counted in summary.json, instead of ending the run in numpy."""
    real = validation._mu_phi_batch

    def quick_map(ld, u0, key, **kwargs):
        return MapResult(u0, jnp.asarray(0.0), u0[None], jnp.zeros(1), jnp.zeros(1))

    def quick_laplace(ld, u):
        return Laplace(jnp.full(u.shape, 0.1), 0.01 * jnp.eye(u.size), 0)

    def one_nan(us, f):
        mu, phi, sd = real(us, f)
        return mu.at[0].set(jnp.nan), phi, sd

    monkeypatch.setattr(validation, "map_fit", quick_map)
    monkeypatch.setattr(validation, "laplace_scale", quick_laplace)
    monkeypatch.setattr(validation, "_mu_phi_batch", one_nan)
    args = ["validate", str(_config(tmp_path)), "--folds", "2", "--draws", "6", "--no-progress"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    out = tmp_path / "run" / "validation" / "results"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["fold_dropped_draws"] == [1, 1]
    table = pd.read_csv(out / "validation.csv")
    assert np.isfinite(table[["mean", "lower", "upper", "logloss_model"]].to_numpy()).all()


def test_no_predictor_beats_the_log_loss_floor():
    """The floor (entropy of the observed proportion) is below the sequence log-loss of any
    beta-binomial mixture, and reached by the binomial at the observed proportion."""
    rng = np.random.default_rng(3)
    n = rng.integers(1, 400, 50)
    y = rng.binomial(n, rng.uniform(0, 0.6, 50))
    floor = validation.logloss_floor(y / n)
    for _ in range(20):
        mu = rng.uniform(0.001, 0.999, (8, 50))
        phi = np.exp(rng.uniform(0, 8, (8, 1)))
        seq = validation._sequence_logpmf(y[None], n[None], mu, phi)
        mix = -(np.logaddexp.reduce(seq, axis=0) - np.log(8)) / n
        assert (mix >= floor - 1e-9).all()
    p = y / n
    binomial = -(y * np.log(np.clip(p, 1e-300, 1))
                 + (n - y) * np.log(np.clip(1 - p, 1e-300, 1))) / n
    assert np.allclose(binomial, floor, atol=1e-12)


def test_committed_validation_summary_matches_its_table():
    """The reference validation's summary (coverage, width, log-losses, floor) is what its
    per-row table gives."""
    folder = Path(__file__).parents[2] / "fits" / "reference" / "validation"
    table = pd.read_csv(folder / "validation.csv")
    summary = json.loads((folder / "summary.json").read_text())
    for key, value in validation._scores(table).items():
        assert summary[key] == pytest.approx(value, rel=1e-9), key
    assert summary["logloss_floor"] <= summary["logloss_model"]


@pytest.mark.slow
def test_validate_end_to_end_with_map_and_laplace(tmp_path):
    """Real MAP + Laplace per fold (compiles the fit's programs once: minutes on 2 cores)."""
    config = _config(tmp_path)
    args = ["validate", str(config), "--folds", "2", "--draws", "8", "--no-progress"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    out = tmp_path / "run" / "validation" / "results"
    table = pd.read_csv(out / "validation.csv")
    assert len(table) == 15 and (table.lower <= table["mean"]).all()
    assert (table["mean"] <= table.upper).all()
    summary = json.loads((out / "summary.json").read_text())
    assert np.isfinite(summary["logloss_model"]) and np.isfinite(summary["logloss_improvement"])
    before = (out / "validation.csv").read_bytes()
    again = CliRunner().invoke(app, args + ["--resume"])
    assert again.exit_code == 0, again.output
    assert (out / "validation.csv").read_bytes() == before
    assert json.loads((out / "summary.json").read_text())["folds_reused"] == 2


# --------------------------------------------------------------------------- errors


def test_validate_rejects_bad_input_with_a_clear_error(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[map]\nstart = 1\n")
    res = CliRunner().invoke(app, ["validate", str(bad), "--no-progress"])
    assert res.exit_code == 2 and "error:" in res.output and "map.starts" in res.output
    res = CliRunner().invoke(app, ["validate", str(tmp_path / "missing.toml")])
    assert res.exit_code == 2 and "error:" in res.output
    config = _config(tmp_path)
    for option, message in ((["--folds", "1"], "folds must be 0"),
                            (["--by", "trial"], "by must be one of"),
                            (["--draws", "1"], "draws must be")):
        res = CliRunner().invoke(app, ["validate", str(config), *option, "--no-progress"])
        assert res.exit_code == 2 and "error:" in res.output and message in res.output, option
