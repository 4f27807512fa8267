"""The public API: every name documented (numpydoc, units, runnable examples) and in docs/api.md.

The examples in the docstrings of every name in ``pdmodel.__all__`` (and of their methods) run
here as doctests, in float64 (tests/conftest.py), each in a fresh namespace: examples import
what they use.
"""

import dataclasses
import doctest
import inspect
import re
from pathlib import Path

import pytest

import pdmodel as pdm

ROOT = Path(__file__).resolve().parents[1]
API_DOC = ROOT / "docs" / "api.md"

PUBLIC = {name: getattr(pdm, name) for name in pdm.__all__}
DOCUMENTED = {n: o for n, o in PUBLIC.items() if inspect.isclass(o) or callable(o)}
CONSTANTS = sorted(set(PUBLIC) - set(DOCUMENTED))
EXCEPTIONS = {n for n, o in DOCUMENTED.items() if inspect.isclass(o)
              and issubclass(o, BaseException)}
CLASSES = {n for n, o in DOCUMENTED.items() if inspect.isclass(o)} - EXCEPTIONS
FUNCTIONS = set(DOCUMENTED) - CLASSES - EXCEPTIONS


def sections(doc: str) -> dict[str, list[str]]:
    """numpydoc sections of ``doc``: ``{title: body lines}``; the summary is under ``""``."""
    lines = inspect.cleandoc(doc).splitlines()
    out: dict[str, list[str]] = {"": []}
    title = ""
    i = 0
    while i < len(lines):
        if i + 1 < len(lines) and lines[i].strip() and set(lines[i + 1].strip()) == {"-"} \
                and len(lines[i + 1].strip()) == len(lines[i].strip()):
            title = lines[i].strip()
            out[title] = []
            i += 2
            continue
        out[title].append(lines[i])
        i += 1
    return out


def documented_names(body: list[str]) -> set[str]:
    """Names of the entries of a Parameters/Attributes section (``a, b : type`` lines)."""
    names: set[str] = set()
    for line in body:
        if line and not line[0].isspace():
            head = line.split(" : ")[0] if " : " in line else line
            names |= {n.strip().lstrip("*") for n in head.split(",")}
    return names


def parameters(obj) -> list[str]:
    sig = inspect.signature(obj)
    return [p.name for p in sig.parameters.values() if p.name not in ("self", "cls")]


def fields(cls) -> list[str]:
    if dataclasses.is_dataclass(cls):
        return [f.name for f in dataclasses.fields(cls) if f.init]
    return list(getattr(cls, "_fields", ()))


@pytest.mark.parametrize("name", sorted(DOCUMENTED))
def test_numpydoc_sections(name):
    obj = DOCUMENTED[name]
    doc = obj.__doc__
    assert doc and doc.strip(), f"{name} has no docstring"
    sec = sections(doc)
    summary = [line for line in sec[""] if line.strip()]
    assert summary, f"{name}: no summary line"
    assert "Examples" in sec and any(">>>" in line for line in sec["Examples"]), \
        f"{name}: no Examples section with a runnable example"
    if name in FUNCTIONS:
        params = parameters(obj)
        if params:
            assert "Parameters" in sec, f"{name}: no Parameters section"
            missing = set(params) - documented_names(sec["Parameters"])
            assert not missing, f"{name}: parameters {sorted(missing)} not documented"
        assert "Returns" in sec or "Yields" in sec, f"{name}: no Returns section"
    elif name in CLASSES:
        assert "Attributes" in sec or "Parameters" in sec, f"{name}: no Attributes section"
        body = sec.get("Attributes", []) + sec.get("Parameters", [])
        missing = set(fields(obj)) - documented_names(body)
        assert not missing, f"{name}: fields {sorted(missing)} not documented"


def test_irae_model_attributes_carry_their_units():
    body = sections(pdm.IraeModel.__doc__)["Attributes"]
    entries = {line.split(" : ")[0]: line for line in body if line and not line[0].isspace()}
    for name, info in pdm.PARAMETER_INFO.items():
        assert name in entries, name
        assert entries[name].endswith(f", {info.unit}"), (name, entries[name], info.unit)


def _doctests(name):
    obj = DOCUMENTED[name]
    finder = doctest.DocTestFinder(recurse=True, exclude_empty=True)
    tests = finder.find(obj, f"pdmodel.{name}", module=False, globs={"__name__": "__doctest__"})
    return [t for t in tests if t.examples]


@pytest.mark.parametrize("name", sorted(DOCUMENTED))
def test_docstring_examples_run(name):
    tests = _doctests(name)
    assert any(t.name == f"pdmodel.{name}" for t in tests), f"{name}: no doctest examples"
    runner = doctest.DocTestRunner(
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    report: list[str] = []
    for test in tests:
        runner.run(test, out=report.append)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, "".join(report)


def test_every_public_name_is_in_docs_api():
    text = API_DOC.read_text()
    for name in pdm.__all__:
        pattern = rf"^(#+ +`?{re.escape(name)}\b|[-*] +`{re.escape(name)}\b)"
        assert re.search(pattern, text, re.M), f"{name} has no entry in docs/api.md"


@pytest.mark.parametrize("name", CONSTANTS)
def test_constants_are_documented_with_their_values(name):
    """Constants cannot carry docstrings: docs/api.md describes each one."""
    text = API_DOC.read_text()
    match = re.search(rf"^#+ +`{re.escape(name)}`.*?\n(.*?)(?=^#)", text, re.M | re.S)
    assert match, f"{name}: no heading in docs/api.md"
    body = match.group(1)
    assert len(body.split()) >= 8, f"{name}: docs/api.md entry too short"
    value = PUBLIC[name]
    keys = list(value) if isinstance(value, dict | tuple) else []
    for key in keys[:3]:
        assert str(key) in body, f"{name}: docs/api.md does not show {key!r}"


def test_docs_api_lists_the_cli_commands():
    text = API_DOC.read_text()
    for command in ("pdmodel agents", "pdmodel simulate", "pdmodel fit", "pdmodel predict",
                    "pdmodel data check"):
        assert command in text, command


def test_all_is_complete_and_has_no_duplicates():
    assert len(pdm.__all__) == len(set(pdm.__all__))
    exported = {n for n in vars(pdm) if not n.startswith("_")
                and not inspect.ismodule(getattr(pdm, n))}
    assert exported <= set(pdm.__all__), sorted(exported - set(pdm.__all__))
