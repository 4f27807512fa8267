"""Type stub of pdmodel.pk: its public names (read by lazy_loader at run time)."""

from ._catalogue import DEFAULT_MODELS as DEFAULT_MODELS
from ._catalogue import PKModelSpec as PKModelSpec
from ._catalogue import available_models as available_models
from ._catalogue import pk_model as pk_model
from ._model import TwoCompartmentPK as TwoCompartmentPK
from ._model import stack_models as stack_models
from ._occupancy import Potency as Potency
from ._occupancy import occupancy as occupancy
from ._occupancy import potencies as potencies
from ._occupancy import target_matrix as target_matrix
from ._occupancy import weighted_occupancy as weighted_occupancy
from ._simulate import individual_parameters as individual_parameters
from ._simulate import infusion_table as infusion_table
from ._simulate import model_specs as model_specs
from ._simulate import pk_arrays as pk_arrays
from ._simulate import simulate_pk as simulate_pk
from ._solve import PAD_START as PAD_START
from ._solve import InfusionTable as InfusionTable
from ._solve import SolverOptions as SolverOptions
from ._solve import amounts_ode as amounts_ode
from ._solve import concentrations as concentrations
from ._solve import concentrations_analytic as concentrations_analytic
from ._solve import concentrations_ode as concentrations_ode
from ._solve import is_linear as is_linear
from ._step import pk_step as pk_step
