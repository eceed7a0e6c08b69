"""Cost of a meta step against a plain step, side by side in one process.

Every mode trains the same model on the same batches; modes are interleaved round by round so
that the shared machine's noise hits them alike, and the report gives ratios to the plain step
of the same rounds. Modes:

* ``plain``: forward, backward, optimizer step (the user's loop without autodata);
* ``original``: the approach of the original Meta-Weight-Net code, as a reference: a copy of the
  model each step, autograd with ``create_graph``, a plain-SGD look-ahead on the copy, a
  validation forward, then a separate real forward and backward;
* ``jvp``, ``jvp-online``, ``exact``, ``fd``, ``last``, ``online``: :class:`autodata.MetaLearner`
  with that method (``jvp``, ``jvp-online`` and ``exact`` are exact, ``fd`` and ``online``
  approximate, ``last`` looks ahead on the classifier only);
* ``fd-1sided``, ``online-1sided``: ``fd`` and ``online`` with one-sided differences from the
  real forward's losses (``one_sided=True``);
* ``jvp-online-torch``, ``jvp-torch``: ``jvp-online`` and ``jvp`` with PyTorch's own
  forward-AD formulas in the replay and validation forward (``OnlineForwardMode(rules=False)``,
  ``ForwardMode(rules=False)``), the cost before :mod:`autodata.bilevel.jvp_rules`;
* ``jvp-online-recompute``: ``jvp-online`` whose replay convolves every layer again instead of
  taking the real forward's kept convolution outputs (``OnlineForwardMode(conv_share=0)``), and
  ``jvp-online-keepall``: it keeps them all (``conv_share=1``);
* ``jvp/k``, ``exact/k``, ``last/k`` (k from ``--every``), and ``<mode>/<k>`` for any of the
  learner's modes above and any k named in ``--only`` (``jvp-online/3``): the same with a meta
  update every k steps.

Every round times the same number of steps for every mode, a whole number of every-k periods of
each (``--steps`` is rounded up to a multiple of ``--every`` and of every k in ``--only``), after
a warm-up of one whole period of the mode plus one step (so that it holds a meta update, also for
the delayed methods, which apply it one step late): an every-k figure is the mean cost of a step
over its periods, meta step included.

Time: wall clock (``--clock wall``, the default) or the process's CPU time (``--clock cpu``,
``time.process_time``: with one thread it is the step's own compute, much less sensitive to
other jobs on a shared machine; CPU only).

Peak memory: on CUDA, ``torch.cuda.max_memory_allocated`` per mode; on the CPU, each mode runs
in a fresh subprocess: after the same warm-up and ``malloc_trim``, the kernel's peak-RSS mark
is reset (``/proc/self/clear_refs``) and the peak resident memory of one whole period (at least
three steps, a meta step included) above the level at the reset, plus the tensors a delayed
method keeps from one step to the next (in that level: its pending record), is reported (Linux only;
coarse, but the same yardstick for every mode; the allocator's retained heap makes it vary
between runs, so ``--memory-repeats`` takes the median of several subprocesses).

Usage:
    python experiments/bench_meta_cost.py --model small_cnn --batch-size 128 --steps 10 --rounds 5
    python experiments/bench_meta_cost.py --model resnet32 --batch-size 100 --steps 10 --rounds 3 \
        --only plain,original,jvp,jvp-online,exact,fd,online
    python experiments/bench_meta_cost.py --device cuda --model resnet32 --batch-size 100 --precision bf16   # autocast
    python experiments/bench_meta_cost.py --device cuda --model resnet32 --compile --only plain,online,exact

With ``--precision bf16`` or ``--compile``, a mode that raises while it is built or warmed up is
listed as ``refused`` with the error's first line (the first GPU session saw ``exact`` and
``last`` refuse a compiled model; every method takes one since); any error in the default fp32
eager setting is raised.
"""
from __future__ import annotations

import argparse
import copy
import ctypes
import gc
import json
import math
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.func import functional_call

from autodata import MetaLearner, MetaWeightNet
from autodata.bilevel import FiniteDifference, ForwardMode, HypergradientMethod, Online, OnlineForwardMode
from autodata.models import create_model, small_cnn


def _setup(args):
    torch.manual_seed(0)
    device = torch.device(args.device)
    if args.model == "small_cnn":
        model, shape = small_cnn(in_channels=1, num_classes=10), (1, 28, 28)
    else:
        model, shape = create_model(args.model, num_classes=10), (3, 32, 32)
    model = model.to(device)
    layout = torch.channels_last if args.channels_last else torch.contiguous_format
    model = model.to(memory_format=layout)
    if getattr(args, "compile", False):
        model = torch.compile(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch_size, *shape, generator=g).to(device)
    y = torch.randint(0, 10, (args.batch_size,), generator=g).to(device)
    xm = torch.randn(args.meta_batch_size, *shape, generator=g).to(device)
    ym = torch.randint(0, 10, (args.meta_batch_size,), generator=g).to(device)
    x, xm = x.contiguous(memory_format=layout), xm.contiguous(memory_format=layout)
    return model, optimizer, (x, y, xm, ym)


_PRECISION = {"fp32": None, "bf16": torch.bfloat16}
_DTYPE: list = [None]  # set from --precision in main(); every mode's forward runs under it


def _autocast(device: torch.device):
    """``torch.autocast`` in bf16 when ``--precision bf16``, else a no-op context."""
    return torch.autocast(device.type, dtype=_DTYPE[0] or torch.bfloat16, enabled=_DTYPE[0] is not None)


def _plain(model, optimizer, batch):
    x, y, _, _ = batch

    def step():
        with _autocast(x.device):
            loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return step


def _original(model, optimizer, batch):
    """The original MW-Net code's meta step: model copy, create_graph, plain-SGD look-ahead."""
    x, y, xm, ym = batch
    vnet = MetaWeightNet().to(x.device)
    vnet_opt = torch.optim.Adam(vnet.parameters(), 1e-3, weight_decay=1e-4)

    def step():
        meta_model = copy.deepcopy(model)  # the original rebuilds a MetaModule and loads the state
        params = dict(meta_model.named_parameters())
        with _autocast(x.device):
            cost = F.cross_entropy(meta_model(x), y, reduction="none")
            weights = vnet(cost.detach(), y)
            loss = (cost * weights).sum() / len(cost)
        grads = torch.autograd.grad(loss, list(params.values()), create_graph=True)
        lr = optimizer.param_groups[0]["lr"]
        new = {n: p - lr * g for (n, p), g in zip(params.items(), grads)}
        with _autocast(x.device):
            meta_loss = F.cross_entropy(functional_call(meta_model, new, (xm,)), ym)
        vnet_opt.zero_grad()
        meta_loss.backward()
        vnet_opt.step()
        with _autocast(x.device):
            cost = F.cross_entropy(model(x), y, reduction="none")
            with torch.no_grad():
                weights = vnet(cost, y)
            real = (cost * weights).sum() / len(cost)
        optimizer.zero_grad()
        real.backward()
        optimizer.step()

    return step


def _autodata(method: str | HypergradientMethod, every: int):
    def build(model, optimizer, batch):
        x, y, xm, ym = batch
        learner = MetaLearner(model, optimizer, reweighter=MetaWeightNet().to(x.device), method=method, every=every)

        def step():
            with _autocast(x.device):
                loss = learner.step(x, y, xm, ym)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

        step.learner = learner
        return step

    return build


_METHODS: dict[str, str | HypergradientMethod] = {
    "jvp": "jvp",
    "jvp-online": "jvp-online",
    "exact": "exact",
    "fd": "fd",
    "last": "last",
    "online": "online",
    "fd-1sided": FiniteDifference(one_sided=True),
    "online-1sided": Online(one_sided=True),
    "jvp-online-torch": OnlineForwardMode(rules=False),
    "jvp-online-recompute": OnlineForwardMode(conv_share=0),
    "jvp-online-keepall": OnlineForwardMode(conv_share=1.0),
    "jvp-torch": ForwardMode(rules=False),
}


def period(name: str) -> int:
    """The every-k period of a mode: ``k`` for ``<method>/<k>``, else 1."""
    return int(name.rsplit("/", 1)[1]) if "/" in name else 1


def modes(k: int, only: str | None = None) -> dict:
    """The modes by name; ``only`` may name ``<method>/<k>`` for any method and period."""
    table = {"plain": _plain, "original": _original}
    table.update({name: _autodata(method, 1) for name, method in _METHODS.items()})
    table.update({f"{name}/{k}": _autodata(_METHODS[name], k) for name in ("jvp", "exact", "last")})
    if only:
        wanted = ["plain", *(n for n in only.split(",") if n != "plain")]
        for name in wanted:
            base, _, every = name.partition("/")
            if name not in table and base in _METHODS and every.isdigit() and int(every) >= 1:
                table[name] = _autodata(_METHODS[base], int(every))
        unknown = [n for n in wanted if n not in table]
        if unknown:
            raise SystemExit(f"--only must name modes among {list(table)} or <method>/<k>, but got {unknown}")
        table = {n: table[n] for n in wanted}
    return table


def _period_steps(args) -> int:
    """Steps per round: ``--steps`` rounded up to whole periods of every timed mode."""
    whole = math.lcm(args.every, *(period(n) for n in modes(args.every, args.only)))
    return -(-args.steps // whole) * whole


def _warm_up_steps(name: str) -> int:
    """A whole every-k period plus one step, so the warm-up holds a meta update in every mode.

    The delayed methods (``online``, ``jvp-online``) apply a step's update at the next step: with
    only one period of warm-up their first meta update, which loads the forward-mode path once
    (about 13 MiB of resident memory, half of it library code, the same at batch 2 and 100),
    would fall in the measured steps and count as the method's peak memory.
    """
    return period(name) + 1


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


REFUSED: dict[str, str] = {}  # modes that failed under --compile or --precision, with the error


def time_modes(args) -> dict[str, list[float]]:
    table = modes(args.every, args.only)
    steps = _period_steps(args)
    runs = {}
    for name, build in table.items():
        model, optimizer, batch = _setup(args)
        try:
            runs[name] = build(model, optimizer, batch)
            for _ in range(_warm_up_steps(name)):
                runs[name]()
            if args.compile:
                print(f"  {name}: compiled and warmed up", file=sys.stderr, flush=True)
        except Exception as error:  # noqa: BLE001 - a method that refuses this setting is reported, not fatal
            if name == "plain" or not (args.compile or args.precision != "fp32"):
                raise
            REFUSED[name] = f"{type(error).__name__}: {str(error).splitlines()[0][:150]}"
            runs.pop(name, None)
    device = torch.device(args.device)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    per_step = {name: [] for name in runs}
    for _ in range(args.rounds):
        for name, step in runs.items():
            _sync(device)
            start = clock()
            for _ in range(steps):
                step()
            _sync(device)
            per_step[name].append((clock() - start) / steps)
    return per_step


def peak_memory(args, name: str) -> float:
    """Peak memory in MiB of a few steps of one mode, above the resident level after the warm-up."""
    device = torch.device(args.device)
    model, optimizer, batch = _setup(args)
    step = modes(args.every, args.only)[name](model, optimizer, batch)
    # a whole every-k period after the warm-up: the measured steps hold a meta step
    measured = max(3, period(name))
    for _ in range(_warm_up_steps(name)):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        for _ in range(measured):
            step()
        return (torch.cuda.max_memory_allocated(device) - base) / 2**20
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)  # give freed memory back, so RSS is what is live
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak-RSS mark (VmHWM)
    base = _status_kib("VmRSS")
    for _ in range(measured):
        step()
    return (_status_kib("VmHWM") - base) / 1024 + _pending_mib(step)


def _pending_mib(step) -> float:
    """MiB of the tensors a delayed method keeps from one step to the next (its pending record: the
    parameters, gradients and optimizer state before the real step, and the convolution outputs
    ``jvp-online`` keeps for its replay). They are in the resident level after the warm-up, from
    which the peak is read, so they are added here (at most one record is held at a time)."""
    online = getattr(getattr(step, "learner", None), "_online", None)
    pending = getattr(online, "pending", None)
    if pending is None:
        return 0.0
    seen: dict[int, int] = {}

    def add(value) -> None:
        if isinstance(value, torch.Tensor):
            seen[value.untyped_storage().data_ptr()] = value.untyped_storage().nbytes()
        elif isinstance(value, dict):
            for v in value.values():
                add(v)

    for part in (pending.params, pending.grads, pending.state):
        add(part or {})
    for forward in pending.forwards:
        for out, _ in (forward.convs.outputs.values() if forward.convs is not None else ()):
            add(out)
    return sum(seen.values()) / 2**20


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--meta-batch-size", type=int, default=100)
    parser.add_argument("--steps", type=int, default=10, help="steps per mode per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--every", type=int, default=10, help="k of the every-k modes")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model", default="small_cnn", help="small_cnn (1x28x28) or a create_model name (3x32x32)")
    parser.add_argument("--channels-last", action="store_true",
                        help="model and batches in channels-last for every mode (plain included)")
    parser.add_argument("--precision", choices=sorted(_PRECISION), default="fp32",
                        help="bf16: every mode's forwards (the learner's step included) under torch.autocast in bfloat16")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile the model for every mode; a mode whose method refuses a compiled model is "
                             "reported as refused")
    parser.add_argument("--only", default=None, help="comma-separated modes (plain is always timed)")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                        help="wall: time.perf_counter; cpu: the process's CPU time (time.process_time), steadier on "
                             "a shared machine with one thread")
    parser.add_argument("--memory-repeats", type=int, default=1,
                        help="CPU: fresh subprocesses per mode for the peak memory; the median is reported (and the range)")
    parser.add_argument("--memory-of", default=None, help=argparse.SUPPRESS)  # subprocess mode
    args = parser.parse_args()
    _DTYPE[0] = _PRECISION[args.precision]

    if args.memory_of:
        print(json.dumps(peak_memory(args, args.memory_of)))
        return

    per_step = time_modes(args)
    plain = per_step["plain"]
    mem, mem_range = {}, {}
    for name in per_step:
        if torch.device(args.device).type == "cuda":
            mem[name] = peak_memory(args, name)
            continue
        cmd = [sys.executable, __file__, *sys.argv[1:], "--memory-of", name]
        reads = [float(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
                 for _ in range(args.memory_repeats)]
        mem[name], mem_range[name] = statistics.median(reads), (min(reads), max(reads))
    print(f"{args.model}, batch {args.batch_size}, meta batch {args.meta_batch_size}, {args.device}, "
          f"{args.precision}{', compiled' if args.compile else ''}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{args.rounds} rounds x {_period_steps(args)} steps, {args.clock} clock")
    print(f"{'mode':<17} {'ms/step':>9} {'x plain':>8} {'peak MiB':>9} {'x plain':>8}  {'peak MiB range':>15}")
    for name, times in per_step.items():
        ratios = [t / p for t, p in zip(times, plain)]
        spread = f"{mem_range[name][0]:.1f}-{mem_range[name][1]:.1f}" if name in mem_range else ""
        print(
            f"{name:<17} {1000 * statistics.median(times):9.1f} {statistics.median(ratios):8.2f} "
            f"{mem[name]:9.1f} {mem[name] / max(mem['plain'], 1e-9):8.2f}  {spread:>15}"
        )
    for name, why in REFUSED.items():
        print(f"{name:<17} refused: {why}")


if __name__ == "__main__":
    main()
