"""Posterior draws ↔ an arviz 1.x ``DataTree`` with readable, natural-scale variables.

Each fitted field becomes one posterior variable on its natural scale (``g_pd1``,
``susceptibility`` over a ``susceptibility_dim`` labelled by organ, ``background`` labelled
``organ|grade``, ``agent_effect`` by agent, endpoint and term fractions by name), so
``az.summary(tree)`` reads like the parameter table of a report. The unconstrained vector is
recovered exactly from these variables (:func:`unconstrained_draws`).
"""

from __future__ import annotations

import lazy_loader as _lazy
import numpy as np
from jaxtyping import Float

from ..vocab import AGENTS, BACKBONES, ENDPOINTS, GRADES, ORGANS, SETTING_LEVELS, TERMS, TUMOURS
from ._parameters import FitSpec, _forward

xr = _lazy.load("xarray")  # imported when a posterior is read: predict starts fast

_AXES: dict[str, tuple[tuple[str, ...], ...]] = {
    "background": (ORGANS, GRADES),
    "agent_effect": (tuple(AGENTS),),
    "endpoint_drug": (ENDPOINTS,),
    "endpoint_background": (ENDPOINTS,),
    "term_fraction": (TERMS,),
    "backbone_background": (BACKBONES, ORGANS),
    "tumour_effect": (TUMOURS, ORGANS),
    "setting_effect": (SETTING_LEVELS, ORGANS),
    "backbone_grade": (GRADES[1:],),
    "endpoint_backbone": (ENDPOINTS,),
}


def dim_name(field: str) -> str:
    """Dimension of a vector field's fitted elements."""
    return f"{field}_dim"


def element_label(field: str, index: tuple[int, ...]) -> str:
    """Readable label of one element: organ, agent, endpoint, term, or ``organ|grade``."""
    axes = _AXES.get(field, (ORGANS,))
    return "|".join(axes[a][i] for a, i in enumerate(index))


def posterior_variables(spec: FitSpec,
                        u: Float[np.ndarray, "chain draw param"]) -> tuple[dict, dict, dict]:
    """``(variables, dims, coords)`` for ``arviz_base.from_dict`` from unconstrained draws
    ``u`` ``[chain, draw, parameter]``, on the natural scale."""
    import jax.numpy as jnp

    u = np.asarray(u)
    nat = np.asarray(jnp.vectorize(spec.natural_values, signature="(n)->(n)")(jnp.asarray(u)))
    groups: dict[str, list[int]] = {}
    for k, e in enumerate(spec.entries):
        groups.setdefault(e.field, []).append(k)
    variables, dims, coords = {}, {}, {}
    for field, ks in groups.items():
        entries = [spec.entries[k] for k in ks]
        if entries[0].index is None:
            variables[field] = nat[..., ks[0]]
            continue
        variables[field] = nat[..., ks]
        dims[field] = [dim_name(field)]
        coords[dim_name(field)] = [element_label(field, e.index) for e in entries]
    return variables, dims, coords


def unconstrained_draws(spec: FitSpec,
                        posterior: xr.Dataset) -> Float[np.ndarray, "chain draw param"]:
    """Unconstrained draws ``[chain, draw, parameter]`` from a posterior group written by
    :func:`posterior_variables` for the same ``spec`` (``KeyError`` naming what is missing)."""
    out = []
    for e in spec.entries:
        if e.field not in posterior:
            raise KeyError(f"posterior has no variable {e.field!r}")
        da = posterior[e.field]
        if e.index is not None:
            da = da.sel({dim_name(e.field): element_label(e.field, e.index)})
        values = np.asarray(da.transpose("chain", "draw").values, dtype=float)
        out.append(np.asarray(_forward(e.prior.transform, values)))
    return np.stack(out, axis=-1)
