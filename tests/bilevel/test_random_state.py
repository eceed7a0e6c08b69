"""A loop's own random draws are those of a plain loop, whatever the hypergradient method (issue #9).

The loop draws from the global random state in three ways: ``torch.randperm`` once per epoch,
a ``DataLoader(shuffle=True)`` without a generator (its sampler seeds from the global state at
each epoch) and a dropout layer outside the model; the model itself has dropout, whose masks
are the one real forward's. Every registered method, with a Meta-Weight-Net and (where it
applies at once) L2RW, must leave all of them as a plain cross-entropy loop draws them.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from autodata import L2RW, MetaLearner, MetaWeightNet
from autodata.bilevel import HYPERGRADIENTS

EPOCHS = 2


def _draws(seed: int, method: str | None, reweighter: str) -> list[torch.Tensor]:
    """Everything the loop drew, in order, with ``method=None`` for plain cross-entropy."""
    g = torch.Generator().manual_seed(100 + seed)
    x, y = torch.randn(24, 6, generator=g), torch.randint(0, 3, (24,), generator=g)
    x_meta, y_meta = torch.randn(8, 6, generator=g), torch.randint(0, 3, (8,), generator=g)
    component = MetaWeightNet(hidden=4) if reweighter == "mwn" else L2RW()  # its initialisation draws: before the seed
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.3), nn.Linear(8, 3))
    outside = nn.Dropout(0.5)  # dropout elsewhere in the loop (an auxiliary head, a noise layer)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    learner = None if method is None else MetaLearner(model, optimizer, reweighter=component, method=method)
    loader = DataLoader(TensorDataset(x, y), batch_size=8, shuffle=True)
    drawn = []
    for _ in range(EPOCHS):
        drawn.append(torch.randperm(24))
        for xb, yb in loader:
            drawn.append(yb.clone())  # the DataLoader's shuffle shows in the batches' labels
            drawn.append(outside(torch.ones(5)))
            if learner is None:
                loss = nn.functional.cross_entropy(model(xb), yb)
            else:
                loss = learner.step(xb, yb, x_meta, y_meta)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    drawn.append(torch.rand(3))  # the state the loop is left with
    return drawn


CASES = [(m, "mwn") for m in sorted(HYPERGRADIENTS)] + [
    (m, "l2rw") for m in sorted(HYPERGRADIENTS) if not HYPERGRADIENTS[m].delayed
]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_method_leaves_the_loops_own_draws_as_plain_training_draws_them(seed: int) -> None:
    plain = _draws(seed, None, "mwn")
    for method, reweighter in CASES:
        got = _draws(seed, method, reweighter)
        assert len(got) == len(plain)
        for i, (a, b) in enumerate(zip(plain, got)):
            assert torch.equal(a, b), f"method={method!r} with {reweighter} changed the loop's draw {i} (seed {seed})"
