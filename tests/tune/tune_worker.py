"""A tuning worker process for the crash tests: ``python tune_worker.py STORAGE OUT MARKERS N_TRIALS STUDY``.

Runs :func:`autodata.tune.optimize` on tiny digits trials (3 epochs, no pruning, heartbeat
every second, stale after 3 s) and touches ``MARKERS/<trial>-<epoch>`` after each epoch (then
waits 0.3 s) so that a test knows when to kill it in the middle of a trial. STORAGE ``-``: the journal in OUT.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

from autodata.train import TrainConfig
from autodata.tune import SearchSpace, StorageSettings, TuneSettings, optimize

storage, out, markers, n_trials, study = sys.argv[1], sys.argv[2], Path(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
settings = TuneSettings(
    TrainConfig(dataset="digits", n_train=400, val_per_class=10, epochs=3, batch_size=64),
    SearchSpace.of({"lr": {"low": 0.01, "high": 0.3, "log": True}}),
    out=out, storage=None if storage == "-" else storage, study_name=study, n_trials=n_trials, pruner="none",
    heartbeat=StorageSettings(heartbeat_interval=1, grace_period=3, max_retry=2),
)
markers.mkdir(parents=True, exist_ok=True)


def on_epoch(trial, record):
    (markers / f"{trial.number}-{record['epoch']}").touch()
    time.sleep(0.3)


try:
    optimize(settings, on_epoch=on_epoch)
except KeyboardInterrupt:
    sys.exit(130)
