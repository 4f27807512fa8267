"""Latin-hypercube virtual populations (``Population.sample(stratified=True)``)."""

import jax
import numpy as np

import pdmodel as pdm
from pdmodel.irae._population import THYROID_ANTIBODY_PREVALENCE, stratified_uniform


def test_stratified_uniforms_put_one_value_in_every_stratum_of_every_column():
    n = 16
    u = np.asarray(stratified_uniform(jax.random.key(3), (n, 2, 3)))
    assert u.shape == (n, 2, 3)
    strata = np.floor(u * n).astype(int).reshape(n, -1)
    for column in strata.T:
        assert sorted(column) == list(range(n))
    # the orders differ between columns (independent permutations)
    assert len({tuple(c) for c in strata.T}) > 1


def test_stratified_population_matches_the_antibody_share_to_one_patient():
    n = 32
    for seed in range(5):
        pop = pdm.Population.sample(jax.random.key(seed), n, max_agents=1, stratified=True)
        positive = int(np.sum(np.asarray(pop.a0) > 1.0))
        assert abs(positive - THYROID_ANTIBODY_PREVALENCE * n) <= 1.0, (seed, positive)
        # the independent draws' share is whatever the key gives; the stratified one is not
        for z in (pop.z_threshold, pop.z_organ, pop.z_pd):
            assert np.all(np.isfinite(np.asarray(z)))


def test_stratified_population_averages_vary_less_between_keys():
    """The mean of a smooth function of the random effects (a log-normal susceptibility
    factor, the exponential stop day) has a far smaller spread between keys."""
    n, keys = 32, 40

    def spread(stratified):
        means = []
        for k in range(keys):
            pop = pdm.Population.sample(jax.random.key(k), n, max_agents=1,
                                        median_duration_days=125.0, stratified=stratified)
            means.append([np.mean(np.exp(0.5 * np.asarray(pop.z_organ[:, 4]))),
                          np.mean(np.minimum(np.asarray(pop.stop_day), 365.0)),
                          np.mean(np.asarray(pop.a0))])
        return np.std(np.log(means), axis=0)

    iid, lhs = spread(False), spread(True)
    assert np.all(lhs < 0.5 * iid), (iid, lhs)
