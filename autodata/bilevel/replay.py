"""Replay of a recorded forward: the same batch, augmentation and dropout masks at other parameters.

Every hypergradient method evaluates losses at parameter values that are not the model's:
the training loss of the step's batch at ``theta +- eps u`` (finite differences) and the
validation loss at the look-ahead ``theta'``. These virtual forwards run through
:func:`torch.func.functional_call` with copies of the buffers, so BatchNorm statistics never
move, and inside :func:`torch.random.fork_rng`, so their dropout draws never advance the
caller's global random state: a loop's own ``torch.randperm`` draws are those of plain training.
A replay of the training batch restores, inside the fork, the random state recorded before the
real forward, so it sees that forward's dropout masks.

Replays run on the plain module under a ``torch.compile`` or ``DistributedDataParallel`` wrapper
(:func:`~autodata.bilevel.wrappers.unwrap`): the compiled graph serves the real forward, and a replay never triggers DDP's
gradient synchronisation. :meth:`Replay.train_jvp` is the forward-mode pass of the ``jvp``
method (:mod:`torch.autograd.forward_ad`); :meth:`Replay.loss_change` gives the finite
differences of the per-sample losses (``fd``; one-sided, it reuses the real forward's losses).
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.autograd.forward_ad as fwAD
from torch import Tensor, nn
from torch.func import functional_call

from autodata.augment import BaseAugment
from autodata.bilevel.jvp_rules import ConvOutputs
from autodata.bilevel.wrappers import uncompiled, unwrap

__all__ = ["Inputs", "RandomState", "RecordedForward", "Replay", "as_model_inputs", "forked_rng"]

LossFn = Callable[[Tensor, Tensor], Tensor]
Inputs = Callable[[Any], tuple[tuple[Any, ...], dict[str, Any]]]
"""A batch's inputs ``x`` -> the model's ``(args, kwargs)``: ``model(*args, **kwargs)``."""


def as_model_inputs(x: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The default adapter: the batch's inputs are the model's one positional argument."""
    return (x,), {}


def forked_rng(device: torch.device) -> contextlib.AbstractContextManager:
    """Random draws inside the block leave the caller's global random state (CPU and ``device``) as it was."""
    if device.type == "cuda":
        return torch.random.fork_rng(devices=[device.index if device.index is not None else torch.cuda.current_device()])
    return torch.random.fork_rng(devices=[])


@dataclass(frozen=True)
class RandomState:
    """The global random state of the CPU and of a CUDA device at a forward (its dropout masks)."""

    device: torch.device
    cpu: Tensor
    cuda: Tensor | None = None

    @classmethod
    def capture(cls, device: torch.device) -> RandomState:
        """The current state."""
        return cls(device, torch.get_rng_state(), torch.cuda.get_rng_state(device) if device.type == "cuda" else None)

    def moved(self) -> bool:
        """Whether the global random state (CPU and this device's) moved since this one was captured."""
        now = RandomState.capture(self.device)
        if not torch.equal(now.cpu, self.cpu):
            return True
        return now.cuda is not None and self.cuda is not None and not torch.equal(now.cuda, self.cuda)

    @contextlib.contextmanager
    def replay(self) -> Iterator[None]:
        """Run a block from this random state; the caller's random state is untouched afterwards."""
        with forked_rng(self.device):
            torch.set_rng_state(self.cpu)
            if self.cuda is not None:
                torch.cuda.set_rng_state(self.cuda, self.device)
            yield

    def to_state(self) -> dict[str, Tensor | None]:
        """Plain tensors, for a checkpoint."""
        return {"cpu": self.cpu, "cuda": self.cuda}

    @classmethod
    def from_state(cls, device: torch.device, state: Mapping[str, Tensor | None]) -> RandomState:
        """The inverse of :meth:`to_state`."""
        return cls(device, state["cpu"], state.get("cuda"))


@dataclass(frozen=True)
class RecordedForward:
    """One real forward of the training batch, as much as a replay needs.

    Attributes:
        index: the step it belongs to.
        x: the training inputs, before augmentation.
        y: the targets.
        aug_params: what the augmentation drew for the batch.
        losses: per-sample losses, shape ``(B,)`` (with their graph in the step itself,
            detached once recorded for a later step).
        rng: the random state before the forward, or ``None`` when it is never replayed.
        convs: outputs of the forward's convolution modules that a forward-mode replay takes
            instead of recomputing them (``jvp-online``, whose checkpoints keep them by module name), or ``None``.
        augment: the augmentation that drew ``aug_params``, which a replay applies again (a loop may
            swap the learner's augmentation between steps); ``None``: the replay's current one (a
            record loaded from a checkpoint, taken before any swap).
    """

    index: int
    x: Tensor
    y: Tensor
    aug_params: Any
    losses: Tensor
    rng: RandomState | None
    convs: ConvOutputs | None = None
    augment: BaseAugment | None = None

    def detached(self) -> RecordedForward:
        """The same record without the graph of its losses."""
        return replace(self, losses=self.losses.detach())

    def to_state(self, augment: BaseAugment) -> dict[str, Any]:
        """Tensors, dicts and numbers only (``torch.load(weights_only=True)`` reads them)."""
        return {
            "index": self.index, "x": self.x, "y": self.y, "losses": self.losses.detach(),
            "aug_params": (self.augment if self.augment is not None else augment).params_to_state(self.aug_params),
            "rng": None if self.rng is None else self.rng.to_state(),
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any], augment: BaseAugment, device: torch.device) -> RecordedForward:
        """The inverse of :meth:`to_state`."""
        rng = None if state["rng"] is None else RandomState.from_state(device, state["rng"])
        return cls(int(state["index"]), state["x"], state["y"], augment.params_from_state(state["aug_params"]),
                   state["losses"], rng)


class Replay:
    """Losses of a model at parameter values other than its own, without changing anything real.

    Args:
        model: the user's model.
        params: its trainable parameters by name (missing names of a virtual state keep these).
        augment: the augmentation whose drawn parameters a replay reuses.
        loss_fn: per-sample training loss.
        meta_loss_fn: scalar validation loss.
        check_targets: ``(what, y, num_classes) -> None``, raising on bad labels.
        inputs: the batch's inputs -> the model's ``(args, kwargs)`` (:func:`as_model_inputs`).
    """

    def __init__(
        self,
        model: nn.Module,
        params: Mapping[str, Tensor],
        augment: BaseAugment,
        loss_fn: LossFn,
        meta_loss_fn: LossFn,
        check_targets: Callable[[str, Tensor, int], None],
        inputs: Inputs = as_model_inputs,
    ) -> None:
        self.model = unwrap(model)
        self.inputs = inputs
        self.params = params
        self.augment = augment
        self.loss_fn = loss_fn
        self.meta_loss_fn = meta_loss_fn
        self.check_targets = check_targets
        self.device = next(iter(params.values())).device

    def virtual_state(self, new: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Parameters (``new`` where given) and copies of the buffers: BN statistics stay put."""
        state = {n: new[n] if n in new else p.detach() for n, p in self.params.items()}
        state.update({n: b.clone() for n, b in self.model.named_buffers()})
        return state

    def train_loss_at(self, forward: RecordedForward, weights: Tensor) -> Callable[[Mapping[str, Tensor]], Tensor]:
        """``mean(weights * l)`` of the recorded forward at other parameter values.

        Requires ``forward.rng`` (the dropout masks to replay).
        """
        if forward.rng is None:
            raise ValueError(f"step {forward.index}: the forward was recorded without its random state, but got rng=None.")
        rng = forward.rng

        def train_loss_at(new: Mapping[str, Tensor]) -> Tensor:
            augment = self.augment_of(forward)
            with rng.replay(), torch.set_grad_enabled(augment.learns):
                out = self._call(new, augment(forward.x, forward.aug_params))
                losses = self.loss_fn(out, forward.y)  # (B,)
            return (weights * losses).mean()

        return train_loss_at

    def augment_of(self, forward: RecordedForward) -> BaseAugment:
        """The augmentation that drew the recorded batch's parameters (the current one if unknown)."""
        return forward.augment if forward.augment is not None else self.augment

    def _call(self, new: Mapping[str, Tensor], x: Any) -> Tensor:
        args, kwargs = self.inputs(x)
        with uncompiled(self.model):
            return functional_call(self.model, self.virtual_state(new), tuple(args), dict(kwargs))

    def train_jvp(
        self, forward: RecordedForward, weights: Tensor, scale: float = 1.0
    ) -> Callable[[Mapping[str, Tensor], Mapping[str, Tensor]], Tensor]:
        """``scale * mean(weights * <u, grad l_i(theta)>)`` of the recorded forward, by one JVP.

        The per-sample directional derivatives come from a forward-mode pass (dual tensors) of
        the replayed batch (same augmentation, dropout masks; BatchNorm in train mode on copied
        buffers); the result keeps its graph to the reweighter's parameters through
        ``weights`` only (the tangents are constants for the backward). The convolution outputs
        the record kept (``forward.convs``) are its primal where the rules of
        :mod:`~autodata.bilevel.jvp_rules` run.
        """
        if forward.rng is None:
            raise ValueError(f"step {forward.index}: the forward was recorded without its random state, but got rng=None.")
        rng = forward.rng

        supplied = forward.convs.supply if forward.convs is not None else contextlib.nullcontext

        def train_jvp(theta: Mapping[str, Tensor], u: Mapping[str, Tensor]) -> Tensor:
            with rng.replay(), torch.no_grad(), fwAD.dual_level(), supplied():
                x = self.augment_of(forward)(forward.x, forward.aug_params)
                dual = {n: fwAD.make_dual(theta[n], u[n].to(theta[n].dtype)) for n in u}
                primal, tangent = fwAD.unpack_dual(self.loss_fn(self._call(dual, x), forward.y))  # (B,)
                if tangent is None:  # the losses do not depend on the looked-ahead parameters
                    tangent = torch.zeros_like(primal)
                tangent = tangent.clone()
            return scale * (weights * tangent.to(weights.dtype)).mean()

        return train_jvp

    def loss_change(
        self, forward: RecordedForward, weights: Tensor, scale: float = 1.0
    ) -> Callable[[Mapping[str, Tensor], Mapping[str, Tensor] | None], Tensor]:
        """``(a, b) -> scale * mean(weights * (l(a) - l(b)))``: the change of the per-sample losses.

        ``l(a)`` is the recorded forward replayed at parameter values ``a`` (same augmentation,
        dropout masks, BatchNorm in train mode on copied buffers), without a graph; ``b=None``
        takes the recorded forward's own losses (at the parameters it was taken at) instead of
        a replay, which saves a forward. The differences are taken per sample before the weighted
        mean, so float32 rounding of the sum does not swamp them. The result keeps its graph to
        the reweighter's parameters through ``weights`` only.
        """
        if forward.rng is None:
            raise ValueError(f"step {forward.index}: the forward was recorded without its random state, but got rng=None.")
        rng = forward.rng

        def losses_at(new: Mapping[str, Tensor]) -> Tensor:
            with rng.replay(), torch.no_grad():
                return self.loss_fn(self._call(new, self.augment_of(forward)(forward.x, forward.aug_params)), forward.y)  # (B,)

        def loss_change(a: Mapping[str, Tensor], b: Mapping[str, Tensor] | None = None) -> Tensor:
            reference = forward.losses.detach() if b is None else losses_at(b)
            return scale * (weights * (losses_at(a) - reference).to(weights.dtype)).mean()

        return loss_change

    def meta_loss_at(self, x_meta: Tensor, y_meta: Tensor) -> Callable[[Mapping[str, Tensor]], Tensor]:
        """The clean validation loss at given parameter values."""

        def meta_loss_at(new: Mapping[str, Tensor]) -> Tensor:
            with forked_rng(self.device):  # its dropout draws leave the caller's random state alone
                out = self._call(new, x_meta)
            self.check_targets("meta", y_meta, out.shape[-1])
            return self.meta_loss_fn(out, y_meta)

        return meta_loss_at
