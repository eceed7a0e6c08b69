"""Sample reweighters: per-sample weights learned from a clean validation set."""
from autodata.reweight._base import BaseReweighter, UniformReweighter
from autodata.reweight.l2rw import L2RW
from autodata.reweight.mwn import MetaWeightNet

__all__ = ["BaseReweighter", "L2RW", "MetaWeightNet", "UniformReweighter"]
