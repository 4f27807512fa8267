"""Calibration of the irAE model to published incidence data (in the manner of ``numpyro.infer``).

Parameters and priors (:class:`FitSpec`, :class:`Params`), the design (:func:`build_design`,
from rows the caller loads, e.g. ``pdmodel.data.load_incidence()``) and likelihood
(:func:`log_density`; :func:`log_density_of` and :func:`log_max_injury_of` take ``u`` last, for
``jax.tree_util.Partial``), MAP with a Laplace scale (:func:`map_fit`), NUTS
(:func:`run_nuts`), the emulator, posterior checks, the ``pdmodel fit`` pipeline
(:func:`run_fit`) and its results (:class:`Fit`, :func:`load_fit`); cross-validation by study
(:func:`validate`, ``pdmodel validate``).
"""

from ._config import DEFAULT_REGIMENS as DEFAULT_REGIMENS
from ._config import FitConfig as FitConfig
from ._config import PriorSpec as PriorSpec
from ._config import apply_overrides as apply_overrides
from ._config import config_diff as config_diff
from ._config import config_hash as config_hash
from ._config import config_to_dict as config_to_dict
from ._config import dump_config as dump_config
from ._config import fit_spec as fit_spec
from ._config import load_config as load_config
from ._design import Design as Design
from ._design import SimulatedArm as SimulatedArm
from ._design import arm_timing as arm_timing
from ._design import build_design as build_design
from ._design import design_table as design_table
from ._design import select_rows as select_rows
from ._emulator import Emulator as Emulator
from ._emulator import Whitening as Whitening
from ._emulator import evaluate as evaluate
from ._emulator import fit_emulator as fit_emulator
from ._figures import plot_bands as plot_bands
from ._likelihood import beta_binomial_logpmf as beta_binomial_logpmf
from ._likelihood import drug_probabilities as drug_probabilities
from ._likelihood import features_loglik as features_loglik
from ._likelihood import log_density as log_density
from ._likelihood import log_density_of as log_density_of
from ._likelihood import log_likelihood as log_likelihood
from ._likelihood import log_max_injury as log_max_injury
from ._likelihood import log_max_injury_of as log_max_injury_of
from ._likelihood import max_injuries as max_injuries
from ._likelihood import ode_parameter_index as ode_parameter_index
from ._likelihood import predicted_probability as predicted_probability
from ._likelihood import trial_loglik as trial_loglik
from ._map import laplace_scale as laplace_scale
from ._map import map_fit as map_fit
from ._nuts import psis_check as psis_check
from ._nuts import run_nuts as run_nuts
from ._outputs import write_report as write_report
from ._parameters import FitSpec as FitSpec
from ._parameters import FittedParameter as FittedParameter
from ._parameters import ObservationParams as ObservationParams
from ._parameters import Params as Params
from ._parameters import Prior as Prior
from ._pipeline import run_fit as run_fit
from ._posterior import posterior_variables as posterior_variables
from ._posterior import unconstrained_draws as unconstrained_draws
from ._report import report_html as report_html
from ._result import Fit as Fit
from ._result import load_fit as load_fit
from ._run_folder import RunFolder as RunFolder
from ._validate import BaselineTable as BaselineTable
from ._validate import class_average_probability as class_average_probability
from ._validate import class_average_table as class_average_table
from ._validate import group_folds as group_folds
from ._validate import masked_log_density as masked_log_density
from ._validate import validate as validate

__all__ = [
    "FitSpec", "FittedParameter", "ObservationParams", "Params", "Prior", "FitConfig", "PriorSpec",
    "DEFAULT_REGIMENS", "load_config", "dump_config", "config_to_dict", "config_hash",
    "config_diff", "apply_overrides", "fit_spec", "Design", "build_design", "select_rows",
    "SimulatedArm", "arm_timing", "design_table",
    "max_injuries", "log_max_injury", "ode_parameter_index", "predicted_probability",
    "beta_binomial_logpmf", "log_likelihood", "trial_loglik", "drug_probabilities",
    "log_density", "log_density_of",
    "log_max_injury_of", "map_fit", "laplace_scale", "run_nuts", "psis_check", "Emulator",
    "Whitening", "evaluate", "fit_emulator", "posterior_variables", "unconstrained_draws",
    "RunFolder", "run_fit", "features_loglik", "Fit", "load_fit",
    "plot_bands", "report_html", "write_report",
]
