"""`pdmodel fit` end to end with tiny settings, resume, and config errors."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import pdmodel as pdm
from pdmodel.cli import app
from pdmodel.errors import EXIT_RUNTIME
from pdmodel.fit._report import verdict


@pytest.mark.xdist_group("tiny_fit")  # on the worker that makes the tiny fit (Makefile)
def test_fit_smoke_run_writes_results_and_resumes(tiny_fit, tmp_path):
    from tests.conftest import TINY_FIT

    results = tiny_fit / "results"
    for name in ("parameters.csv", "curves.csv", "ppc.csv", "diagnostics.json",
                 "diagnostics.csv", "posterior.nc", "plots/curves.png", "plots/ppc.png",
                 "report.html"):
        assert (results / name).is_file(), name
    diag = json.loads((results / "diagnostics.json").read_text())
    assert diag["rows"] > 100 and 0 <= diag["ppc_coverage_90"] <= 1
    assert diag["chains"] == 2 and diag["draws_per_chain"] == 15 and diag["divergences"] >= 0
    assert 0 <= diag["psis_khat"] or diag["psis_khat"] != diag["psis_khat"]  # number (or nan)
    # the posterior is an arviz DataTree with the groups arviz needs
    import arviz_stats as azs
    import xarray as xr

    tree = xr.open_datatree(results / "posterior.nc", engine="h5netcdf")
    for group in ("posterior", "log_likelihood", "posterior_predictive", "observed_data",
                  "sample_stats"):
        assert group in tree.children, group
    assert tree["log_likelihood"]["y"].shape == (2, 15, diag["rows"])
    assert "g_pd1" in azs.summary(tree).index
    curves = pd.read_csv(results / "curves.csv")
    assert set(curves.grade) == {"any", "2+", "3+"} and curves["upper"].max() <= 1
    assert (curves.ci_lower <= curves["mean"]).all() and (curves["mean"] <= curves.ci_upper).all()
    # two forms: the natural course and under the default management policy
    assert set(curves.policy) == {"natural", "default"}
    last = curves[(curves.day == curves.day.max()) & (curves.organ == "any")]
    by = last.set_index(["regimen", "grade", "policy"])["mean"]
    for reg in last.regimen.unique():  # steroids from grade 2 never add grade >= 3 events
        assert by[reg, "3+", "default"] <= by[reg, "3+", "natural"] + 1e-6
        # the fitted managed course: grades up to 2 are reached before any steroid
        assert abs(by[reg, "any", "default"] - by[reg, "any", "natural"]) < 0.005
    assert (tiny_fit / "config.toml").is_file() and (tiny_fit / "versions.json").is_file()
    # a copy of the run: the same config again without --resume is refused (it would
    # overwrite the run) ...
    out = tmp_path / "run"
    shutil.copytree(tiny_fit, out, symlinks=True)
    args = ["fit", "fits/default.toml", "--no-progress", "--set", f"output.folder={out}"]
    for item in TINY_FIT:
        args += ["--set", item]
    again = CliRunner().invoke(app, args + ["--set", "seed=1"])
    assert again.exit_code == EXIT_RUNTIME and "--resume" in again.output
    # ... and a run killed after its last checkpointed stage, while writing results (the
    # earlier kill points are the slow test below), continues with --resume to the same
    # results as the uninterrupted run
    _kill_after(out, STAGES[-1])
    resumed = CliRunner().invoke(app, args + ["--resume"])
    assert resumed.exit_code == 0, resumed.output
    _assert_same_results(tiny_fit, out)
    # the run folder is a fit that predict and load_fit read
    pred = CliRunner().invoke(app, ["predict", "--regimen", "ipilimumab 3 mg/kg q3w x4",
                                    "--fit", str(out), "--weeks", "3", "--grade", "3+",
                                    "--format", "json"])
    assert pred.exit_code == 0, pred.output
    doc = json.loads(pred.stdout)
    assert set(doc) == {"regimen", "organ", "grade", "days", "mean", "lower", "upper",
                        "interval", "fit", "ci_lower", "ci_upper", "arm_size", "draws",
                        "policy", "endpoint"}
    assert doc["interval"] == 0.9 and len(doc["days"]) == 21 == len(doc["mean"])
    assert all(lo <= hi for lo, hi in zip(doc["lower"], doc["upper"], strict=True))
    fit = pdm.load_fit(out)
    ds = fit.incidence("nivolumab 240 mg q2w", days=14, organ="skin", grade="any",
                       covariates={"preexisting_ad": 1.0})
    assert ds["mean"].dims == ("day",) and float(ds["mean"][-1]) >= float(ds["mean"][0])


STAGES = ("map", "laplace", "emulator", "nuts", "exact", "check")
"""Checkpointed stages of ``pdmodel fit``, in order (pdmodel/fit/_pipeline.py)."""
SAME_FILES = ("parameters.csv", "ppc.csv", "curves.csv", "onset.csv", "design.csv",
              "diagnostics.csv")


def _kill_after(run, stage):
    """``run`` as a fit killed right after ``stage``: the later stages' checkpoints removed and
    the results of the uninterrupted run left in place (a resume must replace them)."""
    later = STAGES[STAGES.index(stage) + 1:]
    gone = [p for p in (run / "checkpoints").iterdir() if later and p.name.startswith(later)]
    assert gone or not later, sorted(p.name for p in (run / "checkpoints").iterdir())
    for p in gone:
        p.unlink()


def _assert_same_results(a, b):
    """The results of runs ``a`` and ``b`` agree byte for byte (tables) and array for array
    (posterior draws, log-likelihood, predictive)."""
    import xarray as xr

    for name in SAME_FILES:
        assert (a / "results" / name).read_bytes() == (b / "results" / name).read_bytes(), name
    ta = xr.open_datatree(a / "results" / "posterior.nc", engine="h5netcdf")
    tb = xr.open_datatree(b / "results" / "posterior.nc", engine="h5netcdf")
    for group in ("posterior", "log_likelihood", "posterior_predictive"):  # attrs: timestamps
        xr.testing.assert_equal(ta[group].to_dataset(), tb[group].to_dataset())


@pytest.mark.slow
@pytest.mark.xdist_group("tiny_fit")
@pytest.mark.parametrize("stage", STAGES[:-1])
def test_fit_killed_after_any_stage_resumes_to_the_same_results(tiny_fit, tmp_path, stage):
    """Kill-and-resume at every stage boundary (the default run checks one, in the smoke
    test): the resumed run publishes the same results as the uninterrupted one."""
    from tests.conftest import TINY_FIT

    out = tmp_path / "run"
    shutil.copytree(tiny_fit, out, symlinks=True)
    _kill_after(out, stage)
    args = ["fit", "fits/default.toml", "--no-progress", "--resume", "--set",
            f"output.folder={out}"]
    for item in TINY_FIT:
        args += ["--set", item]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    _assert_same_results(tiny_fit, out)


def test_load_fit_errors_are_clear(tmp_path):
    with pytest.raises(pdm.FitLoadError, match="config.toml missing"):
        pdm.load_fit(tmp_path)
    res = CliRunner().invoke(app, ["predict", "--regimen", "nivolumab 240 mg q2w", "--fit",
                                   str(tmp_path)])
    assert res.exit_code == EXIT_RUNTIME and "not a fit" in res.output


def test_fit_rejects_a_broken_config_naming_the_key(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[nuts]\ndraw = 10\n")
    res = CliRunner().invoke(app, ["fit", str(bad)])
    assert res.exit_code == 2
    assert "nuts.draw" in res.output and "nuts.draws" in res.output


def test_committed_reference_fit_loads_and_is_calibrated():
    fit = pdm.load_fit("fits/reference")
    assert fit.draws.shape[1] == fit.spec.size and fit.method in ("nuts", "laplace")
    diag = json.loads(open("fits/reference/results/diagnostics.json").read())
    table = pd.read_csv("fits/reference/results/diagnostics.csv")
    assert len(table) == fit.spec.size
    if fit.method == "nuts":
        # NUTS: converged and mixed, few divergences
        assert diag["chains"] >= 4 and diag["draws_per_chain"] >= 1000
        assert diag["max_r_hat"] < 1.01 and diag["min_ess_bulk"] > 400
        assert diag["divergences"] <= 5
        assert (table.r_hat < 1.01).all()
        assert diag["psis_khat"] < 0.7  # the emulated posterior against the exact one
    else:
        # Laplace draws at a proper mode (every direction concave), checked against the exact
        # posterior by PSIS; the report's verdict must say when that check fails
        assert diag["stored_draws"] >= 1000 and diag["laplace_nonconcave_directions"] == 0
        assert diag["psis_check"].startswith("Laplace") and np.isfinite(diag["psis_khat"])
        level, reasons = verdict(diag)
        assert (level == "unreliable") == (diag["psis_khat"] >= 0.7)
        assert any("Laplace" in r for r in reasons)
    assert diag["ppc_coverage_90"] >= 0.9  # training arms inside their 90% predictive intervals
    ppc = pd.read_csv("fits/reference/results/ppc.csv")
    assert len(ppc) == diag["rows"] and ppc.covered.mean() == diag["ppc_coverage_90"]
    # model median onsets lie within the ranges their sources print (label pools); every
    # published median is reported with the model's median, ratio and ×/÷1.5 verdict
    onset = pd.read_csv("fits/reference/results/onset.csv")
    printed = onset[onset.within_range.notna()]
    assert len(printed) >= 8 and printed.within_range.astype(bool).all(), printed
    assert len(onset) >= 20 and onset.ratio.notna().all()
    assert diag["onset_within_1_5"] == f"{int(onset.within_1_5.sum())}/{len(onset)}"
    # thyroiditis within weeks of the first PD-1 dose (label pools: 6.1 and 6.5 weeks; 11-13
    # weeks, x1.7-2.1, without the thyroid's PD-1/PD-L1 route, docs/model.md §5.7; 8.7 and 9.4
    # in the reference of 2026-12-06 with steroid-refractory colitis, one just outside x/1.5);
    # hypothyroidism after it
    phase = onset[onset.grade == "any"].groupby("thyroid_phase")
    assert (phase.get_group("thyroiditis").ratio.between(1 / 1.6, 1.6)).all()
    assert (phase.model_median_weeks.max()["thyroiditis"]
            < phase.model_median_weeks.min()["hypothyroidism"])
    # the fitted subgroup incidences (antibody status, autoimmune disease) next to the model
    sub = pd.read_csv("fits/reference/results/subgroups.csv")
    assert len(sub) == diag["subgroup_rows_fitted"] == 4
    assert diag["subgroups_in_predictive"] == f"{int(sub.in_predictive.sum())}/{len(sub)}"
    by = sub.set_index("subgroup")
    assert by.loc["antibody_positive", "model_mean"] > 3 * by.loc["antibody_negative",
                                                                   "model_mean"]
    # the fitted management outcomes (steroids, resolution, infliximab) next to the model;
    # the training arms' grade >= 3 rows under the default management policy
    from pdmodel.fit import load_config
    assert load_config("fits/reference/config.toml").model.arms == "managed"
    ref = pd.read_csv("fits/reference/results/curves.csv")
    end = ref[(ref.day == ref.day.max()) & (ref.organ == "any")]
    by = end.set_index(["regimen", "grade", "policy"])["mean"]
    combination = "nivolumab 1 mg/kg + ipilimumab 3 mg/kg q3w x4, then nivolumab 480 mg q4w"
    for reg in end.regimen.unique():  # `default` is the course the arms are fitted under
        assert abs(by[reg, "any", "default"] - by[reg, "any", "natural"]) < 0.005
        assert by[reg, "3+", "default"] < by[reg, "3+", "natural"]
    assert by[combination, "3+", "default"] < 0.9 * by[combination, "3+", "natural"]
    man = pd.read_csv("fits/reference/results/management.csv")
    assert len(man) == diag["management_rows_fitted"] == 9
    assert diag["management_in_predictive"] == f"{int(man.in_predictive.sum())}/{len(man)}"
    assert ((man.model_mean > 0) & (man.model_mean < 1)).all()
    tree = fit.datatree()
    assert tree["posterior"].sizes["chain"] == diag["chains"]
    assert tree["log_likelihood"]["y"].sizes["row"] == diag["rows"]
    ds = fit.incidence("ipilimumab 3 mg/kg q3w x4", days=7, grade="3+", patients=4)
    assert ds.attrs["fit"] == "fits/reference" and 0 <= float(ds["mean"][-1]) < 1
