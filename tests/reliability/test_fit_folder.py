"""Reliability of fit folders: a corpus of damaged copies of ``fits/reference``.

Table-driven like the corrupted-CSV corpus (tests/data/corpus): each case damages a fresh copy
of the reference fit in one way (a flipped bit, a truncated, missing or added file, an edited
config, a missing or corrupt manifest, a broken ``results`` link, ...) and asserts what
``load_fit`` does: the exception type and that the message names the file; a few cases must
load (a run holding the lock, an interrupted publish, a hidden file). A few go through the
command line (``predict --fit``, ``report``, ``export --fit``): exit 3 and ``error:`` naming
the file. Two layouts are damaged: ``flat`` (``results/`` a real folder with its manifest, as
committed) and ``linked`` (``results`` a link into ``results.d/``, as a publish writes it).
No fit is run: the copies are made once per module and copied again per case.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import warnings
from pathlib import Path

import pytest
from typer.testing import CliRunner

import pdmodel as pdm
from pdmodel.cli import app
from pdmodel.errors import EXIT_RUNTIME, FitLoadError, ResultsIntegrityError
from pdmodel.fit import RunFolder
from pdmodel.fit._run_folder import MANIFEST, read_manifest, verify_results

REFERENCE = Path(__file__).resolve().parents[2] / "fits" / "reference"
POSTERIOR_BYTES = (REFERENCE / "results" / "posterior.nc").stat().st_size
NIVO = "nivolumab 240 mg q2w"


@pytest.fixture(scope="module")
def bases(tmp_path_factory) -> dict[str, Path]:
    """Clean copies of the reference fit in both layouts."""
    root = tmp_path_factory.mktemp("fit-bases")
    flat = root / "flat"
    shutil.copytree(REFERENCE, flat, ignore=shutil.ignore_patterns("validation"))
    linked = root / "linked"
    shutil.copytree(flat, linked)
    listed = read_manifest(linked / "results").files
    RunFolder(linked).publish({n: (linked / "results" / n).read_bytes() for n in listed})
    assert os.readlink(linked / "results") == "results.d/000002"
    return {"flat": flat, "linked": linked}


@pytest.fixture
def fit_copy(bases, tmp_path):
    def make(layout: str) -> Path:
        dst = tmp_path / "fit"
        shutil.copytree(bases[layout], dst, symlinks=True)
        return dst

    return make


# --------------------------------------------------------------------------- damage


def flip_bit(rel: str, where: float = 0.5):
    """Flip the lowest bit of the byte at fraction ``where`` of ``results/rel``."""
    def damage(run: Path):
        f = run / "results" / rel
        data = bytearray(f.read_bytes())
        i = int(len(data) * where)
        data[i] ^= 0x01
        f.write_bytes(bytes(data))
    return damage


def truncate(rel: str, keep: float = 0.5):
    def damage(run: Path):
        f = run / "results" / rel
        f.write_bytes(f.read_bytes()[: int(f.stat().st_size * keep)])
    return damage


def remove(rel: str):
    def damage(run: Path):
        (run / rel).unlink()
    return damage


def add(rel: str, content: bytes = b"x,y\n1,2\n"):
    def damage(run: Path):
        (run / rel).parent.mkdir(parents=True, exist_ok=True)
        (run / rel).write_bytes(content)
    return damage


def edit_text(rel: str, old: str, new: str):
    def damage(run: Path):
        f = run / rel
        text = f.read_text()
        assert old in text, (rel, old)
        f.write_text(text.replace(old, new, 1))
    return damage


def edit_manifest(change):
    """Apply ``change(dict)`` to the JSON of ``results/MANIFEST.json``."""
    def damage(run: Path):
        f = run / "results" / MANIFEST
        data = json.loads(f.read_text())
        change(data)
        f.write_text(json.dumps(data, indent=2))
    return damage


def results_link_to_nothing(run: Path):
    shutil.rmtree(run / "results.d")


def results_a_file(run: Path):
    res = run / "results"
    if res.is_symlink():
        res.unlink()
    else:
        shutil.rmtree(res)
    res.write_text("not a folder\n")


def results_missing(run: Path):
    res = run / "results"
    if res.is_symlink():
        res.unlink()
        shutil.rmtree(run / "results.d")
    else:
        shutil.rmtree(res)


def only_empty_folder(run: Path):
    for p in run.iterdir():
        shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()


def link_removed_mid_publish(run: Path):
    """Killed between moving a real results/ aside and linking the new version."""
    (run / "results").unlink()


def lock_held(run: Path):
    run_folder = RunFolder(run)
    run_folder.acquire()  # a live run in the folder (this process): readers are not blocked
    return run_folder


def interrupted_publish(run: Path):
    """A publish killed while writing the new version, and before flipping the link."""
    part = run / "results.d" / ".tmp-dead"
    part.mkdir(parents=True)
    (part / "posterior.nc").write_bytes(b"half a post")
    (run / ".results.new-dead").symlink_to("results.d/999999")


def swap_in_other_valid_posterior(run: Path):
    """posterior.nc replaced by garbage whose hash the manifest was updated to (a
    consistent folder that still is not a fit)."""
    f = run / "results" / "posterior.nc"
    f.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 100)
    from pdmodel.fit._run_folder import write_manifest

    write_manifest(run / "results", run / "config.toml")


def _set(keys: tuple[str, ...], value):
    def change(data):
        node = data
        for k in keys[:-1]:
            node = node[k]
        node[keys[-1]] = value
    return change


def _drop(keys: tuple[str, ...]):
    def change(data):
        node = data
        for k in keys[:-1]:
            node = node[k]
        del node[keys[-1]]
    return change


# (layout, damage, error type or "ok"/"warns", pattern the message must match: names the file)
CASES = [
    pytest.param("flat", flip_bit("posterior.nc"), ResultsIntegrityError,
                 r"results/posterior\.nc does not match its SHA-256 in .*MANIFEST\.json",
                 id="posterior-one-bit-flipped"),
    pytest.param("linked", flip_bit("posterior.nc", 0.9), ResultsIntegrityError,
                 r"results/posterior\.nc does not match its SHA-256", id="linked-posterior-bit"),
    pytest.param("flat", flip_bit("posterior.nc", 0.0), ResultsIntegrityError,
                 r"results/posterior\.nc does not match", id="posterior-header-bit"),
    pytest.param("flat", truncate("posterior.nc"), ResultsIntegrityError,
                 rf"results/posterior\.nc has {POSTERIOR_BYTES // 2} bytes, .*MANIFEST\.json "
                 rf"lists {POSTERIOR_BYTES} \(truncated", id="posterior-truncated"),
    pytest.param("linked", truncate("posterior.nc", 0.0), ResultsIntegrityError,
                 r"results/posterior\.nc has 0 bytes", id="posterior-emptied"),
    pytest.param("flat", remove("results/posterior.nc"), ResultsIntegrityError,
                 r"results/posterior\.nc is missing \(listed in .*MANIFEST\.json\)",
                 id="posterior-missing"),
    pytest.param("linked", remove("results/plots/ppc.png"), ResultsIntegrityError,
                 r"results/plots/ppc\.png is missing", id="plot-missing"),
    pytest.param("flat", edit_text("results/curves.csv", "0.", "1.", ), ResultsIntegrityError,
                 r"results/curves\.csv does not match its SHA-256", id="curves-value-edited"),
    pytest.param("flat", flip_bit("report.html"), ResultsIntegrityError,
                 r"results/report\.html does not match", id="report-bit-flipped"),
    pytest.param("flat", add("results/notes.csv"), ResultsIntegrityError,
                 r"results/notes\.csv is not listed in .*MANIFEST\.json", id="extra-file"),
    pytest.param("linked", add("results/plots/extra.png", b"\x89PNG"), ResultsIntegrityError,
                 r"results/plots/extra\.png is not listed", id="extra-file-in-subfolder"),
    pytest.param("flat", edit_text("config.toml", "patients = 32", "patients = 64"),
                 ResultsIntegrityError,
                 r"config\.toml was changed after the results were published \(its SHA-256 "
                 r"is not the one .*results/MANIFEST\.json records\)", id="config-edited"),
    pytest.param("linked", edit_text("config.toml", "# resolved", "# my notes\n# resolved"),
                 ResultsIntegrityError, r"config\.toml was changed after the results were",
                 id="config-comment"),
    pytest.param("flat", remove("config.toml"), FitLoadError,
                 r"is not a fit: config\.toml missing", id="config-missing"),
    pytest.param("linked", remove(f"results/{MANIFEST}"), ResultsIntegrityError,
                 r"results/MANIFEST\.json is missing: the published results cannot be "
                 r"verified", id="manifest-missing-linked"),
    pytest.param("flat", remove(f"results/{MANIFEST}"), "warns",
                 r"results has no MANIFEST\.json .*pdmodel report", id="manifest-missing-flat"),
    pytest.param("flat", truncate(MANIFEST, 0.5), ResultsIntegrityError,
                 r"MANIFEST\.json is not valid JSON \(.* at line \d+ column \d+",
                 id="manifest-truncated"),
    pytest.param("linked", add(f"results/{MANIFEST}", b"\xff\xfe\x00garbage"),
                 ResultsIntegrityError, r"results/MANIFEST\.json is not UTF-8 text",
                 id="manifest-binary"),
    pytest.param("flat", add(f"results/{MANIFEST}", b"[1, 2, 3]"), ResultsIntegrityError,
                 r"MANIFEST\.json is not a valid results manifest", id="manifest-wrong-json"),
    pytest.param("flat", edit_manifest(_set(("files", "posterior.nc", "sha256"), "abc")),
                 ResultsIntegrityError,
                 r"MANIFEST\.json is not a valid results manifest \(files\.posterior\.nc\."
                 r"sha256: String should match pattern", id="manifest-bad-hash"),
    pytest.param("flat", edit_manifest(_set(("files", "posterior.nc", "size"), -1)),
                 ResultsIntegrityError, r"files\.posterior\.nc\.size", id="manifest-bad-size"),
    pytest.param("flat", edit_manifest(_set(("files", "../config.toml"),
                                            {"sha256": "0" * 64, "size": 1})),
                 ResultsIntegrityError, r"'\.\./config\.toml' is not a file name inside",
                 id="manifest-path-escapes"),
    pytest.param("flat", edit_manifest(_set(("format_version",), 2)), ResultsIntegrityError,
                 r"MANIFEST\.json has format_version 2, written by a newer pdmodel",
                 id="manifest-newer-format"),
    pytest.param("flat", edit_manifest(_drop(("files", "posterior.nc"))), ResultsIntegrityError,
                 r"results/posterior\.nc is not listed in .*MANIFEST\.json",
                 id="manifest-entry-dropped"),
    pytest.param("linked", edit_manifest(_set(("run_files", "config.toml", "sha256"), "0" * 64)),
                 ResultsIntegrityError, r"config\.toml was changed after the results were",
                 id="manifest-config-hash-wrong"),
    pytest.param("linked", results_link_to_nothing, ResultsIntegrityError,
                 r"results is a link to results\.d/000002, which does not exist",
                 id="results-link-dangling"),
    pytest.param("flat", results_a_file, ResultsIntegrityError, r"results is not a folder",
                 id="results-a-file"),
    pytest.param("linked", results_a_file, ResultsIntegrityError, r"results is not a folder",
                 id="linked-results-a-file"),
    pytest.param("flat", results_missing, FitLoadError,
                 r"is not a fit: results/ missing", id="results-missing"),
    pytest.param("flat", only_empty_folder, FitLoadError, r"is not a fit: config\.toml missing",
                 id="empty-folder"),
    pytest.param("flat", swap_in_other_valid_posterior, FitLoadError,
                 r"cannot read .*posterior\.nc as a pdmodel posterior",
                 id="posterior-garbage-consistent-manifest"),
    pytest.param("linked", lock_held, "ok", "", id="lock-held-by-a-run"),
    pytest.param("linked", interrupted_publish, "ok", "", id="interrupted-publish-leftovers"),
    pytest.param("linked", link_removed_mid_publish, "ok", "", id="link-missing-mid-publish"),
    pytest.param("flat", add("results/.DS_Store", b"\x00\x00"), "ok", "",
                 id="hidden-file-ignored"),
]


def test_corpus_is_large_enough():
    errors = [c for c in CASES if c.values[2] not in ("ok", "warns")]
    assert len(errors) >= 20 and len(CASES) >= 30


@pytest.mark.parametrize(("layout", "damage", "expected", "pattern"), CASES)
def test_damaged_fit_folder(fit_copy, layout, damage, expected, pattern):
    run = fit_copy(layout)
    keep = damage(run)  # noqa: F841 - e.g. a lock held while loading
    if expected == "ok":
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            fit = pdm.load_fit(run)
        assert fit.draws.shape[1] == fit.spec.size
        return
    if expected == "warns":
        with pytest.warns(UserWarning, match=pattern):
            fit = pdm.load_fit(run)
        assert fit.draws.shape[1] == fit.spec.size
        return
    with pytest.raises(expected) as err:
        pdm.load_fit(run)
    assert type(err.value) is expected, type(err.value)
    assert re.search(pattern, str(err.value)), str(err.value)
    assert str(run) in str(err.value)  # the full path, not only the file name


def test_nonexistent_or_file_path_is_not_a_fit(tmp_path):
    for path in (tmp_path / "nowhere", tmp_path / "file.txt"):
        if path.name == "file.txt":
            path.write_text("x")
        with pytest.raises(FitLoadError, match=r"is not a fit: config\.toml missing"):
            pdm.load_fit(path)


def test_a_bit_flip_would_change_predictions(fit_copy):
    """The issue's example: one flipped bit in the stored draws (the top mantissa bit of the
    first g_pd1 draw) loads silently with other values when nothing checks; load_fit refuses."""
    import h5py
    import xarray as xr

    from pdmodel.fit._run_folder import write_manifest

    run = fit_copy("flat")
    post = run / "results" / "posterior.nc"
    # the file stored without compression (fits store it compressed), so that one bit of a
    # draw is one bit of the file; published again with its manifest
    tree = xr.open_datatree(post, engine="h5netcdf").load()
    tree.close()
    tree.map_over_datasets(lambda ds: ds.drop_encoding()).to_netcdf(run / "plain.nc",
                                                                     engine="h5netcdf")
    os.replace(run / "plain.nc", post)
    write_manifest(run / "results", run / "config.toml")
    good = pdm.load_fit(run).draws
    with h5py.File(post, "r") as f:
        offset = f["posterior"]["g_pd1"].id.get_offset()  # contiguous float64 data
    data = bytearray(post.read_bytes())
    data[offset + 6] ^= 0x08  # bit 51 of the first value (little-endian)
    post.write_bytes(bytes(data))
    with pytest.raises(ResultsIntegrityError, match=r"results/posterior\.nc does not match"):
        pdm.load_fit(run)
    (run / "results" / MANIFEST).unlink()  # as before manifests: nothing notices
    with pytest.warns(UserWarning, match="not verified"):
        bad = pdm.load_fit(run).draws
    assert (good != bad).sum() == 1


# --------------------------------------------------------------------------- command line

runner = CliRunner()

CLI_CASES = [
    pytest.param(["predict", "--regimen", NIVO, "--fit", "{run}", "--weeks", "4"], "linked",
                 flip_bit("posterior.nc"), r"results/posterior\.nc does not match",
                 id="predict-posterior-bit"),
    pytest.param(["predict", "--regimen", NIVO, "--fit", "{run}"], "flat",
                 edit_text("config.toml", "patients = 32", "patients = 64"),
                 r"config\.toml was changed after the results were published",
                 id="predict-config-edited"),
    pytest.param(["predict", "--regimen", NIVO, "--fit", "{run}"], "linked",
                 remove(f"results/{MANIFEST}"), r"results/MANIFEST\.json is missing",
                 id="predict-manifest-missing"),
    pytest.param(["predict", "--regimen", NIVO, "--fit", "{run}"], "linked",
                 results_link_to_nothing, r"results is a link to results\.d/000002",
                 id="predict-dangling-link"),
    pytest.param(["report", "{run}", "--no-progress"], "flat", add("results/notes.csv"),
                 r"results/notes\.csv is not listed", id="report-extra-file"),
    pytest.param(["report", "{run}", "--no-progress"], "linked", truncate("curves.csv"),
                 r"results/curves\.csv has \d+ bytes", id="report-curves-truncated"),
    pytest.param(["report", "{run}", "--no-progress"], "flat", results_missing,
                 r"is not a fit: results/ missing", id="report-not-a-fit"),
    pytest.param(["export", "sbml", "--regimen", NIVO, "-o", "{run}/model.xml", "--fit",
                  "{run}"], "flat", flip_bit("posterior.nc"),
                 r"results/posterior\.nc does not match", id="export-posterior-bit"),
]


@pytest.mark.parametrize(("args", "layout", "damage", "pattern"), CLI_CASES)
def test_damaged_fit_folder_on_the_command_line(fit_copy, args, layout, damage, pattern):
    run = fit_copy(layout)
    damage(run)
    res = runner.invoke(app, [a.replace("{run}", str(run)) for a in args])
    assert res.exit_code == EXIT_RUNTIME, res.output
    assert re.search(rf"^error: .*{pattern}", res.stderr, re.M), res.stderr
    assert "Traceback" not in res.output and res.stdout == ""


def test_report_gives_an_old_fit_folder_a_manifest(fit_copy):
    """``pdmodel report`` on results published before manifests: a warning, then the
    results are published again (versioned, with a manifest) and verify."""
    run = fit_copy("flat")
    (run / "results" / MANIFEST).unlink()
    res = runner.invoke(app, ["report", str(run), "--no-progress"])
    assert res.exit_code == 0, res.output
    assert re.search(r"^warning: .*results has no MANIFEST\.json", res.stderr, re.M), res.stderr
    assert os.readlink(run / "results") == "results.d/000002"
    published = verify_results(run)
    assert published.manifest is not None and "posterior.nc" in published.manifest.files
    assert (run / "results.d" / "000001" / "posterior.nc").is_file()  # the previous version
