"""Test configuration: float64 everywhere, CPU, shared-data location."""

import os
import shutil
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# the CLI commands run in-process here: keep them off the user's persistent JAX cache
os.environ.setdefault("PDMODEL_NO_CACHE", "1")
# and never hand a command to a `pdmodel serve` the user may be running
os.environ.setdefault("PDMODEL_SERVER", "off")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

SESSION_CACHE_ENV = "PDMODEL_TEST_SESSION_CACHE"
"""Set (by the first pytest process) to the folder of this test run's own JAX compilation
cache; the xdist workers and the notebook kernels inherit it."""


def pytest_configure(config):
    """One persistent JAX compilation cache per test run, in a fresh temporary folder shared
    by the xdist workers and the notebook kernels (never the user's cache, removed at the end):
    a program compiled by one test (the tiny fit, a notebook, a solver) is loaded, not
    compiled again, by the next test that builds the same program. Compile counters count
    cache loads too (tests/test_scale.py). ``PDMODEL_TEST_CACHE=0`` switches it off."""
    if os.environ.get(SESSION_CACHE_ENV) or os.environ.get("PDMODEL_TEST_CACHE") == "0":
        if os.environ.get(SESSION_CACHE_ENV):  # a worker: the folder of the first process
            jax.config.update("jax_compilation_cache_dir", os.environ[SESSION_CACHE_ENV])
        return
    path = tempfile.mkdtemp(prefix="pdmodel-test-jax-cache-")
    os.environ[SESSION_CACHE_ENV] = os.environ["JAX_COMPILATION_CACHE_DIR"] = path
    jax.config.update("jax_compilation_cache_dir", path)
    config.pdmodel_session_cache = path


def pytest_unconfigure(config):
    path = getattr(config, "pdmodel_session_cache", None)
    if path:
        shutil.rmtree(path, ignore_errors=True)

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


# ----------------------------------------------------------------- one tiny fit per test run

TINY_FIT = [  # overrides (as `pdmodel fit --set`) of the tiny fit the tests share
    "map.starts=1", "map.adam_steps=2", "map.lbfgs_steps=1", "model.patients=4",
    "nuts.method=emulator", "nuts.chains=2", "nuts.warmup=15", "nuts.draws=15",
    "nuts.design_points=16", "nuts.max_tree_depth=3", "nuts.refine_rounds=0", "output.weeks=2",
    "model.arms=natural",
    'output.curves_regimens=["nivolumab 240 mg q2w"]',
    'model.fixed=["susceptibility", "k_rep", "log_gap2", "log_gap3", "background", '
    '"agent_effect", "w_ab", "w_pd", "w_ctla4"]',
]
"""The tiny refit of notebooks/02_calibration.ipynb (its TINY list): the fit smoke test and the
notebook analyse the same run, made once per test session."""


@pytest.fixture(scope="session")
def tiny_fit(tmp_path_factory) -> Path:
    """Run folder of ``pdmodel fit fits/default.toml`` with :data:`TINY_FIT`, made once per test
    session and shared by the xdist workers (a file lock in the session's base folder)."""
    from filelock import FileLock
    from typer.testing import CliRunner

    from pdmodel.cli import app

    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # the session's folder, shared by every worker of this run
    run = base / "tiny_fit" / "run"
    with FileLock(str(base / "tiny_fit.lock")):
        if not (run / "results" / "diagnostics.json").is_file():
            args = ["fit", "fits/default.toml", "--no-progress", "--set", f"output.folder={run}"]
            for item in TINY_FIT:
                args += ["--set", item]
            res = CliRunner().invoke(app, args)
            assert res.exit_code == 0, res.output
    return run
