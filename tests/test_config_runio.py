"""Fit configuration (pdmodel.fit._config) and run-folder I/O (pdmodel.fit._run_folder)."""

import dataclasses
import json
import os
import pickle
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

from pdmodel.errors import ConfigError, RunConfigMismatchError, RunLockedError
from pdmodel.fit import (
    DEFAULT_REGIMENS,
    FitConfig,
    PriorSpec,
    RunFolder,
    apply_overrides,
    config_diff,
    config_hash,
    config_to_dict,
    dump_config,
    load_config,
)
from pdmodel.fit import _run_folder as _runio
from pdmodel.io import VERSION_PACKAGES, atomic_write_bytes, atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
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
    "bad pk model": ('[model.pk_models]\nnivolumab = "foo"\n',
                     ["model.pk_models.nivolumab", "bajaj2017"]),
    "bad pk agent": ('[model.pk_models]\nnivo = "bajaj2017"\n', ["model.pk_models", "nivo"]),
    "missing data file": ('[data]\nincidence = "nope.csv"\n', ["data.incidence", "nope.csv"]),
    "bad data use": ('[data]\nuse = "everything"\n', ["data.use", "fit_default"]),
    "duplicate row ids": ('[data]\nexclude_rows = ["a", "a"]\n', ["data.exclude_rows", "'a'"]),
    "weeks beyond days": ("[model]\ndays = 100\n", ["output.weeks", "model.days"]),
    "version": ("version = 2\n", ["version 2"]),
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


def test_config_hash_and_diff():
    a = FitConfig()
    b = apply_overrides(a, ["nuts.draws=10", "output.folder=/tmp/elsewhere"])
    assert config_diff(a, b) == ["nuts.draws"]
    assert config_hash(a) != config_hash(b)
    assert config_hash(a) == config_hash(apply_overrides(a, ["output.folder=/tmp/x"]))


# --------------------------------------------------------------------------- atomic writes


def test_atomic_write(tmp_path):
    p = tmp_path / "sub" / "f.txt"
    atomic_write_text(p, "one")
    atomic_write_bytes(p, b"two")
    assert p.read_bytes() == b"two"

    def boom(f):
        f.write(b"partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write_bytes(p, boom)
    assert p.read_bytes() == b"two"
    assert sorted(x.name for x in p.parent.iterdir()) == ["f.txt"]


# --------------------------------------------------------------------------- run folder


def test_create_writes_config_versions_seed(tmp_path):
    cfg = _small(tmp_path)
    run = RunFolder(tmp_path / "run")
    run.create(cfg, seed=11)
    assert load_config(run.config_path) == dataclasses.replace(cfg, seed=11)
    assert (run.path / "seed.txt").read_text().strip() == "11"
    info = json.loads((run.path / "versions.json").read_text())
    assert {"python", "platform", "packages"} <= set(info)
    assert set(VERSION_PACKAGES) == set(info["packages"])
    assert info["packages"]["numpy"] == np.__version__


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_lock(tmp_path):
    run = RunFolder(tmp_path / "run")
    with run:
        assert run.locked and run.lock_path.read_text().split()[0] == str(os.getpid())
        run.acquire()  # re-entrant
        with pytest.raises(RunLockedError, match="in use"):
            RunFolder(tmp_path / "run").acquire()
    assert not run.lock_path.exists() and not run.locked
    # a lock naming a live process (this one) that nobody flocks is still respected
    run.lock_path.write_text(f"{os.getpid()}\n")
    with pytest.raises(RunLockedError, match=str(os.getpid())):
        run.acquire()
    # a stale lock from a dead process is taken over; so is garbage
    for stale in (f"{_dead_pid()}\n", "garbage"):
        run.lock_path.write_text(stale)
        run.acquire()
        assert run.lock_path.read_text().split()[0] == str(os.getpid())
        run.release()


def test_checkpoints_round_trip_corruption_and_mismatch(tmp_path):
    cfg = _small(tmp_path)
    run = RunFolder(tmp_path / "run", cfg)
    assert run.load_checkpoint("map") is None and run.completed_stages() == []
    theta = np.linspace(0, 1, 7)
    run.save_checkpoint("map", {"theta": theta, "loss": np.float64(3.5)},
                        {"starts": 4, "best": np.int64(2)})
    run.save_checkpoint("nuts", {"draws": np.ones((2, 3))})
    arrays, meta = run.load_checkpoint("map")
    np.testing.assert_array_equal(arrays["theta"], theta)
    assert arrays["loss"] == 3.5 and meta["starts"] == 4 and meta["best"] == 2
    assert meta["complete"] is True and meta["config_hash"] == config_hash(cfg)
    assert run.completed_stages() == ["map", "nuts"]
    # different config (folder aside): not loaded
    other = RunFolder(run.path, apply_overrides(cfg, ["nuts.draws=10"]))
    assert other.load_checkpoint("map") is None and other.completed_stages() == []
    moved = RunFolder(run.path, apply_overrides(cfg, ["output.folder=/tmp/moved"]))
    assert moved.load_checkpoint("map") is not None
    # corrupt files never crash
    npz, js = run.checkpoints_path / "nuts.npz", run.checkpoints_path / "nuts.json"
    npz.write_bytes(b"\x00garbage" * 10)
    assert run.load_checkpoint("nuts") is None
    js.write_text("{not json")
    assert run.load_checkpoint("nuts") is None
    js.write_bytes(os.urandom(64))
    assert run.load_checkpoint("nuts") is None
    (run.checkpoints_path / "map.npz").unlink()
    assert run.load_checkpoint("map") is None and run.completed_stages() == []
    with pytest.raises(ValueError):
        run.save_checkpoint("../escape", {})
    with pytest.raises(TypeError):
        run.save_checkpoint("obj", {"x": np.array([object()])})


def test_checkpoint_mismatched_npz_is_rejected(tmp_path):
    run = RunFolder(tmp_path / "run", _small(tmp_path))
    run.save_checkpoint("a", {"x": np.zeros(3)})
    run.save_checkpoint("b", {"x": np.ones(3)})
    # npz of another stage (valid file, wrong content): sha256 check rejects it
    (run.checkpoints_path / "a.npz").write_bytes((run.checkpoints_path / "b.npz").read_bytes())
    assert run.load_checkpoint("a") is None


def test_publish_swaps_results(tmp_path):
    run = RunFolder(tmp_path / "run")
    run.publish({"summary.csv": "a,b\n1,2\n", "plots/p.png": b"\x89PNG",
                 "posterior.nc": lambda f: f.write(b"nc")})
    res = run.results_path
    assert (res / "summary.csv").read_text() == "a,b\n1,2\n"
    assert (res / "plots" / "p.png").read_bytes() == b"\x89PNG"
    run.publish({"summary.csv": "new\n"})
    assert sorted(p.name for p in res.iterdir()) == ["summary.csv"]
    assert (res / "summary.csv").read_text() == "new\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no temp folders left
    assert not run.lock_path.exists()
    with pytest.raises(ValueError):
        run.publish({"../x": "no"})


def test_publish_failure_keeps_previous_results(tmp_path, monkeypatch):
    run = RunFolder(tmp_path / "run")
    run.publish({"a.txt": "old a", "b.txt": "old b"})

    def failing_writer(f):
        f.write(b"half a plo")
        raise OSError("killed while writing")

    with pytest.raises(OSError, match="killed"):
        run.publish({"a.txt": "new a", "plot.png": failing_writer, "c.txt": "new c"})
    assert sorted(p.name for p in run.results_path.iterdir()) == ["a.txt", "b.txt"]
    assert (run.results_path / "a.txt").read_text() == "old a"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]

    # failure in the swap itself (renaming the new folder in): old results put back
    real = _runio._rename
    calls = []

    def rename(src, dst):
        calls.append(src)
        if len(calls) == 2:
            raise OSError("rename failed")
        real(src, dst)

    monkeypatch.setattr(_runio, "_rename", rename)
    with pytest.raises(OSError, match="rename failed"):
        run.publish({"a.txt": "new a"})
    monkeypatch.setattr(_runio, "_rename", real)
    assert (run.results_path / "b.txt").read_text() == "old b"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_interrupted_swap_is_repaired_on_lock(tmp_path):
    run = RunFolder(tmp_path / "run")
    run.publish({"a.txt": "old"})
    # killed after moving the old results out, before moving the new ones in
    tmp = tmp_path / "run.tmp-dead"
    (tmp / "results").mkdir(parents=True)
    (tmp / "results" / "a.txt").write_text("new")
    os.rename(run.results_path, tmp / "previous")
    with run:
        assert (run.results_path / "a.txt").read_text() == "old"  # not READY: roll back
    assert not tmp.exists()
    (tmp / "results").mkdir(parents=True)
    (tmp / "results" / "a.txt").write_text("new")
    (tmp / "READY").touch()
    os.rename(run.results_path, tmp / "previous")
    with run:
        assert (run.results_path / "a.txt").read_text() == "new"  # complete: roll forward
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_open_resume_policy(tmp_path):
    cfg = _small(tmp_path)
    folder = tmp_path / "run"
    with RunFolder.open(folder, cfg) as run:  # fresh folder
        assert run.locked and not run.resume
        run.save_checkpoint("map", {"x": np.zeros(2)})
    assert not (folder / ".lock").exists()
    # same config, resume: checkpoints kept
    with RunFolder.open(folder, cfg, resume=True) as run:
        assert run.resume and run.completed_stages() == ["map"]
        run.publish({"r.txt": "done"})
    # a live run holds the lock
    with RunFolder.open(folder, cfg, resume=True):
        with pytest.raises(RunLockedError):
            RunFolder.open(folder, cfg, resume=True)
    changed = apply_overrides(cfg, ["nuts.draws=10", "map.starts=1"])
    with pytest.raises(RunConfigMismatchError, match="--resume") as e:
        RunFolder.open(folder, changed, resume=False)
    assert e.value.keys == ["map.starts", "nuts.draws"] and "nuts.draws" in str(e.value)
    with pytest.raises(RunConfigMismatchError, match="map.starts, nuts.draws"):
        RunFolder.open(folder, changed, resume=True)
    assert not (folder / ".lock").exists()
    assert (folder / "results" / "r.txt").read_text() == "done"  # untouched by refusals
    assert load_config(folder / "config.toml") == cfg
    # same config without resume: start over (checkpoints cleared, results kept until publish)
    with RunFolder.open(folder, cfg) as run:
        assert run.completed_stages() == [] and run.has_results()
    # a different config in a folder with nothing to resume is fine
    (folder / "results" / "r.txt").unlink()
    (folder / "results").rmdir()
    with RunFolder.open(folder, changed) as run:
        assert load_config(run.config_path) == changed
