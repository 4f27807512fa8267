"""pdmodel: differentiable ODE models of immune-related adverse events of checkpoint inhibitors.

The public API, gathered from the subpackages that follow the data flow (docs/architecture.md):
``vocab`` → ``regimen`` → ``pk`` → ``irae`` → ``data`` → ``fit``; building blocks that are not
here have public paths in those subpackages (e.g. ``pdmodel.fit.map_fit``).

Importing pdmodel changes no global JAX setting; call
``jax.config.update("jax_enable_x64", True)`` yourself for float64 (the CLI does).
"""

from ._version import __version__ as __version__
from .dosing_design import Risk as Risk
from .dosing_design import design as design
from .dosing_design import trade_off as trade_off
from .errors import ConfigWarning as ConfigWarning
from .errors import DesignError as DesignError
from .errors import DesignInfeasibleError as DesignInfeasibleError
from .errors import FitLoadError as FitLoadError
from .errors import InvalidDoseError as InvalidDoseError
from .errors import MissingWeightError as MissingWeightError
from .errors import ParameterError as ParameterError
from .errors import PdmodelError as PdmodelError
from .errors import RegimenError as RegimenError
from .errors import RegimenSyntaxError as RegimenSyntaxError
from .errors import ResultsIntegrityError as ResultsIntegrityError
from .errors import SaveFormatError as SaveFormatError
from .errors import SimulationError as SimulationError
from .errors import UnknownAgentError as UnknownAgentError
from .export import export_antimony as export_antimony
from .export import export_sbml as export_sbml
from .fit import Design as Design
from .fit import Fit as Fit
from .fit import FitSpec as FitSpec
from .fit import FittedParameter as FittedParameter
from .fit import ObservationParams as ObservationParams
from .fit import Params as Params
from .fit import Prior as Prior
from .fit import build_design as build_design
from .fit import load_fit as load_fit
from .fit import log_density as log_density
from .fit import log_likelihood as log_likelihood
from .fit import predicted_probability as predicted_probability
from .fit import validate as validate
from .irae import PARAMETER_INFO as PARAMETER_INFO
from .irae import IraeModel as IraeModel
from .irae import IraeProblem as IraeProblem
from .irae import ManagementPolicy as ManagementPolicy
from .irae import Population as Population
from .irae import incidence as incidence
from .irae import incidence_array as incidence_array
from .irae import incidence_streaming as incidence_streaming
from .irae import resolution_summary as resolution_summary
from .irae import simulate as simulate
from .pk import DEFAULT_MODELS as DEFAULT_MODELS
from .pk import InfusionTable as InfusionTable
from .pk import PKModelSpec as PKModelSpec
from .pk import Potency as Potency
from .pk import SolverOptions as SolverOptions
from .pk import TwoCompartmentPK as TwoCompartmentPK
from .pk import available_models as available_models
from .pk import occupancy as occupancy
from .pk import pk_model as pk_model
from .pk import potencies as potencies
from .pk import simulate_pk as simulate_pk
from .regimen import AgentDose as AgentDose
from .regimen import Infusion as Infusion
from .regimen import Phase as Phase
from .regimen import Regimen as Regimen
from .regimen import Schedule as Schedule
from .saving import load as load
from .saving import save as save
from .vocab import AGENTS as AGENTS
from .vocab import GRADES as GRADES
from .vocab import ORGANS as ORGANS
from .vocab import TARGETS as TARGETS
from .vocab import TUMOURS as TUMOURS
from .vocab import Agent as Agent
from .vocab import get_agent as get_agent

__all__ = [
    # errors
    "PdmodelError",
    # agents and targets
    "AGENTS", "TARGETS", "Agent", "get_agent",
    # regimens
    "Regimen", "Phase", "AgentDose", "Schedule", "Infusion",
    "RegimenError", "RegimenSyntaxError", "UnknownAgentError", "MissingWeightError",
    "InvalidDoseError",
    # pharmacokinetics and occupancy
    "simulate_pk", "pk_model", "available_models", "DEFAULT_MODELS", "PKModelSpec",
    "TwoCompartmentPK", "InfusionTable", "SolverOptions", "occupancy", "potencies", "Potency",
    # irAE model
    "IraeModel", "PARAMETER_INFO", "ORGANS", "GRADES", "TUMOURS", "Population",
    "ManagementPolicy", "simulate", "incidence", "incidence_array", "incidence_streaming",
    "IraeProblem",
    "resolution_summary",
    # fitting: parameters, priors, likelihood
    "Params", "ObservationParams", "FitSpec", "FittedParameter", "Prior", "build_design",
    "Design", "log_density", "log_likelihood", "predicted_probability",
    # calibrated fits
    "load_fit", "Fit", "FitLoadError", "ResultsIntegrityError", "validate",
    "ParameterError", "SimulationError", "ConfigWarning",
    # saving and loading
    "save", "load", "SaveFormatError",
    # export to other engines (pdmodel.export)
    "export_sbml", "export_antimony",
    # regimen design (pdmodel.dosing_design)
    "design", "trade_off", "Risk", "DesignError", "DesignInfeasibleError",
]
