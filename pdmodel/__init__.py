"""pdmodel: differentiable ODE models of immune-related adverse events of checkpoint inhibitors.

Importing pdmodel changes no global JAX setting; call
``jax.config.update("jax_enable_x64", True)`` yourself for float64 (the CLI does).
"""

from ._agents import AGENTS as AGENTS
from ._agents import TARGETS as TARGETS
from ._agents import Agent as Agent
from ._agents import get_agent as get_agent
from ._fitresult import Fit as Fit
from ._fitresult import FitLoadError as FitLoadError
from ._fitresult import load_fit as load_fit
from ._io import SaveFormatError as SaveFormatError
from ._io import load as load
from ._io import save as save
from ._irae_model import GRADES as GRADES
from ._irae_model import ORGANS as ORGANS
from ._irae_model import PARAMETER_INFO as PARAMETER_INFO
from ._irae_model import TUMOURS as TUMOURS
from ._irae_model import IraeModel as IraeModel
from ._likelihood import Design as Design
from ._likelihood import build_design as build_design
from ._likelihood import log_density as log_density
from ._likelihood import log_likelihood as log_likelihood
from ._likelihood import predicted_probability as predicted_probability
from ._occupancy import Potency as Potency
from ._occupancy import occupancy as occupancy
from ._occupancy import potencies as potencies
from ._params import FitSpec as FitSpec
from ._params import FittedParameter as FittedParameter
from ._params import ObservationParams as ObservationParams
from ._params import Params as Params
from ._params import Prior as Prior
from ._pk import TwoCompartmentPK as TwoCompartmentPK
from ._pk_catalogue import DEFAULT_MODELS as DEFAULT_MODELS
from ._pk_catalogue import PKModelSpec as PKModelSpec
from ._pk_catalogue import available_models as available_models
from ._pk_catalogue import pk_model as pk_model
from ._pk_solve import InfusionTable as InfusionTable
from ._pk_solve import SolverOptions as SolverOptions
from ._population import Population as Population
from ._regimen import AgentDose as AgentDose
from ._regimen import Infusion as Infusion
from ._regimen import InvalidDoseError as InvalidDoseError
from ._regimen import MissingWeightError as MissingWeightError
from ._regimen import Phase as Phase
from ._regimen import Regimen as Regimen
from ._regimen import RegimenError as RegimenError
from ._regimen import RegimenSyntaxError as RegimenSyntaxError
from ._regimen import Schedule as Schedule
from ._regimen import UnknownAgentError as UnknownAgentError
from ._rescue import ManagementPolicy as ManagementPolicy
from ._simulate import IraeProblem as IraeProblem
from ._simulate import incidence as incidence
from ._simulate import incidence_array as incidence_array
from ._simulate import incidence_streaming as incidence_streaming
from ._simulate import resolution_summary as resolution_summary
from ._simulate import simulate as simulate
from ._simulate_pk import simulate_pk as simulate_pk

__version__ = "0.1.0"

__all__ = [
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
    "load_fit", "Fit", "FitLoadError",
    # saving and loading
    "save", "load", "SaveFormatError",
]
