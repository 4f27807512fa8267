"""Solvers of the irAE model, all stepping the same equations (:mod:`pdmodel.irae._equations`).

* :func:`simulate_patient` — the full fixed-grid solver (PK, PD, grades, rescue policy), one
  patient (``vmap`` for many);
* :func:`max_injury_course` with :func:`stage_concentrations` / :func:`stage_effects` — the
  likelihood's solver (natural course, running maximum of injury only);
  :func:`running_max_injury` records that maximum after every step (fast predictions);
* :func:`managed_course` — the likelihood's smooth managed course (the policy's expected
  effect on each patient, differentiable);
* :func:`reference_states` — the adaptive diffrax reference, for accuracy checks.

The two fixed-grid solvers take the same step (:func:`pk_half_step`, :func:`rk4_step`).
"""

from .._equations import drug_effects as drug_effects
from .._equations import log_thresholds as log_thresholds
from ._full import Daily as Daily
from ._full import Events as Events
from ._full import PatientInputs as PatientInputs
from ._full import simulate_patient as simulate_patient
from ._likelihood import RateConstants as RateConstants
from ._likelihood import max_injury_course as max_injury_course
from ._likelihood import running_max_injury as running_max_injury
from ._likelihood import stage_concentrations as stage_concentrations
from ._likelihood import stage_effects as stage_effects
from ._managed import CourseChain as CourseChain
from ._managed import ManagedOutcome as ManagedOutcome
from ._managed import managed_course as managed_course
from ._managed import managed_running_max as managed_running_max
from ._reference import reference_states as reference_states
from ._step import infusion_rate as infusion_rate
from ._step import pk_half_step as pk_half_step
from ._step import rk4_step as rk4_step

__all__ = [
    "PatientInputs", "Daily", "Events", "simulate_patient", "drug_effects", "log_thresholds",
    "RateConstants", "stage_concentrations", "stage_effects", "max_injury_course",
    "running_max_injury", "CourseChain", "ManagedOutcome", "managed_course",
    "managed_running_max", "reference_states",
    "infusion_rate", "pk_half_step", "rk4_step",
]
