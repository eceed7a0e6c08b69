"""The bilevel meta-gradient engine: learn data components on a clean validation set."""
from autodata.bilevel.engine import MetaLearner, StepInfo, cycle
from autodata.bilevel.hypergrad import HYPERGRADIENTS, MetaProblem
from autodata.bilevel.lookahead import SUPPORTED_OPTIMIZERS, VirtualStep, virtual_step

__all__ = [
    "HYPERGRADIENTS",
    "MetaLearner",
    "MetaProblem",
    "SUPPORTED_OPTIMIZERS",
    "StepInfo",
    "VirtualStep",
    "cycle",
    "virtual_step",
]
