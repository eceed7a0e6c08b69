"""Every docstring example in the package runs (a module that needs a missing extra is skipped)."""
from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import autodata
from autodata._imports import MissingExtraError

MODULES = sorted(
    name for _, name, _ in pkgutil.walk_packages(autodata.__path__, "autodata.") if not name.endswith("__main__")
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    try:
        module = importlib.import_module(name)
    except (ImportError, MissingExtraError) as err:
        pytest.skip(f"{name} needs an optional extra: {err}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} docstring example(s) of {name} failed"
