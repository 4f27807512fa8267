"""Scale: population size, gradients, compile times, memory, a million patients.

* **scaling**: population incidence curves (all organs and grades, 365 days) of N = 100 ...
  100,000 virtual patients with ``incidence_streaming`` (chunks of up to 4,000 patients split
  across one XLA CPU device per core), steady time per patient; compared with the per-patient
  cost of the scipy LSODA and libRoadRunner loops of ``benchmarks.irae_population`` (daily
  trajectories only — the incidence curves are pdmodel's extra work). The loops cost the same
  per patient at any N, so they are **timed on a subset** (``--n-scipy``, ``--n-rr`` patients)
  and reported per patient.
* **gradient**: ``jit(value_and_grad(log_density))`` vs ``jit(log_density)`` on
  ``build_design(load_incidence(), patients=8)`` and ``FitSpec.default()`` (target ≤ 3×).
* **compile**: first-call compile time of ``incidence_array`` and ``IraeProblem.run`` (2,000
  patients) and of the log-density and its gradient; and of ``incidence_array`` in a fresh
  process with a cold and a warm persistent compilation cache (what ``pdmodel`` CLI runs get).
* **memory**: peak RSS (``ru_maxrss`` of a subprocess, which includes XLA's buffers) of the
  streaming run at two population sizes: bounded memory means the two are close.
* **1e6**: 1,000,000 patients × 365 days streamed (population made chunk by chunk), wall
  time (after compiling) and peak RSS of the whole process.

``python -m benchmarks.scale [--quick]`` (``--quick``: N up to 1,000, 20,000 streamed).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("XLA_FLAGS", f"--xla_force_host_platform_device_count={os.cpu_count()}")

import jax  # noqa: E402

from benchmarks.common import RESULTS, write_result  # noqa: E402

REGIMEN = "nivolumab 1 mg/kg + ipilimumab 3 mg/kg q3w x4, then nivolumab 3 mg/kg q2w"
DAYS = 365
CHUNK = 4000  # patients per chunk (2,000 per device on 2 cores)
ROOT = Path(__file__).resolve().parents[1]


def _setup():
    import pdmodel as pdm
    from pdmodel.irae import IraeProblem

    return pdm.IraeModel(), IraeProblem.build(REGIMEN, days=DAYS), pdm.ManagementPolicy.none()


def _sampler(batch: int):
    import pdmodel as pdm

    key = jax.random.key(0)
    return lambda k: pdm.Population.sample(jax.random.fold_in(key, k), batch, max_agents=2)


def _devices():
    return jax.devices() if len(jax.devices()) > 1 else None


# ---------------------------------------------------------------------------- compile times


def compile_times() -> dict:
    import equinox as eqx

    import pdmodel as pdm
    from pdmodel.data import load_incidence
    from pdmodel.fit import build_design
    from pdmodel.irae import IraeProblem, incidence_array

    model, problem, policy = _setup()
    pop = pdm.Population.sample(jax.random.key(0), 2000, max_agents=2)
    out = {}
    for name, fn, args in (
        ("incidence_array", eqx.filter_jit(incidence_array), (model, problem, pop, policy)),
        ("simulate_run", eqx.filter_jit(IraeProblem.run), (problem, model, pop, policy)),
    ):
        t = time.perf_counter()
        jax.block_until_ready(fn(*args))
        first = time.perf_counter() - t
        t = time.perf_counter()
        jax.block_until_ready(fn(*args))
        out[name] = {"first_call_s": first, "steady_s": time.perf_counter() - t,
                     "compile_s": first - (time.perf_counter() - t)}
    return out | likelihood_times(build_design(load_incidence(), patients=8))


def likelihood_times(design, repeats: int = 5) -> dict:
    """First-call and steady times (s) of ``jit(log_density)`` and
    ``jit(value_and_grad(log_density))`` on ``design`` at the prior centre, and their ratio."""
    from pdmodel.fit import FitSpec, log_density

    spec = FitSpec.default()
    u = spec.prior_location()

    def ld(u):
        return log_density(u, spec, design)

    out = {}
    for name, fn in (("log_density", jax.jit(ld)),
                     ("value_and_grad", jax.jit(jax.value_and_grad(ld)))):
        t = time.perf_counter()
        jax.block_until_ready(fn(u))
        first = time.perf_counter() - t
        steady = min(_time(lambda fn=fn, k=k: fn(u + 0.01 * (k + 1))) for k in range(repeats))
        out[name] = {"first_call_s": first, "steady_s": steady, "compile_s": first - steady}
    out["gradient_over_eval"] = out["value_and_grad"]["steady_s"] / out["log_density"][
        "steady_s"]
    return out


def _time(fn) -> float:
    t = time.perf_counter()
    jax.block_until_ready(fn())
    return time.perf_counter() - t


CACHE_CODE = """
import time, jax
from pdmodel.cli import setup_jax
setup_jax()
import equinox as eqx, pdmodel as pdm
from pdmodel.irae import IraeProblem, incidence_array
problem = IraeProblem.build({regimen!r}, days={days})
pop = pdm.Population.sample(jax.random.key(0), 256, max_agents=2)
f = eqx.filter_jit(incidence_array)
t = time.perf_counter()
jax.block_until_ready(f(pdm.IraeModel(), problem, pop, pdm.ManagementPolicy.none()))
print("FIRST", time.perf_counter() - t)
"""


def persistent_cache() -> dict:
    """First-call time of incidence_array in fresh processes: cold, then warm cache."""
    code = CACHE_CODE.format(regimen=REGIMEN, days=DAYS)
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if k != "PDMODEL_NO_CACHE"}
        env["PDMODEL_CACHE_DIR"] = tmp
        for name in ("cold", "warm"):
            proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                                  capture_output=True, text=True)
            if proc.returncode:
                print(f"cache run failed:\n{proc.stderr[-2000:]}")
                return {}
            out[f"{name}_first_call_s"] = float(proc.stdout.split("FIRST")[-1])
    return out


# ---------------------------------------------------------------------------------- scaling


def scaling(sizes) -> list[dict]:
    from pdmodel.irae import incidence_streaming

    model, problem, policy = _setup()
    rows = []
    for n in sizes:
        batch = min(n, CHUNK)
        chunk = _sampler(batch)
        kw = dict(batch_size=batch, n=n, devices=_devices())
        t = time.perf_counter()
        incidence_streaming(model, problem, chunk, policy, **(kw | {"n": batch}))
        first = time.perf_counter() - t
        t = time.perf_counter()
        incidence_streaming(model, problem, chunk, policy, **kw)
        run = time.perf_counter() - t
        rows.append({"n": n, "batch": batch, "run_s": run, "ms_per_patient": 1e3 * run / n,
                     "first_chunk_with_compile_s": first})
        print(f"  pdmodel N={n:>7,}: {1e3 * run / n:.4f} ms/patient ({run:.2f} s)", flush=True)
    return rows


def baselines(n_scipy: int, n_rr: int) -> dict:
    from benchmarks import irae_population as ip

    model, problem, _ = _setup()
    pop = __import__("pdmodel").Population.sample(jax.random.key(0), max(n_scipy, n_rr),
                                                  max_agents=2)
    values = ip.patient_values(model, problem, REGIMEN, pop, max(n_scipy, n_rr))
    out = {"scipy_lsoda": {"n": n_scipy,
                           "ms_per_patient": 1e3 * ip.time_scipy(values[:n_scipy])}}
    try:
        rr = ip.load_roadrunner(ip.antimony_model(problem, model, REGIMEN))
        out["roadrunner_cvode"] = {"n": n_rr, "ms_per_patient": 1e3 * ip.time_rr(rr, values[:n_rr])}
    except ImportError as err:  # make bench installs the bench extras
        print(f"  libRoadRunner not available ({err}); skipped")
        out["roadrunner_cvode"] = None
    return out


# ------------------------------------------------------------------- streaming, peak memory


def stream_worker(n: int, batch: int, out: str) -> None:
    """Subprocess: stream ``n`` patients, write timings to ``out`` (JSON)."""
    from pdmodel.irae import incidence_streaming

    model, problem, policy = _setup()
    chunk = _sampler(batch)
    t = time.perf_counter()  # compile and one chunk
    incidence_streaming(model, problem, chunk, policy, batch_size=batch, n=batch,
                        devices=_devices())
    first = time.perf_counter() - t
    t = time.perf_counter()
    inc = incidence_streaming(model, problem, chunk, policy, batch_size=batch, n=n,
                              devices=_devices())
    wall = time.perf_counter() - t
    Path(out).write_text(json.dumps({"n": n, "batch": batch, "wall_s": wall,
                                     "peak_rss_mb": _peak_rss_mb(),
                                     "compile_and_first_chunk_s": first,
                                     "ms_per_patient": 1e3 * wall / n,
                                     "any_grade_at_day_365": float(inc[-1, 0, 0])}))


def _peak_rss_mb() -> float:
    """Peak resident memory of this process, MB: ``VmHWM`` of ``/proc/self/status`` (Linux).

    Not ``ru_maxrss``: on Linux a child's ``ru_maxrss`` starts from its parent's high-water
    mark (carried across fork and exec), which would report the benchmark's own size.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def stream_run(n: int, batch: int = CHUNK) -> dict:
    """Run :func:`stream_worker` in a subprocess (its peak RSS comes from the worker)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.json"
        cmd = [sys.executable, "-m", "benchmarks.scale", "--stream-worker", str(n), str(batch),
               str(out)]
        t = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT)
        total = time.perf_counter() - t
        if proc.returncode:
            return {"n": n, "failed": proc.returncode}
        res = json.loads(out.read_text())
    return res | {"process_wall_s": total}


def _print_streaming(runs) -> None:
    for m in runs:
        if "failed" in m:
            print(f"streaming {m['n']:,}: FAILED (exit {m['failed']})")
        else:
            print(f"streaming {m['n']:>9,} patients x 365 days: {m['wall_s']:.1f} s "
                  f"({m['ms_per_patient']:.4f} ms/patient; compile + first chunk "
                  f"{m['compile_and_first_chunk_s']:.1f} s before), whole process peak RSS "
                  f"{m['peak_rss_mb']:.0f} MB")


# ------------------------------------------------------------------------------------ main


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes (a few minutes)")
    parser.add_argument("--n-scipy", type=int, default=5, help="patients in the scipy loop")
    parser.add_argument("--n-rr", type=int, default=50, help="patients in the RoadRunner loop")
    parser.add_argument("--stream-worker", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--streaming-only", action="store_true",
                        help="only the two streaming runs; update them in the results file")
    args = parser.parse_args(argv)
    jax.config.update("jax_enable_x64", True)
    if args.stream_worker:
        n, batch, out = args.stream_worker
        stream_worker(int(n), int(batch), out)
        return
    sizes = (100, 1_000) if args.quick else (100, 1_000, 10_000, 100_000)
    big, small = (20_000, 5_000) if args.quick else (1_000_000, 10_000)
    n_scipy, n_rr = (2, 10) if args.quick else (args.n_scipy, args.n_rr)
    name = "scale_quick" if args.quick else "scale"
    if args.streaming_only:
        runs = [stream_run(small), stream_run(big)]
        _print_streaming(runs)
        path = RESULTS / f"{name}.json"
        payload = json.loads(path.read_text()) if path.exists() else {}
        payload.pop("machine", None)
        print(f"written {write_result(name, payload | {'streaming': runs})}")
        return

    print("compile times and gradient cost ...", flush=True)
    comp = compile_times()
    cache = persistent_cache()
    print("population scaling ...", flush=True)
    rows = scaling(sizes)
    base = baselines(n_scipy, n_rr)
    print(f"streaming {small:,} and {big:,} patients (subprocesses, peak RSS) ...", flush=True)
    mem_small = stream_run(small)
    mem_big = stream_run(big)

    print(f"\nregimen: {REGIMEN}; {DAYS} days; float64; {len(jax.devices())} XLA CPU devices")
    print(f"{'N':>9s} {'pdmodel ms/pt':>14s} {'scipy ms/pt':>12s} {'x faster':>9s} "
          f"{'RoadRunner ms/pt':>17s} {'x faster':>9s}")
    sp = base["scipy_lsoda"]["ms_per_patient"]
    rr = (base["roadrunner_cvode"] or {}).get("ms_per_patient", float("nan"))
    for r in rows:
        r["scipy_over_pdmodel"] = sp / r["ms_per_patient"]
        r["roadrunner_over_pdmodel"] = rr / r["ms_per_patient"]
        print(f"{r['n']:>9,} {r['ms_per_patient']:14.4f} {sp:12.2f} "
              f"{r['scipy_over_pdmodel']:8.0f}x {rr:17.2f} {r['roadrunner_over_pdmodel']:8.0f}x")
    print(f"(scipy timed on {n_scipy}, RoadRunner on {n_rr} patients, per patient; pdmodel "
          "times include the incidence curves)")
    print(f"gradient / evaluation of log_density: {comp['gradient_over_eval']:.2f}x "
          f"(eval {1e3 * comp['log_density']['steady_s']:.1f} ms, value_and_grad "
          f"{1e3 * comp['value_and_grad']['steady_s']:.1f} ms; target <= 3x)")
    print("compile s: " + ", ".join(f"{k} {v['compile_s']:.1f}" for k, v in comp.items()
                                    if isinstance(v, dict)))
    if cache:
        print(f"fresh-process first call of incidence_array (256 patients): cold cache "
              f"{cache['cold_first_call_s']:.1f} s, warm cache {cache['warm_first_call_s']:.1f} s")
    _print_streaming([mem_small, mem_big])
    path = write_result(name, {
        "regimen": REGIMEN, "days": DAYS, "dtype": "float64", "chunk": CHUNK,
        "note": "scipy and RoadRunner loops timed on a subset of patients (n) and reported per "
                "patient; pdmodel times include the population incidence curves",
        "scaling": rows, "baselines": base, "compile": comp, "persistent_cache": cache,
        "streaming": [mem_small, mem_big]})
    print(f"written {path}")


if __name__ == "__main__":
    main()
