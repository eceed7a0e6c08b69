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

Errors name the file and the field, e.g.
``policy.json: stages[0].sub_policies[1].ops[0].magnitude must be in [0, 1], but got 1.5.``
Floats are written with :func:`repr` precision, so save then load round-trips exactly.
"""
from __future__ import annotations

import json
import os
from typing import Any

from autodata.augment.policy import POLICY_VERSION, OpConfig, Policy, Stage, SubPolicy

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
    unknown = sorted(set(data) - set(required) - set(optional))
    if unknown:
        raise ValueError(f"{where} must have only the fields {list(required + optional)}, but got {unknown}.")
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
        raise ValueError(f"{source}: format must be {FORMAT!r}, but got {top['format']!r}.")
    if isinstance(top["version"], bool) or top["version"] != POLICY_VERSION:
        raise ValueError(f"{source}: version must be {POLICY_VERSION}, but got {top['version']!r}.")
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
                op = _object(op, op_here, ("name", "probability", "magnitude"), ("magnitude_sampling",))
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


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    repeated = sorted({k for k in keys if keys.count(k) > 1})
    if repeated:
        raise ValueError(f"must not repeat a field, but got {repeated} more than once in one object.")
    return dict(pairs)


def policy_from_json(text: str, source: str = "policy") -> Policy:
    """Parse JSON text into a :class:`Policy`; malformed JSON reports line and column."""
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicates)
    except ValueError as err:
        if not isinstance(err, json.JSONDecodeError):
            raise ValueError(f"{source} {err}") from None
        raise ValueError(
            f"{source} must be valid JSON, but got an error at line {err.lineno}, column {err.colno}: {err.msg}."
        ) from None
    return policy_from_dict(data, source)


def save_policy(policy: Policy, path: str | os.PathLike[str]) -> None:
    """Write ``policy`` to ``path`` as JSON."""
    if not isinstance(policy, Policy):
        raise TypeError(f"policy must be a Policy, but got {type(policy).__name__}.")
    with open(path, "w", encoding="utf-8") as f:
        f.write(policy_to_json(policy))


def load_policy(path: str | os.PathLike[str]) -> Policy:
    """Read and validate a policy file written by :func:`save_policy` (or by hand)."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    return policy_from_json(text, os.fspath(path))
