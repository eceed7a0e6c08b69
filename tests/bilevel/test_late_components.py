"""Components assigned to a MetaLearner after construction, and meta-learning through an inductor-compiled model."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from autodata import MetaLearner, MetaWeightNet
from autodata.augment import DifferentiablePolicy, IdentityAugment
from autodata.models import create_model
from autodata.reweight import UniformReweighter


def _setup(**kwargs) -> tuple[nn.Module, torch.optim.Optimizer, MetaLearner]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    return model, optimizer, MetaLearner(model, optimizer, method="fd", **kwargs)


def _train(learner: MetaLearner, optimizer: torch.optim.Optimizer, steps: int = 2) -> None:
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(8, 3, 8, 8, generator=g), torch.randint(0, 3, (8,), generator=g)
    for _ in range(steps):
        loss = learner.step(x, y, x, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


@pytest.mark.parametrize("what", ["augmentation", "reweighter"])
def test_a_learned_component_cannot_arrive_at_a_learner_built_with_nothing_learned(what: str) -> None:
    """Without the check the component was never updated (no meta-optimizer), while last.meta_updated said it was."""
    _, optimizer, learner = _setup()
    with pytest.raises(ValueError, match=rf"a learned {what} must be given to MetaLearner\(...\), .* but this learner "
                                         r"was built with nothing learned"):
        if what == "augmentation":
            learner.augment = DifferentiablePolicy(ops=("Invert", "Solarize"))
        else:
            learner.reweighter = MetaWeightNet()
    assert isinstance(learner.augment, IdentityAugment) and isinstance(learner.reweighter, UniformReweighter)
    learner.augment = IdentityAugment()  # a fixed component is still welcome
    learner.reweighter = UniformReweighter()
    _train(learner, optimizer)


def test_a_reweighter_assigned_later_is_type_checked() -> None:
    _, _, learner = _setup()
    with pytest.raises(TypeError, match=r"reweighter must be an autodata.reweight.BaseReweighter \(or None\), but got Linear"):
        learner.reweighter = nn.Linear(1, 1)


def test_a_learned_reweighter_swapped_in_is_learned_only_when_the_meta_optimizer_holds_it() -> None:
    first = MetaWeightNet()
    _, optimizer, learner = _setup(reweighter=first)
    with pytest.raises(ValueError, match=r"the reweighter's meta-parameters must be in the learner's meta-optimizer, "
                                         r"but some are not"):
        learner.reweighter = MetaWeightNet()  # the default meta-optimizer holds `first` only
    assert learner.reweighter is first
    second = MetaWeightNet()
    meta_optimizer = torch.optim.SGD([*first.parameters(), *second.parameters()], lr=1.0)
    _, optimizer, learner = _setup(reweighter=first, meta_optimizer=meta_optimizer)
    learner.reweighter = second
    before = [p.detach().clone() for p in second.parameters()]
    _train(learner, optimizer)
    assert learner.last.meta_updated
    assert any(not torch.equal(b, p) for b, p in zip(before, second.parameters()))  # it is really learned


@pytest.mark.slow
@pytest.mark.parametrize(("compiled_before", "method"), [(False, "jvp"), (True, "jvp"), (True, "jvp-online"),
                                                       (True, "exact"), (True, "last")])
def test_an_inductor_compiled_batchnorm_model_meta_learns_as_the_eager_one(compiled_before: bool, method: str) -> None:
    """compile='default' (inductor, its default settings) with a learned reweighter: the user's backward
    after the meta step's retain_graph backward. When the meta step's real forward ran the compiled graph,
    inductor's buffer reuse made the real step's gradients off by up to 0.26 (small CNN with BatchNorm),
    the losses from the second step on; also (0.167) when the architecture's graph was compiled earlier in
    the process outside any learner (``compiled_before``), which Dynamo reuses as it was compiled. The
    forwards a step differentiates itself run the plain module; the second-order methods, which
    differentiate them twice more, take the compiled model that way too."""
    torch._dynamo.reset()
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(32, 1, 8, 8, generator=g), torch.randint(0, 10, (32,), generator=g)
    xm, ym = torch.rand(16, 1, 8, 8, generator=g), torch.randint(0, 10, (16,), generator=g)
    if compiled_before:  # a plain compiled loop of the same architecture, outside any learner
        other = create_model("small_cnn", in_channels=1, num_classes=10)
        compiled_other = torch.compile(other)
        other_opt = torch.optim.SGD(other.parameters(), lr=0.1)
        for _ in range(2):
            loss = torch.nn.functional.cross_entropy(compiled_other(x), y)
            other_opt.zero_grad()
            loss.backward()
            other_opt.step()
    runs = []
    for compile_it in (True, False):
        torch.manual_seed(0)
        model = create_model("small_cnn", in_channels=1, num_classes=10)
        torch.manual_seed(1)
        mwn = MetaWeightNet()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        # every=2: meta steps (plain module) alternate with plain steps through the compiled graph
        learner = MetaLearner(torch.compile(model) if compile_it else model, optimizer, reweighter=mwn, method=method,
                              every=2)
        losses = []
        for _ in range(4):
            loss = learner.step(x, y, xm, ym)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(float(loss))
        runs.append((losses, [t.detach().clone() for t in (*model.state_dict().values(), *mwn.parameters())]))
    (compiled, compiled_state), (eager, eager_state) = runs
    assert compiled == pytest.approx(eager, rel=1e-5)
    for a, b in zip(compiled_state, eager_state):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    torch._dynamo.reset()


def test_a_compiled_model_with_nothing_learned_takes_any_method_and_trains_as_the_eager_one() -> None:
    """Nothing learned: the (second-order) method never runs, so it is not checked against the compiled model."""
    torch._dynamo.reset()
    updates = []
    for compile_it in (True, False):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        net = torch.compile(model, backend="aot_eager") if compile_it else model
        _train(MetaLearner(net, optimizer, method="exact"), optimizer)
        updates.append([p.detach().clone() for p in model.parameters()])
    for a, b in zip(*updates):
        torch.testing.assert_close(a, b)
    torch._dynamo.reset()
