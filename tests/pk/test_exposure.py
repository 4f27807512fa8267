"""Published exposures (shared/data/pk_exposure.csv) and receptor-occupancy facts.

The typical patient of each model (reference covariates) is compared with the published mean
or model prediction; tolerance 20% as the foundation issue asks. Rows not testable as an
exposure of a regimen (target levels, relative statements we cover separately) are listed in
SKIPPED with the reason.
"""

import csv

import numpy as np
import pytest

import pdmodel as pdm
from pdmodel.regimen import Regimen
from tests.conftest import SHARED_DATA


def steady_state(text, weight, interval, *, n_cycles=20):
    """Concentrations over the dosing interval after ``n_cycles`` cycles (fine grid)."""
    days = interval * (n_cycles + 1)
    ds = pdm.simulate_pk(text, days=days, weight_kg=weight, step=0.05)
    window = ds.concentration.sel(day=slice(interval * n_cycles, days)).isel(agent=0)
    return window


def trapz(c):
    return float(np.trapezoid(c.values, c.day.values))


def cases():
    """(row_id, simulated value, unit) for each testable published exposure."""
    # pembrolizumab AUCss over 6 weeks (Freshwater 2017), mg*day/mL -> ug*day/mL /1000
    out = {}
    for row, text, wt in (("pkx-0007", "pembrolizumab 200 mg q3w", None),
                          ("pkx-0008", "pembrolizumab 2 mg/kg q3w", 76.8),
                          ("pkx-0009", "pembrolizumab 10 mg/kg q3w", 76.8)):
        ds = pdm.simulate_pk(text, days=42 * 11, weight_kg=wt, step=0.05)
        c = ds.concentration.sel(day=slice(420, 462)).isel(agent=0)
        out[row] = trapz(c) / 1000.0
    for rows, text, tau in ((("pkx-0001", "pkx-0002", "pkx-0003"), "cemiplimab 350 mg q3w", 21),
                            (("pkx-0004", "pkx-0005", "pkx-0006"), "cemiplimab 600 mg q4w", 28)):
        c = steady_state(text, None, tau)
        out[rows[0]] = float(c.isel(day=-1))  # Ctrough,ss
        out[rows[1]] = float(c.max())  # Cmax,ss
        out[rows[2]] = trapz(c) / tau  # Cavg,ss
    out["pkx-0014"] = float(steady_state("atezolizumab 1 mg/kg q3w", 77, 21).isel(day=-1))
    ds = pdm.simulate_pk("tremelimumab 300 mg x1 + durvalumab 1500 mg q4w", days=28)
    out["pkx-0012"] = float(ds.concentration.sel(agent="tremelimumab", day=28))
    return out


SKIPPED = {
    "pkx-0010": "relative statement, tested in test_pembrolizumab_q6w_vs_q3w",
    "pkx-0011": "relative statement, tested in test_pembrolizumab_q6w_vs_q3w",
    "pkx-0013": "a target trough for dose selection, not an observed exposure",
    "pkx-0015": "a target trough, tested in test_atezolizumab_label_regimens_reach_target",
    "pkx-0016": "fraction of a simulated population; tested in test_durvalumab_threshold",
    "pkx-0017": "the threshold itself (100 x Km), used by test_durvalumab_threshold",
}


@pytest.fixture(scope="module")
def published():
    with open(SHARED_DATA / "pk_exposure.csv") as f:
        return {r["row_id"]: r for r in csv.DictReader(f)}


@pytest.fixture(scope="module")
def simulated():
    return cases()


def test_every_published_exposure_is_covered(published, simulated):
    assert set(published) == set(simulated) | set(SKIPPED)


@pytest.mark.parametrize("row", ["pkx-0001", "pkx-0002", "pkx-0003", "pkx-0004", "pkx-0005",
                                 "pkx-0006", "pkx-0007", "pkx-0008", "pkx-0009", "pkx-0012",
                                 "pkx-0014"])
def test_published_exposure_within_20_percent(row, published, simulated):
    target = float(published[row]["value"])
    assert simulated[row] == pytest.approx(target, rel=0.20), (row, published[row]["metric"])


def test_pembrolizumab_q6w_vs_q3w():
    """Lala 2020: 400 mg Q6W Cavg,ss ~1% above 200 mg Q3W; Cmax,ss ~65% below 10 mg/kg Q2W."""
    c6 = steady_state("pembrolizumab 400 mg q6w", None, 42, n_cycles=10)
    c3 = steady_state("pembrolizumab 200 mg q3w", None, 42, n_cycles=10)
    assert trapz(c6) / trapz(c3) == pytest.approx(1.01, abs=0.05)
    c10 = steady_state("pembrolizumab 10 mg/kg q2w", 76.8, 14, n_cycles=30)
    assert 1 - float(c6.max()) / float(c10.max()) == pytest.approx(0.65, abs=0.10)


def test_atezolizumab_label_regimens_reach_target():
    """Every label regimen keeps the typical trough above the 6 ug/mL target (pkx-0015)."""
    for text, tau in (("atezolizumab 840 mg q2w", 14), ("atezolizumab 1200 mg q3w", 21),
                      ("atezolizumab 1680 mg q4w", 28)):
        assert float(steady_state(text, None, tau).min()) > 6.0


def test_durvalumab_threshold():
    """Sponsor simulation: 95.4% of patients on 10 mg/kg Q2W keep Ctrough > 53.3 ug/mL
    (pkx-0016); the typical patient's steady-state trough is well above it."""
    trough = float(steady_state("durvalumab 10 mg/kg q2w", 69, 14).min())
    assert trough > 53.3 * 1.5


@pytest.mark.parametrize("dose", [0.3, 1.0, 3.0, 10.0])
def test_nivolumab_single_dose_pd1_occupancy_sustained(dose):
    """Brahmer 2010 (pkp-0108): PD-1 occupancy > 70% for >= 2 months after one infusion of
    0.3-10 mg/kg."""
    ds = pdm.simulate_pk(f"nivolumab {dose:g} mg/kg x1", days=56, weight_kg=80)
    occ = ds.occupancy.sel(target="PD-1", day=slice(1, 56))
    assert float(occ.min()) > 0.70


def test_occupancy_only_on_the_agents_targets():
    ds = pdm.simulate_pk("nivolumab 1 mg/kg + ipilimumab 3 mg/kg q3w x4", days=84, weight_kg=80)
    assert float(ds.occupancy.sel(target="PD-L1").max()) == 0.0
    assert float(ds.occupancy.sel(target="CTLA-4", day=21)) > 0.5
    assert Regimen.parse(ds.attrs["regimen"]).agents == ("nivolumab", "ipilimumab")
