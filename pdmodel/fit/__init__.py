"""Calibration of the irAE model to published incidence data (in the manner of ``numpyro.infer``).

Parameters and priors (:class:`FitSpec`, :class:`Params`), the design (:func:`build_design`,
from rows the caller loads, e.g. ``pdmodel.data.load_incidence()``) and likelihood
(:func:`log_density`; :func:`log_density_of` and :func:`log_max_injury_of` take ``u`` last, for
``jax.tree_util.Partial``), MAP with a Laplace scale (:func:`map_fit`), NUTS
(:func:`run_nuts`), the emulator, posterior checks, the ``pdmodel fit`` pipeline
(:func:`run_fit`) and its results (:class:`Fit`, :func:`load_fit`); cross-validation by study
(:func:`validate`, ``pdmodel validate``).
"""


import lazy_loader as _lazy

# names are imported on first use (``__init__.pyi`` lists them): ``import pdmodel`` starts fast
__getattr__, __dir__, _ = _lazy.attach_stub(__name__, __file__)

__all__ = [
    "FitSpec", "FittedParameter", "ObservationParams", "Params", "Prior", "FitConfig", "PriorSpec",
    "DEFAULT_REGIMENS", "load_config", "dump_config", "config_to_dict", "config_hash",
    "config_diff", "apply_overrides", "fit_spec", "Design", "build_design", "select_rows",
    "SimulatedArm", "arm_timing", "design_table",
    "max_injuries", "log_max_injury", "ode_parameter_index", "predicted_probability",
    "beta_binomial_logpmf", "log_likelihood", "trial_loglik", "drug_probabilities",
    "log_density", "log_density_of", "total_loglik", "onset_log_likelihood", "onset_targets",
    "subgroup_log_likelihood", "subgroup_targets", "management_log_likelihood",
    "management_targets",
    "log_max_injury_of", "map_fit", "laplace_scale", "run_nuts", "psis_check", "Emulator",
    "Whitening", "evaluate", "fit_emulator", "posterior_variables", "unconstrained_draws",
    "RunFolder", "run_fit", "features_loglik", "Fit", "IncidenceCurve", "load_fit",
    "plot_bands", "report_html", "write_report",
]
