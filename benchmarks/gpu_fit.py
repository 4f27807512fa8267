"""The GPU fit behind ``benchmarks/gpu_check.sh --fit``: ``fits/gpu.toml`` as a full fit, and the
exact-likelihood NUTS (``nuts.method = "exact"``) for a short chain; wall time, ESS/s (from
``results/diagnostics.json``) and peak memory (host RSS of the fit process; device peak from
``nvidia-smi`` sampled every second) of each go to ``benchmarks/results/gpu_fit.json``.

``python -m benchmarks.gpu_fit [--exact-only] [--draws N]``
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _gpu_memory_mib() -> float | None:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used",
                              "--format=csv,noheader,nounits"], capture_output=True, text=True,
                             timeout=10).stdout
        return max(float(x) for x in out.split())
    except (OSError, ValueError, subprocess.SubprocessError):
        return None


def run_fit(name: str, overrides: list[str], folder: Path) -> dict:
    """``pdmodel fit fits/gpu.toml`` with ``overrides``; wall time, peak memory, diagnostics."""
    cmd = [sys.executable, "-m", "pdmodel.cli", "fit", "fits/gpu.toml", "--no-progress",
           "--set", f"output.folder={folder}"]
    for o in overrides:
        cmd += ["--set", o]
    peak = {"gpu_mib": None}
    done = threading.Event()

    def sample():
        while not done.is_set():
            m = _gpu_memory_mib()
            if m is not None:
                peak["gpu_mib"] = max(m, peak["gpu_mib"] or 0.0)
            done.wait(1.0)

    threading.Thread(target=sample, daemon=True).start()
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t
    done.set()
    rss_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(proc.stdout[-3000:], proc.stderr[-3000:] if proc.returncode else "", flush=True)
    out = {"name": name, "overrides": overrides, "returncode": proc.returncode,
           "wall_s": wall, "peak_host_rss_mib": rss_mib, "peak_gpu_memory_mib": peak["gpu_mib"]}
    diag = folder / "results" / "diagnostics.json"
    if diag.exists():
        d = json.loads(diag.read_text())
        out |= {k: d.get(k) for k in ("min_ess_bulk", "min_ess_bulk_per_second", "max_r_hat",
                                      "divergences", "chains", "draws_per_chain")}
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exact-only", action="store_true")
    parser.add_argument("--draws", type=int, default=100,
                        help="warm-up and draws per chain of the exact NUTS run")
    args = parser.parse_args(argv)
    from benchmarks.common import write_result

    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        if not args.exact_only:
            runs.append(run_fit("full fit (fits/gpu.toml)", [], Path(tmp) / "full"))
            print(json.dumps(runs[-1]), flush=True)
        runs.append(run_fit("exact-likelihood NUTS, short chains",
                            ["nuts.method=exact", f"nuts.warmup={args.draws}",
                             f"nuts.draws={args.draws}"], Path(tmp) / "exact"))
        print(json.dumps(runs[-1]), flush=True)
    write_result("gpu_fit", {"runs": runs, "jax_platforms": os.environ.get("JAX_PLATFORMS")})
    return int(any(r["returncode"] for r in runs))


if __name__ == "__main__":
    sys.exit(main())
