"""The versioned JSON format of a :class:`~autodata.augment.policy.Policy`.

Plain JSON, parsed with :mod:`json` into the frozen dataclasses; nothing in a file is ever
executed. Example (``policies/*.json``)::

    {
      "format": "autodata.policy",
      "version": 1,
      "name": "example",
      "description": "",
      "stages": [
        {"weights": [1.0, 1.0],
         "sub_policies": [
           {"ops": [{"name": "Rotate", "probability": 0.7, "magnitude": 0.2222222222222222,
                     "magnitude_sampling": "fixed"},
                    {"name": "TranslateX", "probability": 0.3, "magnitude": 1.0,
                     "magnitude_sampling": "fixed"}]},
           {"ops": [{"name": "Invert", "probability": 0.1, "magnitude": 0.0,
                     "magnitude_sampling": "fixed"}]}]}
      ]
    }

An op may carry ``"sign_probability"``, the probability of its positive sign (a signed op's
direction learned by a search, :class:`~autodata.augment.policy.OpConfig`); it is written only
when it is not the fair coin 0.5, which a file without it (any older file) means.

Errors name the file and the field, e.g.
``policy.json: stages[0].sub_policies[1].ops[0].magnitude must be in [0, 1], but got 1.5.``
Floats are written with :func:`repr` precision, so save then load round-trips exactly.

Reading a file never raises anything but :class:`ValueError` for bad content (or
:class:`OSError` when the file cannot be opened): bytes that are not UTF-8, nesting too
deep for the parser, and number literals longer than :data:`autodata._json.MAX_NUMBER_CHARS` characters
(held as a placeholder that the field's check then refuses, naming the field) are all
reported with the file's name. :func:`save_policy` writes through a temporary file and a
rename (:mod:`autodata._io`), so a failed save leaves the old file as it was.
"""
from __future__ import annotations

import json
import os
from typing import Any

from autodata._io import atomic_write_text
from autodata._json import read_json_text
from autodata.augment.policy import POLICY_VERSION, OpConfig, Policy, Stage, SubPolicy, short_repr

FORMAT = "autodata.policy"


def policy_to_dict(policy: Policy) -> dict[str, Any]:
    """The JSON-ready dictionary of ``policy``."""
    return {
        "format": FORMAT,
        "version": policy.version,
        "name": policy.name,
        "description": policy.description,
        "stages": [
            {
                "weights": list(stage.weights or ()),
                "sub_policies": [
                    {
                        "ops": [
                            {
                                "name": op.name,
                                "probability": op.probability,
                                "magnitude": op.magnitude,
                                "magnitude_sampling": op.magnitude_sampling,
                                **({} if op.sign_probability == 0.5 else {"sign_probability": op.sign_probability}),
                            }
                            for op in sub.ops
                        ]
                    }
                    for sub in stage.sub_policies
                ],
            }
            for stage in policy.stages
        ],
    }


def _object(data: object, where: str, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict:
    if not isinstance(data, dict):
        raise ValueError(f"{where} must be a JSON object, but got {type(data).__name__}.")
    missing = [k for k in required if k not in data]
    if missing:
        raise ValueError(f"{where} must have the field(s) {missing}, but they are missing.")
    unknown = [k for k in data if k not in required + optional]
    if unknown:
        raise ValueError(
            f"{where} must have only the fields {list(required + optional)}, but got {short_repr(unknown)}."
        )
    return data


def _list(data: object, where: str) -> list:
    if not isinstance(data, list):
        raise ValueError(f"{where} must be a JSON array, but got {type(data).__name__}.")
    return data


def _build(cls: type, prefix: str, **kwargs: Any) -> Any:
    """Construct ``cls`` and prefix its validation errors with the field path."""
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{prefix}{err}") from None


def policy_from_dict(data: object, source: str = "policy") -> Policy:
    """Parse and validate a JSON-ready dictionary into a :class:`Policy`.

    Args:
        data: the parsed JSON.
        source: a name for error messages, e.g. the file path.

    Raises:
        ValueError: naming the offending field.
    """
    top = _object(data, source, ("format", "version", "name", "stages"), ("description",))
    if top["format"] != FORMAT:
        raise ValueError(f"{source}: format must be {FORMAT!r}, but got {short_repr(top['format'])}.")
    if isinstance(top["version"], bool) or top["version"] != POLICY_VERSION:
        raise ValueError(f"{source}: version must be {POLICY_VERSION}, but got {short_repr(top['version'])}.")
    stages = []
    for s, stage in enumerate(_list(top["stages"], f"{source}: stages")):
        here = f"{source}: stages[{s}]"
        stage = _object(stage, here, ("sub_policies",), ("weights",))
        subs = []
        for k, sub in enumerate(_list(stage["sub_policies"], f"{here}.sub_policies")):
            sub_here = f"{here}.sub_policies[{k}]"
            sub = _object(sub, sub_here, ("ops",))
            ops = []
            for j, op in enumerate(_list(sub["ops"], f"{sub_here}.ops")):
                op_here = f"{sub_here}.ops[{j}]"
                op = _object(op, op_here, ("name", "probability", "magnitude"),
                             ("magnitude_sampling", "sign_probability"))
                ops.append(_build(OpConfig, f"{op_here}.", **op))
            subs.append(_build(SubPolicy, f"{sub_here}.", ops=tuple(ops)))
        weights = stage.get("weights")
        if weights is not None:
            weights = tuple(_list(weights, f"{here}.weights"))
        stages.append(_build(Stage, f"{here}.", sub_policies=tuple(subs), weights=weights))
    return _build(
        Policy, f"{source}: ", name=top["name"], stages=tuple(stages),
        description=top.get("description", ""), version=top["version"],
    )


def _join(items: list[str], indent: str) -> list[str]:
    return [f"{indent}{item}{',' if i < len(items) - 1 else ''}" for i, item in enumerate(items)]


def policy_to_json(policy: Policy) -> str:
    """The JSON text of ``policy``: one line per sub-policy, newline-terminated."""
    data = policy_to_dict(policy)
    stages = data.pop("stages")
    lines = ["{", *(f"  {json.dumps(k)}: {json.dumps(v)}," for k, v in data.items()), '  "stages": [']
    blocks = []
    for stage in stages:
        subs = [f'{{"ops": [{", ".join(json.dumps(op) for op in sub["ops"])}]}}' for sub in stage["sub_policies"]]
        blocks.append(
            "\n".join(
                ["{", f'      "weights": {json.dumps(stage["weights"])},', '      "sub_policies": [',
                 *_join(subs, "        "), "      ]", "    }"]
            )
        )
    lines += [*_join(blocks, "    "), "  ]", "}"]
    return "\n".join(lines) + "\n"


def policy_from_json(text: str | bytes, source: str = "policy") -> Policy:
    """Parse JSON text into a :class:`Policy`; malformed JSON reports line and column.

    Args:
        text: the JSON, as text or as UTF-8 bytes.
        source: a name for error messages, e.g. the file path.

    Raises:
        ValueError: naming ``source`` (and the field, where one is at fault) for bytes that
            are not UTF-8, malformed or too deeply nested JSON, or an invalid policy.
    """
    data = read_json_text(text, source)  # the one reader of hand-editable JSON (autodata._json)
    return policy_from_dict(data, source)


def save_policy(policy: Policy, path: str | os.PathLike[str]) -> None:
    """Write ``policy`` to ``path`` as JSON, atomically: a failed save keeps the old file."""
    if not isinstance(policy, Policy):
        raise TypeError(f"policy must be a Policy, but got {type(policy).__name__}.")
    atomic_write_text(path, policy_to_json(policy))


def load_policy(path: str | os.PathLike[str]) -> Policy:
    """Read and validate a policy file written by :func:`save_policy` (or by hand).

    Raises:
        OSError: the file cannot be read.
        ValueError: naming the file (and field) for any bad content; see :func:`policy_from_json`.
    """
    from autodata.augment.shipped import resolve_policy_path

    path = resolve_policy_path(path)  # a path, or the name of a shipped policy ("randaugment")
    with open(path, "rb") as f:
        data = f.read()
    return policy_from_json(data, os.fspath(path))
