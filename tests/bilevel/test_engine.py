"""MetaLearner: virtual steps change nothing real, the loop contract, and bad input."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from autodata import L2RW, MetaLearner, MetaWeightNet, UniformReweighter
from autodata.bilevel import SUPPORTED_OPTIMIZERS, VirtualStep


def _model() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Dropout(0.1),
        nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(16, 3),
    )


def _batch(n: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, 8, 8, generator=g), torch.randint(0, 3, (n,), generator=g)


def _trained(opt_factory):
    torch.manual_seed(0)
    model = _model()
    optimizer = opt_factory(model.parameters())
    x, y = _batch()
    for _ in range(2):
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
    return model, optimizer


class TaggedSGD(torch.optim.SGD):
    """A user's optimizer subclass that does not override ``step``: its update is SGD's."""

    def __init__(self, params, **kw) -> None:
        super().__init__(params, **kw)
        self.tag = "mine"


@pytest.mark.parametrize(
    "opt_factory, max_grad_norm",
    [
        (lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3), None),
        (lambda p: torch.optim.Adam(p, lr=1e-2, weight_decay=1e-3, amsgrad=True), None),
        (lambda p: torch.optim.AdamW(p, lr=1e-2, weight_decay=1e-2), None),
        (lambda p: torch.optim.SGD(p, lr=0.2, momentum=0.9, nesterov=True), 0.05),
        (lambda p: TaggedSGD(p, lr=0.1, momentum=0.9), None),
    ],
    ids=["sgd", "adam", "adamw", "sgd-clipped", "sgd-subclass"],
)
def test_virtual_step_reproduces_real_optimizer(opt_factory, max_grad_norm: float | None) -> None:
    """The look-ahead is the loop's real step: ``clip_grad_norm_`` (when given), then ``optimizer.step()``."""
    model, optimizer = _trained(opt_factory)
    x, y = _batch(seed=1)
    optimizer.zero_grad()
    F.cross_entropy(model(x), y).backward()
    params = dict(model.named_parameters())
    predicted = VirtualStep(optimizer, params, max_grad_norm=max_grad_norm)({n: p.grad for n, p in params.items()})
    if max_grad_norm is not None:
        norm = nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
        assert norm > max_grad_norm  # the clipping binds, so the case tests it
    optimizer.step()
    for n, p in params.items():
        torch.testing.assert_close(predicted[n], p.detach(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("method", ["exact", "fd", "last"])
@pytest.mark.parametrize("reweighter", [MetaWeightNet, L2RW])
def test_meta_step_touches_only_what_a_plain_forward_touches(method: str, reweighter) -> None:
    """Params and optimizer state unchanged; BN statistics moved exactly once, as a plain forward."""
    model, optimizer = _trained(lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9))
    twin = copy.deepcopy(model)
    opt_state = copy.deepcopy(optimizer.state_dict())
    x, y = _batch(seed=2)
    xm, ym = _batch(8, seed=3)

    learner = MetaLearner(model, optimizer, reweighter=reweighter(), method=method)
    learner.step(x, y, xm, ym)
    twin(x)  # the one forward of a plain step

    for (n, a), (_, b) in zip(model.state_dict().items(), twin.state_dict().items()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=f"{n} changed beyond one plain forward")
    new_state = optimizer.state_dict()
    for key, value in opt_state["state"].items():
        torch.testing.assert_close(new_state["state"][key]["momentum_buffer"], value["momentum_buffer"], rtol=0, atol=0)


def test_returned_loss_trains_the_model_and_meta_learns() -> None:
    model, optimizer = _trained(lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9))
    mwn = MetaWeightNet()
    before = [p.detach().clone() for p in mwn.parameters()]
    learner = MetaLearner(model, optimizer, reweighter=mwn)
    x, y = _batch(seed=4)
    loss = learner.step(x, y, *_batch(8, seed=5))
    optimizer.zero_grad()
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    assert all(p.grad is None for p in mwn.parameters()), "the real backward must not reach the reweighter"
    assert any(not torch.equal(a, p) for a, p in zip(before, mwn.parameters())), "MWN did not move"
    assert learner.last is not None and learner.last.meta_updated and learner.last.weights.shape == (16,)


def test_every_k_updates_on_schedule_and_meta_data_is_cycled() -> None:
    model, optimizer = _trained(lambda p: torch.optim.SGD(p, lr=0.1))
    meta = [_batch(8, seed=10)]  # a one-batch "loader", cycled
    learner = MetaLearner(model, optimizer, reweighter=MetaWeightNet(), meta_data=meta, every=3)
    updated = []
    for i in range(7):
        loss = learner.step(*_batch(seed=20 + i))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        updated.append(learner.last.meta_updated)
    assert updated == [True, False, False, True, False, False, True]


def test_l2rw_weights_are_nonnegative_with_mean_one() -> None:
    model, optimizer = _trained(lambda p: torch.optim.SGD(p, lr=0.1))
    learner = MetaLearner(model, optimizer, reweighter=L2RW(max_step_ratio=None))  # the paper's weights, unbounded
    learner.step(*_batch(seed=6), *_batch(8, seed=7))
    w = learner.last.weights
    assert (w >= 0).all() and w.mean().item() == pytest.approx(1.0, abs=1e-5)


def test_uniform_reweighter_is_plain_cross_entropy() -> None:
    model, optimizer = _trained(lambda p: torch.optim.SGD(p, lr=0.1))
    model.eval()  # no dropout: compare the values exactly
    x, y = _batch(seed=8)
    loss = MetaLearner(model, optimizer, reweighter=UniformReweighter()).step(x, y)
    torch.testing.assert_close(loss, F.cross_entropy(model(x), y))


def test_state_dict_round_trip() -> None:
    model, optimizer = _trained(lambda p: torch.optim.Adam(p, lr=1e-3))
    learner = MetaLearner(model, optimizer, reweighter=MetaWeightNet())
    learner.step(*_batch(seed=1), *_batch(8, seed=2))
    state = learner.state_dict()
    other = MetaLearner(model, optimizer, reweighter=MetaWeightNet())
    other.load_state_dict(state)
    assert other.num_steps == 1
    for a, b in zip(learner.reweighter.parameters(), other.reweighter.parameters()):
        assert torch.equal(a, b)


# ---------------------------------------------------------------------- bad input
def test_unsupported_optimizer_lists_the_supported_ones() -> None:
    model = _model()
    with pytest.raises(ValueError, match="RMSprop") as info:
        MetaLearner(model, torch.optim.RMSprop(model.parameters()), reweighter=MetaWeightNet())
    for name in SUPPORTED_OPTIMIZERS:
        assert name in str(info.value)


def test_optimizer_subclass_is_accepted_unless_it_overrides_step() -> None:
    # one that does not is SGD (its look-ahead: test_virtual_step_reproduces_real_optimizer[sgd-subclass])
    class Own(torch.optim.SGD):
        def step(self, closure=None):
            return super().step(closure)

    model = _model()
    MetaLearner(model, TaggedSGD(model.parameters(), lr=0.1), reweighter=MetaWeightNet()).close()
    with pytest.raises(ValueError, match=r"subclasses that do not override step\), but got Own \(it overrides step\)"):
        MetaLearner(model, Own(model.parameters(), lr=0.1))


def test_model_without_trainable_parameters() -> None:
    model = _model().requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        MetaLearner(model, torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1))


def test_optimizer_that_does_not_hold_the_model() -> None:
    model = _model()
    with pytest.raises(ValueError, match="optimized by the optimizer"):
        MetaLearner(model, torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1))


def test_unknown_method_and_bad_every() -> None:
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="method must be one of"):
        MetaLearner(model, opt, method="neumann")
    with pytest.raises(ValueError, match="every must be a positive integer"):
        MetaLearner(model, opt, every=0)


def test_meta_labels_out_of_range() -> None:
    model, optimizer = _trained(lambda p: torch.optim.SGD(p, lr=0.1))
    learner = MetaLearner(model, optimizer, reweighter=MetaWeightNet())
    xm, ym = _batch(8, seed=3)
    ym[0] = 7
    with pytest.raises(ValueError, match=r"meta labels must lie in \[0, 3\).*7"):
        learner.step(*_batch(), xm, ym)


def test_training_labels_out_of_range() -> None:
    model, optimizer = _trained(lambda p: torch.optim.SGD(p, lr=0.1))
    x, y = _batch()
    y[3] = -1
    with pytest.raises(ValueError, match=r"training labels must lie in \[0, 3\)"):
        MetaLearner(model, optimizer, reweighter=MetaWeightNet()).step(x, y, *_batch(8))


def test_empty_meta_batch_and_empty_meta_data() -> None:
    model, optimizer = _trained(lambda p: torch.optim.SGD(p, lr=0.1))
    learner = MetaLearner(model, optimizer, reweighter=MetaWeightNet())
    x, y = _batch()
    with pytest.raises(ValueError, match="meta batch must not be empty"):
        learner.step(x, y, x[:0], y[:0])
    with pytest.raises(ValueError, match="meta_data is empty"):
        MetaLearner(model, optimizer, reweighter=MetaWeightNet(), meta_data=[]).step(x, y)
    with pytest.raises(ValueError, match="needs a clean validation batch"):
        MetaLearner(model, optimizer, reweighter=MetaWeightNet()).step(x, y)


def test_mismatched_devices() -> None:
    model, optimizer = _trained(lambda p: torch.optim.SGD(p, lr=0.1))
    learner = MetaLearner(model, optimizer, reweighter=MetaWeightNet())
    x, y = _batch()
    with pytest.raises(ValueError, match="training batch is on meta but the model is on cpu"):
        learner.step(x.to("meta"), y, *_batch(8))
    with pytest.raises(ValueError, match="reweighter's parameters are on meta"):
        MetaLearner(model, optimizer, reweighter=MetaWeightNet().to("meta"))


def test_nonfinite_training_loss_raises_before_anything_changes() -> None:
    model, optimizer = _trained(lambda p: torch.optim.SGD(p, lr=0.1))
    mwn = MetaWeightNet()
    before = copy.deepcopy(mwn.state_dict())
    model_before = copy.deepcopy(model.state_dict())
    x, y = _batch()
    x[2] = float("nan")
    learner = MetaLearner(model, optimizer, reweighter=mwn, on_nonfinite="skip")
    with pytest.raises(FloatingPointError, match=r"step 0: the training loss is not finite for \d+ of 16"):
        learner.step(x, y, *_batch(8))
    assert all(torch.equal(a, b) for a, b in zip(before.values(), mwn.state_dict().values()))
    # BatchNorm statistics are restored: the NaN batch leaves no trace in the model
    assert all(torch.equal(a, b) for a, b in zip(model_before.values(), model.state_dict().values()))


@pytest.mark.parametrize("on_nonfinite", ["raise", "skip"])
def test_nonfinite_meta_loss(on_nonfinite: str) -> None:
    model, optimizer = _trained(lambda p: torch.optim.SGD(p, lr=0.1))
    model.eval()  # BatchNorm in eval mode: one NaN meta input makes only its own output NaN
    mwn = MetaWeightNet()
    before = copy.deepcopy(mwn.state_dict())
    learner = MetaLearner(model, optimizer, reweighter=mwn, on_nonfinite=on_nonfinite)
    xm, ym = _batch(8)
    xm[0] = float("inf")
    if on_nonfinite == "raise":
        with pytest.raises(FloatingPointError, match="step 0: the meta .* loss"):
            learner.step(*_batch(), xm, ym)
    else:
        with pytest.warns(RuntimeWarning, match="meta update is skipped"):
            loss = learner.step(*_batch(), xm, ym)
        assert torch.isfinite(loss) and not learner.last.meta_updated
    assert all(torch.equal(a, b) for a, b in zip(before.values(), mwn.state_dict().values()))


def test_online_method_replays_without_touching_the_model() -> None:
    model, optimizer = _trained(lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9))
    learner = MetaLearner(model, optimizer, reweighter=MetaWeightNet(), method="online")
    x, y = _batch(seed=2)
    loss = learner.step(x, y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    twin = copy.deepcopy(model)
    opt_state = copy.deepcopy(optimizer.state_dict())
    x1, y1 = _batch(seed=3)
    learner.step(x1, y1, *_batch(8, seed=4))
    twin(x1)  # the one forward of a plain step
    assert learner.last.meta_updated
    for (n, a), b in zip(model.state_dict().items(), twin.state_dict().values()):
        assert torch.equal(a, b), f"{n} changed beyond one plain forward during the online meta update"
    for key, value in opt_state["state"].items():
        assert torch.equal(optimizer.state_dict()["state"][key]["momentum_buffer"], value["momentum_buffer"])


def test_online_method_refuses_a_step_without_a_real_step() -> None:
    """Gradient accumulation (or a skipped optimizer step) would silently drop meta updates."""
    model, optimizer = _trained(lambda p: torch.optim.SGD(p, lr=0.1))
    learner = MetaLearner(model, optimizer, reweighter=MetaWeightNet(), method="online")
    learner.step(*_batch(seed=1))  # micro-batch 1: no optimizer.step() follows
    with pytest.raises(RuntimeError, match=r"optimizer.step\(\) was not called after step 0.*method='fd'"):
        learner.step(*_batch(seed=2), *_batch(8, seed=3))
    assert learner.num_steps == 1
    learner.close()


def test_online_method_refuses_per_batch_reweighters() -> None:
    model = _model()
    with pytest.raises(ValueError, match="online.*L2RW"):
        MetaLearner(model, torch.optim.SGD(model.parameters(), lr=0.1), reweighter=L2RW(), method="online")


@pytest.mark.slow
@pytest.mark.parametrize("method", ["exact", "fd", "last", "online"])
def test_torchvision_model_scheduler_and_bf16_autocast(method: str) -> None:
    """Any nn.Module (here torchvision's ResNet-18), a scheduler, and bf16 autocast."""
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=4)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    learner = MetaLearner(model, optimizer, reweighter=MetaWeightNet(), method=method)
    g = torch.Generator().manual_seed(0)
    for _ in range(2):
        x, y = torch.rand(6, 3, 32, 32, generator=g), torch.randint(0, 4, (6,), generator=g)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = learner.step(x, y, x[:4], y[:4])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
    assert torch.isfinite(loss)
    assert learner.last.meta_updated  # online: step 1 applies the hypergradient of step 0
    assert all(torch.isfinite(p).all() for p in learner.reweighter.parameters())


def test_nonfinite_training_batch_does_not_count_as_a_step() -> None:
    model, optimizer = _trained(lambda p: torch.optim.SGD(p, lr=0.1))
    learner = MetaLearner(model, optimizer, reweighter=MetaWeightNet())
    x, y = _batch()
    x[0] = float("nan")
    with pytest.raises(FloatingPointError, match="The model was not updated"):
        learner.step(x, y, *_batch(8))
    assert learner.num_steps == 0
    learner.step(*_batch(), *_batch(8))
    assert learner.num_steps == 1 and learner.last.step == 0


def test_bad_batches_are_named() -> None:
    model, optimizer = _trained(lambda p: torch.optim.SGD(p, lr=0.1))
    learner = MetaLearner(model, optimizer, reweighter=MetaWeightNet())
    x, y = _batch()
    xm, ym = _batch(8)
    with pytest.raises(ValueError, match=r"training batch must not be empty \(step\(\) needs at least one training"):
        learner.step(x[:0], y[:0], xm, ym)
    with pytest.raises(TypeError, match="training batch's x must be a torch.Tensor, but got numpy.ndarray"):
        learner.step(x.numpy(), y, xm, ym)
    with pytest.raises(TypeError, match="meta batch's y must be a torch.Tensor"):
        learner.step(x, y, xm, ym.tolist())
    with pytest.raises(ValueError, match=r"meta batch's inputs must have the training batch's per-sample shape \(1, 8, 8\), but got \(1, 6, 6\)"):
        learner.step(x, y, xm[:, :, :6, :6], ym)
    with pytest.raises(ValueError, match="training batch must have as many targets as inputs"):
        learner.step(x, y[:3], xm, ym)
    assert learner.num_steps == 0


@pytest.mark.parametrize("radius", [0, -1e-3, float("nan"), float("inf")])
def test_bad_fd_radius(radius: float) -> None:
    from autodata.bilevel import FiniteDifference

    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="fd_radius must be a finite number > 0"):
        MetaLearner(model, opt, method="fd", fd_radius=radius)
    with pytest.raises(ValueError, match="radius must be a finite number > 0"):
        FiniteDifference(radius=radius)


def test_fd_default_radius_follows_the_difference_kind() -> None:
    """The measured defaults: 1e-3 central, 3e-4 one-sided, also after dataclasses.replace."""
    import dataclasses

    from autodata.bilevel import FiniteDifference
    from autodata.bilevel.online import Online

    assert FiniteDifference().step_radius == 1e-3
    assert FiniteDifference(one_sided=True).step_radius == 3e-4
    assert dataclasses.replace(FiniteDifference(), one_sided=True).step_radius == 3e-4
    assert Online(one_sided=True).step_radius == 3e-4
    assert FiniteDifference(radius=1e-2, one_sided=True).step_radius == 1e-2  # a given radius stays


def test_method_objects_and_names() -> None:
    from autodata.bilevel import HYPERGRADIENTS, FiniteDifference, LastLayers

    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    assert MetaLearner(model, opt, method="fd", fd_radius=1e-3).method == FiniteDifference(radius=1e-3)
    assert MetaLearner(model, opt, method=FiniteDifference(radius=1e-3)).method == FiniteDifference(radius=1e-3)
    assert MetaLearner(model, opt, method="last").method == LastLayers(layers=("6.weight", "6.bias"))
    assert MetaLearner(model, opt, method="last", last_layers=["6.bias"]).method.layers == ("6.bias",)
    assert set(HYPERGRADIENTS) >= {"exact", "fd", "last", "online"}
    with pytest.raises(ValueError, match="options must be given to the method object itself"):
        MetaLearner(model, opt, method=FiniteDifference(), fd_radius=1e-3)
    with pytest.raises(ValueError, match="layers must name trainable parameters"):
        MetaLearner(model, opt, method=LastLayers(layers=("head.weight",)))


def test_augment_must_be_a_base_augment() -> None:
    model = _model()
    with pytest.raises(TypeError, match="augment must be an autodata.augment.BaseAugment"):
        MetaLearner(model, torch.optim.SGD(model.parameters(), lr=0.1), augment=nn.Identity())


def test_state_of_another_method_is_refused() -> None:
    model, optimizer = _trained(lambda p: torch.optim.SGD(p, lr=0.1))
    state = MetaLearner(model, optimizer, reweighter=MetaWeightNet(), method="fd").state_dict()
    with pytest.raises(ValueError, match="method='exact', but got one saved with method='fd'"):
        MetaLearner(model, optimizer, reweighter=MetaWeightNet()).load_state_dict(state)
