"""Reliability of the command-line options of ``predict``, ``simulate``, ``design``, ``export``.

Table-driven: each case is a command line with one bad option; it must exit with the documented
code (README "Exit codes": 2 usage error, 3 runtime failure), print ``error:`` naming the
option, and never a traceback. Every case fails in the option checks, before any simulation.
"""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from pdmodel.cli import app
from pdmodel.errors import EXIT_CLOSED_OUTPUT, EXIT_RUNTIME, EXIT_USAGE

runner = CliRunner()
NIVO = ["--regimen", "nivolumab 240 mg q2w"]

PREDICT = [
    (["--weeks", "0"], "--weeks"),
    (["--weeks", "-1"], "--weeks"),
    (["--weeks", "1e6"], "--weeks"),
    (["--weeks", "inf"], "--weeks"),
    (["--weeks", "nan"], "--weeks"),
    (["--weight", "0"], "--weight"),
    (["--weight", "-70"], "--weight"),
    (["--weight", "nan"], "--weight"),
    (["--weight", "9000"], "--weight"),
    (["--preexisting-ad", "1.5"], "--preexisting-ad"),
    (["--preexisting-ad", "-0.1"], "--preexisting-ad"),
    (["--antibody-positive", "2"], "--antibody-positive"),
    (["--antibody-positive", "nan"], "--antibody-positive"),
    (["--arm-size", "0"], "--arm-size"),
    (["--arm-size", "1000001"], "--arm-size"),
    (["--draws", "0"], "--draws"),
    (["--draws", "-5"], "--draws"),
    (["--tumour", "lung"], "--tumour"),
    (["--setting", "pooled"], "--setting"),
    (["--plot", "curves.pdf"], "--plot"),
    (["--plot", "/no/such/folder/curves.png"], "--plot"),
    (["--policy", "aggressive"], "--policy"),
    (["--format", "xml"], "--format"),
    (["--weeks", "ten"], "--weeks"),
]

SIMULATE = [
    (["--weeks", "0"], "--weeks"),
    (["--weeks", "inf"], "--weeks"),
    (["--weeks", "1e6"], "--weeks"),
    (["--weight", "-1"], "--weight"),
    (["--weight", "inf"], "--weight"),
    (["--step", "0"], "--step"),
    (["--step", "-1"], "--step"),
    (["--step", "nan"], "--step"),
    (["--patients", "0"], "--patients"),
    (["--seed", "-1"], "--seed"),
    (["--output", "/no/such/folder/out.csv"], "--output"),
    (["--output", "."], "--output"),
]

DESIGN = [
    (["--week", "0"], "--week"),
    (["--week", "inf"], "--week"),
    (["--weight", "0"], "--weight"),
    (["--preexisting-ad", "3"], "--preexisting-ad"),
    (["--draws", "0"], "--draws"),
    (["--patients", "0"], "--patients"),
    (["--starts", "0"], "--starts"),
    (["--steps", "0"], "--steps"),
    (["--tumour", "brain"], "--tumour"),
]


def _run(args):
    res = runner.invoke(app, args)
    text = res.output + (res.stderr if hasattr(res, "stderr") else "")
    return res, text


@pytest.mark.parametrize(("extra", "option"),
                         [pytest.param(a, o, id="predict" + " ".join(a)) for a, o in PREDICT])
def test_predict_option_is_checked(extra, option):
    res, text = _run(["predict", *NIVO, *extra])
    assert res.exit_code == EXIT_USAGE, text
    assert option in text and "Traceback" not in text


@pytest.mark.parametrize(("extra", "option"),
                         [pytest.param(a, o, id="simulate" + " ".join(a)) for a, o in SIMULATE])
def test_simulate_option_is_checked(extra, option):
    res, text = _run(["simulate", *NIVO, *extra])
    assert res.exit_code == EXIT_USAGE, text
    assert option in text and "Traceback" not in text


@pytest.mark.parametrize(("extra", "option"),
                         [pytest.param(a, o, id="design" + " ".join(a)) for a, o in DESIGN])
def test_design_option_is_checked(extra, option):
    res, text = _run(["design", "nivolumab {dose} q{interval}", "--vary", "dose=1-10 mg/kg",
                      "--vary", "interval=2-8 weeks", *extra])
    assert res.exit_code == EXIT_USAGE, text
    assert option in text and "Traceback" not in text


def test_every_bad_option_is_listed_at_once():
    res, text = _run(["predict", *NIVO, "--weeks", "0", "--weight", "-1", "--draws", "0"])
    assert res.exit_code == EXIT_USAGE
    assert all(o in text for o in ("--weeks", "--weight", "--draws"))


def test_implausible_weight_is_warned_about_not_refused(tmp_path):
    from pdmodel.cli._options import PredictOptions, checked

    with pytest.warns(UserWarning, match="--weight 300 kg"):
        opts = checked(PredictOptions, weight=300.0)
    assert opts.weight == 300.0


def test_predict_from_a_missing_fit_is_a_runtime_failure(tmp_path):
    res, text = _run(["predict", *NIVO, "--fit", str(tmp_path / "nothing")])
    assert res.exit_code == EXIT_RUNTIME, text
    assert "nothing" in text and "Traceback" not in text


def test_export_days_out_of_range(tmp_path):
    res, text = _run(["export", "sbml", *NIVO, "--prior", "--days", "0", "--output",
                      str(tmp_path / "m.xml")])
    assert res.exit_code == EXIT_USAGE, text
    assert "days" in text and "Traceback" not in text


def test_a_closed_output_pipe_stops_quietly_with_141(monkeypatch):
    import pdmodel.pk

    def closed(*a, **k):
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(pdmodel.pk, "potencies", closed)
    res, text = _run(["agents"])
    assert res.exit_code == EXIT_CLOSED_OUTPUT == 141, text
    assert "error" not in text


def test_unexpected_errors_are_one_line_with_exit_3(monkeypatch):
    import pdmodel.pk

    def boom(*a, **k):
        raise ZeroDivisionError("boom")

    monkeypatch.setattr(pdmodel.pk, "potencies", boom)
    monkeypatch.delenv("PDMODEL_DEBUG", raising=False)
    res, text = _run(["agents"])
    assert res.exit_code == EXIT_RUNTIME, text
    assert "unexpected ZeroDivisionError: boom" in text and "PDMODEL_DEBUG" in text
    assert "Traceback" not in text
