"""Contract suites every augmentation op and every learnable policy must pass.

Shipped in the package (as ``optuna.testing``) so that a new op or policy module is checked
by one call, in autodata's tests or in a user's::

    from autodata.augment import OPS
    from autodata.augment.testing import check_op, check_parameter_gradients

    for spec in OPS.values():
        check_op(spec)

Each check raises ``AssertionError`` naming the op and the broken property.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from autodata.augment.ops import OpSpec

_SIZE = 16


def _inputs(spec: OpSpec, batch: int, channels: int, dtype: torch.dtype, seed: int) -> tuple[Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, channels, _SIZE, _SIZE, generator=g).to(dtype)
    magnitude = (0.2 + 0.6 * torch.rand(batch, generator=g)).to(dtype)
    sign = torch.where(torch.rand(batch, generator=g) < 0.5, -1.0, 1.0).to(dtype)
    position = (0.2 + 0.6 * torch.rand(batch, 2, generator=g)).to(dtype)
    return x, magnitude, sign, position


def _fail(spec: OpSpec, what: str) -> AssertionError:
    return AssertionError(f"op {spec.name!r}: {what}")


def check_op_output(spec: OpSpec, seed: int = 0) -> None:
    """Shape and dtype are kept and values stay in [0, 1], for 1 and 3 channels, float32 and float64."""
    for channels in (1, 3):
        for dtype in (torch.float32, torch.float64):
            x, m, s, p = _inputs(spec, 5, channels, dtype, seed)
            for magnitude in (m, torch.zeros_like(m), torch.ones_like(m)):
                out = spec(x, magnitude, s, p)
                if out.shape != x.shape or out.dtype != x.dtype or out.device != x.device:
                    got, want = (tuple(out.shape), out.dtype), (tuple(x.shape), dtype)
                    raise _fail(spec, f"output {got} differs from input {want}")
                if not torch.isfinite(out).all() or out.min() < 0 or out.max() > 1:
                    raise _fail(spec, f"output leaves [0, 1] with {channels} channels and {dtype}")
    x, m, s, p = _inputs(spec, 0, 3, torch.float32, seed)
    if spec(x, m, s, p).shape != x.shape:
        raise _fail(spec, "an empty batch changes shape")


def check_op_identity_at_zero(spec: OpSpec, seed: int = 0) -> None:
    """Magnitude 0 leaves the image unchanged, for ops with a magnitude."""
    if not spec.uses_magnitude:
        return
    x, m, s, p = _inputs(spec, 4, 3, torch.float64, seed)
    x = (x * 255).round() / 255  # 8-bit levels, as a decoded image
    out = spec(x, torch.zeros_like(m), s, p)
    if not torch.allclose(out, x, atol=1e-6):
        raise _fail(spec, f"magnitude 0 changes the image by up to {float((out - x).abs().max()):.3g}")


def check_op_replay(spec: OpSpec, seed: int = 0) -> None:
    """The same per-sample parameters give identical outputs."""
    x, m, s, p = _inputs(spec, 6, 3, torch.float32, seed)
    if not torch.equal(spec(x, m, s, p), spec(x.clone(), m.clone(), s.clone(), p.clone())):
        raise _fail(spec, "the same parameters give different outputs")


def check_op_per_sample(spec: OpSpec, seed: int = 0) -> None:
    """Each sample depends only on its own parameters: a batch equals its samples one by one."""
    x, m, s, p = _inputs(spec, 4, 3, torch.float64, seed)
    batched = spec(x, m, s, p)
    single = torch.cat([spec(x[i : i + 1], m[i : i + 1], s[i : i + 1], p[i : i + 1]) for i in range(4)])
    if not torch.allclose(batched, single, atol=1e-6):
        raise _fail(spec, "a batch differs from its samples applied one by one")


def _expect_value_error(spec: OpSpec, what: str, call: Callable[[], object]) -> None:
    try:
        call()
    except ValueError:
        return
    raise _fail(spec, f"{what} is not rejected with ValueError")


def check_op_bad_arguments(spec: OpSpec, seed: int = 0) -> None:
    """Wrong ndim, dtype, channels, magnitude shape, or magnitude outside [0, 1] raise ValueError."""
    x, m, s, p = _inputs(spec, 3, 3, torch.float32, seed)
    _expect_value_error(spec, "a 3-d image", lambda: spec(x[0], m))
    _expect_value_error(spec, "a uint8 image", lambda: spec((x * 255).to(torch.uint8), m))
    _expect_value_error(spec, "a 2-channel image", lambda: spec(x[:, :2], m))
    _expect_value_error(spec, "a magnitude of the wrong batch size", lambda: spec(x, m[:2]))
    _expect_value_error(spec, "a 2-d magnitude", lambda: spec(x, m[:, None]))
    _expect_value_error(spec, "a magnitude above 1", lambda: spec(x, m + 1.0))
    _expect_value_error(spec, "a negative magnitude", lambda: spec(x, -m))
    _expect_value_error(spec, "a sign of the wrong shape", lambda: spec(x, m, s[:2]))
    _expect_value_error(spec, "a position of the wrong shape", lambda: spec(x, m, s, p[:, :1]))


def check_op_gradient(spec: OpSpec, seed: int = 0) -> None:
    """Gradients are finite; with a magnitude they are non-zero for every sample.

    Exact ops are compared with a central finite difference; straight-through ops must
    forward exactly the op's value; ops without a magnitude give it no gradient and still
    pass a non-zero gradient to ``x``.
    """
    x, m, s, p = _inputs(spec, 4, 3, torch.float64, seed)
    x = x.requires_grad_()
    m = m.clone().requires_grad_()
    weights = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed + 1), dtype=x.dtype)
    out = spec(x, m, s, p)
    (out * weights).sum().backward()
    if x.grad is None or not torch.isfinite(x.grad).all() or not x.grad.abs().sum() > 0:
        raise _fail(spec, "the gradient with respect to x is missing, non-finite or zero")
    if not spec.uses_magnitude:
        if m.grad is not None and m.grad.abs().sum() != 0:
            raise _fail(spec, "an op without a magnitude gives the magnitude a gradient")
        return
    if m.grad is None or not torch.isfinite(m.grad).all() or not (m.grad != 0).all():
        raise _fail(spec, f"the magnitude gradient must be finite and non-zero per sample, but got {m.grad}")
    with torch.no_grad():
        plain = spec(x.detach(), m.detach(), s, p)
    if not torch.allclose(out.detach(), plain, atol=1e-12):
        raise _fail(spec, "the gradient estimator changes the forward value")
    if spec.differentiable:
        eps = 1e-6
        with torch.no_grad():
            up = (spec(x.detach(), (m + eps).detach(), s, p) * weights).flatten(1).sum(1)
            down = (spec(x.detach(), (m - eps).detach(), s, p) * weights).flatten(1).sum(1)
        numeric = (up - down) / (2 * eps)
        if not torch.allclose(m.grad, numeric, rtol=1e-3, atol=1e-4):
            raise _fail(spec, f"the magnitude gradient {m.grad} differs from finite differences {numeric}")


OP_CHECKS: tuple[Callable[[OpSpec, int], None], ...] = (
    check_op_output,
    check_op_identity_at_zero,
    check_op_replay,
    check_op_per_sample,
    check_op_bad_arguments,
    check_op_gradient,
)


def check_op(spec: OpSpec, seed: int = 0) -> None:
    """Run every op check of this module."""
    for check in OP_CHECKS:
        check(spec, seed)


def check_parameter_gradients(
    module: nn.Module, x: Tensor, params: object, loss: Callable[[Tensor], Tensor] | None = None
) -> None:
    """Every element of every learnable parameter gets a finite, non-zero gradient.

    Args:
        module: called as ``module(x, params)``.
        x: input batch.
        params: per-sample parameters from ``module.sample``.
        loss: scalar loss of the output; default a fixed random projection.
    """
    module.zero_grad(set_to_none=True)
    out = module(x, params)
    if loss is None:
        weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(0)).to(out)
        value = (out * weights).sum()
    else:
        value = loss(out)
    value.backward()
    for name, parameter in module.named_parameters():
        if not parameter.requires_grad:
            continue
        grad = parameter.grad
        if grad is None:
            raise AssertionError(f"parameter {name!r} gets no gradient")
        if not torch.isfinite(grad).all():
            raise AssertionError(f"parameter {name!r} gets a non-finite gradient")
        zero = (grad == 0).nonzero().tolist()
        if zero:
            raise AssertionError(f"parameter {name!r} gets a zero gradient at {zero[:8]}")


def check_replay(module: nn.Module, x: Tensor, seed: int = 0) -> None:
    """``module(x, params)`` is deterministic given ``params = module.sample(B, generator)``,
    and the same seed draws the same parameters."""
    draw = lambda: module.sample(x.shape[0], torch.Generator().manual_seed(seed))  # noqa: E731
    params = draw()
    first = module(x, params)
    if not torch.equal(first, module(x, params)):
        raise AssertionError("the same params give different outputs")
    if not torch.equal(first, module(x, draw())):
        raise AssertionError("the same seed gives different outputs")
