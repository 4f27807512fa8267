"""Receptor occupancy of PD-1, PD-L1 and CTLA-4 from serum concentrations.

Agents hitting the same target compete for it, so occupancy generalises ``C/(C + EC50)`` as

.. math::  f_X = \\frac{\\sum_{i \\to X} C_i/EC50_i}{1 + \\sum_{i \\to X} C_i/EC50_i}

which is exactly ``C/(C + EC50)`` for a single agent. Potencies (mg/L) and their sources are in
``pdmodel/data/potency.csv``.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache
from importlib import resources

import jax.numpy as jnp
from jaxtyping import Array, Float

from ..vocab import TARGETS, get_agent


@dataclass(frozen=True)
class Potency:
    """Potency of one agent at its target.

    Attributes
    ----------
    agent, target : agent name and its target (``PD-1``, ``PD-L1`` or ``CTLA-4``).
    ec50 : concentration of half-maximal occupancy, mg/L (= µg/mL).
    kind : ``binding KD``, ``functional EC50`` or ``assumed (class surrogate)``.
    source : citation.
    note : caveats (alternative values, assumptions).

    Examples
    --------
    >>> import pdmodel as pdm
    >>> p = pdm.potencies()["nivolumab"]
    >>> p.target, p.ec50 > 0
    ('PD-1', True)
    """

    agent: str
    target: str
    ec50: float
    kind: str
    source: str
    note: str


@cache
def potencies() -> dict[str, Potency]:
    """Potency (EC50, mg/L) of every agent at its target, with its source.

    Read once from ``pdmodel/data/potency.csv`` and cached.

    Returns
    -------
    dict of str to Potency
        Keyed by agent name (INN), one entry per agent of :data:`pdmodel.AGENTS`.

    Examples
    --------
    >>> import pdmodel as pdm
    >>> pot = pdm.potencies()
    >>> sorted(pot) == sorted(pdm.AGENTS)
    True
    >>> pot["ipilimumab"].target
    'CTLA-4'
    """
    text = resources.files("pdmodel").joinpath("data/potency.csv").read_text()
    return {
        r["agent"]: Potency(r["agent"], r["target"], float(r["ec50"]), r["kind"], r["source"],
                            r["note"])
        for r in csv.DictReader(text.splitlines())
    }


def target_matrix(agents: tuple[str, ...]) -> Float[Array, "agent target"]:
    """One-hot map from agents to :data:`TARGETS`."""
    idx = [TARGETS.index(get_agent(a).target) for a in agents]
    return jnp.eye(len(TARGETS))[jnp.array(idx, dtype=int)]


def occupancy(
    conc: Float[Array, "*t agent"],
    ec50: Float[Array, " agent"],
    targets: Float[Array, "agent target"],
) -> Float[Array, "*t target"]:
    """Fractional occupancy (0-1) of each target from concentrations (mg/L) of each agent.

    Agents hitting the same target compete:
    ``f_X = L_X / (1 + L_X)`` with ``L_X = Σ_{i→X} C_i / EC50_i``.

    Parameters
    ----------
    conc : array [..., agent]
        Serum concentrations, mg/L (= µg/mL); negative values count as 0.
    ec50 : array [agent]
        Concentration of half-maximal occupancy of each agent, mg/L.
    targets : array [agent, target]
        One-hot map from agents to :data:`pdmodel.TARGETS` (PD-1, PD-L1, CTLA-4).

    Returns
    -------
    array [..., target]
        Fraction of each target bound, 0-1.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> import pdmodel as pdm
    >>> targets = jnp.array([[1.0, 0.0, 0.0]])  # one anti-PD-1 agent
    >>> pdm.occupancy(jnp.array([[2.0]]), jnp.array([2.0]), targets).tolist()
    [[0.5, 0.0, 0.0]]
    """
    return weighted_occupancy(conc, ec50, targets)


def weighted_occupancy(
    conc: Float[Array, "*t agent"],
    ec50: Float[Array, " agent"],
    targets: Float[Array, "agent target"],
    weight: Float[Array, " agent"] | None = None,
) -> Float[Array, "*t target"]:
    """Occupancy of each target with each agent's bound share weighted:
    ``f_X = Σ_{i→X} w_i·x_i / (1 + Σ_{i→X} x_i)``, ``x_i = C_i / EC50_i``.

    Agents still compete for the target by their unweighted load; the weight ``w_i`` [agent]
    scales what agent ``i``'s binding does (the irAE model's agent-level deviation from its
    class effect). ``weight=None`` is :func:`occupancy` (all ``w_i = 1``). Concentrations
    ``conc`` [..., agent] and ``ec50`` [agent] in mg/L; negative concentrations count as 0.
    """
    x = jnp.maximum(conc, 0.0) / ec50
    load = x @ targets
    bound = load if weight is None else (x * weight) @ targets
    return bound / (1.0 + load)
