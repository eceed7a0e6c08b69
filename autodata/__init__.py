"""autodata: learn the data side of deep-learning training inside your own PyTorch loop.

Three uses, one library:

* wrap an existing loop: :class:`autodata.MetaLearner` adds learned sample weights and a
  learned augmentation policy to a plain PyTorch loop in a few lines;
* learn an augmentation policy once, save it as a JSON file (``policies/``), reuse it anywhere;
* train robustly on noisy labels with a Meta-Weight-Net steered by a small clean split.

Heavy submodules load lazily so that ``import autodata`` stays fast.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "MetaLearner": "autodata.bilevel",
    "cycle": "autodata.bilevel",
    "MetaWeightNet": "autodata.reweight",
    "L2RW": "autodata.reweight",
    "UniformReweighter": "autodata.reweight",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'autodata' has no attribute {name!r}")
