"""``every=k`` scales the default meta-optimizer's learning rates by ``k`` (``scale_meta_lr``).

One meta update stands for ``k`` steps; an Adam step is about its learning rate long, so without
the scaling the components move a ``k``-th as far per epoch. The accuracy this buys is in
BENCHMARKS.md ("Every-k with the meta learning rate scaled by k").
"""
from __future__ import annotations

import copy

import pytest
import torch
from hypergrad_problem import setup_problem

from autodata import MetaLearner, MetaWeightNet
from autodata.augment import DifferentiablePolicy

SUBS = [("Rotate", "Contrast"), ("ShearX", "Brightness")]


def _lrs(learner: MetaLearner) -> list[float]:
    return [group["lr"] for group in learner.meta_optimizer.param_groups]


def _conv_model() -> torch.nn.Module:
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(), torch.nn.LazyLinear(3))
    model(torch.rand(1, 3, 8, 8))
    return model


@pytest.mark.parametrize("every", [1, 2, 3, 5])
def test_default_meta_optimizer_takes_every_component_group_rate_times_every(every: int) -> None:
    model = _conv_model()
    mwn, policy = MetaWeightNet(meta_lr=2e-3), DifferentiablePolicy(SUBS, seed=0, meta_lr=0.05)
    wanted = [g["lr"] for g in (*mwn.meta_param_groups(), *policy.meta_param_groups())]
    assert len(wanted) == 2  # the reweighter's group and the policy's (straight-through: no control variate)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    scaled = MetaLearner(model, opt, reweighter=mwn, augment=policy, method="fd", every=every)
    assert _lrs(scaled) == pytest.approx([lr * every for lr in wanted], rel=1e-12)
    scaled.close()
    kept = MetaLearner(model, opt, reweighter=mwn, augment=policy, method="fd", every=every, scale_meta_lr=False)
    assert _lrs(kept) == pytest.approx(wanted, rel=1e-12)
    kept.close()
    # the components' own settings are untouched
    assert mwn.meta_lr == 2e-3 and [g["lr"] for g in mwn.meta_param_groups()] == [2e-3]
    assert policy.meta_lr == 0.05 and [g["lr"] for g in policy.meta_param_groups()] == [0.05]


def test_relax_control_variate_keeps_its_rate() -> None:
    """RELAX's control variate is the estimator's, trained once per meta update on that update's sample."""
    policy = DifferentiablePolicy(SUBS, seed=0, estimator="relax", meta_lr=0.05, control_lr=0.01)
    groups = policy.meta_param_groups()
    assert [g.get("scale_with_every", True) for g in groups] == [True, False]
    model = _conv_model()
    learner = MetaLearner(model, torch.optim.SGD(model.parameters(), lr=0.1), augment=policy, method="exact", every=4)
    assert _lrs(learner) == pytest.approx([0.2, 0.01], rel=1e-12)
    learner.close()


def test_every_counts_optimizer_steps_so_accumulation_does_not_scale_again() -> None:
    model = _conv_model()
    learner = MetaLearner(model, torch.optim.SGD(model.parameters(), lr=0.1), reweighter=MetaWeightNet(meta_lr=1e-3),
                          method="fd", every=2, accumulation_steps=3)
    assert _lrs(learner) == pytest.approx([2e-3], rel=1e-12)
    learner.close()


@pytest.mark.parametrize("saved_scaled, loading_scaled", [(True, False), (False, True)])
def test_a_saved_state_keeps_the_rates_it_was_saved_with(saved_scaled: bool, loading_scaled: bool) -> None:
    """A resumed learner goes on as the saved one would have (a run saved before the scaling existed too)."""
    def build(scale: bool) -> MetaLearner:
        torch.manual_seed(0)
        model, optimizer, _ = setup_problem("sgd")
        return MetaLearner(model, optimizer, reweighter=MetaWeightNet(hidden=4, meta_lr=1e-3).double(),
                           method="fd", every=4, scale_meta_lr=scale)

    saved, loading = build(saved_scaled), build(loading_scaled)
    loading.load_state_dict(saved.state_dict())
    assert _lrs(loading) == pytest.approx([4e-3 if saved_scaled else 1e-3], rel=1e-12)
    saved.close()
    loading.close()


def test_a_meta_optimizer_given_by_the_user_is_never_changed() -> None:
    model, optimizer, _ = setup_problem("sgd")
    mwn = MetaWeightNet(hidden=4).double()
    meta = torch.optim.SGD(mwn.parameters(), lr=0.25)
    learner = MetaLearner(model, optimizer, reweighter=mwn, method="exact", every=4, meta_optimizer=meta)
    assert learner.meta_optimizer is meta and _lrs(learner) == [0.25]
    learner.close()


@pytest.mark.parametrize("method", ["exact", "jvp-online"])
def test_the_first_meta_update_every_k_is_k_times_the_unscaled_one(method: str) -> None:
    """Adam's first step is ``lr * g / (|g| + eps)``: with the same hypergradient, a rate ``k`` times
    larger moves every parameter exactly ``k`` times as far (the unscaled run is the reference)."""
    k = 3
    changes = {}
    for scale in (True, False):
        torch.manual_seed(0)
        model, optimizer, (x, y, xm, ym) = setup_problem("sgd-nesterov-wd")
        mwn = MetaWeightNet(hidden=4).double()
        before = copy.deepcopy([p.detach() for p in mwn.parameters()])
        learner = MetaLearner(model, optimizer, reweighter=mwn, method=method, every=k, guard=False,
                              scale_meta_lr=scale)
        for _ in range(2):  # jvp-online applies step 0's update at step 1
            loss = learner.step(x, y, xm, ym)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        learner.close()
        changes[scale] = [p.detach() - b for p, b in zip(mwn.parameters(), before)]
    moved = torch.cat([c.flatten() for c in changes[False]])
    assert moved.abs().max() > 0  # the meta update happened
    for scaled, unscaled in zip(changes[True], changes[False]):
        torch.testing.assert_close(scaled, k * unscaled, rtol=1e-9, atol=1e-15)


@pytest.mark.parametrize("bad", ["yes", 1, None])
def test_scale_meta_lr_must_be_a_bool(bad: object) -> None:
    model, optimizer, _ = setup_problem("sgd")
    with pytest.raises(ValueError, match="scale_meta_lr must be a bool, but got"):
        MetaLearner(model, optimizer, reweighter=MetaWeightNet(hidden=4).double(), every=2, scale_meta_lr=bad)
