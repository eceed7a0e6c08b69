"""Plots of a run: every plot function writes a readable PNG; run directories get theirs and link them."""
from __future__ import annotations

import subprocess
import sys

import matplotlib.image
import numpy as np
import pytest
import torch

from autodata.augment import PolicyAugment, load_policy
from autodata.runs import train_in_directory
from autodata.runs.plots import (
    PLOT_FILES,
    epoch_record_extras,
    link_plots_in_summary,
    plot_augmented_grid,
    plot_curves,
    plot_learned_policy,
    plot_policy,
    plot_sample_weights,
    plot_schedule,
    plots_section_markdown,
    write_run_plots,
)
from autodata.runs.suspects import SampleWeights
from autodata.schedules import PiecewiseSchedule, Segment
from autodata.train import TrainConfig, build_run

SMALL = dict(dataset="digits", n_train=300, epochs=2, batch_size=64, meta_per_class=3, meta_batch_size=30)


def _png(path) -> None:
    assert path.is_file() and path.stat().st_size > 0
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and min(image.shape[:2]) > 100


def test_curves_from_a_history_with_and_without_validation(tmp_path) -> None:
    history = [{"epoch": e, "train_loss": 2 / e, "meta_loss": None if e == 1 else 1.5 / e, "lr": 0.1,
                "test_accuracy": 40 + e, "test_loss": 2.1 / e, "val_accuracy": 41 + e, "val_loss": float("nan")}
               for e in range(1, 6)]
    _png(plot_curves(history, tmp_path / "a.png", title="t"))
    _png(plot_curves(history[:1], tmp_path / "one.png"))
    with pytest.raises(ValueError, match="history must hold at least one epoch record"):
        plot_curves([], tmp_path / "none.png")
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.slow
def test_learned_policy_is_recorded_per_epoch_and_drawn(tmp_path) -> None:
    run = build_run(TrainConfig(**SMALL, augment="learned", policy_ops=("Rotate", "Color", "Invert")))
    assert epoch_record_extras(build_run(TrainConfig(**SMALL))) == {}
    while not run.finished:
        run.run_epoch().update(epoch_record_extras(run))
    snapshot = run.history[-1]["learned_policy"]
    assert len(snapshot["sub_policies"]) == 6 and len(snapshot["weights"]) == 6
    assert np.allclose(snapshot["probabilities"], run.learner.augment.probabilities().tolist(), atol=1e-3)
    _png(plot_learned_policy(run.history, tmp_path / "policy.png", top=3))
    with pytest.raises(ValueError, match="learned_policy"):
        plot_learned_policy([{"epoch": 1}], tmp_path / "x.png")
    state = run.state_dict()  # the snapshot travels in checkpoints (weights_only loads it)
    path = tmp_path / "s.pt"
    torch.save(state, path)
    assert torch.load(path, weights_only=True)["history"][-1]["learned_policy"] == snapshot


def test_fixed_policies_and_schedules(tmp_path) -> None:
    aa = load_policy("policies/autoaugment_cifar10.json")
    _png(plot_policy(aa, tmp_path / "aa.png", top=5))
    pba = PiecewiseSchedule.load("policies/pba_rcifar10_200.json")
    _png(plot_policy(pba.policy_at(199), tmp_path / "pba_policy.png"))
    _png(plot_schedule(pba, tmp_path / "pba.png", current_epoch=50))
    mixed = PiecewiseSchedule([Segment(0, 3, load_policy("policies/identity.json")), Segment(3, 8, aa)])
    _png(plot_schedule(mixed, tmp_path / "mixed.png"))
    with pytest.raises(TypeError, match="policy must be a Policy or a PBAPolicy"):
        plot_policy("randaugment", tmp_path / "bad.png")


def test_sample_weights_and_augmented_grid(tmp_path) -> None:
    rng = np.random.default_rng(0)
    loss = rng.exponential(1.0, 200)
    samples = SampleWeights(label=rng.integers(0, 10, 200), loss=loss, weight=np.exp(-loss),
                            corrupted=rng.random(200) < 0.4, true_label=rng.integers(0, 10, 200))
    grid = np.linspace(0, loss.max(), 50)
    _png(plot_sample_weights(samples, grid, np.exp(-grid), tmp_path / "w.png"))
    unknown = SampleWeights(samples.label, samples.loss, samples.weight, None, None)
    _png(plot_sample_weights(unknown, grid, np.exp(-grid), tmp_path / "w2.png"))
    images = rng.integers(0, 256, (3, 3, 32, 32), dtype=np.uint8)
    aug = PolicyAugment(load_policy("policies/randaugment.json"))
    first = plot_augmented_grid(images, aug, tmp_path / "g.png", copies=2, labels=["a", "b", "c"]).read_bytes()
    assert plot_augmented_grid(images, aug, tmp_path / "g2.png", copies=2, labels=["a", "b", "c"]).read_bytes() == first
    _png(tmp_path / "g.png")
    with pytest.raises(ValueError, match=r"images must have shape \(N, 1 or 3, H, W\)"):
        plot_augmented_grid(images[:, :2], aug, tmp_path / "bad.png")


@pytest.mark.slow
@pytest.mark.parametrize("config, expected", [
    (dict(noise="symmetric", noise_rate=0.4, reweighter="mwn", method="fd"), {"curves.png", "weights.png"}),
    (dict(augment="schedule", policy="policies/pba_rsvhn_160.json"), {"curves.png", "schedule.png", "samples.png"}),
    (dict(augment="learned", policy_ops=("Rotate", "Color")), {"curves.png", "policy.png", "samples.png"}),
])
def test_a_run_directory_gets_its_plots_linked_from_the_summary(config, expected, tmp_path) -> None:
    out = tmp_path / "run"
    run = train_in_directory(TrainConfig(**SMALL, **config), out)
    written = write_run_plots(out)  # rebuilt from the checkpoint where needed
    assert {p.name for p in written} == expected == {p.name for p in (out / "plots").iterdir()}
    for path in written:
        _png(path)
    summary = (out / "summary.md").read_text()
    assert all(f"(plots/{name})" in summary for name in expected) and summary.count("## Plots") == 1
    write_run_plots(out, run=run)
    link_plots_in_summary(out)
    assert (out / "summary.md").read_text() == summary
    order = [name for name in PLOT_FILES if name in expected]
    assert [line.split("(plots/")[1].rstrip(")") for line in plots_section_markdown(out).split("\n") if "(plots/" in line] == order


def test_plots_section_is_empty_without_plots(tmp_path) -> None:
    assert plots_section_markdown(tmp_path) == ""
    link_plots_in_summary(tmp_path)  # no summary.md: nothing to do
    assert not (tmp_path / "summary.md").exists()


@pytest.mark.slow
def test_import_autodata_loads_no_plotting_or_logging_package() -> None:
    code = ("import sys, autodata, autodata.runs.plots, autodata.runs.suspects, autodata.runs.tensorboard, "
            "autodata.cli._progress, autodata.augment.shipped; "
            "print(sorted(m for m in ('matplotlib', 'tensorboard', 'rich') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
