"""An :class:`~pdmodel.export._ir.ExportModel` as Antimony text (readable; Tellurium, the
``antimony`` library and libRoadRunner load it)."""

from __future__ import annotations

from ._ir import BUILTIN_UNITS, UNITS, ExportModel


def _comment(text: str) -> str:
    return " ".join(text.split())


def to_antimony(doc: ExportModel) -> str:
    """Antimony text of ``doc``: units, parameters (with ``// unit; source`` comments),
    assignment and rate rules, initial assignments and events."""
    lines = [f"// {doc.name}"]
    lines += [f"// {k}: {_comment(v)}" for k, v in doc.provenance.items()]
    lines += ["// not in this file:"] + [f"//   - {_comment(x)}" for x in doc.limitations]
    lines.append(f"model {doc.id}()")
    lines.append("  // units")
    for uid, (_, parts) in UNITS.items():
        if uid in BUILTIN_UNITS:
            continue
        terms = []
        for kind, exp, scale, mult in parts:
            factor = mult * 10.0**scale
            base = kind if exp == 1 else f"{kind}^{exp:g}"
            terms.append(base if factor == 1 else f"{factor:g} {base}")
        lines.append(f"  unit {uid} = {' * '.join(terms)}")
    lines.append("  // quantities")
    for q in doc.quantities:
        note = f"  // {UNITS[q.unit][0]}; {_comment(q.description)}"
        if q.source:
            note += f"; source: {_comment(q.source)}"
        if q.kind in ("constant", "variable"):
            decl = "var " if q.kind == "variable" else ""
            lines.append(f"  {decl}{q.id} = {q.value!r}{note}")
        elif q.kind == "initial":
            lines.append(f"  {q.id} = {q.formula}{note}")
        elif q.kind == "rule":
            lines.append(f"  {q.id} := {q.formula}{note}")
        else:  # state
            init = repr(q.value) if q.value is not None else q.formula
            lines.append(f"  var {q.id} = {init}{note}")
            lines.append(f"  {q.id}' = {q.rate}")
        lines.append(f"  {q.id} has {q.unit}")
    lines.append("  // events (persistent, values from the trigger time, false before t = 0)")
    for e in doc.events:
        acts = ", ".join(f"{v} = {f}" for v, f in e.assignments)
        lines.append(f"  // {_comment(e.description)}")
        lines.append(f"  {e.id}: at ({e.trigger}), t0 = false, persistent = true: {acts}")
    lines.append("end")
    return "\n".join(lines) + "\n"
