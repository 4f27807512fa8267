"""One virtual patient's whole model (PK, occupancy, immune, injury, grades, rescue) as an
:class:`~pdmodel.export._ir.ExportModel`, the equations of docs/model.md §2-4 written out.

Published values (PK, potencies) carry the source of ``pdmodel/data/*.csv``; irAE parameters
the source of :data:`pdmodel.irae.PARAMETER_INFO` or of the fit they came from. Individual
values are written as initial assignments from the typical values, the body weight ``WT`` and
the patient's random effects, so a user can change ``WT`` (kg) or an ``eta`` in another tool.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy.special import ndtr

from ..irae import PARAMETER_INFO, IraeModel, IraeProblem, ManagementPolicy, Population
from ..pk import PKModelSpec, potencies
from ..regimen import Regimen
from ..vocab import AGENTS, ORGANS, TARGETS, TUMOURS, get_agent
from ._ir import (
    NEVER,
    SBO_AMOUNT,
    SBO_COEFFICIENT,
    SBO_CONCENTRATION,
    SBO_DECAY,
    SBO_DURATION,
    SBO_FRACTION,
    SBO_HILL,
    SBO_KINETIC,
    SBO_MICHAELIS,
    SBO_PARAMETER,
    SBO_PROBABILISTIC,
    SBO_SWITCH,
    SBO_TIME,
    SBO_VMAX,
    SBO_VOLUME,
    Event,
    ExportModel,
    Quantity,
)

SMOOTH = 0.05
"""Width (fold) of the smooth positive part of the injury drive (pdmodel.irae equations)."""

INFLIXIMAB_PK = {"CL": 0.407, "VC": 3.29, "Q": 7.14, "VP": 4.13}
"""Typical infliximab PK (L/day, L) of pdmodel's rescue model (pdmodel.irae ManagementPolicy)."""

INFLIXIMAB_SOURCE = ("Fasanmade AA et al. Eur J Clin Pharmacol 2009;65:1211-28 (ulcerative "
                     "colitis; shared data pkp-0226..0229)")
INFLIXIMAB_INTERVAL = 14.0
"""Days from an infliximab dose to the check for the next (pdmodel.irae rescue)."""

SITC = "SITC consensus, Puzanov et al. J Immunother Cancer 2017 Table 2 (pkp-0242..0245)"
POLICY_INFO = {
    # field: (unit, description, source)
    "delay_days": ("day", "time from reaching the trigger grade to the first steroid dose", SITC),
    "steroid_dose": ("mg_per_kg_per_day", "prednisone-equivalent starting dose", SITC),
    "full_dose_days": ("day", "minimum days at the full steroid dose", SITC),
    "taper_days": ("day", "linear steroid taper to zero", SITC + "; 4-6 weeks, pkp-0244"),
    "escalate_after_days": ("day", "days on steroids before GI injury still at grade >= 2 "
                            "triggers infliximab", SITC + "; 2-3 days, pkp-0245"),
    "infliximab_dose": ("mg_per_kg", "infliximab per infusion",
                        "J Rheum Dis 2019;26:221 Table 1 (pkp-0246)"),
    "prophylaxis_dose": ("mg_per_kg_per_day", "prophylactic prednisone-equivalent dose from "
                         "day 0", "policy setting"),
}

_UNIT = {"1": "dimensionless", "fold": "dimensionless", "1/day": "per_day",
         "mg/kg/day": "mg_per_kg_per_day", "ug/mL": "mg_per_L"}
_PK_UNIT = {"CL": "L_per_day", "Q": "L_per_day", "VC": "litre", "VP": "litre",
            "VMAX": "mg_per_day", "KM": "mg_per_L", "TV_T50": "day", "TV_EMAX": "dimensionless",
            "TV_IMAX": "dimensionless", "TV_HILL": "dimensionless",
            "CL_LOGFACTOR": "dimensionless"}
_PK_SBO = {"CL": SBO_PARAMETER, "Q": SBO_PARAMETER, "VC": SBO_VOLUME, "VP": SBO_VOLUME,
           "VMAX": SBO_VMAX, "KM": SBO_MICHAELIS, "TV_T50": SBO_DURATION,
           "TV_HILL": SBO_HILL}
_PK_TEXT = {"CL": "clearance at the first dose", "VC": "central volume",
            "Q": "inter-compartmental clearance", "VP": "peripheral volume",
            "VMAX": "maximal target-mediated elimination rate",
            "KM": "concentration at half VMAX", "TV_EMAX": "log-scale maximal change of "
            "clearance over time", "TV_IMAX": "fractional maximal change of clearance over time",
            "TV_T50": "time to half the clearance change (from the first dose)",
            "TV_HILL": "sigmoidicity of the time effect",
            "CL_LOGFACTOR": "log-scale clearance factor in this combination"}
_SCALED = ("CL", "VC", "Q", "VP", "VMAX", "TV_T50")  # weight power and log-normal random effects
_RATE_FIELDS = ("k_e", "k_p", "k_a")


def target_id(target: str) -> str:
    """SBML-safe id of a target: ``"PD-1"`` → ``"PD1"``."""
    return target.replace("-", "")


def _num(x) -> str:
    """A float as formula text (round-trip exact)."""
    return repr(float(x))


def _row_source(spec: PKModelSpec, name: str, applies_to: str = "",
                condition: str | None = None) -> str:
    """Source, published value and curated row of one PK value (``pdmodel/data/pk_models.csv``)."""
    for r in spec.rows:
        if r["parameter"] == name and r["applies_to"] == applies_to and (
                condition is None or r["condition"] == condition):
            row = f", {r['shared_row_id']}" if r["shared_row_id"] else ""
            note = f"; {r['note']}" if r["note"] else ""
            return f"{r['source']} (published {r['published']}{row}){note}"
    return f"{spec.source} (model {spec.model})"


def _pk_quantities(spec: PKModelSpec, agents: tuple[str, ...], eta: np.ndarray,
                   first_dose: float) -> tuple[list[Quantity], str]:
    """Typical values, covariates, random effects and individual values of one agent's PK,
    its states and clearance; returns the quantities and the id of its concentration."""
    a = spec.agent
    others = frozenset(agents) - {a}
    p = spec.parameters(others)
    cond = {k: c for c, over in spec.conditional.items() if c.removeprefix("with:") in others
            for k in over}
    tv = p["TV_EMAX"] != 0.0 or p["TV_IMAX"] != 0.0
    mm = p["VMAX"] > 0.0
    names = ["CL", "VC", "Q", "VP"] + (["TV_EMAX", "TV_IMAX", "TV_T50", "TV_HILL"] if tv else [])
    names += ["VMAX", "KM"] if mm else []
    names += ["CL_LOGFACTOR"] if p.get("CL_LOGFACTOR", 0.0) != 0.0 else []
    out = []
    for n in names:
        out.append(Quantity(f"{a}_{n}", _PK_UNIT[n], f"{a}: typical {_PK_TEXT[n]}", p[n],
                            source=_row_source(spec, n, condition=cond.get(n, "")),
                            sbo=_PK_SBO.get(n, SBO_PARAMETER)))
    out.append(Quantity(f"{a}_WT_REF", "kg", f"{a}: reference body weight of the PK model",
                        spec.wt_ref, source=_row_source(spec, "WT_REF")))
    for n, e in spec.wt_exp.items():
        if n in names:
            out.append(Quantity(f"{a}_WT_EXP_{n}", "dimensionless",
                                f"{a}: body-weight power exponent on {n}", e,
                                source=_row_source(spec, "WT_EXP", applies_to=n)))
    shift: dict[str, list[str]] = {n: [] for n in _SCALED}
    tv_add, tv_log = [], []
    for k, targets in enumerate(spec.eta_targets):
        eid = f"{a}_eta{k + 1}"
        out.append(Quantity(eid, "dimensionless",
                            f"{a}: this patient's random effect on {','.join(targets)} "
                            "(log scale; additive for TV:add); "
                            f"variance {spec.omega[k, k]:g}", float(eta[k]),
                            source="virtual patient (pdmodel Population)",
                            sbo=SBO_PROBABILISTIC))
        for t in targets:
            if t == "TV:add":
                tv_add.append(eid)
            elif t == "TV:exp":
                tv_log.append(eid)
            elif t in shift:
                shift[t].append(eid)

    def individual(n: str) -> str:
        f = f"{a}_{n}"
        if n in spec.wt_exp:
            f += f" * (WT / {a}_WT_REF)^{a}_WT_EXP_{n}"
        if shift[n]:
            f += f" * exp({' + '.join(shift[n])})"
        if n == "CL" and "CL_LOGFACTOR" in names:
            f += f" * exp({a}_CL_LOGFACTOR)"
        return f

    for n in [x for x in names if x in _SCALED]:
        out.append(Quantity(f"{a}_{n}_i", _PK_UNIT[n], f"{a}: individual {_PK_TEXT[n]}",
                            formula=individual(n), kind="initial",
                            sbo=_PK_SBO.get(n, SBO_PARAMETER)))
    cl = f"{a}_CL_i"
    if tv:
        emax = f"{a}_TV_EMAX" + (f" + {' + '.join(tv_add)}" if tv_add and p["TV_EMAX"] else "")
        log = f" * exp({' + '.join(tv_log)})" if tv_log else ""
        out += [
            Quantity(f"{a}_TV_EMAX_i", "dimensionless", f"{a}: individual log-scale time effect",
                     formula=f"({emax}){log}", kind="initial"),
            Quantity(f"{a}_TV_IMAX_i", "dimensionless", f"{a}: individual fractional time "
                     "effect", formula=f"{a}_TV_IMAX{log}", kind="initial"),
            Quantity(f"{a}_t_first", "day", f"{a}: day of the first dose", first_dose,
                     source="regimen", sbo=SBO_TIME),
            Quantity(f"{a}_tau", "day", f"{a}: time since the first dose",
                     formula=f"piecewise(time - {a}_t_first, time > {a}_t_first, 0)",
                     kind="rule", sbo=SBO_TIME),
            Quantity(f"{a}_ftime", "dimensionless", f"{a}: sigmoid time effect on clearance",
                     formula=f"piecewise({a}_tau^{a}_TV_HILL / ({a}_TV_T50_i^{a}_TV_HILL + "
                     f"{a}_tau^{a}_TV_HILL), {a}_tau > 0, 0)", kind="rule"),
            Quantity(f"{a}_CLt", "L_per_day", f"{a}: clearance at this time",
                     formula=f"{a}_CL_i * exp({a}_TV_EMAX_i * {a}_ftime) * "
                     f"(1 + {a}_TV_IMAX_i * {a}_ftime)", kind="rule"),
        ]
        cl = f"{a}_CLt"
    c = f"{a}_C"
    elim = f"{cl} * {c}"
    if mm:
        elim += f" + {a}_VMAX_i * {a}_Cpos / ({a}_KM + {a}_Cpos)"
    out += [
        Quantity(f"{a}_R", "mg_per_day", f"{a}: infusion rate (set by the infusion events)",
                 0.0, kind="variable"),
        Quantity(c, "mg_per_L", f"{a}: serum concentration", formula=f"{a}_Ac / {a}_VC_i",
                 kind="rule", sbo=SBO_CONCENTRATION),
        Quantity(f"{a}_Cpos", "mg_per_L", f"{a}: serum concentration, negative values as 0",
                 formula=f"piecewise({c}, {c} > 0, 0)", kind="rule", sbo=SBO_CONCENTRATION),
        Quantity(f"{a}_dist", "mg_per_day", f"{a}: central to peripheral flow",
                 formula=f"{a}_Q_i * ({c} - {a}_Ap / {a}_VP_i)", kind="rule"),
        Quantity(f"{a}_Ac", "mg", f"{a}: amount in the central compartment", 0.0, kind="state",
                 rate=f"{a}_R - ({elim}) - {a}_dist", sbo=SBO_AMOUNT),
        Quantity(f"{a}_Ap", "mg", f"{a}: amount in the peripheral compartment", 0.0,
                 kind="state", rate=f"{a}_dist", sbo=SBO_AMOUNT),
    ]
    return out, f"{a}_Cpos"


def _model_value(model: IraeModel, name: str, index=None) -> float:
    value = np.asarray(getattr(model, name))
    return float(value if index is None else value[index])


def _pd_parameter(model: IraeModel, name: str, sources: Mapping[str, str], index=None,
                  suffix: str = "", sbo: int = SBO_PARAMETER) -> Quantity:
    info = PARAMETER_INFO[name]
    return Quantity(f"{name}{suffix}", _UNIT[info.unit], info.description,
                    _model_value(model, name, index), source=sources.get(name, info.source),
                    sbo=sbo)


def build_export_model(
    regimen: Regimen,
    model: IraeModel,
    patient: Population,
    *,
    policy: ManagementPolicy | None = None,
    pk_models: Mapping[str, str] | None = None,
    days: int = 365,
    sources: Mapping[str, str] | None = None,
    provenance: Mapping[str, str] | None = None,
) -> ExportModel:
    """The model of one virtual patient on ``regimen`` (infusions starting before ``days``).

    ``model``: irAE parameters; ``patient``: a one-patient :class:`Population` (covariates,
    random effects, threshold draws); ``policy``: immunosuppressant rescue as events (``None``
    or a disabled policy: natural course); ``pk_models``: PK model id per agent;
    ``sources``: source text per :class:`IraeModel` field (default :data:`PARAMETER_INFO`);
    ``provenance``: notes on where the values come from.
    """
    if patient.size != 1:
        raise ValueError(f"export one patient at a time, got a population of {patient.size}")
    problem = IraeProblem.build(regimen, days=days, steps_per_day=1, models=pk_models)
    agents = problem.agents
    if patient.z_pk.shape[1] < len(agents):
        raise ValueError(f"the patient has random effects for {patient.z_pk.shape[1]} agents; "
                         f"the regimen has {len(agents)}")
    sources = dict(sources or {})
    rescue = policy is not None and policy.enabled
    q: list[Quantity] = []
    events: list[Event] = []
    weight = float(patient.weight_kg[0])
    tumour = TUMOURS[int(patient.tumour[0])]

    # --- patient covariates
    q.append(Quantity("WT", "kg", "body weight", weight, source="virtual patient"))

    # --- PK and drug effects
    pot = potencies()
    first = np.asarray(problem.grid.first_dose)
    loads: dict[str, list[tuple[str, str]]] = {t: [] for t in TARGETS}
    for j, spec in enumerate(problem.specs):
        z = np.asarray(patient.z_pk[0, j, : spec.n_eta])
        eta = np.asarray(problem.chol[j]) @ z if spec.n_eta else np.zeros(0)
        pk_q, conc = _pk_quantities(spec, agents, eta, float(first[j]))
        q += pk_q
        a, target = spec.agent, get_agent(spec.agent).target
        tid = target_id(target)
        q += [
            Quantity(f"{a}_EC50", "mg_per_L", f"{a}: serum {pot[a].kind} at {target}",
                     pot[a].ec50, source=pot[a].source, sbo=SBO_CONCENTRATION),
            Quantity(f"agent_effect_{a}", "dimensionless",
                     PARAMETER_INFO["agent_effect"].description,
                     _model_value(model, "agent_effect", list(AGENTS).index(a)),
                     source=sources.get("agent_effect", PARAMETER_INFO["agent_effect"].source)),
            Quantity(f"{a}_x", "dimensionless", f"{a}: target load C / (EC50 * ec50_scale)",
                     formula=f"{conc} / ({a}_EC50 * ec50_scale_{tid})", kind="rule"),
        ]
        loads[target].append((f"{a}_x", f"agent_effect_{a}"))
    effects = {}
    for t, terms in loads.items():
        tid = target_id(t)
        if not terms:
            effects[tid] = "0"
            continue
        q.append(_pd_parameter(model, "ec50_scale", sources, TARGETS.index(t), f"_{tid}"))
        load = " + ".join(x for x, _ in terms)
        bound = " + ".join(f"exp({w}) * {x}" for x, w in terms)
        q.append(Quantity(f"f_{tid}", "dimensionless",
                          f"weighted occupancy of {t} (competitive binding, docs/model.md §4.1)",
                          formula=f"({bound}) / (1 + {load})", kind="rule", sbo=SBO_FRACTION))
        effects[tid] = f"f_{tid}"
    q.append(_pd_parameter(model, "rho_pdl1", sources))
    q += [
        Quantity("fC", "dimensionless", "CTLA-4 drug effect (priming)", formula=effects["CTLA4"],
                 kind="rule", sbo=SBO_FRACTION),
        Quantity("fP", "dimensionless", "PD-1 + rho_pdl1 * PD-L1 drug effect (effector stage)",
                 formula=f"{effects['PD1']} + rho_pdl1 * {effects['PDL1']}", kind="rule",
                 sbo=SBO_FRACTION),
    ]

    # --- immune parameters, the patient's random effects and covariates
    for name in ("a_ctla4", "g_pd1", "k_e", "e_max", "k_p", "k_a", "ad_excess", "omega_g",
                 "omega_a", "omega_s", "omega_so"):
        sbo = SBO_DECAY if name == "k_a" else SBO_KINETIC if name in _RATE_FIELDS else (
            SBO_PROBABILISTIC if name.startswith("omega") else SBO_PARAMETER)
        q.append(_pd_parameter(model, name, sources, sbo=sbo))
    z_pd = np.asarray(patient.z_pd[0])
    q += [
        Quantity("preexisting_ad", "dimensionless", "1 with pre-existing autoimmune disease",
                 float(patient.preexisting_ad[0]), source="virtual patient", sbo=SBO_SWITCH),
        Quantity("a0", "dimensionless", "baseline anti-thyroid antibody titre, fold of normal "
                 "(multiplies the thyroid's susceptibility)",
                 float(patient.a0[0]), source="virtual patient"),
        Quantity("z_g", "dimensionless", "standard-normal random effect on g_pd1",
                 float(z_pd[0]), source="virtual patient", sbo=SBO_PROBABILISTIC),
        Quantity("z_a", "dimensionless", "standard-normal random effect on a_ctla4",
                 float(z_pd[1]), source="virtual patient", sbo=SBO_PROBABILISTIC),
        Quantity("z_s", "dimensionless", "standard-normal random effect shared by every "
                 "organ's susceptibility", float(z_pd[2]), source="virtual patient",
                 sbo=SBO_PROBABILISTIC),
        Quantity("e0", "dimensionless", "baseline autoreactive pool, fold",
                 formula="1 + ad_excess * preexisting_ad", kind="initial"),
        Quantity("a_ctla4_i", "dimensionless", "this patient's priming gain",
                 formula="a_ctla4 * exp(omega_a * z_a)", kind="initial"),
        Quantity("g_pd1_i", "per_day", "this patient's expansion rate",
                 formula="g_pd1 * exp(omega_g * z_g)", kind="initial", sbo=SBO_KINETIC),
    ]

    # --- rescue: steroid course, infliximab, holds (events below)
    if rescue:
        q += _policy_quantities(model, policy, sources)
        q.append(Quantity("keep", "dimensionless", "1 - systemic immunosuppression",
                          formula="1 - i_sys", kind="rule", sbo=SBO_FRACTION))
        z_steroid = 0.0 if patient.z_steroid is None else float(patient.z_steroid[0])
        refractory = float(ndtr(z_steroid) < float(model.steroid_refractory_gi))
        q += [
            Quantity("z_steroid", "dimensionless", "standard-normal draw of the GI response "
                     "to corticosteroids", z_steroid, source="virtual patient",
                     sbo=SBO_PROBABILISTIC),
            Quantity("refractory_gi", "dimensionless", "1: steroid-refractory colitis "
                     "(Phi(z_steroid) < steroid_refractory_gi, evaluated at export): "
                     "corticosteroids do not suppress the GI drive", refractory,
                     source="virtual patient", sbo=SBO_SWITCH),
        ]
    else:
        q.append(Quantity("keep", "dimensionless", "1 - systemic immunosuppression (none: "
                          "natural course)", 1.0, sbo=SBO_FRACTION))

    # --- immune states
    q += [
        Quantity("E", "dimensionless", "autoreactive effector T cells, fold of the normal pool",
                 formula="e0", kind="state",
                 rate="k_e * (e0 * (1 + a_ctla4_i * fC) * keep - E) + g_pd1_i * fP * keep * E * "
                 "(1 - E / (e_max * e0))"),
        Quantity("P", "dimensionless", "plasma cells, fold of baseline", 1.0, kind="state",
                 rate="k_p * (E / e0 - P)"),
        Quantity("A", "dimensionless", "IgG autoantibody titre, fold of the patient's own "
                 "baseline", 1.0, kind="state", rate="k_a * (P - A)"),
    ]

    # --- organs: parameters, thresholds, injury, running maximum, grades
    z_organ = np.asarray(patient.z_organ[0])
    z_thr = np.asarray(patient.z_threshold[0])
    for o, organ in enumerate(ORGANS):
        for name in ("susceptibility", "k_rep", "w_ab", "w_pd", "w_ctla4", "log_gap2",
                     "log_gap3", "sigma"):
            sbo = SBO_KINETIC if name == "k_rep" else SBO_COEFFICIENT if name.startswith(
                "w_") else SBO_PROBABILISTIC if name == "sigma" else SBO_PARAMETER
            q.append(_pd_parameter(model, name, sources, o, f"_{organ}", sbo=sbo))
        q += [
            Quantity(f"tumour_effect_{organ}", "dimensionless",
                     f"susceptibility factor of {organ} for {tumour}",
                     _model_value(model, "tumour_effect", (TUMOURS.index(tumour), o)),
                     source=sources.get("tumour_effect", PARAMETER_INFO["tumour_effect"].source)),
            Quantity(f"z_{organ}", "dimensionless", f"standard-normal random effect on {organ} "
                     "susceptibility", float(z_organ[o]), source="virtual patient",
                     sbo=SBO_PROBABILISTIC),
            Quantity(f"z_thr_{organ}", "dimensionless", f"standard-normal draw of the {organ} "
                     "grade thresholds", float(z_thr[o]), source="virtual patient",
                     sbo=SBO_PROBABILISTIC),
            Quantity(f"s_{organ}", "per_day", f"this patient's {organ} susceptibility",
                     formula=f"susceptibility_{organ} * tumour_effect_{organ} * "
                     + ("a0 * " if organ == "thyroid" else "")
                     + f"exp(omega_s * z_s + omega_so * z_{organ})", kind="initial",
                     sbo=SBO_KINETIC),
        ]
        gaps = ("0", f"log_gap2_{organ}", f"log_gap2_{organ} + log_gap3_{organ}")
        for g in (1, 2, 3):
            q.append(Quantity(f"theta_{organ}_{g}", "dimensionless",
                              f"this patient's grade-{g} threshold on {organ} injury",
                              formula=f"exp({gaps[g - 1]} + sigma_{organ} * z_thr_{organ})",
                              kind="initial"))
        keep = ("(1 - i_sys * (1 - refractory_gi)) * (1 - i_gi)" if organ == "gi" and rescue
                else "keep")
        d = f"D_{organ}"
        w_ab = f"w_ab_{organ}"
        q += [
            Quantity(f"drive_{organ}", "dimensionless", f"excess injury drive of {organ}",
                     formula=f"{keep} * (E * (1 + w_pd_{organ} * fP) + {w_ab} * A + "
                     f"w_ctla4_{organ} * fC) - (e0 + {w_ab})", kind="rule"),
            Quantity(f"dD_{organ}", "per_day", f"rate of change of {organ} injury",
                     formula=f"s_{organ} * piecewise(drive_{organ}^2 / (drive_{organ} + "
                     f"{_num(SMOOTH)}), drive_{organ} > 0, 0) - k_rep_{organ} * {d}",
                     kind="rule"),
            Quantity(d, "dimensionless", f"{organ} injury, in units of the grade-1 threshold",
                     0.0, kind="state", rate=f"dD_{organ}"),
            Quantity(f"Mpeak_{organ}", "dimensionless", f"largest earlier local maximum of "
                     f"{organ} injury (set by events)", 0.0, kind="variable"),
            Quantity(f"M_{organ}", "dimensionless", f"running maximum of {organ} injury",
                     formula=f"piecewise({d}, {d} > Mpeak_{organ}, Mpeak_{organ})", kind="rule"),
            Quantity(f"grade_{organ}", "dimensionless", f"highest grade of {organ} reached "
                     "so far (0-3)", formula=f"piecewise(3, M_{organ} >= theta_{organ}_3, 2, "
                     f"M_{organ} >= theta_{organ}_2, 1, M_{organ} >= theta_{organ}_1, 0)",
                     kind="rule"),
        ]
        events.append(Event(f"peak_{organ}", f"dD_{organ} < 0",
                            ((f"Mpeak_{organ}", f"M_{organ}"),),
                            f"{organ} injury turns down: remember the peak"))
        for g in (1, 2, 3):
            t = f"onset_{organ}_{g}"
            q.append(Quantity(t, "day", f"day {organ} first reached grade {g} ({NEVER:g}: "
                              "not yet)", NEVER, kind="variable", sbo=SBO_TIME))
            extra = _onset_actions(policy, organ, g) if rescue else ()
            events.append(Event(f"reach_{organ}_{g}", f"{d} >= theta_{organ}_{g} && {t} >= "
                                f"{_num(NEVER)}", ((t, "time"),) + extra,
                                f"{organ} reaches grade {g} for the first time"))
    if rescue:
        events += _policy_events(policy)

    # --- infusions
    given = "held < 0.5 && stopped < 0.5" if rescue else None
    stop = float(patient.stop_day[0])
    for k, inf in enumerate(regimen.infusions(days=days, weight_kg=weight)):
        if inf.start >= stop:
            continue
        a = inf.agent
        per_day = f"{_num(inf.dose)} / {_num(inf.duration)}"
        rate = f"{per_day} * WT" if inf.unit == "mg/kg" else per_day
        if given:
            rate = f"piecewise({rate}, {given}, 0)"
        minutes = round(inf.duration * 24 * 60, 6)
        text = f"{a} {inf.dose:g} {inf.unit} over {minutes:g} min on day {inf.start:g}"
        events += [
            Event(f"infusion{k + 1}_start", f"time >= {_num(inf.start)}", ((f"{a}_R", rate),),
                  f"start of {text}" + (" (not given while held or stopped)" if given else "")),
            Event(f"infusion{k + 1}_end", f"time >= {_num(inf.start + inf.duration)}",
                  ((f"{a}_R", "0"),), f"end of {text}"),
        ]
    limitations = _limitations(rescue, policy)
    info = {"regimen": str(regimen), "days": f"infusions starting before day {days}",
            "patient": f"{weight:g} kg, tumour {tumour}"} | dict(provenance or {})
    return ExportModel(id="pdmodel_irae", name=f"pdmodel irAE model: {regimen}",
                       provenance=info, quantities=tuple(q), events=tuple(events),
                       limitations=limitations)


def _policy_quantities(model: IraeModel, policy: ManagementPolicy,
                       sources: Mapping[str, str]) -> list[Quantity]:
    """Parameters, bookkeeping variables and suppression rules of the rescue policy."""
    q = []
    for name, (unit, text, src) in POLICY_INFO.items():
        q.append(Quantity(f"policy_{name}", unit, text, float(getattr(policy, name)),
                          source=f"pdmodel ManagementPolicy; default from {src}",
                          sbo=SBO_DURATION if unit == "day" else SBO_PARAMETER))
    q += [
        Quantity("policy_max_infliximab", "dimensionless", "infliximab infusions at most",
                 float(policy.max_infliximab_doses), source="pdmodel ManagementPolicy"),
        Quantity("policy_infliximab_interval", "day", "days from an infliximab dose to the "
                 "check for the next", INFLIXIMAB_INTERVAL, source="pdmodel rescue model",
                 sbo=SBO_DURATION),
    ]
    for name in ("steroid_imax", "steroid_ed50", "steroid_refractory_gi", "ifx_imax",
                 "ifx_ec50"):
        q.append(_pd_parameter(model, name, sources))
    for n, v in INFLIXIMAB_PK.items():
        q.append(Quantity(f"infliximab_{n}", _PK_UNIT[n], f"infliximab: typical {_PK_TEXT[n]}",
                          v, source=INFLIXIMAB_SOURCE, sbo=_PK_SBO.get(n, SBO_PARAMETER)))
    var = [
        ("steroid_start", "day", "day the steroid course starts", NEVER),
        ("taper_from", "day", "day the steroid taper starts", NEVER),
        ("infliximab_check", "day", "day of the next infliximab check", NEVER),
        ("n_infliximab", "dimensionless", "infliximab infusions given", 0.0),
        ("course_on", "dimensionless", "1 from the steroid course start", 0.0),
        ("taper_on", "dimensionless", "1 from the taper start", 0.0),
        ("taper_done", "dimensionless", "1 from the end of the taper", 0.0),
        ("held", "dimensionless", "1 while checkpoint-inhibitor infusions are withheld", 0.0),
        ("stopped", "dimensionless", "1 once checkpoint inhibitors are discontinued", 0.0),
    ]
    q += [Quantity(i, u, t, v, kind="variable", sbo=SBO_TIME if u == "day" else SBO_SWITCH)
          for i, u, t, v in var]
    for organ in ORGANS:
        q.append(Quantity(f"resolved_{organ}", "day", f"day {organ} came back below grade 1 "
                          f"after a grade >= 2 onset ({NEVER:g}: not yet)", NEVER,
                          kind="variable", sbo=SBO_TIME))
    open_ = " + ".join(f"piecewise(1, onset_{o}_2 < {_num(NEVER)} && resolved_{o} >= "
                       f"{_num(NEVER)}, 0)" for o in ORGANS)
    course = ("piecewise(1, course_on > 0.5 && taper_on < 0.5, 1 - (time - taper_from) / "
              "policy_taper_days, taper_on > 0.5 && taper_done < 0.5, 0)")
    dose = f"policy_steroid_dose * {course}"
    if float(policy.prophylaxis_dose) > 0:
        dose = f"piecewise({dose}, {dose} > policy_prophylaxis_dose, policy_prophylaxis_dose)"
    q += [
        Quantity("active", "dimensionless", "organs with a grade >= 2 episode not yet resolved",
                 formula=open_, kind="rule"),
        Quantity("steroid", "mg_per_kg_per_day", "prednisone-equivalent steroid dose",
                 formula=dose, kind="rule"),
        Quantity("i_sys", "dimensionless", "systemic immunosuppression by steroids (Imax)",
                 formula="steroid_imax * steroid / (steroid + steroid_ed50)", kind="rule",
                 sbo=SBO_FRACTION),
        Quantity("infliximab_Ac", "mg", "infliximab: central amount", 0.0, kind="state",
                 rate="-infliximab_CL * infliximab_Ac / infliximab_VC - infliximab_Q * "
                 "(infliximab_Ac / infliximab_VC - infliximab_Ap / infliximab_VP)",
                 sbo=SBO_AMOUNT),
        Quantity("infliximab_Ap", "mg", "infliximab: peripheral amount", 0.0, kind="state",
                 rate="infliximab_Q * (infliximab_Ac / infliximab_VC - infliximab_Ap / "
                 "infliximab_VP)", sbo=SBO_AMOUNT),
        Quantity("infliximab_C", "mg_per_L", "infliximab serum concentration (negative as 0)",
                 formula="piecewise(infliximab_Ac / infliximab_VC, infliximab_Ac > 0, 0)",
                 kind="rule", sbo=SBO_CONCENTRATION),
        Quantity("i_gi", "dimensionless", "GI-specific suppression by infliximab (Imax)",
                 formula="ifx_imax * infliximab_C / (infliximab_C + ifx_ec50)", kind="rule",
                 sbo=SBO_FRACTION),
    ]
    return q


def _onset_actions(policy: ManagementPolicy, organ: str, grade: int):
    """Assignments of the rescue policy when ``organ`` first reaches ``grade``."""
    out = []
    if grade == policy.trigger_grade:
        first = f"steroid_start >= {_num(NEVER)}"
        out += [("steroid_start", f"piecewise(time + policy_delay_days, {first}, "
                 "steroid_start)"),
                ("infliximab_check", f"piecewise(time + policy_delay_days + "
                 f"policy_escalate_after_days, {first}, infliximab_check)")]
    if grade == 2 and policy.hold_at_grade2:
        out.append(("held", "1"))
    if policy.discontinue_grade and grade == policy.discontinue_grade:
        out.append(("stopped", "1"))
    return tuple(out)


def _policy_events(policy: ManagementPolicy) -> list[Event]:
    """Steroid course corners, resolution, taper, hold release and infliximab doses."""
    n = _num(NEVER)
    ev = [Event(f"resolve_{o}", f"D_{o} < theta_{o}_1 && onset_{o}_2 < {n} && resolved_{o} "
                f">= {n}", ((f"resolved_{o}", "time"),),
                f"{o} back below grade 1 after a grade >= 2 onset") for o in ORGANS]
    ev += [
        Event("course_start", "time >= steroid_start", (("course_on", "1"),),
              "steroid course starts at the full dose"),
        Event("taper_start", "course_on > 0.5 && time >= steroid_start + policy_full_dose_days"
              " && active < 0.5 && taper_on < 0.5", (("taper_on", "1"), ("taper_from", "time")),
              "every grade >= 2 episode resolved and the minimum full-dose time done: taper"),
        Event("taper_end", "taper_on > 0.5 && time >= taper_from + policy_taper_days",
              (("taper_done", "1"),), "end of the steroid taper"),
    ]
    give = "D_gi >= theta_gi_2 && n_infliximab < policy_max_infliximab"
    ev.append(Event("infliximab_dose", "time >= infliximab_check", (
        ("infliximab_Ac", f"infliximab_Ac + piecewise(policy_infliximab_dose * WT, {give}, 0)"),
        ("n_infliximab", f"n_infliximab + piecewise(1, {give}, 0)"),
        ("infliximab_check", f"piecewise(infliximab_check + policy_infliximab_interval, {give},"
         f" {n})")), "GI still at grade >= 2: infliximab (bolus), check again 14 days later"))
    if policy.hold_at_grade2:
        ev.append(Event("hold_release", "held > 0.5 && active < 0.5 && taper_done > 0.5",
                        (("held", "0"),), "episode resolved and taper complete: resume "
                        "checkpoint-inhibitor infusions"))
    return ev


def _limitations(rescue: bool, policy: ManagementPolicy | None) -> tuple[str, ...]:
    """What the exported file does not represent."""
    out = [
        "population: one virtual patient; inter-individual variability appears only as this "
        "patient's random effects (etas, z values), not as distributions",
        "incidence: the analytic threshold integration, background hazards, endpoint and term "
        "mapping and the observation model (beta-binomial) are not exported",
        "parameter uncertainty: one parameter set (posterior mean or one draw), no posterior",
    ]
    if rescue:
        out += [
            "rescue timing is continuous: pdmodel's fixed-grid solver starts a steroid course "
            "at the next solver step after onset + delay and checks the policy at step ends; "
            "here every decision happens at the exact event time",
            "a hold that ends during an infusion that was withheld does not resume that "
            "infusion part-way (pdmodel's fixed grid would give the rest of it)",
        ]
    if policy is not None and not policy.enabled:
        out.append("policy disabled: natural course")
    return tuple(out)
