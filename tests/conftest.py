"""Test configuration: float64 everywhere, CPU, shared-data location."""

import os
from pathlib import Path

import pytest

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# the CLI commands run in-process here: keep them off the user's persistent JAX cache
os.environ.setdefault("PDMODEL_NO_CACHE", "1")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


# ----------------------------------------------------------------- one tiny fit per test run

TINY_FIT = [  # overrides (as `pdmodel fit --set`) of the tiny fit the tests share
    "map.starts=1", "map.adam_steps=2", "map.lbfgs_steps=1", "model.patients=4",
    "nuts.method=emulator", "nuts.chains=2", "nuts.warmup=30", "nuts.draws=30",
    "nuts.design_points=16", "output.weeks=2",
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
