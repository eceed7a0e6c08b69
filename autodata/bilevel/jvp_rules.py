"""Cheaper rules for the forward-mode pass and validation forward of ``jvp`` and ``jvp-online`` (CPU first).

The forward-mode pass of the ``jvp`` methods (:meth:`~autodata.bilevel.replay.Replay.train_jvp`)
pushes dual tensors through the model. PyTorch's own forward-AD formulas are correct but, on
the CPU, some cost far more than the primal op (BENCHMARKS.md, "Meta-step cost"):

* BatchNorm in train mode: the generic formula re-centres the input several times (about a
  dozen full passes). The tangent ``w * invstd * (x_t - mean(x_t) - x_hat * mean(x_t * x_hat))
  + x_hat * w_t + b_t`` is ``A * x_t + B * x + C`` with per-channel ``A, B, C``: its two
  per-channel sums come from one fused ``native_batch_norm_backward`` (the weight and bias
  gradients it computes for a gradient ``x_t``; the input Jacobian is symmetric), then two
  passes (:func:`_batch_norm_tangent`).
* Max-pooling with non-overlapping windows (``stride == kernel_size``, no padding, no
  dilation). Contiguous (NCHW) input: a fold over the window's offsets, strided views of the
  input: ``maximum`` for the primal and, for the tangent, the tangent at the first position
  equal to the maximum (PyTorch's choice among ties), selected by ``lerp`` with weights 0 and 1
  (exact). Channels-last input, and a contiguous one in grad mode (the validation forward):
  PyTorch's channels-last kernel, vectorised over channels (several times faster than the NCHW
  one on the CPU), with the same values and indices; the tangent is gathered at the indices,
  the backward is PyTorch's. A channels-last input in grad mode is PyTorch's own call.
* Convolution: the generic formula convolves a zero tensor when the input has no tangent
  (the model's first layer); the rule skips it, and sums the input's and the weight's terms
  in place.
* Layout (``ForwardRules(channels_last=True)``): 2-d convolutions, and so what follows them,
  run in channels-last, where PyTorch's CPU convolution, BatchNorm and pooling kernels are
  faster. Random draws follow the memory layout (dropout masks), so the mode notes whether a
  module drew random numbers (:attr:`ForwardRules.drew_random`); the caller then runs again
  in the contiguous layout (:func:`under_rules`, which the ``jvp`` and ``jvp-online`` methods
  wrap their replay and validation forward in).

:class:`ForwardRules` is a :class:`~torch.overrides.TorchFunctionMode` that routes these calls
(:data:`RULES` and :data:`CHANNELS_LAST_RULES`, one entry per function) to
:class:`torch.autograd.Function` s with hand-written ``jvp`` staticmethods (``setup_context``
style: they also work under :func:`torch.func.jvp`). A rule applies in forward mode (no grad
mode, some input carries a forward-AD tangent); the max-pool (contiguous input) and
channels-last convolution rules also in grad mode without tangents. Any other call, or an argument a rule does not
handle (eval-mode BatchNorm, overlapping or padded pools, ``return_indices``), goes to PyTorch
unchanged. Each rule equals PyTorch's own forward AD, or gradient, to rounding (float64 tests
in ``tests/bilevel/test_jvp_rules.py``). With a NaN in a pooling window the NCHW fold may take
the tangent of another position than PyTorch's (the loss is NaN then).

Example:
    >>> import torch.autograd.forward_ad as fwAD
    >>> bn = torch.nn.BatchNorm2d(3)
    >>> x = torch.randn(4, 3, 8, 8)
    >>> with torch.no_grad(), fwAD.dual_level(), ForwardRules():
    ...     out = F.max_pool2d(torch.relu(bn(fwAD.make_dual(x, torch.ones_like(x)))), 2)
    ...     tangent = fwAD.unpack_dual(out).tangent  # (4, 3, 4, 4)
    >>> tangent.shape
    torch.Size([4, 3, 4, 4])
"""
from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.autograd.forward_ad as fwAD
import torch.nn.functional as F
from torch import Tensor
from torch.overrides import TorchFunctionMode

__all__ = [
    "CHANNELS_LAST_RULES", "RULES", "ConvOutputs", "ForwardRules", "Layout", "batch_norm_rule", "conv_channels_last_rule",
    "conv_rule", "max_pool_rule", "under_rules",
]

Rule = Callable[..., Any]
RULES: dict[Callable[..., Any], Rule] = {}
"""The function a model calls -> its rule (same signature; returns ``NotImplemented`` to decline)."""


def _rule_for(*funcs: Callable[..., Any]) -> Callable[[Rule], Rule]:
    def add(rule: Rule) -> Rule:
        for func in funcs:
            RULES[func] = rule
        return rule

    return add


def _has_tangent(*tensors: Any) -> bool:
    return any(isinstance(t, Tensor) and fwAD.unpack_dual(t).tangent is not None for t in tensors)


def _forward_mode(*tensors: Any) -> bool:
    """A forward-mode call: no grad mode, and some input carries a tangent."""
    return not torch.is_grad_enabled() and _has_tangent(*tensors)


def _channel_view(t: Tensor | None, dim: int) -> Tensor | None:
    """A per-channel vector ``(C,)`` shaped to broadcast against ``(N, C, *)`` of ``dim`` dims."""
    return None if t is None else t.view(1, -1, *([1] * (dim - 2)))


class _BatchNormTrain(torch.autograd.Function):
    """Train-mode BatchNorm; outputs ``(out, mean, invstd)``, the statistics without tangents."""

    @staticmethod
    def forward(x: Tensor, weight: Tensor | None, bias: Tensor | None, running_mean: Tensor | None,
                running_var: Tensor | None, momentum: float, eps: float) -> tuple[Tensor, Tensor, Tensor]:
        return torch.native_batch_norm(x, weight, bias, running_mean, running_var, True, momentum, eps)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: tuple[Tensor, Tensor, Tensor]) -> None:
        x, weight, _, _, _, _, eps = inputs
        _, mean, invstd = output
        ctx.save_for_forward(x, weight, mean, invstd)
        ctx.eps = eps
        ctx.mark_non_differentiable(mean, invstd)
        ctx.set_materialize_grads(False)

    @staticmethod
    def jvp(ctx: Any, x_t: Tensor | None, w_t: Tensor | None, b_t: Tensor | None,
            *_: Any) -> tuple[Tensor, None, None]:
        x, weight, mean, invstd = ctx.saved_tensors
        return _batch_norm_tangent(x, weight, mean, invstd, ctx.eps, x_t, w_t, b_t), None, None


def _batch_norm_tangent(x: Tensor, weight: Tensor | None, mean: Tensor, invstd: Tensor, eps: float,
                        x_t: Tensor | None, w_t: Tensor | None, b_t: Tensor | None) -> Tensor:
    """The tangent of train-mode BatchNorm's output, ``A * x_t + B * x + C`` per channel.

    With ``x_hat = (x - mean) * invstd`` and the per-channel means ``a = mean(x_t)`` and
    ``b = mean(x_t * x_hat)`` (over every dimension but the channels'), the tangent
    ``w * invstd * (x_t - a - x_hat * b) + x_hat * w_t + b_t`` is ``A * x_t + B * x + C`` with
    ``A = w * invstd``, ``B = invstd * (w_t - A * b)`` and ``C = b_t - A * a - B * mean``. The two
    sums come from one fused ``native_batch_norm_backward`` (its weight and bias gradients for the
    "gradient" ``x_t``), then two element-wise passes; ``B * x + C`` is computed as PyTorch computes
    the primal (``x * alpha + beta``). With only an input tangent it is that kernel's input gradient.
    """
    dim, n = x.dim(), x.numel() // x.shape[1]
    scale = invstd if weight is None else weight * invstd  # A
    slope = invstd * w_t if w_t is not None else None  # B without the x_t term
    shift = b_t  # C without the x_t term and -B * mean
    if x_t is not None and w_t is None and b_t is None:  # the input's term only: one fused kernel
        return torch.ops.aten.native_batch_norm_backward(
            x_t, x, weight, None, None, mean, invstd, True, eps, [True, False, False])[0]
    if x_t is not None:
        _, sum_xt_xhat, sum_xt = torch.ops.aten.native_batch_norm_backward(
            x_t, x, weight, None, None, mean, invstd, True, eps, [False, True, True])
        drift = scale * (sum_xt_xhat / n)  # A * b
        slope = -invstd * drift if slope is None else slope - invstd * drift
        centre = -scale * (sum_xt / n)  # -A * a
        shift = centre if shift is None else shift + centre
    if slope is None:  # only a bias tangent
        out = torch.empty_like(x)
        out.copy_(_channel_view(shift, dim).expand_as(x)) if shift is not None else out.zero_()
    else:
        offset = -slope * mean if shift is None else shift - slope * mean
        out = torch.addcmul(_channel_view(offset, dim), x, _channel_view(slope, dim))  # x's layout
    if x_t is not None:
        out.addcmul_(x_t, _channel_view(scale, dim))
    return out if out.dtype == x.dtype else out.to(x.dtype)  # float32 factors with a bfloat16 input (autocast)


@_rule_for(F.batch_norm)
def batch_norm_rule(input: Tensor, running_mean: Tensor | None, running_var: Tensor | None,
                    weight: Tensor | None = None, bias: Tensor | None = None, training: bool = False,
                    momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """``F.batch_norm`` in train mode through :class:`_BatchNormTrain`, in forward mode only; declines eval mode."""
    if not _forward_mode(input, weight, bias) or not training or input.dim() < 2:
        return NotImplemented
    if momentum is None or _has_tangent(running_mean, running_var):  # modules pass a factor; buffers are constants
        return NotImplemented
    return _BatchNormTrain.apply(input, weight, bias, running_mean, running_var, momentum, eps)[0]


def _pair(v: int | Sequence[int]) -> tuple[int, int] | None:
    if isinstance(v, int):
        return v, v
    v = tuple(v)
    if len(v) == 1:
        return v[0], v[0]
    return (v[0], v[1]) if len(v) == 2 and all(isinstance(i, int) for i in v) else None


def _window_views(x: Tensor, kernel: tuple[int, int]) -> list[Tensor]:
    """The strided views ``x[..., i::kh, j::kw]`` cropped to the pooled size, in scan order (i, then j)."""
    kh, kw = kernel
    ho, wo = x.shape[-2] // kh, x.shape[-1] // kw
    return [x[..., i:i + kh * (ho - 1) + 1:kh, j:j + kw * (wo - 1) + 1:kw] for i in range(kh) for j in range(kw)]


class _MaxPoolWindows(torch.autograd.Function):
    """Max-pooling over non-overlapping ``kernel`` windows (stride = kernel, no padding).

    The primal is a fold of ``maximum`` over strided views (no indices); the tangent is that of
    each window's first maximal position, as PyTorch's.
    """

    @staticmethod
    def forward(x: Tensor, kernel: tuple[int, int]) -> Tensor:
        views = _window_views(x, kernel)
        out = torch.maximum(views[0], views[1]) if len(views) > 1 else views[0].clone()  # (N, C, H // kh, W // kw)
        for v in views[2:]:
            torch.maximum(out, v, out=out)
        return out

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
        x, kernel = inputs
        ctx.save_for_forward(x, output)
        ctx.kernel = kernel
        ctx.set_materialize_grads(False)

    @staticmethod
    def jvp(ctx: Any, x_t: Tensor | None, _: Any) -> Tensor:
        x, pooled = ctx.saved_tensors
        views, tangents = _window_views(x, ctx.kernel), _window_views(x_t, ctx.kernel)
        out = tangents[-1]
        for v, t in zip(views[-2::-1], tangents[-2::-1]):  # backwards: the first maximal position is written last
            out = torch.lerp(out, t, (v == pooled).to(x_t.dtype))  # exact for weights 0 and 1
        return out.clone() if out is tangents[-1] else out


class _MaxPoolChannelsLast(torch.autograd.Function):
    """Max-pooling with indices computed on a channels-last copy (PyTorch's vectorised kernel).

    The values and indices equal the contiguous kernel's (flat ``h * W + w``, the first maximal
    position) and come back in the input's layout; the backward is PyTorch's
    ``max_pool2d_with_indices_backward``, the tangent a gather at the indices (as PyTorch's).
    """

    @staticmethod
    def forward(x: Tensor, kernel: tuple[int, int]) -> tuple[Tensor, Tensor]:
        out, index = torch.ops.aten.max_pool2d_with_indices(  # (N, C, H // kh, W // kw), channels-last
            x.contiguous(memory_format=torch.channels_last), list(kernel), list(kernel), [0, 0], [1, 1], False)
        if x.is_contiguous(memory_format=torch.channels_last):
            return out, index
        return out.contiguous(), index.contiguous()  # the input's layout: random draws downstream follow it

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: tuple[Tensor, Tensor]) -> None:
        x, kernel = inputs
        ctx.save_for_backward(x, output[1])
        ctx.save_for_forward(output[1])
        ctx.kernel = kernel
        ctx.mark_non_differentiable(output[1])
        ctx.set_materialize_grads(False)

    @staticmethod
    def jvp(ctx: Any, x_t: Tensor | None, _: Any) -> tuple[Tensor, None]:
        (index,) = ctx.saved_tensors
        n, c, h, w = x_t.shape
        ho, wo = index.shape[-2:]
        # gathered in (N, H * W, C): views of channels-last tensors, no copy
        flat = x_t.contiguous(memory_format=torch.channels_last).permute(0, 2, 3, 1).reshape(n, h * w, c)
        picks = index.permute(0, 2, 3, 1).reshape(n, ho * wo, c)
        return flat.gather(1, picks).view(n, ho, wo, c).permute(0, 3, 1, 2), None

    @staticmethod
    def backward(ctx: Any, grad: Tensor | None, _: Any) -> tuple[Tensor | None, None]:
        if grad is None:
            return None, None
        x, index = ctx.saved_tensors
        kernel = list(ctx.kernel)
        grad_x = torch.ops.aten.max_pool2d_with_indices_backward(grad, x, kernel, kernel, [0, 0], [1, 1], False, index)
        return grad_x, None


@_rule_for(F.max_pool2d, torch.max_pool2d)
def max_pool_rule(input: Tensor, kernel_size: int | Sequence[int], stride: int | Sequence[int] | None = None,
                  padding: int | Sequence[int] = 0, dilation: int | Sequence[int] = 1, ceil_mode: bool = False,
                  return_indices: bool = False) -> Tensor:
    """``F.max_pool2d`` with ``stride == kernel_size``, no padding or dilation; declines anything else.

    Applies in forward mode and in grad mode (an input that requires grad, without a tangent; not a
    channels-last one, for which PyTorch runs the same kernel).
    """
    forward_mode, grad_mode = _forward_mode(input), torch.is_grad_enabled() and input.requires_grad
    if not (forward_mode or grad_mode and not _has_tangent(input)):
        return NotImplemented
    kernel = _pair(kernel_size)
    step = kernel if stride is None or (not isinstance(stride, int) and len(stride) == 0) else _pair(stride)
    if (kernel is None or step != kernel or _pair(padding) != (0, 0) or _pair(dilation) != (1, 1) or return_indices
            or input.dim() not in (3, 4) or input.shape[-2] < kernel[0] or input.shape[-1] < kernel[1]):
        return NotImplemented
    if ceil_mode and (input.shape[-2] % kernel[0] or input.shape[-1] % kernel[1]):
        return NotImplemented
    channels_last = input.dim() == 4 and input.shape[1] > 1 and input.is_contiguous(memory_format=torch.channels_last)
    if grad_mode and (input.dim() != 4 or channels_last):  # a channels-last input: PyTorch's own call is that kernel
        return NotImplemented
    if grad_mode or channels_last:
        return _MaxPoolChannelsLast.apply(input, kernel)[0]
    return _MaxPoolWindows.apply(input, kernel)


class _Conv(torch.autograd.Function):
    """``F.conv{1,2,3}d``; the tangent skips the terms whose tangent is missing.

    ``stored``: the output the real forward computed for this call (:class:`ConvOutputs`), taken
    as the primal instead of convolving again.
    """

    @staticmethod
    def forward(conv: Callable[..., Tensor], x: Tensor, weight: Tensor, bias: Tensor | None,
                options: tuple[Any, ...], stored: Tensor | None = None) -> Tensor:
        return conv(x, weight, bias, *options) if stored is None else stored.detach()

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
        conv, x, weight, _, options, _ = inputs
        ctx.save_for_forward(x, weight)
        ctx.conv, ctx.options, ctx.shape = conv, options, output.shape
        ctx.set_materialize_grads(False)

    @staticmethod
    def jvp(ctx: Any, _: Any, x_t: Tensor | None, w_t: Tensor | None, b_t: Tensor | None, *__: Any) -> Tensor:
        x, weight = ctx.saved_tensors
        pairs = [(a, b) for a, b in ((x_t, weight), (x, w_t)) if a is not None and b is not None]
        terms = [ctx.conv(a, b, None, *ctx.options) for a, b in pairs]
        out = terms[0] if terms else x.new_zeros(ctx.shape)
        for term in terms[1:]:
            out.add_(term)
        if b_t is not None:
            out.add_(_channel_view(b_t, out.dim()))
        return out


def _conv_rule(conv: Callable[..., Tensor]) -> Rule:
    def rule(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride: Any = 1, padding: Any = 0,
             dilation: Any = 1, groups: int = 1) -> Tensor:
        if not _forward_mode(input, weight, bias):
            return NotImplemented
        options = (stride, padding, dilation, groups)
        return _Conv.apply(conv, input, weight, bias, options, _SUPPLIED.take(input, weight, options))

    rule.__name__ = rule.__qualname__ = f"{conv.__name__}_rule"
    rule.__doc__ = (f"``F.{conv.__name__}`` in forward mode (:class:`_Conv`): no zero-tangent term, the two terms summed "
                    f"in place; the real forward's output where :class:`ConvOutputs` supplies it.")
    return rule


conv_rule = _rule_for(F.conv2d)(_conv_rule(F.conv2d))
_rule_for(F.conv1d)(_conv_rule(F.conv1d))
_rule_for(F.conv3d)(_conv_rule(F.conv3d))


def conv_channels_last_rule(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride: Any = 1,
                            padding: Any = 0, dilation: Any = 1, groups: int = 1) -> Tensor:
    """``F.conv2d`` on a channels-last input with a channels-last output, in forward or grad mode.

    What follows (BatchNorm, ReLU, pooling, the next convolution) then runs in channels-last
    too; in forward mode :func:`conv_rule` applies on top.
    """
    forward_mode = _forward_mode(input, weight, bias)
    if input.dim() != 4 or not (forward_mode or torch.is_grad_enabled() and not _has_tangent(input, weight, bias)):
        return NotImplemented
    x = input.contiguous(memory_format=torch.channels_last)
    if x.shape[1] == 1 and x.stride(1) != 1 and x.is_contiguous():  # the strides that make the output channels-last
        x = x.as_strided(x.shape, (x.stride(0), 1, x.stride(2), x.stride(3)))
    out = conv_rule(x, weight, bias, stride, padding, dilation, groups)
    if out is NotImplemented:
        out = F.conv2d(x, weight, bias, stride, padding, dilation, groups)
    return out.contiguous(memory_format=torch.channels_last)  # a 1-channel input gives a contiguous output


CHANNELS_LAST_RULES: dict[Callable[..., Any], Rule] = {F.conv2d: conv_channels_last_rule}
"""The rules :class:`ForwardRules` takes first with ``channels_last=True``."""


_CONV_MODULES = (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)  # exact types: one F.conv{1,2,3}d per call


def _conv_output_shape(x: Tensor, weight: Tensor, options: tuple[Any, ...]) -> tuple[int, ...] | None:
    """The output shape of ``F.conv{1,2,3}d(x, weight, ..., *options)``, or ``None`` where it cannot be told."""
    stride, padding, dilation, _ = options
    dims = weight.dim() - 2
    if padding == "same":  # PyTorch takes it with stride 1 only: the input's spatial size
        return (*x.shape[:-dims - 1], weight.shape[0], *x.shape[-dims:])
    if isinstance(padding, str):
        if padding != "valid":
            return None
        padding = 0
    stride, padding, dilation = ((v,) * dims if isinstance(v, int) else tuple(v) for v in (stride, padding, dilation))
    if not (len(stride) == len(padding) == len(dilation) == dims):
        return None
    spatial = [(n + 2 * p - d * (k - 1) - 1) // s + 1
               for n, k, s, p, d in zip(x.shape[-dims:], weight.shape[2:], stride, padding, dilation)]
    return (*x.shape[:-dims - 1], weight.shape[0], *spatial)


class _Supplied:
    """The stored output for the convolution module being called in a replay (set by :meth:`ConvOutputs.supply`)."""

    def __init__(self) -> None:
        self.current: tuple[Tensor, int] | None = None
        self.used = 0

    def take(self, x: Tensor, weight: Tensor, options: tuple[Any, ...]) -> Tensor | None:
        """The stored output if it is this call's (shape, dtype) and was not changed in place since; else ``None``."""
        current, self.current = self.current, None
        if current is None:
            return None
        out, version = current
        x_primal = fwAD.unpack_dual(x).primal
        if (out._version != version or out.dtype != x_primal.dtype or out.device != x_primal.device
                or tuple(out.shape) != _conv_output_shape(x_primal, weight, options)):
            return None
        self.used += 1
        return out


_SUPPLIED = _Supplied()


class _KeepConvOutputs(TorchFunctionMode):
    """Hands every ``F.conv{1,2,3}d`` result in the block to ``keep`` (which keeps those of convolution modules)."""

    def __init__(self, keep: Callable[[Tensor], None]) -> None:
        super().__init__()
        self.keep = keep

    def __torch_function__(self, func: Callable[..., Any], types: Any, args: tuple[Any, ...] = (),
                           kwargs: dict[str, Any] | None = None) -> Any:
        out = func(*args, **(kwargs or {}))
        if func in _CONV_FUNCTIONS:
            self.keep(out)
        return out


_CONV_FUNCTIONS = (F.conv1d, F.conv2d, F.conv3d)


class ConvOutputs:
    """Outputs of a real forward's convolution modules, for a replay of that forward to take instead of convolving.

    A forward-mode replay of a recorded forward (``jvp-online``) recomputes its primal, the real
    forward's activations at the same parameters on the same batch; its convolutions are the
    costly part of that. :meth:`capture` (around the real forward) keeps the outputs of the
    ``nn.Conv{1,2,3}d`` modules with the most multiply-adds per output element (the costliest to
    recompute per byte kept), up to ``share`` of the bytes of all of them (the rest of the real
    forward's graph is freed by its backward, as usual). :meth:`supply` (around the replay) hands
    each to the same call of the same module, where the convolution rule takes it as the primal
    when its shape and dtype match and it was not modified in place since (an in-place op after
    the convolution in the model); otherwise it convolves as before. The values are the real
    forward's, equal to the replay's own to rounding.

    Args:
        share: the largest fraction of the convolution outputs' bytes to keep (0: none).
    """

    def __init__(self, share: float = 1 / 3) -> None:
        if not (isinstance(share, (int, float)) and not isinstance(share, bool) and 0 <= share <= 1):
            raise ValueError(f"share must be a number in [0, 1], but got {share!r}.")
        self.share = float(share)
        self.outputs: dict[tuple[int, int], tuple[Tensor, int]] = {}

    def __len__(self) -> int:
        return len(self.outputs)

    @contextlib.contextmanager
    def capture(self) -> Iterator[ConvOutputs]:
        """Keep the convolution modules' outputs of the forwards in the block (replacing any kept before).

        The output kept is the convolution's own (``F.conv{1,2,3}d``'s result, taken by a
        :class:`~torch.overrides.TorchFunctionMode` inside the module's call), before any forward
        hook of the module or a global one changes it: the replay runs those hooks again.
        """
        from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook

        seen: list[tuple[int, tuple[int, int], Tensor, int]] = []
        calls: dict[int, int] = {}
        current: list[tuple[int, tuple[int, int]] | None] = [None]

        def pre_hook(module: torch.nn.Module, args: Any) -> None:
            if type(module) in _CONV_MODULES:
                k = calls[id(module)] = calls.get(id(module), -1) + 1
                current[0] = (module.weight.shape[1] * math.prod(module.weight.shape[2:]), (id(module), k))

        def hook(module: torch.nn.Module, args: Any, out: Any) -> None:
            if type(module) in _CONV_MODULES:
                current[0] = None

        def keep(out: Tensor) -> None:
            if current[0] is not None and isinstance(out, Tensor):
                cost, key = current[0]  # multiply-adds per output element, (module, call)
                seen.append((cost, key, out.detach(), out._version))  # its version now, as computed
            current[0] = None

        handles = [register_module_forward_pre_hook(pre_hook), register_module_forward_hook(hook, always_call=True)]
        try:
            with _KeepConvOutputs(keep):
                yield self
        finally:
            for handle in handles:
                handle.remove()
        budget, used, kept = self.share * sum(o.numel() * o.element_size() for _, _, o, _ in seen), 0, {}
        for _, key, out, version in sorted(seen, key=lambda s: -s[0]):
            size = out.numel() * out.element_size()
            if used + size <= budget:
                kept[key], used = (out, version), used + size
        self.outputs = kept

    @contextlib.contextmanager
    def supply(self) -> Iterator[None]:
        """In the block, the kept outputs go to the convolution rule at the same module calls."""
        if not self.outputs:
            yield
            return
        from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook

        calls: dict[int, int] = {}

        def pre_hook(module: torch.nn.Module, args: Any) -> None:
            if type(module) in _CONV_MODULES:
                k = calls[id(module)] = calls.get(id(module), -1) + 1
                _SUPPLIED.current = self.outputs.get((id(module), k))

        def hook(module: torch.nn.Module, args: Any, out: Any) -> None:
            if type(module) in _CONV_MODULES:
                _SUPPLIED.current = None

        handles = [register_module_forward_pre_hook(pre_hook), register_module_forward_hook(hook, always_call=True)]
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()
            _SUPPLIED.current = None


def _random_states() -> list[Tensor]:
    """The global random states: the CPU's and, once CUDA is in use, every device's."""
    states = [torch.get_rng_state()]
    if torch.cuda.is_initialized():  # False without CUDA; cheaper than is_available()
        states.extend(torch.cuda.get_rng_state_all())
    return states


class _RandomDraws:
    """Whether modules' calls drew random numbers, from the global random states around each outermost module call.

    A global pre-hook compares the states with the previous check when a module is called
    outside any other module's call (and counts the depth of module calls, which a global
    forward hook counts down); a hook of that outermost module's own, added after the user's
    hooks, compares them at its end. A draw anywhere in a Python module's call (its forward,
    the modules it calls, its own hooks) moves them between two checks, at two checks per
    outermost call (a whole model: not two per layer). With fewer than two checks (no Python
    module ran) it cannot tell and says it drew.
    """

    def __init__(self) -> None:
        self.seen = False
        self.events = 0
        self.depth = 0
        self._last: list[Tensor] | None = None
        self._handles: list[Any] = []
        self._hooked: set[int] = set()

    def _check(self) -> None:
        states = _random_states()
        if self._last is not None and any(not torch.equal(a, b) for a, b in zip(states, self._last)):
            self.seen = True
        self._last, self.events = states, self.events + 1

    def _pre_hook(self, module: torch.nn.Module, *_: Any) -> None:
        if self.depth == 0:
            self._check()
            if id(module) not in self._hooked:  # after the module's own forward hooks (run after the global ones)
                self._hooked.add(id(module))
                self._handles.append(module.register_forward_hook(self._outer_done, always_call=True))
        self.depth += 1

    def _done(self, *_: Any) -> None:
        """Global forward hook: every module's call ends (before the module's own forward hooks)."""
        self.depth -= 1

    def _outer_done(self, *_: Any) -> None:
        if self.depth == 0:  # the module was called outside any other (it may be nested elsewhere)
            self._check()

    @property
    def drew(self) -> bool:
        return self.seen or self.events < 2

    def __enter__(self) -> _RandomDraws:
        from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook

        self._handles = [register_module_forward_pre_hook(self._pre_hook),
                         register_module_forward_hook(self._done, always_call=True)]
        return self

    def __exit__(self, *exc: Any) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles, self._hooked, self.depth = [], set(), 0


class ForwardRules(TorchFunctionMode):
    """While active, calls with a rule in :data:`RULES` use it when it applies (see the module's docstring).

    Args:
        channels_last: also run 4-d convolutions, and so what follows them, in channels-last
            memory format (:data:`CHANNELS_LAST_RULES`; PyTorch's CPU kernels for convolution,
            BatchNorm and pooling are several times faster in it). A random draw's values
            follow the memory layout (dropout masks), so :attr:`drew_random` tells whether a
            module's call in the block drew any (the global random states move between module
            hooks; draws that a module undoes itself, restoring the random state before it
            returns, are not seen): then its results may differ from a contiguous run's.
    """

    def __init__(self, channels_last: bool = False) -> None:
        super().__init__()
        self.channels_last = channels_last
        self._draws: _RandomDraws | None = None

    @property
    def drew_random(self) -> bool:
        """Whether a module's forward in the block drew random numbers, or it cannot tell (``channels_last`` only)."""
        return self._draws is not None and self._draws.drew

    def __enter__(self) -> ForwardRules:
        if self.channels_last:
            self._draws = _RandomDraws()
            self._draws.__enter__()
        return super().__enter__()

    def __exit__(self, *exc: Any) -> None:
        super().__exit__(*exc)
        if self._draws is not None:
            self._draws.__exit__(*exc)

    def __torch_function__(self, func: Callable[..., Any], types: Any, args: tuple[Any, ...] = (),
                           kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = kwargs or {}
        rule = (CHANNELS_LAST_RULES.get(func) if self.channels_last else None) or RULES.get(func)
        if rule is not None:
            out = rule(*args, **kwargs)
            if out is not NotImplemented:
                return out
        return func(*args, **kwargs)


@dataclass
class Layout:
    """Whether the calls that :func:`under_rules` wraps (for one learner) run in channels-last.

    They do until one of them draws random numbers (dropout): the draws follow the memory
    layout, so from then on they run in the layout of the real forward, and that call again.
    """

    channels_last: bool = True


_F = TypeVar("_F", bound=Callable[..., Any])


def under_rules(fn: _F, layout: Layout) -> _F:
    """``fn`` run under :class:`ForwardRules` (a backward of its result runs outside, as usual).

    In channels-last while ``layout.channels_last``; a call that drew random numbers there, or
    raised a ``RuntimeError`` (a model's ``x.view(B, -1)`` needs contiguous strides), turns it
    off and runs again in the contiguous layout. ``fn`` must replay its random draws
    (a recorded forward, or a forked random state) for the second run to equal a contiguous one.

    Args:
        fn: the replay or validation forward of a hypergradient method.
        layout: the learner's layout choice, shared by the calls it wraps and updated here.

    Returns:
        ``fn`` under the rules, with its signature.
    """

    @functools.wraps(fn)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if layout.channels_last:
            try:
                with ForwardRules(channels_last=True) as rules:
                    out = fn(*args, **kwargs)
            except RuntimeError:  # e.g. a model's ``.view`` that needs contiguous strides: contiguous
                layout.channels_last = False  # from now on; a real error is raised again below
            else:
                if not rules.drew_random:
                    return out
                layout.channels_last = False  # its dropout masks may differ from the real forward's: again
        with ForwardRules():
            return fn(*args, **kwargs)

    return wrapped  # type: ignore[return-value]
