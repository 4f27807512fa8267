"""Regimen design (pdmodel.dosing_design): the search against brute force, and bad specs."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

import pdmodel as pdm
from pdmodel.cli import app
from pdmodel.dosing_design import DesignProblem, Dose, Interval, Risk, parse_constraint

NIVO = "nivolumab {dose} q{interval}w"
SMALL = dict(draws=4, patients=4, seed=0)
RISK = Risk(organ="any", grade="3+", week=26)


@pytest.fixture(scope="module")
def nivolumab_problem():
    # a trough level that binds: long intervals need more than the lowest dose
    return DesignProblem.build(
        NIVO, {"dose": "1-10 mg/kg step 0.5", "interval": "2-8 weeks"},
        constraints=["trough PD-1 >= 0.97 weeks 8-26"], risk=RISK, **SMALL)


def test_gradient_search_matches_brute_force_on_a_coarse_grid(nivolumab_problem):
    """The search's optimum (doses on a 0.5 mg/kg grid) is no worse than the best feasible
    point of the exhaustive 1-10 mg/kg × 2-8 week grid, to 1% or 0.002 absolute, and meets
    the constraint."""
    p = nivolumab_problem
    found = p.solve(starts=2, steps=15, relaxed_draws=4, relaxed_patients=4)
    best, n = p.brute_force({"dose": np.arange(1.0, 11.0)})
    assert n > 5  # the constraint excludes part of the grid, not all of it
    tol = max(0.01 * best.risk, 0.002)
    assert found.risk <= best.risk + tol, (found, best)
    (name, value), = found.metrics.items()
    assert "trough PD-1" in name and value >= 0.97
    assert pdm.Regimen.parse(found.regimen).agents == ("nivolumab",)
    # the exact search simulates far fewer regimens than the grid has feasible points
    assert found.evaluations < n + 20


def test_variables_and_constraints_parse():
    assert pdm.dosing_design.parse_variable("d", "240-960 mg vial 40") == Dose(
        240, 960, "mg", vial_mg=40)
    assert pdm.dosing_design.parse_variable("i", "3,6,12 weeks") == Interval(values=(3, 6, 12))
    c = parse_constraint("trough pd-1 >= 90% weeks 12-52")
    assert (c.target, c.at_least, c.start, c.end) == ("PD-1", 0.9, 12, 52)
    assert parse_constraint("infusions <= 13 per year").per_year == 13


@pytest.mark.parametrize("variables, constraints, field, match", [
    ({"dose": "1-10 mg/kg", "interval": "2-8 weeks"}, ["trough PD-2 >= 0.9"],
     "constraints[0]", "unknown target"),
    ({"dose": "10-1 mg/kg", "interval": "2-8 weeks"}, [], "dose", "empty or invalid dose range"),
    ({"dose": "1-10 mg/kg", "interval": "8-2 weeks"}, [], "interval", "empty"),
    ({"dose": "1-10 mg/kg vial 40", "interval": "2-8 weeks"}, [], "dose",
     "contradictory units"),
    ({"dose": "1-10 mg/kg", "interval": "2-8 weeks"}, ["exposure nivolumab >= 20 mg"],
     "constraints[0]", "contradictory units"),
    ({"dose": "1-10 mg/kg", "interval": "2-8 weeks"}, ["trough CTLA-4 >= 0.5"],
     "constraints[0]", "no agent of the regimen"),
    ({"dose": "1-10 mg/kg"}, [], "interval", "has no variable"),
    ({"dose": "1-10 mg/kg", "interval": "2-8 weeks", "extra": "1-2 doses"}, [], "extra",
     "not used"),
])
def test_bad_specifications_name_the_field(variables, constraints, field, match):
    with pytest.raises(pdm.DesignError, match=match) as err:
        DesignProblem.build(NIVO, variables, constraints=constraints, risk=RISK, **SMALL)
    assert err.value.field == field


def test_template_unit_contradicting_the_range():
    with pytest.raises(pdm.DesignError, match="contradictory units") as err:
        DesignProblem.build("nivolumab {dose} mg q2w", {"dose": "1-10 mg/kg"}, **SMALL)
    assert err.value.field == "dose"


def test_bad_risk_fields():
    with pytest.raises(pdm.DesignError) as err:
        DesignProblem.build(NIVO, {"dose": "1-3 mg/kg", "interval": "2-3 weeks"},
                            risk=Risk(organ="kidney"), **SMALL)
    assert err.value.field == "risk.organ"


def test_infeasible_constraints_are_reported_with_the_best_level():
    p = DesignProblem.build(NIVO, {"dose": "1-2 mg/kg step 1", "interval": "6-8 weeks"},
                            constraints=["trough PD-1 >= 0.999 weeks 8-26"], risk=RISK, **SMALL)
    with pytest.raises(pdm.DesignInfeasibleError, match=r"constraints\[0\].*best in the") as e:
        p.solve()
    assert e.value.field == "constraints"


def test_cli_bad_spec_exits_2_with_an_error_line():
    res = CliRunner().invoke(app, ["design", NIVO, "--vary", "dose=1-10 mg/kg", "--vary",
                                   "interval=2-8 weeks", "--require", "trough PD-9 >= 0.9"])
    assert res.exit_code == 2
    assert "error: constraints[0]: unknown target" in res.output


def test_cli_help_documents_the_vocabulary():
    out = CliRunner().invoke(app, ["design", "--help"], terminal_width=200).output
    for word in ("trough PD-1", "exposure", "infusions", "mg/kg", "weeks", "doses", "--sweep"):
        assert word in out, word


@pytest.mark.slow
def test_trade_off_writes_csv_json_png(tmp_path):
    front = pdm.trade_off("nivolumab {dose} q{interval}w",
                          {"dose": "1-3 mg/kg step 1", "interval": "2-3 weeks"},
                          "trough PD-1 >= 0.5 weeks 4-8", [0.5, 0.999], risk=Risk(week=8),
                          references=["nivolumab 3 mg/kg q2w"], draws=3, patients=2,
                          starts=1, steps=2)
    paths = front.write(tmp_path)
    assert [p.suffix for p in paths] == [".csv", ".json", ".png"]
    doc = json.loads(paths[1].read_text())
    kinds = [(r["kind"], r["feasible"]) for r in doc["rows"]]
    assert kinds == [("optimum", True), ("optimum", False), ("reference", True)]
    ok = doc["rows"][0]
    assert ok["risk_lower"] <= ok["risk_mean"] <= ok["risk_upper"]
    assert paths[2].stat().st_size > 1000
