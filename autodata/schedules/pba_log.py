"""Read the schedules published with PBA (Ray Tune PBT logs) into a :class:`PiecewiseSchedule`.

Population Based Augmentation (Ho et al., ICML 2019) publishes each searched schedule as
the log of its PBT run (``schedules/rcifar10_16_wrn.txt``: 200 epochs of WRN-40-2 on reduced
CIFAR-10; ``schedules/rsvhn_16_wrn.txt``: 160 epochs on reduced SVHN). Each line is a
Python literal ``[target_trial, clone_trial, target_epoch, clone_epoch, old_policy,
new_policy]`` recording one exploit. This module gives the same per-epoch policies as PBA's
``pba/utils.py``:

* ``parse_log``: if some line's target trial is not the next line's cloned trial, the lines
  up to the last such break are dropped. The first ``clone_epoch[0]`` epochs use line 0's
  ``old_policy``; line ``i``'s ``new_policy`` then runs for
  ``clone_epoch[i + 1] - clone_epoch[i]`` epochs, and the last line's until the end of the
  search (``search_epochs``).
* ``parse_log_schedule(..., multiplier=epochs / search_epochs)``: each run is stretched as
  :func:`~autodata.schedules.piecewise.stretch_runs` describes.

Lines are read with :func:`ast.literal_eval` (literals only, nothing is executed) and
checked; errors name the file and line.
"""
from __future__ import annotations

import ast
import hashlib
import os
from dataclasses import dataclass

from autodata.schedules.piecewise import PiecewiseSchedule, stretch_runs
from autodata.schedules.pba_policy import PBAPolicy

PUBLISHED_SEARCH_EPOCHS: dict[str, int] = {
    "c14f79cdc1e8a690a8912a8209b27ddd": 200,  # rcifar10_16_wrn.txt, arcelien/pba a9cc308
    "501301bc2e0fe7ac14ee4ff5f023c172": 160,  # rsvhn_16_wrn.txt
}
"""The search length of each schedule published with PBA, by the md5 of its file."""


@dataclass(frozen=True)
class PBTUpdate:
    """One line of a PBT log: ``target_trial`` copied ``clone_trial`` and explored."""

    target_trial: str
    clone_trial: str
    target_epoch: int
    clone_epoch: int
    old_policy: PBAPolicy
    new_policy: PBAPolicy


def _read_text(path: str | os.PathLike[str]) -> tuple[str, bytes]:
    with open(path, "rb") as f:
        raw = f.read()
    try:
        return raw.decode("utf-8"), raw
    except UnicodeDecodeError as err:
        raise ValueError(f"{os.fspath(path)} must be UTF-8 text, but got the byte {raw[err.start]:#04x} "
                         f"at offset {err.start}.") from None


def _policy(value: object, where: str) -> PBAPolicy:
    if isinstance(value, dict):  # PBA's newer logs store the whole config
        if "hp_policy" not in value:
            raise ValueError(f"{where} must be a list of 60 ints or a dict with 'hp_policy', but got keys {sorted(value)}.")
        value = value["hp_policy"]
    if not isinstance(value, list):
        raise ValueError(f"{where} must be a list of 60 ints, but got {type(value).__name__}.")
    try:
        return PBAPolicy(tuple(value))
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from None


def read_pba_log(path: str | os.PathLike[str]) -> list[PBTUpdate]:
    """Every line of a PBA / Ray Tune PBT log, checked (blank lines are skipped).

    Raises:
        ValueError: naming ``path:line`` and the field, e.g. a level out of range.
    """
    source = os.fspath(path)
    text, _ = _read_text(path)
    updates = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{source}:{lineno}"
        try:
            row = ast.literal_eval(line.strip())
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            raise ValueError(f"{where} must be a Python list literal, but got {line.strip()!r:.80}.") from None
        if not isinstance(row, (list, tuple)) or len(row) != 6:
            raise ValueError(f"{where} must be a list of 6 fields [target_trial, clone_trial, target_epoch, "
                             f"clone_epoch, old_policy, new_policy], but got {row!r:.80}.")
        for i, name in ((2, "target_epoch"), (3, "clone_epoch")):
            if isinstance(row[i], bool) or not isinstance(row[i], int) or row[i] < 0:
                raise ValueError(f"{where}: {name} must be an int >= 0, but got {row[i]!r}.")
        updates.append(PBTUpdate(
            str(row[0]), str(row[1]), row[2], row[3],
            _policy(row[4], f"{where}: old_policy"), _policy(row[5], f"{where}: new_policy"),
        ))
    if not updates:
        raise ValueError(f"{source} must have at least one PBT log line, but got none.")
    return updates


def pba_log_runs(updates: list[PBTUpdate], search_epochs: int, source: str = "log") -> list[tuple[int, PBAPolicy]]:
    """PBA's ``parse_log``: ``(number of epochs, policy)`` runs summing to ``search_epochs``."""
    last_break = None
    for i in range(len(updates) - 1):
        if updates[i].target_trial != updates[i + 1].clone_trial:
            last_break = i
    if last_break is not None:  # "sometimes files have extra lines in the beginning"
        updates = updates[last_break + 1:]
    runs = [(updates[0].clone_epoch, updates[0].old_policy)]
    for i in range(len(updates) - 1):
        n = updates[i + 1].clone_epoch - updates[i].clone_epoch
        if n < 0:
            raise ValueError(f"{source}: the clone epochs must not decrease, but got {updates[i].clone_epoch} "
                             f"then {updates[i + 1].clone_epoch}.")
        runs.append((n, updates[i].new_policy))
    if search_epochs < updates[-1].clone_epoch or search_epochs < 1:
        raise ValueError(f"search_epochs must be >= the last clone epoch {updates[-1].clone_epoch} and >= 1, "
                         f"but got {search_epochs!r}.")
    runs.append((search_epochs - updates[-1].clone_epoch, updates[-1].new_policy))
    return runs


def schedule_from_pba_log(
    path: str | os.PathLike[str], epochs: int | None = None, search_epochs: int | None = None
) -> PiecewiseSchedule[PBAPolicy]:
    """The schedule of a PBA log, stretched to ``epochs`` when it differs from the search's.

    Args:
        path: a PBA schedule log, e.g. ``rcifar10_16_wrn.txt``.
        epochs: the training length; default the search's own (no stretch).
        search_epochs: how many epochs the search ran (the log does not say); known for the
            two published files (:data:`PUBLISHED_SEARCH_EPOCHS`), required otherwise.

    Returns:
        A :class:`PiecewiseSchedule` whose ``policy_at(e)`` equals PBA's
        ``parse_log_schedule(path, search_epochs, epochs / search_epochs)[e]``.

    Example (with ``AUTODATA_DATA`` pointing at the data folder)::

        s = schedule_from_pba_log(f"{root}/pba/rcifar10_16_wrn.txt", epochs=1800)
        s.policy_at(1799)  # the policy PBA uses in Shake-Shake's last epoch
    """
    source = os.fspath(path)
    _, raw = _read_text(path)
    if search_epochs is None:
        search_epochs = PUBLISHED_SEARCH_EPOCHS.get(hashlib.md5(raw).hexdigest())
        if search_epochs is None:
            raise ValueError(f"search_epochs must be given for {source} (not one of PBA's published schedules), "
                             f"but got None.")
    if isinstance(search_epochs, bool) or not isinstance(search_epochs, int):
        raise ValueError(f"search_epochs must be an int >= 1, but got {search_epochs!r}.")
    runs = pba_log_runs(read_pba_log(path), search_epochs, source)
    name = os.path.splitext(os.path.basename(source))[0]
    target = search_epochs if epochs is None else epochs
    description = f"PBA schedule {name} (search: {search_epochs} epochs), stretched to {target} epochs."
    return PiecewiseSchedule(stretch_runs(runs, target), name=f"pba_{name}", description=description)
