"""Every registered reweighter and hypergradient method passes its contract (autodata.testing)."""
from __future__ import annotations

import dataclasses

import pytest

from autodata.bilevel import HYPERGRADIENTS
from autodata.reweight import REWEIGHTERS
from autodata.testing import check_hypergradient, check_reweighter


@pytest.mark.parametrize("name", sorted(REWEIGHTERS))
def test_every_reweighter_keeps_the_contract(name: str) -> None:
    check_reweighter(REWEIGHTERS[name])


def _precise(cls):
    """The registered method with a finite-difference radius fit for float64."""
    fields = {f.name for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else set()
    return cls(**({"radius": 1e-5} if "radius" in fields else {}))


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("name", sorted(HYPERGRADIENTS))
def test_every_hypergradient_method_matches_finite_differences(name: str, optimizer: str) -> None:
    check_hypergradient(_precise(HYPERGRADIENTS[name]), optimizer)


def test_the_contracts_catch_a_broken_implementation() -> None:
    from autodata.bilevel import Exact
    from autodata.reweight import MetaWeightNet

    class Halved(Exact):  # a method whose hypergradient is off by a factor of two
        def __call__(self, problem):
            grads, loss = super().__call__(problem)
            return [g / 2 for g in grads], loss

    with pytest.raises(AssertionError, match="relative error"):
        check_hypergradient(Halved())

    class Negative(MetaWeightNet):
        def forward(self, losses, targets):
            return super().forward(losses, targets) - 2.0

    with pytest.raises(AssertionError, match="non-negative"):
        check_reweighter(Negative)
