"""Solvers of the irAE model, all stepping the same equations (:mod:`pdmodel.irae._equations`).

* :func:`simulate_patient` — the full fixed-grid solver (PK, PD, grades, rescue policy), one
  patient (``vmap`` for many);
* :func:`max_injury_course` with :func:`stage_concentrations` / :func:`stage_effects` — the
  likelihood's solver (natural course, running maximum of injury only);
* :func:`reference_states` — the adaptive diffrax reference, for accuracy checks.
"""

from ._full import Daily as Daily
from ._full import Events as Events
from ._full import PatientInputs as PatientInputs
from ._full import drug_effects as drug_effects
from ._full import log_thresholds as log_thresholds
from ._full import simulate_patient as simulate_patient
from ._likelihood import RateConstants as RateConstants
from ._likelihood import max_injury_course as max_injury_course
from ._likelihood import stage_concentrations as stage_concentrations
from ._likelihood import stage_effects as stage_effects
from ._reference import reference_states as reference_states

__all__ = [
    "PatientInputs", "Daily", "Events", "simulate_patient", "drug_effects", "log_thresholds",
    "RateConstants", "stage_concentrations", "stage_effects", "max_injury_course",
    "reference_states",
]
