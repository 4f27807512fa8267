"""Start-up of the library and the command line (issue 16: answers in seconds).

``import pdmodel`` imports its names on first use (lazy_loader), and a prediction needs
neither the fitting stack nor xarray/pandas/diffrax; the console entry point ends without
Python's module teardown but keeps exit codes, messages and output. Each case runs in a
fresh interpreter (a subprocess), since the test process has imported everything already.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("jax", "xarray", "pandas", "diffrax", "numpyro", "arviz", "optax", "pandera",
         "matplotlib")


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, env=os.environ | {"PYTHONWARNINGS": "ignore"})


def _loaded(code: str) -> set[str]:
    """Heavy libraries ``code`` executed (a lazily loaded module sits in ``sys.modules``
    unexecuted: its submodules show that it ran)."""
    proc = _python(code + "\nimport sys\nprint(sorted({n.split('.')[0] for n in sys.modules "
                   f"if '.' in n}} & set({HEAVY!r})))")
    assert proc.returncode == 0, proc.stderr[-2000:]
    return set(eval(proc.stdout.strip().splitlines()[-1]))  # noqa: S307 - our own list


def test_import_pdmodel_loads_nothing_heavy_until_used():
    names = "pdmodel.__version__, pdmodel.PdmodelError, pdmodel.AGENTS"
    assert _loaded(f"import pdmodel; {names}") == set()
    # a name resolves on first use, from the module that defines it
    assert _loaded("import pdmodel; pdmodel.load_fit") >= {"jax"}


def test_a_prediction_imports_only_what_it_runs():
    loaded = _loaded("from pdmodel.fit import Fit, load_fit")
    assert "jax" in loaded
    assert not loaded & {"xarray", "pandas", "diffrax", "numpyro", "arviz", "optax",
                         "pandera", "matplotlib"}, loaded


def test_console_entry_keeps_output_and_exit_codes():
    """The fast exit of ``main`` flushes all output first and keeps the exit code."""
    from typer.testing import CliRunner

    from pdmodel.cli import app

    cli = [sys.executable, "-m", "pdmodel.cli"]
    ok = subprocess.run(cli + ["agents"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert ok.stdout == CliRunner().invoke(app, ["agents"]).stdout and ok.stdout.count("\n") > 8
    bad = subprocess.run(cli + ["predict", "--regimen", "nivolumab 240 mg q2w", "--weeks", "-1"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "--weeks" in bad.stderr and bad.stdout == ""
