"""``pdmodel serve``: a long-lived process answers ``pdmodel predict`` with the output and
exit code the command gives on its own (issue 16: answers in a fraction of a second)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from pdmodel.cli import _predict, _serve

ROOT = Path(__file__).resolve().parents[1]
PREDICT = ["predict", "--regimen", "nivolumab 240 mg q2w", "--weeks", "8", "--draws", "8",
           "--organ", "skin"]


def _short(tmp_path: Path) -> Path:
    """A folder for a socket: Unix socket paths are limited to about 100 characters."""
    if len(str(tmp_path)) < 70:
        return tmp_path
    return Path(tempfile.mkdtemp(prefix="pdm-", dir="/tmp"))


def _env(socket: Path) -> dict[str, str]:
    return os.environ | {_serve.SERVER_ENV: str(socket), "PYTHONWARNINGS": "ignore"}


def _cli(args: list[str], env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pdmodel.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)


def _start(socket: Path, *args: str) -> subprocess.Popen:
    server = subprocess.Popen([sys.executable, "-m", "pdmodel.cli", "serve", *args], cwd=ROOT,
                              env=_env(socket), stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not socket.exists():
        assert server.poll() is None, server.stderr.read()
        assert time.monotonic() < deadline, "no socket after 300 s"
        time.sleep(0.2)
    return server


def test_served_predict_is_the_command_byte_for_byte(tmp_path):
    socket = _short(tmp_path) / "s" / "predict.sock"
    server = _start(socket, "--fit", str(tmp_path / "no-fit"), "--idle-minutes", "10")
    try:
        assert (socket.parent.stat().st_mode & 0o077) == 0  # the user's alone
        served = _cli(PREDICT, _env(socket))
        here = _cli(PREDICT + ["--no-server"], _env(socket))
        assert served.returncode == here.returncode == 0, served.stderr + here.stderr
        assert served.stdout == here.stdout and served.stdout.count("\n") > 8
        bad = _cli(PREDICT + ["--weeks", "-1"], _env(socket))
        assert bad.returncode == 2 and "--weeks" in bad.stderr and bad.stdout == ""
        # a request from another environment is computed by the client itself
        other = _cli(PREDICT + ["--format", "json"], _env(socket) | {"PDMODEL_DEBUG": "1"})
        assert other.returncode == 0 and '"regimen"' in other.stdout
        stop = _cli(["serve", "--stop"], _env(socket))
        assert stop.returncode == 0, stop.stderr
        assert server.wait(60) == 0
    finally:
        if server.poll() is None:
            server.kill()
    assert not socket.exists()
    # with no server the command runs in its own process
    assert _serve.forward(PREDICT) is None


def test_server_stops_after_its_idle_time(tmp_path):
    socket = _short(tmp_path) / "predict.sock"
    server = _start(socket, "--fit", str(tmp_path / "no-fit"), "--idle-minutes", "0.02")
    try:
        assert server.wait(60) == 0
    finally:
        if server.poll() is None:
            server.kill()
    assert not socket.exists() and not socket.with_name("predict.sock.key").exists()


def test_server_declines_what_it_cannot_answer_as_the_client_would(monkeypatch):
    request = _serve._request(PREDICT)
    sources = request["sources"]
    assert _serve._answer(request | {"sources": "0" * 16}, sources)["stale"]
    assert "declined" in _serve._answer(request | {"argv": ["fit", "x.toml"]}, sources)
    assert "declined" in _serve._answer(request | {"protocol": 0}, sources)
    monkeypatch.setenv("PDMODEL_CACHE_DIR", "/elsewhere")
    assert "declined" in _serve._answer(request, sources)


def test_server_address_switches_off_and_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(_serve.SERVER_ENV, "off")
    assert _serve.server_address() is None and _serve.forward(PREDICT) is None
    monkeypatch.setenv(_serve.SERVER_ENV, str(tmp_path / "x.sock"))
    assert _serve.server_address() == tmp_path / "x.sock"
    monkeypatch.delenv(_serve.SERVER_ENV)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    assert _serve.server_address() == tmp_path / f"pdmodel-{os.getuid()}" / "predict.sock"
    assert _serve.forward(PREDICT) is None  # nothing listens there


def test_a_loaded_fit_is_reused_until_its_files_change(tmp_path):
    run = tmp_path / "fit"
    shutil.copytree(ROOT / "fits" / "reference", run, symlinks=True,
                    ignore=shutil.ignore_patterns("validation"))
    first = _predict.loaded_fit(run)
    assert _predict.loaded_fit(run) is first
    curves = run / "results" / "curves.csv"
    curves.write_text(curves.read_text().replace("0.", "0,", 1))  # a result file changed
    with pytest.raises(Exception, match="curves.csv"):  # reloaded: the manifest check sees it
        _predict.loaded_fit(run)
