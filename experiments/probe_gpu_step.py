"""Where a ResNet-32 training step's time goes on a GPU: the host's kernel launches or the GPU.

Two parts (the figures of BENCHMARKS.md "ResNet-32 training epoch on a GPU"):

* ``--part layout``: ms per step (batch 128, SGD Nesterov) for cuDNN benchmark on/off,
  NCHW/channels-last and fp32/bf16 autocast, with the host-side time to issue one step (no
  synchronisation); then a profile of five steps (GPU time vs host time per operator).
* ``--part compile``: eager vs fused SGD vs ``torch.compile`` modes (``default``,
  ``reduce-overhead`` = CUDA graphs, ``max-autotune-no-cudagraphs``), bf16 + channels-last.

The first session's logs (``experiments/results/gpu_h100_2026-11-27/step_probe_layout.txt``, with
the profiler's tables, and ``step_probe_compile.txt``) came from an inline version of this script
with the same measurements; their lines carry fewer fields than this script prints.

Usage (on the GPU machine):
    python experiments/probe_gpu_step.py --part layout
    python experiments/probe_gpu_step.py --part compile
"""
from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from autodata.models import create_model


def _step_fn(model, optimizer, x, y, bf16: bool):
    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def bench(*, benchmark: bool = True, channels_last: bool = True, bf16: bool = True, batch: int = 128,
          mode: str | None = None, fused: bool = False, steps: int = 50) -> Callable[[], None]:
    """Time ``steps`` training steps of ResNet-32 after 10 warm-up steps and print one line; return the step."""
    dev = torch.device("cuda")
    torch.backends.cudnn.benchmark = benchmark
    torch.manual_seed(0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = create_model("resnet32", num_classes=10).to(dev).to(memory_format=fmt)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4,
                                fused=fused or None)
    run = model if mode is None else torch.compile(model, mode=mode)
    x = torch.randn(batch, 3, 32, 32, device=dev).contiguous(memory_format=fmt)
    y = torch.randint(0, 10, (batch,), device=dev)
    step = _step_fn(run, optimizer, x, y, bf16)
    start = time.perf_counter()
    for _ in range(10):
        step()
    torch.cuda.synchronize()
    warm = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(steps):
        step()
    torch.cuda.synchronize()
    per_step = (time.perf_counter() - start) / steps
    start = time.perf_counter()
    step()
    issue = time.perf_counter() - start  # host time to issue one step's kernels, no synchronisation
    torch.cuda.synchronize()
    print(f"benchmark={benchmark} cl={channels_last} bf16={bf16} bs={batch} mode={mode} fused={fused}: "
          f"{1000 * per_step:.2f} ms/step ({batch / per_step:,.0f} img/s), host-side issue {1000 * issue:.2f} ms, "
          f"warm-up {warm:.1f}s", flush=True)
    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=["layout", "compile"], default="layout")
    args = parser.parse_args()
    print(torch.__version__, torch.cuda.get_device_name(), flush=True)
    if args.part == "layout":
        for benchmark in (False, True):
            for channels_last in (False, True):
                for bf16 in (False, True):
                    bench(benchmark=benchmark, channels_last=channels_last, bf16=bf16)
        bench(batch=512)
        step = bench()
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            for _ in range(5):
                step()
            torch.cuda.synchronize()
        print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=15), flush=True)
        return
    for mode, fused in [(None, False), (None, True), ("default", True), ("reduce-overhead", True),
                        ("max-autotune-no-cudagraphs", True)]:
        try:
            bench(mode=mode, fused=fused)
        except Exception as error:  # noqa: BLE001 - a mode that fails here is reported, the others still run
            print(f"mode={mode} fused={fused}: failed, {type(error).__name__}: {str(error)[:200]}", flush=True)


if __name__ == "__main__":
    main()
