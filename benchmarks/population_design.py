"""Monte Carlo error of the fit's virtual population: independent draws against Latin-hypercube
draws (``Population.sample(stratified=True)``, docs/model.md §5.1).

At one parameter vector of a fit (the posterior mean of its unconstrained draws), every
published median onset row of the design (:mod:`pdmodel.fit._onset`) is simulated for
``--patients`` virtual patients drawn from ``--keys`` keys, independently and by Latin
hypercube, and for ``--reference-patients`` independent patients. Reported per design: the SD
between keys of the log of each row's cumulative incidence at the horizon and of its onset
median, and the RMS of the log of the mean over keys against the large population (bias).

``python -m benchmarks.population_design [--fit fits/reference]`` →
``benchmarks/results/population_design.json``.
"""

from __future__ import annotations

import argparse

import numpy as np

from benchmarks.common import write_result


def _onset_rows(fit_path: str):
    import jax.numpy as jnp

    import pdmodel as pdm
    from pdmodel.fit._config import load_config
    from pdmodel.fit._pipeline import _prepare

    fit = pdm.load_fit(fit_path)
    config = load_config(f"{fit_path}/config.toml")
    prepared = _prepare(config, False, lambda s: None)
    u = jnp.asarray(np.asarray(fit.draws).mean(axis=0))
    return prepared.design, prepared.spec.to_params(u), config


def _medians(design, params, pop, config):
    import jax.numpy as jnp

    from pdmodel.fit._design import stack_regimens
    from pdmodel.fit._likelihood import _reference_model, _stacked_max_injuries
    from pdmodel.fit._onset import ONSET_ENDPOINT, knot_steps, onset_median
    from pdmodel.irae import ManagementPolicy, incidence_from_max
    from pdmodel.vocab import ENDPOINTS

    on, m = design.onset, config.model
    st = stack_regimens(on.units, pop, steps_per_day=m.steps_per_day, refine=m.refine)
    steps = jnp.asarray(np.stack([knot_steps(x, on.knot_days) for x in np.asarray(st.edges)]))
    mx = _stacked_max_injuries(_reference_model(params), st, pop, steps)
    e = ENDPOINTS.index(ONSET_ENDPOINT)
    days = jnp.asarray(on.knot_days, float)
    inc = jnp.stack([incidence_from_max(params.model, mx[i], pop, ManagementPolicy.none(),
                                        days=days, drug_weight=params.obs.endpoint_drug[e],
                                        background_weight=params.obs.endpoint_background[e])
                     for i in range(mx.shape[0])])
    r = on.rows
    rows = inc[np.asarray(r.unit), :, np.asarray(r.organ), np.asarray(r.grade)]
    med, _ = onset_median(rows, days)
    lag = float(params.model.hypothyroid_lag)
    return (np.asarray(med) + np.asarray(r.hypothyroid) * lag) / 7.0, np.asarray(rows[:, -1])


def main(argv=None) -> dict:
    import jax

    import pdmodel as pdm
    from pdmodel.fit._design import MEDIAN_TREATMENT_DAYS

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fit", default="fits/reference")
    ap.add_argument("--patients", type=int, default=32)
    ap.add_argument("--keys", type=int, default=6)
    ap.add_argument("--reference-patients", type=int, default=512)
    args = ap.parse_args(argv)
    design, params, config = _onset_rows(args.fit)
    kw = dict(tumour=config.model.tumour, median_duration_days=MEDIAN_TREATMENT_DAYS,
              max_agents=2)

    def run(n, key, stratified):
        pop = pdm.Population.sample(jax.random.key(key), n, stratified=stratified, **kw)
        return _medians(design, params, pop, config)

    ref_med, ref_inc = run(args.reference_patients, 10_000, False)
    rows = design.onset.rows.row_id
    out = {"fit": args.fit, "patients": args.patients, "keys": args.keys,
           "reference_patients": args.reference_patients, "designs": {}}
    for name, stratified in (("independent", False), ("latin_hypercube", True)):
        res = [run(args.patients, k, stratified) for k in range(args.keys)]
        med = np.log(np.stack([r[0] for r in res]))
        inc = np.log(np.stack([r[1] for r in res]))
        out["designs"][name] = {
            "sd_log_incidence_mean": float(inc.std(0).mean()),
            "sd_log_onset_median_mean": float(med.std(0).mean()),
            "bias_log_onset_median_rms": float(np.sqrt(np.mean(
                (med.mean(0) - np.log(ref_med)) ** 2))),
            "by_row": {rid: {"sd_log_incidence": float(inc[:, j].std()),
                             "sd_log_onset_median": float(med[:, j].std())}
                       for j, rid in enumerate(rows)}}
        d = out["designs"][name]
        print(f"{name:16s} SD(log incidence) {d['sd_log_incidence_mean']:.3f}  "
              f"SD(log onset median) {d['sd_log_onset_median_mean']:.3f}  "
              f"bias {d['bias_log_onset_median_rms']:.3f}")
    print(write_result("population_design", out))
    return out


if __name__ == "__main__":
    main()
