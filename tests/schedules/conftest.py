"""Fixtures of the schedule tests: PBA's published logs under $AUTODATA_DATA."""
from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def pba_dir() -> Path:
    root = os.environ.get("AUTODATA_DATA")
    if not root:
        pytest.skip("AUTODATA_DATA is not set: PBA's published schedules are not available")
    path = Path(root) / "pba"
    if not (path / "rcifar10_16_wrn.txt").is_file() or not (path / "rsvhn_16_wrn.txt").is_file():
        pytest.skip(f"PBA's published schedules are missing under {path}")
    return path
