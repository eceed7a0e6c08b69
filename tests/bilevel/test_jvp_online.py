"""``jvp-online`` and the one-sided finite differences: exact for the hypergradient they define, in float64."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from autodata import MetaLearner, MetaWeightNet
from autodata.augment import DifferentiablePolicy
from autodata.bilevel import FiniteDifference, ForwardMode, Online, OnlineForwardMode
from autodata.bilevel import jvp_rules
from autodata.testing.hypergradients import numeric_hypergradient
from hypergrad_problem import OPTIMIZERS, setup_problem


def _update_of_first_step(method, opt_name: str, dropout: float = 0.0) -> list[torch.Tensor]:
    """The meta update that ``method`` derives from the real step 0 (applied at step 1 when delayed)."""
    torch.manual_seed(0)
    model, optimizer, (x, y, xm, ym) = setup_problem(opt_name, dropout)
    mwn = MetaWeightNet(hidden=4).double()
    learner = MetaLearner(model, optimizer, reweighter=mwn, method=method, guard=False,
                          meta_optimizer=torch.optim.SGD(mwn.parameters(), lr=1.0))
    before = [p.detach().clone() for p in mwn.parameters()]
    loss = learner.step(x, y, xm, ym)
    if not learner.last.meta_updated:  # delayed: the real step is the look-ahead
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        before = [p.detach().clone() for p in mwn.parameters()]
        learner.step(x[:6], y[:6], xm, ym)  # applies the hypergradient of step 0
    assert learner.last.meta_updated
    learner.close()
    return [b - p.detach() for b, p in zip(before, mwn.parameters())]


def _relative_error(got: list[torch.Tensor], expected: list[torch.Tensor]) -> float:
    num = torch.sqrt(sum(((a - b) ** 2).sum() for a, b in zip(got, expected)))
    den = torch.sqrt(sum((b**2).sum() for b in expected))
    assert den > 1e-8, "degenerate test: the hypergradient is zero"
    return float(num / den)


@pytest.mark.parametrize("opt_name", list(OPTIMIZERS))
@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_jvp_online_equals_the_double_backward_of_the_real_step(opt_name: str, dropout: float) -> None:
    """The update applied at step 1 is ``exact``'s hypergradient of step 0 (same state, same batch), to rounding."""
    exact = _update_of_first_step("exact", opt_name, dropout)
    online = _update_of_first_step("jvp-online", opt_name, dropout)
    for a, b in zip(online, exact):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-15)


@pytest.mark.parametrize("opt_name", ["sgd-nesterov-wd", "adam"])
def test_jvp_online_matches_numeric_hypergradient(opt_name: str) -> None:
    torch.manual_seed(0)
    model, optimizer, batch = setup_problem(opt_name)
    mwn = MetaWeightNet(hidden=4).double()
    expected = numeric_hypergradient(model, optimizer, mwn, batch, [n for n, _ in model.named_parameters()])
    assert _relative_error(_update_of_first_step(OnlineForwardMode(), opt_name), expected) < 1e-6


@pytest.mark.parametrize("method", [FiniteDifference(radius=1e-5, one_sided=True), Online(radius=1e-5, one_sided=True),
                                    FiniteDifference(radius=1e-5)], ids=["fd-one-sided", "online-one-sided", "fd"])
@pytest.mark.parametrize("opt_name", ["sgd-nesterov-wd", "adamw"])
def test_finite_differences_match_numeric_hypergradient(method, opt_name: str) -> None:
    torch.manual_seed(0)
    model, optimizer, batch = setup_problem(opt_name)
    mwn = MetaWeightNet(hidden=4).double()
    expected = numeric_hypergradient(model, optimizer, mwn, batch, [n for n, _ in model.named_parameters()])
    assert _relative_error(_update_of_first_step(method, opt_name), expected) < 1e-3


def test_one_sided_error_shrinks_linearly_with_the_radius() -> None:
    """A forward difference: error O(radius), central: O(radius^2) (float64, rounding far below)."""
    exact = _update_of_first_step("exact", "sgd-nesterov-wd")
    one = [_relative_error(_update_of_first_step(FiniteDifference(radius=r, one_sided=True), "sgd-nesterov-wd"), exact)
           for r in (1e-2, 1e-3)]
    central = [_relative_error(_update_of_first_step(FiniteDifference(radius=r), "sgd-nesterov-wd"), exact)
               for r in (1e-2, 1e-3)]
    assert 5 < one[0] / one[1] < 20, one  # about 10x
    assert 50 < central[0] / central[1] < 200, central  # about 100x
    assert central[1] < one[1]


def test_one_sided_refuses_a_problem_without_loss_change() -> None:
    from autodata.bilevel.hypergrad import MetaProblem

    problem = MetaProblem(params={}, train_loss=None, train_loss_at=lambda new: torch.zeros(()),
                          lookahead=lambda g: g, meta_loss_at=lambda new: torch.zeros(()), meta_params=[],
                          grads={})
    with pytest.raises(ValueError, match="one-sided difference needs the problem's loss_change"):
        FiniteDifference(one_sided=True)(problem)


def test_one_sided_must_be_a_bool() -> None:
    with pytest.raises(ValueError, match="one_sided must be a bool, but got 'yes'"):
        FiniteDifference(one_sided="yes")


def test_jvp_online_refuses_per_batch_reweighters_and_clipping() -> None:
    from autodata import L2RW

    model = nn.Linear(3, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="'jvp-online' updates the components one step late.*L2RW"):
        MetaLearner(model, opt, reweighter=L2RW(), method="jvp-online")
    with pytest.raises(ValueError, match="method='jvp-online' replays the real step"):
        MetaLearner(model, opt, reweighter=MetaWeightNet(), method="jvp-online", max_grad_norm=1.0)


def test_jvp_online_with_a_learned_policy_updates_both_components() -> None:
    """The augmentation's parameters get central differences (as ``jvp``), the reweighter forward mode."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Linear(4, 3))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    policy = DifferentiablePolicy([("Rotate", "Contrast"), ("ShearX", "Brightness")], seed=0)
    learner = MetaLearner(model, optimizer, reweighter=MetaWeightNet(hidden=4), augment=policy, method="jvp-online")
    g = torch.Generator().manual_seed(1)
    x, y = torch.rand(8, 3, 8, 8, generator=g), torch.randint(0, 3, (8,), generator=g)
    before = [p.detach().clone() for p in learner.meta_parameters]
    for _ in range(3):
        loss = learner.step(x, y, x, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    moved = [not torch.equal(b, p.detach()) for b, p in zip(before, learner.meta_parameters)]
    assert all(moved), moved
    learner.close()


def _accumulated_update(method: str, micro: int) -> list[torch.Tensor]:
    """The reweighter's update from one optimizer step over 12 samples in ``micro`` micro-batches."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3)).double()  # no BatchNorm: chunks = whole
    optimizer = torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9, nesterov=True)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(12, 5, generator=g, dtype=torch.float64), torch.randint(0, 3, (12,), generator=g)
    xm, ym = torch.randn(7, 5, generator=g, dtype=torch.float64), torch.randint(0, 3, (7,), generator=g)
    for _ in range(2):
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
    torch.manual_seed(1)
    mwn = MetaWeightNet(hidden=4, normalize=False).double()
    before = [p.detach().clone() for p in mwn.parameters()]
    learner = MetaLearner(model, optimizer, reweighter=mwn, method=method, accumulation_steps=micro, guard=False,
                          meta_optimizer=torch.optim.SGD(mwn.parameters(), lr=1.0))
    optimizer.zero_grad()
    for chunk_x, chunk_y in zip(x.chunk(micro), y.chunk(micro)):
        (learner.step(chunk_x, chunk_y, xm, ym) / micro).backward()
    optimizer.step()
    if learner.method.delayed:
        learner.step(x[:2], y[:2], xm, ym)
    assert learner.last.meta_updated
    learner.close()
    return [b - p.detach() for b, p in zip(before, mwn.parameters())]


def test_jvp_online_of_an_accumulated_step_equals_the_whole_batch() -> None:
    whole = _accumulated_update("exact", 1)
    for a, b in zip(_accumulated_update("jvp-online", 3), whole):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-14)


class _ViewFlatten(nn.Module):
    """``x.view(B, -1)``, as many user models flatten: it needs contiguous strides (not channels-last)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(x.size(0), -1)


def _cnn_update(method, dropout: float = 0.0, layouts: list[bool] | None = None,
                view: bool = False) -> list[torch.Tensor]:
    """:func:`_update_of_first_step` on a float64 CNN with the layers the replay's rules cover
    (a first convolution without an input tangent, train-mode BatchNorm, non-overlapping max-pooling)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(4, 6, 3, padding=1, bias=False), nn.BatchNorm2d(6), nn.ReLU(), nn.Dropout(dropout),
                          *((_ViewFlatten(), nn.Linear(54, 3)) if view else (nn.MaxPool2d(3), nn.Flatten(), nn.Linear(6, 3)))
                          ).double()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9, nesterov=True, weight_decay=5e-3)
    return _first_meta_update(model, optimizer, method, layouts)


def _first_meta_update(model: nn.Module, optimizer: torch.optim.Optimizer, method,
                       layouts: list[bool] | None = None) -> list[torch.Tensor]:
    """The reweighter's first meta update on a float64 model of 2x6x6 inputs and 3 classes (the
    one-step-late methods: a plain first step, then the update applied at the second)."""
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(10, 2, 6, 6, generator=g, dtype=torch.float64), torch.randint(0, 3, (10,), generator=g)
    xm, ym = torch.randn(7, 2, 6, 6, generator=g, dtype=torch.float64), torch.randint(0, 3, (7,), generator=g)
    mwn = MetaWeightNet(hidden=4).double()
    learner = MetaLearner(model, optimizer, reweighter=mwn, method=method, guard=False,
                          meta_optimizer=torch.optim.SGD(mwn.parameters(), lr=1.0))
    before = [p.detach().clone() for p in mwn.parameters()]
    loss = learner.step(x, y, xm, ym)
    if not learner.last.meta_updated:
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        before = [p.detach().clone() for p in mwn.parameters()]
        learner.step(x[:4], y[:4], xm, ym)
    assert learner.last.meta_updated
    if layouts is not None:
        layouts.append(learner.method._layout.channels_last)
    learner.close()
    return [b - p.detach() for b, p in zip(before, mwn.parameters())]


@pytest.mark.parametrize("dropout", [0.0, 0.3])
@pytest.mark.parametrize("method", [ForwardMode, OnlineForwardMode])
def test_jvp_methods_with_their_rules_equal_the_double_backward_on_a_cnn(method, dropout: float) -> None:
    """The rules (BatchNorm, max-pool, first convolution) keep ``jvp`` and ``jvp-online`` exact in their
    forward-mode pass and validation forward; PyTorch's formulas (``rules=False``) agree."""
    exact = _cnn_update("exact", dropout)
    layouts: list[bool] = []
    for instance in (method(), method(rules=False)):
        for a, b in zip(_cnn_update(instance, dropout, layouts), exact):
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-15)
    # channels-last while nothing draws random numbers; with dropout (masks follow the layout) the real forward's layout
    assert layouts[0] == (dropout == 0.0)


@pytest.mark.parametrize("method", [ForwardMode, OnlineForwardMode])
def test_rules_false_is_pytorchs_own_path(method, monkeypatch: pytest.MonkeyPatch) -> None:
    """``rules=False`` never enters :class:`ForwardRules` (PyTorch's ops and formulas); the default does, in
    channels-last on a model without dropout, and no call needs a second, contiguous run."""
    entered: list[bool] = []
    enter = jvp_rules.ForwardRules.__enter__

    def counting_enter(self):
        entered.append(self.channels_last)
        return enter(self)

    monkeypatch.setattr(jvp_rules.ForwardRules, "__enter__", counting_enter)
    _cnn_update(method(rules=False))
    assert entered == []
    _cnn_update(method())
    assert entered == [True, True]  # the validation forward, then the forward-mode pass


@pytest.mark.parametrize("method", [ForwardMode, OnlineForwardMode])
def test_a_model_that_flattens_with_view_runs_in_the_contiguous_layout(method) -> None:
    """``x.view(B, -1)`` fails on a channels-last tensor: the rules fall back to the contiguous layout
    for good and stay exact (the update equals the double backward's)."""
    exact = _cnn_update("exact", view=True)
    layouts: list[bool] = []
    for a, b in zip(_cnn_update(method(), layouts=layouts, view=True), exact):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-15)
    assert layouts == [False]


def test_jvp_rules_must_be_a_bool() -> None:
    with pytest.raises(ValueError, match="rules must be a bool, but got 1"):
        ForwardMode(rules=1)


def test_jvp_online_rules_must_be_a_bool() -> None:
    with pytest.raises(ValueError, match="rules must be a bool, but got 'yes'"):
        OnlineForwardMode(rules="yes")


def test_jvp_online_layout_choice_is_per_learner() -> None:
    """One method object, two learners: dropout in one does not take channels-last from the other."""
    method, layouts = OnlineForwardMode(), []
    _cnn_update(method, 0.3, layouts)
    _cnn_update(method, 0.0, layouts)
    assert layouts == [False, True]
    assert method._layout.channels_last  # the shared object itself is untouched: bind() gives each learner a copy


@pytest.mark.parametrize("dropout", [0.0, 0.3])
@pytest.mark.parametrize("share, taken", [(0.0, 0), (1 / 3, 1), (1.0, 2)])
def test_jvp_online_replay_takes_the_real_forwards_convolution_outputs(share: float, taken: int, dropout: float) -> None:
    """The replay's primal takes the kept outputs of the real forward's convolutions (the costliest per byte
    first, up to ``conv_share`` of their bytes) and the update still equals the double backward's."""
    exact = _cnn_update("exact", dropout)
    before = jvp_rules._SUPPLIED.used
    for a, b in zip(_cnn_update(OnlineForwardMode(conv_share=share), dropout), exact):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-15)
    assert jvp_rules._SUPPLIED.used - before == taken  # one replay (with dropout in the real forward's layout)


def test_a_convolution_output_changed_in_place_is_computed_again() -> None:
    """An in-place op after a convolution changes its kept output: the replay convolves again, exactly."""
    class Double(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.mul_(2.0)  # taken as the primal, the doubled output would double again

    def update(method) -> list[torch.Tensor]:
        torch.manual_seed(0)
        model = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), Double(), nn.Tanh(), nn.Conv2d(4, 4, 3, padding=1),
                              nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(144, 3)).double()
        return _first_meta_update(model, torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9), method)

    exact = update("exact")
    before = jvp_rules._SUPPLIED.used
    for a, b in zip(update(OnlineForwardMode(conv_share=1.0)), exact):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-15)
    assert jvp_rules._SUPPLIED.used - before == 1  # the second convolution's; the first one's was changed


def test_jvp_online_conv_share_must_be_a_fraction() -> None:
    with pytest.raises(ValueError, match="share must be a number in \\[0, 1\\], but got 1.5"):
        OnlineForwardMode(conv_share=1.5)
