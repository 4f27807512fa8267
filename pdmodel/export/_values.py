"""Where the exported values come from: the irAE parameters (prior means, a fit's posterior
mean or one draw) and the virtual patient (typical, or one drawn patient)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ..errors import ParameterError
from ..fit import Fit
from ..irae import PARAMETER_INFO, IraeModel, Population
from ..vocab import TUMOURS

TYPICAL_WEIGHT_KG = 80.0
"""Body weight of the typical patient, kg (the median of :meth:`Population.sample`)."""


def fit_parameters(fit: Fit, draw: int | None = None) -> tuple[IraeModel, dict[str, str], str]:
    """The irAE parameters of ``fit``: the posterior mean of every natural-scale value
    (``draw=None``) or posterior draw number ``draw`` (0-based, over all chains).

    Returns the model, the source text of each fitted field, and a one-line description.
    Raises :class:`~pdmodel.errors.ParameterError` (a usage error) when ``draw`` is out of
    range.
    """
    n = int(fit.draws.shape[0])
    where = f"fit {fit.path} ({fit.method}, {n} draws)"
    if draw is not None:
        if isinstance(draw, bool) or not isinstance(draw, int | np.integer) or not 0 <= draw < n:
            raise ParameterError(f"{draw!r} is out of range: {fit.path} holds {n} posterior "
                                 f"draws, numbered 0-{n - 1}", "draw")
        model = fit.spec.to_params(jnp.asarray(fit.draws[int(draw)])).model
        what = f"posterior draw {int(draw)} of {where}"
    else:
        batch = jax.vmap(fit.spec.to_params)(jnp.asarray(fit.draws)).model
        model = jax.tree.map(lambda x: jnp.mean(x, axis=0), batch)
        what = f"posterior mean of {where}"
    fitted = {e.field for e in fit.spec.entries if e.group == "model"}
    sources = {f: f"{what} (fitted elements); otherwise {PARAMETER_INFO[f].source}"
               for f in fitted}
    return model, sources, what


def virtual_patient(patient: str | int, n_agents: int, *, tumour: str = "melanoma",
                    seed: int = 0) -> tuple[Population, str]:
    """One virtual patient: ``"typical"`` (80 kg, every random effect 0, median thresholds)
    or patient number ``k`` >= 0, drawn by ``Population.sample`` from
    ``jax.random.fold_in(jax.random.key(seed), k)`` (the same patient for any ``k`` range).

    Returns the one-patient population (random effects for ``n_agents`` agents) and a
    description.
    """
    if tumour not in TUMOURS:
        raise ValueError(f"unknown tumour {tumour!r}; expected one of {TUMOURS}")
    if isinstance(patient, str) and patient.strip().lower() == "typical":
        pop = Population.typical(1, weight_kg=TYPICAL_WEIGHT_KG, max_agents=n_agents)
        pop = pop.replace(tumour=TUMOURS.index(tumour))
        return pop, f"typical patient ({TYPICAL_WEIGHT_KG:g} kg, random effects 0, {tumour})"
    try:
        k = int(patient)
        ok = not isinstance(patient, bool) and k >= 0 and str(patient).strip() == str(k)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"patient must be 'typical' or a patient number >= 0, got {patient!r}")
    key = jax.random.fold_in(jax.random.key(seed), k)
    pop = Population.sample(key, 1, tumour=tumour, max_agents=n_agents)
    return pop, (f"virtual patient {k} (Population.sample, key fold_in(key({seed}), {k}), "
                 f"{float(pop.weight_kg[0]):.4g} kg, {tumour})")
