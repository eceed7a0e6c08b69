"""Augmentation policies as typed, frozen data.

A :class:`Policy` is a sequence of :class:`Stage` s applied in order. Each stage picks one
:class:`SubPolicy` per sample with probability proportional to its weight; a sub-policy
applies its :class:`OpConfig` s in order, each with its own application probability and a
normalised magnitude in ``[0, 1]`` (see :mod:`autodata.augment.ops` for each op's range).
``magnitude_sampling="uniform"`` draws the magnitude per sample from ``U(0, magnitude)``.
A signed op (rotation, shear, translation, enhance) takes the positive direction with
probability ``sign_probability`` (0.5, a fair coin, unless a search learned it).

The published policies are all data in this one format (``policies/*.json``):

* AutoAugment: one stage of 25 two-op sub-policies, equal weights.
* RandAugment(N, M): N identical stages, each of one-op sub-policies (one per op) with
  equal weights, probability 1 and fixed magnitude M.
* TrivialAugment: one stage of one-op sub-policies, probability 1, magnitude 1 with
  ``magnitude_sampling="uniform"``.
* A population-based schedule (PBA) or a search edits probabilities, magnitudes and
  weights with :func:`dataclasses.replace`.
"""
from __future__ import annotations

import math
import reprlib
from dataclasses import dataclass, field
from typing import Literal

from autodata.augment.ops import OPS

MagnitudeSampling = Literal["fixed", "uniform"]
MAGNITUDE_SAMPLINGS: tuple[str, ...] = ("fixed", "uniform")
POLICY_VERSION = 1


_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = _REPR.maxlong = 80
_REPR.maxlevel = 3


def short_repr(value: object) -> str:
    """A bounded :func:`repr` for error messages: a hostile file's huge or deeply nested
    value must not make a huge (or recursing) message."""
    return _REPR.repr(value)


def _finite_float(value: object) -> float | None:
    """``float(value)`` for an int or float that is finite as a float, else ``None``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        value = float(value)
    except OverflowError:  # an int beyond the float range, e.g. 10**400
        return None
    return value if math.isfinite(value) else None


def _unit_float(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number in [0, 1], but got {short_repr(value)}.")
    number = _finite_float(value)
    if number is None or not 0.0 <= number <= 1.0:  # also rejects NaN, inf and 10**400
        raise ValueError(f"{name} must be in [0, 1], but got {short_repr(value)}.")
    return number


@dataclass(frozen=True)
class OpConfig:
    """One op of a sub-policy.

    Args:
        name: a key of :data:`autodata.augment.OPS`.
        probability: probability of applying the op, in ``[0, 1]``.
        magnitude: normalised magnitude in ``[0, 1]``.
        magnitude_sampling: ``"fixed"`` uses ``magnitude``; ``"uniform"`` draws
            ``U(0, magnitude)`` per sample.
        sign_probability: probability of the positive sign of a signed op
            (``OPS[name].signed``), in ``[0, 1]``: 1.0 always takes the positive sign.
            An op without a sign takes only the default 0.5.

    Example:
        >>> op = OpConfig("Rotate", probability=0.7, magnitude=2 / 9)
        >>> op.magnitude, op.sign_probability
        (0.2222222222222222, 0.5)
        >>> OpConfig("Rotate", probability=0.7, magnitude=2 / 9, sign_probability=1.0).sign_probability
        1.0
    """

    name: str
    probability: float
    magnitude: float = 0.0
    magnitude_sampling: MagnitudeSampling = "fixed"
    sign_probability: float = 0.5

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or self.name not in OPS:
            raise ValueError(f"name must be one of {sorted(OPS)}, but got {short_repr(self.name)}.")
        object.__setattr__(self, "probability", _unit_float(self.probability, "probability"))
        object.__setattr__(self, "magnitude", _unit_float(self.magnitude, "magnitude"))
        if self.magnitude_sampling not in MAGNITUDE_SAMPLINGS:
            raise ValueError(
                f"magnitude_sampling must be one of {list(MAGNITUDE_SAMPLINGS)}, "
                f"but got {short_repr(self.magnitude_sampling)}."
            )
        sign = _unit_float(self.sign_probability, "sign_probability")
        if sign != 0.5 and not OPS[self.name].signed:
            raise ValueError(f"sign_probability must be 0.5 for {self.name}, an op without a sign, but got "
                             f"{short_repr(self.sign_probability)}.")
        object.__setattr__(self, "sign_probability", sign)


@dataclass(frozen=True)
class SubPolicy:
    """Ops applied in order, each gated by its own probability.

    Args:
        ops: one or more :class:`OpConfig`.
    """

    ops: tuple[OpConfig, ...]

    def __post_init__(self) -> None:
        ops = tuple(self.ops) if isinstance(self.ops, (list, tuple)) else self.ops
        if not isinstance(ops, tuple) or not ops or not all(isinstance(op, OpConfig) for op in ops):
            raise ValueError(f"ops must be a non-empty sequence of OpConfig, but got {short_repr(self.ops)}.")
        object.__setattr__(self, "ops", ops)


@dataclass(frozen=True)
class Stage:
    """Picks one sub-policy per sample, with probability proportional to ``weights``.

    Args:
        sub_policies: one or more :class:`SubPolicy`.
        weights: one non-negative weight per sub-policy with a positive sum; ``None``
            means equal weights.
    """

    sub_policies: tuple[SubPolicy, ...]
    weights: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        subs = self.sub_policies
        subs = tuple(subs) if isinstance(subs, (list, tuple)) else subs
        if not isinstance(subs, tuple) or not subs or not all(isinstance(s, SubPolicy) for s in subs):
            raise ValueError(
                f"sub_policies must be a non-empty sequence of SubPolicy, "
                f"but got {short_repr(self.sub_policies)}."
            )
        object.__setattr__(self, "sub_policies", subs)
        weights = (1.0,) * len(subs) if self.weights is None else self.weights
        if not isinstance(weights, (list, tuple)) or len(weights) != len(subs):
            raise ValueError(
                f"weights must be a sequence of {len(subs)} numbers (one per sub-policy), "
                f"but got {short_repr(weights)}."
            )
        checked = []
        for i, w in enumerate(weights):
            number = _finite_float(w)
            if number is None or number < 0:
                raise ValueError(f"weights[{i}] must be a finite number >= 0, but got {short_repr(w)}.")
            checked.append(number)
        if max(checked) <= 0:
            raise ValueError(f"weights must have a positive sum, but got {short_repr(checked)}.")
        object.__setattr__(self, "weights", tuple(checked))

    @property
    def probabilities(self) -> tuple[float, ...]:
        """The weights normalised to sum to one.

        Divided by the largest weight first, so huge weights (``[1e308, 1e308]``, whose
        plain sum overflows to infinity) still give ``(0.5, 0.5)``.
        """
        largest = max(self.weights)  # type: ignore[arg-type]
        scaled = [w / largest for w in self.weights]  # type: ignore[union-attr]  # each in [0, 1]
        total = sum(scaled)  # in [1, K]: finite
        return tuple(w / total for w in scaled)


@dataclass(frozen=True)
class Policy:
    """An augmentation policy: stages applied in order.

    Args:
        name: a short identifier.
        stages: one or more :class:`Stage`.
        description: free text (provenance, paper, magnitude mapping).
        version: the format version; only ``1`` exists.

    Example:
        >>> p = Policy.single_stage("rot", [SubPolicy((OpConfig("Rotate", 0.5, 0.3),))])
        >>> p.stages[0].weights
        (1.0,)
    """

    name: str
    stages: tuple[Stage, ...]
    description: str = ""
    version: int = field(default=POLICY_VERSION)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str):
            raise TypeError(f"name must be a string, but got {short_repr(self.name)}.")
        if not isinstance(self.description, str):
            raise TypeError(f"description must be a string, but got {short_repr(self.description)}.")
        if isinstance(self.version, bool) or self.version != POLICY_VERSION:
            raise ValueError(f"version must be {POLICY_VERSION}, but got {short_repr(self.version)}.")
        stages = tuple(self.stages) if isinstance(self.stages, (list, tuple)) else self.stages
        if not isinstance(stages, tuple) or not stages or not all(isinstance(s, Stage) for s in stages):
            raise ValueError(f"stages must be a non-empty sequence of Stage, but got {short_repr(self.stages)}.")
        object.__setattr__(self, "stages", stages)

    @classmethod
    def single_stage(
        cls,
        name: str,
        sub_policies: tuple[SubPolicy, ...] | list[SubPolicy],
        weights: tuple[float, ...] | list[float] | None = None,
        description: str = "",
    ) -> Policy:
        """A one-stage policy (AutoAugment's shape): pick one sub-policy by weight."""
        return cls(name, (Stage(tuple(sub_policies), None if weights is None else tuple(weights)),), description)

    @classmethod
    def identity(cls) -> Policy:
        """The null policy: every sample unchanged."""
        return cls.single_stage("identity", [SubPolicy((OpConfig("Identity", 1.0, 0.0),))])

    def then(self, other: Policy, name: str | None = None) -> Policy:
        """This policy's stages followed by ``other``'s, e.g. crop-flip then AutoAugment."""
        if not isinstance(other, Policy):
            raise TypeError(f"other must be a Policy, but got {type(other).__name__}.")
        return Policy(f"{self.name}+{other.name}" if name is None else name, self.stages + other.stages)

    @property
    def op_names(self) -> tuple[str, ...]:
        """Every distinct op name used, in first-use order."""
        seen: dict[str, None] = {}
        for stage in self.stages:
            for sub in stage.sub_policies:
                for op in sub.ops:
                    seen.setdefault(op.name)
        return tuple(seen)
