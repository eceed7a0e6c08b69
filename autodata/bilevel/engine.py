"""The bilevel meta-gradient engine: one verb, :meth:`MetaLearner.step`, added to the user's loop.

Every learnable data component (a sample reweighter, a differentiable augmentation policy) is
optimized on a clean validation set by the same one-step look-ahead (Shu et al. 2019, Alg. 1;
Liu et al. 2019, eq. 7; Li et al. 2020, eq. 9):

    1. forward the (augmented) training batch, per-sample losses ``l_i``, weights ``w_i``;
    2. ``theta' = step(theta, grad_theta mean(w * l))`` with the user's real optimizer's rule;
    3. hypergradient of the validation loss at ``theta'`` to the components' parameters ``phi``
       (by the method named in ``method``), and one meta-optimizer step on ``phi``;
    4. return ``mean(w_new * l)``, the loss of the real step, on the SAME forward graph.

The user keeps the loop: ``loss = learner.step(x, y)`` replaces ``loss = criterion(model(x), y)``
and the rest (``backward``, ``optimizer.step``, schedulers, autocast) stays as it was.

The virtual forwards run through :func:`torch.func.functional_call` with copies of the buffers,
so the look-ahead never moves BatchNorm statistics, the optimizer's state or the parameters.
The real forward of step 1 is the one forward a plain step would make: BatchNorm statistics
move once per step, as in plain training. Step 4 reuses that forward; for an augmentation
policy this means the real step sees the images drawn before the policy's update (one step
stale), as the DARTS-style alternating schemes do.
"""
from __future__ import annotations

import contextlib
import itertools
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from autodata.bilevel.hypergrad import HYPERGRADIENTS, MetaProblem
from autodata.bilevel.lookahead import VirtualStep
from autodata.augment._base import IdentityAugment
from autodata.reweight import BaseReweighter, UniformReweighter

__all__ = ["MetaLearner", "StepInfo"]

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


@dataclass
class _PendingStep:
    """A forward of the ``online`` method, completed by the optimizer hook when its step is taken."""

    index: int
    x: Tensor
    y: Tensor
    aug_params: Any
    losses: Tensor
    rng_before: _RNGState
    rng_after: _RNGState
    params: dict[str, Tensor] | None = None
    grads: dict[str, Tensor] | None = None
    state: dict[str, Any] | None = None
    groups: dict[str, Any] | None = None


class _RNGState:
    """The random state of the CPU and of a CUDA device at a forward (its dropout masks)."""

    def __init__(self, device: torch.device, cpu: Tensor | None = None, cuda: Tensor | None = None) -> None:
        self.device = device
        self.cpu = torch.get_rng_state() if cpu is None else cpu
        if cuda is None and device.type == "cuda":
            cuda = torch.cuda.get_rng_state(device)
        self.cuda = cuda

    @contextlib.contextmanager
    def replay(self):
        """Run a block with this random state, leaving the caller's random state untouched."""
        with _forked_rng(self.device):
            torch.set_rng_state(self.cpu)
            if self.cuda is not None:
                torch.cuda.set_rng_state(self.cuda, self.device)
            yield


def _forked_rng(device: torch.device):
    """Draws inside the block do not advance the caller's global random state."""
    devices = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    return torch.random.fork_rng(devices=devices)


def _last_parametrized_module(model: nn.Module) -> list[str]:
    last: list[str] = []
    for prefix, module in model.named_modules():
        own = [f"{prefix}.{n}" if prefix else n for n, p in module.named_parameters(recurse=False) if p.requires_grad]
        if own:
            last = own
    return last


class MetaLearner:
    """Learns data components on a clean validation set, inside the user's own training loop.

    Args:
        model: any ``nn.Module`` (BatchNorm and dropout included).
        optimizer: the user's real optimizer over the model's parameters (SGD, Adam or AdamW);
            the look-ahead reproduces its update, state included.
        reweighter: per-sample weights (:class:`~autodata.MetaWeightNet`,
            :class:`~autodata.L2RW`); default uniform weights.
        augment: a differentiable augmentation policy, anything with
            ``sample(batch_size, generator) -> params`` and ``forward(x, params) -> x``; its
            ``parameters()`` are meta-parameters. Default: no augmentation.
        meta_data: where clean validation batches come from when :meth:`step` is not given
            one: any iterable of ``(x, y)`` batches (a ``DataLoader``), cycled.
        method: hypergradient method: ``"exact"``, ``"fd"`` (finite differences), ``"last"``
            (exact, look-ahead on the last layer only; see ``last_layers``) or ``"online"``
            (finite differences of the real step just taken, applied one step late: no extra
            backward; needs ``optimizer.step()`` after each ``step``).
        every: update the data components every ``every`` steps (1: every step).
        meta_optimizer: optimizer over the components' parameters; default Adam with each
            component's ``meta_lr`` and ``meta_weight_decay``.
        loss_fn: per-sample training loss ``(output, target) -> (B,)``; default cross-entropy.
        meta_loss_fn: validation loss ``(output, target) -> scalar``; default cross-entropy.
        last_layers: parameter names for ``method="last"``; default the parameters of the
            model's last module that has any (usually the classifier).
        on_nonfinite: ``"raise"`` (default) raises on a NaN/inf meta loss or hypergradient;
            ``"skip"`` skips that meta update with a warning. A non-finite training loss
            always raises, before anything is changed.
        fd_radius: finite-difference radius for ``method="fd"`` and ``"online"``.
        seed: seed of the generator that samples augmentations.

    Example:
        >>> model = torch.nn.Linear(4, 3)
        >>> opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        >>> from autodata import MetaWeightNet
        >>> learner = MetaLearner(model, opt, reweighter=MetaWeightNet())
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
        augment: nn.Module | None = None,
        meta_data: Iterable[tuple[Tensor, Tensor]] | None = None,
        method: str = "exact",
        every: int = 1,
        meta_optimizer: torch.optim.Optimizer | None = None,
        loss_fn: LossFn | None = None,
        meta_loss_fn: LossFn | None = None,
        last_layers: Sequence[str] | None = None,
        on_nonfinite: str = "raise",
        fd_radius: float = 1e-2,
        seed: int = 0,
    ) -> None:
        if method not in HYPERGRADIENTS:
            raise ValueError(f"method must be one of {sorted(HYPERGRADIENTS)}, but got {method!r}.")
        if not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be a positive integer, but got {every!r}.")
        if on_nonfinite not in ("raise", "skip"):
            raise ValueError(f"on_nonfinite must be 'raise' or 'skip', but got {on_nonfinite!r}.")
        params = {n: p for n, p in model.named_parameters() if p.requires_grad}
        if not params:
            raise ValueError(
                "the model has no trainable parameters (none with requires_grad=True); the "
                "look-ahead needs at least one."
            )
        self.model = model
        self.optimizer = optimizer
        self.reweighter = reweighter if reweighter is not None else UniformReweighter()
        self.augment = augment if augment is not None else IdentityAugment()
        self.method = method
        self.every = every
        self.loss_fn = loss_fn or _per_sample_cross_entropy
        self.meta_loss_fn = meta_loss_fn or _mean_cross_entropy
        self._check_labels = loss_fn is None and meta_loss_fn is None
        self.on_nonfinite = on_nonfinite
        self.fd_radius = fd_radius
        self.params = params
        self.lookahead = VirtualStep(optimizer, params)
        self.last_names = list(last_layers) if last_layers is not None else _last_parametrized_module(model)
        unknown = [n for n in self.last_names if n not in params]
        if unknown:
            raise ValueError(f"last_layers must name trainable parameters of the model, but got unknown {unknown}.")
        self.device = next(iter(params.values())).device
        for name, component in (("reweighter", self.reweighter), ("augment", self.augment)):
            for p in component.parameters():
                if p.device != self.device:
                    raise ValueError(
                        f"the {name}'s parameters are on {p.device} but the model is on "
                        f"{self.device}; move it with .to({str(self.device)!r})."
                    )
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        self.meta_optimizer = meta_optimizer or self._default_meta_optimizer()
        self._meta_data = meta_data
        self._meta_iter: Iterator[tuple[Tensor, Tensor]] | None = None
        self._meta_drawn = 0  # batches drawn from meta_data (its position when it has no state_dict)
        self._meta_skip = 0
        self.num_steps = 0
        self.last: StepInfo | None = None
        self._pending: _PendingStep | None = None
        self._hook = None
        if method == "online":
            if self.reweighter.per_batch:
                raise ValueError(
                    f"method='online' updates the components one step late, which a per-batch "
                    f"reweighter ({type(self.reweighter).__name__}) cannot be; use 'exact' or 'fd'."
                )
            self._hook = optimizer.register_step_pre_hook(self._record_real_step)

    # ------------------------------------------------------------------ construction helpers
    def _default_meta_optimizer(self) -> torch.optim.Optimizer | None:
        groups = []
        for component, lr in ((self.reweighter, 1e-3), (self.augment, 5e-3)):
            params = [p for p in component.parameters() if p.requires_grad]
            if params:
                groups.append(
                    {
                        "params": params,
                        "lr": getattr(component, "meta_lr", lr),
                        "weight_decay": getattr(component, "meta_weight_decay", 0.0),
                    }
                )
        return torch.optim.Adam(groups) if groups else None

    @property
    def meta_parameters(self) -> list[Tensor]:
        """The components' learnable meta-parameters (reweighter first, then augmentation)."""
        return [p for c in (self.reweighter, self.augment) for p in c.parameters() if p.requires_grad]

    @property
    def _learns(self) -> bool:
        return self.reweighter.per_batch or bool(self.meta_parameters)

    # ------------------------------------------------------------------ input checks
    def _next_meta_batch(self) -> tuple[Tensor, Tensor]:
        if self._meta_data is None:
            raise ValueError(
                "step() needs a clean validation batch: pass x_meta and y_meta, or give the "
                "MetaLearner meta_data=<an iterable of (x, y) batches>."
            )
        if self._meta_iter is None:
            self._meta_iter = cycle(self._meta_data)
            for _ in range(self._meta_skip):  # fast-forward to the position of a loaded state
                next(self._meta_iter)
            self._meta_skip = 0
        self._meta_drawn += 1
        return next(self._meta_iter)

    def _check_batch(self, what: str, x: Tensor, y: Tensor) -> None:
        if x.shape[0] == 0:
            raise ValueError(f"the {what} batch is empty (0 samples); the meta set needs at least one sample.")
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"the {what} batch has {x.shape[0]} inputs but {y.shape[0]} targets.")
        for t in (x, y):
            if t.device != self.device:
                raise ValueError(
                    f"the {what} batch is on {t.device} but the model is on {self.device}; "
                    f"move it with .to({str(self.device)!r})."
                )

    def _check_targets(self, what: str, y: Tensor, num_classes: int) -> None:
        if not self._check_labels:
            return
        if y.dtype.is_floating_point:
            return  # soft targets: cross_entropy checks their shape
        lo, hi = int(y.min()), int(y.max())
        if lo < 0 or hi >= num_classes:
            raise ValueError(
                f"{what} labels must lie in [0, {num_classes}) for a model with {num_classes} "
                f"outputs, but got labels from {lo} to {hi}."
            )

    def _nonfinite(self, message: str) -> None:
        if self.on_nonfinite == "raise":
            raise FloatingPointError(message + " Pass on_nonfinite='skip' to skip such meta updates.")
        warnings.warn(message + " The meta update is skipped.", RuntimeWarning, stacklevel=3)

    def _snapshot_buffers(self) -> dict[str, Tensor]:
        return {n: b.clone() for n, b in self.model.named_buffers()}

    # ------------------------------------------------------------------ virtual forwards
    def _virtual_state(self, new: Mapping[str, Tensor]) -> dict[str, Tensor]:
        state = {n: new[n] if n in new else p.detach() for n, p in self.params.items()}
        state.update({n: b.clone() for n, b in self.model.named_buffers()})  # BN stats stay put
        return state

    def _replay_loss(
        self, x: Tensor, y: Tensor, aug_params: Any, weights: Tensor, rng_before: _RNGState, rng_after: _RNGState
    ) -> Callable[[Mapping[str, Tensor]], Tensor]:
        """The training loss of a recorded forward, at other parameter values (``train_loss_at``)."""
        augment_learns = any(p.requires_grad for p in self.augment.parameters())

        def train_loss_at(new: Mapping[str, Tensor]) -> Tensor:
            with rng_before.replay(), torch.set_grad_enabled(augment_learns):  # the real forward's dropout masks
                out = functional_call(self.model, self._virtual_state(new), (self.augment(x, aug_params),))
                replay = self.loss_fn(out, y)
            return (weights * replay).mean()

        return train_loss_at

    def _meta_loss(self, x_meta: Tensor, y_meta: Tensor) -> Callable[[Mapping[str, Tensor]], Tensor]:
        """The clean validation loss at given parameter values (``meta_loss_at``)."""

        def meta_loss_at(new: Mapping[str, Tensor]) -> Tensor:
            with _forked_rng(self.device):  # its dropout draws leave the caller's random state alone
                out = functional_call(self.model, self._virtual_state(new), (x_meta,))
            self._check_targets("meta", y_meta, out.shape[-1])
            return self.meta_loss_fn(out, y_meta)

        return meta_loss_at

    # ------------------------------------------------------------------ the verb
    def step(self, x: Tensor, y: Tensor, x_meta: Tensor | None = None, y_meta: Tensor | None = None) -> Tensor:
        """Update the data components (every ``every`` steps) and return the real step's loss.

        Call it where the loop computed its loss; back-propagate the result and step the
        optimizer as before.

        Args:
            x: training inputs, shape ``(B, ...)``, on the model's device.
            y: training targets, shape ``(B,)``.
            x_meta: clean validation inputs; drawn from ``meta_data`` when omitted.
            y_meta: clean validation targets.

        Returns:
            The scalar training loss ``mean(w * l)`` with its graph to the model's parameters.
        """
        self._check_batch("training", x, y)
        index = self.num_steps
        self.num_steps += 1
        if self.method == "online" and self._learns:
            return self._online_step(index, x, y, x_meta, y_meta)
        if not self._learns or index % self.every != 0:
            return self._plain_step(index, x, y)
        if x_meta is None or y_meta is None:
            x_meta, y_meta = self._next_meta_batch()
        self._check_batch("meta", x_meta, y_meta)
        return self._meta_step(index, x, y, x_meta, y_meta)

    def _per_sample_losses(self, index: int, logits: Tensor, y: Tensor, buffers: dict[str, Tensor]) -> Tensor:
        self._check_targets("training", y, logits.shape[-1])
        losses = self.loss_fn(logits, y)
        if losses.dim() != 1 or losses.shape[0] != y.shape[0]:
            raise ValueError(f"loss_fn must return per-sample losses of shape ({y.shape[0]},), but got {tuple(losses.shape)}.")
        if not torch.isfinite(losses).all():
            bad = int((~torch.isfinite(losses)).sum())
            with torch.no_grad():  # undo the forward's BatchNorm update: the model loses nothing
                for name, b in self.model.named_buffers():
                    b.copy_(buffers[name])
            raise FloatingPointError(
                f"step {index}: the training loss is not finite for {bad} of {losses.numel()} "
                f"samples. Nothing was updated; check the inputs for NaN/inf and lower the "
                f"learning rate."
            )
        return losses

    def _real_forward(
        self, index: int, x: Tensor, y: Tensor, *, replayable: bool, augment_grad: bool = False
    ) -> tuple[Tensor, Any, _RNGState | None, _RNGState | None]:
        """The step's one real forward: BN statistics move once, as in plain training.

        Returns the per-sample losses, the sampled augmentation and, when ``replayable``, the
        random state before and after the forward (to replay its dropout masks).
        """
        buffers = self._snapshot_buffers()
        rng_before = _RNGState(self.device) if replayable else None
        aug_params = self.augment.sample(x.shape[0], self.generator)
        with torch.set_grad_enabled(augment_grad):
            x_aug = self.augment(x, aug_params)
        losses = self._per_sample_losses(index, self.model(x_aug), y, buffers)
        rng_after = _RNGState(self.device) if replayable else None
        return losses, aug_params, rng_before, rng_after

    def _reweighted_loss(self, index: int, losses: Tensor, y: Tensor, updated: bool, meta_loss: float) -> Tensor:
        """``mean(w * l)`` with the reweighter's current weights, recorded in :attr:`last`."""
        with torch.no_grad():
            weights = self.reweighter(losses.detach(), y)
        self.last = StepInfo(index, updated, float(losses.detach().mean()), meta_loss, weights)
        return (weights * losses).mean()

    def _plain_step(self, index: int, x: Tensor, y: Tensor) -> Tensor:
        losses, _, _, _ = self._real_forward(index, x, y, replayable=False)
        return self._reweighted_loss(index, losses, y, False, float("nan"))

    def _meta_step(self, index: int, x: Tensor, y: Tensor, x_meta: Tensor, y_meta: Tensor) -> Tensor:
        losses, aug_params, rng_before, rng_after = self._real_forward(
            index, x, y, replayable=True, augment_grad=True
        )

        per_batch = self.reweighter.per_batch
        if per_batch:
            zero_weights = torch.zeros_like(losses.detach(), requires_grad=True)
            weights = zero_weights
            meta_params = [zero_weights, *(p for p in self.augment.parameters() if p.requires_grad)]
        else:
            weights = self.reweighter(losses.detach(), y)
            meta_params = self.meta_parameters
        train_loss_at = self._replay_loss(x, y, aug_params, weights, rng_before, rng_after)
        meta_loss_at = self._meta_loss(x_meta, y_meta)

        problem = MetaProblem(
            params=self.params,
            train_loss=(weights * losses).mean(),
            train_loss_at=train_loss_at,
            lookahead=self.lookahead,
            meta_loss_at=meta_loss_at,
            meta_params=meta_params,
            last_names=self.last_names,
            fd_radius=self.fd_radius,
        )
        hypergrads, meta_loss = HYPERGRADIENTS[self.method](problem)

        updated = self._apply_hypergradients(index, meta_params, hypergrads, meta_loss, per_batch)
        with torch.no_grad():
            if per_batch:
                real_weights = (
                    self.reweighter.weights_from_hypergradient(hypergrads[0]) if updated else torch.ones_like(losses)
                )
            else:
                real_weights = self.reweighter(losses.detach(), y)
        self.last = StepInfo(index, updated, float(losses.detach().mean()), float(meta_loss), real_weights)
        return (real_weights.detach() * losses).mean()

    def _record_real_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        """Optimizer step pre-hook (``online``): record the real step's gradient and pre-step state."""
        pending = self._pending
        if pending is None or pending.grads is not None:
            return
        pending.params = {n: p.detach().clone() for n, p in self.params.items()}
        pending.grads = {
            n: torch.zeros_like(p) if p.grad is None else p.grad.detach().clone() for n, p in self.params.items()
        }
        pending.state = self.lookahead.snapshot_state()
        pending.groups = self.lookahead.snapshot_groups()

    def _online_step(
        self, index: int, x: Tensor, y: Tensor, x_meta: Tensor | None, y_meta: Tensor | None
    ) -> Tensor:
        updated, meta_loss = False, float("nan")
        record, self._pending = self._pending, None
        if record is not None and record.grads is not None:  # the real step of that batch was taken
            if x_meta is None or y_meta is None:
                x_meta, y_meta = self._next_meta_batch()
            self._check_batch("meta", x_meta, y_meta)
            weights = self.reweighter(record.losses, record.y)  # graph to the reweighter's parameters
            meta_params = self.meta_parameters
            problem = MetaProblem(
                params=record.params,
                train_loss=None,
                train_loss_at=self._replay_loss(
                    record.x, record.y, record.aug_params, weights, record.rng_before, record.rng_after
                ),
                lookahead=lambda g: self.lookahead(g, params=record.params, state=record.state, groups=record.groups),
                meta_loss_at=self._meta_loss(x_meta, y_meta),
                meta_params=meta_params,
                fd_radius=self.fd_radius,
                grads=record.grads,
            )
            hypergrads, loss = HYPERGRADIENTS["online"](problem)
            meta_loss = float(loss)
            updated = self._apply_hypergradients(record.index, meta_params, hypergrads, loss, False)

        record_this = index % self.every == 0
        losses, aug_params, rng_before, rng_after = self._real_forward(index, x, y, replayable=record_this)
        if record_this:
            self._pending = _PendingStep(index, x, y, aug_params, losses.detach(), rng_before, rng_after)
        return self._reweighted_loss(index, losses, y, updated, meta_loss)

    def close(self) -> None:
        """Remove the optimizer hook of the ``online`` method (the learner stops learning)."""
        if self._hook is not None:
            self._hook.remove()
            self._hook = None

    def _apply_hypergradients(
        self, index: int, meta_params: Sequence[Tensor], hypergrads: Sequence[Tensor], meta_loss: Tensor, per_batch: bool
    ) -> bool:
        if not torch.isfinite(meta_loss):
            self._nonfinite(f"step {index}: the meta (validation) loss at the look-ahead is {float(meta_loss)}.")
            return False
        for i, g in enumerate(hypergrads):
            if not torch.isfinite(g).all():
                self._nonfinite(f"step {index}: the hypergradient of meta-parameter {i} {tuple(g.shape)} is not finite.")
                return False
        if self.meta_optimizer is None:
            return True
        offset = 1 if per_batch else 0
        for p, g in zip(meta_params[offset:], hypergrads[offset:]):
            p.grad = g.detach().to(p.dtype)
        self.meta_optimizer.step()
        self.meta_optimizer.zero_grad(set_to_none=True)
        return True

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs to continue bit for bit, for ``torch.save``.

        Holds tensors, dicts, lists, numbers and strings only, so ``torch.load(...,
        weights_only=True)`` reads it: the components, the meta-optimizer, the step count, the
        augmentation generator, the position in ``meta_data`` and the pending step of the
        ``online`` method. Save it after ``optimizer.step()``, together with the model's, the
        optimizer's (and the scheduler's) state and the caller's random state
        (``torch.get_rng_state()``) when the model draws from it (dropout).

        The position in ``meta_data``: when ``meta_data`` has ``state_dict``/``load_state_dict``
        (:class:`~autodata.data.DeviceLoader`) its own state is saved; otherwise the number of
        batches drawn is, and the loaded learner skips that many batches of a fresh iteration,
        which is exact only when ``meta_data`` yields the same batches each time it is built the
        same way (a list, a seeded ``DataLoader``).
        """
        meta: dict[str, Any] = {"drawn": self._meta_drawn + self._meta_skip}
        if self._meta_data is not None and hasattr(self._meta_data, "state_dict"):
            meta["state"] = self._meta_data.state_dict()
        return {
            "num_steps": self.num_steps,
            "reweighter": self.reweighter.state_dict(),
            "augment": self.augment.state_dict(),
            "meta_optimizer": None if self.meta_optimizer is None else self.meta_optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "meta_data": meta,
            "pending": None if self._pending is None else self._pending_to_state(self._pending),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved (into a learner built the same way)."""
        self.num_steps = int(state["num_steps"])
        self.reweighter.load_state_dict(state["reweighter"])
        self.augment.load_state_dict(state["augment"])
        if self.meta_optimizer is not None and state.get("meta_optimizer") is not None:
            self.meta_optimizer.load_state_dict(state["meta_optimizer"])
        self.generator.set_state(state["generator"])
        meta = state.get("meta_data") or {"drawn": 0}
        self._meta_iter, self._meta_drawn, self._meta_skip = None, int(meta["drawn"]), 0
        if "state" in meta and self._meta_data is not None and hasattr(self._meta_data, "load_state_dict"):
            self._meta_data.load_state_dict(meta["state"])
        else:
            self._meta_drawn, self._meta_skip = 0, int(meta["drawn"])
        pending = state.get("pending")
        self._pending = None if pending is None else self._pending_from_state(pending)

    def _pending_to_state(self, p: _PendingStep) -> dict[str, Any]:
        params_to_state = getattr(self.augment, "params_to_state", None)
        return {
            "index": p.index, "x": p.x, "y": p.y, "losses": p.losses,
            "aug_params": None if p.aug_params is None else params_to_state(p.aug_params),
            "rng": {"cpu": p.rng_before.cpu, "cuda": p.rng_before.cuda},
            "params": p.params, "grads": p.grads, "state": p.state, "groups": p.groups,
        }

    def _pending_from_state(self, s: Mapping[str, Any]) -> _PendingStep:
        rng = _RNGState(self.device, s["rng"]["cpu"], s["rng"]["cuda"])
        aug = s["aug_params"]
        return _PendingStep(
            int(s["index"]), s["x"], s["y"], None if aug is None else self.augment.params_from_state(aug),
            s["losses"], rng, rng, s["params"], s["grads"], s["state"], s["groups"],
        )


def cycle(batches: Iterable[tuple[Tensor, Tensor]]) -> Iterator[tuple[Tensor, Tensor]]:
    """Endless iterator over an iterable of batches (restarts it, reshuffling a DataLoader)."""
    for _ in itertools.count():
        empty = True
        for batch in batches:
            empty = False
            yield batch
        if empty:
            raise ValueError("meta_data is empty: the clean validation set yields no batch.")
