"""The published management outcomes the fit uses, read from the management table
(the likelihood side is :mod:`pdmodel.fit._management`; docs/model.md §5.9)."""

from __future__ import annotations

import pandas as pd

from ..data import ASSUMED_REGIMENS, management_counts

MANAGEMENT_ROWS = {
    # Weber JS et al. J Clin Oncol 2017;35:785-792: pooled nivolumab 3 mg/kg (N=576),
    # systemic immune-modulating agents (mostly corticosteroids) for select AEs
    "man-0001": ("steroids", "nivolumab", "any", 0),
    # Nishino M et al. Clin Cancer Res 2016;22:6051-60: nivolumab pneumonitis, corticosteroids
    "man-0006": ("steroids", "nivolumab", "lung", 1),
    # BAVENCIO (avelumab) US label: all 21 patients with pneumonitis had corticosteroids;
    # resolved at data cut-off 12/21
    "man-0099": ("steroids", "avelumab", "lung", 1),
    "man-0101": ("resolved", "avelumab", "lung", 1),
    # IMFINZI (durvalumab) US label, Study 1108 UC cohort: systemic corticosteroids 10/182
    "man-0109": ("steroids", "durvalumab", "any", 0),
    # Tarhini A. Scientifica 2013 Table 3 (Weber JS et al. J Clin Oncol 2012): ipilimumab
    # 3 mg/kg, grade 2-4 irAEs that resolved
    "man-0023": ("resolved", "ipilimumab", "any", 2),
    "man-0024": ("resolved", "ipilimumab", "any", 2),
    # OPDIVO US label pools (colitis): infliximab added to high-dose corticosteroids
    "man-0031": ("infliximab", "nivolumab", "gi", 1),
    "man-0032": ("infliximab", "nivolumab;ipilimumab", "gi", 1),
}
"""Management rows fitted: row id → (measure, agent simulated, organ, grade of the
denominator). The denominator is every patient of the arm when that grade is 0, else the
patients with an event of the organ (any organ: of any organ) of at least that grade.
Measures: ``steroids`` (systemic corticosteroids given), ``resolved`` (resolved by the
horizon), ``infliximab`` (GI only).
Not used: rows of mixed or unstated agents (man-0015..0021, 0044, 0047, 0119, 0141, 0149..0157:
no regimen to simulate); infliximab for pneumonitis (man-0007: the model gives infliximab for
GI injury only); nivolumab + cabozantinib hepatitis (man-0037: cabozantinib's own liver
toxicity); counts of events rather than patients (man-0040/0041); rows without a denominator
(man-0026..0030, 0104, 0105); nephritis and infusion reactions (man-0098, 0106, 0108: not
organs of the model); discontinuation rows (the trials' treatment durations hold them);
steroid durations and doses (man-0121..0129, 0147, 0148, 0154..0156: they set the course
the policy gives, not fitted)."""


def management_targets(management: pd.DataFrame | None = None) -> pd.DataFrame:
    """The rows of :data:`MANAGEMENT_ROWS` from the management table (bundled by default):
    ``row_id``, ``study``, ``measure``, ``agent``, ``regimen`` (the agent's label regimen),
    ``organ``, ``grade`` (of the denominator; 0: all patients), ``n``, ``y``.

    Raises
    ------
    ValueError
        If a listed row is missing or has no numerator and denominator.
    """
    counts = management_counts(MANAGEMENT_ROWS, management, kind="management")
    out = [{"row_id": r.row_id, "study": r.study, "measure": measure, "agent": agent,
            "regimen": ASSUMED_REGIMENS[agent, None], "organ": organ, "grade": grade,
            "n": r.n, "y": r.y}
           for r, (measure, agent, organ, grade) in zip(counts.itertuples(),
                                                        MANAGEMENT_ROWS.values(), strict=True)]
    return pd.DataFrame(out, columns=["row_id", "study", "measure", "agent", "regimen", "organ",
                                      "grade", "n", "y"])
