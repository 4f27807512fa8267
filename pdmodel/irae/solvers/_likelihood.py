"""The likelihood's solver: the fixed-grid solver stripped to what a fit needs.

The likelihood needs only each patient's running maximum of organ injury at the horizon, under
the natural course (no rescue). Nothing a fit varies touches the PK: individual PK parameters
come from the virtual population and doses from the regimen. So the serum concentrations at
every Runge-Kutta stage time are computed once per design (:func:`stage_concentrations`). Each
log-density evaluation then maps them to drug effects, vectorised over all steps, and integrates
only the PD state with RK4 on the flat step list (:func:`max_injury_course`).

These are the same steps as :func:`pdmodel.irae.solvers._full.simulate_patient` without rescue
(both take :func:`pdmodel.irae.solvers._step.pk_half_step` and ``rk4_step``), so the results
agree to rounding (tested). Dropping the PK, event bookkeeping and per-day output from the
differentiated loop makes an evaluation about 8x and a gradient 3-10x cheaper than through the
full solver (docs/model.md §5.4).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.ad_checkpoint import checkpoint_name
from jaxtyping import Array, Float, Int

from ...pk import TwoCompartmentPK
from ...regimen import StepGrid
from .._equations import PatientPD, baseline_state, drug_effects, fusion_fence, pd_rates
from .._parameters import IraeModel
from ._step import pk_half_step, rk4_step


def stage_concentrations(pk: TwoCompartmentPK, grid: StepGrid, weight_kg, stop_day, *,
                         michaelis_menten: bool = True) -> Float[Array, "step 3 agent"]:
    """One patient's serum concentrations at the start, middle and end of every step
    ``[step, 3, agent]`` (mg/L).

    ``pk``: the patient's PK ``[agent]``; ``weight_kg``: body weight (kg); ``stop_day``:
    infusions starting on or after it are not given (days).
    """

    def half(x, k):
        return pk_half_step(pk, x, grid, k, weight_kg, stop_day, mm=michaelis_menten)

    def step(x, s):
        x1 = half(x, 2 * s)
        x2 = half(x1, 2 * s + 1)
        return x2, jnp.stack([x[:, 0], x1[:, 0], x2[:, 0]]) / pk.vc

    n_agent = grid.first_dose.shape[0]
    x0 = jnp.zeros((n_agent, 2), jnp.result_type(float))
    return jax.lax.scan(step, x0, jnp.arange(grid.edges.shape[0] - 1))[1]


class RateConstants(NamedTuple):
    """The :class:`IraeModel` fields :func:`pdmodel.irae._equations.pd_rates` reads (a stand-in
    for the model inside the loop). Broadcast to every patient before the loop, their gradients
    accumulate patient by patient and are summed once after it, not at every step."""

    k_e: Float[Array, "*batch"]
    e_max: Float[Array, "*batch"]
    k_p: Float[Array, "*batch"]
    k_a: Float[Array, "*batch"]
    w_pd: Float[Array, "*batch organ"]
    w_ab: Float[Array, "*batch organ"]
    w_ctla4: Float[Array, "*batch organ"]
    k_rep: Float[Array, "*batch organ"]

    @classmethod
    def of(cls, model: IraeModel) -> RateConstants:
        """The fields of ``model``."""
        return cls(*(getattr(model, f) for f in cls._fields))


def stage_effects(model: IraeModel, conc: Float[Array, "step 3 agent"],
                  ec50: Float[Array, " agent"], targets: Float[Array, "agent target"],
                  agent_weight: Float[Array, " agent"]) -> Float[Array, "step 3 2"]:
    """Drug effects ``(f_C, f_P)`` at the start, middle and end of every step
    ``[step, 3, 2]`` from :func:`stage_concentrations` ``[step, 3, agent]``.

    ``ec50`` [agent] (mg/L, already scaled); ``targets`` [agent, target] one-hot;
    ``agent_weight`` [agent].
    """
    effects = jax.vmap(lambda c: drug_effects(model, c, ec50, targets, agent_weight))
    f_c, f_p = effects(conc.reshape(-1, conc.shape[-1]))
    return jnp.stack([f_c, f_p], axis=-1).reshape(*conc.shape[:2], 2)


def max_injury_course(rates: RateConstants, pd: PatientPD, effects: Float[Array, "step 3 2"],
                      edges: Float[Array, " step1"], knots: Int[Array, " knot"] | None = None
                      ) -> Float[Array, " organ"] | Float[Array, "knot organ"]:
    """Running maximum of each organ's injury over the steps ``edges`` ``[organ]`` (one patient,
    natural course, classical RK4); with ``knots`` (step indices) its value after each of those
    steps ``[knot, organ]`` instead.

    ``effects``: :func:`stage_effects` ``[step, 3, 2]``; ``edges``: step boundaries
    ``[step + 1]`` (days).
    """

    def f(y, u):
        return pd_rates(rates, pd, *y, u[0], u[1], 0.0, 0.0)

    def slope(k):
        return checkpoint_name(fusion_fence(k), "slope")

    def step(carry, xs):
        y, m = carry  # y = (E, P, A, D[organ]): parts kept apart, no slicing in the loop
        h, u = xs
        # reverse mode keeps only the four stage slopes of each step and recomputes the rest;
        # the fences stop XLA:CPU from recomputing whole stages inside each fused consumer
        y = rk4_step(f, y, h, u[0], u[1], u[2], stage=slope, state=fusion_fence)
        m = jnp.maximum(m, y[3])
        return (y, m), (None if knots is None else m)

    b = baseline_state(pd).astype(effects.dtype)
    y0 = (b[0], b[1], b[2], b[3:])
    step = jax.checkpoint(step, prevent_cse=False,
                          policy=jax.checkpoint_policies.save_only_these_names("slope"))
    (_, m), course = jax.lax.scan(step, (y0, jnp.zeros_like(b[3:])),
                                  (jnp.diff(edges), effects))
    return m if knots is None else course[knots]


def running_max_injury(rates: RateConstants, pd: PatientPD, effects: Float[Array, "step 3 2"],
                       edges: Float[Array, " step1"]) -> Float[Array, "step organ"]:
    """Running maximum of each organ's injury after every step ``[step, organ]`` (one patient,
    natural course): the steps of :func:`max_injury_course`, with the maximum recorded at every
    step (predictions by day; no checkpointing, not for reverse mode).

    Zero-length steps (padding) leave the state unchanged.
    """

    def f(y, u):
        return pd_rates(rates, pd, *y, u[0], u[1], 0.0, 0.0)

    def step(carry, xs):
        y, m = carry
        h, u = xs
        y = rk4_step(f, y, h, u[0], u[1], u[2])
        m = jnp.maximum(m, y[3])
        return (y, m), m

    b = baseline_state(pd).astype(effects.dtype)
    y0 = (b[0], b[1], b[2], b[3:])
    return jax.lax.scan(step, (y0, jnp.zeros_like(b[3:])), (jnp.diff(edges), effects))[1]
