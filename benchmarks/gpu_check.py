"""Device check behind ``benchmarks/gpu_check.sh``: device info, float64 agreement with the CPU,
and a million virtual patient-years streamed through the default device.

``python -m benchmarks.gpu_check [--cpu]``; ``--cpu`` runs the same steps on the CPU with small
sizes (for testing the script on a machine without a GPU). Prints plain lines; exit code 1 if
the float64 agreement fails or a step raises.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time

REGIMEN = "nivolumab 1 mg/kg + ipilimumab 3 mg/kg q3w x4, then nivolumab 3 mg/kg q2w"
TOLERANCE = 1e-9  # float64 incidence (a fraction 0-1), default device vs CPU


class _OutOfTime(Exception):
    pass


def device_info() -> dict:
    import jax

    devices = jax.devices()
    info = {"jax": jax.__version__, "backend": jax.default_backend(),
            "devices": [f"{d.platform}:{d.id} {d.device_kind}" for d in devices],
            "x64": bool(jax.config.jax_enable_x64)}
    try:
        stats = devices[0].memory_stats() or {}
        if "bytes_limit" in stats:
            info["memory_gib"] = round(stats["bytes_limit"] / 2**30, 1)
    except Exception:  # not every backend reports memory
        pass
    return info


def agreement(n: int, days: int) -> float:
    """Max |incidence(default device) - incidence(CPU)| of ``n`` patients over ``days``."""
    import equinox as eqx
    import jax
    import numpy as np

    import pdmodel as pdm
    from pdmodel.irae import IraeProblem, incidence_array

    problem = IraeProblem.build(REGIMEN, days=days)
    pop = pdm.Population.sample(jax.random.key(0), n, max_agents=2, preexisting_ad=0.2)
    model, policy = pdm.IraeModel(), pdm.ManagementPolicy(delay_days=2.0)
    f = eqx.filter_jit(incidence_array)
    default = np.asarray(f(model, problem, pop, policy))
    cpu = jax.devices("cpu")[0]

    def put(tree):
        return jax.tree.map(lambda x: jax.device_put(x, cpu) if isinstance(x, jax.Array) else x,
                            tree)

    with jax.default_device(cpu):
        on_cpu = np.asarray(f(put(model), put(problem), put(pop), policy))
    assert default.dtype == np.float64 and on_cpu.dtype == np.float64
    return float(np.max(np.abs(default - on_cpu)))


def streaming(n: int, batch: int, days: int, budget_s: float) -> dict:
    """Incidence curves of ``n`` patients over ``days``, chunks made on the device on demand.

    Stops early (and extrapolates) if the run would exceed ``budget_s``.
    """
    import jax

    import pdmodel as pdm
    from pdmodel.irae import IraeProblem, incidence_streaming

    problem = IraeProblem.build(REGIMEN, days=days)
    model, policy = pdm.IraeModel(), pdm.ManagementPolicy.none()
    key = jax.random.key(1)
    devices = jax.devices() if len(jax.devices()) > 1 else None
    n_dev = 1 if devices is None else len(devices)
    batch = -(-batch // n_dev) * n_dev

    def chunk(k):
        return pdm.Population.sample(jax.random.fold_in(key, k), batch, max_agents=2)

    t = time.perf_counter()  # compile + one chunk
    incidence_streaming(model, problem, chunk, policy, batch_size=batch, n=batch,
                        devices=devices)
    first = time.perf_counter() - t
    done = [0]
    t0 = time.perf_counter()

    def progress(patients, total):
        done[0] = patients
        if time.perf_counter() - t0 > budget_s and patients < total:
            raise _OutOfTime

    complete = True
    try:
        inc = incidence_streaming(model, problem, chunk, policy, batch_size=batch, n=n,
                                  devices=devices, progress=progress)
        final = float(inc[-1, 0, 0])
    except _OutOfTime:
        complete, final = False, math.nan
    wall = time.perf_counter() - t0
    per_patient = wall / max(done[0], 1)
    return {"patients": n, "done": done[0], "complete": complete, "days": days, "batch": batch,
            "devices": n_dev, "compile_and_first_chunk_s": first, "wall_s": wall,
            "ms_per_patient": 1e3 * per_patient, "extrapolated_wall_s": per_patient * n,
            "any_grade_incidence_at_end": final}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cpu", action="store_true", help="CPU mode with small sizes")
    parser.add_argument("--patients", type=int, help="patients of the streaming run")
    parser.add_argument("--batch", type=int, help="patients per chunk")
    parser.add_argument("--budget", type=float, default=150.0,
                        help="seconds allowed for the streaming run (extrapolates past it)")
    args = parser.parse_args(argv)

    import jax

    jax.config.update("jax_enable_x64", True)
    info = device_info()
    print("== device", flush=True)
    for k, v in info.items():
        print(f"{k}: {v}", flush=True)
    if not args.cpu and info["backend"] == "cpu":
        print("error: no GPU visible to JAX (install jax[cuda12], see README 'Running on a "
              "GPU'); use --cpu to run the check on the CPU", flush=True)
        return 1

    ok = True
    print("\n== float64 agreement (default device vs jax.devices('cpu')[0])", flush=True)
    n_agree, days_agree = (16, 60) if args.cpu else (256, 365)
    t = time.perf_counter()
    diff = agreement(n_agree, days_agree)
    verdict = "PASS" if diff <= TOLERANCE else "FAIL"
    ok &= verdict == "PASS"
    print(f"{n_agree} patients x {days_agree} days, with rescue policy: max |diff| = "
          f"{diff:.2e} (tolerance {TOLERANCE:g}) [{time.perf_counter() - t:.1f} s]", flush=True)
    print(f"float64 agreement with CPU: {verdict}", flush=True)

    n = args.patients or (4_000 if args.cpu else 1_000_000)
    batch = args.batch or (2_000 if args.cpu else 65_536)
    print(f"\n== streaming incidence: {n:,} patients x 365 days, chunks of {batch:,}",
          flush=True)
    res = streaming(n, batch, 365, args.budget)
    note = "" if res["complete"] else (f" (stopped after {res['done']:,} patients at the "
                                       f"{args.budget:g} s budget; extrapolated)")
    wall = res["wall_s"] if res["complete"] else res["extrapolated_wall_s"]
    print(f"compile + first chunk: {res['compile_and_first_chunk_s']:.1f} s", flush=True)
    print(f"{n:,} virtual patient-years: {wall:.1f} s wall, {res['ms_per_patient']:.4f} ms per "
          f"patient-year{note}", flush=True)
    print("RESULT " + json.dumps({"device": info, "float64_max_diff": diff,
                                  "streaming": res}), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
