"""The grouped, vmap and loop engines agree; exploit copies weights, BatchNorm statistics and momentum."""
from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from autodata.models import create_model, with_normalization
from autodata.pba import GroupedPopulation, LoopPopulation, VmapPopulation, make_population
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
