"""results/report.html: self-contained, rendered from a run folder's files, and opened in
headless Chromium (screenshot, no console errors, every figure loaded)."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from pdmodel.cli import app
from pdmodel.fit._report import ResultFiles, report_html, verdict
from pdmodel.fit._run_folder import verify_results, write_manifest

REFERENCE = Path("fits/reference")


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        if os.environ.get("PDMODEL_REQUIRE_CHROMIUM"):
            pytest.fail("chromium is missing: .ci/run installs Debian's chromium package")
        pytest.skip("headless chromium not installed (apt-get install chromium)")
    return exe


def _open(page: Path, tmp_path: Path) -> tuple[str, str, Path]:
    """Open ``page`` in headless Chromium: (DOM after load, browser log, screenshot)."""
    exe = _chromium()
    flags = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0",
             "--virtual-time-budget=10000"]
    url = page.resolve().as_uri()
    dom = subprocess.run(flags + ["--dump-dom", url], capture_output=True, text=True,
                         timeout=120)
    shot = tmp_path / "screenshot.png"
    subprocess.run(flags + ["--window-size=1280,1600", f"--screenshot={shot}", url],
                   capture_output=True, text=True, timeout=120)
    return dom.stdout, dom.stderr, shot


def test_reference_report_opens_in_chromium(tmp_path):
    page = tmp_path / "report.html"
    page.write_text(report_html(ResultFiles.from_folder(REFERENCE)))
    text = page.read_text()
    # self-contained: figures inlined, nothing fetched from the network
    assert not re.search(r"""(src|href)=["']https?:""", text)
    assert text.count('src="data:image/png;base64,') >= 5
    for section in ("What was fitted", "Calibrated incidence curves", "Posterior predictive",
                    "Onset and rescue", "prior and posterior", "Convergence", "Provenance"):
        assert section in text, section
    dom, log, shot = _open(page, tmp_path)
    assert 'data-figures="ok"' in dom, dom[-500:]
    assert "CONSOLE" not in log, [ln for ln in log.splitlines() if "CONSOLE" in ln]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000


def test_chromium_check_catches_a_broken_figure_and_console_errors(tmp_path):
    page = tmp_path / "bad.html"
    good = report_html(ResultFiles.from_folder(REFERENCE))
    page.write_text(good.replace('src="data:image/png;base64,', 'src="data:image/png;base64,AA',
                                 1).replace("</body>", "<script>console.error('x')</script>"
                                                       "</body>"))
    dom, log, _ = _open(page, tmp_path)
    assert 'data-figures="broken:1"' in dom and "CONSOLE" in log


def test_verdict_in_plain_language():
    ok = {"max_r_hat": 1.003, "min_ess_bulk": 1500, "divergences": 0, "psis_khat": 0.4}
    assert verdict(ok) == ("ok", [])
    status, why = verdict(ok | {"divergences": 12, "max_r_hat": 1.02})
    assert status == "unreliable" and any("divergent" in w for w in why)
    assert verdict(ok | {"min_ess_bulk": 120})[0] == "caution"


def test_report_command_writes_the_page(tmp_path):
    run = tmp_path / "run"
    shutil.copytree(REFERENCE, run)
    (run / "results" / "report.html").unlink(missing_ok=True)
    curves = pd.read_csv(run / "results" / "curves.csv")  # as written now: both bands
    curves.assign(ci_lower=curves.lower, ci_upper=curves.upper).to_csv(
        run / "results" / "curves.csv", index=False)
    write_manifest(run / "results", run / "config.toml")  # the edits above, accepted
    res = CliRunner().invoke(app, ["report", str(run), "--no-progress"])
    assert res.exit_code == 0, res.output
    assert (run / "results" / "report.html").read_text().startswith("<!DOCTYPE html>")
    assert verify_results(run).manifest.files["report.html"].size > 0
    bad = CliRunner().invoke(app, ["report", str(tmp_path / "nowhere")])
    assert bad.exit_code == 3 and "is not a fit" in bad.output


def test_validation_results_are_shown_when_present(tmp_path):
    run = tmp_path / "run"
    shutil.copytree(REFERENCE, run, ignore=shutil.ignore_patterns("posterior.nc"))
    val = run / "validation" / "results"
    val.mkdir(parents=True)
    (val / "summary.json").write_text('{"folds": 5, "coverage": 0.88, "settings": {}}')
    pd.DataFrame({"row_id": ["inc-0001"], "covered": [True]}).to_csv(val / "validation.csv",
                                                                     index=False)
    shutil.copy(run / "results" / "plots" / "ppc.png", val / "calibration.png")
    text = report_html(ResultFiles.from_folder(run))
    assert "Validation on held-out arms" in text and "inc-0001" in text and "0.88" in text
    assert text.count('src="data:image/png;base64,') >= 6
