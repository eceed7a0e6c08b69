"""Run directories: config, metrics, checkpoints, final results and a summary in one folder.

Example:
    >>> import tempfile
    >>> from autodata.train import TrainConfig
    >>> out = tempfile.mkdtemp() + "/run"
    >>> run = train_in_directory(TrainConfig(epochs=1, n_train=200), out)
    >>> sorted(p.name for p in RunDirectory(out).path.iterdir())
    ['checkpoints', 'config.json', 'final', 'metrics.jsonl', 'plots', 'summary.md']
"""
from autodata.runs.directory import RunDirectory, RunDirectoryError, summary_markdown, train_in_directory

__all__ = ["RunDirectory", "RunDirectoryError", "summary_markdown", "train_in_directory"]
