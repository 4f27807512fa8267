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
import lazy_loader as _lazy
import numpy as np
from jaxtyping import Array, Float, Int

from ..errors import RegimenError
from ..irae import IraeProblem, Population
from ..irae.solvers import stage_concentrations
from ..regimen import Regimen, flat_step_edges, step_grid
from ..vocab import (
    ASSUMED_REGIMENS,
    BACKBONES,
    ENDPOINTS,
    ORGANS,
    SETTING_LEVELS,
    TERMS,
    TUMOURS,
    setting_level,
)
from ._management import (
    MANAGEMENT_DAYS,
    ManagementDesign,
    management_rows,
    no_management_rows,
)
from ._onset import ONSET_PATIENT_FACTOR, OnsetDesign, knot_days, knot_steps, onset_rows
from ._subgroups import SUBGROUP_DAYS, SubgroupDesign, subgroup_rows

pd = _lazy.load("pandas")  # imported when a design table is built: predict starts fast

HORIZON_DAYS = 365
"""Default simulated days (``build_design(days=...)``; the fit's config sets its own): the
reporting horizon of an arm whose source gives none (assumption)."""

REPORTING_WINDOW_DAYS = 100.0
"""Assumed reporting window after the last dose of a fixed course when the source prints none
(the longest window the data print: 100 days, CheckMate 238, inc-0300-series notes)."""

MIN_HORIZON_DAYS = 28
"""Shortest horizon an arm is simulated for (days)."""

MEDIAN_TREATMENT_DAYS = 125.0
"""Assumed median treatment duration (exponential stop times): 4.1 months, Brahmer 2024
pooled pembrolizumab safety (man-0043); the atezolizumab label pool (36% > 6 months, man-0035)
implies 4.1 months as well."""


class Observations(NamedTuple):
    """Training rows ``[row]``, stored as tuples (hashable: part of the static design)."""

    row_id: tuple[str, ...]
    regimen: tuple[int, ...]  # index into Design.units (simulated arms), -1 for control arms
    backbone: tuple[int, ...]  # index into BACKBONES, -1 for none
    horizon: tuple[int, ...]  # days from the first dose to the end of reporting
    tumour: tuple[int, ...]  # index into TUMOURS
    setting: tuple[int, ...]  # index into SETTING_LEVELS
    trial: tuple[int, ...]  # index into Design.trials (rows of one study share a trial effect)
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
    steps: tuple[int, ...] = eqx.field(static=True, default=())  # real steps per regimen

    def length_groups(self) -> tuple[tuple[tuple[int, ...], int], ...]:
        """The regimens in at most :data:`MAX_LENGTH_GROUPS` groups of similar length, each
        ``(regimen indices, steps)`` to simulate them for: solving each group only to its
        longest member's step count, not every regimen to the longest of all, costs
        ``Σ size·steps`` instead of ``regimens·max steps`` (the trailing padded steps are
        no-ops, so the results are the same). Chosen exactly (contiguous groups of the
        regimens sorted by length): the fewest groups within :data:`LENGTH_GROUP_SLACK` of
        the least cost, since every group is one more traced solve, and one group unless that
        saves :data:`MIN_SAVED_STEPS` or more; one group without ``steps``."""
        n_total = int(self.edges.shape[-1]) - 1
        if not self.steps:
            return ((tuple(range(self.edges.shape[0])), n_total),)
        order = sorted(range(len(self.steps)), key=lambda i: (self.steps[i], i))
        length = [self.steps[i] for i in order]
        n = len(order)
        # best[k][j]: least cost of the first j regimens (sorted) in k groups, and its cut
        best = [[(0, 0)] + [(float("inf"), 0)] * n]
        for _ in range(MAX_LENGTH_GROUPS):
            prev = best[-1]
            best.append([(0, 0)] + [min(((prev[i][0] + (j - i) * length[j - 1], i)
                                         for i in range(j)), default=(float("inf"), 0))
                                    for j in range(1, n + 1)])
        least = min(b[n][0] for b in best[1:])
        k = min(k for k in range(1, len(best)) if best[k][n][0] <= LENGTH_GROUP_SLACK * least)
        if best[1][n][0] - best[k][n][0] < MIN_SAVED_STEPS:
            k = 1
        cuts, j = [], n
        while k > 0:
            i = best[k][j][1]
            cuts.append((i, j))
            j, k = i, k - 1
        return tuple((tuple(order[i:j]), length[j - 1]) for i, j in reversed(cuts))

    def take(self, regimens: tuple[int, ...], steps: int) -> StackedRegimens:
        """The regimens ``regimens`` simulated for their first ``steps`` steps (all their real
        steps: see :meth:`length_groups`)."""
        idx = np.asarray(regimens)
        return StackedRegimens(
            edges=self.edges[idx, :steps + 1],
            concentration=self.concentration[idx, :, :steps],
            ec50=self.ec50[idx], targets=self.targets[idx], target_index=self.target_index[idx],
            agent_index=self.agent_index[idx],
            steps=tuple(self.steps[i] for i in regimens) if self.steps else ())


MAX_LENGTH_GROUPS = 3
LENGTH_GROUP_SLACK = 1.1
MIN_SAVED_STEPS = 500
"""Most groups of similar length the stacked regimens are solved in, the cost (arm-steps)
above the least that fewer groups may have, and the least saving worth a second group
(:meth:`StackedRegimens.length_groups`): each group is one more traced solve (seconds of
compilation: 4 s for the natural course, 14 s for the managed one, against about 20 µs a
gradient per arm-step at 32 patients: 500 arm-steps pay for 4 s after 400 gradients; a small
design of short arms stays in one group). Bundled fit: 22 arms of 276-800 steps in a group of
19 up to 423 steps and one of 3 up to 800 (41% fewer arm-steps than all 22 to 800); the
management and subgroup arms (373-423 steps) stay in one group."""


class SimulatedArm(NamedTuple):
    """One simulated arm: a regimen, how long it is followed and how long it is given.

    Rows of arms that share all four share one solve (``Design.units``).
    """

    regimen: str  # canonical regimen text
    days: int  # reporting horizon: days simulated
    median_treatment_days: float  # median of the exponential treatment durations, days
    course_days: float  # planned maximum treatment duration, days (inf: none)


class Design(eqx.Module):
    """Everything fixed during a fit: simulated arms, their stacked problem, population, data.

    Built by :func:`build_design`; a pytree (arrays are leaves, the rest static), so it can be
    passed to jitted log-densities.

    Attributes
    ----------
    units : tuple of SimulatedArm
        Every simulated arm (regimen, horizon, treatment duration), in the order of the
        stacked ``regimen`` axis.
    stacked : StackedRegimens
        The arms padded and stacked on a leading ``regimen`` axis, with precomputed PK.
    population : Population
        The virtual patients every arm is simulated for (common random numbers).
    obs : Observations
        The training rows: arm index, organ, grade band, endpoint, term, horizon, tumour,
        setting, trial, ``n``, ``y``.
    trials : tuple of str
        The studies of the rows (``obs.trial`` indexes them).
    horizon : int
        Longest reporting horizon, days.
    onset : OnsetDesign or None
        Published median onset times and the arms they simulate
        (:mod:`pdmodel.fit._onset`); None when the fit uses none.
    subgroups : SubgroupDesign or None
        Published incidences in subgroups (anti-thyroid antibodies, pre-existing autoimmune
        disease) and the arms they simulate (:mod:`pdmodel.fit._subgroups`); None when the
        fit uses none.
    management : ManagementDesign or None
        Published steroid, resolution and infliximab fractions and the arms they simulate
        under the default management policy (:mod:`pdmodel.fit._management`); None when the
        fit uses none.

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

    units: tuple[SimulatedArm, ...] = eqx.field(static=True)
    stacked: StackedRegimens
    population: Population
    obs: Observations = eqx.field(static=True)
    trials: tuple[str, ...] = eqx.field(static=True)
    horizon: int = eqx.field(static=True)
    onset: OnsetDesign | None = None
    subgroups: SubgroupDesign | None = None
    management: ManagementDesign | None = None

    @property
    def regimens(self) -> tuple[str, ...]:
        """Regimen text of every simulated arm (an arm per ``regimen`` axis entry)."""
        return tuple(u.regimen for u in self.units)


@partial(jax.jit, static_argnames="michaelis_menten")
def _population_concentrations(pk, grid, weight_kg, stop_day, *, michaelis_menten: bool):
    """:func:`stage_concentrations` of every patient ``[patient, step, 3, agent]``; the grid is
    an argument, so regimens padded to one shape share one compiled program."""
    return jax.vmap(partial(stage_concentrations, michaelis_menten=michaelis_menten),
                    in_axes=(0, None, 0, 0))(pk, grid, weight_kg, stop_day)


def arm_stop_days(pop: Population, arm: SimulatedArm) -> Float[Array, " patient"]:
    """Treatment stop day of every patient in ``arm``: the population's exponential stop days
    (median :data:`MEDIAN_TREATMENT_DAYS`) rescaled to the arm's median and capped at its
    planned course (common random numbers across arms)."""
    scale = arm.median_treatment_days / MEDIAN_TREATMENT_DAYS
    return jnp.minimum(pop.stop_day * scale, arm.course_days)


def stack_regimens(units, pop: Population, *, days: int | None = None,
                   steps_per_day: int, refine: int, models=None) -> StackedRegimens:
    """Prepare simulated arms for one batched simulation of ``pop``: flat step grids (each to
    its own horizon) padded to one length, and every patient's concentrations on them.

    ``units`` are :class:`SimulatedArm` s, or regimen texts simulated for ``days`` with the
    population's own stop days."""
    units = tuple(u if isinstance(u, SimulatedArm) else
                  SimulatedArm(str(u), int(days), MEDIAN_TREATMENT_DAYS, float("inf"))
                  for u in units)
    parsed = [Regimen.parse(u.regimen) for u in units]
    n_agent = max(len(r.agents) for r in parsed)
    steps = tuple(int(flat_step_edges(r, u.days, steps_per_day, refine).size - 1)
                  for r, u in zip(parsed, units, strict=True))
    n_steps = max(steps)
    edges, conc, ec50, targets, tidx, aidx = [], [], [], [], [], []
    for r, u in zip(parsed, units, strict=True):
        prob = IraeProblem.build(r, days=u.days, steps_per_day=steps_per_day, refine=refine,
                                 models=models)
        pad = n_agent - len(r.agents)
        agents = r.agents + ("",) * pad
        grid = step_grid(r, agents, u.days, steps_per_day, refine, n_steps)
        pk = jax.tree.map(lambda x, pad=pad: jnp.concatenate([x] + [x[:, :1]] * pad, axis=1),
                          prob.patient_pk(pop))  # [patient, agent]
        conc.append(_population_concentrations(pk, grid, pop.weight_kg, arm_stop_days(pop, u),
                                               michaelis_menten=prob.michaelis_menten))
        edges.append(grid.edges)
        ec50.append(jnp.concatenate([prob.ec50, jnp.ones(pad)]))
        targets.append(jnp.concatenate([prob.targets, jnp.zeros((pad, 3))]))
        tidx.append(jnp.concatenate([prob.target_index, jnp.zeros(pad, int)]))
        aidx.append(jnp.concatenate([prob.agent_index, jnp.zeros(pad, int)]))
    return StackedRegimens(
        edges=jnp.stack(edges), concentration=jnp.stack(conc), ec50=jnp.stack(ec50),
        targets=jnp.stack(targets), target_index=jnp.stack(tidx), agent_index=jnp.stack(aidx),
        steps=steps)


def _band(gmin: int, gmax: int) -> tuple[int, int] | None:
    if gmin in (1, 2, 3) and gmax == 5:
        return gmin, 0
    if (gmin, gmax) == (3, 4):
        return 3, 0
    if (gmin, gmax) == (1, 2):
        return 1, 3
    return None


def _text(row, column: str) -> str:
    value = row.get(column, "")
    return "" if value is None or (not isinstance(value, str) and pd.isna(value)) else \
        str(value)


def _weeks(row, column: str) -> float | None:
    value = row.get(column)
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if np.isfinite(x) and x > 0 else None


def _sim_regimen(row) -> str | None:
    """Canonical text of the regimen a row's arm is simulated with (None for a control arm)."""
    if row["arm_class"] == "control" or not _text(row, "agents_model"):
        return None
    text = _text(row, "regimen_model") or _text(row, "regimen")
    try:
        return str(Regimen.parse(text))
    except RegimenError as err:
        raise RegimenError(f"row {row['row_id']}: the arm's regimen {text!r} does not parse "
                           f"({err}); give `regimen_model` or a pdmodel regimen") from None


def arm_timing(row, days: int, max_days: int | None = None) -> dict:
    """How long a row's arm is followed and treated, and why (the design table's columns):
    ``horizon_days`` (printed follow-up; else the planned course plus its reporting window,
    printed or :data:`REPORTING_WINDOW_DAYS`; else ``days``; within
    [:data:`MIN_HORIZON_DAYS`, ``max_days``], ``max_days`` defaulting to ``days``),
    ``median_treatment_days`` (printed median treatment
    duration, else :data:`MEDIAN_TREATMENT_DAYS`), ``course_days`` (printed planned maximum,
    else inf), and ``horizon_basis`` / ``treatment_basis`` in words."""
    follow, course = _weeks(row, "followup_weeks"), _weeks(row, "course_weeks")
    window, treated = _weeks(row, "window_weeks"), _weeks(row, "treatment_weeks")
    if follow is not None:
        horizon, hb = follow * 7, "printed follow-up"
    elif course is not None:
        extra = REPORTING_WINDOW_DAYS if window is None else window * 7
        horizon = course * 7 + extra
        hb = ("planned course + printed reporting window" if window is not None else
              f"planned course + {REPORTING_WINDOW_DAYS:g} days (assumed window)")
    else:
        horizon, hb = days, f"{days} days (assumed: no follow-up printed)"
    cap = days if max_days is None else max(days, max_days)
    horizon = int(round(min(max(horizon, MIN_HORIZON_DAYS), cap)))
    if treated is not None:
        median, tb = treated * 7, "printed median treatment duration"
    else:
        median, tb = MEDIAN_TREATMENT_DAYS, f"median {MEDIAN_TREATMENT_DAYS:g} days (assumed)"
    if course is not None:
        tb += f", at most the planned {course * 7:g} days"
    return {"horizon_days": horizon, "median_treatment_days": float(median),
            "course_days": float("inf") if course is None else float(course * 7),
            "horizon_basis": hb, "treatment_basis": tb}


def _backbone(row) -> int:
    """Index of the row's backbone in :data:`BACKBONES`, -1 for none."""
    name = _text(row, "backbone")
    if not name:
        return -1
    if name not in BACKBONES:
        raise ValueError(f"row {row['row_id']}: backbone {name!r} is not modelled; known: "
                         f"{', '.join(BACKBONES)}")
    return BACKBONES.index(name)


def _tumour(row) -> int:
    name = _text(row, "tumour_model") or "melanoma"
    if name not in TUMOURS:
        raise ValueError(f"row {row['row_id']}: tumour_model {name!r} is not one of "
                         f"{', '.join(TUMOURS)}")
    return TUMOURS.index(name)


def _setting(row) -> int:
    name = _text(row, "setting_model") or _text(row, "setting") or "metastatic"
    return SETTING_LEVELS.index(setting_level(name))


def _trial(row) -> str:
    return _text(row, "study") or _text(row, "source") or _text(row, "citation") or \
        str(row["row_id"])


def select_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Rows used for fitting: ``fit_default == 1`` with a grade band the model resolves.

    ``df`` holds incidence rows in the bundled format (docs/data.md), e.g.
    ``pdmodel.data.load_incidence()``.
    """
    df = df[df["fit_default"] == 1].copy()
    keep = [_band(int(a), int(b)) is not None for a, b in zip(df.grade_min, df.grade_max,
                                                              strict=True)]
    return df[keep]


def design_table(df: pd.DataFrame, *, days: int = HORIZON_DAYS,
                 max_days: int | None = None) -> pd.DataFrame:
    """For every selected row, the arm it is simulated as and why: ``row_id``, ``study``,
    ``agents_model``, ``backbone``, ``regimen_simulated`` (empty for control arms),
    ``regimen_basis``, ``horizon_days``, ``horizon_basis``, ``median_treatment_days``,
    ``course_days``, ``treatment_basis``, ``tumour_model``, ``setting_level``."""
    out = []
    for _, r in select_rows(df).iterrows():
        text = _sim_regimen(r)
        timing = arm_timing(r, days, max_days)
        out.append({
            "row_id": r["row_id"], "study": _trial(r), "agents_model": _text(r, "agents_model"),
            "backbone": _text(r, "backbone"), "regimen_simulated": text or "",
            "regimen_basis": (_text(r, "regimen_basis") or ("printed in the source" if text
                                                             else "control arm: not simulated")),
            **timing,
            "tumour_model": TUMOURS[_tumour(r)], "setting_level": SETTING_LEVELS[_setting(r)]})
    return pd.DataFrame(out)


def _row_fields(r, regimen: int, horizon: int, trial: int) -> dict:
    """One selected row as the :class:`Observations` fields (``regimen``: its arm index)."""
    lo, upper = _band(int(r.grade_min), int(r.grade_max))
    organ = r.organ_model
    return {
        "row_id": r.row_id, "regimen": regimen, "backbone": _backbone(r), "horizon": horizon,
        "tumour": _tumour(r), "setting": _setting(r), "trial": trial,
        "organ": 0 if organ == "any" else 1 + ORGANS.index(organ), "lo": lo, "upper": upper,
        "endpoint": ENDPOINTS.index(r.endpoint),
        "term": TERMS.index(r.organ) if r.term_level == "specific" else -1,
        "n": int(r.n), "y": int(r.events_used),
    }


def _observations(rows: pd.DataFrame, days: int = HORIZON_DAYS, max_days: int | None = None
                  ) -> tuple[Observations, tuple[SimulatedArm, ...], tuple[str, ...]]:
    """The selected rows as :class:`Observations`, the distinct arms they simulate (in order
    of first use; a row's ``regimen`` indexes them, -1 for control arms) and their studies."""
    units: list[SimulatedArm] = []
    trials: list[str] = []
    fields = {k: [] for k in Observations._fields}
    for _, r in rows.iterrows():
        text = _sim_regimen(r)
        timing = arm_timing(r, days, max_days)
        index = -1
        if text is not None:
            unit = SimulatedArm(text, timing["horizon_days"], timing["median_treatment_days"],
                                timing["course_days"])
            if unit not in units:
                units.append(unit)
            index = units.index(unit)
        trial = _trial(r)
        if trial not in trials:
            trials.append(trial)
        row = _row_fields(r, index, timing["horizon_days"], trials.index(trial))
        for k, v in row.items():
            fields[k].append(v)
    obs = Observations(row_id=tuple(fields.pop("row_id")),
                       **{k: tuple(int(x) for x in v) for k, v in fields.items()})
    return obs, tuple(units), tuple(trials)


def _design_population(units, *, patients: int, seed: int, tumour: str,
                       stream: int = 0) -> Population:
    """The virtual patients every arm is simulated for (common random numbers; Latin-hypercube
    draws, docs/model.md §5.1); ``stream`` 1: the onset arms' own population."""
    max_agents = max(len(Regimen.parse(u.regimen).agents) for u in units)
    key = jax.random.key(seed)
    key = key if stream == 0 else jax.random.fold_in(key, stream)
    return Population.sample(key, patients, tumour=tumour,
                             median_duration_days=MEDIAN_TREATMENT_DAYS, max_agents=max_agents,
                             stratified=True)


def managed_arm_regimens(units: tuple[SimulatedArm, ...]) -> tuple[str, ...]:
    """The regimen whose managed course stands for each incidence arm ``[unit]``: the label
    regimen of its agents (``ASSUMED_REGIMENS``, any backbone), or the first arm's own regimen
    with those agents when they have none. The managed course's effect on grades above the
    trigger grade is taken from it at :data:`MANAGEMENT_DAYS` (an approximation: one solve per
    agent combination, not per arm; docs/model.md §5.9)."""
    label = {frozenset(agents.split(";")): regimen
             for (agents, backbone), regimen in ASSUMED_REGIMENS.items() if backbone is None}
    out = []
    for u in units:
        agents = frozenset(Regimen.parse(u.regimen).agents)
        label.setdefault(agents, u.regimen)
        out.append(label[agents])
    return tuple(out)


def build_design(
    df: pd.DataFrame,
    *,
    patients: int = 64,
    days: int = HORIZON_DAYS,
    max_days: int | None = None,
    seed: int = 0,
    steps_per_day: int = 1,
    refine: int = 1,
    tumour: str = "melanoma",
    models=None,
    onset: pd.DataFrame | None = None,
    subgroups: pd.DataFrame | None = None,
    management: pd.DataFrame | None = None,
    managed_arms: bool = False,
) -> Design:
    """Training design from incidence rows (e.g. ``pdmodel.data.load_incidence()``).

    Keeps the rows with ``fit_default == 1`` and a grade band the model resolves, simulates
    each distinct arm (regimen, horizon, treatment duration: :func:`arm_timing`; an assumed
    regimen where the source prints no dose, ``regimen_model``) and samples one virtual
    population for all of them. Tumour type and setting act on organ susceptibility after the
    solve (:func:`pdmodel.fit.predicted_probability`), so arms differing only in those share one.

    Parameters
    ----------
    df : pandas.DataFrame
        Incidence rows in the bundled format (docs/data.md); the bundled table is
        ``pdmodel.data.load_incidence()``.
    patients : int
        Virtual patients per arm.
    days : int
        Horizon of arms whose source gives none, days (assumed).
    max_days : int, optional
        Longest horizon, days (default ``days``): printed follow-up and planned courses beyond
        it are cut to it.
    seed : int
        Seed of the population's random numbers.
    steps_per_day, refine : int
        Fixed-grid resolution (PD steps a day, geometric sub-steps in each infusion).
    tumour : str
        Tumour type of the simulated population (one of :data:`TUMOURS`): the reference level;
        each row's own tumour acts through ``tumour_effect`` relative to it.
    models : dict of str to str, optional
        PK model id per agent (default :data:`DEFAULT_MODELS`).
    onset : pandas.DataFrame, optional
        Published median onset times to fit (:func:`pdmodel.fit.onset_targets`, e.g. of
        ``pdmodel.data.load_timing()``); each agent's rows simulate its label regimen to the
        longest horizon (``max_days``). None or empty: incidence rows only.
    subgroups : pandas.DataFrame, optional
        Published subgroup incidences to fit (:func:`pdmodel.fit.subgroup_targets`); each
        (label regimen, subgroup) pair is simulated for :data:`SUBGROUP_DAYS` with the
        subgroup's covariate given to every patient. None or empty: none.
    management : pandas.DataFrame, optional
        Published management outcomes to fit (:func:`pdmodel.fit.management_targets`); each
        label regimen is simulated for :data:`MANAGEMENT_DAYS` under the default management
        policy. None or empty: none.
    managed_arms : bool
        Simulate the incidence rows' grades above the policy's trigger grade under the default
        management policy (:func:`managed_arm_regimens`; docs/model.md §5.9); False: the
        natural course.

    Returns
    -------
    Design
        Arms, population and observation rows, ready for :func:`log_density`.

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
    obs, units, trials = _observations(select_rows(df), days, max_days)
    if not units:
        raise ValueError("build_design: no checkpoint-inhibitor arm among the rows (control "
                         "arms alone cannot be fitted)")
    onset_rows_, onset_units = None, ()
    if onset is not None and not onset.empty:
        onset_rows_, regimens = onset_rows(onset)
        onset_days = max(days, days if max_days is None else max_days)
        onset_units = tuple(SimulatedArm(r, onset_days, MEDIAN_TREATMENT_DAYS, float("inf"))
                            for r in regimens)
    sub_rows, sub_pairs = None, ()
    if subgroups is not None and not subgroups.empty:
        sub_rows, sub_pairs = subgroup_rows(subgroups)
    sub_units = tuple(SimulatedArm(r, SUBGROUP_DAYS, MEDIAN_TREATMENT_DAYS, float("inf"))
                      for r, _ in sub_pairs)
    man_rows, man_regimens = None, ()
    if management is not None and not management.empty:
        man_rows, man_regimens = management_rows(management)
    arm_regimens = None
    if managed_arms:
        arm_regimens = managed_arm_regimens(units)
        man_regimens = tuple(dict.fromkeys(man_regimens + arm_regimens))
        man_rows = no_management_rows() if man_rows is None else man_rows
    man_units = tuple(SimulatedArm(r, MANAGEMENT_DAYS, MEDIAN_TREATMENT_DAYS, float("inf"))
                      for r in man_regimens)
    pop = _design_population(units + onset_units + sub_units + man_units, patients=patients,
                             seed=seed, tumour=tumour)
    stacked = stack_regimens(units, pop, steps_per_day=steps_per_day, refine=refine,
                             models=models)
    onset_design = None
    if onset_rows_ is not None:
        knots = knot_days(onset_units[0].days)
        on_pop = _design_population(onset_units, patients=ONSET_PATIENT_FACTOR * patients,
                                    seed=seed, tumour=tumour, stream=1)
        on_stacked = stack_regimens(onset_units, on_pop, steps_per_day=steps_per_day,
                                    refine=refine, models=models)
        steps = np.stack([knot_steps(e, knots) for e in np.asarray(on_stacked.edges)])
        onset_design = OnsetDesign(rows=onset_rows_, units=onset_units, knot_days=knots,
                                   stacked=on_stacked, knot_step=jnp.asarray(steps),
                                   population=on_pop)
    subgroup_design = None
    if sub_rows is not None:
        subgroup_design = SubgroupDesign(
            rows=sub_rows, units=sub_units, subgroups=tuple(g for _, g in sub_pairs),
            stacked=stack_regimens(sub_units, pop, steps_per_day=steps_per_day, refine=refine,
                                   models=models))
    management_design = None
    if man_rows is not None:
        management_design = ManagementDesign(
            rows=man_rows, units=man_units,
            stacked=stack_regimens(man_units, pop, steps_per_day=steps_per_day, refine=refine,
                                   models=models),
            arm_unit=None if arm_regimens is None else tuple(man_regimens.index(r)
                                                             for r in arm_regimens))
    return Design(units=units, stacked=stacked, population=pop, obs=obs, trials=trials,
                  horizon=max(u.days for u in units), onset=onset_design,
                  subgroups=subgroup_design, management=management_design)
