"""An independent reference for the PK models: numpy right-hand side, scipy LSODA.

Written from the model equations (docs/model.md), not from pdmodel's JAX code: it integrates
each interval between infusion starts/stops separately, so discontinuities are exact.
"""

import numpy as np
from scipy.integrate import solve_ivp


def lsoda_concentrations(p, infusions, ts, t_first=0.0, rtol=1e-11, atol=1e-13):
    """Central concentration (mg/L) at ``ts``.

    ``p``: dict with CL, VC, Q, VP, TV_EMAX, TV_IMAX, TV_T50, TV_HILL, VMAX, KM (canonical
    units). ``infusions``: list of (start_day, duration_day, amount_mg).
    """

    def clearance(t):
        tt = max(t - t_first, 0.0)
        f = tt ** p["TV_HILL"] / (p["TV_T50"] ** p["TV_HILL"] + tt ** p["TV_HILL"]) if tt else 0.0
        cl0 = p["CL"] * np.exp(p.get("CL_LOGFACTOR", 0.0))  # combination effect on CL
        return cl0 * np.exp(p["TV_EMAX"] * f) * (1 + p["TV_IMAX"] * f)

    def rhs(t, y, rate):
        c = y[0] / p["VC"]
        elim = clearance(t) * c + p["VMAX"] * c / (p["KM"] + c)
        dist = p["Q"] * (c - y[1] / p["VP"])
        return [rate - elim - dist, dist]

    edges = sorted({0.0, float(ts[-1])} | {s for s, _, _ in infusions}
                   | {s + d for s, d, _ in infusions})
    edges = [e for e in edges if e <= ts[-1]]
    y = np.zeros(2)
    out = np.full(len(ts), np.nan)
    out[np.asarray(ts) == 0.0] = 0.0
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        mid = 0.5 * (a + b)
        rate = sum(amt / d for s, d, amt in infusions if s <= mid < s + d)
        inside = [i for i, t in enumerate(ts) if a < t <= b]
        t_eval = sorted({float(ts[i]) for i in inside} | {b})
        sol = solve_ivp(rhs, (a, b), y, method="LSODA", args=(rate,), rtol=rtol, atol=atol,
                        t_eval=t_eval)
        for i in inside:
            out[i] = sol.y[0][t_eval.index(float(ts[i]))] / p["VC"]
        y = sol.y[:, -1]
    return out
