"""The published subgroup incidences the fit uses, read from the management table
(the likelihood side is :mod:`pdmodel.fit._subgroups`; docs/model.md §5.8)."""

from __future__ import annotations

import pandas as pd

from ..data import ASSUMED_REGIMENS, management_counts

SUBGROUP_ROWS = {
    # Okada N, Iwama S et al. Br J Cancer 2020;122:771-777: prospective anti-PD-1 cohort,
    # thyroid dysfunction (destructive thyroiditis or hypothyroidism) by baseline TgAb/TPOAb
    "man-0132": ("antibody_positive", "nivolumab", "thyroid"),
    "man-0133": ("antibody_negative", "nivolumab", "thyroid"),
    # Menzies AM et al. Ann Oncol 2017: anti-PD-1 in pre-existing autoimmune disease, new irAEs
    "man-0059": ("preexisting_ad", "nivolumab", "any"),
    # Kähler KC et al. Cancer Immunol Immunother 2018;67:825-834: ipilimumab, new irAEs
    "man-0069": ("preexisting_ad", "ipilimumab", "any"),
}
"""Management rows fitted as subgroup incidences: row id → (subgroup, agent simulated, organ).
Not used: flares of the pre-existing disease (man-0050..0057, 0068, 0086: not an organ of the
model), Okada's echo-pattern subgroups (man-0134/0135: no echo pattern in the model), the
antinuclear-antibody rows (man-0073..0076: the model's baseline titre is anti-thyroid),
Kobayashi (man-0080/0081: no counts), rows of mixed or unstated agents (man-0084/0085)."""


def subgroup_targets(management: pd.DataFrame | None = None) -> pd.DataFrame:
    """The rows of :data:`SUBGROUP_ROWS` from the management table (bundled by default):
    ``row_id``, ``study``, ``subgroup``, ``agent``, ``regimen`` (the agent's label regimen),
    ``organ``, ``grade`` (``any``), ``n``, ``y``.

    Raises
    ------
    ValueError
        If a listed row is missing or has no numerator and denominator.
    """
    counts = management_counts(SUBGROUP_ROWS, management, kind="subgroup")
    out = [{"row_id": r.row_id, "study": r.study, "subgroup": subgroup, "agent": agent,
            "regimen": ASSUMED_REGIMENS[agent, None], "organ": organ, "grade": "any",
            "n": r.n, "y": r.y}
           for r, (subgroup, agent, organ) in zip(counts.itertuples(), SUBGROUP_ROWS.values(),
                                                  strict=True)]
    return pd.DataFrame(out, columns=["row_id", "study", "subgroup", "agent", "regimen",
                                      "organ", "grade", "n", "y"])
