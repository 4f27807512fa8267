"""Two-compartment IV-infusion PK of monoclonal antibodies, as equinox modules.

Units: time in days, amounts in mg, volumes in L, clearances in L/day, concentrations in
mg/L (= µg/mL). Parameters here are *individual* values (covariates and random effects
already applied); :mod:`pdmodel.pk._catalogue` turns published typical values into them.

Clearance is

.. math::

    CL(t) = CL \\cdot e^{E_{max} f(t)} \\cdot (1 + I_{max} f(t)), \\qquad
    f(t) = \\frac{t^{\\gamma}}{T_{50}^{\\gamma} + t^{\\gamma}}

with ``t`` the time since the agent's first dose. The log-scale form (``EMAX``; Bajaj 2017,
Sanghavi 2020, Yang 2021, Hwang 2023) and the fractional form (``IMAX``; Masters 2022,
avelumab) are both written so that one array layout covers every agent: the unused one is 0.
Target-mediated elimination adds ``VMAX·C/(KM + C)`` (mg/day).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from ..numerics import LOG_FLOOR

Scalar = Float[Array, "*batch"]


class TwoCompartmentPK(eqx.Module):
    """Individual two-compartment PK parameters of one agent (arrays may carry batch axes).

    Attributes
    ----------
    cl : clearance at the first dose, L/day.
    vc : central volume, L.
    q : inter-compartmental clearance, L/day.
    vp : peripheral volume, L.
    tv_emax : log-scale maximal change of clearance over time (0 = stationary).
    tv_imax : fractional maximal change of clearance over time (0 = stationary).
    tv_t50 : time to half the clearance change, days after the first dose.
    tv_hill : sigmoidicity of the time effect.
    vmax : maximal target-mediated elimination rate, mg/day (0 = none).
    km : concentration at half ``vmax``, mg/L.

    Examples
    --------
    >>> import pdmodel as pdm
    >>> pk = pdm.pk_model("nivolumab").individual(weight_kg=80.0)
    >>> isinstance(pk, pdm.TwoCompartmentPK)
    True
    >>> bool(pk.clearance(365.0) < pk.clearance(0.0))  # nivolumab clearance falls over time
    True
    """

    cl: Scalar
    vc: Scalar
    q: Scalar
    vp: Scalar
    tv_emax: Scalar
    tv_imax: Scalar
    tv_t50: Scalar
    tv_hill: Scalar
    vmax: Scalar
    km: Scalar

    def time_fraction(self, t: Scalar) -> Scalar:
        """Sigmoid time effect ``f(t)`` in [0, 1]; ``t`` in days since the first dose."""
        t_safe = jnp.maximum(t, LOG_FLOOR)
        return jnp.where(
            t > 0, jax.nn.sigmoid(self.tv_hill * (jnp.log(t_safe) - jnp.log(self.tv_t50))), 0.0
        )

    def clearance(self, t: Scalar) -> Scalar:
        """Linear clearance at ``t`` days after the first dose, L/day."""
        f = self.time_fraction(t)
        return self.cl * jnp.exp(self.tv_emax * f) * (1.0 + self.tv_imax * f)

    def michaelis_menten(self, conc: Scalar) -> Scalar:
        """Target-mediated elimination rate at concentration ``conc`` (mg/L), mg/day."""
        return self.vmax * conc / (self.km + conc)


def stack_models(models: list[TwoCompartmentPK]) -> TwoCompartmentPK:
    """Stack several agents' parameters along a new leading ``agent`` axis."""
    return jax.tree.map(lambda *xs: jnp.stack([jnp.asarray(x, float) for x in xs]), *models)
