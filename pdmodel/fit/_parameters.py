"""Fitted parameters: which ones, their priors on the natural scale, and the one place where
they map to and from the unconstrained vector optimisers and samplers see.

A :class:`FitSpec` lists :class:`FittedParameter` entries — a field of :class:`IraeModel` or of
:class:`ObservationParams` (the observation model's nuisance parameters), the elements fitted,
a prior, and the transform (``log`` for positive values, ``logit`` for fractions, ``identity``
otherwise). Everything not listed stays at its default. Priors are log-normal / logit-normal
around the documented defaults (docs/model.md §5).
"""

from __future__ import annotations

from dataclasses import dataclass

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.stats import norm
from jaxtyping import Array, Float

from ..irae import IraeModel
from ..vocab import BACKBONES, ENDPOINTS, ORGANS, TERMS, TUMOURS


class ObservationParams(eqx.Module):
    """Nuisance parameters of the observation model (natural scale; docs/model.md §5).

    Attributes
    ----------
    endpoint_drug : array [endpoint], fraction 0-1
        Fraction of the model's drug-related events counted under each endpoint, in the order
        ``("treatment_related", "immune_related", "immune_mediated", "select", "all_cause")``;
        treatment-related is the reference, fixed at 1.
    endpoint_background : array [endpoint], fraction 0-1
        Fraction of background (drug-independent) events counted under each endpoint
        (all-cause counts them all).
    term_fraction : array [term], fraction 0-1
        Fraction of an organ's events reported under each specific term, in the order
        ``("rash", "pruritus", "diarrhea", "colitis", "hepatitis", "pneumonitis",
        "hypothyroidism", "hyperthyroidism", "hypophysitis")``.
    concentration : scalar, 1
        Beta-binomial concentration φ (between-trial heterogeneity; larger = less).
    backbone_background : array [backbone, organ], 1/day
        Hazard of drug-independent organ events (any grade) that each backbone of
        :data:`BACKBONES` (chemotherapy, trastuzumab + chemotherapy, ...) adds to the background
        of every arm; fitted to the control arms that give the backbone (docs/model.md §5.3).
    backbone_grade : array [2], fraction 0-1
        Grade profile of backbone events: the fraction of grade ≥ 2 among them, and of grade
        ≥ 3 among those of grade ≥ 2 (shared by backbones and organs).
    trial_sd : scalar, 1
        SD of the trial random effect on the logit of a trial's expected proportions (rows of
        one study move together; docs/model.md §5.2).
    endpoint_backbone : array [endpoint], fraction 0-1
        Fraction of backbone events counted under each endpoint (all-cause counts them all;
        investigators attribute most of them to treatment, few to an immune mechanism).

    Examples
    --------
    >>> import pdmodel as pdm
    >>> obs = pdm.ObservationParams(concentration=20.0)
    >>> obs.endpoint_drug.shape, obs.term_fraction.shape, float(obs.concentration)
    ((5,), (9,), 20.0)
    """

    endpoint_drug: Float[Array, " endpoint"] = eqx.field(converter=jnp.asarray,
                                                         default=(1.0, 0.8, 0.6, 0.8, 1.0))
    endpoint_background: Float[Array, " endpoint"] = eqx.field(
        converter=jnp.asarray, default=(0.3, 0.1, 0.05, 0.2, 1.0))
    term_fraction: Float[Array, " term"] = eqx.field(
        converter=jnp.asarray, default=(0.6, 0.5, 0.9, 0.35, 0.8, 0.95, 0.8, 0.4, 0.95))
    concentration: Float[Array, ""] = eqx.field(converter=jnp.asarray, default=50.0)
    backbone_background: Float[Array, "backbone organ"] = eqx.field(
        converter=jnp.asarray, default=tuple((2e-4,) * len(ORGANS) for _ in BACKBONES))
    backbone_grade: Float[Array, " 2"] = eqx.field(converter=jnp.asarray, default=(0.4, 0.4))
    trial_sd: Float[Array, ""] = eqx.field(converter=jnp.asarray, default=0.3)
    endpoint_backbone: Float[Array, " endpoint"] = eqx.field(
        converter=jnp.asarray, default=(0.7, 0.1, 0.05, 0.2, 1.0))

    def backbone_hazard(self) -> Float[Array, "backbone organ grade"]:
        """Hazard of backbone events of grade ≥ 1, ≥ 2, ≥ 3 ``[backbone, organ, grade]``,
        1/day."""
        f2, f3 = self.backbone_grade[0], self.backbone_grade[1]
        share = jnp.stack([jnp.ones_like(f2), f2, f2 * f3])
        return self.backbone_background[..., None] * share


class Params(eqx.Module):
    """Everything the log-density depends on: the irAE model and the observation model.

    Attributes
    ----------
    model : IraeModel
        irAE model parameters (default: prior means).
    obs : ObservationParams
        Observation-model parameters (default: prior medians).

    Examples
    --------
    >>> import pdmodel as pdm
    >>> params = pdm.Params()
    >>> float(params.model.k_e), float(params.obs.concentration)
    (0.05, 50.0)
    """

    # factories, not instances: defaults are built at call time, after any float64 switch
    model: IraeModel = eqx.field(default_factory=IraeModel)
    obs: ObservationParams = eqx.field(default_factory=ObservationParams)


@dataclass(frozen=True)
class Prior:
    """Prior of one (vector of) parameter(s) on the natural scale.

    Attributes
    ----------
    dist : {"lognormal", "logitnormal", "normal"}
        Distribution; it sets the unconstrained transform (``log``, ``logit``, ``identity``).
    median : float or tuple of float
        Median on the natural scale, in the parameter's unit (the mean for ``normal``); may be
        a vector.
    sd : float
        Standard deviation of the log (``lognormal``), of the logit (``logitnormal``) or of the
        value itself (``normal``); > 0.

    Examples
    --------
    >>> import pdmodel as pdm
    >>> prior = pdm.Prior("lognormal", median=0.05, sd=0.5)
    >>> prior.transform
    'log'
    >>> round(float(prior.location()), 4)  # log(0.05)
    -2.9957
    """

    dist: str
    median: tuple[float, ...] | float
    sd: float

    def __post_init__(self):
        if self.dist not in ("lognormal", "logitnormal", "normal"):
            raise ValueError(f"unknown prior distribution {self.dist!r}; expected lognormal, "
                             "logitnormal or normal")
        if not self.sd > 0:
            raise ValueError(f"prior sd must be > 0, got {self.sd!r}")

    @property
    def transform(self) -> str:
        """Unconstrained transform matching the support."""
        return {"lognormal": "log", "logitnormal": "logit", "normal": "identity"}[self.dist]

    def location(self) -> Float[Array, "*element"]:
        """Prior centre on the unconstrained scale."""
        return _forward(self.transform, jnp.asarray(self.median, dtype=float))

    def log_density(self, u: Float[Array, "*element"]) -> Float[Array, ""]:
        """Log prior density at unconstrained ``u``, including the change-of-variables term,
        so it is the density of ``u`` itself (what samplers need)."""
        return jnp.sum(norm.logpdf(u, self.location(), self.sd))


def _forward(transform: str, x):
    if transform == "log":
        return jnp.log(x)
    if transform == "logit":
        return jnp.log(x) - jnp.log1p(-x)
    return x


def _inverse(transform: str, u):
    if transform == "log":
        return jnp.exp(u)
    if transform == "logit":
        return jax.nn.sigmoid(u)
    return u


@dataclass(frozen=True)
class FittedParameter:
    """One fitted (element of a) field of :class:`Params`, with its prior.

    Attributes
    ----------
    group : {"model", "obs"}
        :class:`IraeModel` (``"model"``) or :class:`ObservationParams` (``"obs"``).
    field : str
        Field name, e.g. ``"susceptibility"``.
    prior : Prior
        Prior on the natural scale (its unit is the field's).
    index : tuple of int or None
        Element of the field that is fitted; ``None`` = the whole (scalar) field.

    Examples
    --------
    >>> import pdmodel as pdm
    >>> entry = pdm.FittedParameter("model", "susceptibility",
    ...                             pdm.Prior("lognormal", 0.022, 1.0), index=(1,))
    >>> entry.name
    'susceptibility[1]'
    """

    group: str
    field: str
    prior: Prior
    index: tuple[int, ...] | None = None

    @property
    def name(self) -> str:
        """``field`` or ``field[i]`` label for reports."""
        if self.index is None:
            return self.field
        return f"{self.field}[{','.join(map(str, self.index))}]"


def _idx(*i):
    return tuple(i)


def _default_entries() -> tuple[FittedParameter, ...]:
    m = IraeModel()
    o = ObservationParams()
    wide, mid, narrow = 1.0, 0.7, 0.5

    def organwise(field, sd):
        values = np.asarray(getattr(m, field))
        return [FittedParameter("model", field, Prior("lognormal", float(values[j]), sd), _idx(j))
                for j in range(len(ORGANS)) if values[j] > 0]

    entries = [
        FittedParameter("model", "a_ctla4", Prior("lognormal", float(m.a_ctla4), mid)),
        FittedParameter("model", "g_pd1", Prior("lognormal", float(m.g_pd1), mid)),
        FittedParameter("model", "rho_pdl1", Prior("logitnormal", float(m.rho_pdl1), wide)),
        FittedParameter("model", "k_e", Prior("lognormal", float(m.k_e), narrow)),
        *organwise("susceptibility", wide),
        *organwise("k_rep", narrow),
        *organwise("log_gap2", narrow),
        *organwise("log_gap3", narrow),
        *organwise("w_ab", mid),
        *organwise("w_pd", mid),
        *organwise("w_ctla4", mid),
        # pre-existing autoimmune disease: informed by the subgroup rows (docs/model.md §5.8)
        FittedParameter("model", "ad_excess", Prior("lognormal", float(m.ad_excess), 1.0)),
        # corticosteroid effect: informed by the management rows (docs/model.md §5.9)
        FittedParameter("model", "steroid_imax", Prior("logitnormal", float(m.steroid_imax),
                                                       wide)),
        FittedParameter("model", "steroid_ed50", Prior("lognormal", float(m.steroid_ed50), wide)),
        # infliximab effect on the GI drive: the managed course's GI injury after the
        # infliximab check (management rows, managed training arms; docs/model.md §5.9)
        FittedParameter("model", "ifx_imax", Prior("logitnormal", float(m.ifx_imax), wide)),
        # steroid-refractory colitis: the infliximab rows (docs/model.md §5.9)
        FittedParameter("model", "steroid_refractory_gi",
                        Prior("logitnormal", float(m.steroid_refractory_gi), wide)),
        FittedParameter("model", "ifx_ec50", Prior("lognormal", float(m.ifx_ec50), wide)),
        # thyroiditis -> hypothyroidism: the hypothyroidism onset rows (docs/model.md §5.7)
        FittedParameter("model", "hypothyroid_lag", Prior("lognormal",
                                                          float(m.hypothyroid_lag), narrow)),
    ]
    bg = np.asarray(m.background)
    entries += [FittedParameter("model", "background", Prior("lognormal", float(bg[j, g]), wide),
                                _idx(j, g)) for j in range(len(ORGANS)) for g in range(3)]
    entries += [FittedParameter("model", "agent_effect", Prior("normal", 0.0, 0.3), _idx(i))
                for i in range(8)]
    for e, name in enumerate(ENDPOINTS):
        if name not in ("treatment_related", "all_cause"):
            entries.append(FittedParameter(
                "obs", "endpoint_drug", Prior("logitnormal", float(o.endpoint_drug[e]), wide),
                _idx(e)))
        if name != "all_cause":
            entries.append(FittedParameter(
                "obs", "endpoint_background",
                Prior("logitnormal", float(o.endpoint_background[e]), wide), _idx(e)))
    entries += [FittedParameter("obs", "term_fraction",
                                Prior("logitnormal", float(o.term_fraction[t]), wide), _idx(t))
                for t in range(len(TERMS))]
    entries.append(FittedParameter("obs", "concentration",
                                   Prior("lognormal", float(o.concentration), wide)))
    entries.append(FittedParameter("obs", "trial_sd", Prior("lognormal", float(o.trial_sd), mid)))
    # covariate effects on susceptibility: melanoma and metastatic are the reference levels
    te = np.asarray(m.tumour_effect)
    entries += [FittedParameter("model", "tumour_effect", Prior("lognormal", float(te[t, j]), mid),
                                _idx(t, j))
                for t in range(1, len(TUMOURS)) for j in range(len(ORGANS))]
    se = np.asarray(m.setting_effect)
    entries += [FittedParameter("model", "setting_effect", Prior("lognormal", float(se[1, j]),
                                                                 mid), _idx(1, j))
                for j in range(len(ORGANS))]
    # backbones (docs/model.md §5.3): assumed, weakly informative priors
    bb = np.asarray(o.backbone_background)
    entries += [FittedParameter("obs", "backbone_background",
                                Prior("lognormal", float(bb[b, j]), 1.5), _idx(b, j))
                for b in range(len(BACKBONES)) for j in range(len(ORGANS))]
    entries += [FittedParameter("obs", "backbone_grade",
                                Prior("logitnormal", float(o.backbone_grade[g]), wide), _idx(g))
                for g in range(2)]
    entries += [FittedParameter("obs", "endpoint_backbone",
                                Prior("logitnormal", float(o.endpoint_backbone[e]), wide), _idx(e))
                for e, name in enumerate(ENDPOINTS) if name != "all_cause"]
    return tuple(entries)


class FitSpec(eqx.Module):
    """Which parameters are fitted, their priors, and the unconstrained vector layout.

    The one place where natural-scale :class:`Params` map to and from the unconstrained
    vector ``u`` that optimisers and samplers see (``log`` for positive values, ``logit``
    for fractions).

    Attributes
    ----------
    entries : tuple of FittedParameter
        The fitted parameters, in the order of ``u`` (static).
    base : Params
        Values of everything not fitted (and the starting point).

    Examples
    --------
    >>> import pdmodel as pdm
    >>> spec = pdm.FitSpec.default(fixed=("agent_effect",))
    >>> spec.names[:3]
    ('a_ctla4', 'g_pd1', 'rho_pdl1')
    >>> u = spec.prior_location()  # unconstrained vector at every prior's centre
    >>> u.shape == (spec.size,)
    True
    >>> params = spec.to_params(u)  # natural-scale Params (differentiable)
    >>> round(float(params.model.a_ctla4), 6)  # exp(log 3), to float64 rounding
    3.0
    """

    entries: tuple[FittedParameter, ...] = eqx.field(static=True)
    base: Params

    @classmethod
    def default(cls, base: Params | None = None, *, fixed: tuple[str, ...] = ()) -> FitSpec:
        """The documented default fit; fields named in ``fixed`` are held at ``base``."""
        entries = tuple(e for e in _default_entries() if e.field not in fixed)
        return cls(entries=entries, base=Params() if base is None else base)

    @property
    def names(self) -> tuple[str, ...]:
        """Label of each entry of the unconstrained vector."""
        return tuple(e.name for e in self.entries)

    @property
    def size(self) -> int:
        """Length of the unconstrained vector."""
        return len(self.entries)

    def to_params(self, u: Float[Array, " param"]) -> Params:
        """Unconstrained vector → natural-scale :class:`Params` (differentiable)."""
        p = self.base
        for k, e in enumerate(self.entries):
            value = _inverse(e.prior.transform, u[k])

            def where(t, e=e):
                return getattr(getattr(t, e.group), e.field)

            leaf = where(p)
            new = value if e.index is None else leaf.at[e.index].set(value)
            p = eqx.tree_at(where, p, jnp.asarray(new, dtype=leaf.dtype))
        return p

    def to_unconstrained(self, p: Params) -> Float[Array, " param"]:
        """Natural-scale :class:`Params` → unconstrained vector."""
        out = []
        for e in self.entries:
            leaf = getattr(getattr(p, e.group), e.field)
            x = leaf if e.index is None else leaf[e.index]
            out.append(_forward(e.prior.transform, x))
        return jnp.stack(out)

    def natural_values(self, u: Float[Array, " param"]) -> Float[Array, " param"]:
        """Natural-scale value of each entry (same order as :attr:`names`)."""
        return jnp.stack([_inverse(e.prior.transform, u[k]) for k, e in enumerate(self.entries)])

    def prior_location(self) -> Float[Array, " param"]:
        """Unconstrained vector at every prior's centre."""
        return jnp.stack([e.prior.location() for e in self.entries])

    def prior_scale(self) -> Float[Array, " param"]:
        """Prior SD of each unconstrained entry."""
        return jnp.array([e.prior.sd for e in self.entries])

    def log_prior(self, u: Float[Array, " param"]) -> Float[Array, ""]:
        """Log prior density of the unconstrained vector."""
        return jnp.sum(norm.logpdf(u, self.prior_location(), self.prior_scale()))
