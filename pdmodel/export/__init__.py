"""Export of the model to other engines: SBML Level 3 (python-libsbml) and Antimony.

:func:`export_sbml` / :func:`export_antimony` write the whole model of one virtual patient on
a regimen (PK, occupancy, immune and injury states, running maximum, grade thresholds,
infusions and the rescue policy as events) with units and the source of every value;
:func:`export_model` returns it as plain data; :func:`consistency_errors` runs libsbml's check.
"""


import lazy_loader as _lazy

# names are imported on first use (``__init__.pyi`` lists them): ``import pdmodel`` starts fast
__getattr__, __dir__, _ = _lazy.attach_stub(__name__, __file__)

__all__ = [
    "export_sbml", "export_antimony", "export_model", "build_export_model", "ExportModel",
    "Quantity", "Event", "UNITS", "NEVER", "consistency_errors", "fit_parameters",
    "virtual_patient",
]
