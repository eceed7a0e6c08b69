"""Sample reweighters: per-sample weights learned from a clean validation set.

:data:`REWEIGHTERS` names every reweighter class (``"uniform"`` is the null object); the
contract every one must pass is :func:`autodata.testing.check_reweighter`.
"""
from autodata.reweight._base import BaseReweighter, UniformReweighter
from autodata.reweight.l2rw import L2RW
from autodata.reweight.mwn import MetaWeightNet

REWEIGHTERS: dict[str, type[BaseReweighter]] = {
    "uniform": UniformReweighter,
    "mwn": MetaWeightNet,
    "l2rw": L2RW,
}
"""Every reweighter by name; each builds with no arguments."""

__all__ = ["BaseReweighter", "L2RW", "MetaWeightNet", "REWEIGHTERS", "UniformReweighter"]
