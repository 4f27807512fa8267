"""Dosing regimens: Python objects, the text grammar, and the dosing grid the solvers step on.

Layer 1 of the data flow (after :mod:`pdmodel.vocab`): ``Regimen.parse(text)`` → ``Regimen`` →
``Regimen.infusions`` → :func:`dosing_grid` / :func:`step_grid` (arrays for the solvers).
"""

from ._grid import DosingGrid as DosingGrid
from ._grid import InfusionCells as InfusionCells
from ._grid import StepGrid as StepGrid
from ._grid import dosing_grid as dosing_grid
from ._grid import flat_step_edges as flat_step_edges
from ._grid import step_edges as step_edges
from ._grid import step_grid as step_grid
from ._regimen import AgentDose as AgentDose
from ._regimen import Infusion as Infusion
from ._regimen import Phase as Phase
from ._regimen import Regimen as Regimen
from ._regimen import Schedule as Schedule

__all__ = [
    "Regimen", "Phase", "AgentDose", "Schedule", "Infusion", "DosingGrid", "StepGrid",
    "InfusionCells", "dosing_grid", "step_grid", "step_edges", "flat_step_edges",
]
