"""The one step every fixed-grid solver of the irAE model takes (as diffrax drives every solver's
``step`` from one loop).

* :func:`pk_half_step` — the PK of every agent over one grid cell (half a PD step), propagated
  exactly by :func:`pdmodel.pk.pk_step`, with the cell's infusions unless treatment has stopped
  or is held;
* :func:`rk4_step` — one classical Runge-Kutta-4 step of the PD state, over any pytree of state
  parts, with the drug inputs at the start, middle and end of the step.

:func:`pdmodel.irae.solvers.simulate_patient` (full solver) and
:func:`pdmodel.irae.solvers.stage_concentrations` / :func:`max_injury_course` (likelihood's
solver) both step with these, so they perform the same floating-point operations.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from ...pk import TwoCompartmentPK, pk_step
from ...regimen import InfusionCells

type Input = Any
"""The drug inputs at one stage time, passed to the right-hand side as they are."""


def _identity(x):
    return x


def infusion_rate(
    grid: InfusionCells,
    k,
    weight_kg: Float[Array, ""],
    stop: Float[Array, ""],
    hold_from: Float[Array, ""] | float = jnp.inf,
) -> Float[Array, " agent"]:
    """Each agent's infusion rate in cell ``k`` (mg/day), 0 where none is given.

    An infusion is given when it started (``grid.infusion_day``) before ``stop`` (treatment
    discontinued, days) and not on or after ``hold_from`` (treatment held, days; ``inf``:
    never held). ``weight_kg`` turns mg/kg/day rates into mg/day.
    """
    day0 = grid.infusion_day[k]
    given = (day0 < stop) & ~(day0 >= hold_from)
    return jnp.where(given, grid.rate_mg[k] + grid.rate_mg_per_kg[k] * weight_kg, 0.0)


def pk_half_step(
    pk: TwoCompartmentPK,
    x: Float[Array, "agent 2"],
    grid: InfusionCells,
    k,
    weight_kg: Float[Array, ""],
    stop: Float[Array, ""],
    hold_from: Float[Array, ""] | float = jnp.inf,
    *,
    mm: bool,
) -> Float[Array, "agent 2"]:
    """Advance every agent's amounts ``x = (A_c, A_p)`` [agent, 2] (mg) over cell ``k`` of
    ``grid`` (half a PD step), with the infusions of :func:`infusion_rate`.

    ``pk``: the patient's PK ``[agent]``; ``mm=False`` (static) skips target-mediated
    elimination (only valid when no agent has it). Every cell is wholly infused or not at all
    (``pk_step(aligned=True)``; the grid guarantees it).
    """
    rate = infusion_rate(grid, k, weight_kg, stop, hold_from)
    step = jax.vmap(partial(pk_step, mm=mm, aligned=True), in_axes=(0, 0, None, None, 0, 0, 0, 0))
    return step(pk, x, grid.cell_start[k], grid.cell_length[k], grid.offset_on[k],
                grid.offset_off[k], rate, grid.first_dose)


def _axpy(a, x, y):
    """``y + a·x`` leaf by leaf."""
    return jax.tree.map(lambda xi, yi: yi + a * xi, x, y)


def rk4_step[State](
    f: Callable[[State, Input], State],
    y: State,
    h: Float[Array, ""],
    u_start: Input,
    u_mid: Input,
    u_end: Input,
    *,
    stage: Callable[[State], State] = _identity,
    state: Callable[[State], State] = _identity,
) -> State:
    """One classical Runge-Kutta-4 step of ``y' = f(y, u)`` over ``h`` (days).

    ``y`` and the slopes ``f(y, u)`` are pytrees of the same structure (one array, or the state's
    parts); ``u_start``, ``u_mid``, ``u_end``: the inputs at the start, middle and end of the step
    (passed to ``f`` as they are). ``stage`` wraps each slope ``k1..k4`` and ``state`` each stage
    state ``y + a·k`` (the likelihood's solver fences and names them for reverse mode; default:
    unchanged). Returns ``y + h/6 (k1 + 2 k2 + 2 k3 + k4)``.
    """
    half = 0.5 * h
    k1 = stage(f(y, u_start))
    k2 = stage(f(state(_axpy(half, k1, y)), u_mid))
    k3 = stage(f(state(_axpy(half, k2, y)), u_mid))
    k4 = stage(f(state(_axpy(h, k3, y)), u_end))
    return jax.tree.map(lambda yi, a, b, c, d: yi + h / 6.0 * (a + 2.0 * b + 2.0 * c + d),
                        y, k1, k2, k3, k4)
