"""A piecewise-constant schedule: ``(epoch range, policy)`` segments, saved as JSON.

The schedules of Population Based Augmentation (Ho et al., ICML 2019) change policy only
when PBT exploits (every few epochs), so a schedule is a short list of segments
``[start, stop)`` that tile ``0 .. num_epochs`` with no gap and no overlap. Stretching a
schedule to more epochs (PBA trains Shake-Shake for 1,800 epochs on the 200-epoch
CIFAR-10 schedule) follows PBA's ``parse_log_schedule`` exactly, see :func:`stretch_runs`.

The JSON file (written atomically) names ops, never list positions::

    {
     "format": "autodata.schedule", "version": 1, "name": "...", "description": "...",
     "num_epochs": 200,
     "segments": [
      {"start": 0, "stop": 12, "policy": {"format": "autodata.pba_policy", "version": 1,
        "halves": [[{"op": "Rotate", "probability_level": 0, "magnitude_level": 0}, ...], [...]]}},
      ...
     ]
    }

A segment's policy is a :class:`~autodata.schedules.PBAPolicy` (``"autodata.pba_policy"``)
or an :class:`~autodata.augment.Policy` (``"autodata.policy"``). Errors name the file and
the field, e.g. ``s.json: segments[2].start must be 40 (the previous segment's stop: no
gap or overlap), but got 41.``
"""
from __future__ import annotations

import bisect
import json
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from autodata._io import atomic_write_text
from autodata._json import read_json_file, read_json_text
from autodata.augment.policy import Policy
from autodata.augment.policy_io import FORMAT as POLICY_FORMAT
from autodata.augment.policy_io import policy_from_dict, policy_to_dict
from autodata.schedules._base import BaseSchedule, check_epoch, check_num_epochs
from autodata.schedules.pba_policy import FORMAT as PBA_FORMAT
from autodata.schedules.pba_policy import PBAPolicy

P = TypeVar("P")
FORMAT = "autodata.schedule"
VERSION = 1


@dataclass(frozen=True)
class Segment(Generic[P]):
    """``policy`` applies to the epochs ``start <= epoch < stop``."""

    start: int
    stop: int
    policy: P

    def __post_init__(self) -> None:
        for name in ("start", "stop"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int):
                raise ValueError(f"{name} must be an int, but got {v!r}.")
        if self.start < 0:
            raise ValueError(f"start must be >= 0, but got {self.start!r}.")
        if self.stop <= self.start:
            raise ValueError(f"stop must be > start = {self.start}, but got {self.stop!r}.")

    @property
    def length(self) -> int:
        """``stop - start`` epochs."""
        return self.stop - self.start


def stretch_runs(runs: Sequence[tuple[int, P]], num_epochs: int) -> list[Segment[P]]:
    """Segments from ``(length, policy)`` runs, stretched to ``num_epochs`` as PBA does.

    PBA's ``parse_log_schedule(..., multiplier=num_epochs / total)`` repeats each run's
    policy ``int(length * multiplier)`` times (float arithmetic, truncation), then fills what
    is left up to the end with the last run's policy (even one of length 0). This function
    reproduces those per-epoch policies; runs that get no epoch are dropped.

    Args:
        runs: ``(length >= 0, policy)`` in order, with a positive total length.
        num_epochs: the stretched length.
    """
    check_num_epochs(num_epochs)
    if not runs:
        raise ValueError(f"runs must be a non-empty sequence, but got {runs!r}.")
    total = 0
    for i, (n, _) in enumerate(runs):
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"runs[{i}] length must be an int >= 0, but got {n!r}.")
        total += n
    if total <= 0:
        raise ValueError(f"runs must have a positive total length, but got {total}.")
    multiplier = float(num_epochs) / total
    if num_epochs % total:
        dropped = sum(1 for n, _ in runs if n > 0 and int(n * multiplier) == 0)
        warnings.warn(
            f"stretching a {total}-epoch schedule to {num_epochs} epochs (factor {multiplier:.4g}, not a whole "
            f"number): as PBA does, each segment keeps int(length x factor) epochs"
            + (f", {dropped} segment(s) get none and are dropped" if dropped else "")
            + ", and the last policy fills the epochs left at the end.",
            UserWarning, stacklevel=3,
        )
    segments: list[Segment[P]] = []
    start = 0
    for n, policy in runs:
        count = min(int(n * multiplier), num_epochs - start)
        if count > 0:
            segments.append(Segment(start, start + count, policy))
            start += count
    if start < num_epochs:
        last = runs[-1][1]
        if segments and segments[-1].policy == last:
            segments[-1] = Segment(segments[-1].start, num_epochs, last)
        else:
            segments.append(Segment(start, num_epochs, last))
    return segments


class PiecewiseSchedule(BaseSchedule[P]):
    """Policies that hold over contiguous epoch ranges.

    Args:
        segments: :class:`Segment` s in order; the first starts at 0 and each next one
            starts where the previous stops.
        name: a short identifier.
        description: free text (provenance).

    Example:
        >>> s = PiecewiseSchedule([Segment(0, 3, "a"), Segment(3, 10, "b")])
        >>> [s.policy_at(e) for e in (0, 2, 3, 9)], s.num_epochs
        (['a', 'a', 'b', 'b'], 10)
        >>> s.stretched(20).segments[1]
        Segment(start=6, stop=20, policy='b')
    """

    def __init__(self, segments: Sequence[Segment[P]], name: str = "", description: str = "") -> None:
        if not isinstance(segments, (list, tuple)) or not segments:
            raise ValueError(f"segments must be a non-empty sequence of Segment, but got {segments!r:.80}.")
        for i, seg in enumerate(segments):
            if not isinstance(seg, Segment):
                raise ValueError(f"segments[{i}] must be a Segment, but got {type(seg).__name__}.")
            expected = 0 if i == 0 else segments[i - 1].stop
            if seg.start != expected:
                why = "the first segment starts at epoch 0" if i == 0 else "the previous segment's stop: no gap or overlap"
                raise ValueError(f"segments[{i}].start must be {expected} ({why}), but got {seg.start}.")
        if not isinstance(name, str) or not isinstance(description, str):
            raise TypeError(f"name and description must be strings, but got {name!r}, {description!r}.")
        self.segments: tuple[Segment[P], ...] = tuple(segments)
        self.name = name
        self.description = description
        self._starts = [seg.start for seg in self.segments]

    @classmethod
    def from_runs(cls, runs: Sequence[tuple[int, P]], num_epochs: int | None = None, **kwargs: str) -> PiecewiseSchedule[P]:
        """From ``(length, policy)`` runs; ``num_epochs`` other than their total stretches them."""
        total = sum(n for n, _ in runs) if runs else 0
        return cls(stretch_runs(runs, total if num_epochs is None else num_epochs), **kwargs)

    @classmethod
    def from_per_epoch(cls, policies: Sequence[P], **kwargs: str) -> PiecewiseSchedule[P]:
        """From one policy per epoch; equal neighbours merge into one segment."""
        runs: list[tuple[int, P]] = []
        for p in policies:
            if runs and runs[-1][1] == p:
                runs[-1] = (runs[-1][0] + 1, p)
            else:
                runs.append((1, p))
        return cls.from_runs(runs, **kwargs)

    @property
    def num_epochs(self) -> int:
        return self.segments[-1].stop

    def policy_at(self, epoch: int) -> P:
        check_epoch(epoch, self.num_epochs)
        return self.segments[bisect.bisect_right(self._starts, epoch) - 1].policy

    def stretched(self, num_epochs: int) -> PiecewiseSchedule[P]:
        """The same schedule over ``num_epochs`` epochs, stretched as PBA does (:func:`stretch_runs`)."""
        runs = [(seg.length, seg.policy) for seg in self.segments]
        return PiecewiseSchedule(stretch_runs(runs, num_epochs), self.name, self.description)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PiecewiseSchedule):
            return NotImplemented
        return (self.segments, self.name, self.description) == (other.segments, other.name, other.description)

    def __repr__(self) -> str:
        return f"PiecewiseSchedule(name={self.name!r}, num_epochs={self.num_epochs}, segments={len(self.segments)})"

    # JSON -------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready dictionary (see the module docstring)."""
        return {
            "format": FORMAT,
            "version": VERSION,
            "name": self.name,
            "description": self.description,
            "num_epochs": self.num_epochs,
            "segments": [
                {"start": s.start, "stop": s.stop, "policy": _policy_to_dict(s.policy)} for s in self.segments
            ],
        }

    @classmethod
    def from_dict(cls, data: object, source: str = "schedule") -> PiecewiseSchedule[Any]:
        """Parse and validate :meth:`to_dict`'s output; errors name ``source`` and the field."""
        if not isinstance(data, dict):
            raise ValueError(f"{source} must be a JSON object, but got {type(data).__name__}.")
        required = {"format", "version", "num_epochs", "segments"}
        missing = sorted(required - set(data))
        if missing:
            raise ValueError(f"{source} must have the field(s) {missing}, but they are missing.")
        unknown = sorted(set(data) - required - {"name", "description"})
        if unknown:
            raise ValueError(f"{source} must have only the fields {sorted(required | {'name', 'description'})}, "
                             f"but got {unknown}.")
        if data["format"] != FORMAT:
            raise ValueError(f"{source}: format must be {FORMAT!r}, but got {data['format']!r}.")
        if isinstance(data["version"], bool) or data["version"] != VERSION:
            raise ValueError(f"{source}: version must be {VERSION}, but got {data['version']!r}.")
        for key in ("name", "description"):
            if not isinstance(data.get(key, ""), str):
                raise ValueError(f"{source}: {key} must be a string, but got {data[key]!r}.")
        raw = data["segments"]
        if not isinstance(raw, list) or not raw:
            raise ValueError(f"{source}: segments must be a non-empty JSON array, but got {raw!r:.80}.")
        segments: list[Segment[Any]] = []
        for i, seg in enumerate(raw):
            here = f"{source}: segments[{i}]"
            if not isinstance(seg, dict) or set(seg) != {"start", "stop", "policy"}:
                got = sorted(seg) if isinstance(seg, dict) else type(seg).__name__
                raise ValueError(f"{here} must be an object with the fields ['policy', 'start', 'stop'], but got {got}.")
            expected = 0 if i == 0 else segments[-1].stop
            if isinstance(seg["start"], bool) or seg["start"] != expected or not isinstance(seg["start"], int):
                why = "the first segment starts at epoch 0" if i == 0 else "the previous segment's stop: no gap or overlap"
                raise ValueError(f"{here}.start must be {expected} ({why}), but got {seg['start']!r}.")
            try:
                segment = Segment(seg["start"], seg["stop"], None)
            except ValueError as err:
                raise ValueError(f"{here}.{err}") from None
            segments.append(Segment(segment.start, segment.stop, _policy_from_dict(seg["policy"], f"{here}.policy")))
        n = data["num_epochs"]
        if isinstance(n, bool) or n != segments[-1].stop:
            raise ValueError(f"{source}: num_epochs must be {segments[-1].stop} (the last segment's stop), but got {n!r}.")
        return cls(segments, data.get("name", ""), data.get("description", ""))

    def to_json(self) -> str:
        """Readable JSON text: short objects on one line, newline-terminated."""
        return _format(self.to_dict(), 0) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str = "schedule") -> PiecewiseSchedule[Any]:
        """Parse JSON text (or UTF-8 bytes) with the one reader of hand-editable JSON (:mod:`autodata._json`)."""
        data = read_json_text(text, source)
        return cls.from_dict(data, source)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the schedule to ``path`` as JSON, atomically (see :mod:`autodata._io`)."""
        atomic_write_text(path, self.to_json())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> PiecewiseSchedule[Any]:
        """Read and validate a schedule file written by :meth:`save` (or by hand)."""
        return cls.from_dict(read_json_file(path), os.fspath(path))


def _policy_to_dict(policy: object) -> dict[str, Any]:
    if isinstance(policy, PBAPolicy):
        return policy.to_dict()
    if isinstance(policy, Policy):
        return policy_to_dict(policy)
    raise TypeError(f"policy must be a PBAPolicy or a Policy to be saved, but got {type(policy).__name__}.")


def _policy_from_dict(data: object, where: str) -> PBAPolicy | Policy:
    kind = data.get("format") if isinstance(data, dict) else None
    if kind == PBA_FORMAT:
        return PBAPolicy.from_dict(data, where)
    if kind == POLICY_FORMAT:
        return policy_from_dict(data, where)
    raise ValueError(f"{where}.format must be {PBA_FORMAT!r} or {POLICY_FORMAT!r}, but got {kind!r}.")


def _format(value: Any, indent: int, width: int = 110) -> str:
    """JSON with every object or array that fits in ``width`` characters on one line."""
    flat = json.dumps(value, allow_nan=False)
    if len(flat) + indent <= width or not isinstance(value, (dict, list)) or not value:
        return flat
    pad = " " * (indent + 1)
    if isinstance(value, dict):
        items = [f"{pad}{json.dumps(k)}: {_format(v, indent + 1, width)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + " " * indent + "}"
    items = [f"{pad}{_format(v, indent + 1, width)}" for v in value]
    return "[\n" + ",\n".join(items) + "\n" + " " * indent + "]"
