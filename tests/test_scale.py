"""Scale: one code path for CPU and GPU, sharding, bounded-memory simulation, no recompiles,
the persistent compilation cache of the CLI, the GPU fit config and the GPU check script."""

import json
import logging
import os
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import pdmodel as pdm
from pdmodel.irae import IraeProblem, incidence_array, incidence_streaming

ROOT = Path(__file__).resolve().parents[1]
REGIMEN = "nivolumab 240 mg q2w"
DAYS = 21
COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"
CACHE_HIT_EVENT = "/jax/compilation_cache/cache_hits"
_incidence = eqx.filter_jit(incidence_array)


def _setup(n=8, seed=0):
    problem = IraeProblem.build(REGIMEN, days=DAYS)
    pop = pdm.Population.sample(jax.random.key(seed), n, max_agents=1, preexisting_ad=0.3)
    return pdm.IraeModel(), problem, pop, pdm.ManagementPolicy.none()


class CompileCounter:
    """Counts XLA compilations while active, and loads of compiled programs from a persistent
    compilation cache (the test run has one, tests/conftest.py): a program built again counts
    even when its compilation is found on disk (``jax.monitoring`` listeners)."""

    def __enter__(self):
        self.count = 0
        jax.monitoring.register_event_duration_secs_listener(self._listen)
        jax.monitoring.register_event_listener(self._event)
        return self

    def _listen(self, event, duration, **kwargs):
        if event == COMPILE_EVENT:
            self.count += 1

    def _event(self, event, **kwargs):
        if event == CACHE_HIT_EVENT:
            self.count += 1

    def __exit__(self, *exc):
        jax.monitoring.unregister_event_duration_listener(self._listen)
        jax.monitoring.unregister_event_listener(self._event)


def test_default_and_explicit_cpu_placement_agree():
    """float64 incidence is the same with JAX's default placement and on
    ``jax.devices("cpu")[0]``: pdmodel makes no platform assumption. Here (tests run on CPU)
    both are the CPU; ``benchmarks/gpu_check.sh`` is the GPU counterpart (default = GPU)."""
    model, problem, pop, policy = _setup()
    default = _incidence(model, problem, pop, policy)
    cpu = jax.devices("cpu")[0]

    def put(tree):
        return jax.tree.map(lambda x: jax.device_put(x, cpu) if isinstance(x, jax.Array) else x,
                            tree)

    with jax.default_device(cpu):
        on_cpu = _incidence(put(model), put(problem), put(pop), policy)
    assert default.dtype == np.float64 and on_cpu.dtype == np.float64
    assert on_cpu.devices() == {cpu}
    np.testing.assert_allclose(np.asarray(default), np.asarray(on_cpu), rtol=0, atol=1e-12)


def test_chunked_equals_unchunked():
    model, problem, pop, policy = _setup()
    full = np.asarray(_incidence(model, problem, pop, policy))
    chunked = np.asarray(_incidence(model, problem, pop, policy, batch_size=3))  # padded
    np.testing.assert_allclose(chunked, full, rtol=0, atol=1e-12)
    streamed = incidence_streaming(model, problem, pop, policy, batch_size=3)
    np.testing.assert_allclose(streamed, full, rtol=0, atol=1e-12)
    # a population that is never held whole: chunks made on demand
    seen = []
    made = incidence_streaming(model, problem, lambda k: pop.take(slice(3 * k, 3 * k + 3)),
                               policy, batch_size=3, n=pop.size,
                               progress=lambda done, n: seen.append(done))
    np.testing.assert_allclose(made, full, rtol=0, atol=1e-12)
    assert seen == [3, 6, 8]
    # weights: padding copies with weight 0 leave the average unchanged
    padded = pop.pad_to(11)
    w = (np.arange(11) < 8).astype(float)
    np.testing.assert_allclose(_incidence(model, problem, padded, policy, weights=w), full,
                               rtol=0, atol=1e-12)


def test_streaming_validates():
    model, problem, pop, policy = _setup()
    with pytest.raises(ValueError, match="batch_size"):
        incidence_streaming(model, problem, pop, policy, batch_size=0)
    with pytest.raises(ValueError, match="n \\(the number of patients\\)"):
        incidence_streaming(model, problem, lambda k: pop, policy, batch_size=4)
    with pytest.raises(ValueError, match="pad_to"):
        pop.pad_to(3)
    with pytest.raises(ValueError, match="shard\\(pad=True\\)"):
        pop.take(slice(0, 3)).shard([jax.devices()[0]] * 2)


def test_second_call_does_not_recompile():
    """Same shapes, other parameter values, a freshly built problem: no new compilation."""
    model, problem, pop, policy = _setup()
    _incidence(model, problem, pop, policy).block_until_ready()
    other = eqx.tree_at(lambda m: m.g_pd1, model, model.g_pd1 * 1.5)
    pop2 = pdm.Population.sample(jax.random.key(1), 8, max_agents=1)
    with CompileCounter() as c:
        _incidence(other, IraeProblem.build(REGIMEN, days=DAYS), pop2, policy).block_until_ready()
    assert c.count == 0
    pdm.incidence(model, REGIMEN, pop, days=DAYS, grade="3+")
    with CompileCounter() as c:
        pdm.incidence(other, REGIMEN, pop2, days=DAYS, grade="3+")
    assert c.count == 0


def test_log_density_gradient_does_not_recompile():
    """The fit's gradient compiles once for all parameter vectors *and designs* of a shape: the
    design travels as an argument (a ``jax.tree_util.Partial``, as in ``run_fit``), so another
    virtual population of the same size reuses the program, and the result is the closure's."""
    from pdmodel.data import load_incidence
    from pdmodel.fit import FitSpec, build_design, log_density, log_density_of

    spec = FitSpec.default()
    designs = [build_design(load_incidence(), patients=4, days=28, seed=s) for s in (0, 1)]
    vg = eqx.filter_jit(lambda u, f: jax.value_and_grad(f)(u))
    u0 = spec.prior_location()
    jax.block_until_ready(vg(u0, jax.tree_util.Partial(log_density_of, spec, designs[0])))
    u1 = jax.block_until_ready(u0 + 0.01)  # (an eager add compiles too: outside the count)
    with CompileCounter() as c:
        v, g = vg(u1, jax.tree_util.Partial(log_density_of, spec, designs[1]))
        jax.block_until_ready(g)
    assert c.count == 0 and np.isfinite(float(v)) and np.all(np.isfinite(g))
    # the closure (design as constants), compiled: op by op it took 11 s longer
    v_ref, g_ref = jax.jit(jax.value_and_grad(lambda u: log_density(u, spec, designs[1])))(u1)
    np.testing.assert_allclose(g, g_ref, rtol=1e-10, atol=1e-12)
    assert float(v) == pytest.approx(float(v_ref), rel=1e-12)


@pytest.mark.slow  # ~2 min of compilation on 2 cores; the gradient case runs by default
def test_second_map_fit_does_not_recompile():
    """A second MAP fit with the same shapes and settings (another virtual population, other
    starts) reuses the compiled optimiser; so do batched exact solves (``evaluate``, used for
    the emulator design and the exact solves at the draws)."""
    from pdmodel.data import load_incidence
    from pdmodel.fit import (
        FitSpec,
        build_design,
        evaluate,
        log_density_of,
        log_max_injury_of,
        map_fit,
    )

    spec = FitSpec.default()
    u0 = spec.prior_location()
    settings = dict(scale=0.1, starts=1, adam_steps=3, lbfgs_steps=2)
    points = u0 + 0.01 * jax.random.normal(jax.random.key(2), (3, u0.shape[0]))
    fits, feats = [], []
    for seed in (0, 1):
        design = build_design(load_incidence(), patients=4, days=28, seed=seed)
        ld = jax.tree_util.Partial(log_density_of, spec, design)
        with CompileCounter() as c:
            fits.append(map_fit(ld, u0, jax.random.key(seed), **settings))
            feats.append(evaluate(jax.tree_util.Partial(log_max_injury_of, spec, design), points,
                                  batch_size=2))
    assert c.count == 0  # the second fit and solves
    assert all(np.isfinite(float(f.log_density)) for f in fits)
    assert float(fits[0].log_density) != float(fits[1].log_density)
    assert feats[0].shape == (3, 6 * 4 * len(design.units)) and not np.allclose(feats[0], feats[1])


SHARD_SCRIPT = textwrap.dedent("""
    import json
    import jax
    jax.config.update("jax_enable_x64", True)
    import equinox as eqx
    import numpy as np
    import pdmodel as pdm
    from pdmodel.irae import IraeProblem, incidence_array, incidence_streaming

    reg = "nivolumab 240 mg q2w"
    devices = jax.devices()
    model, policy = pdm.IraeModel(), pdm.ManagementPolicy.none()
    problem = IraeProblem.build(reg, days=21)
    pop = pdm.Population.sample(jax.random.key(0), 10, max_agents=1, preexisting_ad=0.3)
    f = eqx.filter_jit(incidence_array)
    out = {"devices": len(devices)}
    eight = pop.take(slice(0, 8))
    sharded = eight.shard()
    out["spread"] = len(sharded.z_pk.sharding.device_set)
    a, b = f(model, problem, eight, policy), f(model, problem, sharded, policy)
    out["incidence_array"] = float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
    # 10 patients on 4 devices: padded to 12, result unpadded
    kw = dict(days=21, organ=["any", "gi"], grade=["any", "3+"])
    c = pdm.incidence(model, reg, pop, **kw)
    d = pdm.incidence(model, reg, pop, devices=devices, **kw)
    out["incidence_padded"] = float(np.max(np.abs(c.values - d.values)))
    s = incidence_streaming(model, problem, pop, policy, batch_size=6, devices=devices)
    ref = f(model, problem, pop, policy, background=True)  # as pdm.incidence: no new compile
    out["streaming"] = float(np.max(np.abs(s - np.asarray(ref))))
    rescue = pdm.ManagementPolicy(delay_days=2.0)
    t0 = pdm.simulate(model, reg, pop, days=21, policy=rescue)
    t1 = pdm.simulate(model, reg, pop, days=21, policy=rescue, devices=devices)
    out["simulate_size"] = t1.sizes["patient"]
    out["simulate"] = float(np.nanmax(np.abs(t1.max_injury.values - t0.max_injury.values)))
    out["onset_same"] = bool(np.array_equal(t0.onset.values, t1.onset.values, equal_nan=True))
    print("RESULT " + json.dumps(out))
""")


def test_sharded_population_matches_unsharded():
    """4 CPU devices in a subprocess (this process has one): sharded, padded-and-sharded and
    streamed-sharded incidence and trajectories agree with one device to 1e-12 (float64)."""
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4",
               JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-c", SHARD_SCRIPT], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    out = json.loads(line.removeprefix("RESULT "))
    assert out["devices"] == 4 and out["spread"] == 4
    for key in ("incidence_array", "incidence_padded", "streaming", "simulate"):
        assert out[key] <= 1e-12, (key, out)
    assert out["simulate_size"] == 10 and out["onset_same"]


def test_cli_compilation_cache_switch(tmp_path):
    """The CLI turns on JAX's persistent compilation cache ($PDMODEL_CACHE_DIR), and
    $PDMODEL_NO_CACHE=1 turns it off (checked in subprocesses: the switch is global)."""
    code = ("import jax; from pdmodel.cli import enable_compilation_cache as e; p = e(); "
            "print('RESULT', p, jax.config.jax_compilation_cache_dir, "
            "jax.config.jax_persistent_cache_min_compile_time_secs)")
    env = {k: v for k, v in os.environ.items()
           if k not in ("PDMODEL_NO_CACHE", "JAX_COMPILATION_CACHE_DIR")}
    cache = tmp_path / "cache"
    on = subprocess.run([sys.executable, "-c", code], env=env | {"PDMODEL_CACHE_DIR": str(cache)},
                        capture_output=True, text=True, timeout=120)
    assert on.returncode == 0, on.stderr[-2000:]
    assert on.stdout.split("RESULT ")[-1].split() == [str(cache), str(cache), "0.0"]
    assert cache.is_dir()
    off = subprocess.run([sys.executable, "-c", code],
                         env=env | {"PDMODEL_CACHE_DIR": str(cache), "PDMODEL_NO_CACHE": "1"},
                         capture_output=True, text=True, timeout=120)
    assert off.returncode == 0, off.stderr[-2000:]
    assert off.stdout.split("RESULT ")[-1].split()[:2] == ["None", "None"]


def _keys(table, prefix=""):
    out = set()
    for k, v in table.items():
        if isinstance(v, dict) and k not in ("pk_models", "priors"):
            out |= _keys(v, f"{prefix}{k}.")
        else:
            out.add(prefix + k)
    return out


def test_gpu_config_loads():
    from pdmodel.fit import load_config

    cfg = load_config(ROOT / "fits" / "gpu.toml")
    assert cfg.model.patients >= 256 and cfg.nuts.chains >= 8
    assert (cfg.model.steps_per_day, cfg.model.refine) == (2, 2)
    gpu = tomllib.loads((ROOT / "fits" / "gpu.toml").read_text())
    default = tomllib.loads((ROOT / "fits" / "default.toml").read_text())
    assert _keys(gpu) == _keys(default)


@pytest.mark.slow
def test_gpu_check_script_cpu_mode():
    """``bash benchmarks/gpu_check.sh --cpu`` (small sizes) runs end to end."""
    env = dict(os.environ, PYTHON=sys.executable)
    env.pop("XLA_FLAGS", None)
    proc = subprocess.run(["bash", "benchmarks/gpu_check.sh", "--cpu"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert "float64 agreement with CPU: PASS" in out
    assert "virtual patient-years" in out
    assert "NUTS check:" in out


def test_exact_programs_compiled_ahead_are_found_compiled():
    """``pdmodel fit`` compiles the exact solves' programs on a thread while the MAP compiles
    its gradient (``_compile_ahead``): the exact stage and the Laplace check then compile
    nothing, at the batch shapes the stages use."""
    from pdmodel.distributed import chunk_map
    from pdmodel.fit import load_config
    from pdmodel.fit._config import apply_overrides
    from pdmodel.fit._emulator import evaluate
    from pdmodel.fit._pipeline import EXACT_BATCH, POSTERIOR_BATCH, _compile_ahead, _prepare

    config = apply_overrides(load_config("fits/default.toml"),
                             ["model.patients=2", "model.days=28", "output.weeks=2",
                              "nuts.draws=60"])
    fit = _prepare(config, False, lambda line: None)
    _compile_ahead(fit).join()
    u = np.asarray(fit.spec.prior_location()) + 0.01 * np.random.default_rng(0).normal(
        size=(60, fit.spec.size))
    built = []  # programs compiled (or loaded from the test run's cache) during the stages

    class Built(logging.Handler):
        def emit(self, record):
            text = record.getMessage()
            if "compilation" in text.lower() and ("_map_batch" in text or "lambda" in text):
                built.append(text[:100])

    handler, log = Built(), logging.getLogger("jax")
    log.addHandler(handler)
    level, log_compiles = log.level, jax.config.jax_log_compiles
    log.setLevel(logging.DEBUG)
    jax.config.update("jax_log_compiles", True)
    try:
        feats = evaluate(fit.features, jnp.asarray(u), batch_size=EXACT_BATCH)
        out = chunk_map(fit.posterior_and_means, u, feats, size=POSTERIOR_BATCH)
    finally:
        jax.config.update("jax_log_compiles", log_compiles)
        log.setLevel(level)
        log.removeHandler(handler)
    assert built == []
    assert out.shape == (60, 1 + len(fit.design.obs.n)) and np.all(np.isfinite(out))
    # the first column is the log posterior: the fit's log density at the same point
    assert out[0, 0] == pytest.approx(float(jax.jit(fit.ld)(u[0])), rel=1e-9)
