"""PBA's augmentation (Ho et al., ICML 2019, Algorithm 2), batched with per-sample parameters.

Per image, as PBA's ``augmentation_transforms_hp.apply_policy``: draw how many ops to apply,
0, 1 or 2 with probabilities 0.2, 0.3, 0.5; walk the 30 entries of the
:class:`~autodata.schedules.PBAPolicy` (every op twice) in a random order, applying each
with its probability ``level / 10`` until that many were applied (an image may get fewer
if the walk ends first). Then, as PBA's ``data_utils`` for CIFAR: zero-pad by 4 and crop
back at a random offset, flip left-right with probability 1/2, and Cutout a 16 x 16 square
(each switchable). :meth:`PBAAugment.sample` draws all of it from an explicit generator into
a :class:`PBAParams`; :meth:`PBAAugment.forward` replays it, one batched call per op and
slot (the affine ops of a slot share one warp), with no per-image Python loop.

Magnitude levels (0-9) map to PBA's own ranges (``pba/augmentation_transforms.py`` with
``PARAMETER_MAX = 10``; ``int_parameter(l, M) = int(l * M / 10)``), in pixels of a 32-px
image, by calling the op table's kernels (:data:`autodata.augment.OPS`) with the op's own
argument, so every range below is PBA's, not the table's:

=============  =============================================  ===============================
op             PBA at level ``l``                             autodata table (AutoAugment)
=============  =============================================  ===============================
Rotate         ``+/- int(3 l)`` degrees, up to 27             up to 30 degrees
TranslateX/Y   ``+/- l`` px (absolute), up to 9 px            up to 150/331 of the size
ShearX/Y       ``+/- 0.03 l``, up to 0.27, about the top-left up to 0.3, about the centre
               corner (PIL's ``Image.transform``)
Brightness,    factor ``0.1 + 0.18 l`` (0.1 .. 1.72); no      ``1 +/- 0.9 m`` with a random
Color,         random sign: level 5 is the identity           sign
Contrast,
Sharpness
Posterize      ``4 - int(0.4 l)`` bits: 4, 3, 2 or 1          8 .. 4 bits
Solarize       invert pixels ``>= (256 - int(25.6 l)) / 255`` threshold ``256/255 (1 - m)``
Cutout         square of side ``2 l`` px (absolute),          side up to 0.5 of the size,
               clipped at the border, dataset-mean fill       grey fill
=============  =============================================  ===============================

Other differences from PBA's PIL code, on purpose: images are float in ``[0, 1]`` and are
not rounded to 8 bits between ops; the warps interpolate bilinearly (PIL: nearest; integer
translations are identical); everything PBA fills with zeros in its normalised space (the
area a warp uncovers, the padding, both Cutouts) is filled with ``fill``, by default the
CIFAR-10 mean that such a zero stands for.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import torch
from torch import Tensor

from autodata.augment._base import BaseAugment, new_generator
from autodata.augment._checks import check_generator, check_images
from autodata.augment._geometric import warp
from autodata.augment.ops import OPS
from autodata.data.loader import crop_flip
from autodata.schedules.pba_policy import NUM_ENTRIES, PBA_OPS, PBAPolicy

CIFAR10_MEAN: tuple[float, float, float] = (0.49139968, 0.48215841, 0.44653091)
"""PBA's ``MEANS['cifar10_50000']``: the colour a zero takes in PBA's normalised images."""

COUNT_PROBABILITIES: tuple[float, float, float] = (0.2, 0.3, 0.5)
"""PBA's probabilities of drawing 0, 1 or 2 ops per image (``aug_policy='cifar10'``)."""

_AFFINE = ("Rotate", "TranslateX", "TranslateY", "ShearX", "ShearY")
_ENHANCE = ("Brightness", "Color", "Contrast", "Sharpness")


def _int_parameter(level: Tensor, maxval: int) -> Tensor:
    """PBA's ``int(level * maxval / 10)`` for integer levels >= 0 (exact: floor division)."""
    return torch.div(level * maxval, 10, rounding_mode="floor")


def pba_op_value(name: str, level: Tensor, sign: Tensor) -> Tensor:
    """The op's own argument at PBA magnitude ``level`` (B,) long, signed by ``sign`` (B,).

    Rotate: degrees; TranslateX/Y: pixels; ShearX/Y: shear factor; the enhance ops: the
    table kernels' ``factor - 1``; Posterize: bits; Solarize: threshold in ``[0, 256/255]``;
    Cutout: side in pixels; AutoContrast, Equalize, Invert: 0 (unused).
    """
    level = level.long()
    sign = sign.float()
    if name == "Rotate":
        return _int_parameter(level, 30).float() * sign
    if name in ("TranslateX", "TranslateY"):
        return _int_parameter(level, 10).float() * sign
    if name in ("ShearX", "ShearY"):
        return level.float() * 0.3 / 10 * sign
    if name in _ENHANCE:
        return level.float() * 1.8 / 10 + 0.1 - 1.0
    if name == "Posterize":
        return (4 - _int_parameter(level, 4)).float()
    if name == "Solarize":
        return (256 - _int_parameter(level, 256)).float() / 255.0
    if name == "Cutout":
        return _int_parameter(level, 20).float()
    if name in ("AutoContrast", "Equalize", "Invert"):
        return torch.zeros_like(sign)
    raise ValueError(f"name must be one of {list(PBA_OPS)}, but got {name!r}.")


def _stack_affine(a: Tensor, b: Tensor, c: Tensor, d: Tensor, e: Tensor, f: Tensor) -> Tensor:
    return torch.stack([torch.stack([a, b, c], -1), torch.stack([d, e, f], -1)], -2)  # (B, 2, 3)


def pba_affine_matrix(name: str, value: Tensor, h: int, w: int) -> Tensor:
    """(B, 2, 3) source-to-destination pixel matrices of PBA's affine ops at ``value``.

    A positive value is PBA's un-negated branch: PIL ``rotate(+deg)`` turns the content
    counter-clockwise; ``Image.transform`` with ``(1, v, 0, 0, 1, 0)`` samples the source at
    ``x + v y`` (the content shears left, the top row fixed); with ``(1, 0, v, 0, 1, 0)`` it
    samples ``x + v`` (the content moves left by ``v`` pixels).
    """
    one, zero = torch.ones_like(value), torch.zeros_like(value)
    if name == "Rotate":
        return OPS["Rotate"].matrix(value, h, w)  # type: ignore[misc]
    if name == "TranslateX":
        return _stack_affine(one, zero, -value, zero, one, zero)
    if name == "TranslateY":
        return _stack_affine(one, zero, zero, zero, one, -value)
    if name == "ShearX":
        return _stack_affine(one, -value, zero, zero, one, zero)
    if name == "ShearY":
        return _stack_affine(one, zero, zero, -value, one, zero)
    raise ValueError(f"name must be one of {list(_AFFINE)}, but got {name!r}.")


def box_mask(h: int, w: int, centre: Tensor, size: Tensor) -> Tensor:
    """PBA's ``create_cutout_mask``: rows/columns ``[c - size // 2, c + size // 2)``, clipped.

    Args:
        centre: (B, 2) long pixel ``(x, y)`` of each square's centre.
        size: (B,) long side in pixels (0: an empty mask).

    Returns:
        (B, 1, H, W) bool, True inside the square.
    """
    half = torch.div(size, 2, rounding_mode="floor").view(-1, 1)  # (B, 1)
    ys = torch.arange(h, device=centre.device).view(1, h)
    xs = torch.arange(w, device=centre.device).view(1, w)
    cy, cx = centre[:, 1:2], centre[:, 0:1]  # (B, 1)
    in_y = (ys >= cy - half) & (ys < cy + half)  # (B, H)
    in_x = (xs >= cx - half) & (xs < cx + half)  # (B, W)
    return (in_y.unsqueeze(2) & in_x.unsqueeze(1)).unsqueeze(1)  # (B, 1, H, W)


def _pixel(position: Tensor, h: int, w: int) -> Tensor:
    """(B, 2) fractions in [0, 1) -> (B, 2) long pixels ``(x, y)``, uniform over the grid."""
    size = torch.tensor([w, h], device=position.device)
    return (position * size).floor().long().clamp(min=0).minimum(size - 1)


@dataclass(frozen=True)
class PBAParams:
    """Per-sample draws of a :class:`PBAAugment`; log them, replay them.

    Shape:
        - count: :math:`(B,)` long, how many ops were drawn (0, 1 or 2).
        - entry: :math:`(B, 2)` long, the policy entry (0-29) applied first / second,
          ``-1`` where fewer were applied.
        - op: :math:`(B, 2)` long, its index into :data:`PBA_OPS` (``entry % 15``), or -1.
        - level: :math:`(B, 2)` long, its magnitude level (0-9).
        - sign: :math:`(B, 2)` float, -1 or +1 (+1: PBA's un-negated branch).
        - op_position: :math:`(B, 2, 2)` float in ``[0, 1)``, the centre ``(x, y)`` of a
          Cutout op, as a fraction of the size.
        - crop: :math:`(B, 2)` long, the crop offset ``(left, top)`` in ``[0, 2 pad)`` in the
          padded image.
        - flip: :math:`(B,)` bool.
        - cutout_position: :math:`(B, 2)` float in ``[0, 1)``, the final Cutout's centre.
    """

    count: Tensor
    entry: Tensor
    op: Tensor
    level: Tensor
    sign: Tensor
    op_position: Tensor
    crop: Tensor
    flip: Tensor
    cutout_position: Tensor

    @property
    def batch_size(self) -> int:
        """B."""
        return self.count.shape[0]

    def to(self, device: torch.device | str) -> PBAParams:
        """A copy with every tensor on ``device``."""
        return PBAParams(*(getattr(self, f.name).to(device) for f in fields(self)))

    def subset(self, index: Tensor | slice) -> PBAParams:
        """The parameters of the samples selected by ``index`` (along B)."""
        return PBAParams(*(getattr(self, f.name)[index] for f in fields(self)))

    @property
    def num_applied(self) -> Tensor:
        """(B,) long: how many ops were applied (at most ``count``)."""
        return (self.op >= 0).sum(1)


def pba_sizes(image_size: int) -> dict[str, int]:
    """PBA's crop pad (4 px) and final Cutout (16 px) for CIFAR's 32 px, scaled to ``image_size``.

    The one rule for a run's replay of a schedule and for the PBA search, as
    :class:`PBAAugment` keyword arguments.

    Example:
        >>> pba_sizes(32), pba_sizes(28), pba_sizes(8)
        ({'pad': 4, 'cutout_size': 16}, {'pad': 3, 'cutout_size': 14}, {'pad': 1, 'cutout_size': 4})
    """
    return {"pad": max(1, image_size // 8), "cutout_size": max(1, image_size // 2)}


class PBAAugment(BaseAugment):
    """Apply a PBA policy to a batch, as PBA's training pipeline does for CIFAR.

    Args:
        policy: the :class:`PBAPolicy`; change it each epoch with :meth:`set_policy`
            (``aug.set_policy(schedule.policy_at(epoch))``). Default: all zeros, PBA's start.
        crop: zero-pad by ``pad`` pixels and crop back at a random offset (PBA's offsets are
            ``0 .. 2 pad - 1``: ``np.random.randint(0, 2 * amount)``).
        flip: mirror left-right with probability 1/2.
        cutout: Cutout a ``cutout_size`` square at a uniformly drawn centre, clipped.
        pad: the padding in pixels (PBA: 4).
        cutout_size: the final Cutout's side in pixels (PBA: 16 for CIFAR-10, 20 for SVHN).
        fill: the colour of uncovered, padded and cut-out pixels: one number, or one per
            channel. Default :data:`CIFAR10_MEAN` (PBA's zero after normalisation).
        seed: seeds the module's own generator, used when ``sample`` gets none.

    Example:
        >>> aug = PBAAugment(PBAPolicy((10, 5) * 30), seed=0)
        >>> x = torch.rand(8, 3, 32, 32)
        >>> params = aug.sample(8, torch.Generator().manual_seed(1))
        >>> torch.equal(aug(x, params), aug(x, params)), aug(x, params).shape
        (True, torch.Size([8, 3, 32, 32]))

    Shape:
        - x: :math:`(B, C, H, W)` float in ``[0, 1]``, :math:`C \\in \\{1, 3\\}`.
        - output: :math:`(B, C, H, W)`, same dtype and device.
    """

    params_type = PBAParams

    def __init__(
        self,
        policy: PBAPolicy | None = None,
        *,
        crop: bool = True,
        flip: bool = True,
        cutout: bool = True,
        pad: int = 4,
        cutout_size: int = 16,
        fill: float | Sequence[float] = CIFAR10_MEAN,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        for name, v in (("pad", pad), ("cutout_size", cutout_size)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be an int >= 1, but got {v!r}.")
        for name, v in (("crop", crop), ("flip", flip), ("cutout", cutout)):
            if not isinstance(v, bool):
                raise ValueError(f"{name} must be a bool, but got {v!r}.")
        values = (fill,) if isinstance(fill, (int, float)) and not isinstance(fill, bool) else fill
        if not isinstance(values, (list, tuple)) or not values or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and 0.0 <= v <= 1.0 for v in values
        ):
            raise ValueError(f"fill must be a number in [0, 1] or a sequence of them, but got {fill!r}.")
        self.crop, self.flip, self.cutout = crop, flip, cutout
        self.pad, self.cutout_size = pad, cutout_size
        self.register_buffer("_fill", torch.tensor([float(v) for v in values]), persistent=False)
        self.register_buffer("_prob", torch.zeros(NUM_ENTRIES), persistent=False)
        self.register_buffer("_mag", torch.zeros(NUM_ENTRIES, dtype=torch.long), persistent=False)
        self.set_policy(PBAPolicy.zeros() if policy is None else policy)
        self.generator = new_generator(seed)

    def set_policy(self, policy: PBAPolicy) -> None:
        """Use ``policy`` from the next :meth:`sample` on."""
        if not isinstance(policy, PBAPolicy):
            raise TypeError(f"policy must be a PBAPolicy, but got {type(policy).__name__}.")
        self.policy = policy
        self._prob.copy_(torch.tensor(policy.probability_levels, dtype=torch.float32) / 10.0)
        self._mag.copy_(torch.tensor(policy.magnitude_levels, dtype=torch.long))

    def sample(
        self, batch_size: int, generator: torch.Generator | None = None, device: torch.device | str | None = None
    ) -> PBAParams:
        """Draw the per-sample parameters of ``batch_size`` images.

        Args:
            batch_size: B.
            generator: the random source (draws on its device); default the module's own.
            device: where the parameters live; default the module's buffers' device.
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 0:
            raise ValueError(f"batch_size must be an int >= 0, but got {batch_size!r}.")
        g = self.generator if generator is None else check_generator(generator)
        device = self._prob.device if device is None else torch.device(device)
        b, n = batch_size, NUM_ENTRIES

        def draw(*shape: int) -> Tensor:
            return torch.rand(shape, generator=g, device=g.device).to(device)

        u_count, u_order, u_gate = draw(b), draw(b, n), draw(b, n)
        u_sign, op_position, u_crop, u_flip, cutout_position = draw(b, 2), draw(b, 2, 2), draw(b, 2), draw(b), draw(b, 2)
        count = (u_count >= COUNT_PROBABILITIES[0]).long() + (u_count >= 1.0 - COUNT_PROBABILITIES[2]).long()  # (B,)
        order = u_order.argsort(dim=1)  # (B, 30): a uniform random permutation per sample
        prob, mag = self._prob.to(device), self._mag.to(device)
        gate = u_gate < prob  # (B, 30) PBA's random.random() < probability, per entry
        gate_in_order = gate.gather(1, order)  # (B, 30) in walking order
        rank = gate_in_order.long().cumsum(1)  # (B, 30) how many applied so far, inclusive
        entries = []
        for k in range(2):
            hit = gate_in_order & (rank == k + 1)  # (B, 30): the walk's (k + 1)-th application
            found = hit.any(1) & (count > k)  # (B,)
            first = hit.long().argmax(1, keepdim=True)  # (B, 1)
            entries.append(torch.where(found, order.gather(1, first).squeeze(1), -1))
        entry = torch.stack(entries, 1)  # (B, 2)
        used = entry >= 0
        safe = entry.clamp(min=0)
        crop_offset = (u_crop * (2 * self.pad)).floor().long().clamp(max=2 * self.pad - 1)  # (B, 2)
        return PBAParams(
            count=count,
            entry=entry,
            op=torch.where(used, safe % len(PBA_OPS), -1),
            level=torch.where(used, mag[safe], 0),
            sign=torch.where(u_sign < 0.5, -1.0, 1.0),
            op_position=op_position,
            crop=crop_offset,
            flip=u_flip < 0.5,
            cutout_position=cutout_position,
        )

    def _check_params(self, params: PBAParams, batch: int) -> None:
        if not isinstance(params, PBAParams):
            raise TypeError(f"params must be PBAParams, but got {type(params).__name__}.")
        expected = {"count": (batch,), "entry": (batch, 2), "op": (batch, 2), "level": (batch, 2),
                    "sign": (batch, 2), "op_position": (batch, 2, 2), "crop": (batch, 2), "flip": (batch,),
                    "cutout_position": (batch, 2)}
        for name, shape in expected.items():
            value = getattr(params, name)
            if not isinstance(value, Tensor) or tuple(value.shape) != shape:
                got = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
                raise ValueError(f"params.{name} must have shape {shape} (B = {batch}), but got {got}.")

    def _fill_for(self, x: Tensor) -> Tensor:
        fill = self._fill.to(device=x.device, dtype=x.dtype)
        if fill.numel() == 1:
            fill = fill.expand(x.shape[1])
        if fill.numel() != x.shape[1]:
            raise ValueError(f"fill must have one value or one per channel ({x.shape[1]}), but got {fill.numel()}.")
        return fill.view(1, -1, 1, 1)  # (1, C, 1, 1)

    def _apply_slot(self, x: Tensor, op: Tensor, level: Tensor, sign: Tensor, position: Tensor, fill: Tensor) -> Tensor:
        """Apply ``PBA_OPS[op[b]]`` to every sample with ``op[b] >= 0``; one call per op."""
        h, w = x.shape[-2:]
        out = x.clone()
        affine_idx, matrices = [], []
        for op_id in torch.unique(op[op >= 0]).tolist():
            name = PBA_OPS[op_id]
            idx = (op == op_id).nonzero().squeeze(1)  # (n,)
            value = pba_op_value(name, level[idx], sign[idx]).to(x.dtype)  # (n,)
            if name in _AFFINE:
                affine_idx.append(idx)
                matrices.append(pba_affine_matrix(name, value, h, w))
                continue
            sub = x.index_select(0, idx)  # (n, C, H, W)
            if name == "Cutout":
                mask = box_mask(h, w, _pixel(position[idx], h, w), value.long())  # (n, 1, H, W)
                y = torch.where(mask, fill, sub)
            else:
                y = OPS[name].kernel(sub, value, position[idx])
            out.index_copy_(0, idx, y)
        if affine_idx:
            idx = torch.cat(affine_idx)  # (n,) distinct samples
            moved = warp(x.index_select(0, idx) - fill, torch.cat(matrices)) + fill  # one warp, fill outside
            out.index_copy_(0, idx, moved)
        return out

    def forward(self, x: Tensor, params: PBAParams | None = None) -> Tensor:
        """Augment ``x``, drawing fresh parameters unless ``params`` are given."""
        check_images(x)
        b, _, h, w = x.shape
        if params is None:
            params = self.sample(b, device=x.device)
        self._check_params(params, b)
        params = params.to(x.device)
        fill = self._fill_for(x)
        out = x
        for slot in range(2):
            out = self._apply_slot(out, params.op[:, slot], params.level[:, slot], params.sign[:, slot],
                                   params.op_position[:, slot], fill)
        if self.crop or self.flip:  # the library's one crop-and-flip, in one gather
            zeros = torch.zeros(b, dtype=torch.long, device=x.device)
            top, left = (params.crop[:, 1], params.crop[:, 0]) if self.crop else (zeros, zeros)
            flips = params.flip if self.flip else torch.zeros(b, dtype=torch.bool, device=x.device)
            out = crop_flip(out - fill, top, left, flips, self.pad if self.crop else 0) + fill  # (B, C, H, W)
        if self.cutout:
            size = torch.full((b,), self.cutout_size, device=x.device, dtype=torch.long)
            mask = box_mask(h, w, _pixel(params.cutout_position, h, w), size)  # (B, 1, H, W)
            out = torch.where(mask, fill, out)
        return out if out is not x else x.clone()

    def extra_repr(self) -> str:
        return (f"policy={self.policy!r}, crop={self.crop}, flip={self.flip}, cutout={self.cutout}, "
                f"pad={self.pad}, cutout_size={self.cutout_size}")
