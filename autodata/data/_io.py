"""Small file helpers shared by the records saved with a run."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def write_json(path: str | os.PathLike[str], record: dict[str, Any]) -> None:
    """Write ``record`` as JSON, creating the parent folders (a run's folder may not exist yet)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))
