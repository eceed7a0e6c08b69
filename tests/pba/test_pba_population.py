"""The grouped, vmap and loop engines agree; exploit copies weights, BatchNorm statistics and momentum."""
from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from autodata.models import create_model, with_normalization
from autodata.pba import GroupedPopulation, LoopPopulation, VmapPopulation, make_population
from autodata.pba.population import GROUPED_CHUNK_ELEMENTS, grouped_chunk_size
from autodata.pba.grouped import stacked_state, widen
from autodata.train import TrainConfig

N, B, K = 3, 16, 10


def _models(seed: int = 0, in_channels: int = 1) -> list[nn.Module]:
    torch.manual_seed(seed)
    return [with_normalization(create_model("small_cnn", in_channels=in_channels, num_classes=K), (0.5,), (0.25,))
            for _ in range(N)]


def _batches(steps: int, size: int = 8) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    return [(torch.rand(N, B, 1, size, size, generator=g), torch.randint(0, K, (B,), generator=g)) for _ in range(steps)]


@pytest.mark.parametrize("cls", [VmapPopulation, GroupedPopulation])
@pytest.mark.parametrize("nesterov,weight_decay", [(True, 5e-4), (False, 0.0)])
def test_stacked_engines_and_loop_agree(cls: type, nesterov: bool, weight_decay: float) -> None:
    config = TrainConfig(nesterov=nesterov, weight_decay=weight_decay, momentum=0.9)
    vm, lp = cls(_models(), config), LoopPopulation(_models(), config)
    for step, (x, y) in enumerate(_batches(5)):
        lr = 0.1 if step < 3 else 0.05
        torch.testing.assert_close(vm.step(x, y, lr), lp.step(x, y, lr), atol=1e-5, rtol=1e-4)
    a, b = vm.state_dict(), lp.state_dict()
    assert a["steps"] == b["steps"] == 5
    for group in ("params", "buffers", "momentum"):
        assert a[group].keys() == b[group].keys()
        for name in a[group]:
            torch.testing.assert_close(a[group][name].float(), b[group][name].float(), atol=1e-4, rtol=1e-4)
    x = torch.rand(B, 1, 8, 8)
    torch.testing.assert_close(vm.logits(x), lp.logits(x), atol=1e-4, rtol=1e-4)
    # BatchNorm statistics are per member: they moved, and differently for each member
    mean = a["buffers"]["1.bn1.running_mean"]  # (N, 32)
    assert not torch.equal(mean[0], mean[1]) and mean.abs().sum() > 0
    assert a["buffers"]["1.bn1.num_batches_tracked"].tolist() == [5] * N


@pytest.mark.parametrize("cls", [VmapPopulation, GroupedPopulation, LoopPopulation])
def test_copy_member_copies_weights_buffers_and_momentum(cls: type) -> None:
    pop = cls(_models(), TrainConfig())
    for x, y in _batches(2):
        pop.step(x, y, 0.1)
    before = pop.state_dict()
    pop.copy_member(0, 2)
    after = pop.state_dict()
    for group in ("params", "buffers", "momentum"):
        for name, t in after[group].items():
            assert torch.equal(t[0], before[group][name][2]), (group, name)
            assert torch.equal(t[1:], before[group][name][1:]), (group, name)
    # the copy trains on as its source would: same images -> same step
    x, y = _batches(1)[0]
    x[0] = x[2]
    losses = pop.step(x, y, 0.1)
    torch.testing.assert_close(losses[0], losses[2])
    with pytest.raises(ValueError, match="dst must be a member index"):
        pop.copy_member(N, 0)


@pytest.mark.parametrize("src,dst", [(VmapPopulation, LoopPopulation), (GroupedPopulation, VmapPopulation),
                                     (LoopPopulation, GroupedPopulation)])
def test_state_moves_between_engines(src: type, dst: type) -> None:
    a, b = src(_models(0), TrainConfig()), dst(_models(1), TrainConfig())
    for x, y in _batches(2):
        a.step(x, y, 0.1)
    b.load_state_dict(a.state_dict())
    x, y = _batches(1)[0]
    torch.testing.assert_close(a.step(x, y, 0.1), b.step(x, y, 0.1), atol=1e-5, rtol=1e-4)


def test_wide_model_puts_member_i_in_channel_block_i() -> None:
    models = _models()
    params, buffers = stacked_state(models)
    wide = widen(models[0], N, {**params, **buffers}).eval()
    x = torch.rand(N, 4, 1, 8, 8)
    out = wide(x.transpose(0, 1).reshape(4, N, 8, 8))  # (B, N * K)
    assert out.shape == (4, N * K)
    for i, m in enumerate(models):
        torch.testing.assert_close(out[:, i * K:(i + 1) * K], m.eval()(x[i]), atol=1e-5, rtol=1e-4)


class _MixingNet(nn.Module):
    """Grouped layers only, but its forward mixes channels (a softmax over them): not groupable."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.fc = nn.Linear(4, K)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x).softmax(1).mean((2, 3)))


class _ItemNet(nn.Module):
    """A model vmap cannot take: data-dependent Python control flow."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(64, K)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.fc(x.flatten(1))
        return out * 2 if out.sum().item() > 0 else out


def test_unvmappable_model_falls_back_to_the_loop_with_a_warning() -> None:
    models = [_ItemNet() for _ in range(N)]
    example = (torch.rand(N, 2, 1, 8, 8), torch.zeros(2, dtype=torch.long))
    with pytest.warns(RuntimeWarning, match="cannot be trained by the vmap engine.*engine='loop'"):
        pop = make_population(models, TrainConfig(), "vmap", example)
    assert isinstance(pop, LoopPopulation)
    assert isinstance(make_population(_models(), TrainConfig(), "vmap", (example[0], example[1])), VmapPopulation)
    assert isinstance(make_population(_models(), TrainConfig(), "grouped", example), GroupedPopulation)
    with pytest.raises(ValueError, match="engine must be one of"):
        make_population(_models(), TrainConfig(), "fast")


def test_grouped_engine_refuses_a_forward_that_mixes_members() -> None:
    torch.manual_seed(0)
    models = [_MixingNet() for _ in range(N)]
    example = (torch.rand(N, 2, 1, 8, 8), torch.zeros(2, dtype=torch.long))
    with pytest.warns(RuntimeWarning, match="grouped engine .*member 0 differs"):
        assert isinstance(make_population(models, TrainConfig(), "grouped", example), LoopPopulation)


class _Scale(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


def test_widen_names_a_layer_it_cannot_group() -> None:
    model = nn.Sequential(nn.Flatten(), _Scale(), nn.Linear(64, K))
    params, buffers = stacked_state([model, model])
    with pytest.raises(ValueError, match="WIDE_LAYERS, but 1 is a _Scale"):
        widen(model, 2, {**params, **buffers})


def test_auto_picks_grouped_for_small_inputs_on_a_cpu_and_the_loop_for_large() -> None:
    small = (torch.rand(N, 2, 1, 8, 8), torch.zeros(2, dtype=torch.long))  # 8 x 64 numbers per member batch
    large = (torch.rand(N, 2, 1, 32, 32), torch.zeros(2, dtype=torch.long))
    assert isinstance(make_population(_models(), TrainConfig(batch_size=8), "auto", small), GroupedPopulation)
    assert isinstance(make_population(_models(), TrainConfig(batch_size=128), "auto", large), LoopPopulation)
    assert isinstance(make_population(_models(), TrainConfig(), "auto"), LoopPopulation)  # no example: the loop


def test_grouped_engine_takes_a_wide_resnet_and_refuses_a_channel_padding_shortcut() -> None:
    """WRN's layers all group; ResNet-32's option-A shortcut pads channels, which mixes members."""
    example = (torch.rand(2, 2, 3, 8, 8), torch.zeros(2, dtype=torch.long))

    def members(name: str) -> list[nn.Module]:
        torch.manual_seed(0)
        return [create_model(name, in_channels=3, num_classes=K) for _ in range(2)]

    assert isinstance(make_population(members("wrn_40_2"), TrainConfig(), "grouped", example), GroupedPopulation)
    with pytest.warns(RuntimeWarning, match="cannot be trained by the grouped engine"):
        assert isinstance(make_population(members("resnet32"), TrainConfig(), "grouped", example), LoopPopulation)


def test_grouped_engine_takes_a_model_with_dropout() -> None:
    """Dropout draws its own masks in each forward, so the probe compares with dropout off."""
    torch.manual_seed(0)
    models = [nn.Sequential(nn.Conv2d(1, 4, 3, bias=False), nn.BatchNorm2d(4), nn.ReLU(), nn.Dropout(0.5),
                            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, K)) for _ in range(N)]
    example = (torch.rand(N, 2, 1, 8, 8), torch.zeros(2, dtype=torch.long))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback warning
        population = make_population(models, TrainConfig(), "grouped", example)
    assert isinstance(population, GroupedPopulation)
    population.gradients(*example)  # training draws dropout masks again
    dropouts = [m for m in population.model.modules() if isinstance(m, nn.Dropout)]
    assert dropouts and all(m.training for m in dropouts)


def test_grouped_engine_in_chunks_agrees_with_the_loop() -> None:
    """Members split over two wide models (2 + 1) train as the loop does, and share one state."""
    config = TrainConfig(nesterov=True, weight_decay=5e-4, momentum=0.9)
    gp, lp = GroupedPopulation(_models(), config, members_per_model=2), LoopPopulation(_models(), config)
    assert gp.chunks(torch.rand(B, 1, 8, 8)) == [(0, 2), (2, 3)]
    for x, y in _batches(4):
        torch.testing.assert_close(gp.step(x, y, 0.1), lp.step(x, y, 0.1), atol=1e-5, rtol=1e-4)
    a, b = gp.state_dict(), lp.state_dict()
    for group in ("params", "buffers", "momentum"):
        for name in a[group]:
            torch.testing.assert_close(a[group][name].float(), b[group][name].float(), atol=1e-4, rtol=1e-4)
    assert a["buffers"]["1.bn1.num_batches_tracked"].tolist() == [4] * N
    x = torch.rand(B, 1, 8, 8)
    torch.testing.assert_close(gp.logits(x), lp.logits(x), atol=1e-4, rtol=1e-4)
    gp.copy_member(2, 0)  # across chunks: member 2 (second wide model) takes member 0 (first)
    torch.testing.assert_close(gp.logits(x)[2], gp.logits(x)[0])


@pytest.mark.parametrize("size,per_model,want", [(8, 4, [4, 4]), (8, 3, [3, 2, 3]), (8, 8, [8]), (8, 1, [1] * 8),
                                                 (3, 5, [3])])
def test_chunks_cover_the_members_in_near_equal_consecutive_ranges(size: int, per_model: int, want: list[int]) -> None:
    pop = GroupedPopulation.__new__(GroupedPopulation)
    pop.size, pop.members_per_model = size, per_model
    chunks = pop.chunks(torch.zeros(1))
    assert [hi - lo for lo, hi in chunks] == want
    assert chunks[0][0] == 0 and chunks[-1][1] == size and all(a[1] == b[0] for a, b in zip(chunks, chunks[1:]))


def test_grouped_chunk_size_keeps_a_wide_model_about_one_budget_of_input() -> None:
    assert grouped_chunk_size(GROUPED_CHUNK_ELEMENTS // 4, 8) == 4
    assert grouped_chunk_size(GROUPED_CHUNK_ELEMENTS // 4, 3) == 3  # never more than the population
    assert grouped_chunk_size(GROUPED_CHUNK_ELEMENTS * 10, 8) == 1
    pop = GroupedPopulation(_models(), TrainConfig())
    assert pop.chunks(torch.rand(B, 1, 8, 8)) == [(0, N)]  # 1,024 numbers per member
    assert len(pop.chunks(torch.rand(B, 1, 64, 64))) == N  # 65,536: one member per wide model


def _pool_net(relu: nn.Module) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), relu, nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(16, K))


def test_pool_before_relu_swaps_the_pair_and_keeps_values_and_gradients() -> None:
    from autodata.pba.grouped import pool_before_relu

    net = _pool_net(nn.ReLU())
    fast = pool_before_relu(net)
    order = [type(m).__name__ for m in fast.children()]
    assert order.index("MaxPool2d") < order.index("ReLU")
    x = torch.randn(8, 1, 4, 4)  # many windows with no positive value
    want = net(x)
    grads_want = torch.autograd.grad(want.square().sum(), list(net.parameters()))
    got = fast(x)
    grads_got = torch.autograd.grad(got.square().sum(), list(fast.parameters()))
    torch.testing.assert_close(got, want, atol=0, rtol=0)
    for g, w in zip(grads_got, grads_want):
        torch.testing.assert_close(g, w, atol=1e-6, rtol=1e-5)
    # the small CNN's functional relu -> max_pool2d, as the grouped engine runs it
    members = _models()
    params, buffers = stacked_state(members)
    wide = pool_before_relu(widen(members[0], N, {**params, **buffers})).eval()
    code = wide.code
    assert code.index("max_pool2d(") < code.index("relu(")
    x = torch.rand(4, N, 8, 8)
    for i, m in enumerate(members):
        torch.testing.assert_close(wide(x)[:, i * K:(i + 1) * K], m.eval()(x[:, i:i + 1]), atol=1e-5, rtol=1e-4)


def test_pool_before_relu_leaves_what_it_cannot_swap() -> None:
    from autodata.pba.grouped import pool_before_relu

    # a ReLU in place, no ReLU, a forward fx cannot trace
    for net in (_pool_net(nn.ReLU(inplace=True)), _pool_net(nn.Tanh()), _ItemNet()):
        assert pool_before_relu(net) is net


@pytest.mark.parametrize("per_model", [1, 2])
def test_grouped_engine_runs_channels_last_as_the_loop_does(per_model: int) -> None:
    """Layout is a hint that one-channel tensors leave to the weights: the activations must still be
    channels-last (NCHW max-pooling is 10x slower on a CPU), one member per wide model included."""
    pop = GroupedPopulation(_models(), TrainConfig(), channels_last=True, members_per_model=per_model)
    seen = []
    for lo, hi in pop.chunks(torch.rand(B, 1, 8, 8)):
        bn = pop._chunk(lo, hi)[0].get_submodule("1.bn1")
        bn.register_forward_hook(lambda m, args, out: seen.append(out))
    pop.step(*_batches(1)[0], 0.1)
    assert len(seen) == len(pop.chunks(torch.rand(B, 1, 8, 8)))
    for out in seen:
        assert out.is_contiguous(memory_format=torch.channels_last) and not out.is_contiguous()


class _FunctionalDropoutNet(nn.Module):
    """relu -> max-pool, then a functional dropout that reads ``self.training`` (a trace would fix it)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.fc = nn.Linear(4 * 3 * 3, K)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv(x)), 2)
        return self.fc(F.dropout(x.flatten(1), 0.5, self.training))


def test_pool_before_relu_keeps_a_model_whose_code_reads_its_mode() -> None:
    from autodata.pba.grouped import pool_before_relu

    for training in (True, False):
        torch.manual_seed(0)
        net = _FunctionalDropoutNet().train(training)
        assert pool_before_relu(net) is net
        assert net.training is training
    # the grouped engine built from members in train mode evaluates without dropout
    torch.manual_seed(0)
    members = [_FunctionalDropoutNet() for _ in range(2)]
    pop = GroupedPopulation(members, TrainConfig(), channels_last=False, members_per_model=2)
    x = torch.rand(5, 1, 8, 8)
    want = torch.stack([m.eval()(x) for m in members])
    torch.testing.assert_close(pop.logits(x), want, atol=1e-5, rtol=1e-4)


def test_pool_before_relu_keeps_a_pool_with_padding_and_dilation() -> None:
    """With both, a window may lie wholly in the padding: max-pool gives -inf there, ReLU first 0."""
    from autodata.pba.grouped import pool_before_relu

    net = nn.Sequential(nn.ReLU(), nn.MaxPool2d(2, stride=1, padding=1, dilation=3))
    x = torch.randn(1, 1, 2, 2)
    assert torch.isinf(net(x)).all()  # the known answer: the only window is all padding
    assert pool_before_relu(net) is net
    for pool in (nn.MaxPool2d(2, padding=1), nn.MaxPool2d(2, dilation=2)):  # one of them alone: swapped, equal
        net = nn.Sequential(nn.ReLU(), pool)
        fast = pool_before_relu(net)
        assert fast is not net
        x = torch.randn(2, 1, 7, 7)
        torch.testing.assert_close(fast(x), net(x), atol=0, rtol=0)


def _relative_errors(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor]) -> dict[str, float]:
    return {n: float((got[n] - want[n]).norm() / want[n].norm()) for n in want}


@pytest.mark.parametrize("cls", [VmapPopulation, GroupedPopulation])
def test_bf16_engines_agree_with_the_bf16_loop(cls: type) -> None:
    """In bf16 every engine runs the members' forwards under autocast and keeps its state in float32.

    Tolerances: bfloat16 keeps 8 significant bits (a relative rounding of up to 2^-9, about
    0.2%), and the engines round at different points (vmap's convolutions sum in another order
    and its BatchNorm runs in float32), so an activation differs by one bfloat16 step here and
    there. The first step's gradients (the momentum after one step) then differ by at most 0.7%
    (vmap; grouped: equal on this CPU; 8 seeds), bounded here by 2%; the bf16 gradients differ from
    the fp32 ones by 8% to 14%, so the bound also shows that the forwards really ran in bf16. Later
    steps carry these differences on (SGD on random labels amplifies them), hence looser bounds
    there (measured: losses <= 2.6e-3, state <= 3.2e-2 over the same 8 seeds).
    """
    config = TrainConfig(nesterov=True, weight_decay=5e-4, momentum=0.9, precision="bf16")
    pop, loop, fp32 = cls(_models(), config), LoopPopulation(_models(), config), LoopPopulation(
        _models(), config.replace(precision="fp32"))
    dtypes: list[torch.dtype] = []
    forward_of = {VmapPopulation: lambda p: p._template, GroupedPopulation: lambda p: p.model}[cls]
    for model in (forward_of(pop), loop.models[0]):
        model.get_submodule("1.conv1").register_forward_hook(lambda m, args, out: dtypes.append(out.dtype))
    batches = _batches(3)
    x, y = batches[0]
    losses = [p.step(x, y, 0.1) for p in (pop, loop, fp32)]
    assert dtypes and set(dtypes) == {torch.bfloat16}
    torch.testing.assert_close(losses[0], losses[1], atol=2e-3, rtol=0)
    states = [p.state_dict() for p in (pop, loop, fp32)]
    assert max(_relative_errors(states[0]["momentum"], states[1]["momentum"]).values()) < 2e-2
    assert max(_relative_errors(states[2]["momentum"], states[1]["momentum"]).values()) > 2e-2  # bf16 is in effect
    clean = torch.rand(B, 1, 8, 8)
    logits = pop.logits(clean)
    assert logits.dtype == torch.float32
    torch.testing.assert_close(logits, loop.logits(clean), atol=2e-2, rtol=0)
    for x, y in batches[1:]:
        torch.testing.assert_close(pop.step(x, y, 0.05), loop.step(x, y, 0.05), atol=2e-2, rtol=0)
    a, b = pop.state_dict(), loop.state_dict()
    for group in ("params", "buffers", "momentum"):
        for name in a[group]:
            assert a[group][name].dtype == b[group][name].dtype
            assert a[group][name].dtype in (torch.float32, torch.int64)  # parameters and state stay float32
            torch.testing.assert_close(a[group][name].float(), b[group][name].float(), atol=5e-2, rtol=0)
    assert a["buffers"]["1.bn1.num_batches_tracked"].tolist() == [3] * N


def test_bf16_vmap_and_grouped_take_a_wide_resnet() -> None:
    """The GPU search's model in bf16: vmap and grouped take it (no fallback to the loop: under
    vmap, BatchNorm would refuse a bfloat16 input without the engine's casts), and each member's
    logits are those of its own model under autocast, up to a couple of bfloat16 steps (one step
    is 2^-6 at |logit| ~3)."""
    example = (torch.rand(2, 2, 3, 8, 8), torch.zeros(2, dtype=torch.long))
    torch.manual_seed(0)
    members = [create_model("wrn_40_2", in_channels=3, num_classes=K) for _ in range(2)]
    config = TrainConfig(precision="bf16")
    x = torch.rand(4, 3, 8, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        want = torch.stack([m.eval()(x).float() for m in members])
    for engine, cls in (("vmap", VmapPopulation), ("grouped", GroupedPopulation)):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no fallback warning
            pop = make_population(members, config, engine, example)
        assert isinstance(pop, cls)
        torch.testing.assert_close(pop.logits(x), want, atol=4e-2, rtol=0)


def test_an_unsupported_precision_is_refused() -> None:
    from autodata.pba.population import autocast_dtype

    assert autocast_dtype("bf16") is torch.bfloat16 and autocast_dtype("fp32") is None
    with pytest.raises(ValueError, match=r"precision must be one of \['fp32', 'bf16'\] for a population, but got 'fp16'"):
        autocast_dtype("fp16")
