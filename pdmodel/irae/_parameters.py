"""The irAE model's parameters: ``IraeModel``, an equinox module on the natural scale.

Structure (equations in docs/model.md §4):

* effector T cells ``E`` (fold of the autoreactive pool; 1 without drug): priming inflow raised
  by CTLA-4 blockade, logistic expansion driven by PD-1/PD-L1 blockade, turnover ``K_E``;
  immunosuppression ``I`` reduces both;
* plasma cells ``P`` (fold, 1 at baseline) follow ``E`` with rate ``K_P``; autoantibody ``A``
  (fold of the patient's own baseline titre, 1 at baseline) made by ``P``, cleared with IgG
  half-life; a raised baseline anti-thyroid titre ``a0`` multiplies the thyroid's
  susceptibility (pre-existing thyroid autoimmunity);
* organ injury ``D_o`` for skin, GI, liver, lung, thyroid, pituitary, driven by excess effector
  cells and (weight ``W_AB``) excess autoantibody, repaired at ``K_REP``;
* grade g of organ o reached when the running maximum of ``D_o`` crosses a log-normally
  distributed threshold; background (drug-independent) events as constant hazards.

Default values are prior means. Two are published (IgG half-life; steroid/infliximab doses in
the rescue module); all others are **assumed** and labelled so in :data:`PARAMETER_INFO`,
pending calibration (calibration issue).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from ..errors import ParameterError
from ..vocab import GRADES, ORGANS, SETTING_LEVELS, TUMOURS

ORGAN_FIELDS = ("susceptibility", "k_rep", "w_ab", "w_pd", "w_ctla4", "log_gap2", "log_gap3",
                "sigma")
"""IraeModel fields holding one value per organ."""


POSITIVE_FIELDS = ("ec50_scale", "g_pd1", "k_e", "e_max", "k_p", "k_a", "k_rep", "sigma",
                   "ad_excess", "tumour_effect", "setting_effect", "steroid_ed50", "ifx_ec50",
                   "hypothyroid_lag")
"""IraeModel fields that must be > 0 (rates, capacities, scales, factors)."""
NON_NEGATIVE_FIELDS = ("a_ctla4", "rho_pdl1", "susceptibility", "w_ab", "w_pd", "w_ctla4",
                       "log_gap2", "log_gap3", "tau", "background", "omega_g", "omega_a",
                       "omega_s", "omega_so")
"""IraeModel fields that must be >= 0 (weights, SDs, hazards, ordered threshold gaps)."""
FRACTION_FIELDS = ("steroid_imax", "ifx_imax", "steroid_refractory_gi")
"""IraeModel fields that are fractions in [0, 1]."""


def check_model_values(model: IraeModel) -> None:
    """Raise :class:`~pdmodel.errors.ParameterError` naming the first field of ``model`` that is
    non-finite or outside its range (:data:`POSITIVE_FIELDS` > 0, :data:`NON_NEGATIVE_FIELDS`
    >= 0, :data:`FRACTION_FIELDS` in [0, 1], every other field finite). Traced values (inside
    ``jit``/``vmap``) are not checked."""
    for name in model.__dataclass_fields__:
        value = getattr(model, name)
        if isinstance(value, jax.core.Tracer):
            continue
        x = np.asarray(value, dtype=float)
        where = "" if x.ndim == 0 else " at " + ", ".join(
            _element(name, ix) for ix in np.argwhere(~_allowed(name, x))[:3])
        if not np.all(np.isfinite(x)):
            raise ParameterError(f"must be finite, got {_show(x)}{where}", f"IraeModel.{name}")
        if not np.all(_allowed(name, x)):
            raise ParameterError(f"must be {_range_text(name)} ({PARAMETER_INFO[name].unit}), "
                                 f"got {_show(x)}{where}", f"IraeModel.{name}")


def _allowed(name: str, x: np.ndarray) -> np.ndarray:
    ok = np.isfinite(x)
    if name in POSITIVE_FIELDS:
        ok &= x > 0
    elif name in NON_NEGATIVE_FIELDS:
        ok &= x >= 0
    elif name in FRACTION_FIELDS:
        ok &= (x >= 0) & (x <= 1)
    return ok


def _range_text(name: str) -> str:
    if name in POSITIVE_FIELDS:
        return "positive (> 0)"
    if name in NON_NEGATIVE_FIELDS:
        return "non-negative (>= 0)"
    if name in FRACTION_FIELDS:
        return "a fraction in [0, 1]"
    return "finite"


def _show(x: np.ndarray) -> str:
    return (f"{float(x):g}" if x.ndim == 0 else
            np.array2string(x, precision=4, threshold=12, separator=", ", max_line_width=10_000)
            .replace("\n", ""))


def _element(name: str, index: np.ndarray) -> str:
    """An array element named by its axes (``organ lung``, ``organ gi, grade 3+``)."""
    axes = {"background": (ORGANS, GRADES), "tumour_effect": (TUMOURS, ORGANS),
            "setting_effect": (SETTING_LEVELS, ORGANS)}.get(
        name, (ORGANS,) if name in ORGAN_FIELDS else (None,) * len(index))
    labels = {ORGANS: "organ", GRADES: "grade", TUMOURS: "tumour", SETTING_LEVELS: "setting"}
    return ", ".join(f"{labels[ax]} {ax[i]}" if ax is not None else f"index {i}"
                     for ax, i in zip(axes, (int(i) for i in index), strict=True))


def graded_background(background: Float[Array, "*organ grade"]) -> Float[Array, "*organ grade"]:
    """Hazards of a background event of grade >= 1, >= 2, >= 3 (1/day) from ``background``
    ``[..., grade]``: the reverse cumulative maximum over grades, so the hazard of any grade is
    never below that of grade 2+, nor 2+ below 3+ (the three are separate parameters with
    independent priors; docs/model.md §4.3)."""
    return jax.lax.cummax(jnp.asarray(background), axis=background.ndim - 1, reverse=True)


@dataclass(frozen=True)
class ParameterInfo:
    """Metadata of one :class:`IraeModel` field: unit, meaning, and where the value comes from."""

    name: str
    unit: str
    description: str
    source: str


def _info(name, unit, description, source="assumed (prior mean; to be calibrated)"):
    return ParameterInfo(name, unit, description, source)


PARAMETER_INFO: dict[str, ParameterInfo] = {p.name: p for p in (
    _info("ec50_scale", "1", "in-vivo potency factors on the serum EC50s, per target "
          "(PD-1, PD-L1, CTLA-4)"),
    _info("agent_effect", "1", "agent-level log deviation of each agent's effect from its "
          "class effect, in pdmodel.AGENTS order (partial pooling)"),
    _info("a_ctla4", "1", "fold increase of autoreactive priming at full CTLA-4 occupancy"),
    _info("g_pd1", "1/day", "maximal expansion rate of autoreactive effectors at full PD-1 "
          "blockade"),
    _info("rho_pdl1", "1", "effect of PD-L1 blockade relative to PD-1 blockade (PD-L2 spared)"),
    _info("k_e", "1/day", "turnover rate of the autoreactive effector pool"),
    _info("e_max", "fold", "capacity of effector expansion (fold of the baseline pool)"),
    _info("k_p", "1/day", "plasma-cell formation/turnover rate"),
    _info("k_a", "1/day", "autoantibody (IgG) elimination rate = ln 2 / 21 days",
          "IgG1/2/4 half-life 21-24 days: Cancer Immunol Immunother 2024 Table 1 (pkp-0284)"),
    _info("susceptibility", "1/day", "organ injury per unit excess drive, per organ"),
    _info("k_rep", "1/day", "organ repair rate, per organ"),
    _info("w_ab", "1", "weight of autoantibody relative to effector drive, per organ"),
    _info("w_pd", "1", "local disinhibition of effector function in the organ by PD-1/PD-L1 "
          "blockade (loss of tissue PD-L1 protection), per organ: lung and thyroid (normal "
          "thyroid tissue expresses PD-L1 and PD-L2: Yamauchi I et al. Thyroid "
          "2017;27:894-901)"),
    _info("w_ctla4", "1", "direct injury drive from anti-CTLA-4 bound in the organ (pituitary "
          "cells express CTLA-4: complement/ADCC), per organ"),
    _info("log_gap2", "1", "log ratio of grade-2 to grade-1 thresholds, per organ"),
    _info("log_gap3", "1", "log ratio of grade-3 to grade-2 thresholds, per organ"),
    _info("sigma", "1", "between-patient SD of log thresholds, per organ"),
    _info("tau", "1", "residual grading noise (log scale) for per-patient rescue simulation"),
    _info("background", "1/day", "drug-independent hazard of each organ x grade event "
          "(fitted to placebo/chemotherapy/vaccine arms)"),
    _info("ad_excess", "fold", "excess of the baseline autoreactive pool with pre-existing "
          "autoimmune disease (e0 = 1 + ad_excess; fitted to the subgroup rows)"),
    _info("tumour_effect", "1", "organ-susceptibility factors by tumour type [tumour, organ]"),
    _info("setting_effect", "1", "organ-susceptibility factors by disease setting "
          "[setting, organ] (metastatic = reference, early = adjuvant/neoadjuvant/perioperative)"),
    _info("omega_g", "1", "log-normal IIV (SD) of g_pd1"),
    _info("omega_a", "1", "log-normal IIV (SD) of a_ctla4"),
    _info("omega_s", "1", "patient-level log-normal IIV (SD) shared by all organs' susceptibility"),
    _info("omega_so", "1", "patient x organ log-normal IIV (SD) of susceptibility"),
    _info("steroid_imax", "1", "maximal fractional suppression by corticosteroids"),
    _info("steroid_ed50", "mg/kg/day", "prednisone-equivalent dose for half-maximal "
          "suppression"),
    _info("steroid_refractory_gi", "1", "fraction of patients whose GI injury drive "
          "corticosteroids do not suppress (steroid-refractory colitis: at the infliximab "
          "check their colitis has not improved)",
          "assumed prior median 0.3 (logit-normal, SD 1); steroid-refractory colitis is "
          "common: 22 of 33 grade 3-4 ICI colitis cases in PMC7506225 Table 3 (man-0149, a "
          "severe referral cohort, not fitted); fitted to the infliximab rows "
          "(docs/model.md §5.9)"),
    _info("ifx_imax", "1", "maximal fractional suppression of GI injury drive by infliximab"),
    _info("ifx_ec50", "ug/mL", "infliximab concentration for half-maximal effect"),
    _info("hypothyroid_lag", "day", "time from the onset of thyroiditis (first thyroid "
          "dysfunction, usually thyrotoxic) to the onset of hypothyroidism",
          "assumed prior median 64 days = 2.1 months, the median duration of "
          "hyperthyroidism in the KEYTRUDA US label pool (tim-0096), taking hypothyroidism to "
          "follow the thyrotoxic phase; fitted to the onset rows (docs/model.md §5.7)"),
)}


class IraeModel(eqx.Module):
    """All parameters of the irAE model, natural scale; arrays are leaves (fit them with optax).

    See :data:`PARAMETER_INFO` for units, meanings and sources, and ``docs/model.md`` §4 for the
    equations. ``IraeModel()`` gives the prior-mean defaults. Change a value with
    ``eqx.tree_at`` (the module is immutable). Units below: ``1`` means dimensionless; organs
    are in :data:`ORGANS` order, grades in :data:`GRADES` order, agents in :data:`AGENTS`
    order, tumours in :data:`TUMOURS` order.

    Attributes
    ----------
    ec50_scale : [target], 1
        In-vivo potency factors on the serum EC50s, per target (PD-1, PD-L1, CTLA-4).
    agent_effect : [agent], 1
        Agent-level log deviation of each agent's effect from its class effect, in
        pdmodel.AGENTS order (partial pooling).
    a_ctla4 : scalar, 1
        Fold increase of autoreactive priming at full CTLA-4 occupancy.
    g_pd1 : scalar, 1/day
        Maximal expansion rate of autoreactive effectors at full PD-1 blockade.
    rho_pdl1 : scalar, 1
        Effect of PD-L1 blockade relative to PD-1 blockade (PD-L2 spared).
    k_e : scalar, 1/day
        Turnover rate of the autoreactive effector pool.
    e_max : scalar, fold
        Capacity of effector expansion, in fold of the patient's own baseline pool ``e0``.
    k_p : scalar, 1/day
        Plasma-cell formation/turnover rate.
    k_a : scalar, 1/day
        Autoantibody (IgG) elimination rate = ln 2 / 21 days. Source: IgG1/2/4 half-life 21-24
        days: Cancer Immunol Immunother 2024 Table 1 (pkp-0284).
    susceptibility : [organ], 1/day
        Organ injury per unit excess drive, per organ.
    k_rep : [organ], 1/day
        Organ repair rate, per organ.
    w_ab : [organ], 1
        Weight of autoantibody relative to effector drive, per organ.
    w_pd : [organ], 1
        Local disinhibition of effector function in the organ by PD-1/PD-L1 blockade (loss of
        tissue PD-L1 protection), per organ.
    w_ctla4 : [organ], 1
        Direct injury drive from anti-CTLA-4 bound in the organ (pituitary cells express CTLA-4:
        complement/ADCC), per organ.
    log_gap2 : [organ], 1
        Log ratio of grade-2 to grade-1 thresholds, per organ.
    log_gap3 : [organ], 1
        Log ratio of grade-3 to grade-2 thresholds, per organ.
    sigma : [organ], 1
        Between-patient SD of log thresholds, per organ.
    tau : scalar, 1
        Residual grading noise (log scale) for per-patient rescue simulation.
    background : [organ, grade], 1/day
        Drug-independent hazard of each organ x grade event (fitted to
        placebo/chemotherapy/vaccine arms).
    ad_excess : scalar, fold
        Excess of the baseline autoreactive pool with pre-existing autoimmune disease
        (``e0 = 1 + ad_excess``; > 0, so the disease never lowers a risk).
    tumour_effect : [tumour, organ], 1
        Organ-susceptibility factors by tumour type [tumour, organ].
    setting_effect : [setting, organ], 1
        Organ-susceptibility factors by disease setting [setting, organ] (metastatic =
        reference, early = adjuvant/neoadjuvant/perioperative).
    omega_g : scalar, 1
        Log-normal IIV (SD) of g_pd1.
    omega_a : scalar, 1
        Log-normal IIV (SD) of a_ctla4.
    omega_s : scalar, 1
        Patient-level log-normal IIV (SD) shared by all organs' susceptibility.
    omega_so : scalar, 1
        Patient x organ log-normal IIV (SD) of susceptibility.
    steroid_imax : scalar, 1
        Maximal fractional suppression by corticosteroids.
    steroid_ed50 : scalar, mg/kg/day
        Prednisone-equivalent dose for half-maximal suppression.
    steroid_refractory_gi : scalar, 1
        Fraction of patients whose GI injury drive corticosteroids do not suppress
        (steroid-refractory colitis; their systemic T-cell suppression is kept).
    ifx_imax : scalar, 1
        Maximal fractional suppression of GI injury drive by infliximab.
    ifx_ec50 : scalar, ug/mL
        Infliximab concentration for half-maximal effect.
    hypothyroid_lag : scalar, day
        Time from the onset of thyroiditis (the thyroid's grade threshold crossed: first
        thyroid dysfunction, usually thyrotoxic) to the onset of hypothyroidism; it shifts
        hypothyroidism onset times only (docs/model.md §4.3, §5.7).

    Examples
    --------
    >>> import equinox as eqx
    >>> import jax.numpy as jnp
    >>> import pdmodel as pdm
    >>> model = pdm.IraeModel()
    >>> model.susceptibility.shape, model.background.shape
    ((6,), (6, 3))
    >>> faster = eqx.tree_at(lambda m: m.k_e, model, jnp.asarray(0.08))  # 1/day
    >>> float(faster.k_e), float(model.k_e)
    (0.08, 0.05)
    """

    ec50_scale: Float[Array, " target"] = eqx.field(converter=jnp.asarray, default=(1.0, 1.0, 1.0))
    agent_effect: Float[Array, " agent"] = eqx.field(converter=jnp.asarray, default=(0.0,) * 8)
    a_ctla4: Float[Array, ""] = eqx.field(converter=jnp.asarray, default=3.0)
    g_pd1: Float[Array, ""] = eqx.field(converter=jnp.asarray, default=0.04)
    rho_pdl1: Float[Array, ""] = eqx.field(converter=jnp.asarray, default=0.6)
    k_e: Float[Array, ""] = eqx.field(converter=jnp.asarray, default=0.05)
    e_max: Float[Array, ""] = eqx.field(converter=jnp.asarray, default=8.0)
    k_p: Float[Array, ""] = eqx.field(converter=jnp.asarray, default=0.05)
    k_a: Float[Array, ""] = eqx.field(converter=jnp.asarray, default=math.log(2.0) / 21.0)
    susceptibility: Float[Array, " organ"] = eqx.field(
        converter=jnp.asarray, default=(0.043, 0.022, 0.007, 0.00092, 0.00106, 0.0004))
    k_rep: Float[Array, " organ"] = eqx.field(
        converter=jnp.asarray, default=(0.10, 0.08, 0.05, 0.03, 0.02, 0.02))
    w_ab: Float[Array, " organ"] = eqx.field(
        converter=jnp.asarray, default=(0.0, 0.0, 0.2, 0.0, 1.0, 2.0))
    w_pd: Float[Array, " organ"] = eqx.field(
        converter=jnp.asarray, default=(0.0, 0.0, 0.0, 1.5, 1.0, 0.0))
    w_ctla4: Float[Array, " organ"] = eqx.field(
        converter=jnp.asarray, default=(0.0, 0.0, 0.0, 0.0, 0.0, 5.0))
    log_gap2: Float[Array, " organ"] = eqx.field(
        converter=jnp.asarray, default=(1.0, 0.5, 0.3, 0.32, 0.9, 0.15))
    log_gap3: Float[Array, " organ"] = eqx.field(
        converter=jnp.asarray, default=(1.0, 0.5, 0.3, 0.32, 1.0, 0.15))
    sigma: Float[Array, " organ"] = eqx.field(
        converter=jnp.asarray, default=(0.7, 0.7, 0.7, 0.7, 0.7, 0.7))
    tau: Float[Array, ""] = eqx.field(converter=jnp.asarray, default=0.1)
    background: Float[Array, "organ grade"] = eqx.field(
        converter=jnp.asarray,
        default=((4e-4, 4e-5, 4e-6), (6e-4, 1.5e-4, 4e-5), (2e-4, 5e-5, 2e-5),
                 (5e-5, 2e-5, 5e-6), (2e-4, 5e-5, 1e-6), (1e-5, 5e-6, 1e-6)))
    ad_excess: Float[Array, ""] = eqx.field(converter=jnp.asarray, default=0.5)
    tumour_effect: Float[Array, "tumour organ"] = eqx.field(
        converter=jnp.asarray, default=tuple((1.0,) * 6 for _ in TUMOURS))
    setting_effect: Float[Array, "setting organ"] = eqx.field(
        converter=jnp.asarray, default=tuple((1.0,) * 6 for _ in SETTING_LEVELS))
    omega_g: Float[Array, ""] = eqx.field(converter=jnp.asarray, default=0.6)
    omega_a: Float[Array, ""] = eqx.field(converter=jnp.asarray, default=0.5)
    omega_s: Float[Array, ""] = eqx.field(converter=jnp.asarray, default=0.5)
    omega_so: Float[Array, ""] = eqx.field(converter=jnp.asarray, default=0.5)
    steroid_imax: Float[Array, ""] = eqx.field(converter=jnp.asarray, default=0.9)
    steroid_ed50: Float[Array, ""] = eqx.field(converter=jnp.asarray, default=0.3)
    steroid_refractory_gi: Float[Array, ""] = eqx.field(converter=jnp.asarray, default=0.3)
    ifx_imax: Float[Array, ""] = eqx.field(converter=jnp.asarray, default=0.9)
    ifx_ec50: Float[Array, ""] = eqx.field(converter=jnp.asarray, default=5.0)
    hypothyroid_lag: Float[Array, ""] = eqx.field(converter=jnp.asarray, default=64.0)

    def __check_init__(self):
        n = len(ORGANS)
        for name in ORGAN_FIELDS:
            if getattr(self, name).shape != (n,):
                raise ValueError(f"IraeModel.{name} must have shape ({n},) (one per organ "
                                 f"{ORGANS}), got {getattr(self, name).shape}")
        if self.background.shape != (n, len(GRADES)):
            raise ValueError(f"IraeModel.background must have shape ({n}, {len(GRADES)}) "
                             f"[organ, grade], got {self.background.shape}")
        if self.tumour_effect.shape != (len(TUMOURS), n):
            raise ValueError(f"IraeModel.tumour_effect must have shape ({len(TUMOURS)}, {n}) "
                             f"[tumour {TUMOURS}, organ], got {self.tumour_effect.shape}")
        if self.setting_effect.shape != (len(SETTING_LEVELS), n):
            raise ValueError(f"IraeModel.setting_effect must have shape ({len(SETTING_LEVELS)}, "
                             f"{n}) [setting {SETTING_LEVELS}, organ], got "
                             f"{self.setting_effect.shape}")
        if self.agent_effect.shape != (8,):
            raise ValueError("IraeModel.agent_effect must have shape (8,), one per agent in "
                             f"pdmodel.AGENTS order, got {self.agent_effect.shape}")
        if self.ec50_scale.shape != (3,):
            raise ValueError("IraeModel.ec50_scale must have shape (3,) for PD-1, PD-L1, "
                             f"CTLA-4, got {self.ec50_scale.shape}")
        check_model_values(self)
