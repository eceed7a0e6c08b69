"""Exact resume: a run saved mid-way and reloaded (weights_only) continues bit for bit."""
from __future__ import annotations

import io

import pytest
import torch
from torch import nn

from autodata import L2RW, MetaLearner, MetaWeightNet
from autodata.augment import DifferentiablePolicy
from autodata.bilevel import HYPERGRADIENTS, cycle
from autodata.data import DeviceLoader

STEPS, SAVE_AT = 10, 5
SUBS = [("Rotate", "Contrast"), ("ShearX", "Brightness")]


def _images(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, 8, 8), generator=g, dtype=torch.uint8), torch.randint(0, 3, (n,), generator=g)


class _Counted:
    """A deterministic iterable of meta batches without state_dict (the counted fast-forward)."""

    def __init__(self) -> None:
        x, y = _images(12, seed=2)
        self.batches = [(x[i : i + 5].float() / 255, y[i : i + 5]) for i in range(0, 12, 5)]

    def __iter__(self):
        return iter(self.batches)


def _build(method: str, every: int, component: str, meta: str):
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Dropout(0.2),
        nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(16, 3),
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.8)  # stepped every step
    train = DeviceLoader(*_images(40, seed=1), 8, crop_padding=1, seed=3)  # 5 batches: epochs cross SAVE_AT
    meta_data = DeviceLoader(*_images(14, seed=2), 6, crop_padding=0, flip=True, seed=4) if meta == "loader" else _Counted()
    kwargs: dict = {"reweighter": MetaWeightNet(hidden=6)}
    if component == "l2rw":
        kwargs = {"reweighter": L2RW()}
    elif component == "policy":
        kwargs["augment"] = DifferentiablePolicy(SUBS, seed=0)
    learner = MetaLearner(model, optimizer, meta_data=meta_data, method=method, every=every, seed=5, **kwargs)
    return model, optimizer, scheduler, learner, train


def _train(model, optimizer, scheduler, learner, train, steps: int) -> list[torch.Tensor]:
    losses, batches = [], cycle(train)
    for _ in range(steps):
        x, y = next(batches)
        loss = learner.step(x, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
        losses.append(loss.detach())
    return losses


def _cases():
    for method in HYPERGRADIENTS:
        for component in ("mwn", "l2rw", "policy"):
            if component == "l2rw" and HYPERGRADIENTS[method].delayed:
                continue  # refused: per-batch weights cannot be applied one step late
            for every in (1, 3):
                yield pytest.param(method, every, component, id=f"{method}-every{every}-{component}")


@pytest.mark.parametrize("method,every,component", list(_cases()))
@pytest.mark.parametrize("meta", ["loader", "iterable"])
def test_resume_is_bit_identical(method: str, every: int, component: str, meta: str) -> None:
    model, optimizer, scheduler, learner, train = _build(method, every, component, meta)
    expected = _train(model, optimizer, scheduler, learner, train, STEPS)
    final = {n: p.detach().clone() for n, p in model.named_parameters()}

    model, optimizer, scheduler, learner, train = _build(method, every, component, meta)
    got = _train(model, optimizer, scheduler, learner, train, SAVE_AT)
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "learner": learner.state_dict(),
                "train": train.state_dict(), "rng": torch.get_rng_state()}, buffer)
    _train(model, optimizer, scheduler, learner, train, 2)  # the old objects run on: the checkpoint must not share state

    model, optimizer, scheduler, learner, train = _build(method, every, component, meta)
    torch.manual_seed(123)  # the resumed process starts from another random state
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    learner.load_state_dict(state["learner"])
    train.load_state_dict(state["train"])
    torch.set_rng_state(state["rng"])
    got += _train(model, optimizer, scheduler, learner, train, STEPS - SAVE_AT)

    for i, (a, b) in enumerate(zip(expected, got)):
        assert torch.equal(a, b), f"step {i}: loss {float(b)!r} differs from {float(a)!r}"
    for name, p in model.named_parameters():
        assert torch.equal(p.detach(), final[name]), f"{name} differs after resume"


def test_loop_randomness_is_untouched_by_every_method() -> None:
    """The loop's own draws (a per-epoch randperm) are those of a plain cross-entropy loop."""

    def draws(method: str | None) -> list[torch.Tensor]:
        model, optimizer, _, learner, train = _build(method or "exact", 1, "mwn", "loader")
        out, batches = [], cycle(train)
        for _ in range(4):
            x, y = next(batches)
            out.append(torch.randperm(10))
            loss = nn.functional.cross_entropy(model(x), y) if method is None else learner.step(x, y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return out

    plain = draws(None)
    for method in HYPERGRADIENTS:
        for i, (a, b) in enumerate(zip(plain, draws(method))):
            assert torch.equal(a, b), f"method={method!r} changed the loop's draw {i}"
