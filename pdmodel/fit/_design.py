"""Training design: the arm-level rows of the incidence data as arrays, the regimens they
simulate and the virtual population — everything fixed during a fit (:class:`Design`).

Each data row is the number of patients ``y`` of ``n`` in one trial arm with an irAE of one
organ (or any organ) in one grade band, under one reporting definition (endpoint); the model
predicts it at the arm's horizon (:mod:`pdmodel.fit._likelihood`, docs/model.md §5). Bands:
``P(lo ≤ grade ≤ hi) = P(≥lo) − P(≥hi+1)`` (grade 4/5 are not resolved, so ``3-4`` and ``3-5``
both use ``P(≥3)``; single grades 3, 4, 5 are not used).

Each arm is simulated at the regimen the bundled table names in ``regimen_model`` (printed, from
the trial design, or an assumed regimen where the source prints no dose; ``regimen_basis`` says
which), or at its ``regimen`` when it parses (a user's table). Control arms need no simulation:
they carry the background of their backbone only (docs/model.md §5.3), as does the backbone
part of an ICI + backbone arm.

The rows are given by the caller (e.g. ``pdmodel.data.load_incidence()``): nothing here reads
the bundled tables.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from jaxtyping import Array, Float, Int

from ..errors import RegimenError
from ..irae import IraeProblem, Population
from ..irae.solvers import stage_concentrations
from ..regimen import Regimen, flat_step_edges, step_grid
from ..vocab import BACKBONES, ENDPOINTS, ORGANS, TERMS

HORIZON_DAYS = 365
"""Assumed reporting horizon of every arm (the curated data give no usable follow-up)."""

MEDIAN_TREATMENT_DAYS = 125.0
"""Assumed median treatment duration (exponential stop times): 4.1 months, Brahmer 2024
pooled pembrolizumab safety (man-0043); the atezolizumab label pool (36% > 6 months, man-0035)
implies 4.1 months as well."""


class Observations(NamedTuple):
    """Training rows ``[row]``, stored as tuples (hashable: part of the static design)."""

    row_id: tuple[str, ...]
    regimen: tuple[int, ...]  # index into Design.regimens, -1 for control arms
    backbone: tuple[int, ...]  # index into BACKBONES, -1 for none
    organ: tuple[int, ...]  # 0 = any, 1.. = ORGANS
    lo: tuple[int, ...]  # lowest grade of the band, 1..3
    upper: tuple[int, ...]  # grade whose P(>=) is subtracted: 3 for band 1-2, else 0 (none)
    endpoint: tuple[int, ...]  # index into ENDPOINTS
    term: tuple[int, ...]  # index into TERMS, -1 for an organ group
    n: tuple[int, ...]
    y: tuple[int, ...]

    def arrays(self) -> Observations:
        """The same rows with numpy arrays (for indexing)."""
        return Observations(self.row_id, *(np.asarray(x) for x in self[1:]))


class StackedRegimens(eqx.Module):
    """Several regimens padded to common shapes (agents, steps) and stacked on a leading
    ``regimen`` axis, so one ``vmap`` simulates them all and the fit compiles once.

    The PK does not depend on fitted parameters, so every patient's concentrations at the
    solver's stage times are computed here, once (:mod:`pdmodel.irae.solvers._likelihood`).
    """

    edges: Float[Array, "regimen step1"]  # flat step boundaries, days
    concentration: Float[Array, "regimen patient step 3 agent"]  # start/mid/end, mg/L
    ec50: Float[Array, "regimen agent"]  # serum EC50, mg/L
    targets: Float[Array, "regimen agent target"]
    target_index: Int[Array, "regimen agent"]
    agent_index: Int[Array, "regimen agent"]


class Design(eqx.Module):
    """Everything fixed during a fit: regimens, their stacked problem, population, data.

    Built by :func:`build_design`; a pytree (arrays are leaves, the rest static), so it can be
    passed to jitted log-densities.

    Attributes
    ----------
    regimens : tuple of str
        Canonical text of every simulated regimen.
    stacked : StackedRegimens
        The regimens padded and stacked on a leading ``regimen`` axis, with precomputed PK.
    population : Population
        The virtual patients every regimen is simulated for (common random numbers).
    obs : Observations
        The training rows: regimen index, organ, grade band, endpoint, term, ``n``, ``y``.
    horizon : int
        Reporting horizon of every arm, days.

    Examples
    --------
    >>> import pandas as pd
    >>> import pdmodel as pdm
    >>> rows = pd.DataFrame({  # one arm, two rows (columns as in docs/data.md)
    ...     "row_id": ["r1", "r2"], "organ": ["any", "gi"], "organ_model": ["any", "gi"],
    ...     "grade_min": [1, 3], "grade_max": 5, "n": 100, "events_used": [60, 5],
    ...     "endpoint": "treatment_related", "term_level": "group",
    ...     "regimen": "nivolumab 240 mg q2w", "regimen_parsed": 1,
    ...     "agents_model": "nivolumab", "arm_class": "anti-PD-1", "fit_default": 1})
    >>> design = pdm.build_design(rows, patients=4, days=28)
    >>> design.regimens, design.horizon, design.obs.y
    (('nivolumab 240 mg q2w',), 28, (60, 5))
    """

    regimens: tuple[str, ...] = eqx.field(static=True)
    stacked: StackedRegimens
    population: Population
    obs: Observations = eqx.field(static=True)
    horizon: int = eqx.field(static=True)


@partial(jax.jit, static_argnames="michaelis_menten")
def _population_concentrations(pk, grid, weight_kg, stop_day, *, michaelis_menten: bool):
    """:func:`stage_concentrations` of every patient ``[patient, step, 3, agent]``; the grid is
    an argument, so regimens padded to one shape share one compiled program."""
    return jax.vmap(partial(stage_concentrations, michaelis_menten=michaelis_menten),
                    in_axes=(0, None, 0, 0))(pk, grid, weight_kg, stop_day)


def stack_regimens(regimens: tuple[str, ...], pop: Population, *, days: int,
                   steps_per_day: int, refine: int, models=None) -> StackedRegimens:
    """Prepare ``regimens`` for one batched simulation of ``pop``: flat step grids padded to
    one length, and every patient's concentrations on them."""
    parsed = [Regimen.parse(t) for t in regimens]
    n_agent = max(len(r.agents) for r in parsed)
    n_steps = max(flat_step_edges(r, days, steps_per_day, refine).size - 1 for r in parsed)
    edges, conc, ec50, targets, tidx, aidx = [], [], [], [], [], []
    for r in parsed:
        prob = IraeProblem.build(r, days=days, steps_per_day=steps_per_day, refine=refine,
                                 models=models)
        pad = n_agent - len(r.agents)
        agents = r.agents + ("",) * pad
        grid = step_grid(r, agents, days, steps_per_day, refine, n_steps)
        pk = jax.tree.map(lambda x, pad=pad: jnp.concatenate([x] + [x[:, :1]] * pad, axis=1),
                          prob.patient_pk(pop))  # [patient, agent]
        conc.append(_population_concentrations(pk, grid, pop.weight_kg, pop.stop_day,
                                               michaelis_menten=prob.michaelis_menten))
        edges.append(grid.edges)
        ec50.append(jnp.concatenate([prob.ec50, jnp.ones(pad)]))
        targets.append(jnp.concatenate([prob.targets, jnp.zeros((pad, 3))]))
        tidx.append(jnp.concatenate([prob.target_index, jnp.zeros(pad, int)]))
        aidx.append(jnp.concatenate([prob.agent_index, jnp.zeros(pad, int)]))
    return StackedRegimens(
        edges=jnp.stack(edges), concentration=jnp.stack(conc), ec50=jnp.stack(ec50),
        targets=jnp.stack(targets), target_index=jnp.stack(tidx), agent_index=jnp.stack(aidx))


def _band(gmin: int, gmax: int) -> tuple[int, int] | None:
    if gmin in (1, 2, 3) and gmax == 5:
        return gmin, 0
    if (gmin, gmax) == (3, 4):
        return 3, 0
    if (gmin, gmax) == (1, 2):
        return 1, 3
    return None


def _sim_regimen(row) -> str | None:
    """Canonical text of the regimen a row's arm is simulated with (None for a control arm)."""
    if row["arm_class"] == "control" or not str(row.get("agents_model", "")):
        return None
    text = str(row.get("regimen_model", "")) or str(row["regimen"])
    try:
        return str(Regimen.parse(text))
    except RegimenError as err:
        raise RegimenError(f"row {row['row_id']}: the arm's regimen {text!r} does not parse "
                           f"({err}); give `regimen_model` or a pdmodel regimen") from None


def _backbone(row) -> int:
    """Index of the row's backbone in :data:`BACKBONES`, -1 for none."""
    name = str(row.get("backbone", ""))
    if not name:
        return -1
    if name not in BACKBONES:
        raise ValueError(f"row {row['row_id']}: backbone {name!r} is not modelled; known: "
                         f"{', '.join(BACKBONES)}")
    return BACKBONES.index(name)


def select_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Rows used for fitting: ``fit_default == 1`` with a grade band the model resolves.

    ``df`` holds incidence rows in the bundled format (docs/data.md), e.g.
    ``pdmodel.data.load_incidence()``.
    """
    df = df[df["fit_default"] == 1].copy()
    keep = [_band(int(a), int(b)) is not None for a, b in zip(df.grade_min, df.grade_max,
                                                              strict=True)]
    return df[keep]


def _row_fields(r, regimen: int) -> dict:
    """One selected row as the :class:`Observations` fields (``regimen``: its index)."""
    lo, upper = _band(int(r.grade_min), int(r.grade_max))
    organ = r.organ_model
    return {
        "row_id": r.row_id, "regimen": regimen, "backbone": _backbone(r),
        "organ": 0 if organ == "any" else 1 + ORGANS.index(organ), "lo": lo, "upper": upper,
        "endpoint": ENDPOINTS.index(r.endpoint),
        "term": TERMS.index(r.organ) if r.term_level == "specific" else -1,
        "n": int(r.n), "y": int(r.events_used),
    }


def _observations(rows: pd.DataFrame) -> tuple[Observations, tuple[str, ...]]:
    """The selected rows as :class:`Observations`, and the distinct regimens they simulate
    (in order of first use; a row's ``regimen`` indexes them, -1 for control arms)."""
    regimens: list[str] = []
    fields = {k: [] for k in Observations._fields}
    for _, r in rows.iterrows():
        text = _sim_regimen(r)
        if text is not None and text not in regimens:
            regimens.append(text)
        row = _row_fields(r, -1 if text is None else regimens.index(text))
        for k, v in row.items():
            fields[k].append(v)
    obs = Observations(row_id=tuple(fields.pop("row_id")),
                       **{k: tuple(int(x) for x in v) for k, v in fields.items()})
    return obs, tuple(regimens)


def _design_population(regimens: tuple[str, ...], *, patients: int, seed: int,
                       tumour: str) -> Population:
    """The virtual patients every regimen is simulated for (common random numbers)."""
    max_agents = max(len(Regimen.parse(t).agents) for t in regimens)
    return Population.sample(jax.random.key(seed), patients, tumour=tumour,
                             median_duration_days=MEDIAN_TREATMENT_DAYS, max_agents=max_agents)


def build_design(
    df: pd.DataFrame,
    *,
    patients: int = 64,
    days: int = HORIZON_DAYS,
    seed: int = 0,
    steps_per_day: int = 1,
    refine: int = 1,
    tumour: str = "melanoma",
    models=None,
) -> Design:
    """Training design from incidence rows (e.g. ``pdmodel.data.load_incidence()``).

    Keeps the rows with ``fit_default == 1`` and a grade band the model resolves, simulates
    each distinct regimen (label regimen where the source prints no doses) and samples one
    virtual population for all of them.

    Parameters
    ----------
    df : pandas.DataFrame
        Incidence rows in the bundled format (docs/data.md); the bundled table is
        ``pdmodel.data.load_incidence()``.
    patients : int
        Virtual patients per regimen.
    days : int
        Simulated days = reporting horizon of every arm.
    seed : int
        Seed of the population's random numbers.
    steps_per_day, refine : int
        Fixed-grid resolution (PD steps a day, geometric sub-steps in each infusion).
    tumour : str
        Tumour type of the population (one of :data:`TUMOURS`).
    models : dict of str to str, optional
        PK model id per agent (default :data:`DEFAULT_MODELS`).

    Returns
    -------
    Design
        Regimens, population and observation rows, ready for :func:`log_density`.

    Examples
    --------
    >>> import pandas as pd
    >>> import pdmodel as pdm
    >>> rows = pd.DataFrame({  # one arm, two rows (columns as in docs/data.md)
    ...     "row_id": ["r1", "r2"], "organ": ["any", "gi"], "organ_model": ["any", "gi"],
    ...     "grade_min": [1, 3], "grade_max": 5, "n": 100, "events_used": [60, 5],
    ...     "endpoint": "treatment_related", "term_level": "group",
    ...     "regimen": "nivolumab 240 mg q2w", "regimen_parsed": 1,
    ...     "agents_model": "nivolumab", "arm_class": "anti-PD-1", "fit_default": 1})
    >>> design = pdm.build_design(rows, patients=4, days=28)
    >>> len(design.obs.n), design.population.size
    (2, 4)
    """
    obs, regimens = _observations(select_rows(df))
    pop = _design_population(regimens, patients=patients, seed=seed, tumour=tumour)
    stacked = stack_regimens(regimens, pop, days=days, steps_per_day=steps_per_day,
                             refine=refine, models=models)
    return Design(regimens=regimens, stacked=stacked, population=pop, obs=obs, horizon=days)
