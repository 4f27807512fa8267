"""Type stub of pdmodel.export: its public names (read by lazy_loader at run time)."""

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
