"""optuna-dashboard, for real: served on loopback against the study's storage, fetched over HTTP, stopped."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import optuna
import pytest

from autodata.tune import open_storage, serve_dashboard

pytest.importorskip("optuna_dashboard")


def _study(tmp_path):
    storage = open_storage(None, tmp_path)
    study = optuna.create_study(study_name="dash", storage=storage, direction="maximize")
    study.optimize(lambda t: t.suggest_float("lr", 0.01, 1.0), n_trials=3)
    return storage, study


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def test_the_dashboard_serves_the_study_on_loopback_and_stops(tmp_path):
    storage, study = _study(tmp_path)
    with serve_dashboard(storage) as url:
        assert url.startswith("http://127.0.0.1:")
        studies = _get(f"{url}/api/studies")["study_summaries"]
        assert [s["study_name"] for s in studies] == ["dash"]
        detail = _get(f"{url}/api/studies/{studies[0]['study_id']}?after=0")
        assert len(detail["trials"]) == 3
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{url}/api/studies", timeout=2)


@pytest.mark.slow
def test_the_optuna_dashboard_command_reads_the_journal_file(tmp_path):
    _study(tmp_path)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [os.path.join(os.path.dirname(sys.executable), "optuna-dashboard"), str(tmp_path / "study.journal"),
               "--host", "127.0.0.1", "--port", str(port)]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                studies = _get(f"http://127.0.0.1:{port}/api/studies")["study_summaries"]
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline
                time.sleep(0.2)
        assert studies[0]["study_name"] == "dash"
    finally:
        server.terminate()
        server.wait(timeout=30)
