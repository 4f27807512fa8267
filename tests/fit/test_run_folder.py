"""The run folder of a fit (pdmodel.fit.RunFolder): lock, checkpoints, atomic publishing."""

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pdmodel.errors import RunConfigMismatchError, RunLockedError
from pdmodel.fit import (
    FitConfig,
    RunFolder,
    apply_overrides,
    config_hash,
    load_config,
)
from pdmodel.fit import _run_folder as _runio
from pdmodel.io import VERSION_PACKAGES


def _small(tmp_path: Path, **over) -> FitConfig:
    cfg = FitConfig()
    cfg = dataclasses.replace(cfg, output=dataclasses.replace(cfg.output,
                                                              folder=str(tmp_path / "run")))
    return apply_overrides(cfg, over) if over else cfg


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
