"""``autodata search-schedule``: flags from the configs, clear errors, a tiny search."""
from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from autodata.pba.cli import register, search_config_from_arguments
from autodata.schedules import PiecewiseSchedule


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="autodata")
    register(parser.add_subparsers(dest="command"))
    return parser


def test_flags_come_from_the_configs() -> None:
    args = _parser().parse_args(["search-schedule", "--population", "6", "--interval", "2", "--epochs", "9",
                                 "--data", "digits", "--val-per-class", "7", "--no-nesterov", "--out", "x.json"])
    config = search_config_from_arguments(args)
    assert (config.population, config.interval, config.train.epochs) == (6, 2, 9)
    assert (config.train.dataset, config.train.val_per_class, config.train.nesterov) == ("digits", 7, False)
    assert args.out == "x.json" and not args.ray
    assert config.train.precision == "fp32"
    args = _parser().parse_args(["search-schedule", "--precision", "bf16"])
    assert search_config_from_arguments(args).train.precision == "bf16"
    with pytest.raises(ValueError, match=r"--precision must be one of \['bf16', 'fp32'\], but got 'fp16'"):
        search_config_from_arguments(_parser().parse_args(["search-schedule", "--precision", "fp16"]))
    with pytest.raises(SystemExit):
        _parser().parse_args(["search-schedule", "--augment", "policy"])  # the search owns augmentation


@pytest.mark.parametrize("flags, message", [
    (["--population", "1"], "--population must be an int >= 2"),
    (["--interval", "0"], r"--interval must be an int in \[1, epochs\)"),
    (["--val-per-class", "0"], "--val-per-class must be >= 1"),
    (["--lr", "-1"], "--lr must be a positive finite number"),
])
def test_errors_name_the_flag(flags: list[str], message: str) -> None:
    args = _parser().parse_args(["search-schedule", *flags])
    with pytest.raises(ValueError, match=message):
        search_config_from_arguments(args)


@pytest.mark.slow
def test_a_tiny_search_writes_the_schedule(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "s.json"
    args = _parser().parse_args(["search-schedule", "--data", "digits", "--n-train", "300", "--val-per-class", "5",
                                 "--epochs", "3", "--batch-size", "100", "--population", "2", "--interval", "1",
                                 "--out", str(out)])
    assert args.run(args) == 0
    text = capsys.readouterr().out
    assert "epoch   3/3" in text and "finished: member" in text
    assert PiecewiseSchedule.load(out).num_epochs == 3


class _Stop(Exception):
    pass


@pytest.mark.parametrize("flags, device, asked", [
    ([], "cpu", True),
    (["--no-keep-freed-memory"], "cpu", False),
    ([], "meta", False),  # not a CPU: the allocator of the host process is not the data's
])
def test_a_cpu_search_keeps_freed_memory_unless_told_not_to(monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str],
                                                            flags: list[str], device: str, asked: bool) -> None:
    import autodata._malloc
    import autodata.pba.search

    calls: list[int] = []

    def keep() -> str:
        calls.append(1)
        return "the C library is not glibc"

    def search(*args: object, **kwargs: object) -> None:
        raise _Stop  # the wiring is what is checked here; the search itself runs in the test above

    monkeypatch.setattr(autodata._malloc, "keep_freed_memory", keep)
    monkeypatch.setattr(autodata.pba.search, "search_schedule", search)
    args = _parser().parse_args(["search-schedule", "--data", "digits", "--device", device, *flags])
    with pytest.raises(_Stop):
        args.run(args)
    assert calls == ([1] if asked else [])
    assert ("allocator: glibc's defaults kept (the C library is not glibc)" in capsys.readouterr().out) == asked
