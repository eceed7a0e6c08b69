"""Apply a different op to each sample of a batch, one call per op.

Shared by :class:`~autodata.augment.PolicyAugment` and
:class:`~autodata.augment.DifferentiablePolicy`: samples that apply the same op run as one
batched call on their subset, and the samples of all affine ops (those with an
``OpSpec.matrix``) share a single warp. No per-sample Python loop.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from autodata.augment._geometric import warp
from autodata.augment.ops import OPS


def apply_grouped(
    x: Tensor,
    op_index: Tensor,
    op_names: Sequence[str],
    candidates: Sequence[int],
    magnitude: Tensor,
    sign: Tensor,
    position: Tensor,
    active: Tensor | None = None,
    out: Tensor | None = None,
) -> Tensor:
    """Apply ``op_names[op_index[b]]`` to sample ``b`` wherever ``active[b]``.

    Args:
        x: the batch.
        op_index: per-sample index into ``op_names`` (any value for inactive samples).
        op_names: names of :data:`~autodata.augment.OPS`.
        candidates: the indices that may occur in ``op_index`` (known statically).
        magnitude: per-sample magnitudes in ``[0, 1]``.
        sign: per-sample signs.
        position: per-sample positions.
        active: which samples apply their op (default all).
        out: where to write; default a copy of ``x``. Passing ``x`` itself updates it in
            place (each sample is read before it is written, once).

    Returns:
        ``out``; inactive samples keep their value.

    Shape:
        - x, output: :math:`(B, C, H, W)`.
        - op_index, magnitude, sign, active: :math:`(B,)`.
        - position: :math:`(B, 2)`.
    """
    out = x.clone() if out is None else out
    h, w = x.shape[-2:]
    affine: list[tuple[Tensor, str]] = []
    for op_id in candidates:
        spec = OPS[op_names[op_id]]
        chosen = op_index == op_id
        if active is not None:
            chosen = chosen & active
        idx = chosen.nonzero().squeeze(1)  # (n,)
        if idx.numel() == 0:
            continue
        if spec.matrix is not None:
            affine.append((idx, op_names[op_id]))
            continue
        y = spec.apply(x.index_select(0, idx), magnitude[idx], sign[idx], position[idx])
        out.index_copy_(0, idx, y)  # in place is safe: index_select saves no values
    if affine:
        idx = torch.cat([i for i, _ in affine])  # (n,) distinct samples
        matrices = []
        for i, name in affine:
            spec = OPS[name]
            matrices.append(spec.matrix(spec.value(magnitude[i].to(x.dtype), sign[i].to(x.dtype)), h, w))
        out.index_copy_(0, idx, warp(x.index_select(0, idx), torch.cat(matrices)))  # one warp, (n, 2, 3) matrices
    return out
