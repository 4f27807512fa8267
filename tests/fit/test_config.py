"""Fit configuration (pdmodel.fit: FitConfig, load_config, overrides, hashing)."""

import dataclasses
import pickle
import tomllib
import warnings
from pathlib import Path

import pytest

from pdmodel.errors import ConfigError
from pdmodel.fit import (
    DEFAULT_REGIMENS,
    FitConfig,
    PriorSpec,
    apply_overrides,
    config_diff,
    config_hash,
    config_to_dict,
    dump_config,
    load_config,
)
from pdmodel.fit._config import ConfigWarning, parse_config

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_TOML = ROOT / "fits" / "default.toml"


def _write(tmp_path: Path, text: str, name: str = "bad.toml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def _small(tmp_path: Path, **over) -> FitConfig:
    cfg = FitConfig()
    cfg = dataclasses.replace(cfg, output=dataclasses.replace(cfg.output,
                                                              folder=str(tmp_path / "run")))
    return apply_overrides(cfg, over) if over else cfg


# --------------------------------------------------------------------------- config


def test_default_toml_loads_to_defaults():
    cfg = load_config(DEFAULT_TOML)
    d = FitConfig()
    expected = dataclasses.replace(
        d, output=dataclasses.replace(d.output, folder=str(ROOT / "fits" / "runs" / "default")))
    assert cfg == expected
    assert cfg.output.curves_regimens == DEFAULT_REGIMENS and len(DEFAULT_REGIMENS) == 8


def test_default_toml_lists_and_comments_every_key():
    text = DEFAULT_TOML.read_text()
    raw = tomllib.loads(text)
    flat = config_to_dict(FitConfig())
    for section, keys in flat.items():
        if not isinstance(keys, dict):
            assert section in raw
            continue
        assert section in raw, section
        for key in keys:
            assert key in raw[section], f"{section}.{key} missing from default.toml"
            if not isinstance(keys[key], dict):
                line = next(ln for ln in text.splitlines() if ln.startswith(f"{key} ="))
                assert "#" in line, f"{section}.{key} has no comment"


def test_round_trip_dump_load(tmp_path):
    csv = _write(tmp_path, "row_id\n", "mine.csv")
    cfg = load_config(_write(tmp_path, f"""
seed = 7
[data]
incidence = "{csv.name}"
timing = "none"
use = "all"
exclude_rows = ["inc-0001", "inc-0002"]
[model]
steps_per_day = 4
fixed = ["k_a", "tau"]
pk_models = {{pembrolizumab = "elassaiss-schaap2017"}}
[model.priors]
g_pd1 = {{dist = "lognormal", median = 0.04, sd = 0.5}}
rho_pdl1 = {{dist = "logitnormal", median = 0.6, sd = 1.0}}
agent_effect = {{dist = "normal", mean = 0.0, sd = 0.3}}
sigma = {{dist = "halfnormal", sd = [1, 1, 1, 1, 1, 2]}}
[nuts]
method = "exact"
target_accept = 0.9
[output]
folder = "out"
curves_regimens = ["nivolumab 240 mg q2w"]
""", "cfg.toml"))
    assert cfg.data.incidence == str(csv) and cfg.output.folder == str(tmp_path / "out")
    assert cfg.model.priors["sigma"] == PriorSpec("halfnormal", sd=(1.0,) * 5 + (2.0,))
    assert cfg.model.pk_models == {"pembrolizumab": "elassaiss-schaap2017"}
    other = tmp_path / "elsewhere"
    other.mkdir()
    again = load_config(_write(other, dump_config(cfg, header="test"), "dump.toml"))
    assert again == cfg and config_hash(again) == config_hash(cfg)
    default = FitConfig()
    assert load_config(_write(other, dump_config(default), "d.toml")).model == default.model


def test_schema_defaults_are_the_dataclass_defaults(tmp_path):
    """The pydantic tables and the FitConfig dataclasses declare the same keys and defaults."""
    assert parse_config({}) == FitConfig()
    d = FitConfig()
    folder = str(tmp_path / d.output.folder)
    assert load_config(_write(tmp_path, dump_config(d), "d.toml")) == dataclasses.replace(
        d, output=dataclasses.replace(d.output, folder=folder))


def test_default_configs_load_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_config(DEFAULT_TOML)
        load_config(ROOT / "fits" / "gpu.toml")
        apply_overrides(FitConfig(), ["nuts.draws=10", "model.patients=4"])


def test_config_is_frozen_hashable_picklable():
    cfg = apply_overrides(FitConfig(), ["model.pk_models.nivolumab=bajaj2017"])
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.nuts.draws = 3
    with pytest.raises(TypeError):
        cfg.model.pk_models["nivolumab"] = "x"
    assert pickle.loads(pickle.dumps(cfg)) == cfg
    assert hash(cfg) == hash(pickle.loads(pickle.dumps(cfg)))


BROKEN = {
    "unknown key": ("[nuts]\ndraw = 10\n", ["nuts.draw", "did you mean 'nuts.draws'"]),
    "key in wrong section": ("[nuts]\nstarts = 2\n", ["nuts.starts", "map.starts"]),
    "wrong type": ('[nuts]\ndraws = "10"\n', ["nuts.draws", "integer"]),
    "float for int": ("[map]\nstarts = 2.0\n", ["map.starts"]),
    "bool for int": ("seed = true\n", ["seed"]),
    "out of range": ("[nuts]\ndraws = -5\n", ["nuts.draws must be an integer >= 1, got -5"]),
    "tree depth": ("[nuts]\nmax_tree_depth = 16\n", ["nuts.max_tree_depth", "1..15"]),
    "refine rounds": ("[nuts]\nrefine_rounds = 6\n", ["nuts.refine_rounds", "0..5"]),
    "steps per day": ("[model]\nsteps_per_day = 0\n", ["model.steps_per_day"]),
    "negative patients": ("[model]\npatients = -3\n", ["model.patients", "-3"]),
    "bad interval": ("[output]\ninterval = 1.0\n", ["output.interval"]),
    "bad target accept": ("[nuts]\ntarget_accept = 0\n", ["nuts.target_accept"]),
    "nan": ("[map]\nadam_lr = nan\n", ["map.adam_lr"]),
    "bad regimen": ('[output]\ncurves_regimens = ["nivolumab 240 mg q2x"]\n',
                    ["output.curves_regimens[0]", "q2x"]),
    "bad toml": ("[nuts]\ndraws = = 5\n", ["invalid TOML", "line 2", "nuts.draws"]),
    "unknown prior dist": ('[model.priors]\ng_pd1 = {dist = "gamma", sd = 1}\n',
                           ["model.priors.g_pd1.dist", "gamma", "lognormal"]),
    "missing prior number": ('[model.priors]\ng_pd1 = {dist = "lognormal", median = 0.04}\n',
                             ["model.priors.g_pd1.sd", "missing"]),
    "prior number <= 0": ('[model.priors]\ng_pd1 = {dist = "lognormal", median = 0, sd = 1}\n',
                          ["model.priors.g_pd1.median"]),
    "prior number unused": ('[model.priors]\ng_pd1 = {dist = "normal", mean = 0, sd = 1, '
                            'median = 1}\n', ["model.priors.g_pd1.median", "normal"]),
    "prior list length": ('[model.priors]\nk_rep = {dist = "lognormal", median = [1, 2], '
                          'sd = 1}\n', ["model.priors.k_rep.median", "6"]),
    "prior unknown field": ('[model.priors]\ng_pd = {dist = "normal", mean = 0, sd = 1}\n',
                            ["model.priors", "g_pd", "g_pd1"]),
    "fixed and prior": ('[model]\nfixed = ["g_pd1"]\n[model.priors]\n'
                        'g_pd1 = {dist = "lognormal", median = 0.04, sd = 0.5}\n',
                        ["model.priors.g_pd1", "model.fixed"]),
    "unknown fixed field": ('[model]\nfixed = ["k_x"]\n', ["model.fixed", "k_x"]),
    "unknown section": ("[nut]\ndraws = 10\n", ["[nut]", "did you mean [nuts]"]),
    "section not a table": ("nuts = 5\n", ["nuts must be a table"]),
    "bad choice": ('[nuts]\nmethod = "exakt"\n', ["nuts.method", "did you mean 'exact'"]),
    "bad tumour": ('[model]\ntumour = "lung"\n', ["model.tumour", "melanoma"]),
    "bad arms": ('[model]\narms = "treated"\n', ["model.arms", "managed", "natural"]),
    "bad pk model": ('[model.pk_models]\nnivolumab = "foo"\n',
                     ["model.pk_models.nivolumab", "bajaj2017"]),
    "bad pk agent": ('[model.pk_models]\nnivo = "bajaj2017"\n', ["model.pk_models", "nivo"]),
    "missing data file": ('[data]\nincidence = "nope.csv"\n', ["data.incidence", "nope.csv"]),
    "bad data use": ('[data]\nuse = "everything"\n', ["data.use", "fit_default"]),
    "duplicate row ids": ('[data]\nexclude_rows = ["a", "a"]\n', ["data.exclude_rows", "'a'"]),
    "weeks beyond days": ("[model]\ndays = 100\n", ["output.weeks", "model.days"]),
    "version": ("version = 2\n", ["version must be 1", "got 2"]),
}


@pytest.mark.parametrize("name", list(BROKEN))
def test_broken_config_names_file_and_key(tmp_path, name):
    text, needles = BROKEN[name]
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        load_config(path)
    msg = str(e.value)
    assert isinstance(e.value, ValueError)
    assert msg.startswith(f"{path}: ")
    for needle in needles:
        assert needle in msg, (needle, msg)


def test_all_problems_reported_at_once(tmp_path):
    path = _write(tmp_path, "seed = -1\n[nuts]\ndraws = 0\ndraw = 1\n[map]\nadam_lr = -1\n")
    with pytest.raises(ConfigError) as e:
        load_config(path)
    lines = str(e.value).splitlines()
    assert len(lines) == len(e.value.problems) == 4
    assert all(ln.startswith(f"{path}: ") for ln in lines)
    for key in ("seed", "nuts.draws", "nuts.draw", "map.adam_lr"):
        assert any(key in ln for ln in lines), key


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "absent.toml")


def test_overrides_parse_and_validate(tmp_path, monkeypatch):
    cfg = FitConfig()
    new = apply_overrides(cfg, ["nuts.draws=10", "map.starts=1", "nuts.target_accept=0.9",
                                "nuts.method=exact", "data.use=all", "seed=3"])
    assert (new.nuts.draws, new.map.starts, new.nuts.target_accept) == (10, 1, 0.9)
    assert (new.nuts.method, new.data.use, new.seed) == ("exact", "all", 3)
    assert cfg.nuts.draws == 1000  # original untouched
    assert apply_overrides(cfg, nuts__chains=1, map={"adam_steps": 5}).map.adam_steps == 5
    assert apply_overrides(cfg, {"nuts.warmup": 0}).nuts.warmup == 0
    pri = apply_overrides(cfg, ['model.priors.g_pd1={dist="normal", mean=0, sd=1}'])
    assert pri.model.priors["g_pd1"] == PriorSpec("normal", mean=0.0, sd=1.0)
    monkeypatch.chdir(tmp_path)
    assert apply_overrides(cfg, ["output.folder=runs/x"]).output.folder == str(
        tmp_path / "runs" / "x")
    assert apply_overrides(cfg, ["output.folder=2024"]).output.folder == str(tmp_path / "2024")
    for bad, needle in [(["nuts.draw=10"], "did you mean 'nuts.draws'"),
                        (["nuts.draws=-1"], "nuts.draws must be an integer >= 1"),
                        (["nuts.draws=ten"], "nuts.draws"),
                        (["draws"], "key=value"),
                        (["seed.x=1"], "not a table"),
                        (["output.interval=2"], "output.interval")]:
        with pytest.raises(ConfigError, match="command-line override") as e:
            apply_overrides(cfg, bad)
        assert needle in str(e.value)


def test_override_problems_all_at_once():
    with pytest.raises(ConfigError) as e:
        apply_overrides(FitConfig(), ["nuts.method=exakt", "data.use=everything", "=3"])
    assert len(e.value.problems) == 3
    assert all(ln.startswith("command-line override: ") for ln in str(e.value).splitlines())
    for needle in ("'=3'", "data.use", "nuts.method", "did you mean 'exact'"):
        assert needle in str(e.value), needle


def test_unusual_values_warn_naming_the_key(tmp_path):
    path = _write(tmp_path, "[model]\npatients = 200000\ndays = 4000\n", "big.toml")
    with pytest.warns(ConfigWarning) as record:
        cfg = load_config(path)
    assert (cfg.model.patients, cfg.model.days) == (200000, 4000)
    texts = [str(w.message) for w in record]
    assert any(t.startswith(f"{path}: model.patients = 200000") and "100000" in t
               for t in texts), texts
    assert any("model.days = 4000" in t and "3650" in t for t in texts), texts
    # an override warns about its own keys only, not the unusual values already there
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        apply_overrides(cfg, ["nuts.draws=10"])
    with pytest.warns(ConfigWarning, match="command-line override: output.interval = 0.05"):
        apply_overrides(cfg, ["output.interval=0.05"])


def test_config_hash_and_diff():
    a = FitConfig()
    b = apply_overrides(a, ["nuts.draws=10", "output.folder=/tmp/elsewhere"])
    assert config_diff(a, b) == ["nuts.draws"]
    assert config_hash(a) != config_hash(b)
    assert config_hash(a) == config_hash(apply_overrides(a, ["output.folder=/tmp/x"]))
