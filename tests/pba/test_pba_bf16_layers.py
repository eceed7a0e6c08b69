"""The vmap engine's explicit casts in bf16 (``VMAP_AUTOCAST_LAYERS``): each layer computes in the
dtype autocast gives it outside vmap, in the training step and in the evaluation alike, and fp32
leaves the layers untouched."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from autodata.pba import LoopPopulation, VmapPopulation
from autodata.train import TrainConfig

N, B, K = 2, 8, 5
LAYERS = (nn.Conv2d, nn.BatchNorm2d, nn.Linear)


def _models() -> list[nn.Module]:
    torch.manual_seed(0)
    return [nn.Sequential(nn.Conv2d(1, 4, 3, bias=True), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 4, 3, bias=False),
                          nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, K))
            for _ in range(N)]


def _record(model: nn.Module, seen: dict[str, list[torch.dtype]]) -> None:
    for name, module in model.named_modules():
        if isinstance(module, LAYERS):
            module.register_forward_hook(lambda m, args, out, name=name: seen.setdefault(name, []).append(out.dtype))


def test_bf16_vmap_layers_compute_in_the_dtypes_autocast_gives_them_outside_vmap() -> None:
    """Under plain vmap (the evaluation) a convolution is not autocast and a linear layer with a bias
    returns float32: without the casts the evaluation ran those layers in float32 unseen by the
    engines' agreement tests (its logits stay within their tolerance)."""
    config = TrainConfig(precision="bf16")
    vmap, loop = VmapPopulation(_models(), config), LoopPopulation(_models(), config, channels_last=False)
    g = torch.Generator().manual_seed(1)
    x, y, clean = torch.rand(N, B, 1, 8, 8, generator=g), torch.randint(0, K, (B,), generator=g), torch.rand(B, 1, 8, 8, generator=g)
    for phase, run in (("train", lambda p: p.step(x, y, 0.1)), ("eval", lambda p: p.logits(clean))):
        got: dict[str, list[torch.dtype]] = {}
        want: dict[str, list[torch.dtype]] = {}
        _record(vmap._template, got)
        _record(loop.models[0], want)
        run(vmap)
        run(loop)
        want = {n: d[:1] for n, d in want.items()}  # the loop calls each layer once per member: member 0's
        assert got == want, phase
        assert set(sum(got.values(), [])) == {torch.bfloat16}, phase  # every one of these layers returns bfloat16
        for model in (vmap._template, loop.models[0]):
            for module in model.modules():
                module._forward_hooks.clear()
    assert vmap.logits(clean).dtype == torch.float32


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_the_casts_are_given_in_bf16_only(precision: str) -> None:
    pop = VmapPopulation(_models(), TrainConfig(precision=precision))
    patched = [type(m).__name__ for m in pop._template.modules() if "forward" in vars(m)]
    assert patched == ([] if precision == "fp32" else ["Conv2d", "BatchNorm2d", "Conv2d", "BatchNorm2d", "Linear"])
