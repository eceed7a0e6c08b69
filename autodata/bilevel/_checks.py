"""Input checks of the bilevel engine: each says what was expected and what came."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from autodata.augment import BaseAugment
from autodata.reweight import BaseReweighter

__all__ = [
    "batch_size",
    "check_batch",
    "check_components",
    "check_every",
    "check_last_layers",
    "check_losses",
    "check_on_nonfinite",
    "check_targets",
    "to_device",
]

# What each batch is called in messages, and what it must hold.
_NEEDS = {"training": "step() needs at least one training sample", "meta": "the meta set needs at least one sample"}


def check_every(every: Any, what: str = "every") -> int:
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ValueError(f"{what} must be a positive integer, but got {every!r}.")
    return every


def check_flag(value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{what} must be a bool, but got {value!r}.")
    return value


def check_on_nonfinite(on_nonfinite: Any) -> str:
    if on_nonfinite not in ("raise", "skip"):
        raise ValueError(f"on_nonfinite must be 'raise' or 'skip', but got {on_nonfinite!r}.")
    return on_nonfinite


def check_last_layers(last_layers: Sequence[str] | None, params: Mapping[str, Tensor]) -> tuple[str, ...] | None:
    if last_layers is None:
        return None
    if isinstance(last_layers, str):
        raise ValueError(f"last_layers must be a sequence of parameter names, but got the string {last_layers!r}.")
    names = tuple(last_layers)
    unknown = [n for n in names if n not in params]
    if unknown or not names:
        raise ValueError(f"last_layers must name trainable parameters of the model, but got unknown {unknown or names}.")
    return names


def check_components(reweighter: Any, augment: Any, device: torch.device) -> None:
    """Components of the right kind, on the model's device."""
    if not isinstance(reweighter, BaseReweighter):
        raise TypeError(
            f"reweighter must be an autodata.reweight.BaseReweighter (or None), but got {type(reweighter).__name__}."
        )
    if not isinstance(augment, BaseAugment):
        raise TypeError(
            f"augment must be an autodata.augment.BaseAugment (sample(batch_size, generator) and forward(x, params)) "
            f"or None, but got {type(augment).__name__}; subclass BaseAugment."
        )
    for name, component in (("reweighter", reweighter), ("augment", augment)):
        for p in component.parameters():
            if p.device != device:
                raise ValueError(
                    f"the {name}'s parameters are on {p.device} but the model is on "
                    f"{device}; move it with .to({str(device)!r})."
                )


def _leaves(what: str, label: str, t: Any) -> list[Tensor]:
    """The tensors of a batch's ``x`` or ``y``: a tensor, or a dict/tuple/list of tensors (inputs only)."""
    from torch.utils._pytree import tree_leaves

    leaves = tree_leaves(t) if label == "x" and isinstance(t, (dict, tuple, list)) else [t]
    for leaf in leaves:
        if not isinstance(leaf, Tensor):
            also = " (inputs may also be a dict/tuple/list of tensors)" if label == "x" else ""
            raise TypeError(
                f"the {what} batch's {label} must be a torch.Tensor, but got "
                f"{type(leaf).__module__}.{type(leaf).__name__}{also}."
            )
    if not leaves:
        raise ValueError(f"the {what} batch's {label} must hold at least one tensor, but got an empty {type(t).__name__}.")
    return leaves


def batch_size(x: Any) -> int:
    """The number of samples of a batch's inputs (the first dimension of its first tensor)."""
    from torch.utils._pytree import tree_leaves

    return int(tree_leaves(x)[0].shape[0]) if isinstance(x, (dict, tuple, list)) else int(x.shape[0])


def to_device(t: Any, device: torch.device) -> Any:
    """A tensor, or a dict/tuple/list of tensors, moved to ``device`` (unchanged when already there)."""
    from torch.utils._pytree import tree_map

    return tree_map(lambda a: a.to(device, non_blocking=True) if isinstance(a, Tensor) and a.device != device else a, t)


def check_batch(what: str, x: Any, y: Any, device: torch.device, like: tuple[Any, Tensor] | None = None) -> None:
    """A non-empty ``(x, y)`` pair on ``device``; shaped like ``like`` (the training batch).

    ``x`` is a tensor or (with an ``inputs`` adapter) a dict/tuple/list of tensors that all
    have the batch dimension first.
    """
    xs, (y,) = _leaves(what, "x", x), _leaves(what, "y", y)
    if any(t.dim() == 0 for t in xs) or y.dim() == 0:
        shapes = [tuple(t.shape) for t in xs]
        raise ValueError(f"the {what} batch must have a batch dimension, but got shapes {', '.join(map(str, shapes))} and {tuple(y.shape)}.")
    n = xs[0].shape[0]
    if n == 0:
        raise ValueError(f"the {what} batch must not be empty ({_NEEDS[what]}), but got 0 samples.")
    if any(t.shape[0] != n for t in xs[1:]):
        raise ValueError(f"every input tensor of the {what} batch must have {n} samples, but got {[t.shape[0] for t in xs]}.")
    if n != y.shape[0]:
        raise ValueError(f"the {what} batch must have as many targets as inputs, but got {n} inputs and {y.shape[0]} targets.")
    for t in (*xs, y):
        if t.device != device:
            raise ValueError(
                f"the {what} batch is on {t.device} but the model is on {device}; "
                f"move it with .to({str(device)!r})."
            )
    if like is not None:
        refs = _leaves("training", "x", like[0])
        if len(refs) != len(xs):
            raise ValueError(f"the {what} batch's inputs must have the training batch's structure ({len(refs)} tensors), but got {len(xs)}.")
        for label, ts, rs in (("inputs", xs, refs), ("targets", [y], [like[1]])):
            for t, ref in zip(ts, rs):
                if t.shape[1:] != ref.shape[1:]:
                    raise ValueError(
                        f"the {what} batch's {label} must have the training batch's per-sample shape "
                        f"{tuple(ref.shape[1:])}, but got {tuple(t.shape[1:])}."
                    )


def check_targets(what: str, y: Tensor, num_classes: int) -> None:
    """Hard labels in ``[0, num_classes)`` (soft float targets are left to the loss)."""
    if y.dtype.is_floating_point:
        return
    lo, hi = int(y.min()), int(y.max())
    if lo < 0 or hi >= num_classes:
        raise ValueError(
            f"{what} labels must lie in [0, {num_classes}) for a model with {num_classes} "
            f"outputs, but got labels from {lo} to {hi}."
        )


def check_losses(index: int, losses: Tensor, batch: int, model: nn.Module, buffers: Mapping[str, Tensor]) -> None:
    """Per-sample, finite losses; on a non-finite one the model's buffers are restored first."""
    if losses.dim() != 1 or losses.shape[0] != batch:
        raise ValueError(f"loss_fn must return per-sample losses of shape ({batch},), but got {tuple(losses.shape)}.")
    if not torch.isfinite(losses).all():
        bad = int((~torch.isfinite(losses)).sum())
        with torch.no_grad():  # undo the forward's BatchNorm update: the model loses nothing
            for name, b in model.named_buffers():
                b.copy_(buffers[name])
        raise FloatingPointError(
            f"step {index}: the training loss is not finite for {bad} of {losses.numel()} "
            f"samples. The model was not updated (its BatchNorm statistics are restored) and the step does not "
            f"count; check the inputs for NaN/inf and lower the learning rate."
        )
