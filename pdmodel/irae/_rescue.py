"""Immunosuppressant rescue: corticosteroid courses, infliximab, and the management policy.

* Corticosteroids are represented by their daily prednisone-equivalent dose ``d(t)``
  (mg/kg/day); oral absorption and the 2-4 h half-lives of prednisolone/methylprednisolone
  (shared data pkp-0198..0225) are far faster than the immune dynamics (days), so the effect is
  at quasi-steady state in the daily exposure: ``I_s = IMAX·d/(d + ED50)``.
* Infliximab follows the two-compartment model of Fasanmade et al. Eur J Clin Pharmacol
  2009;65:1211-28 (CL 0.407 L/day, V1 3.29 L, Q 7.14 L/day, V2 4.13 L; pkp-0226..0229) and
  suppresses the GI injury drive with ``IMAX·C/(C + EC50)``.
* :class:`ManagementPolicy` triggers a steroid course per patient when an organ reaches the
  trigger grade, tapers it, and escalates to infliximab (GI) when the injury is not improving.
  Defaults follow the SITC consensus (Puzanov et al. JITC 2017 Table 2; pkp-0242..0245) and
  the infliximab rescue dose 5 mg/kg (J Rheum Dis 2019;26:221 Table 1; pkp-0246).
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from ..pk import TwoCompartmentPK

INFLIXIMAB = TwoCompartmentPK(
    cl=np.asarray(0.407), vc=np.asarray(3.29), q=np.asarray(7.14), vp=np.asarray(4.13),
    tv_emax=np.asarray(0.0), tv_imax=np.asarray(0.0), tv_t50=np.asarray(1.0),
    tv_hill=np.asarray(1.0), vmax=np.asarray(0.0), km=np.asarray(1.0),
)
"""Typical infliximab PK (Fasanmade 2009, ulcerative colitis; L, L/day). numpy float64, not
jax arrays: importing pdmodel must not start a JAX backend (``jax.distributed.initialize`` has
to come first) nor fix the float width before the caller chooses float64."""


class ManagementPolicy(eqx.Module):
    """How irAEs are managed, applied to each virtual patient.

    Attributes
    ----------
    enabled : whether rescue is given at all (``False``: natural course).
    trigger_grade : 2 or 3; the first organ reaching it starts a steroid course.
    delay_days : time from reaching the trigger grade to the first steroid dose, days.
    steroid_dose : prednisone-equivalent starting dose, mg/kg/day (SITC grade 2: 0.5-1).
    full_dose_days : minimum days at the full dose; the full dose continues until every
        grade >= 2 episode has resolved to grade <= 1, then tapers (SITC).
    taper_days : linear taper to zero after improvement, days (SITC: 4-6 weeks).
    escalate_after_days : days on steroids after which GI injury that is not improving
        triggers infliximab (SITC: 2-3 days).
    infliximab_dose : mg/kg per infliximab infusion (5 mg/kg).
    max_infliximab_doses : infusions at most (a second one 14 days later if still grade >= 2).
    prophylaxis_dose : prednisone-equivalent dose from day 0 until the course starts,
        mg/kg/day (0 = none).
    hold_at_grade2 : withhold checkpoint-inhibitor infusions from a grade >= 2 onset until the
        episode has resolved and the steroid taper is complete (label/SITC practice).
    discontinue_grade : permanently stop the checkpoint inhibitors once any organ reaches this
        grade (3 = grade >= 3, as labels advise for most irAEs; 0 = never).

    Examples
    --------
    >>> import pdmodel as pdm
    >>> policy = pdm.ManagementPolicy(delay_days=3.0, steroid_dose=0.5)
    >>> float(policy.steroid(10.0, start=5.0, taper_from=20.0))  # mg/kg/day on day 10
    0.5
    >>> pdm.ManagementPolicy.none().enabled
    False
    """

    enabled: bool = eqx.field(static=True, default=True)
    trigger_grade: int = eqx.field(static=True, default=2)
    delay_days: float = eqx.field(converter=jnp.asarray, default=2.0)
    steroid_dose: float = eqx.field(converter=jnp.asarray, default=1.0)
    full_dose_days: float = eqx.field(converter=jnp.asarray, default=7.0)
    taper_days: float = eqx.field(converter=jnp.asarray, default=35.0)
    escalate_after_days: float = eqx.field(converter=jnp.asarray, default=3.0)
    infliximab_dose: float = eqx.field(converter=jnp.asarray, default=5.0)
    max_infliximab_doses: int = eqx.field(static=True, default=2)
    prophylaxis_dose: float = eqx.field(converter=jnp.asarray, default=0.0)
    hold_at_grade2: bool = eqx.field(static=True, default=True)
    discontinue_grade: int = eqx.field(static=True, default=3)

    def __check_init__(self):
        if self.trigger_grade not in (2, 3):
            raise ValueError(f"trigger_grade must be 2 or 3, got {self.trigger_grade!r}")
        if self.discontinue_grade not in (0, 2, 3):
            raise ValueError(f"discontinue_grade must be 0 (never), 2 or 3, got "
                             f"{self.discontinue_grade!r}")
        if self.max_infliximab_doses < 0:
            raise ValueError("max_infliximab_doses must be >= 0, got "
                             f"{self.max_infliximab_doses!r}")

    @classmethod
    def none(cls) -> ManagementPolicy:
        """No immunosuppressant rescue (natural course of the irAEs)."""
        return cls(enabled=False)

    def steroid(self, t, start, taper_from):
        """Prednisone-equivalent dose (mg/kg/day) at day ``t``.

        The course starts at ``start`` at the full dose and tapers linearly from
        ``taper_from`` (``inf`` while the taper has not begun) over ``taper_days``.
        """
        taper = jnp.clip(1.0 - (t - taper_from) / self.taper_days, 0.0, 1.0)
        course = jnp.where(t < start, 0.0, jnp.where(t < taper_from, 1.0, taper))
        dose = self.steroid_dose * course if self.enabled else 0.0 * course
        return jnp.maximum(dose, self.prophylaxis_dose)


def check_policy_values(policy: ManagementPolicy) -> None:
    """Validate array-valued fields eagerly (outside jit), naming the bad field."""
    for name in ("delay_days", "steroid_dose", "full_dose_days", "escalate_after_days",
                 "infliximab_dose", "prophylaxis_dose"):
        value = getattr(policy, name)
        if not bool(jnp.all(jnp.isfinite(value) & (value >= 0))):
            raise ValueError(f"ManagementPolicy.{name} must be finite and >= 0, got {value}")
    if not bool(jnp.all(policy.taper_days > 0)):
        raise ValueError(f"ManagementPolicy.taper_days must be > 0, got {policy.taper_days}")
