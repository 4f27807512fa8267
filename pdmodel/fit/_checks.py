"""Posterior check of onset timing: model median time to onset vs the published medians.

Onset summaries are not in the likelihood (the fit uses arm-level incidence only); they are an
out-of-likelihood check. For every published onset summary of a modelled agent and organ in
the bundled timing table, the model's median onset is the first day on which the cumulative
incidence (immune-related definition, natural course) reaches half its value at the horizon —
the median time to onset among patients who had the event, as trials report it.

Ranges: a median is checked against the minimum–maximum printed by the same source for the same
agent, organ and grade; a review's "typical window" (min/max without median) against that
window; a median without a printed range against ×/÷2 around it (an assumed tolerance, labelled
``assumed x/2`` in the output).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from jaxtyping import Float

from ..data import ASSUMED_REGIMENS, load_timing
from ..irae import IraeProblem, Population
from ..regimen import Regimen
from ..vocab import GRADES, ORGAN_CHOICES
from ._likelihood import reported_incidence
from ._parameters import FitSpec

ONSET_ENDPOINT = "immune_related"


def onset_targets(timing: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per (source, agent, organ, grade) with a published central onset: ``median``
    (weeks, NaN for a typical window), ``low``/``high`` and where the range comes from."""
    t = load_timing() if timing is None else timing
    t = t[(t.fit_default == 1) & (t.quantity == "onset")
          & t.statistic.isin(["median", "min", "max"]) & (t.grade_min <= 3)]
    known = {agents for agents, backbone in ASSUMED_REGIMENS if backbone is None}
    t = t[t.agents_model.astype(str).isin(known) & (t.organ_model != "")]
    out = []
    for (study, agent, organ, gmin), g in t.groupby(
            ["study", "agents_model", "organ_model", "grade_min"], sort=False):
        stats = dict(zip(g.statistic, g.value_weeks, strict=False))
        medians = g[g.statistic == "median"]
        lo, hi = stats.get("min"), stats.get("max")
        for _, m in (medians.iterrows() if len(medians) else [(None, None)]):
            med = np.nan if m is None else float(m.value_weeks)
            if lo is not None and hi is not None:
                source = "reported min-max" if m is not None else "review typical window"
                low, high = float(lo), float(hi)
            else:
                source, low, high = "assumed x/2", med / 2, med * 2
            out.append({"row_id": g.row_id.iloc[0] if m is None else m.row_id, "study": study,
                        "agent": agent, "organ": organ, "grade": "any" if gmin <= 1 else
                        ("2+" if gmin == 2 else "3+"), "published_median_weeks": med,
                        "range_low_weeks": low, "range_high_weeks": high,
                        "range_source": source})
    return pd.DataFrame(out)


def onset_check(spec: FitSpec, draws: Float[np.ndarray, "draw param"], *, days: int = 730,
                patients: int = 128, seed: int = 0, steps_per_day: int = 1, refine: int = 1,
                tumour: str = "melanoma", timing: pd.DataFrame | None = None) -> pd.DataFrame:
    """Model median onset (weeks; posterior median and 5–95%) next to every published target
    of :func:`onset_targets`; ``within`` says if the posterior median lies in the range."""
    targets = onset_targets(timing)
    if targets.empty:
        return targets
    model_q = {}
    for agent, group in targets.groupby("agent", sort=False):
        reg = Regimen.parse(ASSUMED_REGIMENS[agent, None])
        problem = IraeProblem.build(reg, days=days, steps_per_day=steps_per_day, refine=refine)
        pop = Population.sample(jax.random.key(seed), patients, tumour=tumour,
                                max_agents=len(reg.agents))

        def curve(u, problem=problem, pop=pop):
            return reported_incidence(spec.to_params(u), problem, pop, ONSET_ENDPOINT)

        inc = np.asarray(jax.lax.map(jax.jit(curve), jnp.asarray(draws)))  # [draw, day, o, g]
        final = inc[:, -1:]
        reached = inc >= 0.5 * final
        first = np.argmax(reached, axis=1) + 1  # day (1-based) of half the final incidence
        weeks = first / 7.0
        for _, r in group.iterrows():
            w = weeks[:, ORGAN_CHOICES.index(r.organ), GRADES.index(r.grade)]
            model_q[r.row_id] = np.quantile(w, [0.05, 0.5, 0.95])
    q = np.stack([model_q[r] for r in targets.row_id])
    targets = targets.assign(model_median_weeks=q[:, 1], model_q05_weeks=q[:, 0],
                             model_q95_weeks=q[:, 2])
    targets["within"] = ((targets.model_median_weeks >= targets.range_low_weeks)
                         & (targets.model_median_weeks <= targets.range_high_weeks))
    return targets
