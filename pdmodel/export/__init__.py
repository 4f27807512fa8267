"""Export of the model to other engines: SBML Level 3 (python-libsbml) and Antimony.

:func:`export_sbml` / :func:`export_antimony` write the whole model of one virtual patient on
a regimen (PK, occupancy, immune and injury states, running maximum, grade thresholds,
infusions and the rescue policy as events) with units and the source of every value;
:func:`export_model` returns it as plain data; :func:`consistency_errors` runs libsbml's check.
"""

from ._api import export_antimony as export_antimony
from ._api import export_model as export_model
from ._api import export_sbml as export_sbml
from ._ir import NEVER as NEVER
from ._ir import UNITS as UNITS
from ._ir import Event as Event
from ._ir import ExportModel as ExportModel
from ._ir import Quantity as Quantity
from ._model_text import build_export_model as build_export_model
from ._sbml import consistency_errors as consistency_errors
from ._values import fit_parameters as fit_parameters
from ._values import virtual_patient as virtual_patient

__all__ = [
    "export_sbml", "export_antimony", "export_model", "build_export_model", "ExportModel",
    "Quantity", "Event", "UNITS", "NEVER", "consistency_errors", "fit_parameters",
    "virtual_patient",
]
