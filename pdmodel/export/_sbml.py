"""An :class:`~pdmodel.export._ir.ExportModel` as SBML Level 3 Version 2 (python-libsbml):
unit definitions for every quantity, SBO terms, notes and annotations naming each value's
source and the fit it came from; and libsbml's consistency check.

python-libsbml is an optional dependency (``pip install pdmodel[export]``), imported when a
file is written.
"""

from __future__ import annotations

import html
from importlib import import_module

from .._version import __version__
from ..errors import PdmodelError
from ._ir import BUILTIN_UNITS, SBO_CONTINUOUS, UNITS, ExportModel, Quantity

LEVEL, VERSION = 3, 2
ANNOTATION_NS = "urn:pdmodel:export:1"
"""XML namespace of pdmodel's own annotations (``<pdmodel:source>``, ``<pdmodel:provenance>``)."""


def _libsbml():
    try:
        return import_module("libsbml")
    except ImportError as err:  # pragma: no cover - depends on the installation
        raise PdmodelError("SBML export needs python-libsbml: pip install 'pdmodel[export]' "
                           "(or pip install python-libsbml)") from err


def _check(code: int, what: str) -> None:
    if code != 0:  # libsbml.LIBSBML_OPERATION_SUCCESS
        raise AssertionError(f"libsbml failed to set {what} (code {code})")


def _notes(*paragraphs: str) -> str:
    body = "".join(f"<p>{html.escape(p)}</p>" for p in paragraphs if p)
    return f'<body xmlns="http://www.w3.org/1999/xhtml">{body}</body>'


def _math(sbml, formula: str, where: str):
    node = sbml.parseL3Formula(formula)
    if node is None:
        raise AssertionError(f"cannot parse {where}: {formula!r}: {sbml.getLastParseL3Error()}")
    return node


def _add_units(sbml, model) -> None:
    for uid, (name, parts) in UNITS.items():
        if uid in BUILTIN_UNITS:
            continue
        ud = model.createUnitDefinition()
        _check(ud.setId(uid), f"unit {uid}")
        ud.setName(name)
        for kind, exp, scale, mult in parts:
            u = ud.createUnit()
            u.setKind(sbml.UnitKind_forName(kind))
            u.setExponent(exp)
            u.setScale(scale)
            u.setMultiplier(mult)


def _add_quantity(sbml, model, q: Quantity) -> None:
    p = model.createParameter()
    _check(p.setId(q.id), f"id {q.id}")
    p.setMetaId(f"meta_{q.id}")
    p.setName(q.description)
    p.setUnits(q.unit)
    p.setConstant(q.kind in ("constant", "initial"))
    _check(p.setSBOTerm(q.sbo), f"SBO term of {q.id}")
    if q.value is not None:
        p.setValue(q.value)
    notes = [q.description + f" [{UNITS[q.unit][0]}]"]
    if q.source:
        notes.append(f"Source: {q.source}")
        _check(p.appendAnnotation(
            f'<pdmodel:source xmlns:pdmodel="{ANNOTATION_NS}">{html.escape(q.source)}'
            "</pdmodel:source>"), f"annotation of {q.id}")
    _check(p.setNotes(_notes(*notes)), f"notes of {q.id}")
    if q.kind in ("initial", "state") and q.formula is not None:
        ia = model.createInitialAssignment()
        ia.setSymbol(q.id)
        ia.setMath(_math(sbml, q.formula, f"initial value of {q.id}"))
    if q.kind == "rule":
        r = model.createAssignmentRule()
        r.setVariable(q.id)
        r.setMath(_math(sbml, q.formula, f"rule of {q.id}"))
    if q.kind == "state":
        r = model.createRateRule()
        r.setVariable(q.id)
        r.setMath(_math(sbml, q.rate, f"rate of {q.id}"))


def to_sbml(doc: ExportModel) -> str:
    """SBML Level 3 Version 2 text of ``doc`` (time in days; no species or reactions: every
    state is a parameter with a rate rule, as in pharmacometric ODE exports)."""
    sbml = _libsbml()
    document = sbml.SBMLDocument(LEVEL, VERSION)
    model = document.createModel()
    _check(model.setId(doc.id), "model id")
    model.setMetaId(f"meta_{doc.id}")
    model.setName(doc.name)
    _check(model.setSBOTerm(SBO_CONTINUOUS), "model SBO term")
    _add_units(sbml, model)
    model.setTimeUnits("day")
    model.setExtentUnits("mg")
    model.setSubstanceUnits("mg")
    model.setVolumeUnits("litre")
    info = [f"{k}: {v}" for k, v in doc.provenance.items()]
    limits = [f"Not in this file: {x}" for x in doc.limitations]
    _check(model.setNotes(_notes(f"Exported by pdmodel {__version__}.", *info, *limits)),
           "model notes")
    fields = {"version": __version__} | {k.replace(" ", "_"): v
                                          for k, v in doc.provenance.items()}
    attrs = " ".join(f'{k}="{html.escape(v, quote=True)}"' for k, v in fields.items())
    _check(model.appendAnnotation(f'<pdmodel:provenance xmlns:pdmodel="{ANNOTATION_NS}" '
                                  f"{attrs}/>"), "model annotation")
    for q in doc.quantities:
        _add_quantity(sbml, model, q)
    for e in doc.events:
        ev = model.createEvent()
        _check(ev.setId(e.id), f"event {e.id}")
        ev.setUseValuesFromTriggerTime(True)
        ev.setNotes(_notes(e.description))
        trig = ev.createTrigger()
        trig.setInitialValue(False)
        trig.setPersistent(True)
        trig.setMath(_math(sbml, e.trigger, f"trigger of {e.id}"))
        for var, formula in e.assignments:
            ea = ev.createEventAssignment()
            ea.setVariable(var)
            ea.setMath(_math(sbml, formula, f"assignment to {var} in {e.id}"))
    return sbml.writeSBMLToString(document)


def consistency_errors(text: str) -> list[str]:
    """libsbml's errors (not warnings) for the SBML ``text``, one message each; ``[]`` = valid.

    Reading errors and every consistency check (identifiers, MathML, SBO, units, overdetermined
    model, ...) are included; unit-consistency *warnings* are not errors in SBML Level 3.
    """
    sbml = _libsbml()
    document = sbml.readSBMLFromString(text)
    document.checkConsistency()
    log = document.getErrorLog()
    out = []
    for i in range(log.getNumErrors()):
        err = log.getError(i)
        if err.getSeverity() >= sbml.LIBSBML_SEV_ERROR:
            out.append(f"line {err.getLine()}: {err.getMessage().strip()}")
    return out
