"""simulate_pk's dataset contract, its input validation, and the command line."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

import pdmodel as pdm
from pdmodel.cli import app

runner = CliRunner()


def test_dataset_contract():
    ds = pdm.simulate_pk("nivolumab 240 mg q2w", days=28, weight_kg=70)
    assert set(ds.data_vars) == {"concentration", "occupancy"}
    assert ds.concentration.dims == ("day", "agent")
    assert ds.occupancy.dims == ("day", "target")
    assert list(ds.target.values) == ["PD-1", "PD-L1", "CTLA-4"]
    assert ds.day.values[0] == 0 and ds.day.values[-1] == 28 and ds.sizes["day"] == 29
    assert ds.concentration.attrs["units"] == "ug/mL"
    occ = ds.occupancy.values
    assert np.all((occ >= 0) & (occ < 1))
    assert "Bajaj" in ds.attrs["pk_models"]


def test_combination_and_phases():
    text = "nivolumab 1 mg/kg + ipilimumab 3 mg/kg q3w x4, then nivolumab 480 mg q4w"
    ds = pdm.simulate_pk(text, days=200, weight_kg=80)
    assert list(ds.agent.values) == ["nivolumab", "ipilimumab"]
    ipi = ds.concentration.sel(agent="ipilimumab")
    assert float(ipi.sel(day=150)) < 0.2 * float(ipi.sel(day=64))  # no ipilimumab after x4
    niv = ds.concentration.sel(agent="nivolumab")
    assert float(niv.sel(day=120)) > float(niv.sel(day=60))  # 480 mg flat > 80 mg


def test_early_stop_washes_out():
    on = pdm.simulate_pk("pembrolizumab 200 mg q3w", days=300)
    off = pdm.simulate_pk("pembrolizumab 200 mg q3w, stop at day 100", days=300)
    c_on, c_off = on.concentration.isel(agent=0), off.concentration.isel(agent=0)
    np.testing.assert_allclose(c_on.sel(day=slice(0, 100)), c_off.sel(day=slice(0, 100)))
    assert float(c_off.sel(day=300)) < 0.05 * float(c_on.sel(day=300))


def test_alternative_model_and_methods_agree():
    ana = pdm.simulate_pk("pembrolizumab 200 mg q3w", days=60, method="analytic")
    ode = pdm.simulate_pk("pembrolizumab 200 mg q3w", days=60, method="ode")
    np.testing.assert_allclose(ode.concentration[1:], ana.concentration[1:], rtol=1e-6)
    es = pdm.simulate_pk("pembrolizumab 200 mg q3w", days=60,
                         models={"pembrolizumab": "elassaiss-schaap2017"})
    assert es.attrs["method"] == "ode" and "Elassaiss" in es.attrs["pk_models"]


@pytest.mark.parametrize("kwargs,exc,match", [
    ({"regimen": "nivolumab 3 mg/kg q2w"}, pdm.MissingWeightError, "weight_kg"),
    ({"regimen": "nivolumb 3 mg q2w"}, pdm.UnknownAgentError, "nivolumb"),
    ({"regimen": "nivolumab 240 mg q2w", "days": -5}, ValueError, "days"),
    ({"regimen": "nivolumab 240 mg q2w", "weight_kg": float("nan")}, ValueError, "weight_kg"),
    ({"regimen": "nivolumab 240 mg q2w", "step": 0}, ValueError, "step"),
    ({"regimen": "nivolumab 240 mg q2w", "method": "analytic"}, ValueError, "time-varying"),
    ({"regimen": "nivolumab 240 mg q2w", "method": "euler"}, ValueError, "euler"),
    ({"regimen": "nivolumab 240 mg q2w", "models": {"nivolumab": "x"}}, KeyError, "bajaj2017"),
])
def test_bad_input_is_named(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        pdm.simulate_pk(**kwargs)


def test_cli_simulate_json_shape():
    res = runner.invoke(app, ["simulate", "--regimen", "nivolumab 1 mg/kg + ipilimumab 3 mg/kg "
                              "q3w x4", "--weeks", "4", "--weight", "75", "--format", "json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert set(doc) == {"day", "concentration", "occupancy"}
    assert set(doc["concentration"]) == {"nivolumab", "ipilimumab"}
    assert set(doc["occupancy"]) == {"PD-1", "PD-L1", "CTLA-4"}
    assert len(doc["day"]) == 29 == len(doc["occupancy"]["PD-1"])


def test_cli_simulate_csv(tmp_path):
    out = tmp_path / "pk.csv"
    res = runner.invoke(app, ["simulate", "--regimen", "atezolizumab 1200 mg q3w", "--weeks",
                              "3", "--output", str(out)])
    assert res.exit_code == 0, res.output
    lines = out.read_text().splitlines()
    assert lines[0] == ("day,concentration_atezolizumab,occupancy_PD-1,occupancy_PD-L1,"
                        "occupancy_CTLA-4")
    assert len(lines) == 1 + 22  # header + days 0..21


def test_cli_reports_bad_regimen_without_traceback():
    res = runner.invoke(app, ["simulate", "--regimen", "nivolumab 0 mg q2w"])
    assert res.exit_code == 2
    assert "error:" in res.output and "'0'" in res.output and "Traceback" not in res.output


def test_cli_agents_lists_all_with_sources():
    res = runner.invoke(app, ["agents"])
    assert res.exit_code == 0
    rows = res.stdout.strip().splitlines()[1:]
    assert len(rows) == 8
    for row in rows:
        agent, target, klass, _, _, source, _, potency_source = row.split("\t")
        assert klass == f"anti-{target}" and source and potency_source
