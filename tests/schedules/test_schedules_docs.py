"""The docstring examples of autodata.schedules run."""
from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "autodata.schedules",
    "autodata.schedules._base",
    "autodata.schedules.pba_policy",
    "autodata.schedules.piecewise",
    "autodata.schedules.pba_augment",
    "autodata.schedules.explore",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0
