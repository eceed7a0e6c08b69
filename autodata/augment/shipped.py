"""The policies and schedules shipped with autodata, by name, and policies from short strings.

The repository's ``policies/*.json`` are the source (AutoAugment, RandAugment,
TrivialAugment, DADA, crop-flip, identity, PBA's two published schedules). A shipped file is
found by its name without ``.json``, first in the source checkout (``<repo>/policies``, an
editable install), then where a wheel installs it (``<prefix>/share/autodata/policies``, the
``[tool.setuptools.data-files]`` entry).

Short strings in the style of timm's ``rand_augment_transform`` build policies directly:

* ``rand-m9-n2``: RandAugment (Cubuk et al. 2020) as timm configures it: ``n`` layers, each
  picking one of timm's ops uniformly and applying it with probability ``p`` (timm's default
  0.5) at magnitude ``m`` of 10 (``m / 10`` on autodata's normalised scale). Sections:
  ``m`` (0-10), ``n`` (>= 1), ``p`` (0-1), ``mstd`` (0: fixed magnitude; > 100 or ``inf``:
  magnitude uniform in ``[0, m]``, timm's uniform sampling) and ``inc`` (0 or 1: autodata's
  Posterize and Solarize always grow stronger with the magnitude, timm's ``inc1`` variants).
  timm's ``SolarizeAdd`` has no autodata op and is left out (14 ops).
* ``trivial``: TrivialAugment, the shipped ``trivialaugment`` policy.

Example:
    >>> "randaugment" in shipped_names()
    True
    >>> shipped_policy_path("randaugment").name
    'randaugment.json'
    >>> p = policy_from_string("rand-m9-n2")
    >>> op = p.stages[0].sub_policies[0].ops[0]
    >>> len(p.stages), op.name, op.probability, op.magnitude
    (2, 'AutoContrast', 0.5, 0.9)
"""
from __future__ import annotations

import json
import math
import os
import re
import sys
import sysconfig
from pathlib import Path

from autodata.augment.policy import OpConfig, Policy, Stage, SubPolicy, short_repr

__all__ = [
    "TIMM_RAND_OPS",
    "policy_from_string",
    "resolve_policy_path",
    "shipped_dirs",
    "shipped_kind",
    "shipped_names",
    "shipped_policy_path",
]

TIMM_RAND_OPS: tuple[str, ...] = (
    "AutoContrast", "Equalize", "Invert", "Rotate", "Posterize", "Solarize", "Color", "Contrast",
    "Brightness", "Sharpness", "ShearX", "ShearY", "TranslateX", "TranslateY",
)
"""timm's ``_RAND_TRANSFORMS`` in its order, less ``SolarizeAdd`` (TranslateXRel is TranslateX)."""

_SHARE = ("share", "autodata", "policies")


def shipped_dirs() -> list[Path]:
    """The folders searched for shipped files, in order (only those that exist)."""
    candidates = [Path(__file__).resolve().parents[2] / "policies"]  # the source checkout
    prefixes = [sysconfig.get_paths().get("data", sys.prefix), sys.prefix]
    try:
        prefixes.append(sysconfig.get_paths(f"{os.name}_user")["data"])  # pip install --user
    except KeyError:
        pass
    candidates += [Path(prefix).joinpath(*_SHARE) for prefix in prefixes]
    found: list[Path] = []
    for folder in candidates:
        if folder.is_dir() and any(folder.glob("*.json")) and folder not in found:
            found.append(folder)
    return found


def _shipped_files() -> dict[str, Path]:
    files: dict[str, Path] = {}
    for folder in shipped_dirs():
        for path in sorted(folder.glob("*.json")):
            files.setdefault(path.stem, path)
    return files


def shipped_names() -> tuple[str, ...]:
    """The names of the shipped policies and schedules, sorted (``()`` when none are found)."""
    return tuple(sorted(_shipped_files()))


def shipped_policy_path(name: str) -> Path:
    """The file of the shipped policy or schedule called ``name`` (without ``.json``).

    Raises:
        ValueError: ``name`` is not shipped; the message lists the names that are.
    """
    files = _shipped_files()
    if not isinstance(name, str) or name not in files:
        where = ", ".join(str(d) for d in shipped_dirs()) or "no policies folder was found"
        raise ValueError(
            f"a shipped policy name must be one of {sorted(files)} (from {where}), but got {short_repr(name)}; "
            f"give a path to a .json file for your own policy."
        )
    return files[name]


def shipped_kind(path: str | os.PathLike[str]) -> str:
    """The ``"format"`` field of a JSON policy or schedule file (``"autodata.policy"``, ...)."""
    with open(path, "rb") as f:
        try:
            data = json.loads(f.read().decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as err:
            raise ValueError(f"{os.fspath(path)} must be a JSON policy or schedule file, but it cannot be "
                             f"parsed ({err}).") from None
    kind = data.get("format") if isinstance(data, dict) else None
    if not isinstance(kind, str):
        raise ValueError(f"{os.fspath(path)} must be a JSON object with a \"format\" field, but it has none.")
    return kind


def resolve_policy_path(spec: str | os.PathLike[str]) -> Path:
    """A path as given when that file exists, else the shipped file of that name.

    This is the lookup :func:`autodata.augment.load_policy` uses so that
    ``load_policy("randaugment")`` and ``load_policy("policies/randaugment.json")`` both work.

    Raises:
        FileNotFoundError: ``spec`` is neither an existing file nor a shipped name.
    """
    path = Path(spec)
    if path.is_file():
        return path
    text = os.fspath(spec)
    if path.suffix != ".json" and os.sep not in text and "/" not in text and text in _shipped_files():
        return _shipped_files()[text]
    raise FileNotFoundError(
        f"policy must be an existing .json file or a shipped name {list(shipped_names())}, but got {text!r}."
    )


# ---------------------------------------------------------------------------------- strings
_SECTION = re.compile(r"^([a-z]+)([0-9.]+|inf)$")


def _rand_policy(spec: str) -> Policy:
    parts = spec.split("-")
    m, n, p, uniform = 10.0, 2, 0.5, False
    seen: set[str] = set()
    for part in parts[1:]:
        match = _SECTION.match(part)
        if match is None:
            raise ValueError(f"each section of {spec!r} must be a key and a number such as 'm9' or 'n2', "
                             f"but got {part!r}.")
        key, raw = match.groups()
        if key in seen:
            raise ValueError(f"section {key!r} of {spec!r} must appear once, but it appears twice.")
        seen.add(key)
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(f"section {key!r} of {spec!r} must hold a number, but got {raw!r}.") from None
        if key == "m":
            if not 0.0 <= value <= 10.0:
                raise ValueError(f"the magnitude m of {spec!r} must be in [0, 10], but got {raw}.")
            m = value
        elif key == "n":
            if not (value.is_integer() and value >= 1):
                raise ValueError(f"the number of ops n of {spec!r} must be an int >= 1, but got {raw}.")
            n = int(value)
        elif key == "p":
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"the probability p of {spec!r} must be in [0, 1], but got {raw}.")
            p = value
        elif key == "mstd":
            if value == 0.0:
                uniform = False
            elif value > 100.0 or math.isinf(value):
                uniform = True
            else:
                raise ValueError(
                    f"mstd of {spec!r} must be 0 (fixed magnitude) or > 100 (uniform in [0, m]), but got {raw}: "
                    f"autodata policies have no Gaussian magnitude noise."
                )
        elif key == "inc":
            if value not in (0.0, 1.0):
                raise ValueError(f"inc of {spec!r} must be 0 or 1, but got {raw}.")
        else:
            raise ValueError(
                f"a section of {spec!r} must be one of m, n, p, mstd, inc, but got {part!r}."
            )
    sampling = "uniform" if uniform else "fixed"
    subs = tuple(SubPolicy((OpConfig(op, p, m / 10.0, sampling),)) for op in TIMM_RAND_OPS)
    description = (
        f"RandAugment from timm's string {spec!r}: {n} layer(s), each picking one of {len(TIMM_RAND_OPS)} ops "
        f"uniformly and applying it with probability {p:g} at magnitude {m:g}/10"
        + (" (uniform in [0, m] per image)" if uniform else "")
        + "; autodata's op ranges (AutoAugment's); timm's SolarizeAdd is left out."
    )
    return Policy(spec, tuple(Stage(subs) for _ in range(n)), description)


def policy_from_string(spec: str) -> Policy:
    """A policy from a timm-style string ``rand-m9-n2`` (see the module docstring) or ``trivial``.

    Raises:
        ValueError: naming the section at fault, e.g. ``rand-m12``.
    """
    if not isinstance(spec, str):
        raise ValueError(f"spec must be a string such as 'rand-m9-n2' or 'trivial', but got {short_repr(spec)}.")
    text = spec.strip().lower()
    if text == "trivial":
        from autodata.augment.policy_io import load_policy

        return load_policy(shipped_policy_path("trivialaugment"))
    if text == "rand" or text.startswith("rand-"):
        return _rand_policy(text)
    raise ValueError(f"spec must be 'rand-m<M>-n<N>[-p<P>][-mstd<S>]' or 'trivial', but got {spec!r}.")
