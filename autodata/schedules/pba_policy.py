"""PBA's policy as typed data: 30 (op, probability level, magnitude level) entries.

Population Based Augmentation (Ho et al., ICML 2019, Sec. 4.1) searches over 15 ops, each
present twice, so that an op can be applied twice to one image. PBA stores a policy as 60
integers (``hp_policy``): two halves of 30; in each half, op ``i`` of :data:`PBA_OPS` has
probability level ``emb[2i]`` in ``0..10`` (probability ``level / 10``) and magnitude level
``emb[2i + 1]`` in ``0..9`` (PBA's ``data_utils.parse_policy``). :class:`PBAPolicy` keeps
those 60 integers as the truth and names each entry by its op, never by list position
alone, when it is shown or saved.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

PBA_OPS: tuple[str, ...] = (
    "Rotate", "TranslateX", "TranslateY", "Brightness", "Color", "Invert", "Sharpness", "Posterize",
    "ShearX", "Solarize", "ShearY", "Equalize", "AutoContrast", "Cutout", "Contrast",
)
"""PBA's 15 ops in its own order (``augmentation_transforms_hp.HP_TRANSFORMS``)."""

NUM_ENTRIES = 2 * len(PBA_OPS)  # 30: every op twice
NUM_LEVELS = 2 * NUM_ENTRIES  # 60 integers
MAX_PROBABILITY_LEVEL = 10
MAX_MAGNITUDE_LEVEL = 9
FORMAT = "autodata.pba_policy"
VERSION = 1


def level_bounds(index: int) -> int:
    """The largest level allowed at position ``index`` of the 60 integers (10 even, 9 odd)."""
    return MAX_PROBABILITY_LEVEL if index % 2 == 0 else MAX_MAGNITUDE_LEVEL


def _check_level(value: object, high: int, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= high:
        raise ValueError(f"{where} must be an int in [0, {high}], but got {value!r}.")
    return value


@dataclass(frozen=True)
class PBAPolicy:
    """One PBA policy: 60 integer levels in PBA's layout.

    Args:
        levels: 60 ints; ``levels[30 * h + 2 * i]`` is the probability level (0-10) and
            ``levels[30 * h + 2 * i + 1]`` the magnitude level (0-9) of op ``PBA_OPS[i]`` in
            half ``h``.

    Example:
        >>> p = PBAPolicy.zeros()
        >>> p = PBAPolicy(p.levels[:2] + (7, 3) + p.levels[4:])
        >>> p.entries[1]
        ('TranslateX', 7, 3)
    """

    levels: tuple[int, ...]

    def __post_init__(self) -> None:
        levels = self.levels
        if not isinstance(levels, (list, tuple)) or len(levels) != NUM_LEVELS:
            got = len(levels) if isinstance(levels, (list, tuple)) else type(levels).__name__
            raise ValueError(f"levels must be a sequence of {NUM_LEVELS} ints, but got {got!r}.")
        for i, v in enumerate(levels):
            _check_level(v, level_bounds(i), f"levels[{i}] ({self._describe(i)})")
        object.__setattr__(self, "levels", tuple(int(v) for v in levels))

    @staticmethod
    def _describe(index: int) -> str:
        entry = index // 2
        kind = "probability" if index % 2 == 0 else "magnitude"
        return f"half {entry // len(PBA_OPS)}, {PBA_OPS[entry % len(PBA_OPS)]} {kind} level"

    @classmethod
    def zeros(cls) -> PBAPolicy:
        """The policy PBA starts every search from: every level 0 (nothing is applied)."""
        return cls((0,) * NUM_LEVELS)

    @property
    def entries(self) -> tuple[tuple[str, int, int], ...]:
        """The 30 ``(op, probability_level, magnitude_level)`` entries, PBA's order."""
        return tuple(
            (PBA_OPS[e % len(PBA_OPS)], self.levels[2 * e], self.levels[2 * e + 1]) for e in range(NUM_ENTRIES)
        )

    @property
    def probability_levels(self) -> tuple[int, ...]:
        """The 30 probability levels (0-10)."""
        return self.levels[0::2]

    @property
    def magnitude_levels(self) -> tuple[int, ...]:
        """The 30 magnitude levels (0-9)."""
        return self.levels[1::2]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: two halves of 15 ``{"op", "probability_level", "magnitude_level"}``."""
        n = len(PBA_OPS)
        halves = [
            [{"op": op, "probability_level": p, "magnitude_level": m} for op, p, m in self.entries[h * n:(h + 1) * n]]
            for h in range(2)
        ]
        return {"format": FORMAT, "version": VERSION, "halves": halves}

    @classmethod
    def from_dict(cls, data: object, where: str = "policy") -> PBAPolicy:
        """Parse :meth:`to_dict`'s output; errors name the field, e.g. ``policy.halves[1][4].op``."""
        if not isinstance(data, dict):
            raise ValueError(f"{where} must be a JSON object, but got {type(data).__name__}.")
        expected = {"format", "version", "halves"}
        if set(data) != expected:
            raise ValueError(f"{where} must have exactly the fields {sorted(expected)}, but got {sorted(data)}.")
        if data["format"] != FORMAT:
            raise ValueError(f"{where}.format must be {FORMAT!r}, but got {data['format']!r}.")
        if isinstance(data["version"], bool) or data["version"] != VERSION:
            raise ValueError(f"{where}.version must be {VERSION}, but got {data['version']!r}.")
        halves = data["halves"]
        if not isinstance(halves, list) or len(halves) != 2:
            raise ValueError(f"{where}.halves must be a JSON array of 2 halves, but got {halves!r:.80}.")
        levels: list[int] = []
        for h, half in enumerate(halves):
            if not isinstance(half, list) or len(half) != len(PBA_OPS):
                raise ValueError(
                    f"{where}.halves[{h}] must be a JSON array of {len(PBA_OPS)} entries, but got {half!r:.80}."
                )
            for i, entry in enumerate(half):
                here = f"{where}.halves[{h}][{i}]"
                keys = {"op", "probability_level", "magnitude_level"}
                if not isinstance(entry, dict) or set(entry) != keys:
                    raise ValueError(f"{here} must be an object with the fields {sorted(keys)}, but got {entry!r}.")
                if entry["op"] not in PBA_OPS:
                    raise ValueError(f"{here}.op must be one of {list(PBA_OPS)}, but got {entry['op']!r}.")
                if entry["op"] != PBA_OPS[i]:
                    raise ValueError(
                        f"{here}.op must be {PBA_OPS[i]!r} (PBA's op order), but got {entry['op']!r}."
                    )
                levels.append(_check_level(entry["probability_level"], MAX_PROBABILITY_LEVEL,
                                           f"{here}.probability_level"))
                levels.append(_check_level(entry["magnitude_level"], MAX_MAGNITUDE_LEVEL, f"{here}.magnitude_level"))
        return cls(tuple(levels))

    def __repr__(self) -> str:
        applied = [f"{op}(p={p / 10:.1f}, m={m})" for op, p, m in self.entries if p > 0]
        return f"PBAPolicy([{', '.join(applied)}])"
