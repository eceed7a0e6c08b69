"""The reweighters' options refuse bad values with a message that names the option."""
from __future__ import annotations

import pytest

from autodata import L2RW, MetaWeightNet


@pytest.mark.parametrize("value", ["1", True, 0, -1.0, float("inf"), float("nan")])
def test_l2rw_max_step_ratio_must_be_a_positive_finite_number(value: object) -> None:
    with pytest.raises(ValueError, match="max_step_ratio must be a positive finite number or None, but got"):
        L2RW(max_step_ratio=value)


def test_l2rw_max_step_ratio_is_stored_as_a_float_or_none() -> None:
    assert L2RW(max_step_ratio=2).max_step_ratio == 2.0 and isinstance(L2RW(max_step_ratio=2).max_step_ratio, float)
    assert L2RW(max_step_ratio=None).max_step_ratio is None


@pytest.mark.parametrize("value", ["0.5", True, -0.1, 1.5, float("nan")])
def test_mwn_floor_must_be_a_number_in_unit_interval(value: object) -> None:
    with pytest.raises(ValueError, match="floor must be a number in \\[0, 1\\], but got"):
        MetaWeightNet(floor=value)


def test_mwn_floor_is_refused_without_normalisation() -> None:
    """A floor bounds the normalisation; with ``normalize=False`` it would be silently unused."""
    with pytest.raises(ValueError, match="floor must be 0 with normalize=False"):
        MetaWeightNet(normalize=False, floor=0.5)
    assert MetaWeightNet(normalize=False, floor=0.0).floor == 0.0


@pytest.mark.parametrize("bound", [0.0, -1.0, float("nan"), True])
def test_a_custom_reweighters_bad_step_bound_is_refused_not_applied(bound: object) -> None:
    """``max_step_ratio`` is a documented class attribute of every reweighter: 0 would zero the
    real step and a negative one flip it, silently."""
    import torch
    from torch import nn

    from autodata import MetaLearner
    from autodata.reweight import UniformReweighter

    class Bounded(UniformReweighter):
        max_step_ratio = bound

    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    learner = MetaLearner(model, torch.optim.SGD(model.parameters(), lr=0.1), reweighter=Bounded())
    with pytest.raises(ValueError, match="max_step_ratio\\) must be a positive finite number, but got"):
        learner.step(torch.randn(8, 4), torch.randint(0, 3, (8,)))
