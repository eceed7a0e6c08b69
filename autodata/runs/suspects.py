"""Suspected mislabels: the training samples a learned reweighter trusts least.

Meta-Weight-Net (Shu et al., NeurIPS 2019) learns ``w = V(loss; phi)`` on a clean meta set;
under label noise it learns to give small weights to large losses, which are mostly samples
whose label is wrong (the paper's Fig. 1 and Sec. 4.2). Listing the lowest-weighted samples
is therefore a cheap way to find labels worth checking by hand.

The losses here are those of the run's model *now*, in eval mode, without augmentation, on
the run's training split (after the ``n_train`` subset, the long-tailed subset and the meta
and validation hold-outs, in that order); weights are ``V(loss)`` before the per-batch
normalisation of :class:`~autodata.MetaWeightNet` (``normalize=True`` only rescales a batch
by a constant).

``suspects.csv`` has one row per suspect, least trusted first:

================  ==========================================================================
column            what
================  ==========================================================================
``rank``          1 = the lowest weight (ties: the larger loss first)
``index``         the sample's position in the training set the run's ``dataset`` names, as
                  read (``load_dataset(config.dataset, train=True)``, e.g. CIFAR-10's 50,000
                  training images in file order): look the image up there
``split_index``   its position in the run's training split (``run.data.train``), where
                  ``run.data.noise.flipped`` and ``run.data.clean_train_labels`` index
``given_label``   the label trained on (the corrupted one where the run added noise)
``weight``        ``V(loss)``
``loss``          the cross-entropy loss
``corrupted``     ``true``/``false`` when the run corrupted the labels itself, empty otherwise
``true_label``    the label before corruption, likewise
================  ==========================================================================

``index`` follows :attr:`autodata.data.ArrayDataset.source_indices`, which every subset a
run takes carries along.

Example:
    >>> import tempfile
    >>> from autodata.train import TrainConfig, build_run
    >>> run = build_run(TrainConfig(dataset="digits", n_train=300, noise="symmetric", noise_rate=0.4,
    ...                             reweighter="mwn", meta_per_class=3, meta_batch_size=30, epochs=1))
    >>> _ = run.fit()
    >>> path = tempfile.mkdtemp() + "/suspects.csv"
    >>> write_suspects_csv(run, path, 5)
    5
    >>> open(path).readline().strip()
    'rank,index,split_index,given_label,weight,loss,corrupted,true_label'
"""
from __future__ import annotations

import copy
import csv
import io
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from autodata._io import atomic_write_text

__all__ = ["SampleWeights", "curve_reweighter", "loss_weight_curve", "training_sample_weights", "write_suspects_csv"]

CSV_COLUMNS = ("rank", "index", "split_index", "given_label", "weight", "loss", "corrupted", "true_label")


@dataclass(frozen=True)
class SampleWeights:
    """Per-sample loss and learned weight of a run's training split.

    Sample ``i`` is sample ``i`` of the training split; ``source_index[i]`` is its position in
    the dataset the split was drawn from (:attr:`~autodata.data.ArrayDataset.source_indices`).

    Shape:
        - label, loss, weight: :math:`(N,)`.
        - corrupted, true_label: :math:`(N,)`, or ``None`` when the run did not corrupt the
          labels itself (the truth is then unknown).
        - source_index: :math:`(N,)`, or ``None`` when the split is its own source
          (``source_index[i] == i``).
    """

    label: np.ndarray
    loss: np.ndarray
    weight: np.ndarray
    corrupted: np.ndarray | None
    true_label: np.ndarray | None
    source_index: np.ndarray | None = None

    def lowest(self, n: int) -> np.ndarray:
        """Indices of the ``n`` lowest weights (ties: larger loss first)."""
        order = np.lexsort((-self.loss, self.weight))
        return order[: max(0, int(n))]


def _check_reweighter(run: Any) -> nn.Module:
    reweighter = run.learner.reweighter
    name = run.config.reweighter
    if name == "none" or not any(True for _ in reweighter.parameters()) or getattr(reweighter, "per_batch", False):
        raise ValueError(
            f"the run's reweighter must map a loss to a weight (reweighter='mwn'), but got reweighter={name!r}; "
            f"train with --reweighter mwn --meta-per-class N to learn sample weights."
        )
    return reweighter


def curve_reweighter(reweighter: nn.Module) -> nn.Module:
    """A copy of ``reweighter`` that gives ``V(loss)`` itself, without per-batch normalisation."""
    curve = copy.deepcopy(reweighter).eval()
    if getattr(curve, "normalize", False):
        curve.normalize = False
    return curve


@torch.no_grad()
def loss_weight_curve(reweighter: nn.Module, losses: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
    """``V(loss)`` of :func:`curve_reweighter` at ``losses`` (targets default to class 0).

    Shape:
        - losses: :math:`(G,)`; output: :math:`(G,)` on the CPU.
    """
    curve = curve_reweighter(reweighter)
    device = next(curve.parameters()).device
    losses = losses.to(device=device, dtype=torch.float32)
    targets = torch.zeros_like(losses, dtype=torch.long) if targets is None else targets.to(device)
    return curve(losses, targets).float().cpu()


@torch.no_grad()
def training_sample_weights(run: Any, batch_size: int = 1024) -> SampleWeights:
    """Losses (eval mode, no augmentation) and ``V(loss)`` of every training sample of ``run``.

    Raises:
        ValueError: the run has no reweighter that maps losses to weights.
    """
    reweighter = _check_reweighter(run)
    curve = curve_reweighter(reweighter)
    train = run.data.train
    model = run.model
    was_training = model.training
    model.eval()
    losses, weights = [], []
    try:
        for start in range(0, len(train), batch_size):
            x = torch.from_numpy(train.images[start:start + batch_size]).to(run.device).float().div_(255)  # (B, C, H, W)
            y = torch.from_numpy(train.labels[start:start + batch_size]).to(run.device)  # (B,)
            loss = F.cross_entropy(model(x).float(), y, reduction="none")  # (B,)
            losses.append(loss.cpu())
            weights.append(curve(loss, y).float().cpu())
    finally:
        model.train(was_training)
    noise = run.data.noise
    corrupted = None if noise is None else np.asarray(noise.is_noisy, dtype=bool)
    true_label = None if noise is None else np.asarray(run.data.clean_train_labels, dtype=np.int64)
    return SampleWeights(
        label=np.asarray(train.labels, dtype=np.int64),
        loss=torch.cat(losses).numpy().astype(np.float64),
        weight=torch.cat(weights).numpy().astype(np.float64),
        corrupted=corrupted,
        true_label=true_label,
        source_index=np.asarray(train.source_indices, dtype=np.int64),
    )


def suspects_csv_text(samples: SampleWeights, n: int) -> str:
    """The CSV text of the ``n`` lowest-weighted samples (see :func:`write_suspects_csv`)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for rank, i in enumerate(samples.lowest(n), 1):
        corrupted = "" if samples.corrupted is None else str(bool(samples.corrupted[i])).lower()
        true_label = "" if samples.true_label is None else int(samples.true_label[i])
        source = int(i) if samples.source_index is None else int(samples.source_index[i])
        writer.writerow([rank, source, int(i), int(samples.label[i]), f"{samples.weight[i]:.6g}",
                         f"{samples.loss[i]:.6g}", corrupted, true_label])
    return buffer.getvalue()


def write_suspects_csv(run: Any, path: str | os.PathLike[str], n: int, samples: SampleWeights | None = None) -> int:
    """Write the ``n`` training samples with the lowest learned weights to a CSV file, atomically.

    Columns (see the module docstring): ``rank`` (1 = least trusted), ``index`` (position in
    the training set the run's dataset names, as read), ``split_index`` (position in the run's
    training split, ``run.data.train``), ``given_label`` (the label trained on), ``weight``
    (``V(loss)``), ``loss``, ``corrupted`` (``true``/``false`` when the run corrupted the
    labels itself, empty otherwise) and ``true_label`` (likewise).

    Args:
        run: a :class:`~autodata.train.Run` with a Meta-Weight-Net (trained, or loaded from a checkpoint).
        path: the CSV file.
        n: how many samples (at most the training set's size).
        samples: already computed :func:`training_sample_weights` of ``run``.

    Returns:
        The number of rows written.

    Raises:
        ValueError: ``n`` is not an int >= 1, or the run has no loss-to-weight reweighter.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"the number of suspects must be an int >= 1, but got {n!r}.")
    samples = training_sample_weights(run) if samples is None else samples
    text = suspects_csv_text(samples, n)
    atomic_write_text(path, text)
    return text.count("\n") - 1
