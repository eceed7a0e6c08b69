"""Seeded, recorded label corruption: symmetric, pair-flip and arbitrary transition noise.

Each kind is a row-stochastic transition matrix ``T`` with ``T[i, j] = P(noisy=j | clean=i)``;
every label is redrawn from its row with a numpy Generator seeded from an int, and the
result records what was asked and what was realised.

References:
    Shu et al., "Meta-Weight-Net: Learning an Explicit Mapping for Sample Weighting",
    NeurIPS 2019 (uniform and flip noise on CIFAR).
    Han et al., "Co-teaching", NeurIPS 2018 (pair-flip noise ``c -> c + 1 mod K``).
    Patrini et al., "Making Deep Neural Networks Robust to Label Noise: a Loss
    Correction Approach", CVPR 2017 (transition matrices).
"""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np
import torch

from autodata.data._io import write_json
from autodata.data.splits import labels_and_classes

__all__ = ["NOISE_KINDS", "NoisyLabels", "corrupt_labels", "noise_transition_matrix"]


def _symmetric(rate: float, k: int, keep_true: bool) -> np.ndarray:
    if keep_true:  # the new label is uniform over all K classes
        return (1.0 - rate) * np.eye(k) + rate / k * np.ones((k, k))
    if k < 2:
        raise ValueError(f"num_classes must be >= 2 for symmetric noise with keep_true=False, but got {k}.")
    return (1.0 - rate) * np.eye(k) + rate / (k - 1) * (np.ones((k, k)) - np.eye(k))


def _pairflip(rate: float, k: int, keep_true: bool) -> np.ndarray:
    return (1.0 - rate) * np.eye(k) + rate * np.roll(np.eye(k), 1, axis=1)  # c -> (c + 1) mod K


# Named kinds -> builder(rate, K, keep_true) of the transition matrix.
_KIND_TABLE: MappingProxyType[str, Callable[[float, int, bool], np.ndarray]] = MappingProxyType(
    {"symmetric": _symmetric, "pairflip": _pairflip}
)
NOISE_KINDS: tuple[str, ...] = (*_KIND_TABLE, "transition")


def _check_rate(rate: float) -> float:
    if not (0.0 <= float(rate) <= 1.0):
        raise ValueError(f"rate must be in [0, 1], but got {rate}.")
    return float(rate)


def _check_transition(matrix: Any, k: int) -> np.ndarray:
    t = np.asarray(matrix, dtype=np.float64)
    if t.shape != (k, k):
        raise ValueError(f"transition must have shape ({k}, {k}), but got {t.shape}.")
    if not np.all(np.isfinite(t)) or (t < 0).any():
        raise ValueError(f"transition must be finite and non-negative, but got min {t.min()}.")
    sums = t.sum(axis=1)
    if not np.allclose(sums, 1.0, atol=1e-6):
        bad = int(np.argmax(np.abs(sums - 1.0)))
        raise ValueError(f"transition rows must sum to 1, but row {bad} sums to {sums[bad]:.6g}.")
    return t / sums[:, None]


def noise_transition_matrix(
    kind: str, rate: float, num_classes: int, keep_true: bool = False
) -> np.ndarray:
    """Returns the K x K transition matrix of a named noise kind.

    Args:
        kind: ``"symmetric"`` or ``"pairflip"``.
        rate: Probability of redrawing (symmetric) or flipping (pairflip) a label.
        num_classes: K.
        keep_true: For symmetric noise, draw the new label among all K classes (so some
            stay true) instead of among the K - 1 others.

    Example:
        >>> noise_transition_matrix("pairflip", 0.2, 3).round(2).tolist()
        [[0.8, 0.2, 0.0], [0.0, 0.8, 0.2], [0.2, 0.0, 0.8]]
    """
    if kind not in _KIND_TABLE:
        raise ValueError(f"kind must be one of {sorted(_KIND_TABLE)} here, but got {kind!r}.")
    return _KIND_TABLE[kind](_check_rate(rate), int(num_classes), keep_true)


@dataclass(frozen=True, eq=False)
class NoisyLabels:
    """Corrupted labels and the record of how they were made.

    Attributes:
        labels: Noisy labels, int64 (N,).
        clean_labels: The labels before corruption, int64 (N,).
        flipped: Indices whose label changed, int64 (M,), sorted.
        noise_rate: Realised fraction of changed labels, ``M / N``.
        kind: ``"symmetric"``, ``"pairflip"`` or ``"transition"``.
        requested_rate: The rate asked for (for ``"transition"``: the expected fraction
            changed, ``mean(1 - T[y, y])``).
        seed: The int seed of the numpy Generator.
        transition: The K x K row-stochastic matrix used.
        keep_true: Whether symmetric noise drew among all K classes.
    """

    labels: np.ndarray
    clean_labels: np.ndarray
    flipped: np.ndarray
    noise_rate: float
    kind: str
    requested_rate: float
    seed: int
    transition: np.ndarray
    keep_true: bool = False

    @property
    def num_classes(self) -> int:
        """K."""
        return int(self.transition.shape[0])

    @property
    def is_noisy(self) -> np.ndarray:
        """Boolean mask (N,) of changed labels."""
        return self.labels != self.clean_labels

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable record (labels and matrix as lists)."""
        return {
            "kind": self.kind,
            "requested_rate": self.requested_rate,
            "noise_rate": self.noise_rate,
            "seed": self.seed,
            "keep_true": self.keep_true,
            "num_classes": self.num_classes,
            "transition": self.transition.tolist(),
            "labels": self.labels.tolist(),
            "clean_labels": self.clean_labels.tolist(),
            "flipped": self.flipped.tolist(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NoisyLabels:
        """Rebuilds the record written by :meth:`to_dict`."""
        return cls(
            labels=np.asarray(d["labels"], np.int64),
            clean_labels=np.asarray(d["clean_labels"], np.int64),
            flipped=np.asarray(d["flipped"], np.int64),
            noise_rate=float(d["noise_rate"]),
            kind=str(d["kind"]),
            requested_rate=float(d["requested_rate"]),
            seed=int(d["seed"]),
            transition=np.asarray(d["transition"], np.float64),
            keep_true=bool(d["keep_true"]),
        )

    def save(self, path: str | os.PathLike[str]) -> None:
        """Writes :meth:`to_dict` as JSON."""
        write_json(path, self.to_dict())


def corrupt_labels(
    labels: Sequence[int] | np.ndarray | torch.Tensor,
    num_classes: int,
    kind: str = "symmetric",
    rate: float = 0.0,
    *,
    seed: int = 0,
    keep_true: bool = False,
    transition: np.ndarray | Sequence[Sequence[float]] | None = None,
) -> NoisyLabels:
    """Corrupts labels with seeded, recorded noise.

    Args:
        labels: Clean integer labels (N,) in ``[0, num_classes)``.
        num_classes: K.
        kind: ``"symmetric"`` (redraw uniformly), ``"pairflip"`` (``c -> (c + 1) mod K``
            with probability ``rate``) or ``"transition"`` (redraw from row ``y`` of
            ``transition``).
        rate: Corruption probability in [0, 1] (ignored for ``"transition"``).
        seed: Seed of the numpy Generator; same seed, same labels.
        keep_true: Symmetric noise only: draw among all K classes, so about ``rate / K``
            of the labels are redrawn to their true class (the realised rate is reported).
        transition: Row-stochastic K x K matrix, required for ``kind="transition"`` and
            refused with any other kind (it would be ignored).

    Returns:
        A :class:`NoisyLabels` record.

    Raises:
        ValueError: Rate outside [0, 1], unknown kind, labels out of range, a bad matrix, or a
            matrix given with a kind other than ``"transition"``.

    Shape:
        - labels: (N,); result labels (N,) int64.

    Example:
        >>> noisy = corrupt_labels([0, 1, 2, 3] * 250, 4, "pairflip", 0.4, seed=0)
        >>> round(noisy.noise_rate, 1)
        0.4
        >>> bool(((noisy.clean_labels + 1) % 4 == noisy.labels)[noisy.flipped].all())
        True
    """
    clean, k = labels_and_classes(labels, num_classes)
    if kind not in NOISE_KINDS:
        raise ValueError(f"kind must be one of {list(NOISE_KINDS)}, but got {kind!r}.")
    if kind == "transition":
        if transition is None:
            raise ValueError("transition must be a K x K matrix for kind='transition', but got None.")
        t = _check_transition(transition, k)
        requested = float(np.mean(1.0 - t[clean, clean])) if clean.size else 0.0
    else:
        if transition is not None:
            raise ValueError(
                f"transition is only used with kind='transition', but got a matrix with kind={kind!r}; "
                f"pass kind='transition' to use it, or drop it."
            )
        requested = _check_rate(rate)
        t = _KIND_TABLE[kind](requested, k, keep_true)

    rng = np.random.default_rng(int(seed))
    u = rng.random(clean.shape[0])  # (N,) one uniform per sample
    cdf = np.cumsum(t, axis=1)  # (K, K)
    cdf[:, -1] = 1.0
    noisy = (u[:, None] >= cdf[clean]).sum(axis=1).astype(np.int64)  # inverse-CDF draw, (N,)
    noisy = np.minimum(noisy, k - 1)
    flipped = np.flatnonzero(noisy != clean).astype(np.int64)
    realised = float(flipped.size / clean.size) if clean.size else 0.0
    return NoisyLabels(
        labels=noisy,
        clean_labels=clean,
        flipped=flipped,
        noise_rate=realised,
        kind=kind,
        requested_rate=requested,
        seed=int(seed),
        transition=t,
        keep_true=bool(keep_true) if kind == "symmetric" else False,
    )
