"""The search's learning rate of each epoch is a single run's (TrainConfig.lr_at, warm-up included)."""
from __future__ import annotations

import pytest

from autodata.pba import PBASearch, PBASearchConfig
from autodata.train import TrainConfig, build_run


@pytest.mark.parametrize("schedule", ["cosine", "constant"])
def test_the_search_trains_each_epoch_at_a_single_runs_learning_rate(schedule: str) -> None:
    train = TrainConfig(dataset="digits", n_train=100, val_per_class=5, epochs=4, warmup_epochs=2, lr=0.1,
                        lr_schedule=schedule, batch_size=100, eval_batch_size=500)
    search = PBASearch(PBASearchConfig(train=train, population=2, interval=2))
    searched = [search.train_epoch()["lr"] for _ in range(train.epochs)]
    run = build_run(train)  # the run's scheduler, stepped per epoch as Run.train_epoch does
    single = []
    for _ in range(train.epochs):
        single.append(run.optimizer.param_groups[0]["lr"])
        run.optimizer.step()  # no gradients: nothing moves; the order PyTorch expects
        run.scheduler.step()
    # by hand: warm-up 0.1/3, 0.2/3, then cosine over the last 2 epochs (0.1, 0.05) or constant
    by_hand = [0.1 / 3, 0.2 / 3, *([0.1, 0.05] if schedule == "cosine" else [0.1, 0.1])]
    assert searched == pytest.approx(single, rel=1e-12)
    assert searched == pytest.approx(by_hand, rel=1e-12)
