"""The contract of every registered run plot (``RUN_PLOTS``): caption, when it applies, what it draws."""
from __future__ import annotations

import matplotlib.image
import pytest

from autodata.runs import train_in_directory
from autodata.runs.plots import PLOT_FILES, RUN_PLOTS, RunPlot, plots_section_markdown, write_run_plots
from autodata.runs.plots import run as run_plots
from autodata.train import TrainConfig

TINY = dict(dataset="digits", n_train=200, epochs=1, batch_size=64, meta_per_class=3, meta_batch_size=30)

# Runs that together get every registered plot; a plot added to RUN_PLOTS without a run here fails
# test_every_registered_plot_has_a_run_that_draws_it.
EXAMPLES = {
    "plain": (dict(), {"curves.png"}),
    "learned_mwn": (dict(augment="learned", policy_ops=("Rotate", "Color"), noise="symmetric", noise_rate=0.4,
                         reweighter="mwn", method="fd"),
                    {"curves.png", "policy.png", "weights.png", "samples.png"}),
    "schedule": (dict(augment="schedule", policy="policies/pba_rsvhn_160.json"),
                 {"curves.png", "schedule.png", "samples.png"}),
}


def test_every_registered_plot_is_a_png_with_a_caption_in_summary_order() -> None:
    assert list(PLOT_FILES) == list(RUN_PLOTS)
    for name, plot in RUN_PLOTS.items():
        assert isinstance(plot, RunPlot) and name.endswith(".png") and "/" not in name
        assert plot.caption and PLOT_FILES[name] == plot.caption and "]" not in plot.caption  # a markdown image label


def test_every_registered_plot_has_a_run_that_draws_it() -> None:
    assert set().union(*(expected for _, expected in EXAMPLES.values())) == set(RUN_PLOTS)


def test_no_plot_applies_before_the_first_epoch_of_a_plain_run() -> None:
    config = TrainConfig(**TINY)
    assert [name for name, plot in RUN_PLOTS.items() if plot.applies(config, [])] == []
    assert [name for name, plot in RUN_PLOTS.items() if plot.applies(config, [{"epoch": 1}])] == ["curves.png"]


@pytest.mark.slow
@pytest.mark.parametrize("example", sorted(EXAMPLES))
def test_a_registered_plot_is_drawn_exactly_when_it_applies(example, tmp_path, monkeypatch) -> None:
    overrides, expected = EXAMPLES[example]
    config = TrainConfig(**TINY, **overrides)
    out = tmp_path / "run"
    train_in_directory(config, out)
    for png in (out / "plots").glob("*.png"):
        png.unlink()
    history = [{"epoch": 1}]
    assert {name for name, plot in RUN_PLOTS.items() if plot.applies(config, history)} == expected
    loads = []
    real_load_run = run_plots.load_run
    monkeypatch.setattr(run_plots, "load_run", lambda path: loads.append(path) or real_load_run(path))
    written = write_run_plots(out)
    assert [p.name for p in written] == [name for name in RUN_PLOTS if name in expected]  # registry order
    assert {p.name for p in (out / "plots").iterdir()} == expected
    for path in written:
        assert path.parent == out / "plots"
        image = matplotlib.image.imread(path)
        assert image.ndim == 3 and min(image.shape[:2]) > 100
    # the run is rebuilt from its checkpoint once, and only for a plot that needs it
    needs_run = bool(expected & {"weights.png", "samples.png"})
    assert len(loads) == int(needs_run)
    assert [line.split("(plots/")[1].rstrip(")") for line in plots_section_markdown(out).splitlines()
            if "(plots/" in line] == [name for name in RUN_PLOTS if name in expected]
