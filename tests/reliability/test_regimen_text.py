"""Reliability: regimen text with numbers that Python's ``float()`` would read leniently.

``2_40`` must not become 240, ``٣`` not 3, ``1e400`` not infinity, and a decimal comma must be
named as such. The API raises a :class:`~pdmodel.RegimenError` that quotes the token and says
what it is (dose, interval, ...); ``pdmodel simulate --regimen`` exits 2 with that message.
"""

import pytest
from typer.testing import CliRunner

from pdmodel.cli import app
from pdmodel.errors import InvalidDoseError, RegimenError, RegimenSyntaxError
from pdmodel.regimen import Regimen

Syntax, Range = RegimenSyntaxError, InvalidDoseError

# (regimen text, error class, what the message must quote, the role it must name)
CASES = [
    pytest.param("nivolumab 2_40 mg q2w", Syntax, "'2_40'", "dose", id="dose-underscore"),
    pytest.param("nivolumab 2,5 mg/kg q2w", Syntax, "'2.5'", "decimal comma",
                 id="dose-decimal-comma"),
    pytest.param("atezolizumab 1,200 mg q3w", Syntax, "'1200'", "decimal comma",
                 id="dose-thousands-separator"),
    pytest.param("nivolumab 2.4e2 mg q2w", Syntax, "'2.4e2'", "dose", id="dose-exponent"),
    pytest.param("nivolumab 1e400 mg q2w", Syntax, "'1e400'", "dose", id="dose-overflow"),
    pytest.param("nivolumab inf mg q2w", Range, "'inf'", "dose amount", id="dose-inf"),
    pytest.param("nivolumab NaN mg q2w", Range, "'NaN'", "dose amount", id="dose-nan"),
    pytest.param("nivolumab \u0663 mg/kg q2w", Syntax, "'\u0663'", "dose",
                 id="dose-arabic-indic-digit"),
    pytest.param("nivolumab \uff12\uff14\uff10 mg q2w", Syntax, "'\uff12\uff14\uff10'", "dose",
                 id="dose-fullwidth-digits"),
    pytest.param("nivolumab \u22123 mg q2w", Syntax, "'\u22123'", "dose",
                 id="dose-unicode-minus"),
    pytest.param("nivolumab 2.4.0 mg q2w", Syntax, "'2.4.0'", "dose", id="dose-two-dots"),
    pytest.param("nivolumab 240mg q2w", Syntax, "'240mg'", "dose", id="dose-unit-glued"),
    pytest.param("nivolumab 240 mg q2_0d", Syntax, "'q2_0d'", "interval",
                 id="interval-underscore"),
    pytest.param("nivolumab 240 mg q1e1d", Syntax, "'q1e1d'", "interval", id="interval-exponent"),
    pytest.param("nivolumab 240 mg q2,5w", Syntax, "'2.5'", "decimal comma",
                 id="interval-decimal-comma"),
    pytest.param("ipilimumab 3 mg/kg q3w x1_0", Syntax, "'x1_0'", "dose count",
                 id="count-underscore"),
    pytest.param("ipilimumab 3 mg/kg q3w x\u0664", Syntax, "'x\u0664'", "dose count",
                 id="count-arabic-indic-digit"),
    pytest.param("ipilimumab 3 mg/kg q3w xinf", Range, "'xinf'", "number of doses",
                 id="count-inf"),
    pytest.param("nivolumab 240 mg q2w over 3_0 min", Syntax, "'3_0'", "infusion time",
                 id="infusion-underscore"),
    pytest.param("nivolumab 240 mg q2w from day 1e1", Syntax, "'1e1'", "start day",
                 id="start-day-exponent"),
    pytest.param("nivolumab 240 mg q2w, stop at day 1_80", Syntax, "'1_80'", "stop day",
                 id="stop-day-underscore"),
    pytest.param("nivolumab 240 mg q2w, stop at day 90,5", Syntax, "'90.5'", "decimal comma",
                 id="stop-day-decimal-comma"),
]


@pytest.mark.parametrize(("text", "exc", "quoted", "role"), CASES)
def test_parse_rejects_lenient_numbers(text, exc, quoted, role):
    with pytest.raises(RegimenError) as info:
        Regimen.parse(text)
    assert type(info.value) is exc
    message = str(info.value)
    assert quoted in message and role in message, message


CLI_CASES = [
    pytest.param("nivolumab 2_40 mg q2w", "'2_40'", id="cli-dose-underscore"),
    pytest.param("nivolumab 2,5 mg/kg q2w", "decimal comma in '2,5'", id="cli-decimal-comma"),
    pytest.param("nivolumab 1e3 mg q2w", "'1e3'", id="cli-dose-exponent"),
    pytest.param("nivolumab \u0663 mg/kg q2w", "'\u0663'", id="cli-foreign-digit"),
    pytest.param("nivolumab inf mg q2w", "'inf'", id="cli-dose-inf"),
    pytest.param("nivolumab 240 mg q2_0w", "'q2_0w'", id="cli-interval-underscore"),
    pytest.param("ipilimumab 3 mg/kg q3w x1e1", "'x1e1'", id="cli-count-exponent"),
    pytest.param("nivolumab 240 mg q2w, stop at day 9_0", "'9_0'", id="cli-stop-underscore"),
]


@pytest.mark.parametrize(("text", "quoted"), CLI_CASES)
def test_simulate_rejects_lenient_numbers_with_exit_2(text, quoted):
    res = CliRunner().invoke(app, ["simulate", "--regimen", text, "--weeks", "1"])
    assert res.exit_code == 2, res.output
    assert res.stderr.startswith("error: ") and quoted in res.stderr, res.stderr
    assert res.stdout == ""
