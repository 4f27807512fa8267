"""Infusions resolved onto a time grid, for the fast fixed-grid solver.

The grid is built per regimen (shared by every patient): ``steps_per_day`` equal steps a day,
each further split at every infusion start and end that falls inside it (and geometrically
inside the infusion), so that within a step the drug input is either on or off and the forcing
of the PD equations is smooth. Every day
gets the same number of sub-steps (padding with zero-length steps, which are no-ops), so the
solver is a fixed-shape ``lax.scan``. Each PD sub-step is halved for the PK ("cells"), giving
the concentrations at the Runge-Kutta stage times. :class:`StepGrid` holds the same steps as
one flat list (the likelihood's solver, which needs no daily output).
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from ..numerics import GRID_EPS, TIME_EPS
from ._regimen import Regimen


class InfusionCells(eqx.Module):
    """PK cells (halves of the solver's sub-steps) and each agent's infusion input in them.

    Attributes
    ----------
    cell_start, cell_length : PK cells, days ``[cell]``.
    offset_on, offset_off : infused part of the cell as offsets from its start ``[cell, agent]``.
    rate_mg, rate_mg_per_kg : infusion rate while infusing ``[cell, agent]`` (mg/day, mg/kg/day).
    infusion_day : day the infusion started (``inf`` where none) ``[cell, agent]``.
    first_dose : day of each agent's first infusion ``[agent]``.
    """

    cell_start: Float[Array, " cell"]
    cell_length: Float[Array, " cell"]
    offset_on: Float[Array, "cell agent"]
    offset_off: Float[Array, "cell agent"]
    rate_mg: Float[Array, "cell agent"]
    rate_mg_per_kg: Float[Array, "cell agent"]
    infusion_day: Float[Array, "cell agent"]
    first_dose: Float[Array, " agent"]


class DosingGrid(InfusionCells):
    """PD sub-steps day by day, with the :class:`InfusionCells` of their halves.

    ``edges``: PD sub-step boundaries ``[day, sub + 1]``, days (padding repeats the last edge).
    """

    edges: Float[Array, "day sub1"]

    @property
    def n_days(self) -> int:
        """Number of simulated days."""
        return self.edges.shape[0]

    @property
    def substeps(self) -> int:
        """PD sub-steps per day (including padding)."""
        return self.edges.shape[1] - 1


class StepGrid(InfusionCells):
    """The sub-steps of a :class:`DosingGrid` as one flat list (zero-length steps only at the
    end), for solvers that need no daily output (the likelihood's natural course).

    ``edges``: step boundaries ``[step + 1]``, days.
    """

    edges: Float[Array, " step1"]


def step_edges(regimen: Regimen, days: int, steps_per_day: int, refine: int = 4,
               width: int | None = None) -> Float[np.ndarray, "day sub1"]:
    """Sub-step boundaries ``[day, sub + 1]``: equal steps split at infusion starts and ends.

    Occupancy saturates within minutes of an infusion start, so each infusion is also cut
    geometrically at ``T/2, T/4, ..., T/2**refine`` to keep the Runge-Kutta stages accurate.
    ``width`` pads every day to that many boundaries (to stack several regimens).
    """
    fractions = (0.0, 1.0) + tuple(0.5**k for k in range(1, refine + 1))
    breaks = np.array(sorted({inf.start + f * inf.duration
                              for inf in regimen.infusions(days=days, weight_kg=1.0)
                              for f in fractions}))
    per_day = list(np.arange(days)[:, None] + np.arange(steps_per_day + 1) / steps_per_day)
    first = np.floor(breaks)
    for j in np.unique(first[(breaks > first) & (first < days)]).astype(int):
        base = per_day[j]  # only days with a break inside are split
        inside = breaks[(breaks > j) & (breaks < j + 1)]
        far = [b for b in inside if np.min(np.abs(base - b)) > TIME_EPS]
        per_day[j] = np.unique(np.concatenate([base, far]))
    needed = max(len(p) for p in per_day)
    if width is not None and width < needed:
        raise ValueError(f"width={width} is smaller than the {needed} boundaries a day needs")
    width = needed if width is None else width
    out = np.empty((days, width))
    for j, p in enumerate(per_day):
        out[j, : len(p)] = p
        out[j, len(p):] = p[-1]
    return out


def flat_step_edges(regimen: Regimen, days: int, steps_per_day: int, refine: int = 4,
                    n_steps: int | None = None) -> Float[np.ndarray, " step1"]:
    """The same sub-steps as :func:`step_edges`, as one increasing list ``[step + 1]`` (days).

    No padding inside days; ``n_steps`` appends zero-length steps at the end (no-ops), so that
    several regimens share one shape.
    """
    edges = np.unique(step_edges(regimen, days, steps_per_day, refine).ravel())
    needed = edges.size - 1
    if n_steps is not None and n_steps < needed:
        raise ValueError(f"n_steps={n_steps} is smaller than the {needed} steps needed")
    pad = 0 if n_steps is None else n_steps - needed
    return np.concatenate([edges, np.full(pad, edges[-1])])


def _infusion_cells(regimen: Regimen, agents: tuple[str, ...], days: int,
                    lo: Float[np.ndarray, " step"],
                    hi: Float[np.ndarray, " step"]) -> dict[str, jnp.ndarray]:
    """PK cells (halves of the steps ``[lo, hi]``) and each agent's infusion input in them."""
    mid = 0.5 * (lo + hi)
    cell_start = np.stack([lo, mid], axis=1).ravel()
    cell_end = np.stack([mid, hi], axis=1).ravel()
    shape = (cell_start.size, len(agents))
    on = np.zeros(shape)
    off = np.zeros(shape)
    rate = np.zeros(shape)
    rate_kg = np.zeros(shape)
    day = np.full(shape, np.inf)
    first = np.full(len(agents), np.inf)
    for inf in regimen.infusions(days=days, weight_kg=1.0):
        j = agents.index(inf.agent)
        first[j] = min(first[j], inf.start)
        end = inf.start + inf.duration
        hit = np.nonzero((cell_end > inf.start) & (cell_start < end))[0]
        if np.any(rate[hit, j] + rate_kg[hit, j] > 0):
            raise ValueError(f"two {inf.agent} infusions overlap near day {inf.start:g}")
        on[hit, j] = np.maximum(inf.start - cell_start[hit], 0.0)
        off[hit, j] = np.minimum(end, cell_end[hit]) - cell_start[hit]
        r = inf.dose / inf.duration
        (rate_kg if inf.unit == "mg/kg" else rate)[hit, j] = r
        day[hit, j] = inf.start
    # the solver relies on every cell being wholly infused or not at all (pk_step aligned=True)
    length = cell_end - cell_start
    partial = (on > GRID_EPS) | ((off > GRID_EPS) & (off < length[:, None] - GRID_EPS))
    if np.any(partial):
        raise AssertionError("dosing grid cells must not split an infusion (internal error)")
    return dict(
        cell_start=jnp.asarray(cell_start), cell_length=jnp.asarray(length),
        offset_on=jnp.asarray(on), offset_off=jnp.asarray(off), rate_mg=jnp.asarray(rate),
        rate_mg_per_kg=jnp.asarray(rate_kg), infusion_day=jnp.asarray(day),
        first_dose=jnp.asarray(first),
    )


def dosing_grid(regimen: Regimen, agents: tuple[str, ...], days: int,
                steps_per_day: int, refine: int = 4, width: int | None = None) -> DosingGrid:
    """Resolve ``regimen``'s infusions (starting before ``days``) onto the solver's grid.

    ``agents`` may list more names than the regimen doses (padding columns get no input).
    """
    edges = step_edges(regimen, days, steps_per_day, refine, width)
    cells = _infusion_cells(regimen, agents, days, edges[:, :-1].ravel(), edges[:, 1:].ravel())
    return DosingGrid(edges=jnp.asarray(edges), **cells)


def step_grid(regimen: Regimen, agents: tuple[str, ...], days: int, steps_per_day: int,
              refine: int = 4, n_steps: int | None = None) -> StepGrid:
    """Like :func:`dosing_grid`, on the flat step list of :func:`flat_step_edges`."""
    edges = flat_step_edges(regimen, days, steps_per_day, refine, n_steps)
    return StepGrid(edges=jnp.asarray(edges),
                    **_infusion_cells(regimen, agents, days, edges[:-1], edges[1:]))
