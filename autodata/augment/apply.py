"""Apply a fixed :class:`~autodata.augment.policy.Policy` to batches, or to single images.

:class:`PolicyAugment` is the batched module: :meth:`PolicyAugment.sample` draws every
per-sample choice (sub-policy per stage, gate, magnitude, sign, position) from an explicit
generator into a :class:`PolicyParams`, and :meth:`PolicyAugment.forward` replays them.
Samples are grouped by op: each op runs once per stage and slot on the subset of samples
that apply it (all affine ops of a slot share one warp), with no per-sample Python loop.
:class:`PolicyTransform` (:mod:`autodata.augment.transform_v2`) applies the same policy per
sample as a ``torchvision.transforms.v2`` transform, with the same semantics.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from autodata.augment._base import BaseAugment, new_generator
from autodata.augment._checks import check_generator, check_images
from autodata.augment._geometric import warp_nearest
from autodata.augment._grouped import apply_grouped
from autodata.augment.ops import OPS
from autodata.augment.policy import Policy
from autodata.augment.transform_v2 import GEOMETRIC_OPS, PolicyTransform

__all__ = ["PolicyAugment", "PolicyParams", "PolicyTransform"]


@dataclass(frozen=True)
class PolicyParams:
    """Per-sample draws of a :class:`PolicyAugment`; log them, replay them.

    Shape:
        - choice: :math:`(S, B)` long, the sub-policy picked in each of the S stages.
        - op: :math:`(S, J, B)` long, index into :attr:`PolicyAugment.op_names` of the op
          in slot j of the chosen sub-policy, ``-1`` where that sub-policy is shorter.
        - apply: :math:`(S, J, B)` bool, whether the op's gate fired.
        - magnitude: :math:`(S, J, B)` float in ``[0, 1]``.
        - sign: :math:`(S, J, B)` float, ``-1.0`` or ``+1.0`` (``+1`` with the op's
          ``sign_probability``).
        - position: :math:`(S, J, B, 2)` float in ``[0, 1]``.
    """

    choice: Tensor
    op: Tensor
    apply: Tensor
    magnitude: Tensor
    sign: Tensor
    position: Tensor

    @property
    def batch_size(self) -> int:
        """B."""
        return self.choice.shape[-1]

    def to(self, device: torch.device | str) -> PolicyParams:
        """A copy with every tensor on ``device``."""
        return PolicyParams(*(getattr(self, f).to(device) for f in self.__dataclass_fields__))

    def subset(self, index: Tensor | slice) -> PolicyParams:
        """The parameters of the samples selected by ``index`` (along B)."""
        return PolicyParams(
            choice=self.choice[:, index],
            op=self.op[:, :, index],
            apply=self.apply[:, :, index],
            magnitude=self.magnitude[:, :, index],
            sign=self.sign[:, :, index],
            position=self.position[:, :, index],
        )


def _mask_batch(mask: object, x: Tensor) -> Tensor:
    """Check masks against their images; return them as (B, K, H, W) (bool as uint8)."""
    if not isinstance(mask, Tensor):
        raise TypeError(f"mask must be a torch.Tensor, but got {type(mask).__name__}.")
    b, _, h, w = x.shape
    if mask.ndim not in (3, 4) or mask.shape[0] != b or tuple(mask.shape[-2:]) != (h, w):
        raise ValueError(f"mask must have shape (B, H, W) or (B, K, H, W) with B, H, W = {b}, {h}, {w} of the "
                         f"images, but got {tuple(mask.shape)}.")
    m = mask.view(b, 1, h, w) if mask.ndim == 3 else mask
    return (m.to(torch.uint8) if m.dtype == torch.bool else m).to(x.device)


def _move_masks(
    mask: Tensor,
    op_index: Tensor,
    op_names: tuple[str, ...],
    candidates: list[int],
    magnitude: Tensor,
    sign: Tensor,
    position: Tensor,
    active: Tensor,
    dtype: torch.dtype,
) -> Tensor:
    """Apply one slot's geometric ops to the masks of the samples that drew them (nearest).

    The geometry of :func:`~autodata.augment._grouped.apply_grouped` for the images: the same
    matrices, shifts and flips; colour ops do nothing here. All affine samples share one warp.
    """
    out = mask.clone()
    affine_idx, matrices = [], []
    h, w = mask.shape[-2:]
    for op_id in candidates:
        name = op_names[op_id]
        if name not in GEOMETRIC_OPS:
            continue
        idx = ((op_index == op_id) & active).nonzero().squeeze(1)  # (n,)
        if idx.numel() == 0:
            continue
        spec = OPS[name]
        value = spec.value(magnitude[idx].to(dtype), sign[idx].to(dtype))  # (n,) as for the images
        if spec.matrix is not None:
            affine_idx.append(idx)
            matrices.append(spec.matrix(value, h, w))
        else:  # CropPad, HFlip: whole-pixel gathers, exact for any dtype
            out.index_copy_(0, idx, spec.kernel(mask.index_select(0, idx), value, position[idx].to(dtype)))
    if affine_idx:
        idx = torch.cat(affine_idx)
        out.index_copy_(0, idx, warp_nearest(mask.index_select(0, idx), torch.cat(matrices)))
    return out


class PolicyAugment(BaseAugment):
    """Apply a fixed policy to a batch on its device with per-sample randomness.

    A :class:`~autodata.augment.BaseAugment` without learnable parameters: as ``augment=`` of
    :class:`autodata.MetaLearner` it augments the training batches and learns nothing.

    Args:
        policy: the :class:`Policy` to apply.
        seed: seeds the module's own generator, used when no generator is passed.

    Example:
        >>> aug = PolicyAugment(Policy.identity(), seed=0)
        >>> x = torch.rand(8, 3, 32, 32)
        >>> params = aug.sample(8, torch.Generator().manual_seed(1))
        >>> torch.equal(aug(x, params), aug(x, params))
        True

        >>> masks = torch.randint(0, 5, (8, 32, 32))  # per-pixel labels move with the geometry
        >>> images, moved = aug(x, params, mask=masks)
        >>> moved.shape, moved.dtype
        (torch.Size([8, 32, 32]), torch.int64)

    Shape:
        - x: :math:`(B, C, H, W)` float in ``[0, 1]``.
        - mask (optional): :math:`(B, H, W)` or :math:`(B, K, H, W)`, any dtype.
        - output: :math:`(B, C, H, W)`, same dtype and device; with ``mask``, the pair
          ``(output, moved mask)``.
    """

    params_type = PolicyParams

    def __init__(self, policy: Policy, seed: int | None = None) -> None:
        super().__init__()
        if not isinstance(policy, Policy):
            raise TypeError(f"policy must be a Policy, but got {type(policy).__name__}.")
        self.policy = policy
        self.op_names: tuple[str, ...] = policy.op_names
        index = {name: i for i, name in enumerate(self.op_names)}
        s = len(policy.stages)
        k = max(len(st.sub_policies) for st in policy.stages)
        j = max(len(sub.ops) for st in policy.stages for sub in st.sub_policies)
        cdf = torch.ones(s, k)  # padding entries are never reached
        op = torch.full((s, k, j), -1, dtype=torch.long)
        prob = torch.zeros(s, k, j)
        mag = torch.zeros(s, k, j)
        uniform = torch.zeros(s, k, j, dtype=torch.bool)
        negative = torch.full((s, k, j), 0.5)  # a sign is -1 where its uniform draw is below 1 - sign_probability
        self._slot_ops: list[list[list[int]]] = [[[] for _ in range(j)] for _ in range(s)]
        for si, stage in enumerate(policy.stages):
            cdf[si, : len(stage.sub_policies)] = torch.tensor(stage.probabilities, dtype=torch.float64).cumsum(0)
            for ki, sub in enumerate(stage.sub_policies):
                for ji, cfg in enumerate(sub.ops):
                    op[si, ki, ji] = index[cfg.name]
                    prob[si, ki, ji] = cfg.probability
                    mag[si, ki, ji] = cfg.magnitude
                    uniform[si, ki, ji] = cfg.magnitude_sampling == "uniform"
                    negative[si, ki, ji] = 1.0 - cfg.sign_probability
                    if index[cfg.name] not in self._slot_ops[si][ji]:
                        self._slot_ops[si][ji].append(index[cfg.name])
        self.register_buffer("_cdf", cdf, persistent=False)
        self.register_buffer("_op", op, persistent=False)
        self.register_buffer("_prob", prob, persistent=False)
        self.register_buffer("_mag", mag, persistent=False)
        self.register_buffer("_uniform", uniform, persistent=False)
        self.register_buffer("_negative", negative, persistent=False)
        # the last sub-policy with a positive weight: float rounding of the CDF never picks past it
        self._last_pick = [max(i for i, w in enumerate(st.weights) if w > 0) for st in policy.stages]
        self.generator = new_generator(seed)

    def sample(
        self, batch_size: int, generator: torch.Generator | None = None, device: torch.device | str | None = None
    ) -> PolicyParams:
        """Draw the per-sample parameters of ``batch_size`` samples.

        Args:
            batch_size: B.
            generator: the random source (its device draws); default the module's own.
            device: where the parameters live; default the module's buffers' device.
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 0:
            raise ValueError(f"batch_size must be an int >= 0, but got {batch_size!r}.")
        g = self.generator if generator is None else check_generator(generator)
        device = self._cdf.device if device is None else torch.device(device)
        s, k, j = self._op.shape
        b = batch_size

        def draw(*shape: int) -> Tensor:
            return torch.rand(shape, generator=g, device=g.device).to(device)

        u_choice, position = draw(s, b), draw(s, j, b, 2)
        u_apply, u_mag, u_sign = draw(s, j, b), draw(s, j, b), draw(s, j, b)
        cdf, table = self._cdf.to(device), lambda t: t.to(device)
        limit = torch.tensor(self._last_pick, device=device).view(s, 1)
        choice = torch.minimum(torch.searchsorted(cdf, u_choice, right=True), limit)  # (S, B)
        picked = choice.unsqueeze(-1).expand(s, b, j)

        def select(t: Tensor) -> Tensor:  # (S, K, J) -> (S, J, B)
            return table(t).gather(1, picked).transpose(1, 2)

        op, prob, mag, uniform = select(self._op), select(self._prob), select(self._mag), select(self._uniform)
        negative = select(self._negative)
        return PolicyParams(
            choice=choice,
            op=op,
            apply=(u_apply < prob) & (op >= 0),
            magnitude=torch.where(uniform, u_mag * mag, mag),
            sign=torch.where(u_sign < negative, -1.0, 1.0),
            position=position,
        )

    def _check_params(self, params: PolicyParams, batch: int) -> None:
        if not isinstance(params, PolicyParams):
            raise TypeError(f"params must be PolicyParams, but got {type(params).__name__}.")
        s, _, j = self._op.shape
        expected = {"choice": (s, batch), "op": (s, j, batch), "apply": (s, j, batch), "magnitude": (s, j, batch),
                    "sign": (s, j, batch), "position": (s, j, batch, 2)}
        for name, shape in expected.items():
            value = getattr(params, name)
            if not isinstance(value, Tensor) or tuple(value.shape) != shape:
                got = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
                raise ValueError(f"params.{name} must have shape {shape} (S, J, B = {s}, {j}, {batch}), but got {got}.")

    def forward(
        self, x: Tensor, params: PolicyParams | None = None, mask: Tensor | None = None
    ) -> Tensor | tuple[Tensor, Tensor]:
        """Augment ``x``, drawing fresh parameters unless ``params`` are given.

        With ``mask`` (label maps of the same images, as Kornia's ``AugmentationSequential``
        takes them), the geometric ops (ShearX/Y, TranslateX/Y, Rotate, CropPad, HFlip) move
        each sample's mask exactly as its image, with nearest-neighbour sampling and zero fill
        (labels are never blended); colour ops, Cutout included, leave it unchanged. Returns
        ``(images, masks)`` then.

        Shape:
            - mask: :math:`(B, H, W)` or :math:`(B, K, H, W)`, any dtype; output: the same.
        """
        check_images(x)
        b = x.shape[0]
        if params is None:
            params = self.sample(b, device=x.device)
        self._check_params(params, b)
        params = params.to(x.device)
        moved = None if mask is None else _mask_batch(mask, x)  # (B, K, H, W)
        out = x.clone()  # one copy; every slot then updates it in place
        for si, slots in enumerate(self._slot_ops):
            for ji, op_ids in enumerate(slots):
                args = (params.op[si, ji], self.op_names, op_ids, params.magnitude[si, ji], params.sign[si, ji],
                        params.position[si, ji], params.apply[si, ji])
                if moved is not None:
                    moved = _move_masks(moved, *args, dtype=x.dtype)
                out = apply_grouped(out, *args, out=out)
        if mask is None or moved is None:
            return out
        return out, (moved.to(torch.bool) if mask.dtype == torch.bool else moved).reshape(mask.shape)

    def extra_repr(self) -> str:
        return f"policy={self.policy.name!r}, stages={len(self.policy.stages)}, ops={list(self.op_names)}"
