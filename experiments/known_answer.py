"""Known-answer tasks for the policy search (``autodata.search.known_answer``): the validation
(and test) set is shifted by an op that the right policy applies, so the search must rank that
op first.

Tasks on scikit-learn's digits (8x8), training on clean images:
  invert:      validation/test images colour-inverted (1 - x)              -> Invert
  rotate:      validation/test images rotated by +20 degrees               -> Rotate (positive sign)
  solarize:    validation/test pixels above half intensity inverted        -> Solarize (magnitude 0.5)
  brightness:  validation/test images darkened (enhance factor 0.3)        -> Brightness (negative sign);
               invisible to a BatchNorm model's training-mode validation loss (a known failure)

For each task, estimator and seed: the right op's rank and expected application before/after,
the first logged step at which it ranks first, its learned sign and magnitude (averaged over its
slots, weighted by expected application), and the accuracy on the shifted test set of a model
retrained with no augmentation, TrivialAugment, the oracle (the right op alone, always, at its
magnitude and sign) and the saved (exported, written and read back) searched policy. One JSON
line per run. CPU, ~1 min per (task, estimator, seed) with one thread:

    OMP_NUM_THREADS=1 .venv/bin/python experiments/known_answer.py --tasks invert,rotate,solarize,brightness \
        --seeds 0,1,2

``--visibility`` instead asks whether the search can see each shift at all (seconds, no search):
the pretrained model's validation loss and accuracy on clean and shifted validation images with
BatchNorm in training mode (batch statistics: how the search's validation loss is computed) and
in eval mode (running statistics: how the test set is scored), and each op setting's one-step
reward at the start: the mean over training images of ``<grad L_val, grad l_i>`` (train mode),
for images augmented by that op (8 of each batch of 64, the rest clean, as in a search), minus
the same for clean images. The right op should lead that list.
"""
from __future__ import annotations

import argparse
import copy
import json
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from autodata.augment import AUTOAUGMENT_OPS, OPS, DifferentiablePolicy, PolicyAugment, load_policy, save_policy
from autodata.search import search_augmentation
from autodata.search.known_answer import (
    KNOWN_ANSWER_TASKS,
    KnownAnswerTask,
    digits_splits,
    pretrained_model,
    retrained_accuracy,
)


def task_of(spec: str) -> KnownAnswerTask:
    """A task by name, or ``Op:magnitude:sign`` for any other shift (e.g. ``Contrast:0.78:-1``)."""
    if spec in KNOWN_ANSWER_TASKS:
        return KNOWN_ANSWER_TASKS[spec]
    op, magnitude, sign = spec.split(":")
    return KnownAnswerTask(spec, op, float(magnitude), float(sign))


def _slot_mean(module: DifferentiablePolicy, name: str, values: torch.Tensor) -> float:
    """``values`` (K, J) of the op's slots, averaged with their expected application as weights."""
    share = module.expected_application().detach()
    mask = torch.tensor([[n == name for n in sub] for sub in module.sub_policies])
    return float((share * values * mask).sum() / (share * mask).sum())


def _saved_mean(policy, name: str, field: str) -> float | None:
    """The op's ``field`` in a saved one-stage policy, weighted by how often each of its entries applies."""
    stage = policy.stages[0]
    rows = [(w * op.probability, getattr(op, field)) for w, sub in zip(stage.probabilities, stage.sub_policies)
            for op in sub.ops if op.name == name]
    total = sum(a for a, _ in rows)
    return round(sum(a * v for a, v in rows) / total, 3) if total > 0 else None


def plain_cnn(seed: int) -> torch.nn.Module:
    """``small_cnn``'s layout without BatchNorm (biased convolutions): a model that sees a global intensity scale."""
    torch.manual_seed(seed)
    nn = torch.nn
    return nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 3, padding=1),
                         nn.ReLU(), nn.MaxPool2d(2), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))


SEARCH_MODELS = {"small_cnn": lambda seed: None, "plain_cnn": plain_cnn}
"""The model the search starts from (pretrained on the clean images); retraining always uses small_cnn."""


def run(task_name: str, estimator: str, ops: tuple[str, ...], steps: int, seed: int,
        search_model: str = "small_cnn", lr: float = 0.05) -> dict:
    task = task_of(task_name)
    train, val, test = digits_splits(task, seed)
    before = dict(DifferentiablePolicy(ops=ops).op_ranking())[task.op]
    start = time.perf_counter()
    model = pretrained_model(train, seed, model=SEARCH_MODELS[search_model](seed))
    result = search_augmentation(train, val, model, ops=ops, steps=steps, lr=lr,
                                 estimator=estimator, seed=seed, log_every=10)
    seconds = time.perf_counter() - start
    names = [n for n, _ in result.ranking]
    first = next((s for s, ranking in result.history if ranking[0][0] == task.op), None)
    module = result.module
    with tempfile.TemporaryDirectory() as tmp:  # the saved policy, as a user would retrain with it
        save_policy(result.policy, Path(tmp) / "searched.json")
        saved = load_policy(Path(tmp) / "searched.json")
    accuracy = {
        "none": retrained_accuracy(train, test, None, seed),
        "trivialaugment": retrained_accuracy(train, test, PolicyAugment(load_policy("trivialaugment"), seed=seed),
                                             seed),
        "oracle": retrained_accuracy(train, test, PolicyAugment(task.oracle(), seed=seed), seed),
        "searched": retrained_accuracy(train, test, PolicyAugment(saved, seed=seed), seed),
    }
    spec = OPS[task.op]
    return {
        "task": task_name, "estimator": estimator, "seed": seed, "search_model": search_model, "ops": len(ops),
        "lr": lr,
        "steps": steps, "answer": task.op,
        "rank": names.index(task.op) + 1, "expected_application_before": round(before, 4),
        "expected_application_after": round(dict(result.ranking)[task.op], 4), "first_step_ranked_first": first,
        "ranked_first_at_end_of_log": result.history[-1][1][0][0] == task.op,
        "sign_positive": round(_slot_mean(module, task.op, module.sign_probabilities().detach()), 3)
        if spec.signed else None,
        "right_sign_positive": task.sign > 0 if spec.signed else None,
        "magnitude": round(_slot_mean(module, task.op, module.magnitudes().detach()), 3)
        if spec.uses_magnitude else None,
        "right_magnitude": round(task.magnitude, 3) if spec.uses_magnitude else None,
        "saved_sign_positive": _saved_mean(saved, task.op, "sign_probability") if spec.signed else None,
        "saved_magnitude": _saved_mean(saved, task.op, "magnitude") if spec.uses_magnitude else None,
        "top3": [(n, round(v, 3)) for n, v in result.ranking[:3]], "search_seconds": round(seconds, 1),
        "accuracy": {k: round(v, 4) for k, v in accuracy.items()},
    }


def _flat_grad(model: torch.nn.Module, loss: torch.Tensor) -> torch.Tensor:
    model.zero_grad()
    loss.backward()
    return torch.cat([p.grad.flatten() for p in model.parameters()])


def visibility(task_name: str, seed: int) -> dict:
    """Whether the search can see the task's shift: losses by BatchNorm mode and one-step rewards per op."""
    task = task_of(task_name)
    train, val, _ = digits_splits(task, seed)
    clean_val = digits_splits(KnownAnswerTask("clean", "Identity", 0.0), seed)[1][0]  # the same images, unshifted
    model = pretrained_model(train, seed)
    out: dict = {"task": task_name, "seed": seed}
    with torch.no_grad():
        for mode in ("train", "eval"):
            for label, x in (("clean", clean_val), ("shifted", val[0])):
                probe = copy.deepcopy(model).train(mode == "train")  # a train-mode forward moves BN statistics
                logits = probe(x)
                out[f"{mode}_mode_{label}"] = {"loss": round(float(F.cross_entropy(logits, val[1])), 4),
                                               "acc": round(float((logits.argmax(1) == val[1]).float().mean()), 4)}
    model.train()
    g_val = _flat_grad(model, F.cross_entropy(model(val[0][:256]), val[1][:256]))
    x, y = train[0][:512], train[1][:512]
    gen = torch.Generator().manual_seed(seed)

    def reward(xa: torch.Tensor) -> float:  # mean <g_val, g_i> of the augmented 8 of each batch of 64
        total = 0.0
        for i in range(0, 512, 64):
            losses = F.cross_entropy(model(torch.cat([xa[i:i + 8], x[i + 8:i + 64]])), y[i:i + 64], reduction="none")
            total += float(g_val @ _flat_grad(model, losses[:8].mean())) / 8
        return total

    base = reward(x)
    rows = []
    for name in AUTOAUGMENT_OPS:
        spec = OPS[name]
        for m in (0.5, 0.78, 1.0) if spec.uses_magnitude else (0.0,):
            for sign in (-1.0, 1.0) if spec.signed else (1.0,):
                xa = spec(x, torch.full((512,), m), torch.full((512,), sign), torch.rand(512, 2, generator=gen))
                rows.append((round(reward(xa) - base, 4), name, m, sign))
    rows.sort(key=lambda r: -r[0])
    out["right_op_best_setting_rank"] = next(i for i, r in enumerate(rows) if r[1] == task.op) + 1
    out["right_op_rank_among_ops"] = list(dict.fromkeys(r[1] for r in rows)).index(task.op) + 1
    out["top5_rewards"] = rows[:5]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", default="invert,rotate,solarize,brightness",
                        help="comma list of task names or Op:magnitude:sign shifts (e.g. Contrast:0.78:-1)")
    parser.add_argument("--estimators", default="relax", help="comma list of relax, reinforce, straight_through")
    parser.add_argument("--ops", default="all", help="'all' (AutoAugment's 15) or a comma list")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--search-model", default="small_cnn", choices=sorted(SEARCH_MODELS),
                        help="the model the search starts from; plain_cnn has no BatchNorm")
    parser.add_argument("--lrs", default="0.05",
                        help="comma list of the search model's SGD learning rates (the look-ahead's step size)")
    parser.add_argument("--visibility", action="store_true", help="only check what the search can see (no search)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.visibility:
        for seed in (int(s) for s in args.seeds.split(",")):
            for task in args.tasks.split(","):
                print(json.dumps(visibility(task, seed)), flush=True)
        return
    ops = AUTOAUGMENT_OPS if args.ops == "all" else tuple(args.ops.split(","))
    for seed in (int(s) for s in args.seeds.split(",")):
        for task in args.tasks.split(","):
            for estimator in args.estimators.split(","):
                for lr in (float(v) for v in args.lrs.split(",")):
                    print(json.dumps(run(task, estimator, ops, args.steps, seed, args.search_model, lr)), flush=True)


if __name__ == "__main__":
    main()
