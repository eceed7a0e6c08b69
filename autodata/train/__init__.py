"""The stepwise training run: a frozen config, a run built from it, stepped epoch by epoch.

Example:
    >>> from autodata.train import TrainConfig, build_run
    >>> run = build_run(TrainConfig(dataset="digits", epochs=1, n_train=300))
    >>> record = run.run_epoch()
    >>> run.finished, sorted(record)[:3]
    (True, ['epoch', 'eval_seconds', 'lr'])
"""
from autodata.train.config import TrainConfig, config_field_help, parse_method
from autodata.train.data import RunData, build_data, derive_seed
from autodata.train.run import Run, build_run

__all__ = ["Run", "RunData", "TrainConfig", "build_data", "build_run", "config_field_help", "derive_seed", "parse_method"]
