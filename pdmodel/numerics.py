"""Numeric floors and tolerances, named once.

Each is a guard against a log of zero, a zero shape parameter or a comparison of floating-point
times, not a model parameter; changing one changes results only where the guarded quantity is
at the edge.
"""

LOG_FLOOR = 1e-12
"""Floor applied to a non-negative quantity (organ injury, time since first dose) before a log
or a power, so that 0 maps to a large negative number instead of -inf."""

PROB_FLOOR = 1e-9
"""Probabilities are kept within ``[PROB_FLOOR, 1 - PROB_FLOOR]`` where a log or a beta shape
parameter needs them inside (0, 1)."""

TIME_EPS = 1e-9
"""Relative tolerance (a fraction of a step or of a day) when comparing or nudging times on the
solver grid."""

GRID_EPS = 1e-12
"""Absolute tolerance (days) below which an infusion offset counts as on a cell edge."""
