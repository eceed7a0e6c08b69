"""Hostile or broken policy files: every one is a ValueError naming the file, nothing is lost."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autodata.augment import (
    OPS,
    OpConfig,
    Policy,
    PolicyAugment,
    Stage,
    SubPolicy,
    load_policy,
    policy_from_json,
    policy_to_dict,
    policy_to_json,
    save_policy,
)
from autodata.augment import policy_io
from autodata.augment.policy_io import policy_from_dict


def _identity_text(**replace: str) -> str:
    text = json.dumps(policy_to_dict(Policy.identity()))
    for old, new in replace.items():
        assert old in text
        text = text.replace(old, new)
    return text


# --- parsing ---------------------------------------------------------------------------------


def test_deep_nesting_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000)
    with pytest.raises(ValueError, match="at most 64 deep") as info:
        load_policy(path)
    assert str(path) in str(info.value)
    with pytest.raises(ValueError, match=r"^p\.json must nest JSON arrays and objects at most 64 deep"):
        policy_from_json('{"a": ' * 50_000, "p.json")


def test_non_utf8_bytes_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "latin1.json"
    path.write_bytes(_identity_text().replace('"identity"', '"caf\u00e9"').encode("latin-1"))
    with pytest.raises(ValueError, match=r"must be UTF-8 encoded JSON, but byte 0xe9 at offset \d+") as info:
        load_policy(path)
    assert str(path) in str(info.value)


def test_integer_too_large_for_a_float_names_the_field() -> None:
    text = _identity_text(**{'"probability": 1.0': '"probability": 1' + "0" * 400})
    with pytest.raises(ValueError, match=r"^p\.json: stages\[0\]\.sub_policies\[0\]\.ops\[0\]\.probability must be"):
        policy_from_json(text, "p.json")
    # the same number given in code is a ValueError too, not an OverflowError
    with pytest.raises(ValueError, match="probability must be in"):
        OpConfig("Rotate", 10**400)
    with pytest.raises(ValueError, match=r"weights\[0\] must be a finite number"):
        Stage((SubPolicy((OpConfig("Rotate", 1.0),)),), (10**400,))


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ('"probability": 1.0', '"probability": ' + "1" * 5000, r"stages\[0\]\.sub_policies\[0\]\.ops\[0\]\.probability"),
        ('"magnitude": 0.0', '"magnitude": 0.' + "0" * 5000, r"stages\[0\]\.sub_policies\[0\]\.ops\[0\]\.magnitude"),
        ('"weights": [1.0]', '"weights": [' + "9" * 5000 + "]", r"stages\[0\]\.weights\[0\]"),
        ('"version": 1', '"version": ' + "1" * 5000, "version"),
    ],
)
def test_five_thousand_digit_numbers_name_the_field(old: str, new: str, field: str) -> None:
    with pytest.raises(ValueError, match=rf"^p\.json: {field} must .*a number literal of 50\d\d characters") as info:
        policy_from_json(_identity_text(**{old: new}), "p.json")
    assert "set_int_max_str_digits" not in str(info.value)


def test_huge_equal_weights_draw_both_sub_policies() -> None:
    subs = (SubPolicy((OpConfig("Identity", 1.0),)), SubPolicy((OpConfig("Invert", 1.0),)))
    stage = Stage(subs, (1e308, 1e308))
    assert stage.probabilities == (0.5, 0.5)  # a plain sum would overflow to inf
    assert Stage(subs, (1.7e308, 5e-324)).probabilities == (1.0, 5e-324 / 1.7e308)
    params = PolicyAugment(Policy("huge", (stage,)), seed=0).sample(400, torch.Generator().manual_seed(0))
    counts = torch.bincount(params.choice[0], minlength=2).tolist()
    assert min(counts) > 100, counts


def test_error_messages_stay_short() -> None:
    text = _identity_text(**{'"name": "Identity"': '"name": "' + "x" * 100_000 + '"'})
    with pytest.raises(ValueError, match=r"name must be one of") as info:
        policy_from_json(text, "p.json")
    assert len(str(info.value)) < 2000
    nested = "[" * 50 + "]" * 50
    with pytest.raises(ValueError, match=r"ops\[0\]\.name must be one of") as info:
        policy_from_json(_identity_text(**{'"Identity"': nested}), "p.json")
    assert len(str(info.value)) < 2000


# --- saving ----------------------------------------------------------------------------------


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_failed_save_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "policy.json"
    save_policy(Policy.identity(), path)
    before = path.read_bytes()
    other = Policy.single_stage("other", [SubPolicy((OpConfig("Rotate", 0.5, 0.5),))])

    def fail_midway(fd: int) -> None:  # the new bytes are written, then the disk "fails"
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", fail_midway)
    with pytest.raises(OSError, match="disk full"):
        save_policy(other, path)
    monkeypatch.undo()
    assert path.read_bytes() == before and _leftovers(tmp_path) == ["policy.json"]

    def fail_serialising(policy: Policy) -> str:
        raise RuntimeError("serialiser broke")

    monkeypatch.setattr(policy_io, "policy_to_json", fail_serialising)
    with pytest.raises(RuntimeError, match="serialiser broke"):
        save_policy(other, path)
    monkeypatch.undo()
    assert path.read_bytes() == before and _leftovers(tmp_path) == ["policy.json"]
    save_policy(other, path)
    assert load_policy(path) == other and _leftovers(tmp_path) == ["policy.json"]


# --- property-based fuzzing ------------------------------------------------------------------

_FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
_unit = st.floats(0.0, 1.0)
_ops = st.sampled_from(sorted(OPS)).flatmap(lambda name: st.builds(
    OpConfig, st.just(name), _unit, _unit, st.sampled_from(["fixed", "uniform"]),
    _unit if OPS[name].signed else st.just(0.5)))  # sign_probability: only a signed op takes any
_subs = st.builds(SubPolicy, st.lists(_ops, min_size=1, max_size=3).map(tuple))


@st.composite
def _stages(draw: st.DrawFn) -> Stage:
    subs = tuple(draw(st.lists(_subs, min_size=1, max_size=3)))
    weights = draw(
        st.lists(st.floats(0.0, 1.7e308), min_size=len(subs), max_size=len(subs)).filter(lambda w: max(w) > 0)
    )
    return Stage(subs, tuple(weights))


_policies = st.builds(Policy, st.text(max_size=12), st.lists(_stages(), min_size=1, max_size=2).map(tuple), st.text(max_size=12))
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@st.composite
def _policy_shaped(draw: st.DrawFn) -> object:
    """A valid policy dict with a few of its values (at any depth) swapped for arbitrary JSON."""
    data = policy_to_dict(draw(_policies))
    for _ in range(draw(st.integers(1, 3))):
        parent, key, node = None, None, data
        while isinstance(node, (dict, list)) and node and (parent is None or draw(st.booleans())):
            key = draw(st.sampled_from(sorted(node) if isinstance(node, dict) else range(len(node))))
            parent, node = node, node[key]
        parent[key] = draw(_json_values)
    return data


def _valid_or_value_error(parse, *args) -> None:
    try:
        result = parse(*args)
    except ValueError:
        return
    assert isinstance(result, Policy)
    assert policy_from_json(policy_to_json(result)) == result


@_FUZZ
@given(_policies)
def test_fuzz_valid_policies_round_trip_exactly(policy: Policy) -> None:
    text = policy_to_json(policy)
    assert policy_from_json(text) == policy
    assert policy_from_json(text.encode("utf-8")) == policy
    assert policy_to_json(policy_from_json(text)) == text


@_FUZZ
@given(_json_values | _policy_shaped())
def test_fuzz_json_values_give_a_policy_or_value_error(data: object) -> None:
    _valid_or_value_error(policy_from_dict, data, "p.json")
    _valid_or_value_error(policy_from_json, json.dumps(data), "p.json")


@_FUZZ
@given(st.text() | st.binary() | _policies.map(policy_to_json).flatmap(
    lambda text: st.integers(0, len(text)).map(lambda cut: text[:cut])  # truncated files
))
def test_fuzz_text_and_bytes_give_a_policy_or_value_error(data: str | bytes) -> None:
    _valid_or_value_error(policy_from_json, data, "p.json")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=200) | st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")))
def test_fuzz_files_give_a_policy_or_value_error(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "fuzz.json"
    path.write_bytes(data)
    _valid_or_value_error(load_policy, path)
