"""Right-hand side of the immune / autoantibody / organ-injury ODEs (shared by all solvers).

State ``y = (E, P, A, D_skin, D_gi, D_liver, D_lung, D_thyroid, D_pituitary)``; see
docs/model.md §4. Patient-level constants come in :class:`PatientPD`; the drug inputs from
serum concentrations in :func:`drug_effects`; the grade thresholds in :func:`log_thresholds`.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from ..pk import weighted_occupancy
from ..vocab import ORGANS, TARGETS
from ._parameters import IraeModel

GI = ORGANS.index("gi")
THYROID = ORGANS.index("thyroid")
PD1, PDL1, CTLA4 = (TARGETS.index(t) for t in ("PD-1", "PD-L1", "CTLA-4"))
N_PD = 3 + len(ORGANS)
SMOOTH = 0.05
"""Width (fold units) of the smooth positive part used for injury drive."""


class PatientPD(NamedTuple):
    """One patient's PD constants (after covariates and random effects)."""

    # baseline autoreactive pool, fold (1, or raised with autoimmune disease)
    e0: Float[Array, "*batch"]
    a_ctla4: Float[Array, "*batch"]  # priming gain at full CTLA-4 occupancy
    g_pd1: Float[Array, "*batch"]  # expansion rate at full PD-1 blockade, 1/day
    # 1/day, with tumour, setting, the thyroid's anti-thyroid titre (a0) and random effects
    susceptibility: Float[Array, "*batch organ"]


def drug_effects(model: IraeModel, conc, ec50, targets, agent_weight):
    """CTLA-4 and PD-1/PD-L1 drug effects ``(f_C, f_P)`` from concentrations [agent] (mg/L).

    Competitive binding per target; each agent's bound share is weighted by its agent-level
    deviation from the class effect: ``f_X = Σ_i w_i·x_i / (1 + Σ_i x_i)``, ``x_i = C_i/EC50_i``
    (plain occupancy when all ``w_i = 1``; :func:`pdmodel.pk.weighted_occupancy`).
    ``ec50`` [agent] (mg/L, already scaled); ``targets`` [agent, target] one-hot;
    ``agent_weight`` [agent]. ``f_P`` adds PD-L1 to PD-1 blockade with weight ``rho_pdl1``.
    """
    eff = weighted_occupancy(conc, ec50, targets, agent_weight)
    return eff[CTLA4], eff[PD1] + model.rho_pdl1 * eff[PDL1]


def steroid_suppression(model: IraeModel, dose):
    """Systemic immunosuppression ``i_sys`` (0-1) by a corticosteroid dose (mg/kg/day
    prednisone-equivalent): ``steroid_imax·dose / (dose + steroid_ed50)``."""
    return model.steroid_imax * dose / (dose + model.steroid_ed50)


def infliximab_suppression(model: IraeModel, conc):
    """GI-specific immunosuppression ``i_gi`` (0-1) by an infliximab concentration (mg/L):
    ``ifx_imax·C / (C + ifx_ec50)``."""
    return model.ifx_imax * conc / (conc + model.ifx_ec50)


def log_thresholds(model: IraeModel) -> Float[Array, "organ grade"]:
    """Median log thresholds ``[organ, grade]`` (grade 1 at log 1 = 0)."""
    lt2 = model.log_gap2
    return jnp.stack([jnp.zeros_like(lt2), lt2, lt2 + model.log_gap3], axis=-1)


def fusion_fence(x):
    """``x`` unchanged; on the CPU an optimisation barrier, elsewhere nothing.

    In reverse mode XLA:CPU fuses cheap producers into each of their consumers and so
    recomputes them many times per step; fencing the organ drive and the RK4 stages makes the
    likelihood's gradient 1.6x faster on CPU. On a GPU the same barriers cost more kernel
    launches than they save (H100: value-and-gradient 18 ms without, 40 ms with), so they are
    lowered only for the CPU (``jax.lax.platform_dependent``); one code path either way.
    """
    return jax.lax.platform_dependent(x, cpu=jax.lax.optimization_barrier, default=lambda v: v)


def positive_part(x):
    """Smooth, non-negative ``max(x, 0)``: ``x²/(x + ε)`` for x > 0 (C¹ at 0), else 0."""
    xp = jnp.maximum(x, 0.0)
    return xp * xp / (xp + SMOOTH)


def titre_factors(a0) -> Float[Array, "*batch organ"]:
    """Factor on each organ's susceptibility from the baseline autoantibody titre
    ``[..., organ]``: ``a0`` (anti-thyroid antibodies, fold of normal: pre-existing thyroid
    autoimmunity, a gland already infiltrated) for the thyroid, 1 elsewhere
    (docs/model.md §4.2)."""
    a0 = jnp.asarray(a0)
    return jnp.where(jnp.arange(len(ORGANS)) == THYROID, a0[..., None], 1.0)


def baseline_state(patient: PatientPD) -> Float[Array, " 9"]:
    """Steady state without drug: ``E = e0, P = 1, A = 1, D = 0`` (``A`` in fold of the
    patient's own baseline titre)."""
    one = jnp.ones_like(patient.e0)
    return jnp.concatenate([
        jnp.stack([patient.e0, one, one]),
        jnp.zeros(len(ORGANS), dtype=jnp.result_type(patient.e0)),
    ])


def pd_rhs(model: IraeModel, patient: PatientPD, y, f_ctla4, f_pd, i_sys, i_gi,
           refractory_gi=0.0):
    """Time derivative of the PD state ``y`` [9] (per day).

    ``f_ctla4``: CTLA-4 occupancy; ``f_pd``: PD-1 occupancy + ``rho_pdl1``·PD-L1 occupancy;
    ``i_sys``: systemic immunosuppression (0-1, corticosteroids); ``i_gi``: extra GI-specific
    suppression (0-1, infliximab); ``refractory_gi``: 1 for a patient whose GI drive
    corticosteroids do not suppress (steroid-refractory colitis), 0 otherwise (a fraction:
    the steroid-refractory share of a group of patients).
    """
    de, dp, da, dd = pd_rates(model, patient, y[0], y[1], y[2], y[3:], f_ctla4, f_pd, i_sys,
                              i_gi, refractory_gi)
    return jnp.concatenate([jnp.stack([de, dp, da]), dd])


def pd_rates(model: IraeModel, patient: PatientPD, e, p, a, d, f_ctla4, f_pd, i_sys, i_gi,
             refractory_gi=0.0):
    """:func:`pd_rhs` on the state's parts: ``(dE, dP, dA, dD[organ])`` per day.

    Solvers that keep the parts apart (no stacking and slicing in the loop) use this directly.
    """
    keep = 1.0 - i_sys
    priming = patient.e0 * (1.0 + patient.a_ctla4 * f_ctla4) * keep
    # capacity in fold of the patient's own baseline pool: a larger pool (pre-existing
    # autoimmune disease, e0 > 1) expands as far relative to itself, never less
    expansion = patient.g_pd1 * f_pd * keep * e * (1.0 - e / (model.e_max * patient.e0))
    de = model.k_e * (priming - e) + expansion
    dp = model.k_p * (e / patient.e0 - p)
    da = model.k_a * (p - a)
    # the GI drive of a steroid-refractory patient keeps its steroid share (the systemic
    # priming and expansion above are suppressed all the same)
    organ_keep = jnp.full(len(ORGANS), keep, jnp.result_type(e)).at[GI].set(
        (1.0 - i_sys * (1.0 - refractory_gi)) * (1.0 - i_gi))
    effector = e * (1.0 + model.w_pd * f_pd)
    drive = (organ_keep * (effector + model.w_ab * a + model.w_ctla4 * f_ctla4)
             - (patient.e0 + model.w_ab))
    drive = fusion_fence(drive)
    dd = patient.susceptibility * positive_part(drive) - model.k_rep * d
    return de, dp, da, dd
