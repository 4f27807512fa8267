"""Strong scaling of population simulation over processes (``jax.distributed``) on one machine.

The same population incidence (all organs and grades, 365 days, ``--patients`` virtual patients
made from one key) is computed by one process and by two cooperating processes (coordinator on
127.0.0.1, gloo CPU collectives), each process holding one XLA CPU device; a single process with
two devices is timed as well (the one-machine alternative). Steady wall time after compiling,
the speed-up 1 → 2 processes, and the largest difference of the incidence from the
one-process run go to ``benchmarks/results/scale_processes.json``.

``python -m benchmarks.scale_processes [--patients N] [--batch B]``
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REGIMEN = "nivolumab 1 mg/kg + ipilimumab 3 mg/kg q3w x4, then nivolumab 3 mg/kg q2w"
DAYS = 365


def worker(patients: int, batch: int) -> None:
    """One process of a run (settings from ``PDMODEL_*``): prints its result as JSON."""
    from pdmodel.cli import setup_jax
    from pdmodel.cli._distributed import start_processes

    setup_jax()
    procs = start_processes()
    import jax
    import numpy as np

    import pdmodel as pdm
    from pdmodel.irae import IraeProblem, incidence_streaming

    problem = IraeProblem.build(REGIMEN, days=DAYS)
    pop = pdm.Population.sample(jax.random.key(0), patients, max_agents=2)
    devices = jax.devices()

    def run():
        return incidence_streaming(pdm.IraeModel(), problem, pop, batch_size=batch,
                                   devices=devices)

    t = time.perf_counter()
    run()
    first = time.perf_counter() - t
    t = time.perf_counter()
    inc = run()
    steady = time.perf_counter() - t
    procs.barrier("benchmark-done")
    if procs.is_main:
        print("RESULT " + json.dumps({
            "processes": procs.count, "devices": len(devices), "first_call_s": first,
            "steady_s": steady, "ms_per_patient": 1e3 * steady / patients,
            "incidence": np.asarray(inc).ravel().tolist()}), flush=True)


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(processes: int, devices: int, patients: int, batch: int) -> dict:
    port = _port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PDMODEL_", "XLA_FLAGS"))}
    env |= {"JAX_PLATFORMS": "cpu", "PDMODEL_NO_CACHE": "1",
            "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
    cmd = [sys.executable, "-m", "benchmarks.scale_processes", "--worker",
           "--patients", str(patients), "--batch", str(batch)]
    procs = []
    for i in range(processes):
        extra = {} if processes == 1 else {
            "PDMODEL_COORDINATOR": f"127.0.0.1:{port}",
            "PDMODEL_NUM_PROCESSES": str(processes), "PDMODEL_PROCESS_ID": str(i)}
        procs.append(subprocess.Popen(cmd, cwd=ROOT, env=env | extra, text=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    outs = [p.communicate() for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        if p.returncode:
            raise RuntimeError(f"worker failed ({p.returncode}):\n{err[-3000:]}")
    line = next(ln for ln in outs[0][0].splitlines() if ln.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=16_000)
    parser.add_argument("--batch", type=int, default=4_000)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.patients, args.batch)
        return {}
    import numpy as np

    from benchmarks.common import machine_info, write_result

    runs = {}
    for name, (processes, devices) in {"1_process_1_device": (1, 1),
                                       "2_processes_1_device_each": (2, 1),
                                       "1_process_2_devices": (1, 2)}.items():
        runs[name] = _launch(processes, devices, args.patients, args.batch)
        print(f"{name}: steady {runs[name]['steady_s']:.2f} s "
              f"({runs[name]['ms_per_patient']:.3f} ms/patient), first call "
              f"{runs[name]['first_call_s']:.1f} s", flush=True)
    ref = np.asarray(runs["1_process_1_device"]["incidence"])
    for run in runs.values():
        run["max_abs_diff_vs_1_process"] = float(np.max(np.abs(np.asarray(run.pop("incidence"))
                                                               - ref)))
    one, two = runs["1_process_1_device"], runs["2_processes_1_device_each"]
    payload = {
        "what": f"population incidence, {args.patients} patients x {DAYS} days, chunks of "
                f"{args.batch}, regimen {REGIMEN!r}; steady wall time after compiling",
        "machine": machine_info(), "patients": args.patients, "batch": args.batch,
        "runs": runs,
        "speedup_1_to_2_processes": one["steady_s"] / two["steady_s"],
        "parallel_efficiency_2_processes": one["steady_s"] / two["steady_s"] / 2,
        "speedup_1_to_2_devices_one_process":
            one["steady_s"] / runs["1_process_2_devices"]["steady_s"],
    }
    path = write_result("scale_processes", payload)
    print(f"1 -> 2 processes: speed-up {payload['speedup_1_to_2_processes']:.2f}x "
          f"(efficiency {payload['parallel_efficiency_2_processes']:.0%}); max |diff| "
          f"{two['max_abs_diff_vs_1_process']:.1e}; written {path}")
    return payload


if __name__ == "__main__":
    main()
