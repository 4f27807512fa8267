"""Type stub of pdmodel.irae: its public names (read by lazy_loader at run time)."""

from ._api import incidence as incidence
from ._api import resolution_summary as resolution_summary
from ._api import simulate as simulate
from ._incidence import drug_probability as drug_probability
from ._incidence import incidence_array as incidence_array
from ._incidence import incidence_from_max as incidence_from_max
from ._incidence import incidence_streaming as incidence_streaming
from ._incidence import log_drug_probability as log_drug_probability
from ._incidence import log_threshold_margin as log_threshold_margin
from ._incidence import per_patient_incidence as per_patient_incidence
from ._incidence import reported_probability as reported_probability
from ._parameters import ORGAN_FIELDS as ORGAN_FIELDS
from ._parameters import PARAMETER_INFO as PARAMETER_INFO
from ._parameters import IraeModel as IraeModel
from ._parameters import ParameterInfo as ParameterInfo
from ._parameters import graded_background as graded_background
from ._population import THYROID_ANTIBODY_PREVALENCE as THYROID_ANTIBODY_PREVALENCE
from ._population import THYROID_ANTIBODY_TITRE as THYROID_ANTIBODY_TITRE
from ._population import Population as Population
from ._problem import STEPS_PER_DAY as STEPS_PER_DAY
from ._problem import IraeProblem as IraeProblem
from ._problem import patient_pd as patient_pd
from ._rescue import ManagementPolicy as ManagementPolicy
