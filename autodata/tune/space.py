"""Search spaces over a run's :class:`~autodata.train.TrainConfig`: which fields a study tunes.

A :class:`Param` names one config field and its range (``low``/``high``, ``log``, ``step``) or
its ``choices``; a :class:`SearchSpace` is a tuple of them. ``space.suggest(trial, base)``
asks an Optuna trial for each value and returns ``base`` with those fields replaced: the
config stays the single source of truth, and the trial's parameters are named after its
fields. A space is checked against the base config before any trial runs
(:meth:`SearchSpace.check`): an unknown field, ``low > high``, a log range touching 0 or a
choice the field refuses fails at once with a message that names the parameter.

The default space (:func:`default_space`) tunes what matters for the base config: the
optimiser (``lr``, ``weight_decay``, ``momentum`` for SGD), ``batch_size``, ``lr_schedule``,
and, only when the run learns them, the reweighter's (``reweighter_lr``, ``reweighter_hidden``
for MWN, the hypergradient ``method``) and the learned policy's ``policy_temperature``.
``epochs`` is not tuned by default (the budget is the pruner's business), but a space may
name it. PBA knobs (explore/exploit intervals, perturbation sizes) are not fields of
``TrainConfig`` yet, so they are not in the space.

Example:
    >>> from autodata.train import TrainConfig
    >>> space = SearchSpace.from_dict({"lr": {"low": 1e-3, "high": 0.3, "log": True},
    ...                                "lr_schedule": {"choices": ["cosine", "constant"]}})
    >>> space.check(TrainConfig(val_per_class=5))
    >>> [p.name for p in space]
    ['lr', 'lr_schedule']
    >>> SearchSpace.from_dict({"lr": {"low": 0, "high": 1, "log": True}}).check(TrainConfig())
    Traceback (most recent call last):
    ...
    ValueError: space parameter 'lr': low must be > 0 with log=True, but got low=0; raise low.
"""
from __future__ import annotations

import dataclasses
import math
import os
import typing
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from autodata._json import read_json_file
from autodata.train.config import TrainConfig

__all__ = ["Param", "SearchSpace", "default_space"]

_FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}
_HINTS = typing.get_type_hints(TrainConfig)
_KEYS = ("low", "high", "log", "step", "choices")


def _kind(name: str) -> type:
    """``int``, ``float``, ``bool`` or ``str``: the type of config field ``name``."""
    hint = _HINTS[name]
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if args and typing.get_origin(hint) is not tuple else hint


@dataclass(frozen=True)
class Param:
    """One tuned config field: a numeric range or a list of choices.

    Attributes:
        name: a :class:`TrainConfig` field.
        low, high: the range of a numeric field (both ends included).
        log: draw on a log scale (``low`` must be > 0).
        step: the grid step of the range (not with ``log``); integer fields step by 1 by default.
        choices: the values to choose from (instead of a range); any field type.
    """

    name: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] | None = None

    def __post_init__(self) -> None:
        if self.choices is not None:
            object.__setattr__(self, "choices", tuple(self.choices))

    # ------------------------------------------------------------------ checks
    def check(self, base: TrainConfig) -> None:
        """Raise ``ValueError`` when this parameter cannot be drawn for ``base``."""
        where = f"space parameter {self.name!r}"
        if self.name not in _FIELDS:
            raise ValueError(f"{where}: name must be a TrainConfig field, but got {self.name!r}; the fields are {sorted(_FIELDS)}.")
        kind = _kind(self.name)
        if self.choices is not None:
            if self.low is not None or self.high is not None or self.step is not None or self.log:
                raise ValueError(f"{where}: give either choices or low/high (with log, step), but got both.")
            if not self.choices:
                raise ValueError(f"{where}: choices must not be empty, but got [].")
            for value in self.choices:
                if value is not None and not isinstance(value, (bool, int, float, str)):
                    raise ValueError(f"{where}: choices must be numbers, strings, booleans or null, but got {value!r}.")
                self._check_value(base, value)
            return
        if kind not in (int, float):
            raise ValueError(f"{where}: field {self.name} is a {kind.__name__} field, so it needs choices, but got low/high.")
        if self.low is None or self.high is None:
            raise ValueError(f"{where}: low and high must both be set (or choices), but got low={self.low!r}, high={self.high!r}.")
        for key in ("low", "high", "step"):
            value = getattr(self, key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)):
                raise ValueError(f"{where}: {key} must be a finite number, but got {value!r}.")
        if kind is int:
            for key in ("low", "high", "step"):
                value = getattr(self, key)
                if value is not None and float(value) != int(value):
                    raise ValueError(f"{where}: {key} must be an integer for the integer field {self.name}, but got {value!r}.")
        if self.low > self.high:
            raise ValueError(f"{where}: low must be <= high, but got low={self.low!r} > high={self.high!r}; swap them.")
        if self.log and self.low <= 0:
            raise ValueError(f"{where}: low must be > 0 with log=True, but got low={self.low!r}; raise low.")
        if self.log and self.step is not None:
            raise ValueError(f"{where}: step must not be set with log=True, but got step={self.step!r}; drop one.")
        if self.step is not None and self.step <= 0:
            raise ValueError(f"{where}: step must be > 0, but got {self.step!r}.")
        self._check_value(base, self.low)
        self._check_value(base, self.high)

    def _check_value(self, base: TrainConfig, value: Any) -> None:
        try:
            base.replace(**{self.name: int(value) if _kind(self.name) is int and isinstance(value, float) else value})
        except ValueError as err:
            raise ValueError(f"space parameter {self.name!r}: the value {value!r} is refused by the config: {err}") from None

    # ------------------------------------------------------------------ drawing
    def suggest(self, trial: Any) -> Any:
        """Draw this parameter's value from an Optuna trial (or ``FixedTrial``)."""
        if self.choices is not None:
            return trial.suggest_categorical(self.name, list(self.choices))
        if _kind(self.name) is int:
            return trial.suggest_int(self.name, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.name, float(self.low), float(self.high), step=self.step, log=self.log)

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict[str, Any]:
        """The JSON form (without ``name``): ``{"low": .., "high": .., "log": ..}`` or ``{"choices": [...]}``."""
        if self.choices is not None:
            return {"choices": list(self.choices)}
        out: dict[str, Any] = {"low": self.low, "high": self.high}
        if self.log:
            out["log"] = True
        if self.step is not None:
            out["step"] = self.step
        return out

    @classmethod
    def from_dict(cls, name: str, data: Any, source: str = "space") -> Param:
        if isinstance(data, list):  # shorthand: "lr_schedule": ["cosine", "constant"]
            data = {"choices": data}
        if not isinstance(data, dict):
            raise ValueError(f"{source}: parameter {name!r} must be an object such as "
                             f'{{"low": 0.001, "high": 0.3, "log": true}} or {{"choices": [...]}}, but got {data!r}.')
        unknown = sorted(set(data) - set(_KEYS))
        if unknown:
            raise ValueError(f"{source}: parameter {name!r} has unknown key(s) {unknown}; the keys are {list(_KEYS)}.")
        if "log" in data and not isinstance(data["log"], bool):
            raise ValueError(f"{source}: parameter {name!r}: log must be true or false, but got {data['log']!r}.")
        if "choices" in data and not isinstance(data["choices"], list):
            raise ValueError(f"{source}: parameter {name!r}: choices must be a list, but got {data['choices']!r}.")
        return cls(name=name, **data)


@dataclass(frozen=True)
class SearchSpace:
    """An ordered set of :class:`Param` (at most one per field); see the module docstring."""

    params: tuple[Param, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", tuple(self.params))
        for p in self.params:
            if not isinstance(p, Param):
                raise TypeError(f"params must be Param objects, but got {type(p).__name__}.")
        names = [p.name for p in self.params]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"a space must name each field once, but got {twice} more than once.")

    def __iter__(self) -> Iterator[Param]:
        return iter(self.params)

    def __len__(self) -> int:
        return len(self.params)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    def check(self, base: TrainConfig) -> None:
        """Check every parameter against ``base`` (each value alone, with the other fields as in ``base``)."""
        if not isinstance(base, TrainConfig):
            raise TypeError(f"base must be a TrainConfig, but got {type(base).__name__}.")
        if not self.params:
            raise ValueError("a space must tune at least one field, but got an empty space.")
        for p in self.params:
            p.check(base)

    def suggest(self, trial: Any, base: TrainConfig) -> TrainConfig:
        """``base`` with each parameter drawn from ``trial``.

        Raises:
            ValueError: the drawn values, each valid alone (checked when the space is built),
                make together a config the run refuses (``warmup_epochs >= epochs``); the
                message names the trial and its values.
        """
        values = {p.name: p.suggest(trial) for p in self.params}
        try:
            return base.replace(**values)
        except ValueError as err:
            raise ValueError(
                f"trial {trial.number}: the space's values {values} together make a config the run refuses: {err} "
                f"Narrow the space's ranges so that every combination is valid."
            ) from None

    def config_of(self, params: Mapping[str, Any], base: TrainConfig) -> TrainConfig:
        """``base`` with a finished trial's parameters (``trial.params``)."""
        return base.replace(**{k: v for k, v in params.items() if k in self.names})

    def to_dict(self) -> dict[str, Any]:
        return {p.name: p.to_dict() for p in self.params}

    @classmethod
    def from_dict(cls, data: Any, source: str = "space") -> SearchSpace:
        """From ``{"field": {"low": .., "high": .., "log": ..} | {"choices": [..]} | [..], ...}``."""
        if not isinstance(data, dict):
            raise ValueError(f"{source} must be a JSON object of field -> range, but got {type(data).__name__}.")
        return cls(tuple(Param.from_dict(name, spec, source) for name, spec in data.items()))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> SearchSpace:
        """Read a JSON space file (see :meth:`from_dict`)."""
        return cls.from_dict(read_json_file(path), os.fspath(path))

    @classmethod
    def of(cls, params: Sequence[Param] | Mapping[str, Any]) -> SearchSpace:
        """A space from Params or a dict (a user space in one line)."""
        return cls.from_dict(dict(params)) if isinstance(params, Mapping) else cls(tuple(params))


def default_space(base: TrainConfig) -> SearchSpace:
    """The default space for ``base`` (see the module docstring for what it covers and why).

    Example:
        >>> from autodata.train import TrainConfig
        >>> default_space(TrainConfig()).names
        ('lr', 'weight_decay', 'momentum', 'batch_size', 'lr_schedule')
        >>> default_space(TrainConfig(reweighter="mwn", meta_per_class=10)).names[-3:]
        ('reweighter_lr', 'reweighter_hidden', 'method')
    """
    from autodata.bilevel import HYPERGRADIENTS

    params = [
        Param("lr", 1e-3, 0.5, log=True),
        Param("weight_decay", 1e-6, 1e-2, log=True),
    ]
    if base.optimizer == "sgd":
        params.append(Param("momentum", 0.0, 0.95))
    params += [
        Param("batch_size", choices=(32, 64, 128, 256)),
        Param("lr_schedule", choices=("cosine", "constant")),
    ]
    if base.reweighter == "mwn":
        params += [Param("reweighter_lr", 1e-4, 1e-1, log=True), Param("reweighter_hidden", choices=(10, 50, 100, 200))]
    if base.learns:
        rewards_now = base.reweighter == "l2rw" or (base.augment == "learned" and base.policy_estimator != "straight_through")
        methods = [m for m in HYPERGRADIENTS if not (rewards_now and HYPERGRADIENTS[m].delayed)]  # needs its result at once
        params.append(Param("method", choices=tuple(methods)))
    if base.augment == "learned":
        params.append(Param("policy_temperature", 0.1, 2.0, log=True))
    return SearchSpace(tuple(params))
