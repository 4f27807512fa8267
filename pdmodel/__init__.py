"""pdmodel: differentiable ODE models of immune-related adverse events of checkpoint inhibitors.

Importing pdmodel changes no global JAX setting; call
``jax.config.update("jax_enable_x64", True)`` yourself for float64 (the CLI does).
"""

from .errors import FitLoadError as FitLoadError
from .errors import InvalidDoseError as InvalidDoseError
from .errors import MissingWeightError as MissingWeightError
from .errors import RegimenError as RegimenError
from .errors import RegimenSyntaxError as RegimenSyntaxError
from .errors import SaveFormatError as SaveFormatError
from .errors import UnknownAgentError as UnknownAgentError
from .fit._likelihood import Design as Design
from .fit._likelihood import build_design as build_design
from .fit._likelihood import log_density as log_density
from .fit._likelihood import log_likelihood as log_likelihood
from .fit._likelihood import predicted_probability as predicted_probability
from .fit._parameters import FitSpec as FitSpec
from .fit._parameters import FittedParameter as FittedParameter
from .fit._parameters import ObservationParams as ObservationParams
from .fit._parameters import Params as Params
from .fit._parameters import Prior as Prior
from .fit._result import Fit as Fit
from .fit._result import load_fit as load_fit
from .irae._parameters import PARAMETER_INFO as PARAMETER_INFO
from .irae._parameters import IraeModel as IraeModel
from .irae._population import Population as Population
from .irae._rescue import ManagementPolicy as ManagementPolicy
from .irae._simulate import IraeProblem as IraeProblem
from .irae._simulate import incidence as incidence
from .irae._simulate import incidence_array as incidence_array
from .irae._simulate import incidence_streaming as incidence_streaming
from .irae._simulate import resolution_summary as resolution_summary
from .irae._simulate import simulate as simulate
from .pk._catalogue import DEFAULT_MODELS as DEFAULT_MODELS
from .pk._catalogue import PKModelSpec as PKModelSpec
from .pk._catalogue import available_models as available_models
from .pk._catalogue import pk_model as pk_model
from .pk._model import TwoCompartmentPK as TwoCompartmentPK
from .pk._occupancy import Potency as Potency
from .pk._occupancy import occupancy as occupancy
from .pk._occupancy import potencies as potencies
from .pk._simulate import simulate_pk as simulate_pk
from .pk._solve import InfusionTable as InfusionTable
from .pk._solve import SolverOptions as SolverOptions
from .regimen._regimen import AgentDose as AgentDose
from .regimen._regimen import Infusion as Infusion
from .regimen._regimen import Phase as Phase
from .regimen._regimen import Regimen as Regimen
from .regimen._regimen import Schedule as Schedule
from .saving import load as load
from .saving import save as save
from .vocab import AGENTS as AGENTS
from .vocab import GRADES as GRADES
from .vocab import ORGANS as ORGANS
from .vocab import TARGETS as TARGETS
from .vocab import TUMOURS as TUMOURS
from .vocab import Agent as Agent
from .vocab import get_agent as get_agent

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
