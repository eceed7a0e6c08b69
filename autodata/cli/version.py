"""``autodata version``."""
from __future__ import annotations

from typing import Any

import autodata

__all__ = ["register"]


def register(commands: Any) -> None:
    commands.add_parser("version", help="print the version").set_defaults(
        run=lambda _: print(f"autodata {autodata.__version__}") or 0
    )
