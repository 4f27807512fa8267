"""pdmodel: differentiable ODE models of immune-related adverse events of checkpoint inhibitors.

The public API, gathered from the subpackages that follow the data flow (docs/architecture.md):
``vocab`` → ``regimen`` → ``pk`` → ``irae`` → ``data`` → ``fit``; building blocks that are not
here have public paths in those subpackages (e.g. ``pdmodel.fit.map_fit``).

Importing pdmodel changes no global JAX setting; call
``jax.config.update("jax_enable_x64", True)`` yourself for float64 (the CLI does).
"""


import lazy_loader as _lazy

# names are imported on first use (``__init__.pyi`` lists them): ``import pdmodel`` starts fast
__getattr__, __dir__, _ = _lazy.attach_stub(__name__, __file__)

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
    "enable_compilation_cache",
    "ParameterError", "SimulationError", "ConfigWarning",
    # saving and loading
    "save", "load", "SaveFormatError",
    # export to other engines (pdmodel.export)
    "export_sbml", "export_antimony",
    # regimen design (pdmodel.dosing_design)
    "design", "trade_off", "Risk", "DesignError", "DesignInfeasibleError",
]
