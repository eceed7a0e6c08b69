"""Batches straight from device memory: shuffle, crop, flip and normalise whole batches.

:class:`DeviceLoader` copies a uint8 dataset to the device once. Each batch is then one
index draw, one pad, one gather that applies every sample's crop offset and flip at
once, and one fused normalisation: no worker processes, no per-image Python.
:func:`make_dataloader` builds the usual torchvision ``DataLoader`` pipeline for data
that does not fit on the device.

The augmentation is the standard CIFAR one (He et al., "Deep Residual Learning for Image
Recognition", CVPR 2016): zero-pad by 4, random 32x32 crop, random horizontal flip.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from autodata.data.datasets import ArrayDataset
from autodata.data.stats import DATASET_STATS

__all__ = ["DeviceLoader", "crop_flip", "sample_crop_flip", "make_dataloader"]


def sample_crop_flip(
    batch_size: int,
    padding: int,
    flip: bool,
    generator: torch.Generator,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Draws per-sample crop offsets and flip flags.

    Args:
        batch_size: B.
        padding: Crop padding p; offsets are uniform in ``[0, 2p]``.
        flip: Whether to draw flips (probability 1/2); else all False.
        generator: The random generator (on ``device``).
        device: Where to draw.

    Returns:
        ``(top (B,), left (B,), flip (B,) bool)``.

    Example:
        >>> top, left, f = sample_crop_flip(3, 4, True, torch.Generator().manual_seed(0))
        >>> top.shape, f.dtype
        (torch.Size([3]), torch.bool)
    """
    top = torch.randint(0, 2 * padding + 1, (batch_size,), generator=generator, device=device)
    left = torch.randint(0, 2 * padding + 1, (batch_size,), generator=generator, device=device)
    if flip:
        flips = torch.rand(batch_size, generator=generator, device=device) < 0.5
    else:
        flips = torch.zeros(batch_size, dtype=torch.bool, device=device)
    return top, left, flips


def crop_flip(
    x: torch.Tensor, top: torch.Tensor, left: torch.Tensor, flip: torch.Tensor, padding: int
) -> torch.Tensor:
    """Zero-pads a batch, then crops each sample at its offset and flips it, in one gather.

    Output pixel ``(i, j)`` of sample ``b`` is padded pixel ``(top[b] + i, left[b] + j)``,
    or ``(top[b] + i, left[b] + W - 1 - j)`` where ``flip[b]``: the same result as
    torchvision's ``RandomCrop(padding=p)`` followed by ``RandomHorizontalFlip``.

    Args:
        x: Images (any dtype).
        top: Row offsets in ``[0, 2p]``.
        left: Column offsets in ``[0, 2p]``.
        flip: Horizontal flip flags.
        padding: p.

    Returns:
        The cropped, flipped batch, same shape and dtype as ``x``.

    Shape:
        - x: (B, C, H, W); top, left, flip: (B,); output: (B, C, H, W).

    Example:
        >>> x = torch.arange(16, dtype=torch.uint8).view(1, 1, 4, 4)
        >>> one = torch.ones(1, dtype=torch.long)
        >>> crop_flip(x, one, one, torch.tensor([True]), padding=1)[0, 0, 0].tolist()
        [3, 2, 1, 0]
    """
    b, c, h, w = x.shape
    if padding > 0:
        x = torch.nn.functional.pad(x, (padding, padding, padding, padding))  # (B, C, H+2p, W+2p)
    hp, wp = x.shape[-2:]
    rows = top[:, None] + torch.arange(h, device=x.device)  # (B, H)
    ar = torch.arange(w, device=x.device)
    cols = left[:, None] + torch.where(flip[:, None], w - 1 - ar, ar)  # (B, W)
    pix = (rows[:, :, None] * wp + cols[:, None, :]).view(b, 1, h * w)  # (B, 1, H*W)
    flat = x.reshape(b, c, hp * wp)  # (B, C, Hp*Wp)
    out = torch.gather(flat, 2, pix.expand(b, c, h * w))  # (B, C, H*W)
    return out.view(b, c, h, w)


def _as_tensor(x: Any, device: torch.device | None) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(x))
    return torch.as_tensor(x, device=device)


class DeviceLoader:
    """Iterates augmented, normalised batches of a uint8 dataset kept on the device.

    Args:
        images: uint8 images (N, C, H, W), tensor or numpy array.
        labels: Labels (N,) (any integers; passed through as int64).
        batch_size: B.
        device: Where the data and the batches live (default: where ``images`` are).
        mean: Per-channel mean of [0, 1] pixels; ``None`` for no centring.
        std: Per-channel std; ``None`` for no scaling.
        crop_padding: Zero padding p of the random crop; 0 for no crop.
        flip: Random horizontal flips with probability 1/2.
        shuffle: Reshuffle every epoch.
        drop_last: Drop the last incomplete batch.
        seed: Seed of the loader's own ``torch.Generator`` (ignored if ``generator``).
        generator: A generator on ``device`` to draw from instead.
        channels_last: Return batches in ``torch.channels_last`` memory format.

    Shape:
        - yields x: (B, C, H, W) float32, y: (B,) int64.

    Note:
        On a CPU shared with other busy processes, torch's multi-threaded kernels can
        stall on OpenMP barriers (measured: 50x slower with 2 threads on 2 busy cores);
        ``torch.set_num_threads(1)`` avoids it. GPUs are unaffected.

    Example:
        >>> imgs = torch.randint(0, 256, (10, 3, 8, 8), dtype=torch.uint8)
        >>> loader = DeviceLoader(imgs, torch.arange(10), 4, mean=(0.5,) * 3, std=(0.25,) * 3)
        >>> len(loader), [tuple(x.shape) for x, _ in loader]
        (3, [(4, 3, 8, 8), (4, 3, 8, 8), (2, 3, 8, 8)])
    """

    def __init__(
        self,
        images: torch.Tensor | np.ndarray,
        labels: torch.Tensor | np.ndarray | Sequence[int],
        batch_size: int,
        *,
        device: torch.device | str | None = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        crop_padding: int = 4,
        flip: bool = True,
        shuffle: bool = True,
        drop_last: bool = False,
        seed: int = 0,
        generator: torch.Generator | None = None,
        channels_last: bool = False,
    ) -> None:
        dev = torch.device(device) if device is not None else None
        x = _as_tensor(images, dev)
        y = _as_tensor(np.asarray(labels) if not isinstance(labels, torch.Tensor) else labels, x.device)
        if x.dtype != torch.uint8 or x.ndim != 4:
            raise ValueError(f"images must be a uint8 (N, C, H, W) tensor, but got {x.dtype} {tuple(x.shape)}.")
        if y.ndim != 1 or y.shape[0] != x.shape[0]:
            raise ValueError(f"labels must have shape ({x.shape[0]},), but got {tuple(y.shape)}.")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, but got {batch_size}.")
        if int(crop_padding) < 0:
            raise ValueError(f"crop_padding must be >= 0, but got {crop_padding}.")
        c = x.shape[1]
        mean_t = torch.tensor(mean if mean is not None else [0.0] * c, dtype=torch.float32, device=x.device)
        std_t = torch.tensor(std if std is not None else [1.0] * c, dtype=torch.float32, device=x.device)
        if mean_t.shape != (c,) or std_t.shape != (c,):
            raise ValueError(
                f"mean and std must have {c} entries (one per channel), but got "
                f"{tuple(mean_t.shape)} and {tuple(std_t.shape)}."
            )
        if (std_t <= 0).any():
            raise ValueError(f"std must be positive, but got {std_t.tolist()}.")
        self.images = x.contiguous()  # (N, C, H, W) uint8, on the device
        self.labels = y.to(torch.int64)  # (N,)
        self.batch_size = int(batch_size)
        self.crop_padding = int(crop_padding)
        self.flip = bool(flip)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.channels_last = bool(channels_last)
        # x_norm = (x / 255 - mean) / std = x * scale + shift, fused into one op.
        self._scale = (1.0 / (255.0 * std_t)).view(1, c, 1, 1)
        self._shift = (-mean_t / std_t).view(1, c, 1, 1)
        if generator is None:
            generator = torch.Generator(device=x.device).manual_seed(int(seed))
        self.generator = generator
        self._pass_start: torch.Tensor | None = None  # generator state when the current pass began
        self._yielded = 0  # batches yielded in the current pass
        self._resume: tuple[torch.Tensor, int] | None = None  # set by load_state_dict

    @classmethod
    def from_dataset(
        cls, dataset: ArrayDataset, batch_size: int, **kwargs: Any
    ) -> DeviceLoader:
        """Builds a loader for an :class:`ArrayDataset`, normalised with its dataset's
        constants (``DATASET_STATS[dataset.name]``) unless ``mean``/``std`` are given.

        Example:
            >>> from autodata.data import load_digits
            >>> loader = DeviceLoader.from_dataset(load_digits(), 64, crop_padding=1)
            >>> len(loader)
            29
        """
        stats = DATASET_STATS.get(dataset.name)
        if stats is not None:
            kwargs.setdefault("mean", stats.mean)
            kwargs.setdefault("std", stats.std)
        return cls(dataset.images, dataset.labels, batch_size, **kwargs)

    @property
    def device(self) -> torch.device:
        """The device holding the data."""
        return self.images.device

    @property
    def num_samples(self) -> int:
        """N."""
        return int(self.images.shape[0])

    def __len__(self) -> int:
        n, b = self.num_samples, self.batch_size
        return n // b if self.drop_last else (n + b - 1) // b

    def _order(self) -> torch.Tensor:
        if self.shuffle:
            return torch.randperm(self.num_samples, generator=self.generator, device=self.device)
        return torch.arange(self.num_samples, device=self.device)

    def augment(self, x: torch.Tensor) -> torch.Tensor:
        """Crops, flips and normalises a uint8 batch with fresh random parameters.

        Shape:
            - x: (B, C, H, W) uint8; output: (B, C, H, W) float32.
        """
        if self.crop_padding > 0 or self.flip:
            top, left, flips = sample_crop_flip(x.shape[0], self.crop_padding, self.flip, self.generator, self.device)
            x = crop_flip(x, top, left, flips, self.crop_padding)  # (B, C, H, W) uint8
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        out = x.to(torch.float32)  # (B, C, H, W)
        return out.mul_(self._scale).add_(self._shift)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        skip = 0
        if self._resume is not None:  # continue the pass that load_state_dict describes
            state, skip = self._resume
            self._resume = None
            self.generator.set_state(state)
        self._pass_start, self._yielded = self.generator.get_state(), 0
        order = self._order()  # (N,)
        for i in range(len(self)):
            idx = order[i * self.batch_size : (i + 1) * self.batch_size]  # (B,)
            if i < skip:  # fast-forward: the same draws as the batch, without building it
                if self.crop_padding > 0 or self.flip:
                    sample_crop_flip(idx.shape[0], self.crop_padding, self.flip, self.generator, self.device)
                self._yielded += 1
                continue
            batch = self.augment(self.images[idx]), self.labels[idx]
            self._yielded += 1
            if self._yielded == len(self):  # the pass is complete once its last batch is drawn
                self._pass_start = None
            yield batch

    def state_dict(self) -> dict[str, Any]:
        """The position in the data: generator state at the start of the current pass and the
        number of batches yielded in it (tensors and ints only, for ``torch.load(weights_only=True)``).

        A loader built the same way that loads this state continues the pass exactly where this
        one stands: its next ``iter()`` yields the same batches, bit for bit. Between passes
        (before the first, or once a pass's last batch is drawn) the state is the start of the
        next pass. The state follows the loader's most recent pass; iterate a loader in one place.

        Example:
            >>> imgs = torch.randint(0, 256, (10, 3, 8, 8), dtype=torch.uint8)
            >>> a, b = DeviceLoader(imgs, torch.arange(10), 4), DeviceLoader(imgs, torch.arange(10), 4)
            >>> it = iter(a); _ = next(it)
            >>> b.load_state_dict(a.state_dict())
            >>> torch.equal(next(it)[0], next(iter(b))[0])
            True
        """
        if self._resume is not None:
            state, yielded = self._resume
            return {"generator": state.clone(), "yielded": yielded}
        if self._pass_start is None:
            return {"generator": self.generator.get_state(), "yielded": 0}
        return {"generator": self._pass_start.clone(), "yielded": self._yielded}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a position saved by :meth:`state_dict`, at the next ``iter()``."""
        generator, yielded = state.get("generator"), state.get("yielded")
        if not isinstance(generator, torch.Tensor) or generator.dtype != torch.uint8:
            raise ValueError(f"state['generator'] must be a uint8 tensor (a generator state), but got {generator!r}.")
        if isinstance(yielded, bool) or not isinstance(yielded, int) or not 0 <= yielded <= len(self):
            raise ValueError(f"state['yielded'] must be an int in [0, {len(self)}], but got {yielded!r}.")
        self._resume = (generator.clone(), yielded)
        self._pass_start, self._yielded = None, 0


class _AugmentedArrays(Dataset):
    """Per-image transform over in-memory uint8 arrays (picklable for worker processes)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform: Any) -> None:
        self.images = images
        self.labels = labels
        self.transform = transform

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.transform(torch.from_numpy(self.images[i])), int(self.labels[i])


def make_dataloader(
    dataset: ArrayDataset,
    batch_size: int,
    *,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    crop_padding: int = 4,
    flip: bool = True,
    shuffle: bool = True,
    drop_last: bool = False,
    num_workers: int = 2,
    seed: int = 0,
    **loader_kwargs: Any,
) -> DataLoader:
    """The usual torchvision pipeline: a ``DataLoader`` whose workers apply v2 transforms
    (``RandomCrop(padding)``, ``RandomHorizontalFlip``, ``ToDtype``, ``Normalize``) image
    by image. Use it for datasets too large for device memory; otherwise prefer
    :class:`DeviceLoader`.

    Args:
        dataset: The data; ``mean``/``std`` default to ``DATASET_STATS[dataset.name]``
            (or no normalisation for an unknown name).
        batch_size: B.
        mean: Per-channel mean.
        std: Per-channel std.
        crop_padding: Zero padding of the random crop; 0 for none.
        flip: Random horizontal flips.
        shuffle: Reshuffle every epoch.
        drop_last: Drop the last incomplete batch.
        num_workers: Worker processes.
        seed: Seeds the shuffling generator (and thereby the workers' transform seeds).
        **loader_kwargs: Passed to ``DataLoader`` (e.g. ``pin_memory``, ``persistent_workers``).

    Returns:
        A ``DataLoader`` yielding ``(x float32 (B, C, H, W), y int64 (B,))``.

    Example:
        >>> from autodata.data import load_digits
        >>> loader = make_dataloader(load_digits(), 32, crop_padding=1, num_workers=0)
        >>> next(iter(loader))[0].shape
        torch.Size([32, 1, 8, 8])
    """
    from torchvision.transforms import v2

    stats = DATASET_STATS.get(dataset.name)
    c, h, w = dataset.image_shape
    if mean is None:
        mean = stats.mean if stats is not None else (0.0,) * c
    if std is None:
        std = stats.std if stats is not None else (1.0,) * c
    steps: list[Any] = []
    if crop_padding > 0:
        steps.append(v2.RandomCrop((h, w), padding=int(crop_padding)))
    if flip:
        steps.append(v2.RandomHorizontalFlip())
    steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))]
    data = _AugmentedArrays(dataset.images, dataset.labels, v2.Compose(steps))
    return DataLoader(
        data,
        batch_size=batch_size,
        shuffle=shuffle,
        drop_last=drop_last,
        num_workers=num_workers,
        generator=torch.Generator().manual_seed(int(seed)),
        **loader_kwargs,
    )
