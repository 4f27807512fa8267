"""`pdmodel fit` end to end with tiny settings, resume, and config errors."""

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import pdmodel as pdm
from pdmodel.cli import app
from pdmodel.fit._report import verdict

TINY = [
    "--set", "map.starts=1", "--set", "map.adam_steps=2", "--set", "map.lbfgs_steps=1",
    "--set", "model.patients=4", "--set", "output.weeks=2", "--set", "nuts.draws=6",
    "--set", "nuts.warmup=6", "--set", "nuts.chains=2", "--set", "nuts.design_points=8",
    "--set", "nuts.method=emulator",
    "--set", 'output.curves_regimens=["nivolumab 240 mg q2w"]',
    "--set", 'model.fixed=["susceptibility", "k_rep", "log_gap2", "log_gap3", "background", '
             '"agent_effect", "w_ab", "w_pd", "w_ctla4"]',
    "--no-progress",
]


def test_fit_smoke_run_writes_results_and_resumes(tmp_path):
    out = tmp_path / "run"
    args = ["fit", "fits/default.toml", *TINY, "--set", f"output.folder={out}"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    results = out / "results"
    for name in ("parameters.csv", "curves.csv", "ppc.csv", "diagnostics.json",
                 "diagnostics.csv", "posterior.nc", "plots/curves.png", "plots/ppc.png",
                 "report.html"):
        assert (results / name).is_file(), name
    diag = json.loads((results / "diagnostics.json").read_text())
    assert diag["rows"] > 100 and 0 <= diag["ppc_coverage_90"] <= 1
    assert diag["chains"] == 2 and diag["draws_per_chain"] == 6 and diag["divergences"] >= 0
    assert 0 <= diag["psis_khat"] or diag["psis_khat"] != diag["psis_khat"]  # number (or nan)
    # the posterior is an arviz DataTree with the groups arviz needs
    import arviz_stats as azs
    import xarray as xr

    tree = xr.open_datatree(results / "posterior.nc", engine="h5netcdf")
    for group in ("posterior", "log_likelihood", "posterior_predictive", "observed_data",
                  "sample_stats"):
        assert group in tree.children, group
    assert tree["log_likelihood"]["y"].shape == (2, 6, diag["rows"])
    assert "g_pd1" in azs.summary(tree).index
    curves = pd.read_csv(results / "curves.csv")
    assert set(curves.grade) == {"any", "2+", "3+"} and curves["upper"].max() <= 1
    assert (curves.ci_lower <= curves["mean"]).all() and (curves["mean"] <= curves.ci_upper).all()
    assert (out / "config.toml").is_file() and (out / "versions.json").is_file()
    # same config again without --resume is refused (it would overwrite the run) ...
    again = CliRunner().invoke(app, args + ["--set", "seed=1"])
    assert again.exit_code == 2 and "--resume" in again.output
    # ... and --resume reuses the checkpoints
    resumed = CliRunner().invoke(app, args + ["--resume"])
    assert resumed.exit_code == 0, resumed.output
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


def test_load_fit_errors_are_clear(tmp_path):
    with pytest.raises(pdm.FitLoadError, match="config.toml missing"):
        pdm.load_fit(tmp_path)
    res = CliRunner().invoke(app, ["predict", "--regimen", "nivolumab 240 mg q2w", "--fit",
                                   str(tmp_path)])
    assert res.exit_code == 2 and "not a fit" in res.output


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
    # published onset medians lie within the ranges their sources print (label pools)
    onset = pd.read_csv("fits/reference/results/onset.csv")
    printed = onset[onset.range_source == "reported min-max"]
    assert len(printed) >= 8 and printed.within.all(), printed
    tree = fit.datatree()
    assert tree["posterior"].sizes["chain"] == diag["chains"]
    assert tree["log_likelihood"]["y"].sizes["row"] == diag["rows"]
    ds = fit.incidence("ipilimumab 3 mg/kg q3w x4", days=7, grade="3+", patients=4)
    assert ds.attrs["fit"] == "fits/reference" and 0 <= float(ds["mean"][-1]) < 1
