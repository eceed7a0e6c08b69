"""Finite-difference radius study: error of ``fd`` (float32) against the exact hypergradient (float64).

For each model and training state (after ``--states`` plain SGD steps on real data), one
Meta-Weight-Net meta step is taken from the same state by:

* the reference: ``jvp`` in float64 (a copy of the model, its optimizer state and the reweighter
  cast to float64). ``jvp`` is the exact hypergradient (it equals the double backward of
  ``exact`` to 1e-9 in float64, ``tests/bilevel/test_hypergrad.py``); with ``--check-exact``
  the double backward itself is also run, in float64 and in float32, and the differences
  printed (this separates a method's own error from float32 rounding of the whole meta step);
* ``jvp`` in float32 (the exact method's own rounding);
* ``fd`` in float32 for every radius in ``--radii``, central and one-sided (forward difference
  from the real forward's losses), all along the same direction ``u``.

Every method sees the same batch, validation batch, optimizer state and reweighter. The error
is ``||h - h_ref|| / ||h_ref||`` over all the reweighter's parameters. The ``online`` methods
compute the same quantity for the real step just taken, so their error is that of ``fd``.

Usage:
    python experiments/fd_radius.py --model small_cnn --states 0,50,200 --batches 2
    python experiments/fd_radius.py --model resnet32 --states 0,20 --batches 1
"""
from __future__ import annotations

import argparse
import copy
import json
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from autodata import MetaLearner, MetaWeightNet
from autodata._io import write_json_atomic
from autodata.bilevel.hypergrad import (
    HypergradientMethod,
    MetaProblem,
    central_difference,
    finite_difference,
    lookahead_direction,
)
from autodata.models import create_model, small_cnn

RADII = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1)


@dataclass(frozen=True)
class Sweep(HypergradientMethod):
    """Not a method to train with: every estimate along one direction ``u``, stored in ``out``."""

    name: ClassVar[str] = "sweep"
    radii: tuple[float, ...] = ()
    out: dict = None  # type: ignore[assignment]
    check_exact: bool = False
    grad_diff: bool = False

    def __call__(self, problem: MetaProblem) -> tuple[list[Tensor], Tensor]:
        own = list(problem.meta_params)
        if self.check_exact:  # the double backward, for --check-exact
            from autodata.bilevel import Exact

            self.out["exact"] = [g.detach() for g in Exact()(problem)[0]]
        names, u, meta_loss = lookahead_direction(problem)
        theta = {n: problem.params[n].detach() for n in names}
        directional = problem.train_jvp(theta, dict(zip(names, u)))
        self.out["jvp"] = [g.detach() for g in torch.autograd.grad(directional, own, retain_graph=True)]
        for radius in self.radii:
            for one_sided in (False, True):
                grads = finite_difference(problem, names, u, radius, one_sided)
                self.out[(radius, one_sided)] = [g.detach() for g in grads]
            if self.grad_diff:  # the earlier fd: the difference of the two summed gradients
                self.out[(radius, "grad")] = [g.detach() for g in central_difference(problem, names, u, own, radius)]
        return [torch.zeros_like(p) for p in own], meta_loss


def _data(model: str, n_train: int, seed: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    from autodata.data import load_cifar10, load_fashion_mnist

    load = load_fashion_mnist if model == "small_cnn" else load_cifar10
    train, test = load(train=True), load(train=False)
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(train.labels), generator=g)[:n_train]
    midx = torch.randperm(len(test.labels), generator=g)[:1000]

    def prep(images: Any, labels: Any, index: Tensor) -> tuple[Tensor, Tensor]:
        x = torch.as_tensor(images[index.numpy()]).float() / 255
        return (x - 0.5) / 0.25, torch.as_tensor(labels[index.numpy()]).long()

    return (*prep(train.images, train.labels, idx), *prep(test.images, test.labels, midx))


def _build(model_name: str) -> nn.Module:
    return small_cnn(in_channels=1, num_classes=10) if model_name == "small_cnn" else create_model(model_name, num_classes=10)


def _rel(got: Sequence[Tensor], ref: Sequence[Tensor]) -> float:
    num = torch.sqrt(sum(((a.double() - b.double()) ** 2).sum() for a, b in zip(got, ref)))
    den = torch.sqrt(sum((b.double() ** 2).sum() for b in ref))
    return float(num / den)


def _sweep(model, optimizer, mwn, batch, dtype, radii, exact=False, grad_diff=False) -> dict:
    """Run a Sweep from copies of (model, optimizer, mwn) cast to ``dtype``."""
    m = copy.deepcopy(model).to(dtype)
    opt = type(optimizer)(m.parameters(), **optimizer.defaults)
    opt.load_state_dict(optimizer.state_dict())  # casts the state to the parameters' dtype
    w = copy.deepcopy(mwn).to(dtype)
    out: dict = {}
    sweep = Sweep(radii=tuple(radii), out=out, check_exact=exact, grad_diff=grad_diff)
    learner = MetaLearner(m, opt, reweighter=w, method=sweep, guard=False)
    x, y, xm, ym = (t.to(dtype) if t.is_floating_point() else t for t in batch)
    learner.step(x, y, xm, ym)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="small_cnn", help="small_cnn (Fashion-MNIST) or a create_model name (CIFAR-10)")
    parser.add_argument("--states", default="0,50,200", help="plain SGD steps before each measurement")
    parser.add_argument("--batches", type=int, default=2, help="training batches measured per state")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--radii", default=",".join(map(str, RADII)))
    parser.add_argument("--check-exact", action="store_true", help="also run the float64 double backward")
    parser.add_argument("--grad-diff", action="store_true",
                        help="also the earlier central fd (difference of the summed gradients, not per sample)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="write the errors as JSON here")
    args = parser.parse_args()
    states = sorted(int(s) for s in args.states.split(","))
    radii = [float(r) for r in args.radii.split(",")]
    bs = args.batch_size

    torch.manual_seed(args.seed)
    x, y, xm, ym = _data(args.model, bs * (max(states) + args.batches + 1), args.seed)
    model = _build(args.model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    mwn = MetaWeightNet()
    rows: list[dict] = []
    done, start = 0, time.perf_counter()
    for state in states:
        while done < state:  # plain training up to this state
            sl = slice(bs * done, bs * (done + 1))
            optimizer.zero_grad()
            F.cross_entropy(model(x[sl]), y[sl]).backward()
            optimizer.step()
            done += 1
        for b in range(args.batches):
            sl = slice(bs * (state + b), bs * (state + b + 1))
            mi = torch.arange(bs * b, bs * (b + 1)) % len(ym)
            batch = (x[sl], y[sl], xm[mi], ym[mi])
            ref = _sweep(model, optimizer, mwn, batch, torch.float64, [], exact=args.check_exact)
            got = _sweep(model, optimizer, mwn, batch, torch.float32, radii, exact=args.check_exact,
                         grad_diff=args.grad_diff)
            row = {"state": state, "batch": b, "jvp32": _rel(got["jvp"], ref["jvp"]),
                   "norm": float(torch.sqrt(sum((g**2).sum() for g in ref["jvp"])))}
            if args.check_exact:
                row["jvp64_vs_exact64"] = _rel(ref["jvp"], ref["exact"])
                row["jvp32_vs_exact32"] = _rel(got["jvp"], got["exact"])
                row["exact32"] = _rel(got["exact"], ref["jvp"])
            for radius in radii:
                row[f"central {radius:g}"] = _rel(got[(radius, False)], ref["jvp"])
                row[f"one-sided {radius:g}"] = _rel(got[(radius, True)], ref["jvp"])
                # the method's own error: against float32 jvp, along the same float32 direction u
                row[f"central/32 {radius:g}"] = _rel(got[(radius, False)], got["jvp"])
                row[f"one-sided/32 {radius:g}"] = _rel(got[(radius, True)], got["jvp"])
                if args.grad_diff:
                    row[f"grad-diff {radius:g}"] = _rel(got[(radius, "grad")], ref["jvp"])
            rows.append(row)
            print(json.dumps(row), f"({time.perf_counter() - start:.0f} s)", flush=True)

    print(f"\n{args.model}, batch {bs}, meta batch {bs}, torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"relative error against float64 jvp, median [max] over {len(rows)} (state, batch) pairs, states {states}")
    kinds = ("central", "one-sided", *(("grad-diff",) if args.grad_diff else ()), "central/32", "one-sided/32")
    print("| radius | central fd | one-sided fd |" + (" central fd, earlier (gradient difference) |" if args.grad_diff else "")
          + " central fd vs float32 jvp | one-sided fd vs float32 jvp |")
    print("|---:|---:|---:|" + ("---:|" if args.grad_diff else "") + "---:|---:|")
    for radius in radii:
        cells = []
        for kind in kinds:
            errs = [r[f"{kind} {radius:g}"] for r in rows]
            cells.append(f"{statistics.median(errs):.1e} [{max(errs):.1e}]")
        print(f"| {radius:g} | " + " | ".join(cells) + " |")
    jvp = [r["jvp32"] for r in rows]
    print(f"| jvp (float32) | {statistics.median(jvp):.1e} [{max(jvp):.1e}] |" + " |" * (len(kinds) - 1))
    if args.check_exact:
        for key, what in (("exact32", "exact (float32) vs float64 jvp"), ("jvp64_vs_exact64", "float64 jvp vs float64 exact"),
                          ("jvp32_vs_exact32", "float32 jvp vs float32 exact")):
            errs = [r[key] for r in rows]
            print(f"{what}: median {statistics.median(errs):.1e}, max {max(errs):.1e}")
    if args.out:
        write_json_atomic(args.out, {"model": args.model, "radii": radii, "rows": rows})


if __name__ == "__main__":
    main()
