"""The irAE model: parameters, virtual populations, rescue, equations, grades and incidence.

:class:`IraeModel` (parameters on the natural scale), :class:`Population` (covariates, random
effects, common random numbers), :class:`ManagementPolicy` (immunosuppressant rescue), the
solvers in :mod:`pdmodel.irae.solvers`, and the public :func:`simulate` / :func:`incidence`.
"""


import lazy_loader as _lazy

# names are imported on first use (``__init__.pyi`` lists them): ``import pdmodel`` starts fast
__getattr__, __dir__, _ = _lazy.attach_stub(__name__, __file__)

__all__ = [
    "IraeModel", "PARAMETER_INFO", "ParameterInfo", "ORGAN_FIELDS", "Population",
    "THYROID_ANTIBODY_PREVALENCE", "THYROID_ANTIBODY_TITRE",
    "ManagementPolicy", "STEPS_PER_DAY", "IraeProblem", "patient_pd", "drug_probability",
    "log_drug_probability", "log_threshold_margin", "reported_probability", "incidence_array",
    "incidence_streaming", "incidence_from_max", "per_patient_incidence",
    "simulate", "incidence",
    "resolution_summary", "graded_background",
]
