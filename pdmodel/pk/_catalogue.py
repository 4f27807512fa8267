"""Published population-PK models of the checkpoint inhibitors, loaded from package data.

``pdmodel/data/pk_models.csv`` holds every value in canonical units (L, L/day, day, mg/day,
mg/L) next to the published value, its source and the curated row it came from. This module
turns a model's rows into a :class:`PKModelSpec`, which builds individual
:class:`~pdmodel.pk._model.TwoCompartmentPK` parameters for a body weight and random effects:

* ``P_i = P_typ · (WT / WT_REF)^WT_EXP · exp(η)`` for CL, VC, Q, VP, VMAX, TV_T50;
* ``EMAX_i = EMAX + η`` (``TV:add``) or ``EMAX_i = EMAX · exp(η)`` (``TV:exp``);
* combination-specific values (``condition = with:<agent>``) replace the monotherapy ones.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from functools import cache
from importlib import resources

import jax.numpy as jnp
import numpy as np
from jaxtyping import Float

from ..vocab import AGENTS, get_agent
from ._model import TwoCompartmentPK

DEFAULT_MODELS: dict[str, str] = {
    "nivolumab": "bajaj2017",
    "pembrolizumab": "ahamadi2017",
    "cemiplimab": "yang2021",
    "atezolizumab": "stroh2017",
    "durvalumab": "baverel2018",
    "avelumab": "masters2022",
    "ipilimumab": "sanghavi2020",
    "tremelimumab": "hwang2023",
}
"""PK model used for each agent unless another is asked for."""

_STRUCTURAL = ("CL", "VC", "Q", "VP", "TV_EMAX", "TV_IMAX", "TV_T50", "TV_HILL", "VMAX", "KM")
_NEUTRAL = {"TV_EMAX": 0.0, "TV_IMAX": 0.0, "TV_T50": 1.0, "TV_HILL": 1.0, "VMAX": 0.0,
            "KM": 1.0, "CL_LOGFACTOR": 0.0}


@dataclass(frozen=True)
class PKModelSpec:
    """A published population-PK model of one agent (typical values, covariates, IIV).

    Attributes
    ----------
    agent, model : agent name and model id (e.g. ``"nivolumab"``, ``"bajaj2017"``).
    source : citation of the model's parameter table.
    typical : typical values in canonical units, keyed by parameter name.
    conditional : ``{"with:<agent>": {parameter: value}}`` combination-specific values.
    wt_ref : reference body weight, kg.
    wt_exp : body-weight power exponent per parameter.
    eta_targets : for each random effect, the parameters it acts on (``"TV:add"`` etc.).
    omega : covariance matrix of the random effects (log scale, or additive for ``TV:add``).
    rows : the CSV rows, for provenance.

    Examples
    --------
    >>> import pdmodel as pdm
    >>> spec = pdm.pk_model("durvalumab")
    >>> spec.model, spec.wt_ref, spec.n_eta > 0
    ('baverel2018', 69.0, True)
    >>> pk = spec.individual(weight_kg=70.0)  # typical 70-kg patient: TwoCompartmentPK
    >>> bool(pk.cl > 0)
    True
    """

    agent: str
    model: str
    source: str
    typical: dict[str, float]
    conditional: dict[str, dict[str, float]]
    wt_ref: float
    wt_exp: dict[str, float]
    eta_targets: tuple[tuple[str, ...], ...]
    omega: Float[np.ndarray, "eta eta"] = field(compare=False)
    rows: tuple[dict[str, str], ...] = field(compare=False, repr=False)

    @property
    def n_eta(self) -> int:
        """Number of random effects."""
        return len(self.eta_targets)

    @property
    def michaelis_menten(self) -> bool:
        """True when the model has target-mediated (Michaelis-Menten) elimination."""
        return self.typical.get("VMAX", 0.0) > 0

    @property
    def linear(self) -> bool:
        """True when clearance is constant and linear (no time effect, no target-mediated)."""
        values = [self.typical.get(k, 0.0) for k in ("TV_EMAX", "TV_IMAX", "VMAX")]
        values += [c.get(k, 0.0) for c in self.conditional.values() for k in ("TV_EMAX",)]
        return all(v == 0.0 for v in values)

    def parameters(self, with_agents: tuple[str, ...] | frozenset[str] = ()) -> dict[str, float]:
        """Typical values in effect when given together with ``with_agents``."""
        values = dict(_NEUTRAL) | dict(self.typical)
        for cond, overrides in self.conditional.items():
            if cond.removeprefix("with:") in with_agents:
                values |= overrides
        return values

    def individual(
        self,
        weight_kg=None,
        eta=None,
        with_agents: tuple[str, ...] | frozenset[str] = (),
    ) -> TwoCompartmentPK:
        """Individual parameters for body weight ``weight_kg`` (kg) and random effects ``eta``.

        ``weight_kg=None`` means the model's reference weight; ``eta=None`` means the typical
        patient. Both may be JAX arrays (traced), so this is differentiable and vmappable.
        """
        p = self.parameters(with_agents)
        wt = self.wt_ref if weight_kg is None else weight_kg
        ratio = jnp.asarray(wt, dtype=float) / self.wt_ref
        log_shift = {k: 0.0 for k in _STRUCTURAL}
        tv_add = 0.0
        tv_log = 0.0
        if eta is not None:
            eta = jnp.asarray(eta, dtype=float)
            for i, targets in enumerate(self.eta_targets):
                for t in targets:
                    if t == "TV:add":
                        tv_add = tv_add + eta[..., i]
                    elif t == "TV:exp":
                        tv_log = tv_log + eta[..., i]
                    else:
                        log_shift[t] = log_shift[t] + eta[..., i]

        def value(name):
            base = p[name] * ratio ** self.wt_exp.get(name, 0.0)
            return base * jnp.exp(log_shift[name])

        cl = value("CL") * jnp.exp(p["CL_LOGFACTOR"])
        tv_emax = (p["TV_EMAX"] + jnp.where(p["TV_EMAX"] != 0.0, tv_add, 0.0)) * jnp.exp(tv_log)
        tv_imax = p["TV_IMAX"] * jnp.exp(tv_log)
        return TwoCompartmentPK(
            cl=cl, vc=value("VC"), q=value("Q"), vp=value("VP"),
            tv_emax=jnp.asarray(tv_emax, float), tv_imax=jnp.asarray(tv_imax, float),
            tv_t50=value("TV_T50"), tv_hill=jnp.asarray(p["TV_HILL"], float) + 0.0 * ratio,
            vmax=value("VMAX"), km=jnp.asarray(p["KM"], float) + 0.0 * ratio,
        )


@cache
def _rows() -> tuple[dict[str, str], ...]:
    text = resources.files("pdmodel").joinpath("data/pk_models.csv").read_text()
    return tuple(csv.DictReader(text.splitlines()))


def _spec_from_rows(agent: str, model: str, rows: list[dict[str, str]]) -> PKModelSpec:
    typical: dict[str, float] = {}
    conditional: dict[str, dict[str, float]] = {}
    wt_exp: dict[str, float] = {}
    eta_targets: list[tuple[str, ...]] = []
    variances: list[float] = []
    covs: list[tuple[str, str, float]] = []
    wt_ref = float("nan")
    for r in rows:
        par, val, applies, cond = r["parameter"], float(r["value"]), r["applies_to"], r["condition"]
        if cond:
            conditional.setdefault(cond, {})[par] = val
        elif par == "WT_REF":
            wt_ref = val
        elif par == "WT_EXP":
            for t in applies.split(","):
                wt_exp[t] = val
        elif par == "OMEGA2":
            eta_targets.append(tuple(applies.split(",")))
            variances.append(val)
        elif par == "COV":
            a, b = applies.split(",")
            covs.append((a, b, val))
        else:
            typical[par] = val
    omega = np.diag(variances) if variances else np.zeros((0, 0))
    first = [t[0] for t in eta_targets]
    for a, b, c in covs:
        i, j = first.index(a), first.index(b)
        omega[i, j] = omega[j, i] = c
    return PKModelSpec(
        agent=agent, model=model, source=rows[0]["source"], typical=typical,
        conditional=conditional, wt_ref=wt_ref, wt_exp=wt_exp,
        eta_targets=tuple(eta_targets), omega=omega, rows=tuple(rows),
    )


def available_models() -> dict[str, tuple[str, ...]]:
    """Model ids of the published PK models available for each agent, default first.

    Returns
    -------
    dict of str to tuple of str
        Keyed by agent name; the first id is :data:`pdmodel.DEFAULT_MODELS`'s.

    Examples
    --------
    >>> import pdmodel as pdm
    >>> models = pdm.available_models()
    >>> models["nivolumab"][0] == pdm.DEFAULT_MODELS["nivolumab"]
    True
    """
    out: dict[str, list[str]] = {a: [DEFAULT_MODELS[a]] for a in AGENTS}
    for r in _rows():
        if r["model"] not in out[r["agent"]]:
            out[r["agent"]].append(r["model"])
    return {a: tuple(m) for a, m in out.items()}


@cache
def pk_model(agent: str, model: str | None = None) -> PKModelSpec:
    """The published PK model ``model`` of ``agent`` (default: :data:`DEFAULT_MODELS`).

    Parameters
    ----------
    agent : str
        Agent INN or brand name.
    model : str, optional
        Model id (see :func:`available_models`); ``None`` for the default model.

    Returns
    -------
    PKModelSpec
        Typical values (L, L/day, day, mg/day, mg/L), covariate effects, random-effect
        covariance and the source of every value.

    Raises
    ------
    KeyError
        Unknown agent, or a model id not available for it (the message lists the choices).

    Examples
    --------
    >>> import pdmodel as pdm
    >>> spec = pdm.pk_model("Opdivo")
    >>> spec.agent, spec.model
    ('nivolumab', 'bajaj2017')
    >>> spec.typical["CL"]  # L/day
    0.2256
    """
    name = get_agent(agent).name
    model = DEFAULT_MODELS[name] if model is None else model
    rows = [r for r in _rows() if r["agent"] == name and r["model"] == model]
    if not rows:
        choices = ", ".join(available_models()[name])
        raise KeyError(f"no PK model {model!r} for {name}; available: {choices}")
    return _spec_from_rows(name, model, rows)
