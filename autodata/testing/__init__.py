"""Contract suites every implementation of a concept must pass (as ``optuna.testing``).

Run them on your own reweighter or hypergradient method in one call::

    from autodata.testing import check_hypergradient, check_reweighter

    check_reweighter(MyReweighter)
    check_hypergradient(MyMethod())

Each check raises ``AssertionError`` naming the implementation and the broken property. The
contracts of augmentation ops and policies are in :mod:`autodata.augment.testing`.
"""
from autodata.testing.hypergradients import check_hypergradient
from autodata.testing.reweighters import check_reweighter

__all__ = ["check_hypergradient", "check_reweighter"]
