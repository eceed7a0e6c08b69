"""TrainConfig: validated when built, exact JSON round trip, method strings, safe file reading."""
from __future__ import annotations

import dataclasses
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autodata.train import TrainConfig, parse_method

EXAMPLES = [
    TrainConfig(),
    TrainConfig(dataset="cifar10", model="resnet32", crop_padding=4, flip=True, lr=0.1 + 0.2, seed=2**62),
    TrainConfig(reweighter="mwn", meta_per_class=10, method="last", every=2, noise="pairflip", noise_rate=0.4),
    TrainConfig(augment="learned", policy_ops=("Rotate", "Invert"), meta_per_class=5, policy_lr=1e-2),
    TrainConfig(augment="policy", policy="policies/crop_flip.json", data_root="/data", precision="bf16"),
    TrainConfig(reweighter="mwn", meta_per_class=2, reweighter_floor=0.25, guard=False),
    TrainConfig(reweighter="l2rw", meta_per_class=2, reweighter_max_step_ratio=0.0),
    TrainConfig(epochs=20, warmup_epochs=5, lr_schedule="constant"),
]


@pytest.mark.parametrize("config", EXAMPLES)
def test_json_round_trip_is_exact(config: TrainConfig, tmp_path) -> None:
    assert TrainConfig.from_json(config.to_json()) == config
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    config.save(tmp_path / "config.json")
    assert TrainConfig.load(tmp_path / "config.json") == config
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]  # no temporary file left


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"lr": -1.0}, "lr must be a positive finite number, but got -1.0."),
        ({"lr": float("nan")}, "lr must be a finite number"),
        ({"model": "resnet9000"}, "model must be one of"),
        ({"dataset": "imagenet"}, "dataset must be one of"),
        ({"epochs": 0}, "epochs must be >= 1, but got 0."),
        ({"warmup_epochs": -1}, "warmup_epochs must be a non-negative finite number, but got -1."),
        ({"epochs": 3, "warmup_epochs": 3}, "warmup_epochs must be < epochs (3): the schedule needs an epoch after"),
        ({"seed": -1}, "seed must be in [0, 2**63), but got -1."),
        ({"momentum": 1.0}, "momentum must be in [0, 1)"),
        ({"noise_rate": 1.5, "noise": "symmetric"}, "noise_rate must be in [0, 1], but got 1.5."),
        ({"noise_rate": 0.2}, "noise_rate must be 0 when noise='none'"),
        ({"augment": "learned", "policy_ops": ("Rotate", "Blurr"), "meta_per_class": 2}, "unknown ['Blurr']"),
        ({"policy_ops": ("Rotate",)}, "policy_ops is only used with augment='learned'"),
        ({"augment": "policy"}, "policy must name a file when augment='policy'"),
        ({"policy": "x.json"}, "policy is only read with augment='policy' or 'schedule'"),
        ({"reweighter": "mwn"}, "meta_per_class must be > 0"),
        ({"reweighter": "l2rw", "meta_per_class": 1, "method": "online"}, "method must not be 'online'"),
        ({"method": "newton"}, "method must be one of"),
        ({"device": "gpu"}, "device must be a torch device"),
        ({"precision": "fp8"}, "precision must be one of"),
        ({"epochs": 2.5}, "epochs must be an integer, but got 2.5"),
        ({"epochs": True}, "epochs must be an integer, but got True"),
        ({"flip": 1}, "flip must be true or false, but got 1"),
        ({"lr": "0.1"}, "lr must be a number, but got '0.1'"),
        ({"lr": 10**400}, "lr must be a finite number, but got an integer too large for a float."),
        ({"policy_ops": "Rotate"}, "policy_ops must be a list of strings"),
        ({"model": None}, "model must be a string, but got None."),
        ({"reweighter_floor": 1.5}, "reweighter_floor must be in [0, 1], but got 1.5."),
        ({"reweighter_floor": -0.1}, "reweighter_floor must be in [0, 1], but got -0.1."),
        ({"reweighter_max_step_ratio": -1.0}, "reweighter_max_step_ratio must be a non-negative finite number, but got -1.0."),
        ({"reweighter_max_step_ratio": None}, "reweighter_max_step_ratio must be a number, but got None."),
        ({"guard": "no"}, "guard must be true or false, but got 'no'"),
        ({"scale_meta_lr": "no"}, "scale_meta_lr must be true or false, but got 'no'"),
    ],
)
def test_bad_fields_fail_when_built_with_the_field_named(fields: dict, message: str) -> None:
    with pytest.raises(ValueError) as info:
        TrainConfig(**fields)
    assert message in str(info.value)


def test_from_dict_names_unknown_fields_and_the_source() -> None:
    with pytest.raises(ValueError, match=r"run.json: unknown config field\(s\) \['learning_rate'\]"):
        TrainConfig.from_dict({"learning_rate": 0.1}, "run.json")
    with pytest.raises(ValueError, match="run.json: epochs must be >= 1"):
        TrainConfig.from_dict({"epochs": 0}, "run.json")
    with pytest.raises(ValueError, match="must be a JSON object"):
        TrainConfig.from_dict([1, 2], "run.json")


@pytest.mark.parametrize(
    "content, message",
    [
        (b"\xff\xfe{}", "must be UTF-8 encoded JSON"),
        (b"[" * 100_000, "at most 64 deep"),
        (b'{"lr": 1' + b"0" * 5000 + b"}", "lr must be a number, but got a number literal of 5001 characters"),
        (b'{"lr": 1e999}', "lr must be a finite number, but got inf"),
        (b'{"lr": NaN}', "lr must be a finite number, but got nan"),
        (b'{"lr": 0.1, "lr": 0.2}', "must not repeat a field, but got ['lr']"),
        (b'{"lr": 0.1', "must be valid JSON"),
    ],
)
def test_bad_config_files_are_clear_errors_naming_the_file(tmp_path, content: bytes, message: str) -> None:
    path = tmp_path / "config.json"
    path.write_bytes(content)
    with pytest.raises(ValueError) as info:
        TrainConfig.load(path)
    assert str(path) in str(info.value) and message in str(info.value)


def test_missing_config_file_is_named(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.json does not exist"):
        TrainConfig.load(tmp_path / "nope.json")


@pytest.mark.parametrize(
    "text, fields",
    [
        ("ce", {"reweighter": "none"}),
        ("clean", {"reweighter": "none", "noise": "none", "noise_rate": 0.0}),
        ("mwn", {"reweighter": "mwn", "method": "exact", "every": 1}),
        ("mwn-last2", {"reweighter": "mwn", "method": "last", "every": 2}),
        ("mwn-every5", {"reweighter": "mwn", "method": "exact", "every": 5}),
        ("mwn-online", {"reweighter": "mwn", "method": "online", "every": 1}),
        ("l2rw-fd", {"reweighter": "l2rw", "method": "fd", "every": 1}),
        ("mwn-jvp", {"reweighter": "mwn", "method": "jvp", "every": 1}),
        ("mwn-jvp-online", {"reweighter": "mwn", "method": "jvp-online", "every": 1}),
        ("mwn-jvp-online3", {"reweighter": "mwn", "method": "jvp-online", "every": 3}),
    ],
)
def test_method_strings_become_fields(text: str, fields: dict) -> None:
    assert parse_method(text) == fields
    config = TrainConfig.from_method(text, meta_per_class=3)
    assert {k: getattr(config, k) for k in fields} == fields


@pytest.mark.parametrize("text", ["mwn-newton", "ce-fd", "mwn-last0", "", "MWN", "mwn-"])
def test_bad_method_strings_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="method string"):
        parse_method(text)


def test_reweighter_option_defaults_are_the_classes_defaults() -> None:
    import inspect

    from autodata.bilevel import MetaLearner
    from autodata.reweight import L2RW, MetaWeightNet
    from autodata.reweight.mwn import CENTER_MODES

    def default(fn, name):
        return inspect.signature(fn).parameters[name].default

    config = TrainConfig()
    assert config.reweighter_floor == default(MetaWeightNet, "floor")
    assert MetaWeightNet(floor=config.reweighter_floor).center_mode == config.reweighter_center  # the net's default
    choices = {f.name: f.metadata["choices"] for f in dataclasses.fields(TrainConfig)}["reweighter_center"]
    assert tuple(choices) == CENTER_MODES
    assert config.reweighter_max_step_ratio == default(L2RW, "max_step_ratio")
    assert config.guard is default(MetaLearner, "guard")
    assert config.scale_meta_lr is default(MetaLearner, "scale_meta_lr")
    assert config.reweighter_hidden == default(MetaWeightNet, "hidden") and config.reweighter_lr == default(MetaWeightNet, "meta_lr")


def test_a_config_saved_before_a_field_existed_loads_with_its_default(tmp_path) -> None:
    fields = TrainConfig(reweighter="mwn", meta_per_class=2).to_dict()
    for name in ("reweighter_floor", "reweighter_center", "reweighter_max_step_ratio", "guard", "scale_meta_lr"):
        del fields[name]
    (tmp_path / "config.json").write_text(json.dumps(fields))
    assert TrainConfig.load(tmp_path / "config.json") == TrainConfig(reweighter="mwn", meta_per_class=2)


def test_scale_meta_lr_absent_from_a_saved_config_means_what_it_did_then(tmp_path) -> None:
    """Before the field existed every-k kept the meta learning rates; at every=1 scaling is a no-op."""
    for every, meant in ((3, False), (1, True)):
        fields = TrainConfig(reweighter="mwn", meta_per_class=2, every=every).to_dict()
        del fields["scale_meta_lr"]
        assert TrainConfig.absent_fields(fields) == {"scale_meta_lr": meant}
        (tmp_path / "config.json").write_text(json.dumps(fields))
        assert TrainConfig.load(tmp_path / "config.json").scale_meta_lr is meant
    assert TrainConfig.absent_fields(TrainConfig().to_dict()) == {}


def test_replace_validates_again() -> None:
    assert TrainConfig().replace(lr=0.2).lr == 0.2
    with pytest.raises(ValueError, match="lr must be"):
        TrainConfig().replace(lr=0.0)
    with pytest.raises(ValueError, match="unknown config field"):
        TrainConfig().replace(learning_rate=0.2)


_FIELDS = [f.name for f in dataclasses.fields(TrainConfig)]
_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12), st.lists(st.text(max_size=8), max_size=3),
    st.sampled_from(["mwn", "l2rw", "none", "digits", "learned", "policy", "Rotate", "sgd", "cosine", "cpu"]),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(_FIELDS + ["bogus"]), _VALUES, max_size=6))
def test_fuzz_from_dict_gives_a_config_or_a_value_error(data: dict) -> None:
    try:
        config = TrainConfig.from_dict(data, "fuzz.json")
    except ValueError as err:
        assert str(err).startswith("fuzz.json")
        return
    assert TrainConfig.from_json(config.to_json()) == config


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=60), st.binary(max_size=60).map(lambda b: b.decode("latin-1"))))
def test_fuzz_from_json_text_gives_a_config_or_a_value_error(text: str) -> None:
    try:
        TrainConfig.from_json(text, "fuzz.json")
    except ValueError as err:
        assert "fuzz.json" in str(err)
