"""``pdmodel.export``: file contents (units, SBO terms, sources, provenance), values from a
fit, the ``pdmodel export`` command, and clear errors for bad input."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from typer.testing import CliRunner

import pdmodel as pdm
from pdmodel.cli import app
from pdmodel.export import UNITS, consistency_errors, export_model, fit_parameters

libsbml = pytest.importorskip("libsbml")

REGIMEN = "nivolumab 1 mg/kg + ipilimumab 3 mg/kg q3w x4, then nivolumab 480 mg q4w"


def test_every_parameter_has_units_an_sbo_term_and_sources_are_named():
    text = pdm.export_sbml(REGIMEN, days=120)
    assert consistency_errors(text) == []
    model = libsbml.readSBMLFromString(text).getModel()
    assert model.getTimeUnits() == "day"
    for p in model.getListOfParameters():
        assert p.getUnits() in UNITS, p.getId()
        assert p.isSetSBOTerm(), p.getId()
    cl = model.getParameter("nivolumab_CL")
    assert cl.getValue() == pdm.pk_model("nivolumab").typical["CL"]
    assert "Bajaj" in cl.getNotesString() and "pkp-0001" in cl.getNotesString()
    assert "Bajaj" in cl.getAnnotationString()
    assert "Sanghavi" in model.getParameter("ipilimumab_CL_LOGFACTOR").getNotesString()
    assert "Cell Death Discovery" in model.getParameter("nivolumab_EC50").getNotesString()
    assert "pkp-0284" in model.getParameter("k_a").getNotesString()
    assert "prior means" in model.getAnnotationString()
    # 4 + 4 infusions of the first phase, then nivolumab every 4 weeks from day 84 (to 120)
    starts = [e.getId() for e in model.getListOfEvents() if e.getId().endswith("_start")]
    assert len(starts) == 8 + 2


def test_infusion_events_follow_the_regimen_and_the_weight():
    doc = export_model("ipilimumab 3 mg/kg q3w x4", patient="typical", days=365)
    starts = [e for e in doc.events if e.id.endswith("_start")]
    assert [e.trigger for e in starts] == [f"time >= {d!r}" for d in (0.0, 21.0, 42.0, 63.0)]
    assert starts[0].assignments == (("ipilimumab_R", "3.0 / 0.0625 * WT"),)  # 90 min
    assert doc.quantity("WT").value == 80.0


def test_values_from_a_fit_are_the_posterior_mean_or_a_draw(tmp_path):
    spec = pdm.FitSpec.default()
    u0 = np.asarray(spec.prior_location())
    draws = u0 + 0.1 * np.random.default_rng(0).standard_normal((5, u0.size))
    fit = pdm.Fit(path=tmp_path, config=pdm.fit.FitConfig(), spec=spec, draws=draws,
                  method="laplace")
    mean, sources, what = fit_parameters(fit)
    expected = np.mean([float(spec.to_params(jnp.asarray(u)).model.g_pd1) for u in draws])
    assert float(mean.g_pd1) == pytest.approx(expected, rel=1e-12)
    assert "posterior mean" in what and str(tmp_path) in sources["g_pd1"]
    one, _, what = fit_parameters(fit, 3)
    assert float(one.g_pd1) == pytest.approx(float(spec.to_params(jnp.asarray(draws[3]))
                                                    .model.g_pd1))
    doc = export_model("nivolumab 240 mg q2w", fit=fit, draw=3, days=30)
    assert doc.quantity("g_pd1").value == pytest.approx(float(one.g_pd1))
    assert "posterior draw 3" in doc.quantity("g_pd1").source
    with pytest.raises(pdm.ParameterError, match=r"draw: 5 is out of range.*5 posterior draws"):
        fit_parameters(fit, 5)


def test_bad_input_raises_pdmodel_errors(tmp_path):
    with pytest.raises(pdm.UnknownAgentError, match="aspirin"):
        pdm.export_sbml("aspirin 100 mg q1d")
    with pytest.raises(pdm.FitLoadError, match="not a fit"):
        pdm.export_sbml("nivolumab 240 mg q2w", fit=tmp_path / "missing")
    with pytest.raises(ValueError, match="patient must be 'typical' or a patient number"):
        pdm.export_sbml("nivolumab 240 mg q2w", patient="someone")


def test_rescue_and_infliximab_constants_match_pdmodel():
    from pdmodel.export import _model_text
    from pdmodel.irae import _equations, _rescue

    assert _model_text.SMOOTH == _equations.SMOOTH
    ifx = _rescue.INFLIXIMAB
    assert _model_text.INFLIXIMAB_PK == {"CL": float(ifx.cl), "VC": float(ifx.vc),
                                         "Q": float(ifx.q), "VP": float(ifx.vp)}
    from pdmodel.irae.solvers import _full

    assert _model_text.INFLIXIMAB_INTERVAL == _full.INFLIXIMAB_INTERVAL


def test_cli_writes_sbml_and_antimony(tmp_path):
    out = tmp_path / "model.xml"
    res = CliRunner().invoke(app, ["export", "sbml", "--regimen", "pembrolizumab 200 mg q3w",
                                   "--prior", "--patient", "2", "--policy", "default",
                                   "--days", "60", "-o", str(out)])
    assert res.exit_code == 0, res.output
    text = out.read_text()
    assert consistency_errors(text) == [] and "steroid_start" in text
    assert "virtual patient 2" in text
    ant = tmp_path / "model.ant"
    res = CliRunner().invoke(app, ["export", "antimony", "--regimen", "pembrolizumab 200 mg q3w",
                                   "--prior", "--days", "60", "-o", str(ant)])
    assert res.exit_code == 0, res.output
    assert "pembrolizumab_Ac' = " in ant.read_text()


@pytest.mark.parametrize("args, message, code", [
    (["--regimen", "aspirin 100 mg q1d", "--prior"], "unknown agent 'aspirin'", 2),
    (["--regimen", "nivolumab 240 mg q2w", "--fit", "{tmp}/nofit"], "is not a fit", 3),
    (["--regimen", "nivolumab 240 mg q2w", "--prior", "--draw", "3"], "--draw", 2),
    (["--regimen", "nivolumab 240 mg q2w", "--prior", "--patient", "-1"], "patient number", 2),
])
def test_cli_bad_input_exits_with_its_code_and_an_error_line(tmp_path, args, message, code):
    """Usage errors exit 2, a folder that is not a fit 3 (README, "Exit codes")."""
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    res = CliRunner().invoke(app, ["export", "sbml", *args, "-o", str(tmp_path / "x.xml")])
    assert res.exit_code == code, res.output
    assert "error:" in res.stderr and message in res.stderr
    assert not (tmp_path / "x.xml").exists()


def test_cli_draw_out_of_range(tmp_path, monkeypatch):
    spec = pdm.FitSpec.default()
    fit = pdm.Fit(path=tmp_path, config=pdm.fit.FitConfig(), spec=spec,
                  draws=np.asarray(spec.prior_location())[None, :], method="laplace")
    monkeypatch.setattr(pdm.fit, "load_fit", lambda path: fit)
    monkeypatch.setattr("pdmodel.export._api.load_fit", lambda path: fit)
    res = CliRunner().invoke(app, ["export", "sbml", "--regimen", "nivolumab 240 mg q2w",
                                   "--fit", str(tmp_path), "--draw", "7",
                                   "-o", str(tmp_path / "x.xml")])
    assert res.exit_code == 2, res.output
    assert "error: draw: 7 is out of range" in res.stderr and "1 posterior draws" in res.stderr


def test_a_disabled_policy_is_the_natural_course():
    a = export_model("nivolumab 240 mg q2w", policy=pdm.ManagementPolicy.none(), days=30)
    b = export_model("nivolumab 240 mg q2w", days=30)
    assert [q.id for q in a.quantities] == [q.id for q in b.quantities]
