"""A regimen prepared for the irAE solvers: :class:`IraeProblem`.

``IraeProblem.build`` parses and checks the regimen once and turns it into the arrays every
solver reads (dosing grid, PK models, potencies, Cholesky factors of the published Omegas);
:func:`patient_pd` applies covariates and random effects to the PD parameters.
"""

from __future__ import annotations

from collections.abc import Mapping

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import ndtr
from jaxtyping import Array, Float, Int

from ..errors import ParameterError
from ..pk import (
    PKModelSpec,
    SolverOptions,
    TwoCompartmentPK,
    individual_parameters,
    model_specs,
    potencies,
    target_matrix,
)
from ..regimen import DosingGrid, Regimen, dosing_grid
from ..vocab import AGENTS, MAX_DAYS, TARGETS, get_agent
from ._equations import PatientPD, titre_factors
from ._parameters import IraeModel
from ._population import MAX_PK_ETA, Population
from ._rescue import ManagementPolicy
from .solvers._full import Daily, Events, PatientInputs, simulate_patient
from .solvers._reference import REFERENCE_OPTIONS, reference_states

STEPS_PER_DAY = 2
"""Default PD steps per day of the fast solver (0.5-day steps)."""


REFINE = 2
"""Default geometric refinement levels inside each infusion."""


class IraeProblem(eqx.Module):
    """A regimen prepared for simulation over ``days`` with ``steps_per_day`` PD steps a day.

    Holds what does not depend on the fitted parameters; build it once with :meth:`build` and
    pass it to :func:`incidence_array` under ``jax.jit``/``jax.grad``.

    Attributes
    ----------
    specs : tuple of PKModelSpec
        Published PK model of each agent.
    agents : tuple of str
        Agents of the regimen, in order of first appearance.
    days : int
        Simulated days from the first dose.
    steps_per_day : int
        PD steps a day of the fixed-grid solver.
    grid : DosingGrid
        Step edges (days) and infusion rates on them.
    ec50 : array [agent]
        Serum EC50 of each agent, mg/L.
    targets : array [agent, target]
        One-hot map from agents to :data:`TARGETS`.
    target_index, agent_index : array [agent]
        Index of each agent's target in :data:`TARGETS` and of the agent in :data:`AGENTS`.
    chol : tuple of arrays
        Cholesky factors of the published random-effect covariances, one per agent.

    Examples
    --------
    >>> import jax
    >>> import pdmodel as pdm
    >>> problem = pdm.IraeProblem.build("nivolumab 240 mg q2w", days=28)
    >>> problem.agents, problem.days
    (('nivolumab',), 28)
    >>> pop = pdm.Population.sample(jax.random.key(0), 4, max_agents=1)
    >>> inc = pdm.incidence_array(pdm.IraeModel(), problem, pop, pdm.ManagementPolicy.none())
    >>> inc.shape  # [day, organ choice (any + 6 organs), grade]
    (28, 7, 3)
    """

    specs: tuple[PKModelSpec, ...] = eqx.field(static=True)
    agents: tuple[str, ...] = eqx.field(static=True)
    days: int = eqx.field(static=True)
    steps_per_day: int = eqx.field(static=True)
    grid: DosingGrid
    ec50: Float[Array, " agent"]
    targets: Float[Array, "agent target"]
    target_index: Int[Array, " agent"]
    agent_index: Int[Array, " agent"]
    chol: tuple[Float[Array, "eta eta"], ...]

    @classmethod
    def build(
        cls,
        regimen: Regimen | str,
        *,
        days: int = 365,
        steps_per_day: int = STEPS_PER_DAY,
        models: Mapping[str, str] | None = None,
        refine: int = REFINE,
    ) -> IraeProblem:
        """Prepare ``regimen`` (text or :class:`Regimen`) for ``days`` (whole days).

        ``steps_per_day`` PD steps a day, each infusion further cut in ``refine`` geometric
        sub-steps (see :func:`pdmodel.regimen._grid.step_edges`).
        """
        if isinstance(regimen, str):
            regimen = Regimen.parse(regimen)
        if not (isinstance(days, int | np.integer) and not isinstance(days, bool)
                and 1 <= days <= MAX_DAYS):
            raise ParameterError(f"must be a whole number of days 1-{MAX_DAYS} (ten years), "
                                 f"got {days!r}", "days")
        if not (isinstance(steps_per_day, int | np.integer) and 1 <= steps_per_day <= 1000):
            raise ValueError(f"steps_per_day must be an integer 1-1000, got {steps_per_day!r}")
        agents = regimen.agents
        specs = model_specs(regimen, models)
        pot = potencies()
        chol = []
        for s in specs:
            if s.n_eta > MAX_PK_ETA:
                raise ValueError(f"{s.agent} has {s.n_eta} random effects; at most {MAX_PK_ETA}")
            chol.append(jnp.asarray(np.linalg.cholesky(s.omega) if s.n_eta else np.zeros((0, 0))))
        return cls(
            specs=specs, agents=agents, days=int(days), steps_per_day=int(steps_per_day),
            grid=dosing_grid(regimen, agents, int(days), int(steps_per_day), int(refine)),
            ec50=jnp.array([pot[a].ec50 for a in agents]),
            targets=target_matrix(agents),
            target_index=jnp.array([TARGETS.index(get_agent(a).target) for a in agents]),
            agent_index=jnp.array([list(AGENTS).index(a) for a in agents]),
            chol=tuple(chol),
        )

    @property
    def michaelis_menten(self) -> bool:
        """Whether any agent has target-mediated elimination (static solver switch)."""
        return any(s.michaelis_menten for s in self.specs)

    def patient_pk(self, pop: Population) -> TwoCompartmentPK:
        """Individual PK of every patient ``[patient, agent]`` (independent of the PD model)."""

        def one(w, z_pk):
            etas = [self.chol[j] @ z_pk[j, : s.n_eta] if s.n_eta else None
                    for j, s in enumerate(self.specs)]
            return individual_parameters(self.specs, w, etas)

        return jax.vmap(one)(pop.weight_kg, pop.z_pk)

    def patient_inputs(self, model: IraeModel, pop: Population) -> PatientInputs:
        """Per-patient inputs (batched over the population) — differentiable in ``model``."""
        return PatientInputs(self.patient_pk(pop), patient_pd(model, pop), pop.weight_kg,
                             pop.stop_day, pop.z_threshold, steroid_refractory_gi(model, pop))

    def potency(self, model: IraeModel) -> tuple[Float[Array, " agent"], Float[Array, " agent"]]:
        """In-vivo EC50 (mg/L) and agent-effect weight of each agent of the regimen."""
        ec50 = self.ec50 * model.ec50_scale[self.target_index]
        return ec50, jnp.exp(model.agent_effect[self.agent_index])

    def run(self, model: IraeModel, pop: Population,
            policy: ManagementPolicy) -> tuple[Daily, Events]:
        """Simulate every patient (``vmap``); arrays gain a leading ``patient`` axis."""
        inputs = self.patient_inputs(model, pop)
        ec50, weight = self.potency(model)

        def one(p):
            return simulate_patient(model, p, self.grid, ec50, self.targets, weight, policy,
                                    steps_per_day=self.steps_per_day,
                                    michaelis_menten=self.michaelis_menten)

        return jax.vmap(one)(inputs)

    def reference(self, model: IraeModel, patient: PatientInputs, ts, *,
                  steroid_start=jnp.inf, policy: ManagementPolicy | None = None,
                  options: SolverOptions = REFERENCE_OPTIONS):
        """One patient by the adaptive reference solver (:func:`pdmodel.irae.solvers.
        reference_states`): PK amounts ``[t, agent, 2]`` and PD state ``[t, 9]`` at ``ts``.
        ``policy`` ``None``: ``ManagementPolicy()`` (made here: no JAX array on import)."""
        policy = ManagementPolicy() if policy is None else policy
        ec50, weight = self.potency(model)
        return reference_states(model, patient, self.grid, ec50, self.targets, weight, ts,
                                steroid_start=steroid_start, policy=policy, options=options)


def patient_pd(model: IraeModel, pop: Population) -> PatientPD:
    """Each patient's PD constants: covariates and random effects applied to ``model``."""
    tumour = model.tumour_effect[pop.tumour]  # [patient, organ]
    if pop.setting is not None:
        tumour = tumour * model.setting_effect[pop.setting]
    shared = model.omega_s * pop.z_pd[:, 2:3]
    return PatientPD(
        e0=1.0 + model.ad_excess * pop.preexisting_ad,
        a_ctla4=model.a_ctla4 * jnp.exp(model.omega_a * pop.z_pd[:, 1]),
        g_pd1=model.g_pd1 * jnp.exp(model.omega_g * pop.z_pd[:, 0]),
        # the anti-thyroid titre a0 multiplies the thyroid's susceptibility (docs/model.md §4.2)
        susceptibility=model.susceptibility * tumour * titre_factors(pop.a0)
        * jnp.exp(shared + model.omega_so * pop.z_organ),
    )


def steroid_refractory_gi(model: IraeModel, pop: Population) -> Float[Array, " patient"]:
    """1.0 for each patient whose GI drive corticosteroids do not suppress
    (``Φ(z_steroid) < steroid_refractory_gi``), else 0.0 ``[patient]``; all 0 for a population
    without ``z_steroid`` (saved before it existed)."""
    if pop.z_steroid is None:
        return jnp.zeros_like(pop.weight_kg)
    return (ndtr(pop.z_steroid) < model.steroid_refractory_gi).astype(
        pop.weight_kg.dtype)
