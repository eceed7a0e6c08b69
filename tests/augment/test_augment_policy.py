"""Policy dataclasses, the JSON format and the shipped policy files."""
from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest
from torchvision.transforms.autoaugment import AutoAugment, AutoAugmentPolicy

from autodata.augment import (
    RANDAUGMENT_OPS,
    OpConfig,
    Policy,
    Stage,
    SubPolicy,
    load_policy,
    policy_from_json,
    policy_to_dict,
    policy_to_json,
    save_policy,
)

POLICIES = Path(__file__).resolve().parents[2] / "policies"


def _example() -> Policy:
    stage = Stage(
        (
            SubPolicy((OpConfig("Rotate", 0.7, 2 / 9), OpConfig("TranslateX", 0.3, 1.0))),
            SubPolicy((OpConfig("Posterize", 0.1, 0.1 + 0.2, "uniform"),)),
        ),
        (0.25, 1 / 3),
    )
    return Policy("example", (stage, Stage((SubPolicy((OpConfig("HFlip", 0.5),)),))), "two stages")


def test_save_load_round_trips_exactly(tmp_path: Path) -> None:
    policy = _example()
    save_policy(policy, tmp_path / "p.json")
    loaded = load_policy(tmp_path / "p.json")
    assert loaded == policy
    assert loaded.stages[0].sub_policies[1].ops[0].magnitude == 0.1 + 0.2  # not 0.3
    assert policy_to_json(loaded) == (tmp_path / "p.json").read_text()


def test_integers_parse_as_floats() -> None:
    data = policy_to_dict(Policy.identity())
    data["stages"][0]["sub_policies"][0]["ops"][0]["probability"] = 1
    assert policy_from_json(json.dumps(data)) == Policy.identity()


def _broken(edit) -> str:
    data = policy_to_dict(_example())
    edit(data)
    return json.dumps(data)


def _op(data: dict) -> dict:
    return data["stages"][0]["sub_policies"][0]["ops"][1]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda d: _op(d).update(name="Rotation"),
            r"stages\[0\]\.sub_policies\[0\]\.ops\[1\]\.name must be one of \[.*'TranslateX'",
        ),
        (lambda d: _op(d).update(magnitude=1.5), r"ops\[1\]\.magnitude must be in \[0, 1\], but got 1\.5"),
        (lambda d: _op(d).update(probability=-0.1), r"ops\[1\]\.probability must be in \[0, 1\]"),
        (lambda d: _op(d).update(probability="0.5"), r"ops\[1\]\.probability must be a number"),
        (lambda d: _op(d).update(probability=True), r"ops\[1\]\.probability must be a number"),
        (lambda d: _op(d).update(magnitude_sampling="gaussian"), r"magnitude_sampling must be one of"),
        (lambda d: _op(d).pop("magnitude"), r"ops\[1\] must have the field\(s\) \['magnitude'\]"),
        (lambda d: _op(d).update(extra=1), r"ops\[1\] must have only the fields"),
        (lambda d: d.update(version=2), r"version must be 1, but got 2"),
        (lambda d: d.update(format="other"), r"format must be 'autodata.policy'"),
        (lambda d: d.pop("stages"), r"must have the field\(s\) \['stages'\]"),
        (lambda d: d.update(stages={}), r"stages must be a JSON array"),
        (lambda d: d.update(stages=[]), r"stages must be a non-empty sequence"),
        (
            lambda d: d["stages"][0].update(weights=[1.0, -1.0]),
            r"stages\[0\]\.weights\[1\] must be a finite number >= 0",
        ),
        (lambda d: d["stages"][0].update(weights=[0.0, 0.0]), r"stages\[0\]\.weights must have a positive sum"),
        (lambda d: d["stages"][0].update(weights=[1.0]), r"stages\[0\]\.weights must be a sequence of 2 numbers"),
        (lambda d: d["stages"][0]["sub_policies"][0].update(ops=[]), r"sub_policies\[0\]\.ops must be a non-empty"),
        (lambda d: d.update(name=3), r"name must be a string"),
    ],
)
def test_invalid_files_name_the_field(tmp_path: Path, edit, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(_broken(edit))
    with pytest.raises(ValueError, match=message) as info:
        load_policy(path)
    assert str(path) in str(info.value)


def test_malformed_json_reports_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{\n  "format": "autodata.policy",\n  "version": 1,,\n}')
    with pytest.raises(ValueError, match="line 3, column 16"):
        load_policy(path)


def test_repeated_fields_are_rejected() -> None:
    text = policy_to_json(Policy.identity()).replace('"version": 1,', '"version": 1,\n  "version": 1,')
    with pytest.raises(ValueError, match=r"must not repeat a field, but got \['version'\]"):
        policy_from_json(text, "p.json")


def test_nan_is_rejected() -> None:
    text = policy_to_json(Policy.identity()).replace('"magnitude": 0.0', '"magnitude": NaN')
    with pytest.raises(ValueError, match=r"ops\[0\]\.magnitude must be in \[0, 1\], but got nan"):
        policy_from_json(text, "p.json")


def test_dataclasses_validate_in_code_too() -> None:
    with pytest.raises(ValueError, match="probability must be in"):
        OpConfig("Rotate", 2.0, 0.5)
    with pytest.raises(ValueError, match="magnitude must be in"):
        replace(OpConfig("Rotate", 0.5, 0.5), magnitude=math.nan)
    with pytest.raises(ValueError, match="version must be 1"):
        Policy("x", Policy.identity().stages, version=2)
    assert Stage((SubPolicy((OpConfig("Invert", 1.0),)),) * 2).probabilities == (0.5, 0.5)


def test_then_concatenates_stages() -> None:
    both = load_policy(POLICIES / "crop_flip.json").then(load_policy(POLICIES / "autoaugment_cifar10.json"))
    assert len(both.stages) == 2 and both.name == "crop_flip+autoaugment_cifar10"


@pytest.mark.parametrize("name", ["autoaugment_cifar10", "randaugment", "trivialaugment", "identity", "crop_flip"])
def test_shipped_policies_load_and_round_trip(name: str) -> None:
    path = POLICIES / f"{name}.json"
    policy = load_policy(path)
    assert policy.name == name
    assert policy_to_json(policy) == path.read_text()


def test_autoaugment_cifar10_matches_torchvision_table() -> None:
    policy = load_policy(POLICIES / "autoaugment_cifar10.json")
    (stage,) = policy.stages
    table = AutoAugment(AutoAugmentPolicy.CIFAR10).policies
    assert len(stage.sub_policies) == len(table) == 25
    assert set(stage.weights) == {1.0}
    for sub, row in zip(stage.sub_policies, table):
        assert [(op.name, op.probability, op.magnitude) for op in sub.ops] == [
            (n, p, 0.0 if b is None else b / 9) for n, p, b in row
        ]


def test_randaugment_and_trivialaugment_are_data() -> None:
    ra = load_policy(POLICIES / "randaugment.json")
    assert len(ra.stages) == 2 and ra.stages[0] == ra.stages[1]
    assert [s.ops[0].name for s in ra.stages[0].sub_policies] == list(RANDAUGMENT_OPS)
    assert {(o.probability, o.magnitude) for s in ra.stages[0].sub_policies for o in s.ops} == {(1.0, 0.3)}
    ta = load_policy(POLICIES / "trivialaugment.json")
    assert {o.magnitude_sampling for s in ta.stages[0].sub_policies for o in s.ops} == {"uniform"}
