"""Differentiable augmentation policy search (DADA: Li et al., ECCV 2020, Sec. 3 and Alg. 1).

The search space is :class:`~autodata.augment.DifferentiablePolicy`: sub-policies of two ops,
each op with a learnable probability (relaxed Bernoulli) and magnitude, and a learnable weight
per sub-policy (Gumbel-softmax). The policy is a data component of the bilevel engine: each step
trains the model on policy-augmented images and updates the policy on a clean validation split
through the one-step look-ahead of the real optimizer (``method="fd"`` is DADA's and DARTS's
finite-difference approximation; ``"exact"`` is available). With ``reweight=True`` a
Meta-Weight-Net is learned jointly, in the same bilevel step.

Standard setting of the anchors (AutoAugment, DADA, PBA): reduced CIFAR-10 (4,000 training
images, split in halves for the model and the policy), WRN-40-2, 20 epochs. The result exports
the ``top_k`` sub-policies by weight (DADA keeps 25) as a :class:`~autodata.augment.Policy`.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor, nn

from autodata.augment import AUTOAUGMENT_OPS, DifferentiablePolicy, Policy, all_pairs
from autodata.bilevel import MetaLearner

__all__ = ["EpochRecord", "PolicySearchConfig", "PolicySearchResult", "search_policy"]


@dataclass(frozen=True)
class EpochRecord:
    """One epoch of the search: mean training loss, validation accuracy (%) and seconds."""

    epoch: int
    train_loss: float
    accuracy: float
    seconds: float


@dataclass(frozen=True)
class PolicySearchConfig:
    """Settings of one policy search; the defaults are the anchors' standard setting.

    ``PolicySearchConfig.cpu()`` gives a setting that runs in seconds on a CPU (tests, demos).
    """

    dataset: str = "cifar10"
    n_images: int = 4000  # reduced CIFAR-10: a class-balanced, seeded subset of the training set
    model: str = "wrn_40_2"
    epochs: int = 20
    batch_size: int = 128
    lr: float = 0.1
    weight_decay: float = 2e-4
    policy_lr: float = 5e-3  # Adam, betas (0.5, 0.999): DifferentiablePolicy's meta defaults
    temperature: float = 0.5
    method: str = "fd"
    ops: tuple[str, ...] = AUTOAUGMENT_OPS
    reweight: bool = False  # learn a Meta-Weight-Net jointly with the policy
    top_k: int = 25
    crop_padding: int = 4
    flip: bool = True
    device: str = "cpu"
    seed: int = 0
    root: str | None = None

    @classmethod
    def cpu(cls, **overrides) -> PolicySearchConfig:
        """A CPU-sized search on scikit-learn's digits: seconds, no files needed."""
        settings = dict(
            dataset="digits", n_images=600, model="small_cnn", epochs=2, batch_size=100,
            ops=("Rotate", "ShearX", "Contrast", "Brightness", "Posterize", "Cutout"),
            crop_padding=1, flip=False, top_k=10,
        )
        settings.update(overrides)
        return cls(**settings)


@dataclass(frozen=True)
class PolicySearchResult:
    """The exported policy, the model's validation accuracy per epoch and the search's cost."""

    policy: Policy
    history: list[EpochRecord]
    seconds: float
    config: PolicySearchConfig
    reweighter_state: dict | None = field(default=None, repr=False)


def _top_k(policy: Policy, k: int) -> Policy:
    stage = policy.stages[0]
    weights = stage.probabilities
    order = sorted(range(len(weights)), key=lambda i: -weights[i])[:k]
    kept = [weights[i] for i in order]
    total = sum(kept)
    return Policy.single_stage(
        policy.name, [stage.sub_policies[i] for i in order], [w / total for w in kept], policy.description
    )


def _train_epoch(
    epoch: int, model: nn.Module, optimizer: torch.optim.Optimizer, learner: MetaLearner,
    train: Iterable[tuple[Tensor, Tensor]], val: Iterable[tuple[Tensor, Tensor]],
) -> EpochRecord:
    start, total, count = time.perf_counter(), 0.0, 0
    model.train()
    for x, y in train:
        loss = learner.step(x, y)  # policy (and weights) updated on a validation batch
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += float(loss.detach()) * y.shape[0]
        count += y.shape[0]
    model.eval()
    correct = seen = 0
    with torch.no_grad():
        for x, y in val:
            correct += int((model(x).argmax(dim=1) == y).sum())
            seen += int(y.numel())
    model.train()
    accuracy = 100.0 * correct / seen if seen else math.nan
    return EpochRecord(epoch + 1, total / max(count, 1), accuracy, time.perf_counter() - start)


def search_policy(config: PolicySearchConfig, log: Callable[[EpochRecord], None] | None = None) -> PolicySearchResult:
    """Search an augmentation policy on a clean validation split with the bilevel engine.

    Args:
        config: the search's settings.
        log: called with each epoch's record (validation accuracy of the searched model).

    Returns:
        The exported policy (``top_k`` sub-policies, weights renormalised) and the history.

    Example:
        >>> result = search_policy(PolicySearchConfig.cpu(epochs=1))  # doctest: +SKIP
        >>> save_policy(result.policy, "policies/my_policy.json")  # doctest: +SKIP
    """
    from autodata.data import DeviceLoader, dataset_stats, load_dataset, meta_split
    from autodata.models import create_model
    from autodata.models.normalize import with_normalization
    from autodata.reweight import MetaWeightNet

    if config.top_k < 1:
        raise ValueError(f"top_k must be >= 1, but got {config.top_k}.")
    torch.manual_seed(config.seed)
    device = torch.device(config.device)
    train = load_dataset(config.dataset, root=config.root, train=True)
    k = train.num_classes
    if config.n_images % (2 * k):
        raise ValueError(f"n_images must split evenly into {k} classes and two halves, but got {config.n_images}.")
    reduced = train.subset(meta_split(train.labels, per_class=config.n_images // k, seed=config.seed).meta_indices)
    halves = meta_split(reduced.labels, per_class=config.n_images // (2 * k), seed=config.seed + 1)
    common = dict(device=device, mean=None, std=None)  # [0, 1] images: the policy runs before normalisation
    train_loader = DeviceLoader(
        reduced.images[halves.train_indices], reduced.labels[halves.train_indices], config.batch_size,
        crop_padding=config.crop_padding, flip=config.flip, seed=config.seed, **common,
    )
    val_loader = DeviceLoader(
        reduced.images[halves.meta_indices], reduced.labels[halves.meta_indices], config.batch_size,
        crop_padding=0, flip=False, seed=config.seed + 1, **common,
    )
    stats = dataset_stats(train.name)
    model = create_model(config.model, in_channels=reduced.images.shape[1], num_classes=k)
    model = with_normalization(model, stats.mean, stats.std).to(device)
    optimizer = torch.optim.SGD(
        model.parameters(), lr=config.lr, momentum=0.9, nesterov=True, weight_decay=config.weight_decay
    )
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, config.epochs)
    policy = DifferentiablePolicy(
        all_pairs(config.ops), temperature=config.temperature, seed=config.seed, meta_lr=config.policy_lr
    ).to(device)
    reweighter = MetaWeightNet().to(device) if config.reweight else None
    # the meta-optimizer: Adam over each component's own meta_param_groups()
    learner = MetaLearner(
        model, optimizer, augment=policy, reweighter=reweighter, meta_data=val_loader, method=config.method,
        seed=config.seed,
    )
    start = time.perf_counter()
    history = []
    for epoch in range(config.epochs):
        record = _train_epoch(epoch, model, optimizer, learner, train_loader, val_loader)
        scheduler.step()
        history.append(record)
        if log is not None:
            log(record)
    seconds = time.perf_counter() - start
    settings = ", ".join(f"{k}={v}" for k, v in asdict(config).items() if k not in ("ops", "root"))
    exported = policy.to_policy(
        name=f"dada_{config.dataset}",
        description=f"DADA-style search by autodata (search_policy): {settings}; {len(config.ops)} ops; "
                    f"top {config.top_k} of {policy.num_sub_policies} sub-policies by weight.",
    )
    return PolicySearchResult(
        _top_k(exported, config.top_k), history, seconds, config,
        None if reweighter is None else reweighter.state_dict(),
    )
