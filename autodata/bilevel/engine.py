"""The bilevel meta-gradient engine: one verb, :meth:`MetaLearner.step`, added to the user's loop.

Every learnable data component (a sample reweighter, a differentiable augmentation policy) is
optimized on a clean validation set by the same one-step look-ahead (Shu et al. 2019, Alg. 1;
Liu et al. 2019, eq. 7; Li et al. 2020, eq. 9). One step:

    1. forward the (augmented) training batch once: per-sample losses ``l_i``;
    2. the reweighter gives the meta step's weights ``w_i`` and the meta-parameters ``phi`` they
       depend on (:meth:`~autodata.reweight.BaseReweighter.step_weights`), the augmentation
       adds its own parameters;
    3. ``theta' = step(theta, grad_theta mean(w * l))`` with the user's real optimizer's rule
       (:mod:`~autodata.bilevel.lookahead`), and the hypergradient of the validation loss at
       ``theta'`` to ``phi`` by the method object (:mod:`~autodata.bilevel.hypergrad`); one
       meta-optimizer step on ``phi``;
    4. return ``mean(w_new * l)``, the loss of the real step, on the SAME forward graph, with the
       reweighter's weights after the update
       (:meth:`~autodata.reweight.BaseReweighter.real_weights`).

The user keeps the loop: ``loss = learner.step(x, y)`` replaces ``loss = criterion(model(x), y)``
and the rest (``backward``, ``optimizer.step``, schedulers, autocast) stays as it was. Between
meta steps (``every=k``) a step is step 1 and 4 with the current weights. The ``online`` method
(:mod:`~autodata.bilevel.online`) instead takes the real optimizer step as its look-ahead and
applies it one step late.

The virtual forwards (:mod:`~autodata.bilevel.replay`) run through
:func:`torch.func.functional_call` with copies of the buffers and inside a fork of the random
state, so the look-ahead never moves BatchNorm statistics, the optimizer's state, the parameters
or the caller's random stream. The real forward of step 1 is the one forward a plain step would
make: BatchNorm statistics move once per step, as in plain training. Step 4 reuses that forward;
for an augmentation policy this means the real step sees the images drawn before the policy's
update (one step stale), as the DARTS-style alternating schemes do.
"""
from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from autodata.augment import BaseAugment, IdentityAugment
from autodata.bilevel import _checks
from autodata.bilevel.hypergrad import HypergradientMethod, MetaProblem, check_radius, make_method
from autodata.bilevel.lookahead import VirtualStep
from autodata.bilevel.online import OnlineUpdater
from autodata.bilevel.replay import RandomState, RecordedForward, Replay
from autodata.reweight import BaseReweighter, UniformReweighter

__all__ = ["MetaLearner", "StepInfo", "cycle"]

LossFn = Callable[[Tensor, Tensor], Tensor]


def _per_sample_cross_entropy(logits: Tensor, targets: Tensor) -> Tensor:
    return F.cross_entropy(logits, targets, reduction="none")


def _mean_cross_entropy(logits: Tensor, targets: Tensor) -> Tensor:
    return F.cross_entropy(logits, targets)


@dataclass(frozen=True)
class StepInfo:
    """What the last call of :meth:`MetaLearner.step` did (for logging).

    Attributes:
        step: index of the step, from 0.
        meta_updated: whether the data components were updated this step.
        train_loss: unweighted mean training loss of the batch.
        meta_loss: validation loss at the look-ahead ``theta'`` (NaN when not updated).
        weights: the per-sample weights used for the real step, detached, shape ``(B,)``.
    """

    step: int
    meta_updated: bool
    train_loss: float
    meta_loss: float
    weights: Tensor


class _MetaStream:
    """Clean validation batches from ``meta_data``, cycled, with a position that can be saved."""

    def __init__(self, data: Iterable[tuple[Tensor, Tensor]] | None) -> None:
        self.data = data
        self._iter: Iterator[tuple[Tensor, Tensor]] | None = None
        self.drawn = 0  # batches drawn so far
        self._skip = 0  # batches a fresh iteration skips (a loaded position without state_dict)

    def next(self) -> tuple[Tensor, Tensor]:
        if self.data is None:
            raise ValueError(
                "step() needs a clean validation batch: pass x_meta and y_meta, or give the "
                "MetaLearner meta_data=<an iterable of (x, y) batches>."
            )
        if self._iter is None:
            self._iter = cycle(self.data)
            for _ in range(self._skip):
                next(self._iter)
            self._skip = 0
        batch = next(self._iter)
        self.drawn += 1
        return batch

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"drawn": self.drawn}
        if hasattr(self.data, "state_dict"):
            state["state"] = self.data.state_dict()
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._iter, self.drawn = None, int(state["drawn"])
        if "state" in state and hasattr(self.data, "load_state_dict"):
            self.data.load_state_dict(state["state"])
            self._skip = 0
        else:  # fast-forward a fresh iteration, which must be deterministic from construction
            self._skip = self.drawn


class MetaLearner:
    """Learns data components on a clean validation set, inside the user's own training loop.

    Args:
        model: any ``nn.Module`` (BatchNorm and dropout included).
        optimizer: the user's real optimizer over the model's parameters (SGD, Adam or AdamW);
            the look-ahead reproduces its update, state included.
        reweighter: per-sample weights (:class:`~autodata.MetaWeightNet`,
            :class:`~autodata.L2RW`); default :class:`~autodata.UniformReweighter`.
        augment: an :class:`~autodata.augment.BaseAugment` (a learnable
            :class:`~autodata.augment.DifferentiablePolicy`, a fixed
            :class:`~autodata.augment.PolicyAugment`); its trainable parameters are
            meta-parameters. Default :class:`~autodata.augment.IdentityAugment`.
        meta_data: where clean validation batches come from when :meth:`step` is not given
            one: any iterable of ``(x, y)`` batches (a ``DataLoader``), cycled.
        method: hypergradient method, a name in
            :data:`~autodata.bilevel.HYPERGRADIENTS` or a method object: ``"exact"``
            (:class:`~autodata.bilevel.Exact`), ``"fd"`` (finite differences,
            :class:`~autodata.bilevel.FiniteDifference`), ``"last"`` (exact, look-ahead on the
            last layer only, :class:`~autodata.bilevel.LastLayers`) or ``"online"`` (finite
            differences of the real step just taken, applied one step late: no extra backward;
            needs one ``optimizer.step()`` after each ``step``, :class:`~autodata.bilevel.Online`).
        every: update the data components every ``every`` steps (1: every step).
        meta_optimizer: optimizer over the components' parameters; default Adam over the
            groups of each component's ``meta_param_groups()``.
        loss_fn: per-sample training loss ``(output, target) -> (B,)``; default cross-entropy.
        meta_loss_fn: validation loss ``(output, target) -> scalar``; default cross-entropy.
        last_layers: for a named ``method="last"``: its ``layers`` (parameter names); default
            the parameters of the model's last module that has any (usually the classifier).
        on_nonfinite: ``"raise"`` (default) raises on a NaN/inf meta loss or hypergradient;
            ``"skip"`` skips that meta update with a warning. A non-finite training loss
            always raises, before anything is changed.
        fd_radius: for a named ``"fd"`` or ``"online"`` method: its ``radius`` (default 1e-2).
        seed: seed of the generator that samples augmentations.

    Example:
        >>> model = torch.nn.Linear(4, 3)
        >>> opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        >>> from autodata import MetaWeightNet
        >>> learner = MetaLearner(model, opt, reweighter=MetaWeightNet(), method="fd")
        >>> x, y = torch.randn(8, 4), torch.randint(0, 3, (8,))
        >>> loss = learner.step(x, y, x, y)  # instead of F.cross_entropy(model(x), y)
        >>> opt.zero_grad(); loss.backward(); opt.step()
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        *,
        reweighter: BaseReweighter | None = None,
        augment: BaseAugment | None = None,
        meta_data: Iterable[tuple[Tensor, Tensor]] | None = None,
        method: str | HypergradientMethod = "exact",
        every: int = 1,
        meta_optimizer: torch.optim.Optimizer | None = None,
        loss_fn: LossFn | None = None,
        meta_loss_fn: LossFn | None = None,
        last_layers: Sequence[str] | None = None,
        on_nonfinite: str = "raise",
        fd_radius: float | None = None,
        seed: int = 0,
    ) -> None:
        self.every = _checks.check_every(every)
        self.on_nonfinite = _checks.check_on_nonfinite(on_nonfinite)
        if fd_radius is not None:
            check_radius(fd_radius, "fd_radius")
        params = {n: p for n, p in model.named_parameters() if p.requires_grad}
        if not params:
            raise ValueError(
                "the model has no trainable parameters (none with requires_grad=True); the "
                "look-ahead needs at least one."
            )
        self.model = model
        self.optimizer = optimizer
        self.params = params
        self.device = next(iter(params.values())).device
        self.reweighter = reweighter if reweighter is not None else UniformReweighter()
        self.augment = augment if augment is not None else IdentityAugment()  # checked by the setter
        layers = _checks.check_last_layers(last_layers, params)
        self.loss_fn = loss_fn or _per_sample_cross_entropy
        self.meta_loss_fn = meta_loss_fn or _mean_cross_entropy
        self._check_labels = loss_fn is None and meta_loss_fn is None
        self.lookahead = VirtualStep(optimizer, params)
        self.replay = Replay(model, params, self.augment, self.loss_fn, self.meta_loss_fn, self._check_targets)
        self.method = make_method(method, radius=fd_radius, layers=layers).bind(self)
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        self.meta_optimizer = meta_optimizer or self._default_meta_optimizer()
        self._meta = _MetaStream(meta_data)
        self.num_steps = 0
        self.last: StepInfo | None = None
        self._closed = False
        self._online = OnlineUpdater(self, self.method) if self.method.delayed and self._learns else None

    @property
    def augment(self) -> BaseAugment:
        """The augmentation; assigning another one (a fixed policy swapped between epochs) is allowed."""
        return self._augment

    @augment.setter
    def augment(self, augment: BaseAugment) -> None:
        _checks.check_components(self.reweighter, augment, self.device)
        self._augment = augment
        if hasattr(self, "replay"):
            self.replay.augment = augment

    def _default_meta_optimizer(self) -> torch.optim.Optimizer | None:
        groups = [*self.reweighter.meta_param_groups(), *self.augment.meta_param_groups()]
        return torch.optim.Adam(groups) if groups else None

    @property
    def meta_parameters(self) -> list[Tensor]:
        """The components' learnable meta-parameters (reweighter first, then augmentation)."""
        return [p for c in (self.reweighter, self.augment) for p in c.parameters() if p.requires_grad]

    @property
    def _learns(self) -> bool:
        return self.reweighter.learns or self.augment.learns

    # ------------------------------------------------------------------ the verb
    def step(self, x: Tensor, y: Tensor, x_meta: Tensor | None = None, y_meta: Tensor | None = None) -> Tensor:
        """Update the data components (every ``every`` steps) and return the real step's loss.

        Call it where the loop computed its loss; back-propagate the result and step the
        optimizer as before. A step that raises counts for nothing (``num_steps`` stays).

        Args:
            x: training inputs, shape ``(B, ...)``, on the model's device.
            y: training targets, shape ``(B,)``.
            x_meta: clean validation inputs, shape ``(M, ...)`` like ``x``; drawn from
                ``meta_data`` when omitted.
            y_meta: clean validation targets, shape ``(M,)``.

        Returns:
            The scalar training loss ``mean(w * l)`` with its graph to the model's parameters.
        """
        _checks.check_batch("training", x, y, self.device)
        index = self.num_steps
        due = index % self.every == 0
        if self._online is not None:
            loss = self._online.step(index, x, y, x_meta, y_meta, due)
        elif self._learns and due and not self._closed:
            loss = self._meta_step(index, x, y, *self._meta_batch(x, y, x_meta, y_meta))
        else:
            loss = self._reweighted_loss(self._real_forward(index, x, y, replayable=False), False, math.nan)
        self.num_steps = index + 1
        return loss

    # ------------------------------------------------------------------ pieces of a step
    def _meta_batch(
        self, x: Tensor, y: Tensor, x_meta: Tensor | None, y_meta: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        if x_meta is None or y_meta is None:
            x_meta, y_meta = self._meta.next()
        _checks.check_batch("meta", x_meta, y_meta, self.device, like=(x, y))
        return x_meta, y_meta

    def _check_targets(self, what: str, y: Tensor, num_classes: int) -> None:
        if self._check_labels:
            _checks.check_targets(what, y, num_classes)

    def _real_forward(self, index: int, x: Tensor, y: Tensor, *, replayable: bool) -> RecordedForward:
        """The step's one real forward: BN statistics move once, as in plain training."""
        buffers = {n: b.clone() for n, b in self.model.named_buffers()}
        rng = RandomState.capture(self.device) if replayable else None
        aug_params = self.augment.sample(x.shape[0], self.generator)
        with torch.set_grad_enabled(replayable and self.augment.learns and not self.method.delayed):
            x_aug = self.augment(x, aug_params)
        logits = self.model(x_aug)
        self._check_targets("training", y, logits.shape[-1])
        losses = self.loss_fn(logits, y)  # (B,)
        _checks.check_losses(index, losses, y.shape[0], self.model, buffers)
        return RecordedForward(index, x, y, aug_params, losses, rng)

    def _step_weights(self, losses: Tensor, y: Tensor) -> tuple[Tensor, list[Tensor]]:
        """The meta step's weights and meta-parameters: the reweighter's, then the augmentation's."""
        weights, params = self.reweighter.step_weights(losses.detach(), y)
        return weights, [*params, *(p for p in self.augment.parameters() if p.requires_grad)]

    def _reweighted_loss(
        self, forward: RecordedForward, updated: bool, meta_loss: float, hypergrads: Sequence[Tensor] | None = None
    ) -> Tensor:
        """``mean(w * l)`` with the reweighter's real weights, recorded in :attr:`last`."""
        losses = forward.losses
        with torch.no_grad():
            if hypergrads is None:
                weights = self.reweighter(losses.detach(), forward.y)
            else:
                weights = self.reweighter.real_weights(losses.detach(), forward.y, hypergrads if updated else None)
        self.last = StepInfo(forward.index, updated, float(losses.detach().mean()), meta_loss, weights.detach())
        return (weights.detach() * losses).mean()

    def _meta_step(self, index: int, x: Tensor, y: Tensor, x_meta: Tensor, y_meta: Tensor) -> Tensor:
        forward = self._real_forward(index, x, y, replayable=True)
        weights, meta_params = self._step_weights(forward.losses, y)
        problem = MetaProblem(
            params=self.params,
            train_loss=(weights * forward.losses).mean(),
            train_loss_at=self.replay.train_loss_at(forward, weights),
            lookahead=self.lookahead,
            meta_loss_at=self.replay.meta_loss_at(x_meta, y_meta),
            meta_params=meta_params,
        )
        hypergrads, meta_loss = self.method(problem)
        updated = self._apply_hypergradients(index, meta_params, hypergrads, meta_loss)
        own = len(meta_params) - sum(1 for p in self.augment.parameters() if p.requires_grad)
        return self._reweighted_loss(forward, updated, float(meta_loss), hypergrads[:own])

    def _nonfinite(self, message: str) -> None:
        if self.on_nonfinite == "raise":
            raise FloatingPointError(message + " Pass on_nonfinite='skip' to skip such meta updates.")
        warnings.warn(message + " The meta update is skipped.", RuntimeWarning, stacklevel=5)

    def _apply_hypergradients(
        self, index: int, meta_params: Sequence[Tensor], hypergrads: Sequence[Tensor], meta_loss: Tensor
    ) -> bool:
        """One meta-optimizer step with ``hypergrads``; ``False`` when skipped (non-finite)."""
        if not torch.isfinite(meta_loss):
            self._nonfinite(f"step {index}: the meta (validation) loss at the look-ahead is {float(meta_loss)}.")
            return False
        for i, g in enumerate(hypergrads):
            if not torch.isfinite(g).all():
                self._nonfinite(f"step {index}: the hypergradient of meta-parameter {i} {tuple(g.shape)} is not finite.")
                return False
        if self.meta_optimizer is None:
            return True
        for p, g in zip(meta_params, hypergrads):
            p.grad = g.detach().to(p.dtype)  # step-local meta-parameters (L2RW) are outside the optimizer
        self.meta_optimizer.step()
        self.meta_optimizer.zero_grad(set_to_none=True)
        return True

    def close(self) -> None:
        """Remove the optimizer hook of the ``online`` method; later steps are plain (nothing is learned)."""
        if self._online is not None:
            self._online.close()
            self._online = None
        self._closed = True

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs to continue bit for bit, for ``torch.save``.

        Holds tensors, dicts, lists, numbers and strings only, so ``torch.load(...,
        weights_only=True)`` reads it: the components, the meta-optimizer, the step count, the
        augmentation generator, the position in ``meta_data`` and the pending step of the
        ``online`` method. Save it after ``optimizer.step()``, together with the model's, the
        optimizer's (and the scheduler's) state, the training data's position and the caller's
        random state (``torch.get_rng_state()``) when the model draws from it (dropout).

        The position in ``meta_data``: when ``meta_data`` has ``state_dict``/``load_state_dict``
        (:class:`~autodata.data.DeviceLoader`) its own state is saved and restored (then iterate
        it only through this learner); otherwise the number of batches drawn is, and the loaded
        learner skips that many batches of a fresh iteration, which is exact only when
        ``meta_data`` yields the same batches each time it is built the same way (a list, a
        ``DataLoader`` with a seeded ``generator``).
        """
        return {
            "method": self.method.name,
            "num_steps": self.num_steps,
            "reweighter": self.reweighter.state_dict(),
            "augment": self.augment.state_dict(),
            "meta_optimizer": None if self.meta_optimizer is None else self.meta_optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "meta_data": self._meta.state_dict(),
            "pending": None if self._online is None else self._online.state_dict(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved, into a learner built the same way."""
        saved = state.get("method", self.method.name)
        if saved != self.method.name:
            raise ValueError(
                f"the state must come from a learner with method={self.method.name!r}, but got one saved with "
                f"method={saved!r}."
            )
        self.num_steps = int(state["num_steps"])
        self.reweighter.load_state_dict(state["reweighter"])
        self.augment.load_state_dict(state["augment"])
        if self.meta_optimizer is not None and state.get("meta_optimizer") is not None:
            self.meta_optimizer.load_state_dict(state["meta_optimizer"])
        self.generator.set_state(state["generator"])
        self._meta.load_state_dict(state.get("meta_data") or {"drawn": 0})
        if self._online is not None:
            self._online.load_state_dict(state.get("pending"))


def cycle(batches: Iterable[tuple[Tensor, Tensor]]) -> Iterator[tuple[Tensor, Tensor]]:
    """Endless iterator over an iterable of batches (restarts it, reshuffling a DataLoader)."""
    for _ in itertools.count():
        empty = True
        for batch in batches:
            empty = False
            yield batch
        if empty:
            raise ValueError("meta_data is empty: the clean validation set yields no batch.")
