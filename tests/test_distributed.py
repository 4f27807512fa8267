"""Multi-process runs (``jax.distributed``): two local CPU processes with two XLA host devices
each (gloo collectives, coordinator on 127.0.0.1) give the single-process results.

Every run here is a real ``python -m pdmodel.cli`` subprocess. The two-process runs (incidence;
fit: MAP, Laplace, exact-likelihood NUTS with the chains split across the processes; a process
that fails) compile on both processes at once and take minutes on two shared cores: they are
marked slow and ``.ci/run`` runs them on their own after ``make test``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import pdmodel.distributed as dist
from pdmodel.errors import DistributedError

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 240
FIT_TIMEOUT_S = 900
"""Limit of each run of the two-process fit test (minutes of compilation on 2 cores)."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(devices: int, **extra) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PDMODEL_", "SLURM_", "OMPI_", "XLA_FLAGS"))}
    env |= {"JAX_PLATFORMS": "cpu", "PDMODEL_NO_CACHE": "1",
            "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
            "PDMODEL_DISTRIBUTED_TIMEOUT": "120", **extra}
    return env


def _cli(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "pdmodel.cli", *args]


def _single(args: list[str], devices: int = 1, timeout: float = TIMEOUT_S
            ) -> subprocess.CompletedProcess:
    return subprocess.run(_cli(args), cwd=ROOT, env=_env(devices), capture_output=True,
                          text=True, timeout=timeout)


def _two_processes(args: list[str], env_settings: bool = False, timeout: float = TIMEOUT_S,
                   **extra) -> list[subprocess.CompletedProcess]:
    """``args`` on two processes of two devices each; the settings as options, or (process
    1 when ``env_settings``) as ``PDMODEL_*`` environment variables."""
    port = _free_port()
    procs = []
    for i in range(2):
        settings = ["--coordinator", f"127.0.0.1:{port}", "--num-processes", "2",
                    "--process-id", str(i)]
        env = _env(2, **{k: v.format(i=i) for k, v in extra.items()})
        if env_settings and i == 1:
            settings = []
            env |= {"PDMODEL_COORDINATOR": f"127.0.0.1:{port}", "PDMODEL_NUM_PROCESSES": "2",
                    "PDMODEL_PROCESS_ID": "1"}
        procs.append(subprocess.Popen(_cli(args + settings), cwd=ROOT, env=env, text=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    out = []
    try:
        for p in procs:
            stdout, stderr = p.communicate(timeout=timeout)
            out.append(subprocess.CompletedProcess(p.args, p.returncode, stdout, stderr))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    return out


def _tail(res: subprocess.CompletedProcess) -> str:
    lines = [ln for ln in res.stderr.splitlines() if not ln.startswith(("[Gloo]", "I0", "W0"))]
    return "\n".join(lines[-15:])


SIMULATE = ["simulate", "--regimen", "nivolumab 1 mg/kg + ipilimumab 3 mg/kg q3w x4",
            "--weight", "70", "--weeks", "6", "--patients", "10", "--organ", "any",
            "--organ", "gi", "--grade", "any", "--grade", "3+", "--format", "json"]


def test_importing_pdmodel_starts_no_jax_backend():
    # jax.distributed.initialize must come before any backend exists: no array on import
    code = ("import jax._src.xla_bridge as xb, pdmodel, pdmodel.cli; "
            "print(xb.backends_are_initialized())")
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=_env(1),
                         capture_output=True, text=True, timeout=TIMEOUT_S)
    assert res.stdout.strip() == "False", res.stderr[-2000:]


@pytest.mark.slow
def test_two_processes_give_the_single_process_incidence(tmp_path):
    t0 = time.perf_counter()
    one = _single(SIMULATE)
    assert one.returncode == 0, _tail(one)
    two = _two_processes(SIMULATE + ["--output", str(tmp_path / "two.json")],
                         env_settings=True)
    for res in two:
        assert res.returncode == 0, _tail(res)
    assert '"incidence"' not in two[1].stdout  # only process 0 writes
    ref, got = json.loads(one.stdout), json.loads((tmp_path / "two.json").read_text())
    assert got.keys() == ref.keys() and got["day"] == ref["day"]
    worst = 0.0
    for organ, by in ref["incidence"].items():
        for grade, values in by.items():
            diff = np.abs(np.subtract(got["incidence"][organ][grade], values))
            worst = max(worst, float(diff.max()))
    assert max(max(v) for by in ref["incidence"].values() for v in by.values()) > 0
    assert worst <= 1e-12, worst
    print(f"two-process incidence: max |difference| {worst:.2e}, "
          f"{time.perf_counter() - t0:.1f} s")


@pytest.mark.slow
def test_a_failed_process_fails_the_run_and_writes_nothing(tmp_path):
    # process 1 is told to join a run of 2 with a process id it cannot have: it exits at
    # once; process 0 waits for it at most PDMODEL_DISTRIBUTED_TIMEOUT and then fails
    port = _free_port()
    out = tmp_path / "out.json"
    p0 = subprocess.Popen(
        _cli(SIMULATE + ["--output", str(out), "--coordinator", f"127.0.0.1:{port}",
                         "--num-processes", "2", "--process-id", "0"]),
        cwd=ROOT, env=_env(2, PDMODEL_DISTRIBUTED_TIMEOUT="8"), text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    bad = _single(SIMULATE + ["--coordinator", f"127.0.0.1:{port}", "--num-processes", "2",
                              "--process-id", "2"])
    stdout, stderr = p0.communicate(timeout=TIMEOUT_S)
    assert bad.returncode == 2 and "--process-id must lie in 0..1" in bad.stderr
    assert p0.returncode != 0  # JAX's client aborts, or our message
    assert ("could not start a multi-process run" in stderr
            or "JAX distributed service" in stderr), stderr[-2000:]
    assert not out.exists()


def test_settings_are_checked_before_anything_starts():
    res = _single(SIMULATE + ["--coordinator", "no-port", "--num-processes", "2",
                              "--process-id", "0"])
    assert res.returncode == 2 and "HOST:PORT" in res.stderr
    res = _single(SIMULATE + ["--num-processes", "2"])
    assert res.returncode == 2 and "--coordinator, --process-id" in res.stderr


def test_thread_map_and_chunk_map_keep_order_and_shapes():
    """Results in the items' order; the first item alone before the others start; every chunk
    of ``chunk_map`` the same shape (the last padded), the padding dropped."""
    import threading

    seen, first_done = [], threading.Event()

    def slow_first(i):
        if i == 0:
            import time
            time.sleep(0.2)
            first_done.set()
        else:
            seen.append(first_done.is_set())
        return i * i

    assert dist.thread_map(slow_first, range(6), first_alone=True) == [0, 1, 4, 9, 16, 25]
    assert all(seen)
    shapes = []

    def fn(a, b):
        shapes.append(a.shape)
        return a.sum(axis=1) + b

    a, b = np.arange(21.0).reshape(7, 3), np.arange(7.0)
    np.testing.assert_array_equal(dist.chunk_map(fn, a, b, size=3), a.sum(axis=1) + b)
    assert set(shapes) == {(3, 3)} and len(shapes) == 3


def test_process_share_splits_evenly_and_in_order():
    for n in (0, 1, 5, 8, 13):
        for count in (1, 2, 3, 4):
            shares = [dist.process_share(n, index=i, count=count) for i in range(count)]
            assert [i for s in shares for i in s] == list(range(n))
            assert max(map(len, shares)) - min(map(len, shares)) <= 1
    with pytest.raises(ValueError, match="outside"):
        dist.process_share(4, index=2, count=2)
    # one process: the identity, and no collective is needed
    assert dist.process_items(["a", "b"]) == ["a", "b"]
    assert dist.map_rows(lambda r: 2 * r, np.arange(3)).tolist() == [0, 2, 4]
    assert dist.all_agree(True, "x") is True
    dist.barrier("single-process")
    assert DistributedError.__mro__[1].__name__ == "PdmodelError"


TINY_FIT = [
    "--set", "map.starts=3", "--set", "map.adam_steps=2", "--set", "map.lbfgs_steps=1",
    "--set", "model.patients=4", "--set", "output.weeks=2", "--set", "nuts.draws=4",
    "--set", "nuts.warmup=4", "--set", "nuts.chains=4", "--set", "nuts.method=exact",
    "--set", "nuts.max_tree_depth=3", "--set", "model.days=28",  # 22 arms: keep solves short
    "--set", 'output.curves_regimens=["nivolumab 240 mg q2w"]',
    "--set", 'model.fixed=["susceptibility", "k_rep", "log_gap2", "log_gap3", "background", '
             '"agent_effect", "w_ab", "w_pd", "w_ctla4"]',
    "--no-progress",
]


@pytest.mark.slow
def test_two_processes_give_the_single_process_fit(tmp_path):
    """MAP (3 starts: two on process 0, one on process 1), the Laplace Hessian (columns split),
    exact NUTS (4 chains: two per process) and the exact solves at the draws (split) equal
    the single-process fit; process 0 alone computes and writes the results."""
    one_dir, two_dir = tmp_path / "one", tmp_path / "two"
    one = _single(["fit", "fits/default.toml", *TINY_FIT, "--set", f"output.folder={one_dir}"],
                  timeout=FIT_TIMEOUT_S)
    assert one.returncode == 0, _tail(one)
    # process 1 waits at the last barrier while process 0 writes the results
    two = _two_processes(["fit", "fits/default.toml", *TINY_FIT,
                          "--set", f"output.folder={two_dir}"], timeout=FIT_TIMEOUT_S,
                         PDMODEL_DISTRIBUTED_TIMEOUT=str(FIT_TIMEOUT_S))
    for res in two:
        assert res.returncode == 0, _tail(res)
    assert "results written to" in two[0].stdout and "results written" not in two[1].stdout
    for stage, key, tol in (("map", "starts_u", 1e-12), ("map", "starts_log_density", 1e-12),
                            ("laplace", "cov", 1e-6), ("nuts", "u", 1e-8),
                            ("exact", "features", 1e-8)):
        ref = np.load(one_dir / "checkpoints" / f"{stage}.npz")[key]
        got = np.load(two_dir / "checkpoints" / f"{stage}.npz")[key]
        assert got.shape == ref.shape
        np.testing.assert_allclose(got, ref, rtol=tol, atol=tol, err_msg=stage)
    assert (two_dir / "results").is_dir()
