"""A grid of training images and augmented copies of them (``samples.png``)."""
from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from autodata.runs.plots._figure import new_figure, save_png

__all__ = ["one_per_class", "plot_augmented_grid"]


def plot_augmented_grid(images: np.ndarray, augment: Any, path: str | os.PathLike[str], *, copies: int = 6,
                        seed: int = 0, labels: Sequence[str] | None = None, title: str = "") -> Path:
    """One row per image: the image, then ``copies`` augmented versions of it.

    Args:
        images: uint8 images, shape (N, C, H, W) with C in {1, 3}.
        augment: an augmentation module with ``sample(batch_size, generator)`` and
            ``forward(x, params)`` (a policy's, PBA's, a learned one).
        path: the PNG file.
        copies: augmented versions per image.
        seed: seeds the draws, so a grid can be drawn again identically.
        labels: a row label per image (e.g. its class).
        title: the figure's title.
    """
    import torch

    if images.ndim != 4 or images.shape[1] not in (1, 3) or images.shape[0] < 1:
        raise ValueError(f"images must have shape (N, 1 or 3, H, W) with N >= 1, but got {images.shape}.")
    if isinstance(copies, bool) or not isinstance(copies, int) or copies < 1:
        raise ValueError(f"copies must be an int >= 1, but got {copies!r}.")
    tensors = itertools.chain(augment.parameters(), augment.buffers()) if hasattr(augment, "buffers") else iter(())
    device = next((t.device for t in tensors), torch.device("cpu"))
    x = torch.from_numpy(np.ascontiguousarray(images)).float().div(255).to(device)  # (N, C, H, W)
    g = torch.Generator().manual_seed(seed)
    columns = [x.cpu()]
    with torch.no_grad():
        for _ in range(copies):
            params = augment.sample(x.shape[0], g)
            columns.append(augment(x, params).detach().float().clamp(0, 1).cpu())
    n = x.shape[0]
    side = 1.25
    fig = new_figure(side * (copies + 1) + 0.6, side * n + 0.7)
    axes = np.asarray(fig.subplots(n, copies + 1, squeeze=False))
    for i in range(n):
        for c, batch in enumerate(columns):
            ax = axes[i, c]
            picture = batch[i].permute(1, 2, 0).numpy()  # (H, W, C)
            if picture.shape[2] == 1:
                ax.imshow(picture[:, :, 0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            else:
                ax.imshow(picture, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title("original" if c == 0 else f"augmented {c}", fontsize="small")
            if c == 0 and labels is not None:
                ax.set_ylabel(str(labels[i]), fontsize="small")
    if title:
        fig.suptitle(title)
    return save_png(fig, path)


def one_per_class(labels: np.ndarray, limit: int = 10) -> np.ndarray:
    """Indices of the first image of each class (up to ``limit`` classes), by class.

    Example:
        >>> one_per_class(np.array([2, 0, 2, 1, 0]), limit=2).tolist()
        [1, 3]
    """
    firsts = [int(np.flatnonzero(labels == k)[0]) for k in np.unique(labels)]
    return np.asarray(firsts[:limit], dtype=np.int64)
