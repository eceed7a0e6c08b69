"""The ``online`` methods: the real optimizer step is the look-ahead, applied one step late.

At a step that is due, the engine records its real forward (batch, drawn augmentation, random
state before the forward). An optimizer step pre-hook records what the real step starts from:
the parameters, the gradient the user's backward produced, the optimizer's state and settings.
At the next call of :meth:`~autodata.MetaLearner.step`, the validation loss is taken at the
parameters that real step produced and its hypergradient, by the finite differences of
:class:`~autodata.bilevel.hypergrad.FiniteDifference` (Liu et al. 2019, eq. 8) on the replayed
forward, updates the components. No extra backward: the cheapest method that sees every
parameter (Baydin et al. 2018 use the same idea for a learning rate). ``jvp-online``
(:class:`OnlineForwardMode`) takes the same hypergradient exactly, by the forward-mode pass of
:class:`~autodata.bilevel.hypergrad.ForwardMode` instead of finite differences; its replay (and
validation forward) run under the cheaper rules of :mod:`~autodata.bilevel.jvp_rules` (train-mode
BatchNorm, non-overlapping max-pooling, convolutions without a zero-tangent term, and
channels-last convolutions until a module draws random numbers there; exact all the same).

Both define the hypergradient of the real step ``t`` just taken: with ``theta_t`` the parameters
before it, ``g_t(phi) = grad_theta mean(w(l_t; phi) * l_t(theta_t))`` on its recorded batch
(same augmentation and dropout masks) and ``theta_{t+1}(phi)`` the real optimizer's update from
``g_t(phi)`` and its state before step ``t``, it is ``d L_meta(theta_{t+1}(phi)) / d phi`` at the
``phi`` whose weights that step used, on the clean batch of step ``t + 1``. It updates ``phi``
before the forward of step ``t + 1``; the validation pass and the replay run before that
forward, so their memory is never held together with its graph.

The method needs one ``optimizer.step()`` after each ``step()`` (after each
``accumulation_steps`` micro-batches with gradient accumulation, whose forwards are all recorded
and replayed): a forward whose real step was not taken (unannounced accumulation, a
``GradScaler`` that skipped an inf/NaN step) has no look-ahead to differentiate, and
:meth:`OnlineUpdater.step` refuses it.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import Tensor

from autodata.bilevel.hypergrad import FiniteDifference, ForwardMode, HypergradientMethod, register
from autodata.bilevel.jvp_rules import ConvOutputs
from autodata.bilevel.replay import RecordedForward
from autodata.bilevel.wrappers import is_compiled

if TYPE_CHECKING:
    from autodata.bilevel.engine import MetaLearner

__all__ = ["Online", "OnlineForwardMode", "OnlineUpdater"]


def _check_delayed_fits(method: HypergradientMethod, learner: MetaLearner) -> None:
    if learner.reweighter.per_batch:
        raise ValueError(
            f"method={method.name!r} updates the components one step late, which a per-batch "
            f"reweighter ({type(learner.reweighter).__name__}) cannot be; use 'exact', 'jvp' or 'fd'."
        )


@register
@dataclass(frozen=True)
class Online(FiniteDifference):
    """Finite differences of the real step just taken, applied at the next step.

    Args:
        radius: the parameters move by ``radius`` along ``u`` (the step is ``radius / ||u||``).
        one_sided: forward differences from the recorded losses of the real forward: one
            replayed forward instead of two.
    """

    name: ClassVar[str] = "online"
    delayed: ClassVar[bool] = True

    def bind(self, learner: MetaLearner) -> Online:
        _check_delayed_fits(self, learner)
        return self


@register
@dataclass(frozen=True)
class OnlineForwardMode(ForwardMode):
    """The exact hypergradient of the real step just taken (forward mode), applied at the next step.

    The hypergradient of :class:`Online` (see the module's docstring), computed exactly as
    :class:`~autodata.bilevel.hypergrad.ForwardMode` does: the real step is the look-ahead, so
    the training backward of a ``jvp`` meta step is saved; the validation forward and backward
    at the parameters the real step produced and one forward-mode replay of its batch remain.

    Args:
        radius: finite-difference radius for a learnable augmentation's parameters only.
        rules: run the replay and the validation forward under
            :class:`~autodata.bilevel.jvp_rules.ForwardRules` (cheaper forward-mode rules for
            train-mode BatchNorm, non-overlapping max-pooling and convolutions (no zero-tangent
            term, the two terms summed in place); channels-last convolutions while no random op (dropout) runs there;
            equal to PyTorch's results to rounding), as ``jvp``'s; ``False``: PyTorch's own ops
            and formulas.
        conv_share: with ``rules``, the replay takes the real forward's outputs of the
            convolution modules with the most multiply-adds per element, up to this fraction of
            all their bytes, instead of convolving again
            (:class:`~autodata.bilevel.jvp_rules.ConvOutputs`; kept from the real forward until
            the next step's replay: peak memory grows by at most that share of the convolution
            outputs, while the replay's primal skips their convolutions; with ``accumulation_steps``
            micro-batches each keeps that share divided by their number, so that together they
            keep at most the share of one micro-batch's outputs). 0: none; not with a
            ``torch.compile``d model (its forward is not hooked).
    """

    name: ClassVar[str] = "jvp-online"
    delayed: ClassVar[bool] = True
    conv_share: float = 1 / 3

    def __post_init__(self) -> None:
        super().__post_init__()
        ConvOutputs(self.conv_share)  # checks it

    def bind(self, learner: MetaLearner) -> OnlineForwardMode:
        _check_delayed_fits(self, learner)
        return replace(self)  # its own layout choice per learner


@dataclass
class _Pending:
    """The recorded forwards of one real step and, once the optimizer's hook has run, that step."""

    forwards: list[RecordedForward]
    params: dict[str, Tensor] | None = None
    grads: dict[str, Tensor] | None = None
    state: dict[str, Any] | None = None
    groups: dict[str, Any] | None = None


class OnlineUpdater:
    """The delayed methods' side of a :class:`~autodata.MetaLearner`: records and applies.

    Args:
        learner: the learner it serves (its model, optimizer, components and helpers).
        method: the bound delayed method (:class:`Online`, :class:`OnlineForwardMode`).
    """

    def __init__(self, learner: MetaLearner, method: HypergradientMethod) -> None:
        self.learner = learner
        self.method = method
        self.pending: _Pending | None = None
        self._hook = learner.optimizer.register_step_pre_hook(self._record_real_step)
        self._conv_share = getattr(method, "conv_share", 0) if getattr(method, "rules", False) else 0

    def _real_forward(self, index: int, x: Tensor, y: Tensor, replayable: bool) -> RecordedForward:
        """The learner's real forward, detached, with its convolution outputs kept for the replay where it is one."""
        if not (replayable and self._conv_share) or is_compiled(self.learner.model):  # read at each call, as the engine
            return self.learner._real_forward(index, x, y, replayable=replayable)
        # Each micro-batch of an accumulated step keeps its share of its own outputs until the replay: split the
        # share among them, so that the kept bytes stay within conv_share of one micro-batch's outputs.
        convs = ConvOutputs(self._conv_share / self.learner.accumulation_steps)
        with convs.capture():
            forward = self.learner._real_forward(index, x, y, replayable=replayable)
        return replace(forward, convs=convs)

    def _record_real_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        """Optimizer step pre-hook: record the real step's gradient and pre-step state."""
        pending = self.pending
        if pending is None or pending.grads is not None:
            return
        lookahead = self.learner.lookahead
        pending.params = {n: p.detach().clone() for n, p in self.learner.params.items()}
        pending.grads = {
            n: torch.zeros_like(p) if p.grad is None else p.grad.detach().clone() for n, p in self.learner.params.items()
        }
        pending.state = lookahead.snapshot_state()
        pending.groups = lookahead.snapshot_groups()

    def step(
        self, index: int, x: Tensor, y: Tensor, x_meta: Tensor | None, y_meta: Tensor | None, due: bool, micro: int = 0
    ) -> Tensor:
        """Apply the hypergradient of the last recorded real step, then take this step's forward.

        ``micro``: the position of this call among the ``accumulation_steps`` micro-batches of
        its optimizer step (0: the first, which starts a new real step).
        """
        learner, pending = self.learner, self.pending
        k = learner.accumulation_steps
        if pending is not None and pending.grads is None and (micro == 0 or len(pending.forwards) != micro):
            raise RuntimeError(
                f"step {index}: method={self.method.name!r} takes the optimizer step after each step() as its look-ahead, "
                f"but optimizer.step() was not called after step {pending.forwards[-1].index} (gradient accumulation "
                f"over several step() calls without accumulation_steps={k + 1 if k == 1 else '<micro-batches>'}, or a "
                f"GradScaler that skipped an inf/NaN step). Call optimizer.step() once after every "
                f"{'step()' if k == 1 else f'{k} step() calls'}, pass accumulation_steps, or use method='fd' or 'jvp' "
                f"(applied at once; 'jvp' is exact)."
            )
        if pending is not None and pending.grads is None:  # a later micro-batch of the same real step
            forward = self._real_forward(index, x, y, replayable=True)
            pending.forwards.append(forward.detached())
            return learner._reweighted_loss(forward, False, float("nan"))
        updated, meta_loss = False, float("nan")
        if pending is not None:
            updated, meta_loss = self._update_from(pending, x, y, x_meta, y_meta)
            self.pending = pending = None  # consumed: its kept activations go before the real forward's graph comes
        forward = self._real_forward(index, x, y, replayable=due)
        self.pending = _Pending([forward.detached()]) if due else None
        return learner._reweighted_loss(forward, updated, meta_loss)

    def _update_from(self, pending: _Pending, x: Tensor, y: Tensor, x_meta: Tensor | None,
                     y_meta: Tensor | None) -> tuple[bool, float]:
        """Apply the hypergradient of the recorded real step: (applied, meta loss)."""
        learner = self.learner
        x_meta, y_meta = learner._meta_batch(x, y, x_meta, y_meta)
        problem, meta_params = learner.problem_of(
            pending.forwards, x_meta, y_meta, params=pending.params, grads=pending.grads,
            lookahead=lambda g: learner.lookahead(g, params=pending.params, state=pending.state, groups=pending.groups),
        )
        hypergrads, loss = self.method(problem)
        updated = learner._apply_hypergradients(pending.forwards[-1].index, meta_params, learner._reduce(list(hypergrads)), loss)
        return updated, float(loss)

    def state_dict(self) -> dict[str, Any] | None:
        """The pending record (tensors, dicts and numbers), or ``None``."""
        p = self.pending
        if p is None:
            return None
        forwards = [f.to_state(self.learner.augment) for f in p.forwards]
        saved = {"forward": forwards[0], "params": p.params, "grads": p.grads, "state": p.state, "groups": p.groups}
        if len(forwards) > 1:
            saved["more_forwards"] = forwards[1:]
        if any(f.convs is not None for f in p.forwards):  # a resumed replay takes the same outputs (bit for bit)
            names = {id(m): name for name, m in self.learner.module.named_modules()}
            saved["kept_convs"] = [
                None if f.convs is None else {f"{names[key[0]]}#{key[1]}": out for key, (out, _) in f.convs.outputs.items()
                                              if key[0] in names}
                for f in p.forwards
            ]
        return saved

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        """Restore what :meth:`state_dict` saved."""
        if state is None:
            self.pending = None
            return
        forwards = [state["forward"], *state.get("more_forwards", [])]
        forwards = [RecordedForward.from_state(f, self.learner.augment, self.learner.device) for f in forwards]
        modules = dict(self.learner.module.named_modules())
        for i, kept in enumerate(state.get("kept_convs") or []):
            if kept and self._conv_share:
                convs = ConvOutputs(self._conv_share)
                for key, out in kept.items():
                    name, _, call = key.rpartition("#")
                    if name in modules:
                        out = out.to(self.learner.device)
                        convs.outputs[(id(modules[name]), int(call))] = (out, out._version)
                forwards[i] = replace(forwards[i], convs=convs)
        self.pending = _Pending(forwards, state["params"], state["grads"], state["state"], state["groups"])

    def close(self) -> None:
        """Remove the optimizer hook."""
        if self._hook is not None:
            self._hook.remove()
            self._hook = None
