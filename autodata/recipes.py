"""A reference training loop, written out: what the demo, the experiments and the command line run.

This is not a framework: it is the plain PyTorch loop a user already has, with the one line that
:class:`autodata.MetaLearner` changes marked. Copy it, or call it for a quick study.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field

import numpy as np

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from autodata.bilevel import MetaLearner

__all__ = ["EpochRecord", "NoisyLabelConfig", "NOISY_LABEL_METHODS", "evaluate", "fit", "run_noisy_labels"]


@dataclass(frozen=True)
class EpochRecord:
    """One epoch of :func:`fit`: mean training loss, test accuracy (%) and wall time (s)."""

    epoch: int
    train_loss: float
    test_accuracy: float
    seconds: float
    extra: dict = field(default_factory=dict)


@torch.no_grad()
def evaluate(model: nn.Module, batches: Iterable[tuple[Tensor, Tensor]]) -> float:
    """Top-1 accuracy in percent of ``model`` (in eval mode) over ``batches``."""
    was_training = model.training
    model.eval()
    correct = total = 0
    for x, y in batches:
        correct += int((model(x).argmax(dim=1) == y).sum())
        total += int(y.numel())
    model.train(was_training)
    if total == 0:
        raise ValueError("evaluate() got no samples: the test loader is empty.")
    return 100.0 * correct / total


def fit(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    train_batches: Iterable[tuple[Tensor, Tensor]],
    epochs: int,
    *,
    learner: MetaLearner | None = None,
    test_batches: Iterable[tuple[Tensor, Tensor]] | None = None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    log: Callable[[EpochRecord], None] | None = None,
) -> list[EpochRecord]:
    """Train for ``epochs`` epochs; with a ``learner``, its step gives the loss.

    Args:
        model: the model (left in train mode).
        optimizer: its optimizer.
        train_batches: re-iterable ``(x, y)`` batches (a ``DataLoader`` or ``DeviceLoader``).
        epochs: number of epochs.
        learner: a :class:`~autodata.MetaLearner` over ``model`` and ``optimizer``; ``None``
            trains with plain cross-entropy.
        test_batches: evaluated after each epoch (accuracy NaN when omitted).
        scheduler: stepped once per epoch.
        log: called with each epoch's record.

    Returns:
        One :class:`EpochRecord` per epoch.
    """
    history = []
    for epoch in range(epochs):
        model.train()
        start, total, count = time.perf_counter(), 0.0, 0
        for x, y in train_batches:
            if learner is None:
                loss = F.cross_entropy(model(x), y)
            else:
                loss = learner.step(x, y)  # the one line autodata changes
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * y.shape[0]
            count += y.shape[0]
        if scheduler is not None:
            scheduler.step()
        accuracy = evaluate(model, test_batches) if test_batches is not None else math.nan
        record = EpochRecord(epoch + 1, total / max(count, 1), accuracy, time.perf_counter() - start)
        history.append(record)
        if log is not None:
            log(record)
    return history


NOISY_LABEL_METHODS = ("ce", "mwn", "l2rw", "clean", "mwn-last", "mwn-every5", "mwn-fd", "mwn-online", "mwn-last2")


@dataclass(frozen=True)
class NoisyLabelConfig:
    """One noisy-label study (Meta-Weight-Net's setup, Shu et al. 2019, Sec. 4.2).

    A clean meta set of ``meta_per_class`` images per class is taken from the training set
    before its labels are corrupted; the rest is trained on with corrupted labels. Every method
    gets the same model, epochs, optimizer (SGD, Nesterov momentum 0.9, cosine schedule),
    batches and seed; ``clean`` trains on the true labels of the same images (the ceiling).
    """

    dataset: str = "digits"
    model: str = "small_cnn"
    noise: str = "symmetric"
    rate: float = 0.4
    epochs: int = 10
    n_train: int = 0  # subsample the training set (0: all of it)
    meta_per_class: int = 10
    batch_size: int = 128
    meta_batch_size: int = 100
    lr: float = 0.05
    weight_decay: float = 5e-4
    crop_padding: int = 0
    flip: bool = False
    bf16: bool = False
    device: str = "cpu"
    seed: int = 0
    root: str | None = None


def _learner_for(method: str, model: nn.Module, optimizer: torch.optim.Optimizer, meta_loader, seed: int):
    from autodata.reweight import L2RW, MetaWeightNet

    if method in ("ce", "clean"):
        return None
    if method == "l2rw":
        return MetaLearner(model, optimizer, reweighter=L2RW(), meta_data=meta_loader, seed=seed)
    settings = {
        "mwn": ("exact", 1), "mwn-last": ("last", 1), "mwn-every5": ("exact", 5), "mwn-fd": ("fd", 1),
        "mwn-online": ("online", 1), "mwn-last2": ("last", 2),
    }
    if method not in settings:
        raise ValueError(f"method must be one of {list(NOISY_LABEL_METHODS)}, but got {method!r}.")
    hypergradient, every = settings[method]
    device = next(model.parameters()).device
    return MetaLearner(
        model, optimizer, reweighter=MetaWeightNet().to(device), meta_data=meta_loader,
        method=hypergradient, every=every, seed=seed,
    )


def run_noisy_labels(
    config: NoisyLabelConfig, method: str, log: Callable[[EpochRecord], None] | None = None
) -> dict:
    """Train one method of a noisy-label study; returns best/final test accuracy and the curve."""
    from autodata.data import DeviceLoader, corrupt_labels, load_dataset, meta_split
    from autodata.models import create_model

    if method not in NOISY_LABEL_METHODS:
        raise ValueError(f"method must be one of {list(NOISY_LABEL_METHODS)}, but got {method!r}.")
    torch.manual_seed(config.seed)
    device = torch.device(config.device)
    train = load_dataset(config.dataset, root=config.root, train=True)
    test = load_dataset(config.dataset, root=config.root, train=False)
    if config.n_train:
        keep = np.random.default_rng(config.seed).permutation(len(train))[: config.n_train]
        train = train.subset(np.sort(keep))
    split = meta_split(train.labels, per_class=config.meta_per_class, seed=config.seed)
    noisy = corrupt_labels(
        train.labels[split.train_indices], train.num_classes, config.noise, config.rate, seed=config.seed
    )
    labels = train.labels[split.train_indices] if method == "clean" else noisy.labels
    channels_last = device.type == "cuda"
    common = dict(device=device, crop_padding=config.crop_padding, flip=config.flip, channels_last=channels_last)
    train_loader = DeviceLoader.from_dataset(
        train.subset(split.train_indices).with_labels(labels), config.batch_size, seed=config.seed, **common
    )
    meta_loader = DeviceLoader.from_dataset(
        train.subset(split.meta_indices), config.meta_batch_size, seed=config.seed + 1, **common
    )
    test_loader = DeviceLoader.from_dataset(test, 1000, device=device, crop_padding=0, flip=False, shuffle=False)

    model = create_model(config.model, in_channels=train.images.shape[1], num_classes=train.num_classes).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(
        model.parameters(), lr=config.lr, momentum=0.9, weight_decay=config.weight_decay, nesterov=True
    )
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, config.epochs)
    learner = _learner_for(method, model, optimizer, meta_loader, config.seed)
    start = time.perf_counter()
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.bf16):
        history = fit(
            model, optimizer, train_loader, config.epochs, learner=learner,
            test_batches=test_loader, scheduler=scheduler, log=log,
        )
    accuracies = [r.test_accuracy for r in history]
    return {
        "method": method,
        "best": max(accuracies),
        "final": accuracies[-1],
        "curve": accuracies,
        "seconds": time.perf_counter() - start,
        "realised_noise_rate": noisy.noise_rate,
        "n_train": int(len(split.train_indices)),
        "n_meta": int(len(split.meta_indices)),
        "config": asdict(config),
    }
