"""Figures of calibrated curves with both bands (PNG bytes; matplotlib, no screen).

:func:`plot_bands` draws the curves of :meth:`Fit.incidence` (``pdmodel predict --plot``);
:func:`plot_regimen_panels` and :func:`plot_organ_panels` draw ``curves.csv`` for the report.
The credible band of the population incidence is shaded dark, the predictive interval of a
trial arm light.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd

CREDIBLE_ALPHA, PREDICTIVE_ALPHA = 0.35, 0.12
"""Shading of the credible band and of the (wider) predictive interval."""


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def png(fig) -> bytes:
    """The figure as PNG bytes (closed afterwards)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    _pyplot().close(fig)
    return buf.getvalue()


def _band(ax, x, mean, ci_lo, ci_hi, lo, hi, color, label):
    ax.plot(x, mean, color=color, lw=1.5, label=label)
    if ci_lo is not None:
        ax.fill_between(x, ci_lo, ci_hi, color=color, alpha=CREDIBLE_ALPHA, lw=0)
    if lo is not None:
        ax.fill_between(x, lo, hi, color=color, alpha=PREDICTIVE_ALPHA, lw=0)


def plot_bands(curves: list) -> bytes:
    """PNG: each :meth:`Fit.incidence` dataset of ``curves`` (mean, credible band dark,
    predictive interval of the arm light) against weeks."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, ds in enumerate(curves):
        _band(ax, ds.day.values / 7, ds["mean"].values, ds["ci_lower"].values,
              ds["ci_upper"].values, ds["lower"].values, ds["upper"].values, f"C{i}",
              ds.attrs["regimen"][:60])
    a = curves[0].attrs
    ax.set(xlabel="weeks since first dose", ylabel="cumulative incidence",
           title=f"{a['organ']} irAE, grade {a['grade']} ({a['endpoint']}): mean, "
                 f"{a['interval']:.0%} credible band (dark), {a['interval']:.0%} interval of "
                 f"an arm of {a['arm_size']} (light)")
    ax.title.set_fontsize(8)
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=7)
    return png(fig)


def natural_course(curves: pd.DataFrame) -> pd.DataFrame:
    """The natural-course rows of ``curves.csv`` (all rows of older fits, which have no
    ``policy`` column)."""
    return curves[curves.policy == "natural"] if "policy" in curves else curves


def managed_course(curves: pd.DataFrame) -> pd.DataFrame | None:
    """The rows under the default management policy, or None (older fits)."""
    return curves[curves.policy == "default"] if "policy" in curves else None


def _cols(c: pd.DataFrame):
    """(ci_lower, ci_upper, lower, upper) columns of ``curves.csv`` rows; ``curves.csv`` of
    older fits has one band (``lower``/``upper``, credible)."""
    if "ci_lower" in c:
        return c.ci_lower, c.ci_upper, c.lower, c.upper
    return c.lower, c.upper, None, None


def plot_regimen_panels(curves: pd.DataFrame, grade: str) -> bytes:
    """PNG: one panel per regimen, any organ at ``grade``, with both bands; the mean under
    the default management policy dashed, when the curves have it."""
    plt = _pyplot()
    managed = managed_course(curves)
    curves = natural_course(curves)
    regs = list(curves.regimen.unique())
    ncol = min(4, len(regs))
    nrow = -(-len(regs) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.2 * ncol, 2.6 * nrow), sharey=True,
                             squeeze=False)
    for ax, r in zip(axes.ravel(), regs, strict=False):
        c = curves[(curves.regimen == r) & (curves.organ == "any") & (curves.grade == grade)]
        _band(ax, c.day / 7, c["mean"], *_cols(c), "C0", None)
        if managed is not None:
            mc = managed[(managed.regimen == r) & (managed.organ == "any")
                         & (managed.grade == grade)]
            ax.plot(mc.day / 7, mc["mean"], "--", color="C3", lw=1.2)
        ax.set_title(r if len(r) < 45 else r[:42] + "...", fontsize=7)
        ax.set_xlabel("weeks", fontsize=7)
        ax.tick_params(labelsize=7)
    for ax in axes.ravel()[len(regs):]:
        ax.set_visible(False)
    axes[0, 0].set_ylabel(f"any irAE, grade {grade}", fontsize=8)
    fig.tight_layout()
    return png(fig)


def plot_organ_panels(curves: pd.DataFrame, grade: str = "any") -> bytes:
    """PNG: one panel per organ at ``grade``, the posterior mean of every regimen with its
    credible band (natural course)."""
    plt = _pyplot()
    curves = natural_course(curves)
    organs = [o for o in curves.organ.unique() if o != "any"]
    ncol = 3
    nrow = -(-len(organs) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(11, 2.8 * nrow), squeeze=False)
    for ax, o in zip(axes.ravel(), organs, strict=False):
        for i, r in enumerate(curves.regimen.unique()):
            c = curves[(curves.regimen == r) & (curves.organ == o) & (curves.grade == grade)]
            ci_lo, ci_hi, _, _ = _cols(c)
            _band(ax, c.day / 7, c["mean"], ci_lo, ci_hi, None, None, f"C{i}", r[:40])
        ax.set_title(f"{o}, grade {grade}", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes.ravel()[len(organs):]:
        ax.set_visible(False)
    axes[0, 0].legend(fontsize=5)
    fig.tight_layout()
    return png(fig)


def plot_ppc(ppc: pd.DataFrame) -> bytes:
    """PNG: observed against predicted incidence of the training rows, 90% intervals."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.vlines(ppc.predicted_mean, ppc.lower_90, ppc.upper_90, lw=0.6, alpha=0.5,
              label="90% predictive interval")
    ax.scatter(ppc.predicted_mean, ppc.observed, s=8,
               c=np.where(ppc.covered.astype(bool), "C0", "C3"), label="observed")
    ax.plot([0, 1], [0, 1], "k--", lw=0.8)
    ax.legend(fontsize=7)
    ax.set(xlabel="predicted mean incidence", ylabel="observed incidence",
           title=f"training arms: {ppc.covered.astype(bool).mean():.0%} inside 90% intervals")
    return png(fig)
