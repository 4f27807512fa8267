#!/usr/bin/env bash
# GPU check of pdmodel (about 2-4 minutes on one H100):
#   1. device info (JAX version, backend, devices, memory);
#   2. float64 agreement of a small population's incidence on the GPU with the same computation
#      on the CPU (both in this run, the CPU via jax.devices("cpu")); fails above 1e-9;
#   3. wall time of 1,000,000 virtual patient-years streamed through the GPU
#      (pdmodel.irae.incidence_streaming, chunks of 65,536 patients made on the device);
#   4. a short NUTS run's ESS/s (`python -m benchmarks.nuts_check`: emulator + 4 chains near the
#      reference fit, and the exact log-density gradient time);
#   5. with --fit: `fits/gpu.toml` as a full fit, then the exact-likelihood NUTS
#      (nuts.method = "exact") for short chains (`python -m benchmarks.gpu_fit`): wall time,
#      ESS/s, peak host and GPU memory -> benchmarks/results/gpu_fit.json, and the whole output
#      -> benchmarks/results/gpu_check_<date>.log.
#
# Usage (from anywhere; runs in the repository root):
#   bash benchmarks/gpu_check.sh                 # on a machine with an NVIDIA GPU
#   bash benchmarks/gpu_check.sh --cpu           # same steps on the CPU, small sizes
#   bash benchmarks/gpu_check.sh --fit           # also the GPU fit (tens of minutes)
#   bash benchmarks/gpu_check.sh --wheels DIR    # first install pdmodel and jax[cuda12]
#                                                # offline from the wheels in DIR
# Python: $PYTHON if set, else .venv/bin/python if present, else python3.
# NUTS_TIMEOUT (s) bounds the NUTS step (default 180 on a GPU, 300 with --cpu).
#
# Installing without internet on the GPU machine: on a connected machine with the same Python
# version and platform (linux x86_64), collect every wheel once
#   python -m pip download -d wheels -e '.[test]' 'jax[cuda12]'      # (from the repo root)
# carry `wheels/` along with the repository, then on the GPU machine
#   python3 -m venv .venv && bash benchmarks/gpu_check.sh --wheels wheels
# which runs `pip install --no-index --find-links wheels -e '.[test]' 'jax[cuda12]'` and the
# check. jax[cuda12] brings the CUDA runtime as pip wheels (nvidia-*); only the NVIDIA driver
# must be installed on the machine. On an image that already has JAX with CUDA, diffrax,
# equinox, optax, numpyro, xarray, pandas and typer (as on the H100 run of 2026-11-27), carry
# only the pure-Python wheels of arviz, arviz-base, arviz-stats, arviz-plots, xarray-einstats,
# h5netcdf and tomli-w, `pip install --no-deps --target DIR` them, and run with
# PYTHONPATH=DIR:$PWD PYTHON=python3.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

orig_args=("$@")
mode=gpu
fit=0
wheels=""
while [ $# -gt 0 ]; do
  case "$1" in
    --cpu) mode=cpu ;;
    --fit) fit=1 ;;
    --wheels) wheels="${2:?--wheels needs a folder}"; shift ;;
    -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
    *) echo "error: unknown option $1 (use --cpu, --fit, --wheels DIR)" >&2; exit 2 ;;
  esac
  shift
done

if [ -n "${PYTHON:-}" ]; then
  PY="$PYTHON"
elif [ -x .venv/bin/python ]; then
  PY=.venv/bin/python
else
  PY=python3
fi

if [ -n "$wheels" ]; then
  echo "== installing pdmodel and jax[cuda12] from $wheels (offline)"
  "$PY" -m pip install --quiet --no-index --find-links "$wheels" -e '.[test]' 'jax[cuda12]'
fi

# the check sets float64 itself; no persistent cache, so compile times are real
export PDMODEL_NO_CACHE=1
if [ "$mode" = cpu ]; then
  export JAX_PLATFORMS=cpu
  args=(--cpu)
  nuts_timeout=${NUTS_TIMEOUT:-300}
else
  unset JAX_PLATFORMS  # the GPU and the CPU backends are both needed (agreement check)
  args=()
  nuts_timeout=${NUTS_TIMEOUT:-180}
fi

if [ "$fit" = 1 ] && [ -z "${GPU_CHECK_LOGGED:-}" ]; then  # rerun self, teeing into a log
  mkdir -p benchmarks/results
  log="benchmarks/results/gpu_check_$(date -u +%Y%m%d_%H%M).log"
  GPU_CHECK_LOGGED=1 bash "$0" "${orig_args[@]}" 2>&1 | tee "$log"
  exit "${PIPESTATUS[0]}"
fi

start=$SECONDS
echo "pdmodel GPU check ($mode mode), $(date -u '+%Y-%m-%d %H:%M:%S UTC'), $(uname -srm)"
if command -v nvidia-smi >/dev/null 2>&1 && [ "$mode" = gpu ]; then
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
fi

status=0
"$PY" -m benchmarks.gpu_check "${args[@]}" || status=$?

echo
echo "== NUTS"
# prints its own ESS/s line; --cpu is passed through in CPU mode
if ! timeout "$nuts_timeout" "$PY" -m benchmarks.nuts_check "${args[@]}"; then
  echo "NUTS check: FAILED or timed out after ${nuts_timeout} s"
  status=1
else
  echo "NUTS check: done"
fi

if [ "$fit" = 1 ]; then
  echo
  echo "== GPU fit (fits/gpu.toml, then exact-likelihood NUTS)"
  if ! "$PY" -m benchmarks.gpu_fit; then
    echo "GPU fit: FAILED"
    status=1
  fi
fi

echo
echo "gpu_check finished in $((SECONDS - start)) s, exit status $status"
exit "$status"
