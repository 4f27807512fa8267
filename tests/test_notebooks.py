"""Execute every example notebook in ``notebooks/`` with small settings.

Each ``notebooks/*.ipynb`` is one test (new notebooks are picked up automatically). The kernel
runs with ``PDMODEL_NOTEBOOK_SMALL=1`` (tiny populations and short runs, read by each
notebook's "parameters" cell) and ``JAX_PLATFORMS=cpu``, in ``notebooks/`` as the working
directory; any cell error fails the test. Notebooks are stored without outputs.
"""

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_stored_clean(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), (
        f"{path.name} is stored with outputs; clear them before committing"
    )
    tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and "PDMODEL_NOTEBOOK_SMALL" in tagged[0].source, (
        f"{path.name} needs one cell tagged 'parameters' that reads PDMODEL_NOTEBOOK_SMALL"
    )


def test_notebook_02_tiny_refit_is_the_shared_tiny_fit():
    """The tiny fit the suite makes once (tests/conftest.py) is notebook 02's own tiny refit."""
    import ast

    from tests.conftest import TINY_FIT

    nb = nbformat.read(NOTEBOOK_DIR / "02_calibration.ipynb", as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    tiny = next(node.value for node in ast.parse(cell.source).body
                if isinstance(node, ast.Assign) and node.targets[0].id == "TINY")
    assert ast.literal_eval(tiny) == TINY_FIT


# notebook 02 analyses the suite's tiny fit: it runs on the xdist worker that makes that fit
# (`--dist loadgroup`, Makefile), so no other worker waits for it; notebook 04 compiles a
# forward-mode NUTS program and a design search (~3.5 min on 2 cores): marked slow, .ci/run
# runs it after the default suite
SLOW_NOTEBOOKS = ("04",)
EXECUTED = [pytest.param(p, id=p.stem, marks=pytest.mark.xdist_group("tiny_fit"))
            if p.stem.startswith("02")
            else pytest.param(p, id=p.stem, marks=pytest.mark.slow)
            if p.stem.startswith(SLOW_NOTEBOOKS) else pytest.param(p, id=p.stem)
            for p in NOTEBOOKS]


@pytest.mark.parametrize("path", EXECUTED)
def test_notebook_executes(path, monkeypatch, request):
    monkeypatch.setenv("PDMODEL_NOTEBOOK_SMALL", "1")
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    if path.stem.startswith("02"):  # analyse the suite's tiny fit instead of refitting
        monkeypatch.setenv("PDMODEL_NOTEBOOK_FIT", str(request.getfixturevalue("tiny_fit")))
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb,
        kernel_name="python3",
        timeout=900,
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute()  # raises CellExecutionError on the first failing cell
    errors = [
        o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"
    ]
    assert not errors, f"{path.name}: {[(e.ename, e.evalue) for e in errors]}"
