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
and the rest (``backward``, ``optimizer.step``, schedulers, autocast) stays as it was. The loop's
own habits are told to the learner once: gradient accumulation over micro-batches
(``accumulation_steps``: one meta update per optimizer step, from the accumulated step),
gradient clipping (``max_grad_norm``: the look-ahead clips as ``clip_grad_norm_`` does), inputs
that are not one tensor (``inputs``: a dict or tuple batch to the model's arguments).
A ``torch.compile``d model works with every method: the forwards that a step differentiates
itself before the user's backward (a non-delayed meta step, L2RW's step bound) run the plain
module, which shares the compiled model's parameters (a compiled graph is not safe to backward
twice, and AOTAutograd has no double backward), and so do the delayed methods' recorded forwards
when the model draws random numbers (dropout: their replays need its masks, which an inductor
graph draws its own way); every other step (nothing learned, the steps between every-k updates,
the delayed methods' real steps otherwise) runs the compiled graph. A model compiled in place
(``model.compile()``) runs its uncompiled call there, and ``torch.compile(DDP(model))`` its DDP
wrapper, which all-reduces the real step's gradients; ``DDP(torch.compile(model))`` has no plain
forward through DDP, so it takes the one-step-late methods only.
``DistributedDataParallel`` models work with the first-order methods (``jvp``, ``jvp-online``,
``fd``, ``online``): the real forward must go through DDP to all-reduce the model's gradients,
and DDP has no double backward; the hypergradients are averaged over the ranks, so every rank
holds the same components after each step. Between meta steps (``every=k``) a step is step 1
and 4 with the current weights. The ``online`` and
``jvp-online`` methods (:mod:`~autodata.bilevel.online`) instead take the real optimizer step as
their look-ahead and apply it one step late.

The virtual forwards (:mod:`~autodata.bilevel.replay`) run through
:func:`torch.func.functional_call` with copies of the buffers and inside a fork of the random
state, so the look-ahead never moves BatchNorm statistics, the optimizer's state, the parameters
or the caller's random stream. The real forward of step 1 is the one forward a plain step would
make: BatchNorm statistics move once per step, as in plain training. Step 4 reuses that forward;
for an augmentation policy this means the real step sees the images drawn before the policy's
update (one step stale), as the DARTS-style alternating schemes do.
"""
from __future__ import annotations

import functools
import itertools
import math
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from autodata.augment import BaseAugment, IdentityAugment
from autodata.bilevel import _checks
from autodata.bilevel.hypergrad import HYPERGRADIENTS, HypergradientMethod, MetaProblem, check_radius, make_method
from autodata.bilevel.guard import DivergenceGuard, bound_step, last_layer
from autodata.bilevel.lookahead import VirtualStep
from autodata.bilevel.online import OnlineUpdater
from autodata.bilevel.replay import Inputs, RandomState, RecordedForward, Replay, as_model_inputs
from autodata.bilevel.wrappers import find_ddp, is_compiled, plain_forward, unwrap
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
        fallback: the divergence guard replaced the learned weights by uniform ones
            (:mod:`~autodata.bilevel.guard`).
        stalled: the reweighter says it has stopped learning
            (:meth:`~autodata.reweight.BaseReweighter.stalled`; warned once when it starts).
    """

    step: int
    meta_updated: bool
    train_loss: float
    meta_loss: float
    weights: Tensor
    fallback: bool = False
    stalled: bool = False


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
            (:class:`~autodata.bilevel.Exact`), ``"jvp"`` (exact, forward mode, no double
            backward, :class:`~autodata.bilevel.ForwardMode`), ``"fd"`` (finite differences,
            :class:`~autodata.bilevel.FiniteDifference`), ``"last"`` (exact, look-ahead on the
            last layer only, :class:`~autodata.bilevel.LastLayers`), ``"online"`` (finite
            differences of the real step just taken, applied one step late: no extra backward;
            needs one ``optimizer.step()`` after each ``step``, :class:`~autodata.bilevel.Online`)
            or ``"jvp-online"`` (the same hypergradient exactly, forward mode,
            :class:`~autodata.bilevel.OnlineForwardMode`).
        every: update the data components every ``every`` optimizer steps (1: every step).
        scale_meta_lr: with ``every=k``, the default meta-optimizer takes each component's meta
            learning rate times ``k`` (set when the learner is built): one meta update stands for
            ``k`` steps, and an Adam step is about its learning rate long, so the components drift
            about as far per epoch as at ``every=1`` (a noisy hypergradient's jitter grows with
            it). Groups that say ``"scale_with_every": False`` keep their rate (RELAX's control
            variate). ``False`` keeps every rate; a ``meta_optimizer`` given here is never
            changed, and :meth:`load_state_dict` restores the saved rates. Measured for
            Meta-Weight-Net with ``jvp-online`` every 3 and 4 (BENCHMARKS.md, "Every-k with the
            meta learning rate scaled by k"); not measured for a learned policy.
        meta_optimizer: optimizer over the components' parameters; default Adam over the
            groups of each component's ``meta_param_groups()``.
        loss_fn: per-sample training loss ``(output, target) -> (B,)``; default cross-entropy.
        meta_loss_fn: validation loss ``(output, target) -> scalar``; default cross-entropy.
        last_layers: for a named ``method="last"``: its ``layers`` (parameter names); default
            the parameters of the model's last module that has any (usually the classifier).
        on_nonfinite: ``"raise"`` (default) raises on a NaN/inf meta loss or hypergradient;
            ``"skip"`` skips that meta update with a warning. A non-finite training loss
            always raises, before anything is changed.
        fd_radius: for a named method with finite differences (``"fd"``, ``"online"``; the
            augmentation's parameters under ``"jvp"``, ``"jvp-online"``): its ``radius``, the
            norm of the parameters' move along the look-ahead direction (default: the method's).
        seed: seed of the generator that samples augmentations.
        inputs: the batch's inputs ``x`` -> the model's ``(args, kwargs)``, for a model that does
            not take one tensor: ``inputs=lambda b: ((), b)`` calls ``model(**b)`` for a dict
            batch, ``lambda b: (b, {})`` calls ``model(*b)`` for a tuple. ``x`` may then be a
            dict/tuple/list of tensors with the batch dimension first (no augmentation).
        max_grad_norm: the loop clips with ``clip_grad_norm_(model.parameters(), max_grad_norm)``
            before ``optimizer.step()``: the look-ahead clips its gradient the same way. Without
            it the look-ahead assumes an unclipped step.
        accumulation_steps: the loop accumulates gradients over this many ``step()`` calls
            (micro-batches, each back-propagating ``loss / accumulation_steps``) per
            ``optimizer.step()``. The components are updated once per optimizer step, from the
            accumulated step, with the first-order methods (``jvp``, ``jvp-online``, ``fd``, ``online``).
        guard: watch the validation loss at the look-ahead; when it climbs past twice its best
            (:class:`~autodata.bilevel.guard.DivergenceGuard`), warn and train with uniform
            weights until it is back. ``False`` turns the guard off.

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
        scale_meta_lr: bool = True,
        meta_optimizer: torch.optim.Optimizer | None = None,
        loss_fn: LossFn | None = None,
        meta_loss_fn: LossFn | None = None,
        last_layers: Sequence[str] | None = None,
        on_nonfinite: str = "raise",
        fd_radius: float | None = None,
        seed: int = 0,
        inputs: Inputs | None = None,
        max_grad_norm: float | None = None,
        accumulation_steps: int = 1,
        guard: bool = True,
    ) -> None:
        self.every = _checks.check_every(every)
        self.scale_meta_lr = _checks.check_flag(scale_meta_lr, "scale_meta_lr")
        self.accumulation_steps = _checks.check_every(accumulation_steps, "accumulation_steps")
        self.on_nonfinite = _checks.check_on_nonfinite(on_nonfinite)
        if fd_radius is not None:
            check_radius(fd_radius, "fd_radius")
        self.module = unwrap(model)  # the plain module under torch.compile / DDP: names, replays
        params = {n: p for n, p in self.module.named_parameters() if p.requires_grad}
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
        self.inputs = inputs if inputs is not None else as_model_inputs
        self.lookahead = VirtualStep(optimizer, params, max_grad_norm)
        self.replay = Replay(model, params, self.augment, self.loss_fn, self.meta_loss_fn, self._check_targets, self.inputs)
        self.method = make_method(method, radius=fd_radius, layers=layers).bind(self)
        self._ddp = find_ddp(model)  # under a torch.compile wrapper too: torch.compile(DDP(model))
        self._distributed = self._ddp is not None
        if self._distributed:
            self.reweighter.data_parallel(self._reduce)
        self._fits = functools.partial(_check_method_fits, self.method, self._distributed,
                                       self.accumulation_steps, max_grad_norm, plain_forward(model) is not None)
        if self._learns:  # a method that never runs is not checked (a DDP model trained with nothing learned)
            self._fits()
        if self.augment.needs_rewards:
            _check_rewards_fit(self.method, self.accumulation_steps)
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        self.meta_optimizer = meta_optimizer or self._default_meta_optimizer()
        self._meta = _MetaStream(meta_data)
        self.num_steps = 0
        self.last: StepInfo | None = None
        self.last_rewards: Tensor | None = None  # the last meta step's per-sample rewards (needs_rewards)
        self._closed = False
        self._online = OnlineUpdater(self, self.method) if self.method.delayed and self._learns else None
        self.guard = DivergenceGuard() if guard else None
        self._group: list[RecordedForward] = []  # earlier micro-batches of this optimizer step
        self._draws: bool | None = None  # whether a recorded real forward drew random numbers (None: none seen)
        self._since_real_step = 0  # step() calls since the last optimizer.step()
        self._warned_no_real_step = False
        self._learned_from_start = self._learns
        self._hook = optimizer.register_step_post_hook(self._real_step_taken) if self._learns else None

    @property
    def augment(self) -> BaseAugment:
        """The augmentation; assigning another one (a fixed policy swapped between epochs) is allowed."""
        return self._augment

    @augment.setter
    def augment(self, augment: BaseAugment) -> None:
        _checks.check_components(self.reweighter, augment, self.device)
        self._check_arriving("augmentation", augment)
        if augment.needs_rewards and hasattr(self, "method"):
            _check_rewards_fit(self.method, self.accumulation_steps)
        self._augment = augment
        if hasattr(self, "replay"):
            self.replay.augment = augment

    @property
    def reweighter(self) -> BaseReweighter:
        """The sample reweighter; assigning another one is checked as an augmentation is."""
        return self._reweighter

    @reweighter.setter
    def reweighter(self, reweighter: BaseReweighter) -> None:
        if hasattr(self, "_augment"):  # (while constructing, the augmentation's setter checks both)
            _checks.check_components(reweighter, self._augment, self.device)
        self._check_arriving("reweighter", reweighter)
        self._reweighter = reweighter

    def _check_arriving(self, what: str, component: BaseReweighter | BaseAugment) -> None:
        """Refuse a learned component assigned after construction that this learner cannot learn.

        The meta-optimizer, the optimizer hooks and the ``online`` updater are set up in the
        constructor for the components given there: a learned component assigned later to a
        learner built with nothing learned, or whose meta-parameters the meta-optimizer does
        not hold, would never be updated (while ``last.meta_updated`` said it was).
        """
        if not getattr(component, "learns", False) or not hasattr(self, "_hook") or self._closed:
            return  # nothing learned, still constructing, or closed (plain steps)
        self._fits()
        if not self._learned_from_start:
            raise ValueError(
                f"a learned {what} must be given to MetaLearner(...), which sets up its meta-optimizer and optimizer "
                f"hooks, but this learner was built with nothing learned; build a new MetaLearner with it."
            )
        if self.method.delayed and getattr(component, "per_batch", False):
            raise ValueError(
                f"method={self.method.name!r} updates the components one step late, which a per-batch reweighter "
                f"({type(component).__name__}) cannot be; use 'exact', 'jvp' or 'fd'."
            )
        held = {id(p) for group in getattr(self.meta_optimizer, "param_groups", []) for p in group["params"]}
        if any(p.requires_grad and id(p) not in held for p in component.parameters()):
            raise ValueError(
                f"the {what}'s meta-parameters must be in the learner's meta-optimizer, but some are not (the default "
                f"one holds those of the components given to MetaLearner); pass meta_optimizer=... over them, or "
                f"build a new MetaLearner."
            )

    def _real_step_taken(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        self._since_real_step = 0

    def _default_meta_optimizer(self) -> torch.optim.Optimizer | None:
        groups = [*self.reweighter.meta_param_groups(), *self.augment.meta_param_groups()]
        if not groups:
            return None
        optimizer = torch.optim.Adam(groups)
        if self.scale_meta_lr:  # one meta update stands for `every` steps (not an estimator's own parts)
            for group in optimizer.param_groups:
                if group.get("scale_with_every", True):
                    group["lr"] *= self.every
        return optimizer

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
        if not isinstance(x, Tensor) and not isinstance(self.augment, IdentityAugment):
            raise ValueError(
                f"an augmentation acts on an image tensor, but the training batch's x is a {type(x).__name__}; "
                f"augment the images in your loader, or pass a tensor."
            )
        index = self.num_steps
        k = self.accumulation_steps
        micro, optimizer_step = index % k, index // k
        due = optimizer_step % self.every == 0
        if self._online is not None:
            loss = self._online.step(index, x, y, x_meta, y_meta, due, micro)
        elif self._learns and due and not self._closed:
            self._check_real_step_taken(index)
            if micro < k - 1:  # an earlier micro-batch: recorded, the meta update waits for the last
                forward = self._real_forward(index, x, y, replayable=True)
                self._group.append(forward.detached())
                loss = self._reweighted_loss(forward, False, math.nan)
            else:
                loss = self._meta_step(index, x, y, *self._meta_batch(x, y, x_meta, y_meta))
        else:
            loss = self._reweighted_loss(self._real_forward(index, x, y, replayable=False), False, math.nan)
        self.num_steps = index + 1
        self._since_real_step += 1
        return loss

    def _check_real_step_taken(self, index: int) -> None:
        """Warn (once) when meta steps come faster than optimizer steps: unannounced accumulation."""
        if self._since_real_step >= self.accumulation_steps and not self._warned_no_real_step:
            self._warned_no_real_step = True
            warnings.warn(
                f"step {index}: {self._since_real_step} step() calls since the last optimizer.step(), but "
                f"accumulation_steps={self.accumulation_steps}: each meta update looks ahead as if every step() were "
                f"an optimizer step. With gradient accumulation pass accumulation_steps=<micro-batches per "
                f"optimizer step> (a GradScaler that skipped an inf/NaN step also shows this once).",
                RuntimeWarning, stacklevel=3,
            )

    # ------------------------------------------------------------------ pieces of a step
    def _meta_batch(
        self, x: Tensor, y: Tensor, x_meta: Tensor | None, y_meta: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        if x_meta is None or y_meta is None:
            x_meta, y_meta = self._meta.next()
        # a CPU loader feeding a model on an accelerator: move the clean batch to the model
        x_meta, y_meta = _checks.to_device(x_meta, self.device), _checks.to_device(y_meta, self.device)
        _checks.check_batch("meta", x_meta, y_meta, self.device, like=(x, y))
        return x_meta, y_meta

    def _check_targets(self, what: str, y: Tensor, num_classes: int) -> None:
        if self._check_labels:
            _checks.check_targets(what, y, num_classes)

    def _real_forward(self, index: int, x: Tensor, y: Tensor, *, replayable: bool) -> RecordedForward:
        """The step's one real forward: BN statistics move once, as in plain training."""
        buffers = {n: b.clone() for n, b in self.module.named_buffers()}
        rng = RandomState.capture(self.device) if replayable else None
        aug_params = self.augment.sample(_checks.batch_size(x), self.generator)
        with torch.set_grad_enabled(replayable and self.augment.learns and not self.method.delayed):
            x_aug = self.augment(x, aug_params)
        args, kwargs = self.inputs(x_aug)
        logits = self._forward_model(replayable)(*args, **kwargs)
        if rng is not None and not self._draws:  # (once it drew, it stays drawing)
            self._draws = rng.moved()
        self._check_targets("training", y, logits.shape[-1])
        losses = self.loss_fn(logits, y)  # (B,)
        _checks.check_losses(index, losses, y.shape[0], self.module, buffers)
        return RecordedForward(index, x, y, aug_params, losses, rng, augment=self.augment)

    def _forward_model(self, replayable: bool) -> Callable[..., Any]:
        """The module of a real forward: the plain one where this step differentiates the forward itself.

        A meta step (and L2RW's step bound) differentiates the real forward with ``retain_graph=True``
        before the user's ``loss.backward()``: two backwards of one graph. A compiled graph is not safe
        for that: a graph compiled with donated buffers refuses it, and one compiled with inductor's
        buffer reuse gave gradients off by up to 0.26 on the second backward (a BatchNorm model) --
        and Dynamo serves a graph compiled anywhere in the process for the same architecture, with
        the settings it was compiled with -- and the second-order methods (``exact``, ``last``)
        differentiate it twice more (``create_graph=True``), which AOTAutograd does not support. So
        those forwards run the plain module, which holds the compiled model's parameters; every other
        step (nothing learned, the steps between every-k updates, the delayed methods' real steps)
        runs the compiled one. The step's other forwards (look-ahead, replay, validation) always run
        the plain module through :func:`torch.func.functional_call`. The plain forward keeps a
        DistributedDataParallel wrapper (:func:`~autodata.bilevel.wrappers.plain_forward`), which all-reduces the real step's
        gradients.

        A delayed method's recorded forward (``replayable``) is replayed later with its random draws
        (dropout masks) by the plain module; a compiled graph may draw its own way (inductor's own
        random numbers: the replayed per-sample losses were off by up to 0.5 with dropout). So it runs
        the plain module until one has run without drawing random numbers, and again once a
        recorded forward has drawn some.
        """
        if not is_compiled(self.model):
            return self.model
        plain = plain_forward(self.model)  # per call: the model may have been compiled in place after construction
        if plain is None:
            return self.model
        differentiated = self._learns and replayable and not self.method.delayed
        if differentiated or self.reweighter.max_step_ratio is not None:
            return plain
        if replayable and self._learns and self._draws is not False:
            return plain
        return self.model

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
        bound = self.reweighter.max_step_ratio
        if bound is not None and losses.requires_grad:  # the step is at most `bound` x the uniform one
            weights = bound_step(weights, losses, last_layer(self.params), bound)[0]
        fallback = False
        if self.guard is not None and self.reweighter.learns:
            switched = self.guard.update(meta_loss) if updated else None
            if switched is not None:
                warnings.warn(
                    f"step {forward.index}: the validation loss at the look-ahead ({self.guard.ema:.3g}, smoothed) "
                    + (f"climbed past {self.guard.factor:g} times its best ({self.guard.best:.3g}): training diverges with the learned "
                       f"weights; uniform weights until it recovers (lower the meta learning rate or the "
                       f"optimizer's, or pass guard=False)." if switched else
                       "is back near its best: the learned weights are used again."),
                    RuntimeWarning, stacklevel=4,
                )
            if self.guard.active:
                weights, fallback = torch.ones_like(weights), True
        stalled = self.last.stalled if self.last is not None else False
        if updated:
            reason = self.reweighter.stalled()
            if reason is not None and not stalled:
                warnings.warn(f"step {forward.index}: {reason}", RuntimeWarning, stacklevel=4)
            stalled = reason is not None
        self.last = StepInfo(forward.index, updated, float(losses.detach().mean()), meta_loss, weights.detach(), fallback, stalled)
        return (weights.detach() * losses).mean()

    def _augment_params(self) -> list[Tensor]:
        return [p for p in self.augment.parameters() if p.requires_grad]

    def _reduce(self, tensors: list[Tensor]) -> list[Tensor]:
        """The mean over the data-parallel ranks (DDP), as the real step's gradient is; else as is."""
        if not self._distributed:
            return tensors
        import torch.distributed as dist

        group = getattr(self._ddp, "process_group", None)
        size = dist.get_world_size(group)
        out = []
        for t in tensors:
            t = t.detach().clone()
            dist.all_reduce(t, group=group)
            out.append(t / size)
        return out

    def problem_of(
        self, records: Sequence[RecordedForward], x_meta: Any, y_meta: Tensor, **fields: Any
    ) -> tuple[MetaProblem, list[Tensor]]:
        """The meta problem of a real step made of ``records`` (its micro-batches), and its meta-parameters.

        The training loss of the step is ``sum_m mean(w_m * l_m) / len(records)``; the last
        record may carry its graph (``train_loss``), the others are replayed.
        """
        scale = 1.0 / len(records)
        terms = []
        meta_params: list[Tensor] = []
        for record in records:
            weights, meta_params_m = self._step_weights(record.losses, record.y)
            terms.append((record, weights))
            # a per-batch reweighter (L2RW) has its own meta-parameters in each micro-batch
            meta_params.extend(p for p in meta_params_m if all(p is not q for q in meta_params))
        losses_at = [self.replay.train_loss_at(r, w) for r, w in terms]
        jvps = [self.replay.train_jvp(r, w, scale) for r, w in terms]
        changes = [self.replay.loss_change(r, w, scale) for r, w in terms]
        problem = MetaProblem(
            params=self.params,
            train_loss=None,
            train_loss_at=lambda new: sum(f(new) for f in losses_at) * scale,
            lookahead=self.lookahead,
            meta_loss_at=self.replay.meta_loss_at(x_meta, y_meta),
            meta_params=meta_params,
            train_jvp=lambda theta, u: sum(f(theta, u) for f in jvps),
            augment_params=self._augment_params(),
            loss_change=lambda a, b=None: sum(f(a, b) for f in changes),
            reduce=self._reduce,
        )
        return (replace(problem, **fields) if fields else problem), meta_params

    def _meta_step(self, index: int, x: Tensor, y: Tensor, x_meta: Tensor, y_meta: Tensor) -> Tensor:
        forward = self._real_forward(index, x, y, replayable=True)
        if self._group:  # the last micro-batch of an accumulated step
            group, self._group = [*self._group, forward], []
            problem, meta_params = self.problem_of(group, x_meta, y_meta)
            weights = self._step_weights(forward.losses, y)[0]
            current = torch.autograd.grad((weights.detach() * forward.losses).mean() / len(group),
                                          list(self.params.values()), retain_graph=True)
            grads = {n: (torch.zeros_like(p) if p.grad is None else p.grad.detach()) + g_m
                     for (n, p), g_m in zip(self.params.items(), self._reduce(list(current)))}
            problem = replace(problem, grads=grads)
        else:
            weights, meta_params = self._step_weights(forward.losses, y)
            if self.augment.needs_rewards:  # the rewards' leaf: per-sample effects on the meta loss
                alpha = torch.ones_like(forward.losses.detach()).requires_grad_()  # (B,)
                weights, meta_params = weights * alpha, [*meta_params, alpha]
            problem = MetaProblem(
                params=self.params,
                train_loss=(weights * forward.losses).mean(),
                train_loss_at=self.replay.train_loss_at(forward, weights),
                lookahead=self.lookahead,
                meta_loss_at=self.replay.meta_loss_at(x_meta, y_meta),
                meta_params=meta_params,
                train_jvp=self.replay.train_jvp(forward, weights),
                augment_params=self._augment_params(),
                loss_change=self.replay.loss_change(forward, weights),
                reduce=self._reduce,
            )
        hypergrads, meta_loss = self.method(problem)
        hypergrads = self._reduce(list(hypergrads))
        if self.augment.needs_rewards and not self._group:
            meta_params, hypergrads = self._with_discrete_gradients(forward, meta_params, hypergrads, meta_loss)
        updated = self._apply_hypergradients(index, meta_params, hypergrads, meta_loss)
        own = len(meta_params) - len(self._augment_params())
        # L2RW of an accumulated step: the last micro-batch's own per-batch weights
        own_hyper = hypergrads[:own] if not self.reweighter.per_batch else hypergrads[own - 1:own]
        return self._reweighted_loss(forward, updated, float(meta_loss), own_hyper)

    def _with_discrete_gradients(
        self, forward: RecordedForward, meta_params: list[Tensor], hypergrads: list[Tensor], meta_loss: Tensor
    ) -> tuple[list[Tensor], list[Tensor]]:
        """Drop the rewards' leaf and add the augmentation's score-function gradients of its rewards."""
        meta_params, hypergrads = list(meta_params[:-1]), list(hypergrads)
        rewards = hypergrads.pop().detach()  # (B,) dL_meta / d alpha
        self.last_rewards = rewards
        if torch.isfinite(rewards).all() and torch.isfinite(meta_loss):
            extra = self.augment.discrete_gradients(forward.aug_params, rewards)
            first = len(hypergrads) - len(extra)
            for i, g in enumerate(extra):
                hypergrads[first + i] = hypergrads[first + i] + g.to(hypergrads[first + i])
        elif hypergrads:  # let _apply_hypergradients report (raise or skip) the non-finite reward
            hypergrads[-1] = hypergrads[-1] + rewards.sum()
        return meta_params, hypergrads

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
        """Remove the optimizer hooks (the ``online`` method's); later steps are plain (nothing is learned)."""
        if self._hook is not None:
            self._hook.remove()
            self._hook = None
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
            "guard": None if self.guard is None else self.guard.state_dict(),
            "draws": self._draws,  # a compiled model: whether recorded forwards run the plain module
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved, into a learner built the same way (the meta-optimizer's
        saved learning rates included: they win over this learner's ``scale_meta_lr``)."""
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
        if self.guard is not None and state.get("guard") is not None:
            self.guard.load_state_dict(state["guard"])
        self._draws = state.get("draws")


def _check_rewards_fit(method: HypergradientMethod, accumulation_steps: int) -> None:
    """An augmentation with score-function estimators needs its rewards at once, from one batch."""
    if method.delayed or accumulation_steps != 1:
        raise ValueError(
            f"an augmentation with discrete choices learned from rewards (a 'relax' or 'reinforce' estimator) needs "
            f"a method applied at once without gradient accumulation, but got method={method.name!r}, "
            f"accumulation_steps={accumulation_steps}; use 'fd', 'jvp', 'exact' or 'last', or the "
            f"'straight_through' estimator."
        )


def _check_method_fits(
    method: HypergradientMethod, distributed: bool, accumulation_steps: int, max_grad_norm: float | None,
    plain_forward: bool = True,
) -> None:
    """Refuse a method the loop cannot support, naming the ones that can."""
    first_order = sorted(n for n, cls in HYPERGRADIENTS.items() if not cls.second_order)
    if not plain_forward and not method.delayed:
        delayed = sorted(n for n, cls in HYPERGRADIENTS.items() if cls.delayed)
        raise ValueError(
            f"method={method.name!r} differentiates the real forward in its meta step, which must run DDP over the plain "
            f"module (DDP all-reduces the gradients; a compiled graph is not safe to backward twice), but the model is "
            f"DistributedDataParallel over a torch.compile'd module; compile the DDP model instead "
            f"(torch.compile(DDP(model))) or use a one-step-late method {delayed}."
        )
    if method.second_order and distributed:  # (a compiled model is fine: its meta forwards run the plain module)
        raise ValueError(
            f"method={method.name!r} differentiates through a gradient (double backward), which a "
            f"DistributedDataParallel model does not support; use one of the first-order methods {first_order} "
            f"('jvp' is exact)."
        )
    if method.second_order and accumulation_steps > 1:
        raise ValueError(
            f"accumulation_steps > 1 needs a first-order method {first_order} ('jvp' is exact), but got "
            f"method={method.name!r}."
        )
    if method.delayed and max_grad_norm is not None:
        raise ValueError(
            f"method={method.name!r} replays the real step from the gradient its optimizer received, which clipping "
            f"has already changed; with max_grad_norm use 'jvp' (exact) or 'fd', but got max_grad_norm={max_grad_norm}."
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
