"""Review of ``jvp-online``'s replay rules and kept convolution outputs (``ConvOutputs``), in float64.

Ground truth: PyTorch's own forward AD (``OnlineForwardMode(rules=False)``), which never takes a
kept output, over several real steps of the same loop; a kept output that is stale (another
step's, another call's, another parameter's) changes the reweighter's trajectory far beyond
rounding. Each test also checks that kept outputs were really taken (``_SUPPLIED.used``).
"""
from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable

import pytest
import torch
import torch.autograd.forward_ad as fwAD
from torch import nn
from torch.func import functional_call
from torch.nn.modules.module import register_module_forward_hook

from autodata import MetaLearner, MetaWeightNet
from autodata.augment import BaseAugment
from autodata.bilevel import OnlineForwardMode, jvp_rules

Hook = Callable[[nn.Module, int], None]


def _batch(n: int, seed: int, shape: tuple[int, ...] = (2, 8, 8)) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, *shape, generator=g, dtype=torch.float64), torch.randint(0, 3, (n,), generator=g)


def _trajectory(method: OnlineForwardMode, make_model: Callable[[], nn.Module], steps: int = 3, every: int = 1,
                accumulation: int = 1, before_step: Hook | None = None, after_step: Hook | None = None,
                reload_after: int | None = None) -> tuple[list[list[torch.Tensor]], int]:
    """The reweighter's parameters after each optimizer step of a float64 loop, and the kept outputs taken."""
    torch.manual_seed(0)
    model = make_model().double()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9)
    mwn = MetaWeightNet(hidden=4).double()

    def learner_of() -> MetaLearner:
        return MetaLearner(model, optimizer, reweighter=mwn, method=method, guard=False, every=every,
                           accumulation_steps=accumulation, meta_optimizer=torch.optim.SGD(mwn.parameters(), lr=1.0))

    learner, (xm, ym), used = learner_of(), _batch(7, 99), jvp_rules._SUPPLIED.used
    trajectory = []
    for t in range(steps):
        optimizer.zero_grad()
        for m in range(accumulation):
            x, y = _batch(10 // accumulation, 10 * t + m)
            (learner.step(x, y, xm, ym) / accumulation).backward()
        if before_step is not None:
            before_step(model, t)
        optimizer.step()
        if after_step is not None:
            after_step(model, t)
        if t == reload_after:  # a checkpoint between steps, loaded into a new learner
            state = learner.state_dict()
            learner.close()
            learner = learner_of()
            learner.load_state_dict(state)
        trajectory.append([p.detach().clone() for p in mwn.parameters()])
    learner.close()
    return trajectory, jvp_rules._SUPPLIED.used - used


def _assert_kept_outputs_exact(make_model: Callable[[], nn.Module], **loop) -> int:
    """``conv_share=1`` follows PyTorch's forward AD step for step; returns how many kept outputs were taken."""
    expected, _ = _trajectory(OnlineForwardMode(rules=False), make_model, **loop)
    got, used = _trajectory(OnlineForwardMode(conv_share=1.0), make_model, **loop)
    assert any(not torch.equal(a, b) for a, b in zip(expected[0], expected[-1]))  # the reweighter learned
    for step_got, step_expected in zip(got, expected):
        for a, b in zip(step_got, step_expected):
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-14)
    return used


def _cnn() -> nn.Module:
    return nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1),
                         nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64, 3))


class _Shared(nn.Module):
    """One convolution module called twice (weight sharing), dropout between, and a convolution whose output
    the loss never sees."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(2, 4, 3, padding=1, padding_mode="reflect")
        self.shared = nn.Conv2d(4, 4, 3, stride=1, dilation=2, padding=2, groups=2, bias=False)
        self.bn = nn.BatchNorm2d(4, momentum=None)
        self.drop = nn.Dropout(0.3)
        self.unused = nn.Conv2d(4, 4, 1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.stem(x))
        h = self.drop(torch.tanh(self.bn(self.shared(h))))
        self.unused(h)
        h = torch.tanh(self.shared(h))
        return self.fc(h.mean((2, 3)))


def _shared() -> nn.Module:
    model = _Shared()
    model.unused.requires_grad_(False)  # a trainable parameter outside the loss is refused by every method
    return model


@pytest.mark.parametrize("make_model, per_replay", [(_cnn, 2), (_shared, 4)])
def test_kept_outputs_follow_pytorchs_forward_ad_over_several_steps(make_model, per_replay: int) -> None:
    """Three real steps, two replays: every convolution call (a shared module's two calls apart, a reflect-padded,
    grouped, dilated one, one whose output is unused) takes its own call's output and stays exact."""
    assert _assert_kept_outputs_exact(make_model) == 2 * per_replay


@pytest.mark.parametrize("loop, taken", [
    (dict(every=3, steps=7), 2 * 2),  # replayed steps 0 and 3; the steps between record nothing
    # two micro-batches per real step, each with its own outputs: half the share each, the costlier convolution's
    (dict(accumulation=2), 1 * 4),
    (dict(reload_after=0), 2 * 2),  # the checkpoint keeps the record's outputs (by module name): the replay takes them
])
def test_kept_outputs_belong_to_the_replayed_step(loop: dict, taken: int) -> None:
    assert _assert_kept_outputs_exact(_cnn, **loop) == taken


@pytest.mark.parametrize("accumulation, count", [(1, 2), (2, 2), (4, 0)])
def test_micro_batches_together_keep_at_most_the_share_of_one(accumulation: int, count: int) -> None:
    """``conv_share`` bounds the bytes kept for one replay: with micro-batches each keeps its part of the share
    (of two equal outputs: both at 1, the costlier at 1/2, none at 1/4)."""
    torch.manual_seed(0)
    model = _cnn().double()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9)
    learner = MetaLearner(model, optimizer, reweighter=MetaWeightNet(hidden=4).double(), guard=False,
                          method=OnlineForwardMode(conv_share=1.0), accumulation_steps=accumulation)
    (xm, ym), micro = _batch(7, 99), 16 // accumulation
    for m in range(accumulation):
        learner.step(*_batch(micro, m), xm, ym).backward()
    kept = [out for forward in learner._online.pending.forwards for out, _ in forward.convs.outputs.values()]
    assert len(kept) == count
    assert sum(out.numel() for out in kept) <= 2 * micro * 4 * 8 * 8  # the two convolutions' outputs of one micro-batch
    learner.close()


def _eval_forward(model: nn.Module, t: int) -> None:
    model.eval()
    model(_batch(5, 1000 + t)[0])
    model.train()


def _user_forward(model: nn.Module, t: int) -> None:
    (0 * model(_batch(5, 2000 + t)[0]).sum()).backward()  # its own forward and backward before optimizer.step()


def test_forwards_of_the_user_between_steps_do_not_replace_kept_outputs() -> None:
    """Outputs are kept from the learner's real forward only: an eval-mode forward after ``optimizer.step()`` and
    a forward (and backward) of the user's before it leave the replay exact."""
    assert _assert_kept_outputs_exact(_cnn, before_step=_user_forward, after_step=_eval_forward) == 4


def test_convolutions_with_string_padding_take_their_kept_outputs() -> None:
    """``padding="same"`` (odd and even kernels, dilated) and ``padding="valid"``: every call's output is taken."""
    def model() -> nn.Module:
        return nn.Sequential(nn.Conv2d(2, 4, 3, padding="same"), nn.Tanh(), nn.Conv2d(4, 4, 2, padding="same", dilation=2),
                             nn.BatchNorm2d(4), nn.Tanh(), nn.Conv2d(4, 4, 3, padding="valid"), nn.Flatten(),
                             nn.Linear(144, 3))

    assert _assert_kept_outputs_exact(model) == 2 * 3


def test_a_convolution_output_changed_in_place_is_not_taken() -> None:
    """ReLU(inplace=True) right after each convolution: nothing is taken, the replay convolves."""
    def model() -> nn.Module:
        return nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(4, 4, 3, padding=1),
                             nn.ReLU(inplace=True), nn.Flatten(), nn.Linear(256, 3))

    assert _assert_kept_outputs_exact(model) == 0


def test_kept_outputs_with_a_data_parallel_model_of_one_rank() -> None:
    """DDP on one gloo rank: the real forward runs through the wrapper, the replay on the plain module."""
    import torch.distributed as dist

    if dist.is_initialized():
        pytest.skip("a process group is already initialized")
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        assert _assert_kept_outputs_exact(lambda: nn.parallel.DistributedDataParallel(_cnn().double())) == 4
    finally:
        dist.destroy_process_group()


def test_a_global_forward_hook_that_replaces_outputs_is_applied_once() -> None:
    """A global forward hook (registered before the learner) scales every convolution's output: the replay must
    see the scaled output once, as the real forward did."""
    def scale(module: nn.Module, args: object, out: torch.Tensor) -> torch.Tensor | None:
        return out * 1.5 if isinstance(module, nn.Conv2d) else None

    handle = register_module_forward_hook(scale)
    try:
        assert _assert_kept_outputs_exact(_cnn) == 4
    finally:
        handle.remove()


def test_batch_norm_rule_under_bf16_autocast_keeps_the_primal_dtype() -> None:
    """Under CPU bfloat16 autocast, a convolution, train-mode BatchNorm and a linear layer in forward mode: the
    rules give the primal's dtype for the tangent and PyTorch's own values (to bfloat16 rounding), as
    ``jvp-online``'s default replay of an autocast loop needs (a float32 tangent fails in the next matmul)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(256, 3))
    x = torch.randn(5, 2, 8, 8)
    tangents = {n: torch.randn_like(p) for n, p in model.named_parameters()}

    def jvp(rules: bool) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.autocast("cpu", dtype=torch.bfloat16), torch.no_grad(), fwAD.dual_level():
            dual = {n: fwAD.make_dual(p.detach(), tangents[n]) for n, p in model.named_parameters()}
            with jvp_rules.ForwardRules() if rules else contextlib.nullcontext():
                normalized = functional_call(model[:2], {n: t for n, t in dual.items() if n[0] in "01"}, (x,))
                assert fwAD.unpack_dual(normalized).tangent.dtype == fwAD.unpack_dual(normalized).primal.dtype
                primal, tangent = fwAD.unpack_dual(functional_call(model, dual, (x,)))
            return primal.float(), tangent.float()

    (primal, tangent), (expected_primal, expected_tangent) = jvp(True), jvp(False)
    torch.testing.assert_close(primal, expected_primal)
    torch.testing.assert_close(tangent, expected_tangent, rtol=5e-2, atol=5e-2)


def _after_a_failed_step(method: str, fail: bool) -> list[torch.Tensor]:
    """The reweighter after steps 0 and 1 of a loop, step 1 first tried on a NaN batch (``fail``) and retried."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                          nn.Linear(256, 3)).double()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9)
    mwn = MetaWeightNet(hidden=4).double()
    learner = MetaLearner(model, optimizer, reweighter=mwn, method=method, guard=False,
                          meta_optimizer=torch.optim.SGD(mwn.parameters(), lr=1.0))
    (xm, ym), (x0, y0), (x1, y1) = _batch(7, 99), _batch(10, 0), _batch(10, 1)
    optimizer.zero_grad()
    learner.step(x0, y0, xm, ym).backward()
    optimizer.step()
    if fail:
        with pytest.raises(FloatingPointError, match="not finite"):
            learner.step(torch.full_like(x1, float("nan")), y1, xm, ym)
    optimizer.zero_grad()
    learner.step(x1, y1, xm, ym).backward()
    optimizer.step()
    learner.close()
    return [p.detach().clone() for p in mwn.parameters()]


@pytest.mark.parametrize("method", ["online", "jvp-online"])
def test_a_step_whose_forward_raises_applies_the_last_hypergradient_once(method: str) -> None:
    """A step whose real forward raises (a non-finite loss: "The model was not updated") and is retried on a good
    batch ends where the loop without the failure does: step 0's hypergradient is applied once."""
    for a, b in zip(_after_a_failed_step(method, True), _after_a_failed_step(method, False)):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


@dataclasses.dataclass(frozen=True)
class _NoiseParams:
    noise: torch.Tensor


class _Noise(BaseAugment):
    """``x + scale * noise``, the noise drawn per sample (a fixed augmentation the loop may swap)."""

    params_type = _NoiseParams

    def __init__(self, scale: float) -> None:
        super().__init__()
        self.scale = scale

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> _NoiseParams:
        return _NoiseParams(torch.randn(batch_size, 2, 8, 8, generator=generator, dtype=torch.float64))

    def forward(self, x: torch.Tensor, params: _NoiseParams | None = None) -> torch.Tensor:
        params = self.sample(x.shape[0]) if params is None else params
        return x + self.scale * params.noise


def _update_with_a_swap(method: OnlineForwardMode, swap: bool) -> list[torch.Tensor]:
    """The reweighter after two steps; with ``swap`` the augmentation is replaced after step 0's optimizer step."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.Tanh(), nn.Conv2d(4, 4, 3, padding=1), nn.Tanh(),
                          nn.Flatten(), nn.Linear(256, 3)).double()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9)
    mwn = MetaWeightNet(hidden=4).double()
    learner = MetaLearner(model, optimizer, reweighter=mwn, augment=_Noise(0.5), method=method, guard=False,
                          meta_optimizer=torch.optim.SGD(mwn.parameters(), lr=1.0))
    xm, ym = _batch(7, 99)
    for t in range(2):
        optimizer.zero_grad()
        learner.step(*_batch(10, t), xm, ym).backward()
        optimizer.step()
        if swap and t == 0:
            learner.augment = _Noise(-3.0)  # "a fixed policy swapped between epochs"
    learner.close()
    return [p.detach().clone() for p in mwn.parameters()]


@pytest.mark.parametrize("conv_share", [0.0, 1.0])
def test_an_augmentation_swapped_after_a_step_does_not_change_its_hypergradient(conv_share: float) -> None:
    """Step 0's hypergradient (applied at step 1) is defined on step 0's augmented batch: swapping the augmentation
    after step 0 must leave the update as it is without the swap."""
    expected = _update_with_a_swap(OnlineForwardMode(conv_share=conv_share), False)
    for a, b in zip(_update_with_a_swap(OnlineForwardMode(conv_share=conv_share), True), expected):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-14)
