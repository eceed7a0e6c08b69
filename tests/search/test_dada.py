"""A CPU-sized DADA search produces a valid policy file that loads and applies in both paths."""
from __future__ import annotations

import math

import pytest
import torch

from autodata.augment import PolicyAugment, PolicyTransform, load_policy, save_policy
from autodata.search import cpu_search_config, search_config, search_policy


@pytest.mark.parametrize("method,reweight", [("fd", False), ("exact", True)], ids=["fd", "exact+mwn"])
def test_cpu_search_exports_a_policy_that_round_trips_and_applies(tmp_path, method: str, reweight: bool) -> None:
    config = cpu_search_config(epochs=1, method=method, reweighter="mwn" if reweight else "none")
    result = search_policy(config, keep=5)
    assert len(result.history) == 1 and math.isfinite(result.history[0]["train_loss"])
    assert (result.reweighter_state is not None) == reweight

    stage = result.policy.stages[0]
    assert len(stage.sub_policies) == 5
    assert sum(stage.probabilities) == pytest.approx(1.0)
    # the search moved the policy away from its initial probabilities and magnitudes of 0.5
    ops = [op for sub in stage.sub_policies for op in sub.ops]
    assert any(abs(op.probability - 0.5) > 1e-4 for op in ops)

    path = tmp_path / "searched.json"
    save_policy(result.policy, path)
    loaded = load_policy(path)
    assert loaded == result.policy

    x = torch.rand(16, 1, 8, 8)
    batch = PolicyAugment(loaded, seed=0)(x)
    assert batch.shape == x.shape and torch.isfinite(batch).all()
    single = PolicyTransform(loaded, seed=0)((x[0] * 255).to(torch.uint8))
    assert single.shape == (1, 8, 8) and single.dtype == torch.uint8


def test_bad_search_settings() -> None:
    with pytest.raises(ValueError, match="keep must be >= 1"):
        search_policy(cpu_search_config(), keep=0)
    with pytest.raises(ValueError, match="augment='learned'"):
        search_policy(cpu_search_config().replace(augment="none", policy_ops=()))
    with pytest.raises(ValueError, match="meta_per_class must be > 0"):
        search_config(meta_per_class=0)


def test_the_anchor_setting_is_reduced_cifar10_in_two_halves() -> None:
    config = search_config()
    assert (config.dataset, config.n_train, config.meta_per_class * 10, config.model) == ("cifar10", 4000, 2000, "wrn_40_2")
