"""``results/report.html``: one self-contained page a safety physician or reviewer can open.

Rendered with jinja2 (``templates/report.html.j2``) from a fit's result files alone (figures
drawn with matplotlib and inlined as base64 PNG; no script or style is fetched), so it can be
written by the fit's results step (:func:`pdmodel.fit._outputs.results_files`) and redrawn for
any run folder (``pdmodel report RUN_DIR``, :func:`pdmodel.fit._outputs.write_report`).
Sections: what was fitted, calibrated curves with both bands, posterior predictive check,
validation (when present), onset and rescue checks, parameters (prior vs posterior),
convergence with a plain-language verdict, provenance.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .._version import __version__
from ..data import load_incidence, load_user_incidence
from ._figures import plot_organ_panels, plot_ppc, plot_regimen_panels
from ._run_folder import MANIFEST

R_HAT_OK, ESS_OK, KHAT_OK = 1.01, 400.0, 0.7
"""Convergence thresholds of the verdict (Vehtari et al. 2021; PSIS k̂ < 0.7)."""

CHECK_FILES = ("onset.csv", "subgroups.csv", "management.csv")
"""Posterior checks shown when the results hold them."""

VALIDATION_FILES = ("validation/validation.csv", "validation/arms.csv")
"""Held-out validation tables shown when present (``pdmodel validate`` writes them to
``<run>/validation/results``, with ``summary.json`` and ``calibration.png``; a committed fit
such as ``fits/reference`` keeps them in ``<run>/validation``)."""


@dataclass(frozen=True)
class ResultFiles:
    """A fit's files: ``files`` of ``results/`` by relative path and ``top`` of the run folder
    (``config.toml``, ``seed.txt``, ``versions.json``), as text or bytes."""

    files: dict
    top: dict = field(default_factory=dict)
    path: Path | None = None

    @classmethod
    def from_folder(cls, run: str | Path) -> ResultFiles:
        """Read ``run``'s results and top-level files (missing ones are left out)."""
        run = Path(run)
        res = run / "results"
        if not res.is_dir():
            raise FileNotFoundError(f"{run} has no results/ folder; run 'pdmodel fit' first")
        files = {str(p.relative_to(res)): p.read_bytes() for p in sorted(res.rglob("*"))
                 if p.is_file() and p.suffix in (".csv", ".json", ".nc", ".png", ".toml")
                 and p.name != MANIFEST}
        val = run / "validation" / "results"
        if not val.is_dir():  # a committed validation: its results at <run>/validation
            val = run / "validation"
        if (val / "validation.csv").is_file():
            files |= {f"validation/{p.name}": p.read_bytes() for p in sorted(val.iterdir())
                      if p.suffix in (".csv", ".json", ".png")}
        top = {n: (run / n).read_text() for n in ("config.toml", "seed.txt", "versions.json")
               if (run / n).is_file()}
        return cls(files, top, run)

    def raw(self, name: str) -> bytes | None:
        x = self.files.get(name)
        return x.encode() if isinstance(x, str) else x

    def csv(self, name: str) -> pd.DataFrame | None:
        x = self.raw(name)
        return None if x is None or not x.strip() else pd.read_csv(io.BytesIO(x))

    def json(self, name: str) -> dict | None:
        x = self.raw(name)
        return None if x is None else json.loads(x)


def _img(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def _table(df: pd.DataFrame | None, digits: int = 3) -> str:
    if df is None or not len(df):
        return ""
    return df.to_html(index=False, border=0, classes="data", float_format=lambda x:
                      f"{x:.{digits}g}", na_rep="", escape=True)


def verdict(diag: dict) -> tuple[str, list[str]]:
    """``("ok" | "caution" | "unreliable", reasons)`` from ``diagnostics.json``."""
    issues, severe = [], False
    r, ess = diag.get("max_r_hat"), diag.get("min_ess_bulk")
    if r is not None and r > R_HAT_OK:
        issues.append(f"the chains disagree (largest R-hat {r:.3f} > {R_HAT_OK})")
        severe |= r > 1.05
    if ess is not None and ess < ESS_OK:
        issues.append(f"few independent draws (smallest bulk ESS {ess:.0f} < {ESS_OK:.0f})")
    if diag.get("divergences"):
        issues.append(f"{diag['divergences']} divergent transitions: parts of the posterior "
                      "may be missed")
        severe = True
    k = diag.get("psis_khat")
    if k is not None and k >= KHAT_OK:
        what = ("the Laplace approximation" if "laplace" in str(diag.get("method", "")).lower()
                else "the emulated posterior")
        issues.append(f"{what} is not a reliable stand-in for the exact posterior "
                      f"(Pareto k̂ {k:.2f} ≥ {KHAT_OK}): the bands may be too narrow or "
                      "misplaced")
        severe = True
    if "laplace" in str(diag.get("method", "")).lower():
        issues.append("draws are a Laplace approximation, not NUTS: a quick look only")
    return ("unreliable" if severe else "caution" if issues else "ok"), issues


def _data_table(rf: ResultFiles, ppc: pd.DataFrame | None, config: dict) -> pd.DataFrame | None:
    """Training rows by study, arm, organ and grade (the ``ppc.csv`` rows joined with the
    incidence table they came from, when it can still be read)."""
    if ppc is None:
        return None
    path = (config.get("data") or {}).get("incidence", "bundled")
    try:
        rows = load_incidence() if path == "bundled" else load_user_incidence(path)
        rows = rows[["row_id", "study", "regimen", "organ", "grade", "endpoint"]].rename(
            columns={"regimen": "arm"})
    except Exception:  # noqa: BLE001 - a moved or changed table leaves the rows as fitted
        rows = pd.DataFrame(columns=["row_id"])
    out = ppc[["row_id", "regimen", "n", "observed"]].merge(rows, on="row_id", how="left")
    out["events"] = (out.observed * out.n).round().astype(int)
    cols = [c for c in ("study", "arm", "regimen", "organ", "grade", "endpoint", "n",
                        "events", "row_id") if c in out]
    return out[cols].sort_values([c for c in ("study", "arm", "organ", "grade") if c in out]
                                 or ["row_id"])


def _horizon_table(curves: pd.DataFrame) -> pd.DataFrame:
    """Incidence at the last week by regimen, organ and grade (and management policy, when
    the curves have both forms): mean and both bands (%)."""
    last = curves[curves.day == curves.day.max()].copy()

    def pct(lo, hi):
        return [f"{100 * a:.1f}–{100 * b:.1f}" for a, b in zip(lo, hi, strict=True)]

    keys = ["regimen", "organ", "grade"] + (["policy"] if "policy" in last else [])
    out = last[keys].copy()
    out["mean %"] = (100 * last["mean"]).round(1)
    if "ci_lower" in last:
        out["90% credible %"] = pct(last.ci_lower, last.ci_upper)
        out["90% arm of 300 %"] = pct(last.lower, last.upper)
    else:
        out["90% credible %"] = pct(last.lower, last.upper)
    return out


def _parameters(par: pd.DataFrame | None) -> pd.DataFrame | None:
    if par is None:
        return None
    cols = {"parameter": "parameter", "prior": "prior", "map": "MAP", "mean": "posterior mean",
            "q05": "5%", "q50": "50%", "q95": "95%", "r_hat": "R-hat", "ess_bulk": "ESS bulk",
            "ess_tail": "ESS tail"}
    return par[[c for c in cols if c in par]].rename(columns=cols)


def _hashes(rf: ResultFiles, ppc: pd.DataFrame | None) -> list[tuple[str, str]]:
    out = []
    if ppc is not None:
        rows = ppc[["row_id", "n", "observed"]].to_csv(index=False).encode()
        out.append(("training rows (row_id, n, observed of ppc.csv)",
                    hashlib.sha256(rows).hexdigest()))
    out += [(name, hashlib.sha256(rf.raw(name)).hexdigest())
            for name in sorted(rf.files) if name != "report.html"]
    return out


def report_html(rf: ResultFiles) -> str:
    """The report of the fit whose files are ``rf`` (HTML text)."""
    import tomllib

    import jinja2

    config_text = rf.top.get("config.toml", "")
    config = tomllib.loads(config_text) if config_text else {}
    diag = rf.json("diagnostics.json") or {}
    curves, ppc = rf.csv("curves.csv"), rf.csv("ppc.csv")
    figures = []
    if curves is not None:
        for g in ("any", "2+", "3+"):
            if (curves.grade == g).any():
                managed = " (dashed: under the default management policy)" \
                    if "policy" in curves else ""
                figures.append((f"Any irAE, grade {g}, by regimen, natural course{managed}",
                                _img(plot_regimen_panels(curves, g))))
        figures.append(("By organ, grade any (mean and credible band, natural course)",
                        _img(plot_organ_panels(curves, "any"))))
    status, issues = verdict(diag)
    name = rf.path.name if rf.path else (config.get("output") or {}).get("folder", "fit")
    versions = json.loads(rf.top["versions.json"]) if "versions.json" in rf.top else {}
    env = jinja2.Environment(loader=jinja2.PackageLoader("pdmodel.fit", "templates"),
                             autoescape=jinja2.select_autoescape(["html", "j2"]))
    checks = [(n, _table(rf.csv(n))) for n in CHECK_FILES if rf.raw(n) is not None]
    validation = [(n, _table(rf.csv(n))) for n in VALIDATION_FILES if rf.raw(n) is not None]
    vsummary = rf.json("validation/summary.json")
    vplot = rf.raw("validation/calibration.png")
    return env.get_template("report.html.j2").render(
        title=f"pdmodel fit report: {name}", path=str(rf.path or ""),
        generated=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        pdmodel_version=__version__, diag=diag, status=status, issues=issues,
        data_table=_table(_data_table(rf, ppc, config)),
        n_rows=0 if ppc is None else len(ppc),
        n_studies=None if ppc is None else _data_table(rf, ppc, config).get(
            "study", pd.Series(dtype=str)).nunique(),
        figures=figures, two_bands=curves is not None and "ci_lower" in curves,
        horizon_table=_table(None if curves is None else _horizon_table(curves)),
        horizon_weeks=None if curves is None else int(np.ceil(curves.day.max() / 7)),
        ppc_figure=None if ppc is None else _img(plot_ppc(ppc)),
        ppc_coverage=diag.get("ppc_coverage_90"),
        ppc_misses=_table(None if ppc is None else ppc[~ppc.covered.astype(bool)]),
        checks=checks, validation=validation,
        validation_summary=None if vsummary is None else {
            k: v for k, v in vsummary.items() if not isinstance(v, dict | list)},
        validation_figure=None if vplot is None else _img(vplot),
        parameters=_table(_parameters(rf.csv("parameters.csv"))),
        diagnostics_json=json.dumps(diag, indent=2), config_text=config_text,
        seed=rf.top.get("seed.txt", str(diag.get("seed", ""))).strip(),
        versions=versions, hashes=_hashes(rf, ppc))
