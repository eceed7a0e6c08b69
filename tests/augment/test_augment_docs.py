"""The docstring examples of autodata.augment run."""
from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "autodata.augment",
    "autodata.augment.ops",
    "autodata.augment.relax",
    "autodata.augment.policy",
    "autodata.augment.apply",
    "autodata.augment.differentiable",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
