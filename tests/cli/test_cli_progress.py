"""Progress bars (tqdm) and the TensorBoard logger: on when they can help, null objects otherwise."""
from __future__ import annotations

import io
import sys

import pytest
import torch

from autodata.cli._progress import NullProgress, ProgressReporter, add_progress_arguments, progress_reporter
from autodata.cli._common import Parser
from autodata.runs import train_in_directory
from autodata.runs.tensorboard import NullLogger, TensorBoardLogger, tensorboard_available, tensorboard_logger
from autodata.train import TrainConfig

CONFIG = TrainConfig(dataset="digits", n_train=300, epochs=2, batch_size=64, meta_per_class=3, meta_batch_size=30,
                     reweighter="mwn", augment="learned", policy_ops=("Rotate", "Color"))


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_bars_only_on_a_terminal_unless_forced() -> None:
    assert isinstance(progress_reporter(3, stream=io.StringIO()), NullProgress)
    assert isinstance(progress_reporter(3, stream=_Terminal()), ProgressReporter)
    assert isinstance(progress_reporter(3, stream=_Terminal(), quiet=True), NullProgress)
    assert isinstance(progress_reporter(3, stream=_Terminal(), force=False), NullProgress)
    assert isinstance(progress_reporter(3, stream=io.StringIO(), quiet=True, force=True), ProgressReporter)
    parser = Parser(prog="x")
    add_progress_arguments(parser)
    assert [parser.parse_args(a).progress for a in ([], ["--progress"], ["--no-progress"])] == [None, True, False]


def test_bars_follow_a_run_with_loss_accuracy_and_time_left(tmp_path) -> None:
    stream = _Terminal()
    progress = progress_reporter(CONFIG.epochs, stream=stream, desc="mwn")
    with progress:
        def on_epoch(run, record):
            progress.on_epoch(run, record)
            progress.write(f"line for epoch {record['epoch']}")

        train_in_directory(TrainConfig(dataset="digits", n_train=200, epochs=2, batch_size=64), tmp_path / "run",
                           on_epoch=on_epoch, on_step=progress.on_step)
    text = stream.getvalue()
    assert "mwn: epoch 2/2" in text and "batches" in text and "loss " in text and "test " in text
    assert "left ~00:00" in text and "line for epoch 1\n" in text


def test_null_progress_prints_lines_unless_quiet(capsys) -> None:
    NullProgress().write("shown")
    NullProgress(quiet=True).write("hidden")
    NullProgress().on_step(0, 1, torch.tensor(1.0))
    assert capsys.readouterr().out == "shown\n"


def test_tensorboard_logs_scalars_policy_and_weights(tmp_path) -> None:
    if not tensorboard_available():
        pytest.skip("tensorboard is not installed")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    with tensorboard_logger(out) as logger:
        assert isinstance(logger, TensorBoardLogger)
        train_in_directory(CONFIG, out, on_epoch=logger)
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"accuracy/test", "loss/train", "loss/meta", "lr", "policy_probability/Rotate", "mwn_weight/at_loss_1"} <= scalars
    assert [e.step for e in events.Scalars("accuracy/test")] == [1, 2]
    assert "policy/sub_policy_weights" in events.Tags()["histograms"]


def test_tensorboard_is_off_without_the_package(tmp_path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # as if tensorboard were missing
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    assert not tensorboard_available()
    logger = tensorboard_logger(tmp_path)
    assert isinstance(logger, NullLogger)
    logger(None, {"epoch": 1, "test_accuracy": 1.0})
    assert not (tmp_path / "tensorboard").exists()
    from autodata._imports import MissingExtraError

    with pytest.raises(MissingExtraError, match=r"autodata\[tensorboard\]"):
        tensorboard_logger(tmp_path, enabled=True)
    assert isinstance(tensorboard_logger(tmp_path, enabled=False), NullLogger)
