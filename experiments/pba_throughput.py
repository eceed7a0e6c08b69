"""Population throughput: N members trained together (grouped, vmap) vs the same N one after another.

Every engine trains the same population on the same batches of PBA-augmented images (the
augmentation is timed separately: it is the same code for all; ``augment + train`` adds it,
applied in one call for the whole population, against the first engine with one call per
member, as members trained one after another would augment). The engines take turns,
``--rounds`` times, each turn ``--steps`` steps, in one process; the ratios are the median of
the per-round ratios to the loop (a busy machine slows all engines in a round alike). Prints
images/s of population training (forward, backward, SGD step; N x B images per step).

``--precision fp32,bf16`` runs every engine in each precision (``bf16``: the members' forwards
under ``torch.autocast``, see :mod:`autodata.pba.population`), all interleaved in the same
rounds; columns are then named ``engine@precision`` and a last line gives each engine's
bf16/fp32 speed ratio.

On a CPU the clock is, by default, the CPU time of the process's one thread
(``time.thread_time``, ``OMP_NUM_THREADS=1``): on a shared machine the wall clock also counts
the time the scheduler gives other processes, which is noise here; ``--clock wall`` uses it.

Usage (the figures in the PBA report; ``grouped:M``: at most M members per wide model):
    OMP_NUM_THREADS=1 python experiments/pba_throughput.py --population 8 --image-size 8 --channels 1 --batch-size 64 --steps 1 --rounds 41 --engines loop,grouped,grouped_one,vmap,loop_pool_first
    OMP_NUM_THREADS=1 python experiments/pba_throughput.py --population 8 --image-size 28 --channels 1 --batch-size 64 --steps 1 --rounds 11 --engines loop,grouped,grouped:2,grouped_one,loop_pool_first
    python experiments/pba_throughput.py --device cuda --model wrn_40_2 --population 16 --steps 20
    python experiments/pba_throughput.py --device cuda --model wrn_40_2 --population 16 --steps 10 --rounds 2 --engines loop,vmap --precision fp32,bf16
"""
from __future__ import annotations

import argparse
import functools
import statistics
import time

import torch

from autodata.models import create_model, with_normalization
from autodata.pba import PopulationAugment
from autodata.pba.grouped import pool_before_relu
from autodata.pba.population import ENGINE_CLASSES, GroupedPopulation, LoopPopulation, autocast_dtype
from autodata.schedules import PBAPolicy
from autodata.train import TrainConfig


def _loop_pool_first(models: list[torch.nn.Module], config: TrainConfig) -> LoopPopulation:
    """The loop on members rewritten as the grouped engine rewrites its wide models."""
    return LoopPopulation([pool_before_relu(m) for m in models], config)


def _loop_compiled(models: list[torch.nn.Module], config: TrainConfig) -> LoopPopulation:
    """The loop on ``torch.compile``d members (inductor; one graph serves all of one architecture)."""
    return LoopPopulation([torch.compile(m) for m in models], config)


class _GroupedCompiled(GroupedPopulation):
    """The grouped engine with each wide model ``torch.compile``d (inductor fuses the element-wise passes)."""

    def _chunk(self, lo: int, hi: int) -> tuple[torch.nn.Module, list[torch.Tensor]]:
        model, leaves = super()._chunk(lo, hi)
        compiled = self.__dict__.setdefault("_compiled", {})
        if (lo, hi) not in compiled:
            compiled[lo, hi] = torch.compile(model)
        return compiled[lo, hi], leaves


ENGINES = {
    **ENGINE_CLASSES,
    # the layout ablation: the engines as they ran before channels-last (NCHW throughout)
    "loop_nchw": functools.partial(LoopPopulation, channels_last=False),
    "grouped_nchw": functools.partial(GroupedPopulation, channels_last=False),
    # the grouped engine as it was before chunks and the pool-first rewrite: all members in one wide model
    "grouped_one": functools.partial(GroupedPopulation, members_per_model=1 << 30, pool_first=False),
    # what the pool-first rewrite alone gives the loop (not a population win)
    "loop_pool_first": _loop_pool_first,
    # is a compiler the lever on a CPU? (minutes of compilation before the first step)
    "loop_compiled": _loop_compiled,
    "grouped_compiled": _GroupedCompiled,
}
"""Engine name -> constructor ``(models, config)``; ``grouped:M`` is the grouped engine with at
most M members per wide model."""


def _engine(name: str):
    base, _, m = name.partition(":")
    if m:
        return functools.partial(ENGINES[base], members_per_model=int(m))
    return ENGINES[name]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="small_cnn")
    parser.add_argument("--population", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--channels", type=int, default=3)
    parser.add_argument("--steps", type=int, default=4, help="steps per engine per round")
    parser.add_argument("--rounds", type=int, default=3, help="turns of every engine, interleaved")
    parser.add_argument("--engines", default="loop,grouped,vmap",
                        help=f"the first is the reference; any of {list(ENGINES)}")
    parser.add_argument("--precision", default="fp32",
                        help="comma-separated precisions, each engine runs in each (fp32, bf16); the first is the reference")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--clock", choices=["auto", "thread", "wall"], default="auto",
                        help="auto: thread CPU time on a CPU, wall time elsewhere")
    args = parser.parse_args()
    torch.set_num_threads(1) if args.device == "cpu" else None
    device = torch.device(args.device)
    thread = args.clock == "thread" or (args.clock == "auto" and device.type == "cpu")
    clock = time.thread_time if thread else time.perf_counter
    n, b, c, s = args.population, args.batch_size, args.channels, args.image_size
    precisions = args.precision.split(",")
    for p in precisions:
        autocast_dtype(p)  # raises on a precision the population cannot run
    runs = [(e, p) for p in precisions for e in args.engines.split(",")]
    engines = [e if len(precisions) == 1 else f"{e}@{p}" for e, p in runs]  # column names; the first is the reference
    config = TrainConfig(model=args.model, device=args.device)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(b, c, s, s, generator=g).to(device)
    y = torch.randint(0, 10, (b,), generator=g).to(device)
    policies = [PBAPolicy(tuple(int(v) for v in torch.randint(0, 10, (60,), generator=g))) for _ in range(n)]
    augment = PopulationAugment(policies, (0.5,) * c, list(range(n)), device)  # one call for N x B images
    one_each = [PopulationAugment([p], (0.5,) * c, [i], device) for i, p in enumerate(policies)]  # N calls of B
    xs = augment(x)  # (N, B, C, H, W)
    augments = {"augment_population": lambda: augment(x), "augment_members": lambda: [a(x) for a in one_each]}

    def models() -> list[torch.nn.Module]:
        torch.manual_seed(0)
        return [with_normalization(create_model(args.model, in_channels=c, num_classes=10), (0.5,) * c, (0.25,) * c).to(device)
                for _ in range(n)]

    pops = {name: _engine(e)(models(), config.replace(precision=p)) for name, (e, p) in zip(engines, runs)}
    for pop in pops.values():
        pop.step(xs, y, 0.1)  # warm-up
    work = {**{name: functools.partial(pop.step, xs, y, 0.1) for name, pop in pops.items()}, **augments}
    seconds: dict[str, list[float]] = {name: [] for name in work}
    for _ in range(args.rounds):
        for name, run in work.items():
            _sync(device)
            start = clock()
            for _ in range(args.steps):
                run()
            _sync(device)
            seconds[name].append(clock() - start)
    images = n * b * args.steps
    ref = engines[0]

    def rate(name: str) -> str:
        return f"{images / statistics.median(seconds[name]):.0f}"

    def ratio(num: list[float], den: list[float]) -> str:  # median of the per-round ratios
        return f"{statistics.median(a / b for a, b in zip(num, den)):.2f}x"

    print(f"clock: {'thread CPU time' if thread else 'wall time'}; {args.rounds} rounds of {args.steps} steps per engine")
    print("training only (forward, backward, SGD step):")
    print(f"| model | device | N | B | image | {' | '.join(f'{e} img/s' for e in engines)} | "
          f"{' | '.join(f'{e}/{ref}' for e in engines[1:])} |")
    print("|" + "---|" * (5 + 2 * len(engines) - 1))
    print(f"| {args.model} | {args.device} | {n} | {b} | {c}x{s}x{s} | {' | '.join(rate(e) for e in engines)} | "
          f"{' | '.join(ratio(seconds[ref], seconds[e]) for e in engines[1:])} |")
    print("per-round ratios to " + ref + ": " + "; ".join(
        f"{e} " + " ".join(f"{a / b:.2f}" for a, b in zip(seconds[ref], seconds[e])) for e in engines[1:]))
    print("fastest rounds' ratio (min time / min time): " + ", ".join(
        f"{e}/{ref} {min(seconds[ref]) / min(seconds[e]):.2f}x" for e in engines[1:]))
    # augmentation + training: the population (one augmentation call for all members) against the
    # members one after another, each augmenting its own batch
    per_member = [r + a for r, a in zip(seconds[ref], seconds["augment_members"])]
    print(f"PBA augmentation img/s: one call for the population {rate('augment_population')}, one call per member "
          f"{rate('augment_members')}")
    print(f"augment + train, {ref} with one augmentation call per member = 1:")
    together = {e: [r + a for r, a in zip(seconds[e], seconds["augment_population"])] for e in engines}
    print(" | ".join(f"{e} + one call: {ratio(per_member, together[e])}" for e in engines))
    if len(precisions) > 1:
        base = precisions[0]
        print(f"speed in each precision / {base}, per engine (median of per-round ratios): " + ", ".join(
            f"{e}@{p} {ratio(seconds[f'{e}@{base}'], seconds[f'{e}@{p}'])}"
            for e in args.engines.split(",") for p in precisions[1:]))

if __name__ == "__main__":
    main()
