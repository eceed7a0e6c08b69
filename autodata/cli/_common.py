"""What every subcommand shares: the one-line-error parser, quiet printing, exit codes."""
from __future__ import annotations

import argparse
import typing
from typing import Any

__all__ = ["EXIT_INTERRUPTED", "EXIT_USAGE", "Parser", "epoch_line", "say"]

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class Parser(argparse.ArgumentParser):
    """One line on stderr for a usage error (not the whole usage), then exit status 2."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> typing.NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def say(quiet: bool, text: str) -> None:
    """Print ``text`` unless ``quiet``."""
    if not quiet:
        print(text, flush=True)


def epoch_line(record: dict[str, Any], epochs: int) -> str:
    """One readable line for an epoch record of :meth:`autodata.train.Run.run_epoch`."""
    meta = "" if record.get("meta_loss") is None else f"  meta {record['meta_loss']:.4f}"
    val = f"  val {record['val_accuracy']:6.2f}%" if "val_accuracy" in record else ""
    seconds = record.get("train_seconds", 0.0) + record.get("eval_seconds", 0.0)
    return (f"  epoch {record['epoch']:3d}/{epochs}  loss {record['train_loss']:.4f}{meta}{val}  "
            f"test {record['test_accuracy']:6.2f}%  {seconds:5.1f}s")
