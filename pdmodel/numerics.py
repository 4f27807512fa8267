"""Numeric floors and tolerances, named once, and the check that finds a non-finite result.

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

SHAPE_FLOOR = 1e-9
"""Floor of a beta shape parameter (``μφ``, ``(1 − μ)φ``) before drawing from the beta
distribution, which needs both strictly positive."""

ALIGN_EPS = 1e-6
"""Tolerance (a fraction of a step) when rounding a time up to the next step boundary: a time
at most this far past a boundary is put on that boundary, so that rounding error in the time
does not delay, e.g., a steroid course by a whole step."""


def first_non_finite(arr) -> tuple[int, ...] | None:
    """Index of the first entry of ``arr`` (row-major) that is NaN or infinite, or ``None``:
    where a solver failure starts, for an error message that names the patient, draw, day,
    organ or grade."""
    import numpy as np

    bad = ~np.isfinite(np.asarray(arr))
    return tuple(int(i) for i in np.argwhere(bad)[0]) if bad.any() else None
