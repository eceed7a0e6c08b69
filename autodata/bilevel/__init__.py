"""The bilevel meta-gradient engine: learn data components on a clean validation set.

``engine`` (the step), ``replay`` (recorded forwards at other parameters), ``hypergrad`` (the
methods, one registry: :data:`HYPERGRADIENTS`), ``online`` (the one-step-late methods ``online``
and ``jvp-online``), ``lookahead`` (the real optimizers' update rules), ``guard`` (learned
weights never make training diverge silently).
"""
from autodata.bilevel.engine import MetaLearner, StepInfo, cycle
from autodata.bilevel.guard import DivergenceGuard
from autodata.bilevel.hypergrad import (
    HYPERGRADIENTS,
    Exact,
    FiniteDifference,
    ForwardMode,
    HypergradientMethod,
    LastLayers,
    MetaProblem,
    make_method,
    register,
)
from autodata.bilevel.lookahead import SUPPORTED_OPTIMIZERS, VirtualStep, virtual_step
from autodata.bilevel.online import Online, OnlineForwardMode

__all__ = [
    "DivergenceGuard",
    "Exact",
    "FiniteDifference",
    "ForwardMode",
    "HYPERGRADIENTS",
    "HypergradientMethod",
    "LastLayers",
    "MetaLearner",
    "MetaProblem",
    "Online",
    "OnlineForwardMode",
    "SUPPORTED_OPTIMIZERS",
    "StepInfo",
    "VirtualStep",
    "cycle",
    "make_method",
    "register",
    "virtual_step",
]
