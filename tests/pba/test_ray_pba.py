"""The PBA search through Ray Tune's PopulationBasedTraining (a local Ray instance; slow)."""
from __future__ import annotations

from pathlib import Path

import pytest

from autodata.pba import PBASearchConfig
from autodata.schedules import PBAPolicy, PiecewiseSchedule
from autodata.train import TrainConfig, build_run

ray = pytest.importorskip("ray", reason="the Ray extra: pip install 'autodata[ray]'")


def test_explore_is_pba_explore() -> None:
    from autodata.tune.ray_pba import pba_explore

    new = pba_explore({"hp_policy": [5, 5] * 30, "member": 1, "search": {}})
    assert new["member"] == 1 and PBAPolicy(tuple(new["hp_policy"])) != PBAPolicy((5, 5) * 30)


@pytest.mark.slow
def test_ray_search_writes_a_schedule_that_replays(tmp_path: Path) -> None:
    from autodata.tune.ray_pba import ray_search_schedule

    train = TrainConfig(dataset="digits", n_train=400, val_per_class=5, epochs=4, batch_size=100, eval_batch_size=500)
    config = PBASearchConfig(train, population=4, interval=2)
    out = tmp_path / "ray.json"
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        result = ray_search_schedule(config, out, storage_path=tmp_path / "ray_results")
    finally:
        ray.shutdown()
    schedule = PiecewiseSchedule.load(out)
    assert schedule == result.schedule and schedule.num_epochs == 4
    assert schedule.policy_at(0) == PBAPolicy.zeros() and len(result.val_accuracy) == 4
    run = build_run(train.replace(augment="schedule", policy=str(out)))
    run.fit()
    assert run.finished
