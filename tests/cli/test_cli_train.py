"""``autodata train``'s flags: the reweighter's options and the guard come from TrainConfig's fields."""
from __future__ import annotations

import argparse

import pytest

from autodata.cli.train import add_run_arguments, config_from_args
from autodata.train import TrainConfig


def _config(argv: list[str]) -> TrainConfig:
    parser = argparse.ArgumentParser()
    add_run_arguments(parser)
    return config_from_args(parser.parse_args(argv))


def test_reweighter_option_and_guard_flags_set_their_fields() -> None:
    config = _config(["--reweighter", "mwn", "--meta-per-class", "2", "--reweighter-floor", "0.25", "--no-guard"])
    assert (config.reweighter_floor, config.guard) == (0.25, False)
    config = _config(["--reweighter", "l2rw", "--meta-per-class", "2", "--reweighter-max-step-ratio", "0"])
    assert config.reweighter_max_step_ratio == 0.0 and config.guard is True
    assert _config([]) == TrainConfig()  # absent flags leave the defaults


def test_scale_meta_lr_flag_reaches_the_learner() -> None:
    from autodata.train import build_run

    assert _config([]).scale_meta_lr is True
    for argv, lr in (([], 3e-3), (["--no-scale-meta-lr"], 1e-3)):
        config = _config(["--dataset", "digits", "--reweighter", "mwn", "--meta-per-class", "2", "--method", "fd",
                          "--every", "3", "--reweighter-lr", "1e-3", *argv])
        run = build_run(config)
        assert [g["lr"] for g in run.learner.meta_optimizer.param_groups] == pytest.approx([lr])
        run.learner.close()


def test_flags_override_a_config_file_and_bad_values_name_the_flag(tmp_path) -> None:
    path = tmp_path / "config.json"
    TrainConfig(reweighter="mwn", meta_per_class=2, reweighter_floor=0.5, guard=False).save(path)
    config = _config(["--config", str(path), "--reweighter-floor", "0.1"])
    assert (config.reweighter_floor, config.guard) == (0.1, False)
    with pytest.raises(ValueError, match=r"^--reweighter-floor must be in \[0, 1\], but got 2.0."):
        _config(["--reweighter-floor", "2"])
    with pytest.raises(ValueError, match=r"^--reweighter-max-step-ratio must be a non-negative finite number, but got -1.0."):
        _config(["--reweighter-max-step-ratio", "-1"])
