"""The exported SBML, simulated by libRoadRunner (CVODE), against pdmodel's adaptive reference
solver (diffrax Tsit5, rtol 1e-10): every state, days 0-365, to 1e-6 relative."""

from __future__ import annotations

from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import pdmodel as pdm
from pdmodel.export import consistency_errors, export_sbml, virtual_patient

roadrunner = pytest.importorskip("roadrunner")

RTOL = 1e-6
"""Required agreement, relative to each value."""
FLOOR = 1e-9
"""Absolute floor of the relative error, as a fraction of the state's largest value over the
year: states that start at exactly 0 (amounts, injury) have a defined relative error."""
DAYS = 365
RR_RTOL, RR_ATOL = 1e-10, 1e-14
"""CVODE tolerances (the reference: rtol 1e-10, atol 1e-12)."""


def simulate_sbml(text: str, ids: list[str]) -> np.ndarray:
    """States ``ids`` at days 0..365 by libRoadRunner ``[day, state]``."""
    rr = roadrunner.RoadRunner(text)
    rr.integrator.relative_tolerance = RR_RTOL
    rr.integrator.absolute_tolerance = RR_ATOL
    rr.integrator.max_num_steps = 200_000
    rr.timeCourseSelections = ["time", *ids]
    out = np.asarray(rr.simulate(0.0, float(DAYS), DAYS + 1))
    assert np.allclose(out[:, 0], np.arange(DAYS + 1))
    return out[:, 1:], rr


def reference(regimen: str, patient, *, steroid_start=jnp.inf,
              policy: pdm.ManagementPolicy | None = None) -> np.ndarray:
    """PK amounts and PD states of ``patient`` at days 0..365 by the adaptive reference
    (a steroid course from ``steroid_start`` as ``policy`` gives it)."""
    policy = pdm.ManagementPolicy() if policy is None else policy
    problem = pdm.IraeProblem.build(regimen, days=DAYS, steps_per_day=1)
    pop, _ = virtual_patient(patient, len(problem.agents))
    model = pdm.IraeModel()
    one = jax.tree.map(lambda x: x[0], problem.patient_inputs(model, pop))
    pk, pd = _reference(problem, model, one, jnp.arange(DAYS + 1.0),
                        jnp.asarray(steroid_start, float), policy)
    return np.concatenate([np.asarray(pk).reshape(DAYS + 1, -1), np.asarray(pd)], axis=1)


@eqx.filter_jit
def _reference(problem, model, patient, ts, steroid_start, policy):
    """``IraeProblem.reference``, compiled once per array shape (regimens with the same
    number of agents and grid cells share it)."""
    return problem.reference(model, patient, ts, steroid_start=steroid_start, policy=policy)


def state_ids(agents) -> list[str]:
    """The SBML ids of the reference's states, in its order."""
    return ([f"{a}_{c}" for a in agents for c in ("Ac", "Ap")] + ["E", "P", "A"]
            + [f"D_{o}" for o in pdm.ORGANS])


def max_relative_error(x: np.ndarray, ref: np.ndarray) -> float:
    scale = FLOOR * np.max(np.abs(ref), axis=0)
    return float(np.max(np.abs(x - ref) / (np.abs(ref) + scale)))


CASES = {
    # PD-1 monotherapy, time-varying clearance (Bajaj 2017), a drawn patient
    "pd1": ("nivolumab 240 mg q2w", 3),
    # combination with a phase switch (mg/kg then flat), combination PK effects (Sanghavi 2020)
    "nivo_ipi": ("nivolumab 1 mg/kg + ipilimumab 3 mg/kg q3w x4, then nivolumab 480 mg q4w", 5),
    # Michaelis-Menten elimination (Baverel 2018), weight-based dosing
    "durvalumab": ("durvalumab 10 mg/kg q2w", 1),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_natural_course_matches_the_reference(case):
    regimen, patient = CASES[case]
    text = export_sbml(regimen, patient=patient)
    assert consistency_errors(text) == []
    agents = pdm.Regimen.parse(regimen).agents
    x, rr = simulate_sbml(text, state_ids(agents))
    ref = reference(regimen, patient)
    assert max_relative_error(x, ref) < RTOL
    for o, organ in enumerate(pdm.ORGANS):  # running maximum >= the largest daily value
        daily_max = ref[:, 2 * len(agents) + 3 + o].max()
        assert daily_max * (1 - RTOL) <= rr[f"M_{organ}"] <= daily_max * (1 + 1e-3)


def test_policy_run_matches_the_reference():
    """The default policy as events: steroid course, hold of the checkpoint inhibitors, taper.

    The reference solver takes a prescheduled course, so the course (start, taper start) and
    the withheld infusions are read from the SBML run and given to the reference, which then
    checks the dynamics under them."""
    regimen = "nivolumab 1 mg/kg + ipilimumab 3 mg/kg q3w x4"
    patient = 7  # GI grade 2 on day ~22: steroids, the doses of days 42 and 63 withheld
    text = export_sbml(regimen, patient=patient, policy=pdm.ManagementPolicy())
    assert consistency_errors(text) == []
    agents = pdm.Regimen.parse(regimen).agents
    x, rr = simulate_sbml(text, state_ids(agents) + ["infliximab_Ac"])
    start, taper_from = rr["steroid_start"], rr["taper_from"]
    onset = min(rr[f"onset_{o}_2"] for o in pdm.ORGANS)
    policy = pdm.ManagementPolicy()
    assert start == pytest.approx(onset + float(policy.delay_days), abs=1e-9)
    assert start + float(policy.full_dose_days) <= taper_from < 60  # resolved after the minimum
    release = taper_from + float(policy.taper_days)
    assert 21 < onset < 42 and 63 < release  # hold covers the infusions of days 42 and 63
    assert rr["n_infliximab"] == 0 and np.all(x[:, -1] == 0)  # GI improved: no infliximab
    assert rr["held"] == 0 and rr["stopped"] == 0  # hold released, never discontinued
    given = "nivolumab 1 mg/kg + ipilimumab 3 mg/kg q3w x2"  # what was infused
    ref = reference(given, patient, steroid_start=jnp.asarray(start),
                    policy=pdm.ManagementPolicy(full_dose_days=taper_from - start))
    assert max_relative_error(x[:, :-1], ref) < RTOL


def test_the_committed_example_is_valid_sbml():
    path = Path(__file__).resolve().parents[2] / "docs" / "examples" / "nivolumab_ipilimumab.xml"
    text = path.read_text()
    assert consistency_errors(text) == []
    assert "posterior mean of fit fits/reference" in text


def test_the_antimony_text_is_the_same_model():
    antimony = pytest.importorskip("antimony")
    regimen = "durvalumab 10 mg/kg q2w"
    kw = dict(patient=7, policy=pdm.ManagementPolicy(), days=60)
    antimony.clearPreviousLoads()
    assert antimony.loadAntimonyString(pdm.export_antimony(regimen, **kw)) >= 0, (
        antimony.getLastError())
    from_antimony = antimony.getSBMLString("pdmodel_irae")
    ids = ["durvalumab_Ac", "E", "A", "D_skin", "D_lung"]
    a, _ = simulate_sbml(from_antimony, ids)
    b, _ = simulate_sbml(export_sbml(regimen, **kw), ids)
    np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
