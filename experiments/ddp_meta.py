"""Data-parallel meta-training under torchrun: ranks stay bit-identical and match one process.

Each rank trains a DistributedDataParallel copy of a small MLP on its half of every batch with
``MetaLearner(method=...)`` (a first-order method: DDP has no double backward); the learner
averages the look-ahead gradient, the validation gradient and the hypergradients over the ranks.
After the run rank 0 compares every rank's reweighter and model (bit-identical), then repeats
the run in one process on the concatenated batches and compares (float tolerance).

Usage (CPU, gloo):
    torchrun --nproc_per_node 2 experiments/ddp_meta.py --method jvp --steps 4
Prints one JSON line on rank 0 and exits non-zero when a check fails.
"""
from __future__ import annotations

import argparse
import json
import sys

import torch
import torch.distributed as dist
from torch import nn

from autodata import MetaLearner, MetaWeightNet


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 4)).double()


def _batches(steps: int, n: int):
    g = torch.Generator().manual_seed(1)
    for _ in range(steps):
        yield (torch.randn(n, 6, generator=g, dtype=torch.float64), torch.randint(0, 4, (n,), generator=g),
               torch.randn(n, 6, generator=g, dtype=torch.float64), torch.randint(0, 4, (n,), generator=g))


def train(method: str, steps: int, batch: int, rank: int, world: int, ddp: bool) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Train ``steps`` steps; each rank takes its slice of every batch of ``batch`` samples."""
    model = _model()
    net = nn.parallel.DistributedDataParallel(model) if ddp else model
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    torch.manual_seed(2)
    mwn = MetaWeightNet(hidden=8, normalize=False).double()  # per-batch normalisation would differ per rank
    learner = MetaLearner(net, optimizer, reweighter=mwn, method=method)
    for x, y, xm, ym in _batches(steps, batch):
        part = slice(rank * batch // world, (rank + 1) * batch // world)
        loss = learner.step(x[part], y[part], xm[part], ym[part])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    if learner.method.delayed:  # online: apply the hypergradient of the last real step
        learner.step(x[part], y[part], xm[part], ym[part])
    learner.close()
    return [p.detach() for p in mwn.parameters()], [p.detach() for p in model.parameters()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--method", default="jvp")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--batch", type=int, default=16)
    args = parser.parse_args()
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.set_num_threads(1)
    components, params = train(args.method, args.steps, args.batch, rank, world, ddp=True)
    flat = torch.cat([t.flatten() for t in components + params])
    gathered = [torch.empty_like(flat) for _ in range(world)]
    dist.all_gather(gathered, flat)
    ok = True
    if rank == 0:
        identical = all(torch.equal(gathered[0], g) for g in gathered[1:])
        single_components, single_params = train(args.method, args.steps, args.batch, 0, 1, ddp=False)
        single = torch.cat([t.flatten() for t in single_components + single_params])
        error = float((single - flat).abs().max() / single.abs().max())
        torch.manual_seed(2)
        start = torch.cat([p.detach().flatten() for p in MetaWeightNet(hidden=8, normalize=False).double().parameters()])
        moved = float((torch.cat([t.flatten() for t in single_components]) - start).abs().max())
        ok = identical and error < 1e-9 and moved > 0
        print(json.dumps({"method": args.method, "world": world, "ranks_bit_identical": identical,
                          "max_rel_error_vs_one_process": error, "components_moved": moved, "ok": ok}))
    status = torch.tensor([int(ok)])
    dist.broadcast(status, 0)
    sys.stdout.flush()
    dist.barrier()  # every rank is done communicating before gloo's threads are torn down
    dist.destroy_process_group()
    return 0 if int(status) else 1


if __name__ == "__main__":
    sys.exit(main())
