"""``export_sbml`` / ``export_antimony``: one virtual patient's model for another engine."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .._version import __version__
from ..errors import ParameterError
from ..fit import Fit, load_fit
from ..io import atomic_write_text
from ..irae import IraeModel, ManagementPolicy
from ..regimen import Regimen
from ..vocab import MAX_DAYS
from ._antimony import to_antimony
from ._ir import ExportModel
from ._model_text import build_export_model
from ._sbml import to_sbml
from ._values import fit_parameters, virtual_patient

type FitLike = Fit | str | os.PathLike | None


def export_model(
    regimen: Regimen | str,
    *,
    fit: FitLike = None,
    model: IraeModel | None = None,
    draw: int | None = None,
    patient: str | int = "typical",
    policy: ManagementPolicy | None = None,
    days: int = 365,
) -> ExportModel:
    """The model of one virtual patient on ``regimen``, as plain data (see :func:`export_sbml`
    for the arguments)."""
    reg = Regimen.parse(regimen) if isinstance(regimen, str) else regimen
    if not isinstance(reg, Regimen):
        raise TypeError(f"regimen must be text or a Regimen, got {type(regimen).__name__}")
    if not (isinstance(days, int | np.integer) and not isinstance(days, bool)
            and 1 <= days <= MAX_DAYS):
        raise ParameterError(f"must be a whole number of days 1-{MAX_DAYS}, got {days!r}", "days")
    if fit is not None and model is not None:
        raise ValueError("give either fit= or model=, not both")
    if draw is not None and fit is None:
        raise ValueError("draw= selects a posterior draw and needs fit=")
    if policy is not None and not isinstance(policy, ManagementPolicy):
        raise TypeError(f"policy must be a ManagementPolicy or None, got {policy!r}")
    sources: dict[str, str] = {}
    pk_models, tumour = None, "melanoma"
    if fit is not None:
        fit = fit if isinstance(fit, Fit) else load_fit(Path(fit))
        model, sources, what = fit_parameters(fit, draw)
        pk_models = dict(fit.config.model.pk_models) or None
        tumour = fit.config.model.tumour
    elif model is not None:
        what = "IraeModel given by the caller"
    else:
        model, what = IraeModel(), "prior means (IraeModel defaults, docs/model.md §4.5)"
    pop, who = virtual_patient(patient, len(reg.agents), tumour=tumour)
    rescue = "natural course (no rescue)"
    if policy is not None and policy.enabled:
        rescue = ("management policy: " + ", ".join(
            f"{f} {float(getattr(policy, f)):g}" for f in (
                "trigger_grade", "delay_days", "steroid_dose", "full_dose_days", "taper_days",
                "escalate_after_days", "infliximab_dose", "max_infliximab_doses",
                "prophylaxis_dose", "discontinue_grade"))
            + f", hold_at_grade2 {policy.hold_at_grade2}")
    return build_export_model(
        reg, model, pop, policy=policy, pk_models=pk_models, days=int(days), sources=sources,
        provenance={"parameters": what, "virtual patient": who, "policy": rescue,
                    "pdmodel": __version__})


def export_sbml(
    regimen: Regimen | str,
    *,
    fit: FitLike = None,
    model: IraeModel | None = None,
    draw: int | None = None,
    patient: str | int = "typical",
    policy: ManagementPolicy | None = None,
    days: int = 365,
    path: str | os.PathLike | None = None,
) -> str:
    """SBML Level 3 Version 2 of the whole model for one virtual patient on ``regimen``.

    Parameters
    ----------
    regimen : str or Regimen
        Dosing text (``"nivolumab 240 mg q2w"``) or object; infusions starting before
        ``days`` become SBML events.
    fit : Fit or path, optional
        Parameters from a fit (posterior mean, or posterior draw ``draw``); its PK models and
        tumour type are used too.
    model : IraeModel, optional
        Parameters to use instead of a fit; neither: prior means (``IraeModel()``).
    draw : int, optional
        0-based posterior draw of ``fit`` (``None``: posterior mean).
    patient : ``"typical"`` or int
        The typical 80-kg patient (random effects 0), or virtual patient number k.
    policy : ManagementPolicy, optional
        Immunosuppressant rescue, as events (``None``: natural course).
    days : int
        Horizon of the dosing events, days.
    path : path, optional
        Also write the file there (atomically).

    Returns
    -------
    str
        The SBML document (time in days, amounts in mg, volumes in L, concentrations in mg/L).

    Raises
    ------
    UnknownAgentError, RegimenError
        Bad regimen text.
    FitLoadError
        A fit folder that cannot be read, or a draw out of range.

    Examples
    --------
    >>> import pdmodel as pdm
    >>> text = pdm.export_sbml("nivolumab 240 mg q2w", days=28)
    >>> text.startswith("<?xml") and "nivolumab_CL" in text
    True
    """
    text = to_sbml(export_model(regimen, fit=fit, model=model, draw=draw, patient=patient,
                                policy=policy, days=days))
    if path is not None:
        atomic_write_text(path, text)
    return text


def export_antimony(
    regimen: Regimen | str,
    *,
    fit: FitLike = None,
    model: IraeModel | None = None,
    draw: int | None = None,
    patient: str | int = "typical",
    policy: ManagementPolicy | None = None,
    days: int = 365,
    path: str | os.PathLike | None = None,
) -> str:
    """The model of :func:`export_sbml` as Antimony text (human-readable, with a comment
    giving the unit and source of every value).

    Parameters
    ----------
    regimen : str or Regimen
        Dosing text (``"nivolumab 240 mg q2w"``) or object; infusions starting before
        ``days`` become events.
    fit : Fit or path, optional
        Parameters from a fit (posterior mean, or posterior draw ``draw``); its PK models and
        tumour type are used too.
    model : IraeModel, optional
        Parameters to use instead of a fit; neither: prior means (``IraeModel()``).
    draw : int, optional
        0-based posterior draw of ``fit`` (``None``: posterior mean).
    patient : ``"typical"`` or int
        The typical 80-kg patient (random effects 0), or virtual patient number k.
    policy : ManagementPolicy, optional
        Immunosuppressant rescue, as events (``None``: natural course).
    days : int
        Horizon of the dosing events, days.
    path : path, optional
        Also write the file there (atomically).

    Returns
    -------
    str
        The Antimony model (time in days, amounts in mg, volumes in L, concentrations in
        mg/L).

    Raises
    ------
    UnknownAgentError, RegimenError
        Bad regimen text.
    FitLoadError
        A fit folder that cannot be read, or a draw out of range.

    Examples
    --------
    >>> import pdmodel as pdm
    >>> text = pdm.export_antimony("nivolumab 240 mg q2w", days=28)
    >>> "nivolumab_Ac' = " in text
    True
    """
    text = to_antimony(export_model(regimen, fit=fit, model=model, draw=draw, patient=patient,
                                    policy=policy, days=days))
    if path is not None:
        atomic_write_text(path, text)
    return text
