"""``import autodata`` stays light; optional extras load lazily with a message naming the extra."""
from __future__ import annotations

import subprocess
import sys

import pytest

from autodata._imports import MissingExtraError, require


def test_import_autodata_loads_no_heavy_or_optional_package() -> None:
    code = ("import sys, autodata, autodata.train, autodata.runs, autodata.cli; "
            "print(sorted(m for m in ('optuna', 'ray', 'matplotlib', 'tensorboard') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "[]"
    bare = subprocess.run([sys.executable, "-c", "import sys, autodata; print('torch' in sys.modules)"],
                          check=True, capture_output=True, text=True).stdout
    assert bare.strip() == "False"


def test_a_missing_extra_names_the_extra_to_install() -> None:
    with pytest.raises(MissingExtraError, match=r"pip install 'autodata\[tune\]'"):
        require("autodata_no_such_module", extra="tune", purpose="studies")
    assert require("json", extra="none").__name__ == "json"
