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


def lsoda_irae(pk_list, infusions, ec50, target_of, pd, theta, ts, rtol=1e-10, atol=1e-12):
    """Full irAE model (no rescue) for one patient with scipy LSODA; returns PD states [t, 9].

    Written from docs/model.md §2-4 independently of pdmodel's JAX code.
    ``pk_list``: per agent dict (CL, VC, Q, VP, TV_*, VMAX, KM, T_FIRST); ``infusions``: per
    agent list of (start, duration, mg); ``ec50``: per agent mg/L; ``target_of``: per agent
    "PD-1" | "PD-L1" | "CTLA-4"; ``pd``: dict e0, a_ctla4, g_pd1, s (6, with covariates);
    ``theta``: dict of model parameters as floats/arrays.
    """
    n = len(pk_list)
    organs = 6
    gi = 1

    def pos(x):
        x = np.maximum(x, 0.0)
        return x * x / (x + 0.05)

    def rhs(t, y, rates):
        dy = np.zeros_like(y)
        occ_load = {"PD-1": 0.0, "PD-L1": 0.0, "CTLA-4": 0.0}
        for j, p in enumerate(pk_list):
            ac, ap = y[2 * j], y[2 * j + 1]
            c = ac / p["VC"]
            tt = max(t - p["T_FIRST"], 0.0)
            f = tt ** p["TV_HILL"] / (p["TV_T50"] ** p["TV_HILL"] + tt ** p["TV_HILL"]) if tt else 0
            cl = p["CL"] * np.exp(p["TV_EMAX"] * f) * (1 + p["TV_IMAX"] * f)
            elim = cl * c + p["VMAX"] * max(c, 0) / (p["KM"] + max(c, 0))
            dist = p["Q"] * (c - ap / p["VP"])
            dy[2 * j] = rates[j] - elim - dist
            dy[2 * j + 1] = dist
            occ_load[target_of[j]] += max(c, 0.0) / ec50[j]
        occ = {k: v / (1 + v) for k, v in occ_load.items()}
        f_c = occ["CTLA-4"]
        f_p = occ["PD-1"] + theta["rho_pdl1"] * occ["PD-L1"]
        e, pc, a = y[2 * n: 2 * n + 3]
        d = y[2 * n + 3:]
        de = theta["k_e"] * (pd["e0"] * (1 + pd["a_ctla4"] * f_c) - e) \
            + pd["g_pd1"] * f_p * e * (1 - e / (theta["e_max"] * pd["e0"]))
        dp = theta["k_p"] * (e / pd["e0"] - pc)
        da = theta["k_a"] * (pc - a)  # A in fold of the patient's own baseline titre
        eff = e * (1 + theta["w_pd"] * f_p)
        # s: each organ's susceptibility with the patient's covariates, the thyroid's
        # anti-thyroid titre among them (pdmodel.irae.patient_pd)
        w_ab = np.array(theta["w_ab"], dtype=float)
        baseline = pd["e0"] + w_ab
        drive = eff + w_ab * a + theta["w_ctla4"] * f_c - baseline
        dd = pd["s"] * pos(drive) - theta["k_rep"] * d
        dy[2 * n: 2 * n + 3] = [de, dp, da]
        dy[2 * n + 3:] = dd
        assert gi == 1 and organs == len(d)
        return dy

    edges = sorted({0.0, float(ts[-1])} | {s for inf in infusions for s, _, _ in inf}
                   | {s + du for inf in infusions for s, du, _ in inf})
    edges = [e for e in edges if e <= ts[-1]]
    y = np.concatenate([np.zeros(2 * n), [pd["e0"], 1.0, 1.0], np.zeros(organs)])
    out = np.full((len(ts), len(y) - 2 * n), np.nan)
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        mid = 0.5 * (a + b)
        rates = [sum(m / du for s, du, m in inf if s <= mid < s + du) for inf in infusions]
        inside = [i for i, t in enumerate(ts) if a < t <= b]
        t_eval = sorted({float(ts[i]) for i in inside} | {b})
        sol = solve_ivp(rhs, (a, b), y, method="LSODA", args=(rates,), rtol=rtol, atol=atol,
                        t_eval=t_eval)
        for i in inside:
            out[i] = sol.y[2 * n:, t_eval.index(float(ts[i]))]
        y = sol.y[:, -1]
    return out
