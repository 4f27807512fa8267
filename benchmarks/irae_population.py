"""Full irAE model: N virtual patients × 1 year, pdmodel ``vmap`` vs scipy and libRoadRunner.

One regimen with two agents and time-varying clearance (default: nivolumab 1 mg/kg +
ipilimumab 3 mg/kg q3w ×4, then nivolumab 3 mg/kg q2w), no immunosuppressive rescue.

* **pdmodel**: the fixed-grid solver vmapped over patients (daily trajectories, like the
  loops below; and the population incidence curves on top), in chunks of 2,000 patients split
  across one XLA CPU device per core; float64, and float32 in a subprocess (x64 is
  process-wide). Compile time is reported apart (first call minus a steady call).
* **scipy**: what a user would otherwise write: a numpy right-hand side of the same model,
  ``solve_ivp(method="LSODA")`` segment by segment between infusion starts/stops, in a Python
  loop over patients (``tests/scipy_reference.lsoda_irae``), on a subset of patients.
* **libRoadRunner**: the same model in Antimony → SBML; infusions switched on/off by events,
  time-varying clearance as an assignment rule; CVODE; a Python loop over patients setting each
  patient's parameters between runs, on a subset of patients.

Accuracy: max over days 1..365 and the 9 PD states of ``|x - ref| / (|ref| + 1e-2)`` against
the adaptive diffrax reference (``pdmodel.irae.solvers.reference_states``, rtol 1e-10) for a
few patients.
Run from the repository root (the scipy baseline is imported from ``tests``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# one XLA CPU device per core, before JAX starts (also set by benchmarks/__main__.py)
os.environ.setdefault("XLA_FLAGS", f"--xla_force_host_platform_device_count={os.cpu_count()}")

import equinox as eqx  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.common import write_result  # noqa: E402

REGIMEN = "nivolumab 1 mg/kg + ipilimumab 3 mg/kg q3w x4, then nivolumab 3 mg/kg q2w"
DAYS = 365
CHUNK = 2000
RTOL, ATOL = 1e-6, 1e-9  # scipy and RoadRunner tolerances
N_CHECK = 3  # patients checked against the adaptive reference
ROOT = Path(__file__).resolve().parents[1]
THETA = ("k_e", "e_max", "k_p", "k_a", "rho_pdl1", "w_pd", "w_ab", "w_ctla4", "k_rep")
PK_FIELDS = {
    "CL": "cl",
    "VC": "vc",
    "Q": "q",
    "VP": "vp",
    "TV_EMAX": "tv_emax",
    "TV_IMAX": "tv_imax",
    "TV_T50": "tv_t50",
    "TV_HILL": "tv_hill",
    "VMAX": "vmax",
    "KM": "km",
}


def rel_err(x, ref) -> float:
    x, ref = np.asarray(x, float), np.asarray(ref, float)
    return float(np.max(np.abs(x - ref) / (np.abs(ref) + 1e-2)))


def take(pop, idx):
    return jax.tree.map(lambda x: x[idx], pop)


# ----------------------------------------------------------------------------------- pdmodel


def setup(regimen: str, n: int):
    from pdmodel.irae import IraeModel, IraeProblem, Population

    model = IraeModel()
    problem = IraeProblem.build(regimen, days=DAYS)
    pop = Population.sample(jax.random.key(0), n, max_agents=len(problem.agents))
    return model, problem, pop


def _trajectories(model, problem, pop, policy):
    """Daily trajectories of every patient (what the scipy and RoadRunner loops produce)."""
    return problem.run(model, pop, policy)[0]


def time_pdmodel(model, problem, pop, chunk: int = CHUNK, repeat: int = 3,
                 what: str = "trajectories") -> dict:
    """Steady seconds per patient (best of ``repeat`` passes over all chunks) and compile time.

    ``what``: ``"trajectories"`` (daily PK, PD states and running maxima of every patient, the
    like-for-like comparison with the scipy and RoadRunner loops) or ``"incidence"`` (the
    population incidence curves, 7 organ choices x 3 grades x 365 days, on top).
    Every chunk has the same shape (the last is padded with repeated patients, counted in the
    time but not in the patient count), so one compilation serves all.
    """
    from pdmodel.irae import ManagementPolicy, incidence_array

    n = pop.size
    size = min(chunk, n)
    n_chunks = math.ceil(n / size)
    parts = [take(pop, np.arange(k * size, (k + 1) * size) % n) for k in range(n_chunks)]
    if len(jax.devices()) > 1:  # one device per core (benchmarks/__main__.py sets XLA_FLAGS)
        parts = [p.shard() for p in parts]
    policy = ManagementPolicy.none()
    fn = eqx.filter_jit(incidence_array if what == "incidence" else _trajectories)
    t = time.perf_counter()
    jax.block_until_ready(fn(model, problem, parts[0], policy))
    first = time.perf_counter() - t
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = jax.block_until_ready([fn(model, problem, p, policy) for p in parts])
        best = min(best, time.perf_counter() - t)
    return {
        "n": n,
        "chunk": size,
        "n_chunks": n_chunks,
        "run_s": best,
        "ms_per_patient": 1e3 * best / n,
        "compile_s": first - best / n_chunks,
        "dtype": str(jnp.result_type(float)),
        "devices": len(jax.devices()),
        "finite": bool(all(np.all(np.isfinite(np.asarray(leaf)))
                           for leaf in jax.tree.leaves(out))),
    }


def fast_states(model, problem, pop) -> np.ndarray:
    """Daily PD state ``[patient, day, 9]`` of the fast solver."""
    from pdmodel.irae import IraeProblem, ManagementPolicy

    daily, _ = eqx.filter_jit(IraeProblem.run)(problem, model, pop, ManagementPolicy.none())
    return np.asarray(daily.state)


def reference(model, problem, pop, k: int) -> np.ndarray:
    """Adaptive-reference daily PD state ``[patient, day, 9]`` of the first ``k`` patients."""

    inputs = problem.patient_inputs(model, take(pop, slice(0, k)))
    ts = jnp.arange(1.0, DAYS + 1.0)
    return np.stack(
        [np.asarray(problem.reference(model, take(inputs, i), ts)[1]) for i in range(k)]
    )


def worker(args) -> None:
    """Subprocess entry (``--worker``): time pdmodel in this process's dtype, save to npz."""
    from pdmodel.irae import Population

    model, problem, pop = setup(args.regimen, args.n)
    with np.load(args.worker) as z:  # the parent's population (same patients), cast here
        check = Population(
            **{f.name: jnp.asarray(z[f.name]) for f in dataclasses.fields(Population)}
        )
    timing = time_pdmodel(model, problem, pop)
    states = fast_states(model, problem, check)
    np.savez(args.worker, states=states, timing=json.dumps(timing))


def run_float32(args, pop) -> tuple[dict, np.ndarray] | None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "f32.npz"
        np.savez(
            path,
            **{
                f.name: np.asarray(getattr(take(pop, slice(0, N_CHECK)), f.name))
                for f in dataclasses.fields(pop)
            },
        )
        cmd = [
            sys.executable,
            "-m",
            "benchmarks.irae_population",
            "--dtype",
            "float32",
            "--n",
            str(args.n),
            "--regimen",
            args.regimen,
            "--worker",
            str(path),
        ]
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        if proc.returncode:
            print(f"float32 run failed:\n{proc.stderr[-2000:]}")
            return None
        with np.load(path) as z:
            return json.loads(str(z["timing"])), z["states"]


# ------------------------------------------------------------------ per-patient plain values


def patient_values(model, problem, regimen: str, pop, k: int) -> list[dict]:
    """Plain-float parameters of the first ``k`` patients (for scipy and RoadRunner)."""
    from pdmodel import Regimen, get_agent

    reg = Regimen.parse(regimen)
    inputs = jax.tree.map(np.asarray, problem.patient_inputs(model, take(pop, slice(0, k))))
    ec50 = [float(x) for x in problem.ec50 * model.ec50_scale[problem.target_index]]
    targets = [get_agent(a).target for a in problem.agents]
    theta = {name: np.asarray(getattr(model, name), float) for name in THETA}
    first = np.asarray(problem.grid.first_dose)
    out = []
    for i in range(k):
        w = float(inputs.weight_kg[i])
        infusions = [
            [
                (x.start, x.duration, x.amount)
                for x in reg.infusions(days=DAYS, weight_kg=w)
                if x.agent == a
            ]
            for a in problem.agents
        ]
        pk_list = [
            {key: float(getattr(inputs.pk, name)[i, j]) for key, name in PK_FIELDS.items()}
            | {"T_FIRST": float(first[j])}
            for j in range(len(problem.agents))
        ]
        pd = inputs.pd
        out.append(
            {
                "weight_kg": w,
                "pk_list": pk_list,
                "infusions": infusions,
                "ec50": ec50,
                "targets": targets,
                "theta": theta,
                "pd": {
                    "e0": float(pd.e0[i]),
                    "a_ctla4": float(pd.a_ctla4[i]),
                    "g_pd1": float(pd.g_pd1[i]),
                    "s": np.asarray(pd.susceptibility[i], float),
                },
            }
        )
    return out


# --------------------------------------------------------------------------------- scipy


def scipy_states(v: dict) -> np.ndarray:
    from tests.scipy_reference import lsoda_irae

    return lsoda_irae(
        v["pk_list"],
        v["infusions"],
        v["ec50"],
        v["targets"],
        v["pd"],
        v["theta"],
        np.arange(1.0, DAYS + 1.0),
        rtol=RTOL,
        atol=ATOL,
    )


def time_scipy(values: list[dict]) -> float:
    """Seconds per patient of the LSODA loop."""
    t = time.perf_counter()
    for v in values:
        scipy_states(v)
    return (time.perf_counter() - t) / len(values)


# ------------------------------------------------------------------------------ RoadRunner

ORGAN_IDS = ("skin", "gi", "liver", "lung", "thyroid", "pituitary")
PD_IDS = ["Eff", "Pc", "Ab"] + [f"D_{o}" for o in ORGAN_IDS]


def antimony_model(problem, model, regimen: str) -> str:
    """The full model (no rescue) in Antimony; per-patient values are parameters set later.

    Per agent ``j``: amounts ``Ac{j}``/``Ap{j}`` (mg); infusion rate ``Rmg{j} + Rkg{j} * WT``
    (mg/day), its two parts set by events at every infusion start and end to constants (so the
    events do not depend on the patient); clearance ``clt{j}`` as an assignment rule.
    """
    from pdmodel import Regimen, get_agent
    from pdmodel.vocab import TARGETS

    reg = Regimen.parse(regimen)
    agents = problem.agents
    ec50 = [float(x) for x in problem.ec50 * model.ec50_scale[problem.target_index]]
    first = [float(x) for x in problem.grid.first_dose]
    th = {name: np.asarray(getattr(model, name), float) for name in THETA}
    lines = ["model irae()", "  WT = 80"]
    load = {t: [] for t in TARGETS}
    for j, a in enumerate(agents):
        p = {key: f"{key}_{j}" for key in PK_FIELDS}
        lines += [f"  {name} = 1" for name in p.values()]
        lines += [
            f"  var Ac{j} = 0; var Ap{j} = 0; var Rmg{j} = 0; var Rkg{j} = 0",
            f"  Rin{j} := Rmg{j} + Rkg{j} * WT",
            f"  tau{j} := piecewise(time - {first[j]!r}, time > {first[j]!r}, 0)",
            f"  ft{j} := piecewise(tau{j}^{p['TV_HILL']} / ({p['TV_T50']}^{p['TV_HILL']}"
            f" + tau{j}^{p['TV_HILL']}), tau{j} > 0, 0)",
            f"  clt{j} := {p['CL']} * exp({p['TV_EMAX']} * ft{j}) * (1 + {p['TV_IMAX']} * ft{j})",
            f"  c{j} := Ac{j} / {p['VC']}",
            f"  cp{j} := piecewise(c{j}, c{j} > 0, 0)",
            f"  dist{j} := {p['Q']} * (c{j} - Ap{j} / {p['VP']})",
            f"  Ac{j}' = Rin{j} - clt{j} * c{j} - {p['VMAX']} * cp{j} / ({p['KM']} + cp{j})"
            f" - dist{j}",
            f"  Ap{j}' = dist{j}",
        ]
        load[get_agent(a).target].append(f"cp{j} / {ec50[j]!r}")
    for t, terms in load.items():
        name = "load_" + t.replace("-", "")
        lines.append(f"  {name} := {' + '.join(terms) or '0'}")
        lines.append(f"  occ_{t.replace('-', '')} := {name} / (1 + {name})")
    lines += [
        "  fC := occ_CTLA4",
        f"  fP := occ_PD1 + {float(th['rho_pdl1'])!r} * occ_PDL1",
        "  e0 = 1; a_ctla4 = 1; g_pd1 = 0",
        "  var Eff = 1; var Pc = 1; var Ab = 1",
        f"  Eff' = {float(th['k_e'])!r} * (e0 * (1 + a_ctla4 * fC) - Eff)"
        f" + g_pd1 * fP * Eff * (1 - Eff / {float(th['e_max'])!r})",
        f"  Pc' = {float(th['k_p'])!r} * (Eff / e0 - Pc)",
        f"  Ab' = {float(th['k_a'])!r} * (Pc - Ab)",
    ]
    for o, organ in enumerate(ORGAN_IDS):
        w_pd, w_ab, w_c, k_rep = (float(th[k][o]) for k in ("w_pd", "w_ab", "w_ctla4", "k_rep"))
        lines += [
            f"  s_{organ} = 0; var D_{organ} = 0",
            f"  drive_{organ} := Eff * (1 + {w_pd!r} * fP) + {w_ab!r} * Ab + {w_c!r} * fC"
            f" - (e0 + {w_ab!r})",
            f"  pp_{organ} := piecewise(drive_{organ}^2 / (drive_{organ} + 0.05),"
            f" drive_{organ} > 0, 0)",
            f"  D_{organ}' = s_{organ} * pp_{organ} - {k_rep!r} * D_{organ}",
        ]
    for k, inf in enumerate(reg.infusions(days=DAYS, weight_kg=1.0)):
        j = agents.index(inf.agent)
        r = f"R{'kg' if inf.unit == 'mg/kg' else 'mg'}{j}"
        end = float(inf.start + inf.duration)
        lines += [
            f"  on{k}: at (time >= {float(inf.start)!r}), t0=false: "
            f"{r} = {float(inf.dose / inf.duration)!r}",
            f"  off{k}: at (time >= {end!r}), t0=false: {r} = 0",
        ]
    lines.append("end")
    return "\n".join(lines)


def load_roadrunner(text: str):
    import antimony
    import roadrunner

    antimony.clearPreviousLoads()
    if antimony.loadAntimonyString(text) < 0:
        raise RuntimeError(antimony.getLastError())
    rr = roadrunner.RoadRunner(antimony.getSBMLString("irae"))
    rr.setIntegrator("cvode")
    rr.integrator.relative_tolerance = RTOL
    rr.integrator.absolute_tolerance = ATOL
    rr.integrator.max_num_steps = 100_000
    rr.timeCourseSelections = ["time"] + PD_IDS
    return rr


def rr_assignments(v: dict) -> tuple[list[str], list[float]]:
    ids, vals = ["WT", "e0", "a_ctla4", "g_pd1", "Eff", "Ab"], []
    pd = v["pd"]
    vals += [v["weight_kg"], pd["e0"], pd["a_ctla4"], pd["g_pd1"], pd["e0"], 1.0]
    for o, organ in enumerate(ORGAN_IDS):
        ids.append(f"s_{organ}")
        vals.append(float(pd["s"][o]))
    for j, pk in enumerate(v["pk_list"]):
        for key in PK_FIELDS:
            ids.append(f"{key}_{j}")
            vals.append(pk[key])
    return ids, vals


def rr_states(rr, v: dict) -> np.ndarray:
    """PD state ``[day 1..365, 9]`` of one patient: reset, set the patient's values, simulate.

    ``resetAll`` restores time, states, event states and the event-set rates to their initial
    values and already fires the events of time 0 (the first infusions): their assignments are
    patient-independent constants, so setting the patient's values afterwards is safe. (Setting
    ``init(...)`` of a parameter instead regenerates the model, ~0.5 s a value.)
    """
    rr.resetAll()
    ids, vals = rr_assignments(v)
    rr.setValues(ids, vals)
    res = rr.simulate(0.0, float(DAYS), DAYS + 1)
    return np.asarray(res)[1:, 1:]


def time_rr(rr, values: list[dict]) -> float:
    t = time.perf_counter()
    for v in values:
        rr_states(rr, v)
    return (time.perf_counter() - t) / len(values)


# ------------------------------------------------------------------------------------- main


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=10_000, help="virtual patients (pdmodel)")
    parser.add_argument("--n-scipy", type=int, default=10, help="patients in the scipy loop")
    parser.add_argument("--n-rr", type=int, default=50, help="patients in the RoadRunner loop")
    parser.add_argument("--regimen", default=REGIMEN)
    parser.add_argument(
        "--dtype",
        choices=("float64", "float32"),
        default="float64",
        help="float32 only with --worker (x64 is process-wide)",
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.dtype == "float32" and not args.worker:
        parser.error("--dtype float32 is for the float32 subprocess (needs --worker)")
    jax.config.update("jax_enable_x64", args.dtype == "float64")
    if args.worker:
        worker(args)
        return
    k = max(N_CHECK, args.n_scipy, args.n_rr)
    model, problem, pop = setup(args.regimen, max(args.n, k))
    pop_n = take(pop, slice(0, args.n))

    # pdmodel: accuracy, then timing (float64 here, float32 in a subprocess)
    ref = reference(model, problem, pop, N_CHECK)
    err64 = rel_err(fast_states(model, problem, take(pop, slice(0, N_CHECK))), ref)
    f64 = time_pdmodel(model, problem, pop_n) | {"max_rel_err": err64}
    inc64 = time_pdmodel(model, problem, pop_n, what="incidence") | {"max_rel_err": err64}
    print(
        f"pdmodel f64: {f64['ms_per_patient']:.4f} ms/patient, compile {f64['compile_s']:.1f} s,"
        f" err {err64:.1e}",
        flush=True,
    )
    f32 = run_float32(args, pop)
    if f32 is not None:
        f32 = f32[0] | {"max_rel_err": rel_err(f32[1], ref)}

    values = patient_values(model, problem, args.regimen, pop, k)

    # scipy LSODA loop
    scipy_err = rel_err(np.stack([scipy_states(v) for v in values[:N_CHECK]]), ref)
    scipy = {
        "n": args.n_scipy,
        "max_rel_err": scipy_err,
        "ms_per_patient": 1e3 * time_scipy(values[: args.n_scipy]),
    }
    print(f"scipy: {scipy['ms_per_patient']:.1f} ms/patient, err {scipy_err:.1e}", flush=True)

    # libRoadRunner: load (SBML + LLVM JIT), check against the reference, then time
    t = time.perf_counter()
    rr = load_roadrunner(antimony_model(problem, model, args.regimen))
    rr_load = time.perf_counter() - t
    rr_check = np.stack([rr_states(rr, v) for v in values[:N_CHECK]])
    rr_err = rel_err(rr_check, ref)
    rr_err_de = rel_err(rr_check[..., [0, 3, 4, 5, 6, 7, 8]], ref[..., [0, 3, 4, 5, 6, 7, 8]])
    print(
        f"RoadRunner check vs reference: max rel err {rr_err:.1e} (E and D: {rr_err_de:.1e})",
        flush=True,
    )
    if not rr_err < 1e-3:
        print("WARNING: RoadRunner disagrees with the reference", flush=True)
    rrun = {
        "n": args.n_rr,
        "max_rel_err": rr_err,
        "max_rel_err_E_D": rr_err_de,
        "load_s": rr_load,
        "ms_per_patient": 1e3 * time_rr(rr, values[: args.n_rr]),
    }

    base = f64["ms_per_patient"]
    rows = [(f"pdmodel vmap f64 (N={args.n})", f64),
            (f"  + incidence curves f64 (N={args.n})", inc64)]
    if f32 is not None:
        rows.append((f"pdmodel vmap f32 (N={args.n})", f32))
    rows += [
        (f"scipy LSODA loop (n={args.n_scipy})", scipy),
        (f"libRoadRunner CVODE (n={args.n_rr})", rrun),
    ]
    print(
        f"\nregimen: {args.regimen}; {DAYS} days; reference: diffrax Tsit5 rtol 1e-10 "
        f"({N_CHECK} patients)"
    )
    print(
        f"{'engine':34s} {'ms/patient':>11s} {'pdmodel f64 faster by':>22s} "
        f"{'max rel err vs ref':>19s}"
    )
    for name, r in rows:
        print(
            f"{name:34s} {r['ms_per_patient']:11.4f} {r['ms_per_patient'] / base:21.1f}x "
            f"{r['max_rel_err']:19.1e}"
        )
    print(
        f"compile time pdmodel: f64 {f64['compile_s']:.1f} s"
        + (f", f32 {f32['compile_s']:.1f} s" if f32 else "")
        + f"; RoadRunner model load (SBML + LLVM JIT) {rr_load:.2f} s"
    )
    for r in (scipy, rrun):
        r["pdmodel_faster_by"] = r["ms_per_patient"] / base
    path = write_result(
        "irae_population",
        {
            "regimen": args.regimen,
            "days": DAYS,
            "rtol": RTOL,
            "atol": ATOL,
            "error_metric": "max |x - ref| / (|ref| + 1e-2) over days 1..365 and 9 PD states, "
            f"first {N_CHECK} patients, ref = diffrax Tsit5 rtol 1e-10",
            "pdmodel_f64": f64,
            "pdmodel_f64_incidence": inc64,
            "pdmodel_f32": f32,
            "scipy_lsoda": scipy,
            "roadrunner_cvode": rrun,
        },
    )
    print(f"written {path}")


if __name__ == "__main__":
    main()
