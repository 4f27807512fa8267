"""Subgroup rows in the likelihood: irAEs in patients with anti-thyroid antibodies before
treatment, without them, and with pre-existing autoimmune disease (docs/model.md §5.8).

A subgroup row is a published count ``y`` of ``n`` patients of one subgroup with an irAE. It is
simulated with the design's virtual population (the same random numbers), with the subgroup's
covariate given to every patient:

* ``antibody_positive``: baseline anti-thyroid titre ``a0`` =
  :data:`~pdmodel.irae.THYROID_ANTIBODY_TITRE` (it multiplies the thyroid's susceptibility);
* ``antibody_negative``: ``a0 = 1``;
* ``preexisting_ad``: pre-existing autoimmune disease, ``e0 = 1 + ad_excess``.

The rest is as for the onset rows: natural course, the agent's label regimen (sources of these
rows pool doses; an anti-PD-1 class row is simulated as nivolumab), the immune-related
definition, the reference tumour and setting, treatment durations as the design's population.
The horizon is :data:`SUBGROUP_DAYS` (assumed: the table prints no follow-up for these rows).
Given its mean ``μ`` a row is beta-binomial with the incidence rows' concentration ``φ``
(between-study overdispersion); rows are independent (no trial effect).

Which rows are used, and why others are not, is
:data:`pdmodel.fit._subgroup_data.SUBGROUP_ROWS` (curated, by row id: the management table mixes
subgroup incidences with rows the model cannot represent).
"""

from __future__ import annotations

from typing import NamedTuple

import equinox as eqx
import lazy_loader as _lazy

from ..irae import THYROID_ANTIBODY_TITRE
from ..vocab import GRADES, ORGAN_CHOICES

pd = _lazy.load("pandas")  # imported when a design table is built: predict starts fast

SUBGROUP_ENDPOINT = "immune_related"
"""Reporting definition of the subgroup rows (the sources count irAEs)."""

SUBGROUP_DAYS = 365
"""Horizon of every subgroup row, days (assumed; the sources' follow-up is not in the table)."""

SUBGROUP_COVARIATES = {
    "antibody_positive": {"a0": THYROID_ANTIBODY_TITRE, "preexisting_ad": 0.0},
    "antibody_negative": {"a0": 1.0, "preexisting_ad": 0.0},
    "preexisting_ad": {"preexisting_ad": 1.0},
}
"""Population covariates every patient of a subgroup is given (others as the population's)."""

class SubgroupRows(NamedTuple):
    """Subgroup counts used in the likelihood ``[row]`` (tuples: part of the static design)."""

    row_id: tuple[str, ...]
    unit: tuple[int, ...]  # index into SubgroupDesign.units
    organ: tuple[int, ...]  # index into ORGAN_CHOICES (0 = any organ)
    grade: tuple[int, ...]  # index into GRADES
    n: tuple[int, ...]
    y: tuple[int, ...]


def subgroup_rows(targets: pd.DataFrame) -> tuple[SubgroupRows, tuple[tuple[str, str], ...]]:
    """:func:`subgroup_targets` as :class:`SubgroupRows` and the (regimen, subgroup) pairs
    they simulate, in order of first use."""
    units: list[tuple[str, str]] = []
    fields: dict[str, list] = {k: [] for k in SubgroupRows._fields}
    for _, r in targets.iterrows():
        if r.subgroup not in SUBGROUP_COVARIATES:
            raise ValueError(f"subgroup row {r.row_id}: unknown subgroup {r.subgroup!r} "
                             f"(one of {tuple(SUBGROUP_COVARIATES)})")
        unit = (str(r.regimen), str(r.subgroup))
        if unit not in units:
            units.append(unit)
        fields["row_id"].append(str(r.row_id))
        fields["unit"].append(units.index(unit))
        fields["organ"].append(ORGAN_CHOICES.index(r.organ))
        fields["grade"].append(GRADES.index(r.grade))
        fields["n"].append(int(r.n))
        fields["y"].append(int(r.y))
    return SubgroupRows(**{k: tuple(v) for k, v in fields.items()}), tuple(units)


class SubgroupDesign(eqx.Module):
    """The subgroup part of a training design: the rows, the (arm, subgroup) pairs they
    simulate, stacked as the incidence arms are, one pair per stacked regimen."""

    rows: SubgroupRows = eqx.field(static=True)
    units: tuple = eqx.field(static=True)  # SimulatedArm per stacked regimen
    subgroups: tuple[str, ...] = eqx.field(static=True)  # subgroup of each stacked regimen
    stacked: eqx.Module  # StackedRegimens

