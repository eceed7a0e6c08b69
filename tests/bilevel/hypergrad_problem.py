"""The small float64 meta problem the hypergradient tests share (imported by the test modules)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

OPTIMIZERS = {
    "sgd": lambda p: torch.optim.SGD(p, lr=0.3),
    "sgd-nesterov-wd": lambda p: torch.optim.SGD(p, lr=0.2, momentum=0.9, nesterov=True, weight_decay=5e-3),
    "sgd-dampening": lambda p: torch.optim.SGD(p, lr=0.2, momentum=0.5, dampening=0.3),
    "adam": lambda p: torch.optim.Adam(p, lr=0.05, weight_decay=1e-3),
    "adam-amsgrad": lambda p: torch.optim.Adam(p, lr=0.05, amsgrad=True),
    "adamw": lambda p: torch.optim.AdamW(p, lr=0.05, weight_decay=0.05),
}


def setup_problem(opt_name: str, dropout: float = 0.0):
    """A float64 MLP with BatchNorm (and dropout), its optimizer after two steps, and a training
    and a meta batch: ``model, optimizer, (x, y, xm, ym)``."""
    g = torch.Generator().manual_seed(0)
    model = nn.Sequential(
        nn.Linear(5, 6), nn.BatchNorm1d(6), nn.Tanh(), nn.Dropout(dropout), nn.Linear(6, 3)
    ).double()
    optimizer = OPTIMIZERS[opt_name](model.parameters())
    x, y = torch.randn(12, 5, generator=g, dtype=torch.float64), torch.randint(0, 3, (12,), generator=g)
    xm, ym = torch.randn(7, 5, generator=g, dtype=torch.float64), torch.randint(0, 3, (7,), generator=g)
    for _ in range(2):  # populate the optimizer's state (momentum, moments, step count)
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
    return model, optimizer, (x, y, xm, ym)
