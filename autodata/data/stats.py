"""Per-dataset normalisation constants (per-channel mean and std of pixels in [0, 1])."""
from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

__all__ = ["Normalization", "DATASET_STATS", "dataset_stats"]


@dataclass(frozen=True)
class Normalization:
    """Per-channel mean and standard deviation of a dataset's training pixels in [0, 1].

    Example:
        >>> dataset_stats("cifar10").mean
        (0.4914, 0.4822, 0.4465)
    """

    mean: tuple[float, ...]
    std: tuple[float, ...]


DATASET_STATS: MappingProxyType[str, Normalization] = MappingProxyType(
    {
        "cifar10": Normalization((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
        "cifar100": Normalization((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
        "mnist": Normalization((0.1307,), (0.3081,)),
        "fashion_mnist": Normalization((0.2860,), (0.3530,)),
        "digits": Normalization((0.3053,), (0.3759,)),
    }
)


def dataset_stats(name: str) -> Normalization:
    """Returns the normalisation constants of a named dataset.

    Args:
        name: One of ``DATASET_STATS``'s keys.

    Raises:
        ValueError: For an unknown name (the message lists the known ones).

    Example:
        >>> dataset_stats("mnist").std
        (0.3081,)
    """
    if name not in DATASET_STATS:
        raise ValueError(f"name must be one of {sorted(DATASET_STATS)}, but got {name!r}.")
    return DATASET_STATS[name]
