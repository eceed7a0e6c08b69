"""Known-answer tasks for the policy search: the validation (and test) set is shifted by an op
that the right policy applies, so the search must rank that op first.

Tasks on scikit-learn's digits (8x8, embedded), training on clean images:
  invert:      validation/test images colour-inverted (1 - x)      -> Invert
  rotate:      validation/test images rotated by +20 degrees       -> Rotate (positive sign)
  brightness:  validation/test images darkened (enhance factor 0.3) -> Brightness

For each task and estimator: the right op's rank and expected application before/after, and the
accuracy on the shifted test set of a model retrained with the saved (exported) policy against no
augmentation. CPU, ~1 min per (task, estimator) at the default sizes:

    OMP_NUM_THREADS=1 .venv/bin/python experiments/known_answer.py --tasks invert,rotate,brightness \
        --estimators relax,reinforce,straight_through --ops all --steps 300
"""
from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F

from autodata.augment import AUTOAUGMENT_OPS, OPS, PolicyAugment
from autodata.data import load_dataset
from autodata.models import create_model
from autodata.search import search_augmentation

SHIFTS = {
    "invert": ("Invert", lambda x: OPS["Invert"](x, torch.zeros(x.shape[0]))),
    "rotate": ("Rotate", lambda x: OPS["Rotate"](x, torch.full((x.shape[0],), 20 / 30))),
    "brightness": ("Brightness", lambda x: OPS["Brightness"](x, torch.full((x.shape[0],), 0.7 / 0.9),
                                                            -torch.ones(x.shape[0]))),
}


def digits(seed: int = 0) -> tuple[tuple[torch.Tensor, torch.Tensor], ...]:
    """Train (1000), validation (437) from digits' training split; test = its test split."""
    tr, te = load_dataset("digits"), load_dataset("digits", train=False)
    x = torch.from_numpy(tr.images).float() / 255
    y = torch.from_numpy(tr.labels).long()
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    xt, yt = torch.from_numpy(te.images).float() / 255, torch.from_numpy(te.labels).long()
    return (x[order[:1000]], y[order[:1000]]), (x[order[1000:]], y[order[1000:]]), (xt, yt)


def pretrained(train, epochs: int = 5, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = create_model("small_cnn", in_channels=1, num_classes=10)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    x, y = train
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for idx in torch.randperm(len(y), generator=g).split(64):
            opt.zero_grad()
            F.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    return model


def retrain(train, test, augment=None, epochs: int = 15, seed: int = 0) -> float:
    torch.manual_seed(seed)
    model = create_model("small_cnn", in_channels=1, num_classes=10)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    x, y = train
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for idx in torch.randperm(len(y), generator=g).split(64):
            xb = x[idx] if augment is None else augment(x[idx])
            opt.zero_grad()
            F.cross_entropy(model(xb), y[idx]).backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        return float((model(test[0]).argmax(1) == test[1]).float().mean())


def run(task: str, estimator: str, ops: tuple[str, ...], steps: int, seed: int = 0) -> dict:
    answer, shift = SHIFTS[task]
    train, val, test = digits(seed)
    val, test = (shift(val[0]), val[1]), (shift(test[0]), test[1])
    start = time.perf_counter()
    result = search_augmentation(train, val, pretrained(train, seed=seed), ops=ops, steps=steps, batch_size=64,
                                 estimator=estimator, seed=seed, log_every=max(1, steps // 10))
    seconds = time.perf_counter() - start
    names = [n for n, _ in result.ranking]
    first = next((s for s, ranking in result.history if ranking[0][0] == answer), None)
    before = 2 * 0.5 / len(ops)  # J ops per sub-policy at probability 0.5, spread over the ops
    sign = result.module.sign_probabilities().detach()
    signed = [float(sign[k, j]) for k, sub in enumerate(result.module.sub_policies) for j, n in enumerate(sub)
              if n == answer and OPS[n].signed]
    return {
        "task": task, "estimator": estimator, "ops": len(ops), "steps": steps, "answer": answer,
        "rank": names.index(answer) + 1, "expected_application_before": round(before, 4),
        "expected_application_after": round(dict(result.ranking)[answer], 4), "steps_to_first": first,
        "sign_positive": round(sum(signed) / len(signed), 3) if signed else None,
        "top3": [(n, round(v, 3)) for n, v in result.ranking[:3]], "search_seconds": round(seconds, 1),
        "acc_none": retrain(train, test, None, seed=seed),
        "acc_searched": retrain(train, test, PolicyAugment(result.policy, seed=seed), seed=seed),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", default="invert,rotate,brightness")
    parser.add_argument("--estimators", default="relax,reinforce,straight_through")
    parser.add_argument("--ops", default="all", help="'all' (AutoAugment's 15) or a comma list")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    ops = AUTOAUGMENT_OPS if args.ops == "all" else tuple(args.ops.split(","))
    for task in args.tasks.split(","):
        for estimator in args.estimators.split(","):
            print(json.dumps(run(task, estimator, ops, args.steps, args.seed)), flush=True)


if __name__ == "__main__":
    main()
