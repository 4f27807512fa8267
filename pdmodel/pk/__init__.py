"""Pharmacokinetics and receptor occupancy of the checkpoint inhibitors.

Published population-PK models (:func:`pk_model`), the two-compartment model
(:class:`TwoCompartmentPK`), exact and adaptive concentration solvers, the fixed-step exact PK
step the irAE solvers share (:func:`pk_step`), occupancy (:func:`occupancy`,
:func:`weighted_occupancy`) and the public :func:`simulate_pk`.
"""


import lazy_loader as _lazy

# names are imported on first use (``__init__.pyi`` lists them): ``import pdmodel`` starts fast
__getattr__, __dir__, _ = _lazy.attach_stub(__name__, __file__)

__all__ = [
    "TwoCompartmentPK", "stack_models", "DEFAULT_MODELS", "PKModelSpec", "available_models",
    "pk_model", "InfusionTable", "SolverOptions", "PAD_START", "concentrations",
    "concentrations_analytic", "concentrations_ode", "amounts_ode", "is_linear", "pk_step",
    "Potency", "potencies", "target_matrix", "occupancy", "weighted_occupancy", "simulate_pk",
    "infusion_table", "model_specs", "individual_parameters", "pk_arrays",
]
