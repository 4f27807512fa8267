"""The run folder of a fit (pdmodel.fit.RunFolder): lock, checkpoints, versioned publishing
with a manifest, and readers that find complete results at every step of a publish."""

import dataclasses
import errno
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pdmodel.errors import (
    ResultsIntegrityError,
    RunConfigMismatchError,
    RunFolderError,
    RunLockedError,
)
from pdmodel.fit import (
    FitConfig,
    RunFolder,
    apply_overrides,
    config_hash,
    load_config,
)
from pdmodel.fit import _run_folder as _runio
from pdmodel.fit._run_folder import verify_results, visible_files, write_manifest
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


def _content(run: Path) -> dict[str, str]:
    """The published files of ``run`` after verifying them (fails if not complete)."""
    folder = verify_results(run).folder
    return {n: (folder / n).read_text() for n in visible_files(folder)}


def test_publish_writes_a_verified_version_and_flips_the_link(tmp_path):
    run = RunFolder(tmp_path / "run")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.toml").write_text("seed = 1\n")
    run.publish({"summary.csv": "a,b\n1,2\n", "plots/p.png": b"\x89PNG",
                 "posterior.nc": lambda f: f.write(b"nc")})
    res = run.results_path
    assert res.is_symlink() and os.readlink(res) == "results.d/000001"
    assert (res / "summary.csv").read_text() == "a,b\n1,2\n"
    assert (res / "plots" / "p.png").read_bytes() == b"\x89PNG"
    manifest = json.loads((res / "MANIFEST.json").read_text())
    assert sorted(manifest["files"]) == ["plots/p.png", "posterior.nc", "summary.csv"]
    assert manifest["files"]["posterior.nc"] == {
        "sha256": hashlib.sha256(b"nc").hexdigest(), "size": 2}
    assert manifest["run_files"]["config.toml"]["size"] == len("seed = 1\n")
    assert verify_results(run.path).manifest is not None
    run.publish({"summary.csv": "new\n"})
    assert os.readlink(res) == "results.d/000002"
    assert sorted(p.name for p in res.iterdir()) == ["MANIFEST.json", "summary.csv"]
    assert _content(run.path) == {"summary.csv": "new\n"}
    # the version before stays readable until the next publish, then goes
    assert sorted(p.name for p in run.versions_path.iterdir()) == ["000001", "000002"]
    run.publish({"summary.csv": "newer\n"})
    assert sorted(p.name for p in run.versions_path.iterdir()) == ["000002", "000003"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no temp folders left
    assert sorted(p.name for p in run.path.iterdir()) == ["config.toml", "results",
                                                         "results.d"]
    with pytest.raises(ValueError):
        run.publish({"../x": "no"})
    with pytest.raises(ValueError, match="MANIFEST.json"):
        run.publish({"MANIFEST.json": "{}"})


def test_publish_migrates_a_real_results_folder(tmp_path):
    """A results/ folder of pdmodel before versioned results becomes the previous version."""
    run = RunFolder(tmp_path / "run")
    (run.results_path / "plots").mkdir(parents=True)
    (run.results_path / "a.txt").write_text("old")
    (run.results_path / "plots" / "p.png").write_bytes(b"old png")
    with pytest.warns(UserWarning, match="MANIFEST.json"):
        assert _content(run.path) == {"a.txt": "old", "plots/p.png": "old png"}
    run.publish({"a.txt": "new"})
    assert os.readlink(run.results_path) == "results.d/000002"
    assert _content(run.path) == {"a.txt": "new"}
    old = run.versions_path / "000001"
    assert (old / "a.txt").read_text() == "old" and (old / "plots" / "p.png").is_file()
    assert sorted(p.name for p in run.path.iterdir()) == ["results", "results.d"]


def test_publish_failure_keeps_previous_results(tmp_path, monkeypatch):
    run = RunFolder(tmp_path / "run")
    run.publish({"a.txt": "old a", "b.txt": "old b"})

    def failing_writer(f):
        f.write(b"half a plo")
        raise OSError("killed while writing")

    with pytest.raises(OSError, match="killed"):
        run.publish({"a.txt": "new a", "plot.png": failing_writer, "c.txt": "new c"})
    assert _content(run.path) == {"a.txt": "old a", "b.txt": "old b"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    assert sorted(p.name for p in run.versions_path.iterdir()) == ["000001"]


OLD = {"a.txt": "old a", "plots/b.txt": "old b"}
NEW = {"a.txt": "new a", "c.txt": "new c"}


def _old_results(run: RunFolder, layout: str) -> None:
    """``run`` with the published files OLD: versioned, or a real folder (with a manifest)."""
    if layout == "versioned":
        run.publish(OLD)
        return
    for name, text in OLD.items():
        (run.results_path / name).parent.mkdir(parents=True, exist_ok=True)
        (run.results_path / name).write_text(text)
    write_manifest(run.results_path)


def _counting(monkeypatch, on_call):
    """Route the renames and link creations of publish through ``on_call(step)`` first."""
    steps = []

    def wrap(op):
        def f(*args, **kw):
            steps.append(op.__name__)
            on_call(len(steps))
            return op(*args, **kw)
        return f

    monkeypatch.setattr(_runio, "_rename", wrap(os.replace))
    monkeypatch.setattr(_runio, "_symlink", wrap(os.symlink))
    return steps


@pytest.mark.parametrize("layout", ["versioned", "real folder"])
def test_results_are_complete_at_every_step_of_publish(tmp_path, monkeypatch, layout):
    """Before and after every rename of a publish, a reader finds the old or the new
    results, complete and verified (never none, never a mix)."""
    run = RunFolder(tmp_path / "run")
    _old_results(run, layout)
    seen = []
    steps = _counting(monkeypatch, lambda step: seen.append(_content(run.path)))
    run.publish(NEW)
    seen.append(_content(run.path))
    assert len(steps) >= 3 + (layout == "real folder")  # move, link, flip (and prune)
    assert all(c in (OLD, NEW) for c in seen) and seen[0] == OLD and seen[-1] == NEW


@pytest.mark.parametrize("layout", ["versioned", "real folder"])
def test_publish_failing_at_any_rename_keeps_complete_results(tmp_path, monkeypatch, layout):
    """A rename or link that fails at any step of the swap: the old results (or, once the
    link is flipped, the new ones) stay complete; the next lock leaves a clean folder."""
    probe = RunFolder(tmp_path / "probe")
    _old_results(probe, layout)
    steps = _counting(monkeypatch, lambda step: None)
    probe.publish(NEW)
    total = len(steps)
    for k in range(1, total + 1):
        run = RunFolder(tmp_path / f"run{k}")
        monkeypatch.setattr(_runio, "_rename", os.replace)
        monkeypatch.setattr(_runio, "_symlink", os.symlink)
        _old_results(run, layout)

        def fail_at(step, k=k):
            if step == k:
                raise OSError(f"injected failure at step {k}")

        _counting(monkeypatch, fail_at)
        try:
            run.publish(NEW)
            done = True
        except OSError as err:
            assert f"step {k}" in str(err)
            done = False
        assert _content(run.path) in (OLD, NEW), k
        assert done or _content(run.path) == OLD or k == total, k  # only pruning may fail late
        monkeypatch.setattr(_runio, "_rename", os.replace)
        monkeypatch.setattr(_runio, "_symlink", os.symlink)
        content = _content(run.path)
        with run:  # repairs
            assert _content(run.path) == content
        _assert_clean(run)


def _assert_clean(run: RunFolder) -> None:
    """No temporary versions, links or trash left; ``results`` is a link."""
    left = [p.name for p in run.path.iterdir() if p.name.startswith(".")]
    assert left == [], left
    if run.versions_path.is_dir():
        assert all(p.name.isdigit() for p in run.versions_path.iterdir())
    assert run.results_path.is_symlink() or run.results_path.is_dir()


KILL_SCRIPT = r"""
import json, os, signal, sys
from pathlib import Path
from pdmodel.fit import _run_folder as rf

root = Path(sys.argv[1])
OLD = {"a.txt": "old a", "plots/b.txt": "old b"}
NEW = {"a.txt": "new a", "c.txt": "new c"}

def content(run):
    try:
        folder = rf.verify_results(run).folder
    except Exception as err:
        return f"{type(err).__name__}: {err}"
    return {n: (folder / n).read_text() for n in rf.visible_files(folder)}

def killed_at(path, k):
    pid = os.fork()
    if pid == 0:  # the publishing process, killed by SIGKILL before its k-th step
        calls = [0]
        def killing(op):
            def f(*args, **kw):
                calls[0] += 1
                if calls[0] == k:
                    os.kill(os.getpid(), signal.SIGKILL)
                return op(*args, **kw)
            return f
        rf._rename, rf._symlink = killing(os.replace), killing(os.symlink)
        rf.write_new_file = killing(rf.write_new_file)
        rf.RunFolder(path).publish(NEW)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    return os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL

out = {}
for layout in ("versioned", "real folder"):
    rows = out[layout] = []
    for k in range(1, 100):
        path = root / layout / f"run{k}"
        run = rf.RunFolder(path)
        if layout == "versioned":  # an older version (pruned) and OLD
            run.publish({"a.txt": "older"})
            run.publish(OLD)
        else:
            for name, text in OLD.items():
                (path / "results" / name).parent.mkdir(parents=True, exist_ok=True)
                (path / "results" / name).write_text(text)
            rf.write_manifest(path / "results")
        killed = killed_at(path, k)
        before = content(path)
        with rf.RunFolder(path):
            repaired = content(path)
        left = sorted(p.name for p in path.iterdir() if p.name.startswith(".")) + sorted(
            p.name for p in (path / "results.d").iterdir() if not p.name.isdigit())
        rows.append({"k": k, "killed": killed, "before": before, "after": repaired,
                     "left": left})
        if not killed:
            break
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def killed_publishes(tmp_path_factory):
    """For each layout, a publish killed by SIGKILL before each of its steps in turn (file
    writes, renames, link flip, pruning), until one completes: what a reader finds right
    after the kill, after the next lock, and the leftovers (one subprocess, forked per kill)."""
    root = tmp_path_factory.mktemp("killed")
    got = subprocess.run([sys.executable, "-c", KILL_SCRIPT, str(root)], capture_output=True,
                         text=True, timeout=300)
    assert got.returncode == 0, got.stderr[-3000:]
    return json.loads(got.stdout.splitlines()[-1])


@pytest.mark.parametrize("layout", ["versioned", "real folder"])
def test_publish_killed_at_any_step_leaves_complete_results(killed_publishes, layout):
    """Killed at any step, a reader finds complete old or new results right after the kill,
    and the next lock repairs the folder without changing what it reads."""
    rows = killed_publishes[layout]
    assert len(rows) >= 7 and rows[-1]["killed"] is False and rows[-2]["killed"] is True
    for r in rows:
        assert r["before"] in (OLD, NEW), r
        assert r["after"] == r["before"], r
        assert r["left"] == [], r
    assert rows[0]["before"] == OLD and rows[-1]["before"] == NEW
    # killed after writing the new version, before the flip: still the old results
    flips = [i for i, r in enumerate(rows) if r["before"] == NEW]
    assert flips and all(r["before"] == OLD for r in rows[:flips[0]])


def test_interrupted_legacy_swap_is_repaired_on_lock(tmp_path):
    """A publish of pdmodel before versioned results, killed between its renames."""
    run = RunFolder(tmp_path / "run")
    run.results_path.mkdir(parents=True)
    (run.results_path / "a.txt").write_text("old")
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


def test_lock_repairs_a_missing_or_broken_results_link(tmp_path):
    run = RunFolder(tmp_path / "run")
    run.publish({"a.txt": "one"})
    run.publish({"a.txt": "two"})
    run.results_path.unlink()  # killed between moving a real folder aside and the flip
    assert _content(run.path) == {"a.txt": "two"}  # readers take the newest version
    with run:
        assert os.readlink(run.results_path) == "results.d/000002"
    shutil.rmtree(run.versions_path / "000002")  # a link to nothing: the newest left
    with pytest.raises(ResultsIntegrityError, match="results.d/000002, which does not exist"):
        verify_results(run.path)
    with run:
        assert _content(run.path) == {"a.txt": "one"}


def test_open_refuses_a_file_system_without_links(tmp_path, monkeypatch):
    def no_links(src, dst):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(_runio, "_symlink", no_links)
    with pytest.raises(RunFolderError, match="symbolic links"):
        RunFolder.open(tmp_path / "run", _small(tmp_path))
    assert not (tmp_path / "run" / ".lock").exists()


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
    # a resumed run leaves the config.toml the published results were made with
    before = (folder / "config.toml").read_bytes()
    with RunFolder.open(folder, cfg, resume=True):
        assert (folder / "config.toml").read_bytes() == before
    verify_results(folder)
    # a different config in a folder with nothing to resume is fine
    shutil.rmtree(folder / "results.d")
    (folder / "results").unlink()
    with RunFolder.open(folder, changed) as run:
        assert load_config(run.config_path) == changed
