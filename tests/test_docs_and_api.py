"""The public surface and the documentation stay in step with the code."""

import json
from pathlib import Path

from typer.testing import CliRunner

import pdmodel as pdm
from pdmodel.cli import app

ROOT = Path(__file__).resolve().parents[1]


def test_every_public_name_imports():
    for name in pdm.__all__:
        assert getattr(pdm, name) is not None, name


def test_every_model_parameter_is_documented_with_a_source():
    text = (ROOT / "docs" / "model.md").read_text()
    for name in pdm.IraeModel.__dataclass_fields__:
        assert f"`{name}`" in text, f"{name} missing from docs/model.md"
        info = pdm.PARAMETER_INFO[name]
        assert info.unit and info.description and info.source, name


def test_every_pk_value_has_a_source():
    for agent in pdm.AGENTS:
        for model in pdm.available_models()[agent]:
            for row in pdm.pk_model(agent, model).rows:
                assert row["source"].strip(), (agent, model, row["parameter"])
    for p in pdm.potencies().values():
        assert p.source.strip() and p.kind.strip()


def test_cli_incidence_curves_json():
    res = CliRunner().invoke(app, ["simulate", "--regimen", "ipilimumab 3 mg/kg q3w x4",
                                   "--weight", "70", "--weeks", "6", "--organ", "gi",
                                   "--organ", "any", "--grade", "3+", "--patients", "50",
                                   "--format", "json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert set(doc["incidence"]) == {"gi", "any"}
    curve = doc["incidence"]["any"]["3+"]
    assert len(curve) == len(doc["day"]) and curve[0] == 0.0
    assert all(b >= a for a, b in zip(curve, curve[1:], strict=False)) and curve[-1] < 1


def test_cli_has_every_documented_command():
    out = CliRunner().invoke(app, ["--help"]).output
    for command in ("agents", "simulate", "fit", "data"):
        assert command in out, command
    readme = (ROOT / "README.md").read_text()
    for command in ("pdmodel agents", "pdmodel simulate", "pdmodel fit", "pdmodel data check"):
        assert command in readme, command
