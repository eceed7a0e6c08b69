"""Meta-Weight-Net (Shu et al., "Meta-Weight-Net: Learning an Explicit Mapping For Sample
Weighting", NeurIPS 2019): a small MLP maps a sample's loss to its weight, ``w_i = V(l_i; phi)``.

The paper's net is 1-100-1 with a ReLU hidden layer and a sigmoid output (Sec. 3, Fig. 1), and
its learning rate is 1e-3 with weight decay 1e-4 (the released code uses Adam for ``V``).

Normalisation may have a floor (``floor``, issue #9): a batch's weights are divided by
``max(mean(w), floor)`` instead of ``mean(w)``, so that no weight exceeds ``1 / floor`` and a batch
the net trusts little takes a smaller step instead of being carried by its few trusted samples
at weights up to ``B / k``. On a BatchNorm-free CNN (SGD lr 0.05, momentum 0.9, 60% symmetric
noise) steps at normalised weights 2.4-3 (effective sample size 55 of 128) came with episodes
where the model forgot within 8 steps (losses back to ``ln K``, meta loss 1.0 -> 1.9), and a floor
of 0.5 removed them in the seed traced (its final accuracy was lower: 75.0% vs 77.9%); but on the digits at 60% symmetric noise (20 epochs, 3 seeds) the floor cost
accuracy where Meta-Weight-Net helps most (exact: 89.6% without, 87.2% at 0.25, 81.6% at 0.5;
cross-entropy 59.4%), and no collapse of plain normalisation was seen over 3 seeds x 6 noise
cells. The default is therefore the released code's plain mean-1 normalisation (``floor=0``).

Centring (``center``, issue #9): with mean-1 normalisation only the ratios of the sigmoid's
outputs matter, and a shift of all its inputs ``z_i`` does one thing: upwards, it pushes every
output towards 1, where the weights become uniform and their gradient (through ``sigmoid'``)
vanishes, a state the net does not leave. On pair-flip 40% Fashion-MNIST (small CNN, ``exact``,
the every-k section of BENCHMARKS.md) this happened on 3 seeds of 13. Traced on seed 21: every
net's first meta steps raise ``w(l)`` at high losses (while the model is at chance every label
helps); this net started steep (3 of the 4 steepest initial curves of the 13 seeds stalled), and
by the end of epoch 1 its outputs were 0.62-0.99 over losses 0-5, at epoch 4 above 0.95 for
every sample of a batch (mean of ``1 - sigmoid(z_i)`` 0.009), then 0.007-0.024 to the end: weights
in 0.96-1.03 (s.d. 0.007-0.014), still rising with the loss, the meta-gradient's norm down from
2e-2 (end of epoch 1) to 1e-4-6e-4 (epochs 6-10), training as cross-entropy (64.6%, train loss 1.216 against 1.211). Nothing
else failed: 60-65 of 100 hidden units were active over the batch's losses, the divergence
guard never switched, every step updated the net. The same net applied one step late every 3rd
step moves a third as far per training step, was still in the sigmoid's slope (outputs below
0.75) when the hypergradient turned, and turned to a decreasing ``w(l)`` in epoch 2 (75.8%).
A centred net (``center="on"``) feeds ``z_i - mean_j z_j`` (this batch) to the sigmoid: the shift
is gone (the output layer's bias, which only shifts, is frozen), uniform weights are reached
only through a flat curve, where the sigmoid's slope is largest, and the batch mean always
sits at the sigmoid's centre. It rescued the 3 stalled seeds (+7.4 points on average), but
centred from the first step it costs accuracy where Meta-Weight-Net helps most (symmetric noise,
where the released net can weigh a whole batch of clean, fitted samples alike): on the digits at
40% symmetric noise (``autodata demo``, seeds 0-5) 88.5% against the released net's 93.8%, every
seed behind; at 60% symmetric noise and 20 epochs (seeds 0-2) 72.1% against 89.6%. The default,
``center="on_stall"``, is therefore the released net until it stalls (step for step the same:
the demo's seeds 0-2 gave the released net's accuracies to the digit, with no switch) and
centred from the stall on: on the 3 stalled seeds it switched in epoch 3 and reached 73.5, 70.6
and 74.0% (released: 65.7, 63.0, 64.6) (BENCHMARKS.md, issue #9: "Why `exact` stalled").

Whether the net still learns is watched (:meth:`MetaWeightNet.stalled`): with every output near
1 (the mean of ``1 - sigmoid(z_i)``, the sensitivity of the log-weights to ``z``, below
``stall_threshold`` for ``stall_patience`` meta steps in a row) it has stopped learning, and the
learner says so (a ``RuntimeWarning`` and ``StepInfo.stalled``); with ``center="on_stall"`` the net
centres from then on instead (a ``RuntimeWarning`` at the switch).
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from autodata.reweight._base import BaseReweighter

__all__ = ["CENTER_MODES", "DEFAULT_CENTER", "MetaWeightNet"]

CENTER_MODES: tuple[str, ...] = ("off", "on", "on_stall")
"""Meta-Weight-Net's centring modes (the ``center`` argument, ``TrainConfig.reweighter_center``)."""

DEFAULT_CENTER = "on_stall"
"""The centring of a normalised net without a floor unless ``center`` says otherwise."""


class MetaWeightNet(BaseReweighter):
    """A loss-to-weight MLP with a sigmoid output.

    Args:
        hidden: width of the hidden layer (the paper: 100).
        normalize: rescale each batch's weights to mean 1 (``w * B / sum(w)``), as the
            released Meta-Weight-Net code normalises each batch by ``sum(w)``: only the
            relative weights are learned and the optimizer's effective learning rate stays that
            of plain training (the sigmoid starts near 0.5, which would otherwise halve it).
        floor: the normalisation divides by ``max(mean(w), floor)``: no weight exceeds
            ``1 / floor`` and a batch whose weights average below ``floor`` takes a
            proportionally smaller step (0, the default: plain mean-1 normalisation; see the
            module docstring for what a floor costs). Only with ``normalize=True``.
        center: ``"on"`` (or ``True``): feed ``z_i - mean(z)`` (over the batch) to the sigmoid,
            where ``z`` is the MLP's output; the output layer's bias then cancels and is frozen.
            ``"off"`` (or ``False``): the released code's net. ``"on_stall"``: the released net
            until it stalls (:meth:`stalled`), centred from then on, with a ``RuntimeWarning``
            at the switch (module docstring). ``None`` (default): :data:`DEFAULT_CENTER` when
            normalising without a floor, else ``"off"``. Centring only with ``normalize=True``
            and ``floor=0``.
        meta_lr: learning rate of this net's meta-optimizer.
        meta_weight_decay: its weight decay.
        stall_threshold: the net counts as saturated in a meta step when the batch's mean of
            ``1 - sigmoid(z_i)`` is below this (every weight near 1: near uniform after
            normalisation, and little gradient). Traced per meta step (BENCHMARKS.md, "Why
            `exact` stalled" and "The stall watch's threshold"): the stalled pair-flip runs of
            ``exact`` sat at 0.007-0.03 from epoch 3-4 on (seed 8 hovered around 0.02, so 0.02
            missed it); an every-5 ``jvp-online`` run drifted at 0.059-0.092 for four epochs,
            its weights' s.d. 0.017-0.035, and ended at cross-entropy's level (so 0.05, the
            default until 2026-11-27, missed it); every run that learned stayed at 0.19 or
            above (the demo, digits at 60% symmetric noise, pair-flip seed 22).
        stall_patience: :meth:`stalled` reports after this many saturated meta steps in a row.

    Shape:
        - losses: :math:`(B,)`
        - output: :math:`(B,)`, mean 1 when the raw mean is at least ``floor``, each in
          ``(0, 1 / floor)`` (in ``(0, 1)`` with ``normalize=False``)

    Example:
        >>> mwn = MetaWeightNet()
        >>> mwn(torch.tensor([0.1, 3.0]), torch.tensor([0, 1])).shape
        torch.Size([2])
    """

    def __init__(
        self,
        hidden: int = 100,
        *,
        normalize: bool = True,
        floor: float = 0.0,
        center: bool | None = None,
        meta_lr: float = 1e-3,
        meta_weight_decay: float = 1e-4,
        stall_threshold: float = 0.1,
        stall_patience: int = 20,
    ) -> None:
        super().__init__()
        if hidden < 1:
            raise ValueError(f"hidden must be a positive width, but got {hidden}.")
        if isinstance(floor, bool) or not isinstance(floor, (int, float)) or not 0.0 <= floor <= 1.0:
            raise ValueError(f"floor must be a number in [0, 1], but got {floor!r}.")
        if floor > 0 and not normalize:
            raise ValueError(f"floor must be 0 with normalize=False (it bounds the normalisation), but got {floor!r}.")
        mode = {True: "on", False: "off"}.get(center, center) if isinstance(center, bool) else center
        if mode is None:
            mode = DEFAULT_CENTER if normalize and floor == 0 else "off"
        if mode not in CENTER_MODES:
            raise ValueError(f"center must be one of {list(CENTER_MODES)} (or a bool, or None), but got {center!r}.")
        if mode != "off" and (not normalize or floor > 0):
            raise ValueError(
                f"center must be 'off' (False) with normalize=False or a floor (it keeps only relative weights), but got "
                f"center={center!r} with normalize={normalize!r}, floor={floor!r}."
            )
        if isinstance(stall_threshold, bool) or not isinstance(stall_threshold, (int, float)) or not 0.0 <= stall_threshold < 1.0:
            raise ValueError(f"stall_threshold must be a number in [0, 1), but got {stall_threshold!r}.")
        if isinstance(stall_patience, bool) or not isinstance(stall_patience, int) or stall_patience < 1:
            raise ValueError(f"stall_patience must be a positive integer, but got {stall_patience!r}.")
        self.net = nn.Sequential(nn.Linear(1, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, 1))
        self.center_mode = mode
        self.normalize = normalize
        self.floor = float(floor)
        self.stall_threshold = float(stall_threshold)
        self.stall_patience = stall_patience
        self.sensitivity = math.nan  # mean of 1 - sigmoid(z_i) in the last meta step
        self._reduce: Callable[[list[Tensor]], list[Tensor]] | None = None  # a data-parallel learner's mean over ranks
        # Saved with the net (a resumed run goes on as it would have): whether it centres now, and the meta
        # steps in a row with sensitivity below stall_threshold.
        self.register_buffer("centred", torch.tensor(False))
        self.register_buffer("stall_count", torch.tensor(0))
        if mode == "on":
            self._start_centring()
        self.meta_lr = meta_lr
        self.meta_weight_decay = meta_weight_decay

    @property
    def center(self) -> bool:
        """Whether the net centres the sigmoid's input now (``"on_stall"``: once it has stalled)."""
        return bool(self.centred)

    @property
    def saturated_steps(self) -> int:
        """Meta steps in a row in which every output was near 1 (see ``stall_threshold``)."""
        return int(self.stall_count)

    def _start_centring(self) -> None:
        self.centred.fill_(True)
        with torch.no_grad():  # the bias only shifts z, which centring cancels: frozen at 0
            self.net[2].bias.zero_()
        self.net[2].bias.requires_grad_(False)

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any) -> None:
        for name in ("centred", "stall_count"):  # a net saved before these buffers existed: the released net's
            state_dict.setdefault(prefix + name, getattr(self, name).clone().zero_())
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        if self.center_mode != "on_stall":  # only a switch is state; "on" and "off" are the net's configuration
            self.centred.fill_(self.center_mode == "on")
        self.net[2].bias.requires_grad_(not self.center)

    def _sigmoid(self, losses: Tensor) -> Tensor:
        z = self.net(losses.detach().to(self.net[0].weight.dtype).unsqueeze(1)).squeeze(1)  # (B,)
        return torch.sigmoid(z - z.mean() if self.center else z)

    def _normalized(self, s: Tensor) -> Tensor:
        return s / s.mean().clamp_min(max(self.floor, 1e-12)) if self.normalize else s

    def forward(self, losses: Tensor, targets: Tensor) -> Tensor:
        return self._normalized(self._sigmoid(losses))  # (B,)

    def step_weights(self, losses: Tensor, targets: Tensor) -> tuple[Tensor, list[Tensor]]:
        """The meta step's weights (as :meth:`forward`) and parameters; the stall watch reads this batch's
        sigmoid (``"on_stall"`` switches before the step's weights are taken: they are computed again, centred)."""
        s = self._sigmoid(losses)
        if self._watch((1 - s.detach()).mean()):
            s = self._sigmoid(losses)
        return self._normalized(s), [p for p in self.parameters() if p.requires_grad]

    def data_parallel(self, reduce: Callable[[list[Tensor]], list[Tensor]]) -> None:
        """The stall watch decides on the mean over the ranks, so that every rank switches at the same step."""
        self._reduce = reduce

    def _watch(self, sensitivity: Tensor) -> bool:
        """Count this meta step towards a stall; ``True`` when ``"on_stall"`` switched to centring at it."""
        if self._reduce is not None:  # data-parallel: every rank decides on the same figure, its nets stay equal
            sensitivity = self._reduce([sensitivity])[0]
        self.sensitivity = float(sensitivity)
        self.stall_count.fill_(self.saturated_steps + 1 if self.sensitivity < self.stall_threshold else 0)
        if self.center_mode == "on_stall" and not self.center and self.saturated_steps >= self.stall_patience:
            warnings.warn(
                f"the Meta-Weight-Net's sigmoid has been saturated for {self.saturated_steps} meta steps (mean of "
                f"1 - sigmoid over the batch {self.sensitivity:.2g} < {self.stall_threshold:g}; its weights were "
                f"near uniform and got little gradient): from now on it centres the sigmoid's input on the batch mean "
                f"(center='on_stall').", RuntimeWarning, stacklevel=2,
            )
            self._start_centring()
            self.stall_count.zero_()
            return True
        return False

    def stalled(self) -> str | None:
        """Why the net has stopped learning, or ``None``: every output near 1 for ``stall_patience`` meta steps.

        Then the weights are uniform after normalisation and the hypergradient, which flows
        through ``sigmoid'``, is about zero: training goes on as plain cross-entropy.
        """
        if self.saturated_steps < self.stall_patience:
            return None
        return (
            f"the Meta-Weight-Net's sigmoid has been saturated for {self.saturated_steps} meta steps (mean of "
            f"1 - sigmoid over the batch {self.sensitivity:.2g} < {self.stall_threshold:g}): its weights are near "
            f"uniform and get little gradient, so it has stopped learning (training is plain cross-entropy); "
            + ("MetaWeightNet(center='on_stall') centres it once this happens (TrainConfig.reweighter_center)."
               if not self.center else "lower its meta learning rate.")
        )
