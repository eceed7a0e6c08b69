"""Known-answer tasks for a policy search: the right policy is known, so the search can be checked.

Train on clean scikit-learn digits (8x8, bundled); the clean validation set that steers the
search and the test set carry a shift that one op of the table reproduces (the op applied to
the training images makes them look like the validation images). A search that works ranks
that op first by expected application, and retraining with its saved policy beats no
augmentation on the shifted test set. The oracle is the right op alone, always applied at the
shift's own magnitude and sign.

Tasks (:data:`KNOWN_ANSWER_TASKS`):

* ``invert`` (colour): ``1 - x``; Invert.
* ``rotate`` (geometry): a +20 degree rotation; Rotate with the positive sign only, so the
  search must learn the sign (a fair-coin Rotate shifts half of the images the wrong way).
* ``solarize`` (intensity): pixels above half intensity inverted (threshold 0.5, magnitude
  0.5); Solarize. No other op of the table maps the strokes to dark and leaves the black
  background black (Invert flips the background too, Posterize, Equalize and AutoContrast
  leave 17-level 0..1 digits almost as they are).
* ``brightness`` (intensity): darkened to ``0.3 x``; Brightness with the negative sign.
  Kept as a known failure: a BatchNorm model in training mode normalises the scale away
  (a bias-free convolution then BatchNorm gives exactly the same output for ``0.3 x`` as
  for ``x``), so the validation loss that steers the search cannot see this shift. Searched
  from a model without BatchNorm, Brightness is found; see BENCHMARKS.md, "Known-answer
  policy searches".

Example:
    >>> task = KNOWN_ANSWER_TASKS["rotate"]
    >>> task.op, task.magnitude, task.sign
    ('Rotate', 0.6666666666666666, 1.0)
    >>> task.oracle().stages[0].sub_policies[0].ops[0].sign_probability
    1.0
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from autodata.augment import OPS, BaseAugment, OpConfig, Policy, SubPolicy

__all__ = ["KNOWN_ANSWER_TASKS", "KnownAnswerTask", "digits_splits", "pretrained_model", "retrained_accuracy"]

Split = tuple[Tensor, Tensor]


@dataclass(frozen=True)
class KnownAnswerTask:
    """A shift of the validation and test images that one op reproduces.

    Args:
        name: the task's key in :data:`KNOWN_ANSWER_TASKS`.
        op: the right op, a key of :data:`autodata.augment.OPS`.
        magnitude: the op's normalised magnitude that makes the shift.
        sign: ``+1.0`` or ``-1.0``, the direction of a signed op (``+1.0`` for others).
        kind: what the op changes (``"colour"``, ``"geometry"``, ``"intensity"``).
    """

    name: str
    op: str
    magnitude: float
    sign: float = 1.0
    kind: str = ""

    def __post_init__(self) -> None:
        if self.op not in OPS:
            raise ValueError(f"op must be one of {sorted(OPS)}, but got {self.op!r}.")
        if isinstance(self.magnitude, bool) or not isinstance(self.magnitude, (int, float)) or not 0 <= self.magnitude <= 1:
            raise ValueError(f"magnitude must be a number in [0, 1], but got {self.magnitude!r}.")
        if self.sign not in (1.0, -1.0) or (self.sign < 0 and not OPS[self.op].signed):
            raise ValueError(f"sign must be +1.0, or -1.0 for a signed op, but got {self.sign!r} for {self.op}.")

    def shift(self, x: Tensor) -> Tensor:
        """The shifted images.

        Shape:
            - x: :math:`(B, C, H, W)` float in ``[0, 1]``; output: the same.
        """
        b = x.shape[0]
        return OPS[self.op](x, torch.full((b,), self.magnitude), torch.full((b,), self.sign))

    def oracle(self) -> Policy:
        """The right op alone, always applied, at the shift's magnitude and sign."""
        sign = (1.0 if self.sign > 0 else 0.0) if OPS[self.op].signed else 0.5
        op = OpConfig(self.op, 1.0, self.magnitude, sign_probability=sign)
        return Policy.single_stage(f"oracle_{self.name}", [SubPolicy((op,))])


KNOWN_ANSWER_TASKS: dict[str, KnownAnswerTask] = {
    task.name: task
    for task in (
        KnownAnswerTask("invert", "Invert", 0.0, kind="colour"),
        KnownAnswerTask("rotate", "Rotate", 20 / 30, 1.0, kind="geometry"),
        KnownAnswerTask("solarize", "Solarize", 0.5, kind="intensity"),
        KnownAnswerTask("brightness", "Brightness", 0.7 / 0.9, -1.0, kind="intensity"),
    )
}
"""The tasks by name; see the module docstring."""


def digits_splits(task: KnownAnswerTask, seed: int = 0, n_train: int = 1000) -> tuple[Split, Split, Split]:
    """Clean training images, shifted validation and test images of scikit-learn's digits.

    The training split (1,437 images) is shuffled by ``seed``: its first ``n_train`` images
    train, the rest validate; the test split (360 images) tests.

    Returns:
        ``(train, val, test)``, each ``(x, y)`` with ``x`` of shape ``(N, 1, 8, 8)`` in ``[0, 1]``.
    """
    from autodata.data import load_dataset

    tr, te = load_dataset("digits"), load_dataset("digits", train=False)
    x, y = torch.from_numpy(tr.images).float() / 255, torch.from_numpy(tr.labels).long()  # (N, 1, 8, 8), (N,)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    xt, yt = torch.from_numpy(te.images).float() / 255, torch.from_numpy(te.labels).long()
    train, val = order[:n_train], order[n_train:]
    return (x[train], y[train]), (task.shift(x[val]), y[val]), (task.shift(xt), yt)


def _fit(model: nn.Module, train: Split, augment: BaseAugment | None, epochs: int, seed: int) -> nn.Module:
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    x, y = train
    g = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(y), generator=g).split(64):
            xb = x[idx] if augment is None else augment(x[idx])
            opt.zero_grad()
            F.cross_entropy(model(xb), y[idx]).backward()
            opt.step()
    return model


def _small_cnn(seed: int) -> nn.Module:
    from autodata.models import create_model

    torch.manual_seed(seed)
    return create_model("small_cnn", in_channels=1, num_classes=10)


def pretrained_model(train: Split, seed: int = 0, epochs: int = 5, model: nn.Module | None = None) -> nn.Module:
    """A model trained on the clean training images: the model the search starts from.

    Args:
        train: the clean training split.
        seed: seeds the initialisation of the default model and the batch order.
        epochs: passes over ``train``.
        model: the network to train in place (default a fresh ``small_cnn``).
    """
    return _fit(_small_cnn(seed) if model is None else model, train, None, epochs, seed)


def retrained_accuracy(train: Split, test: Split, augment: BaseAugment | None = None, seed: int = 0,
                       epochs: int = 15) -> float:
    """Accuracy on ``test`` of a fresh small CNN trained on ``train`` augmented by ``augment``."""
    model = _fit(_small_cnn(seed), train, augment, epochs, seed).eval()
    with torch.no_grad():
        return float((model(test[0]).argmax(1) == test[1]).float().mean())
