"""Type stub of pdmodel.dosing_design: its public names (read by lazy_loader at run time)."""

from ._api import TradeOff as TradeOff
from ._api import design as design
from ._api import trade_off as trade_off
from ._criteria import AverageExposure as AverageExposure
from ._criteria import MaxInfusions as MaxInfusions
from ._criteria import Risk as Risk
from ._criteria import TroughOccupancy as TroughOccupancy
from ._criteria import parse_constraint as parse_constraint
from ._problem import DesignProblem as DesignProblem
from ._problem import DesignResult as DesignResult
from ._search import Relaxed as Relaxed
from ._space import Count as Count
from ._space import Dose as Dose
from ._space import Interval as Interval
from ._space import parse_variable as parse_variable
