"""Meta-Weight-Net (Shu et al., "Meta-Weight-Net: Learning an Explicit Mapping For Sample
Weighting", NeurIPS 2019): a small MLP maps a sample's loss to its weight, ``w_i = V(l_i; phi)``.

The paper's net is 1-100-1 with a ReLU hidden layer and a sigmoid output (Sec. 3, Fig. 1), and
its learning rate is 1e-3 with weight decay 1e-4 (the released code uses Adam for ``V``).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from autodata.reweight._base import BaseReweighter

__all__ = ["MetaWeightNet"]


class MetaWeightNet(BaseReweighter):
    """A loss-to-weight MLP with a sigmoid output.

    Args:
        hidden: width of the hidden layer (the paper: 100).
        normalize: rescale each batch's weights to mean 1 (``w * B / sum(w)``), as the
            released Meta-Weight-Net code normalises each batch by ``sum(w)``: only the
            relative weights are learned and the optimizer's effective learning rate stays that
            of plain training (the sigmoid starts near 0.5, which would otherwise halve it).
        meta_lr: learning rate of this net's meta-optimizer.
        meta_weight_decay: its weight decay.

    Shape:
        - losses: :math:`(B,)`
        - output: :math:`(B,)`, mean 1 (in ``(0, 1)`` with ``normalize=False``)

    Example:
        >>> mwn = MetaWeightNet()
        >>> mwn(torch.tensor([0.1, 3.0]), torch.tensor([0, 1])).shape
        torch.Size([2])
    """

    def __init__(
        self, hidden: int = 100, *, normalize: bool = True, meta_lr: float = 1e-3, meta_weight_decay: float = 1e-4
    ) -> None:
        super().__init__()
        if hidden < 1:
            raise ValueError(f"hidden must be a positive width, but got {hidden}.")
        self.net = nn.Sequential(nn.Linear(1, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, 1))
        self.normalize = normalize
        self.meta_lr = meta_lr
        self.meta_weight_decay = meta_weight_decay

    def forward(self, losses: Tensor, targets: Tensor) -> Tensor:
        dtype = self.net[0].weight.dtype
        w = torch.sigmoid(self.net(losses.detach().to(dtype).unsqueeze(1))).squeeze(1)  # (B,)
        if self.normalize:
            w = w * (w.numel() / w.sum().clamp_min(1e-12))
        return w
