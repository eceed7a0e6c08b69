"""The wrappers of a user's model (``autodata.bilevel.wrappers``): one walk, what each question reads off it.

Ground truth: the module objects themselves (which one is the plain module, which the DDP wrapper)
and, for :func:`plain_forward`, that calling it runs the plain module's own forward (a counter in
``forward``), never a compiled graph's.
"""
from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
from torch import nn

from autodata.bilevel.wrappers import find_ddp, is_compiled, layers, plain_forward, uncompiled, unwrap


class _Counting(nn.Linear):
    def __init__(self) -> None:
        super().__init__(3, 2)
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return super().forward(x)


@pytest.fixture(scope="module")
def group():
    if dist.is_initialized():
        pytest.skip("a process group is already initialized")
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def _compile(m: nn.Module) -> nn.Module:
    return torch.compile(m, backend="eager")


def test_a_plain_module_is_its_own_plain_forward() -> None:
    m = _Counting()
    assert layers(m) == [m] and unwrap(m) is m and not is_compiled(m)
    assert find_ddp(m) is None and plain_forward(m) is m


def test_a_compile_wrapper_is_walked_and_its_plain_forward_is_the_modules() -> None:
    m = _Counting()
    c = _compile(m)
    assert layers(c) == [c, m] and unwrap(c) is m and is_compiled(c) and find_ddp(c) is None
    assert plain_forward(c) is m


def test_a_module_compiled_in_place_runs_its_plain_call_in_plain_forward_and_uncompiled() -> None:
    m = _Counting()
    m.compile(backend="eager")
    assert layers(m) == [m] and unwrap(m) is m and is_compiled(m)
    x = torch.randn(4, 3)
    forward = plain_forward(m)
    assert forward is not m and forward.__func__ is nn.Module._call_impl  # the plain call, hooks included
    before = m.calls
    forward(x)
    assert m.calls == before + 1
    with uncompiled(m) as same:
        assert same is m and m._compiled_call_impl is None
    assert m._compiled_call_impl is not None  # back after the block


def test_data_parallel_wrappers_are_walked(group) -> None:
    m = _Counting()
    ddp = nn.parallel.DistributedDataParallel(m)
    assert layers(ddp) == [ddp, m] and unwrap(ddp) is m and not is_compiled(ddp)
    assert find_ddp(ddp) is ddp and plain_forward(ddp) is ddp  # DDP kept: it all-reduces the gradients
    dp = nn.DataParallel(m)
    assert layers(dp) == [dp, m] and unwrap(dp) is m and find_ddp(dp) is None and plain_forward(dp) is dp


def test_compile_over_ddp_keeps_ddp_in_the_plain_forward(group) -> None:
    m = _Counting()
    ddp = nn.parallel.DistributedDataParallel(m)
    c = _compile(ddp)
    assert layers(c) == [c, ddp, m] and unwrap(c) is m and is_compiled(c)
    assert find_ddp(c) is ddp and plain_forward(c) is ddp


def test_ddp_over_a_compiled_module_has_no_plain_forward(group) -> None:
    m = _Counting()
    c = _compile(m)
    ddp = nn.parallel.DistributedDataParallel(c)
    assert layers(ddp) == [ddp, c, m] and unwrap(ddp) is m and is_compiled(ddp)
    assert find_ddp(ddp) is ddp and plain_forward(ddp) is None
