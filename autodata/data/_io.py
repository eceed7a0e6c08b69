"""Small file helpers shared by the records saved with a run."""
from __future__ import annotations

import os
from typing import Any

from autodata._io import write_json_atomic


def write_json(path: str | os.PathLike[str], record: dict[str, Any]) -> None:
    """Write ``record`` as compact JSON atomically, creating the parent folders (a run's
    folder may not exist yet); a crash mid-write leaves the old file or the new one."""
    write_json_atomic(path, record, indent=None)
