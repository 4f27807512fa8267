"""The package's layering, read from its imports with ``ast`` (docs/architecture.md).

Layers, lowest first: ``vocab``/``errors``/``numerics``/``_version`` → ``io`` → ``regimen`` →
``pk`` → ``irae`` → ``data`` → ``fit`` → ``saving`` → ``cli``. A module may import its own layer
and lower ones only; another subpackage only through its public ``__init__``; the bundled-data
loaders only from ``fit`` and ``cli``; and no library module imports pdmodel inside a function
(the command line may, to start fast).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "pdmodel"

LAYERS: dict[str, int] = {
    "vocab": 0, "errors": 0, "numerics": 0, "_version": 0,
    "io": 1, "distributed": 1, "regimen": 2, "pk": 3, "irae": 4, "data": 5, "fit": 6,
    "saving": 7, "dosing_design": 7, "export": 7, "cli": 8,
}
"""Rank of each top-level module or subpackage of pdmodel."""

BUNDLED_LOADERS = {"load_incidence", "load_timing", "load_management",
                   "bundled_incidence_as_schema"}
"""Functions that read the bundled tables: for the fit pipeline and the command line only."""

LAZY_IMPORTS_ALLOWED = {"cli"}
"""Units whose functions may import pdmodel lazily (command start-up time)."""


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _resolve(path: Path, level: int, module: str | None) -> str:
    """Absolute module named by ``from <level dots><module> import`` in ``path``."""
    if level == 0:
        return module or ""
    name = _module_name(path).split(".")
    package = name if path.name == "__init__.py" else name[:-1]
    base = package[: len(package) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def _unit(module: str) -> str | None:
    """The layer unit of ``pdmodel.x.y`` (``x``), or None for ``pdmodel`` itself."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


class Import:
    def __init__(self, source: Path, target: str, names: list[str], line: int, nested: bool):
        self.source, self.target, self.names, self.line, self.nested = (
            source, target, names, line, nested)

    def __str__(self) -> str:
        return f"{self.source.relative_to(PACKAGE.parent)}:{self.line} imports {self.target}"


def _imports(path: Path) -> list[Import]:
    """pdmodel imports of ``path``; a package's ``__init__.pyi`` (the names its ``__init__``
    imports on first use, lazy_loader) counts as module-level imports of its ``__init__``."""
    stub = path.with_suffix(".pyi")
    text = path.read_text() + ("\n" + stub.read_text() if stub.is_file() else "")
    tree = ast.parse(text, filename=str(path))
    out = []

    def visit(node, nested):
        for child in ast.iter_child_nodes(node):
            inner = nested or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            if isinstance(child, ast.ImportFrom):
                target = _resolve(path, child.level, child.module)
                if target == "pdmodel" or target.startswith("pdmodel."):
                    names = [a.name for a in child.names]
                    # `from . import x` names submodules or attributes of the package
                    out.append(Import(path, target, names, child.lineno, inner))
            elif isinstance(child, ast.Import):
                for a in child.names:
                    if a.name == "pdmodel" or a.name.startswith("pdmodel."):
                        out.append(Import(path, a.name, [], child.lineno, inner))
            visit(child, inner)

    visit(tree, False)
    return out


MODULES = sorted(p for p in PACKAGE.rglob("*.py"))
IMPORTS = [imp for p in MODULES for imp in _imports(p)]


def test_every_unit_has_a_layer():
    units = {_unit(_module_name(p)) for p in MODULES} - {None}
    assert units <= set(LAYERS), f"unranked units: {sorted(units - set(LAYERS))}"


def test_lower_layers_never_import_higher_ones():
    bad = []
    for imp in IMPORTS:
        src, dst = _unit(_module_name(imp.source)), _unit(imp.target)
        if src is None:
            continue  # pdmodel/__init__.py gathers the public API from every layer
        if dst is None:
            bad.append(f"{imp} (the top-level package: import the defining module)")
        elif LAYERS[dst] > LAYERS[src]:
            bad.append(f"{imp} ({src} is layer {LAYERS[src]}, {dst} is {LAYERS[dst]})")
    assert not bad, "\n".join(bad)


def test_the_library_never_imports_the_cli():
    bad = [str(i) for i in IMPORTS
           if _unit(i.target) == "cli" and _unit(_module_name(i.source)) != "cli"]
    assert not bad, "\n".join(bad)


def test_other_subpackages_only_through_their_public_surface():
    bad = []
    for imp in IMPORTS:
        src_mod = _module_name(imp.source)
        src, dst = _unit(src_mod), _unit(imp.target)
        if src is None or dst is None or src == dst:
            continue
        private = [p for p in imp.target.split(".")[2:] if p.startswith("_")]
        if private:
            bad.append(str(imp))
    assert not bad, "\n".join(bad)


def test_only_fit_and_cli_read_the_bundled_tables():
    bad = [f"{i}: {sorted(BUNDLED_LOADERS & set(i.names))}" for i in IMPORTS
           if BUNDLED_LOADERS & set(i.names)
           and _unit(_module_name(i.source)) not in {"fit", "cli", "data", None}]
    assert not bad, "\n".join(bad)


def test_no_function_level_imports_in_the_library():
    bad = [str(i) for i in IMPORTS
           if i.nested and _unit(_module_name(i.source)) not in LAZY_IMPORTS_ALLOWED]
    assert not bad, "\n".join(bad)


def test_no_import_cycles_between_modules():
    """Module-level imports form a DAG (package ``__init__`` files count as modules)."""
    names = {_module_name(p) for p in MODULES}
    graph: dict[str, set[str]] = {n: set() for n in names}
    for imp in IMPORTS:
        if imp.nested:
            continue
        src = _module_name(imp.source)
        targets = {imp.target} | {f"{imp.target}.{n}" for n in imp.names}
        graph[src] |= {t for t in targets if t in names and t != src}
        # importing a.b.c runs the __init__ of a.b first
        parts = imp.target.split(".")
        graph[src] |= {".".join(parts[:k]) for k in range(2, len(parts))} & names - {src}
    state: dict[str, int] = {}

    def visit(n, stack):
        state[n] = 1
        for m in sorted(graph[n]):
            if state.get(m) == 1:
                cycle = stack[stack.index(m):] + [m]
                if not _is_package_of(m, n):
                    pytest.fail("import cycle: " + " -> ".join(cycle))
            elif m not in state:
                visit(m, stack + [m])
        state[n] = 2

    for n in sorted(graph):
        if n not in state:
            visit(n, [n])


def _is_package_of(package: str, module: str) -> bool:
    """A module importing a sibling through its own package's ``__init__`` is not a cycle
    we can avoid (``from . import x``); only real module-to-module cycles count."""
    return module.startswith(package + ".")
