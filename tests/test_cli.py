"""The ``autodata`` command: version, help, the demo and a clear error for bad input."""
from __future__ import annotations

import pytest

import autodata
from autodata.cli import main


def test_version_and_help(capsys) -> None:
    assert main(["version"]) == 0
    assert capsys.readouterr().out.strip() == f"autodata {autodata.__version__}"
    assert main([]) == 0
    assert "demo" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--version"])


def test_demo_runs_one_epoch(capsys) -> None:
    assert main(["demo", "--epochs", "1"]) == 0
    out = capsys.readouterr().out
    assert "cross-entropy" in out and "Meta-Weight-Net" in out and "realised noise rate 0.39" in out


def test_bad_noise_rate_is_a_clear_error(capsys) -> None:
    assert main(["demo", "--rate", "1.5", "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("autodata: error:") and "rate" in err and "1.5" in err
