"""Shared helpers of the autodata.tune tests: tiny digits configs, quiet Optuna."""
from __future__ import annotations

import pytest

optuna = pytest.importorskip("optuna")

from autodata.train import TrainConfig  # noqa: E402


@pytest.fixture(autouse=True)
def _quiet_optuna() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)


def tiny_config(**fields) -> TrainConfig:
    """Digits, 300 training images, 10 validation images per class, 2 epochs: well under a second a trial."""
    return TrainConfig(**{"dataset": "digits", "n_train": 400, "val_per_class": 10, "epochs": 2, "batch_size": 64, **fields})
