"""Reliability of the fit configuration: TOML files, ``--set`` overrides, ``pdmodel fit``.

Table-driven: each case is a bad configuration and the dotted key its ``ConfigError`` must name
(every line starts with the source: the file, or "command-line override"). The command-line
cases exit 2 with ``error:`` naming the key before any data is loaded or anything is fitted.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pdmodel.cli import app
from pdmodel.errors import EXIT_USAGE, ConfigError, exit_code
from pdmodel.fit import FitConfig, apply_overrides, load_config
from pdmodel.fit._config import ConfigWarning

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_TOML = ROOT / "fits" / "default.toml"

# (TOML text, dotted key the message must name, further words it must contain)
FILE_CASES = [
    # TOML syntax: the line and the key (or section) it is in
    pytest.param("[nuts]\ndraws = = 5\n", "nuts.draws", ["invalid TOML", "line 2"],
                 id="toml-double-equals"),
    pytest.param("[map]\nstarts = 2\nadam_lr = 0.05.1\n", "map.adam_lr", ["line 3"],
                 id="toml-bad-number"),
    pytest.param('[data]\nuse = "all\n', "data.use", ["invalid TOML", "line 2"],
                 id="toml-unterminated-string"),
    pytest.param("seed = 1\nseed = 2\n", "seed", ["invalid TOML", "line 2"],
                 id="toml-duplicate-key"),
    pytest.param("[nuts\ndraws = 5\n", "nuts", ["invalid TOML", "line 1"],
                 id="toml-unclosed-table"),
    # unknown tables and keys, with a did-you-mean
    pytest.param("[nuts]\ndraw = 10\n", "nuts.draw", ["did you mean 'nuts.draws'"],
                 id="unknown-key"),
    pytest.param("[nuts]\nstarts = 2\n", "nuts.starts", ["did you mean 'map.starts'"],
                 id="key-in-wrong-table"),
    pytest.param("[nut]\ndraws = 10\n", "[nut]", ["did you mean [nuts]"], id="unknown-table"),
    pytest.param("sed = 3\n", "sed", ["did you mean 'seed'"], id="unknown-top-level-key"),
    pytest.param('[model]\ntumor = "nsclc"\n', "model.tumor", ["did you mean 'model.tumour'"],
                 id="unknown-key-spelling"),
    pytest.param('[model.priors]\ng_pd = {dist = "normal", mean = 0, sd = 1}\n',
                 "model.priors", ["'g_pd'", "did you mean 'g_pd1'"], id="unknown-prior-field"),
    pytest.param('[model.pk_models]\nnivo = "bajaj2017"\n', "model.pk_models",
                 ["'nivo'", "did you mean 'nivolumab'"], id="unknown-pk-agent"),
    pytest.param('[model]\nfixed = ["k_x"]\n', "model.fixed[0]", ["'k_x'", "IraeModel field"],
                 id="unknown-fixed-field"),
    # wrong types: never coerced
    pytest.param('[nuts]\ndraws = "10"\n', "nuts.draws", ["an integer >= 1", "'10'"],
                 id="string-for-int"),
    pytest.param("[map]\nstarts = 2.0\n", "map.starts", ["an integer"], id="float-for-int"),
    pytest.param("seed = true\n", "seed", ["an integer", "True"], id="bool-for-int"),
    pytest.param('[map]\nadam_lr = "0.1"\n', "map.adam_lr", ["a number > 0"],
                 id="string-for-float"),
    pytest.param('[data]\nexclude_rows = "inc-0001"\n', "data.exclude_rows",
                 ["a list of strings"], id="string-for-list"),
    pytest.param("[output]\ncurves_regimens = [1]\n", "output.curves_regimens[0]",
                 ["a string"], id="number-in-list"),
    pytest.param("nuts = 5\n", "nuts", ["must be a table"], id="value-for-table"),
    pytest.param("[model.priors]\ng_pd1 = 5\n", "model.priors.g_pd1", ["must be a table"],
                 id="value-for-prior-table"),
    # numbers out of range
    pytest.param("[nuts]\ndraws = -5\n", "nuts.draws", ["an integer >= 1", "-5"],
                 id="negative-count"),
    pytest.param("[model]\npatients = 0\n", "model.patients", [">= 1"], id="zero-patients"),
    pytest.param("[nuts]\nmax_tree_depth = 16\n", "nuts.max_tree_depth", ["1..15"],
                 id="tree-depth-above-range"),
    pytest.param("[model]\nrefine = 7\n", "model.refine", ["0..6"], id="refine-above-range"),
    pytest.param("seed = -1\n", "seed", ["0.."], id="negative-seed"),
    pytest.param("[nuts]\ndesign_points = 4\n", "nuts.design_points", [">= 8"],
                 id="too-few-design-points"),
    pytest.param("[output]\ninterval = 1.0\n", "output.interval", ["strictly between 0 and 1"],
                 id="interval-one"),
    pytest.param("[nuts]\ntarget_accept = 0\n", "nuts.target_accept",
                 ["strictly between 0 and 1"], id="target-accept-zero"),
    pytest.param("[map]\nadam_lr = -0.1\n", "map.adam_lr", ["> 0"], id="negative-rate"),
    pytest.param('[model.priors]\ng_pd1 = {dist = "lognormal", median = 0, sd = 1}\n',
                 "model.priors.g_pd1.median", ["> 0"], id="prior-median-zero"),
    pytest.param('[model.priors]\nk_rep = {dist = "lognormal", median = [1, 2], sd = 1}\n',
                 "model.priors.k_rep.median", ["a list of 6"], id="prior-list-length"),
    pytest.param("[model]\ndays = 100\n", "output.weeks", ["model.days = 100"],
                 id="weeks-beyond-days"),
    pytest.param("version = 2\n", "version", ["must be 1", "got 2"], id="future-version"),
    # non-finite numbers
    pytest.param("[map]\nadam_lr = nan\n", "map.adam_lr", ["nan"], id="nan-rate"),
    pytest.param("[output]\ninterval = inf\n", "output.interval", ["inf"], id="inf-interval"),
    pytest.param("[nuts]\ntarget_accept = nan\n", "nuts.target_accept", ["nan"],
                 id="nan-fraction"),
    pytest.param('[model.priors]\ntau = {dist = "normal", mean = -inf, sd = 1}\n',
                 "model.priors.tau.mean", ["a finite number"], id="inf-prior-mean"),
    # choices, with a did-you-mean
    pytest.param('[nuts]\nmethod = "exakt"\n', "nuts.method", ["did you mean 'exact'"],
                 id="bad-method"),
    pytest.param('[model]\ntumour = "Melanoma"\n', "model.tumour",
                 ["'nsclc'", "did you mean 'melanoma'"], id="bad-tumour"),
    pytest.param('[data]\nuse = "everything"\n', "data.use", ["'fit_default', 'all'"],
                 id="bad-data-use"),
    pytest.param('[model.pk_models]\npembrolizumab = "ahamadi"\n',
                 "model.pk_models.pembrolizumab", ["did you mean 'ahamadi2017'"],
                 id="bad-pk-model"),
    pytest.param('[model.priors]\ng_pd1 = {dist = "Lognormal", median = 1, sd = 1}\n',
                 "model.priors.g_pd1.dist", ["did you mean 'lognormal'"], id="bad-prior-dist"),
    pytest.param('[model.priors]\ng_pd1 = {dist = "normal", mean = 0, sd = 1, median = 1}\n',
                 "model.priors.g_pd1.median", ["not used by dist 'normal'"],
                 id="prior-number-not-used"),
    pytest.param('[model.priors]\ng_pd1 = {dist = "lognormal", median = 0.04}\n',
                 "model.priors.g_pd1.sd", ["missing"], id="prior-number-missing"),
    pytest.param('[output]\ncurves_regimens = ["nivolumab 240 mg q2x"]\n',
                 "output.curves_regimens[0]", ["q2x"], id="bad-regimen"),
    # data files and lists
    pytest.param('[data]\nincidence = "nope.csv"\n', "data.incidence",
                 ["not found", "nope.csv"], id="missing-incidence-file"),
    pytest.param('[data]\ntiming = "missing/timing.csv"\n', "data.timing",
                 ["not found", "timing.csv"], id="missing-timing-file"),
    pytest.param('[data]\nincidence = "."\n', "data.incidence", ["not found"],
                 id="folder-for-incidence-file"),
    pytest.param('[data]\nexclude_rows = ["inc-1", "inc-1"]\n', "data.exclude_rows",
                 ["'inc-1' more than once"], id="duplicate-excluded-row"),
    pytest.param("[output]\ncurves_regimens = []\n", "output.curves_regimens",
                 ["at least one"], id="no-regimens"),
]


@pytest.mark.parametrize(("text", "key", "words"), FILE_CASES)
def test_bad_config_file_names_the_key(tmp_path, text, key, words):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_config(path)
    msg = str(e.value)
    assert exit_code(e.value) == EXIT_USAGE
    assert all(line.startswith(f"{path}: ") for line in msg.splitlines()), msg
    assert key in msg, msg
    for word in words:
        assert word in msg, (word, msg)


# (--set items, dotted key the message must name, further words)
OVERRIDE_CASES = [
    pytest.param(["nuts.draws"], "nuts.draws", ["key=value"], id="set-without-equals"),
    pytest.param(["=3"], "'=3'", ["key=value"], id="set-without-key"),
    pytest.param(["seed.x=1"], "seed.x", ["'seed' is not a table"], id="set-below-a-value"),
    pytest.param(["nuts.draw=10"], "nuts.draw", ["did you mean 'nuts.draws'"],
                 id="set-unknown-key"),
    pytest.param(["nuts.draws=ten"], "nuts.draws", ["an integer >= 1", "'ten'"],
                 id="set-text-for-int"),
    pytest.param(["model.patients=1e6"], "model.patients", ["an integer"],
                 id="set-float-for-int"),
    pytest.param(["output.interval=2"], "output.interval", ["strictly between 0 and 1"],
                 id="set-out-of-range"),
    pytest.param(["map.adam_lr=nan"], "map.adam_lr", ["nan"], id="set-nan"),
    pytest.param(["nuts.method=exakt"], "nuts.method", ["did you mean 'exact'"],
                 id="set-bad-choice"),
    pytest.param(["data.incidence=nope.csv"], "data.incidence", ["not found"],
                 id="set-missing-data-file"),
    pytest.param(['model.priors.g_pd1={dist="gamma", sd=1}'], "model.priors.g_pd1.dist",
                 ["'gamma'"], id="set-bad-prior"),
]


@pytest.mark.parametrize(("items", "key", "words"), OVERRIDE_CASES)
def test_bad_override_names_the_key(tmp_path, monkeypatch, items, key, words):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as e:
        apply_overrides(FitConfig(), items)
    msg = str(e.value)
    assert all(line.startswith("command-line override: ") for line in msg.splitlines()), msg
    assert key in msg, msg
    for word in words:
        assert word in msg, (word, msg)


# (TOML text, key the warning names): legal values far outside the usual range
UNUSUAL_CASES = [
    pytest.param("[model]\npatients = 200000\n", "model.patients = 200000", id="many-patients"),
    pytest.param("[model]\ndays = 4000\n", "model.days = 4000", id="long-follow-up"),
    pytest.param("[output]\ninterval = 0.05\n", "output.interval = 0.05", id="narrow-interval"),
    pytest.param("[nuts]\ntarget_accept = 0.2\n", "nuts.target_accept = 0.2",
                 id="low-target-accept"),
    pytest.param("[map]\nadam_lr = 5.0\n", "map.adam_lr = 5.0", id="large-learning-rate"),
    pytest.param('[model.priors]\ng_pd1 = {dist = "lognormal", median = 0.04, sd = 50}\n',
                 "model.priors.g_pd1.sd = 50.0", id="wide-prior"),
]


@pytest.mark.parametrize(("text", "words"), UNUSUAL_CASES)
def test_unusual_value_warns_naming_the_key(tmp_path, text, words):
    path = tmp_path / "unusual.toml"
    path.write_text(text)
    with pytest.warns(ConfigWarning) as record:
        load_config(path)
    assert [str(w.message) for w in record if words in str(w.message)], \
        [str(w.message) for w in record]


def test_usual_values_do_not_warn(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConfigWarning)
        load_config(DEFAULT_TOML)


# (config text or None for fits/default.toml, --set items, key that `error:` must name)
CLI_CASES = [
    pytest.param("[nuts]\ndraw = 10\n", [], "nuts.draw", id="cli-unknown-key"),
    pytest.param("[nuts]\ndraws = = 5\n", [], "nuts.draws", id="cli-bad-toml"),
    pytest.param('[data]\nincidence = "nope.csv"\n', [], "data.incidence",
                 id="cli-missing-data-file"),
    pytest.param("[model]\npatients = -3\n", [], "model.patients", id="cli-out-of-range"),
    pytest.param(None, ["nuts.method=exakt"], "nuts.method", id="cli-set-bad-choice"),
    pytest.param(None, ["nuts.draws"], "nuts.draws", id="cli-set-without-equals"),
    pytest.param(None, ["map.starts=0"], "map.starts", id="cli-set-out-of-range"),
]


@pytest.mark.parametrize(("text", "items", "key"), CLI_CASES)
@pytest.mark.parametrize("command", ["fit", "validate"])
def test_cli_rejects_bad_config_before_fitting(tmp_path, command, text, items, key):
    config = DEFAULT_TOML
    if text is not None:
        config = tmp_path / "bad.toml"
        config.write_text(text)
    run = tmp_path / "run"
    args = [command, str(config), "--set", f"output.folder={run}", "--no-progress"]
    for item in items:
        args += ["--set", item]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == EXIT_USAGE, res.output
    assert "error:" in res.output and key in res.output, res.output
    assert "Traceback" not in res.output
    assert not run.exists()
