"""``autodata policy show|apply|convert|list`` and the shipped policies by name."""
from __future__ import annotations

import json
import os
from pathlib import Path

import matplotlib.image
import pytest

from autodata.augment import PolicyAugment, load_policy
from autodata.augment.shipped import (
    TIMM_RAND_OPS,
    policy_from_string,
    resolve_policy_path,
    shipped_names,
    shipped_policy_path,
)
from autodata.schedules import PiecewiseSchedule

REPO_POLICIES = Path(__file__).resolve().parents[2] / "policies"


def _png(path: Path) -> None:
    assert path.is_file() and path.stat().st_size > 0
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100


def test_every_policy_file_of_the_repository_is_shipped_by_name() -> None:
    assert set(shipped_names()) == {p.stem for p in REPO_POLICIES.glob("*.json")}
    assert shipped_policy_path("randaugment") == REPO_POLICIES / "randaugment.json"
    assert resolve_policy_path("randaugment") == REPO_POLICIES / "randaugment.json"
    assert resolve_policy_path(REPO_POLICIES / "identity.json") == REPO_POLICIES / "identity.json"
    with pytest.raises(ValueError, match=r"a shipped policy name must be one of \[.*'randaugment'.*\].*but got 'nope'"):
        shipped_policy_path("nope")
    with pytest.raises(FileNotFoundError, match="existing .json file or a shipped name"):
        resolve_policy_path("nope.json")


def test_timm_strings_parse_into_policies() -> None:
    p = policy_from_string("rand-m9-n2")
    assert len(p.stages) == 2 and [s.ops[0].name for s in p.stages[0].sub_policies] == list(TIMM_RAND_OPS)
    op = p.stages[1].sub_policies[3].ops[0]
    assert (op.probability, op.magnitude, op.magnitude_sampling) == (0.5, 0.9, "fixed")
    q = policy_from_string("rand-m5-n1-p1.0-mstd101-inc1").stages[0].sub_policies[0].ops[0]
    assert (q.probability, q.magnitude, q.magnitude_sampling) == (1.0, 0.5, "uniform")
    assert policy_from_string("trivial") == load_policy(REPO_POLICIES / "trivialaugment.json")
    import torch

    aug = PolicyAugment(p)
    x = torch.rand(4, 1, 8, 8)
    assert aug(x, aug.sample(4, torch.Generator().manual_seed(0))).shape == x.shape


@pytest.mark.parametrize("spec, message", [
    ("rand-m12", "magnitude m of 'rand-m12' must be in [0, 10], but got 12"),
    ("rand-n0", "number of ops n of 'rand-n0' must be an int >= 1"),
    ("rand-mstd0.5", "mstd of 'rand-mstd0.5' must be 0"),
    ("rand-w0", "a section of 'rand-w0' must be one of m, n, p, mstd, inc"),
    ("rand-m9-m3", "section 'm' of 'rand-m9-m3' must appear once"),
    ("augmix", "spec must be 'rand-m<M>-n<N>"),
])
def test_bad_strings_are_clear_errors(spec: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        policy_from_string(spec)
    assert message in str(info.value)


@pytest.mark.parametrize("name", shipped_names())
def test_policy_show_prints_and_draws_every_shipped_policy(name: str, cli, capsys, tmp_path) -> None:
    png = tmp_path / f"{name}.png"
    assert cli(["policy", "show", name, "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    data = json.loads((REPO_POLICIES / f"{name}.json").read_text())
    assert out.startswith(data["name"]) and f"plot: {png}" in out
    if data["format"] == "autodata.schedule":
        assert f"{data['num_epochs']} epochs" in out and "epochs  policy" in out
    else:
        assert "weight  op" in out and "probability" in out
        for stage in data["stages"]:
            for sub in stage["sub_policies"]:
                assert all(op["name"] in out for op in sub["ops"])
    _png(png)


def test_policy_show_a_schedule_at_an_epoch_a_string_and_top(cli, capsys) -> None:
    assert cli(["policy", "show", "pba_rsvhn_160", "--epoch", "100"]) == 0
    out = capsys.readouterr().out
    assert "at epoch 100 of 160" in out and "magnitude level" in out and out.count("\n") >= 32
    assert cli(["policy", "show", "rand-m9-n2", "--top", "3"]) == 0
    out = capsys.readouterr().out
    assert "the 3 most likely shown" in out and "stage 2 of 2" in out and "±27.0 degrees" not in out
    assert cli(["policy", "show", "autoaugment_cifar10", "--top", "2"]) == 0
    assert "±6.7 degrees" in capsys.readouterr().out  # Rotate at magnitude 2/9 of 30 degrees


def test_policy_apply_draws_a_grid_of_digits(cli, capsys, tmp_path) -> None:
    out = tmp_path / "grid.png"
    assert cli(["policy", "apply", "randaugment", "--out", str(out), "--images", "4", "--copies", "3"]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    _png(out)
    sched = tmp_path / "pba.png"
    assert cli(["policy", "apply", "pba_rcifar10_200", "--epoch", "150", "--out", str(sched), "--images", "3"]) == 0
    _png(sched)


def test_policy_convert_strings_and_refuses_to_overwrite(cli, capsys, tmp_path) -> None:
    out = tmp_path / "ra.json"
    assert cli(["policy", "convert", "rand-m9-n2", "--out", str(out)]) == 0
    assert load_policy(out) == policy_from_string("rand-m9-n2")
    assert cli(["policy", "convert", "trivial", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "must not exist yet" in err and "--overwrite" in err and err.count("\n") == 1
    assert cli(["policy", "convert", "trivial", "--out", str(out), "--overwrite"]) == 0
    assert load_policy(out).name == "trivialaugment" and "wrote" in capsys.readouterr().out
    assert cli(["policy", "convert", "rand-m3-n1"]) == 0  # no --out: JSON on stdout
    assert json.loads(capsys.readouterr().out)["name"] == "rand-m3-n1"


def test_policy_convert_a_pba_log_matches_the_shipped_schedule(cli, tmp_path) -> None:
    root = os.environ.get("AUTODATA_DATA")
    log = Path(root or "") / "pba" / "rcifar10_16_wrn.txt"
    if not root or not log.is_file():
        pytest.skip("AUTODATA_DATA with pba/rcifar10_16_wrn.txt is needed")
    out = tmp_path / "pba.json"
    assert cli(["policy", "convert", "--from-pba-log", str(log), "--epochs", "200", "--out", str(out), "--quiet"]) == 0
    assert PiecewiseSchedule.load(out).segments == PiecewiseSchedule.load(REPO_POLICIES / "pba_rcifar10_200.json").segments
    assert cli(["policy", "convert", "--from-pba-log", str(log), "--epochs", "1800", "--out", str(tmp_path / "l.json")]) == 0
    assert PiecewiseSchedule.load(tmp_path / "l.json").num_epochs == 1800


@pytest.mark.parametrize("argv, message", [
    (["policy", "show", "nope"], "POLICY must be a policy or schedule file, a shipped name"),
    (["policy", "show", "rand-m11"], "magnitude m of 'rand-m11' must be in [0, 10]"),
    (["policy", "show", "randaugment", "--epoch", "3"], "--epoch is only for schedules"),
    (["policy", "convert"], "give exactly one source"),
    (["policy", "convert", "trivial", "--from-pba-log", "x.txt"], "give exactly one source"),
    (["policy", "convert", "trivial", "--epochs", "5"], "--epochs and --search-epochs are only for --from-pba-log"),
    (["policy", "convert", "--from-pba-log", "missing.txt"], "missing.txt does not exist"),
    (["policy", "apply", "randaugment", "--copies", "0"], "--images and --copies must be >= 1"),
    (["policy", "apply", "randaugment", "--data", "imagenet"], "name must be one of"),
    (["policy"], "the following arguments are required: VERB"),
])
def test_user_errors_are_one_line(argv, message, cli, capsys, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert cli(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_policy_list_names_every_shipped_file(cli, capsys) -> None:
    assert cli(["policy", "list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in shipped_names()) and "schedule" in out and "rand-m<M>" in out


def test_policy_show_prints_a_learned_sign(cli, capsys, tmp_path) -> None:
    from autodata.augment import OpConfig, Policy, Stage, SubPolicy, save_policy

    ops = (OpConfig("Rotate", 0.9, 2 / 3, sign_probability=0.62), OpConfig("ShearX", 0.5, 0.5, sign_probability=1.0))
    path = tmp_path / "signed.json"
    save_policy(Policy("signed", (Stage((SubPolicy(ops),)),)), path)
    assert cli(["policy", "show", str(path)]) == 0
    out = capsys.readouterr().out
    assert "±20.0 degrees (+ with p 0.62)" in out  # the learned sign, not a fair coin
    assert "shear +0.15" in out  # a sure sign is shown as the sign itself
