"""Known-answer policy searches (``autodata.search.known_answer``): one per kind of op.

Each test trains on clean digits while the validation and test sets carry a shift that one op
reproduces, runs :func:`~autodata.search.search_augmentation` with its DEFAULT settings over the
full 15-op space (210 sub-policies, 300 steps, RELAX, meta lr 0.05), and asserts that the right
op is ranked first by expected application and that retraining with the saved policy (written
to a file and read back) beats no augmentation on the shifted test set. Seed 0 here; seeds 0, 1
and 2 are in BENCHMARKS.md ("Known-answer policy searches", ``experiments/known_answer.py``).
About 30 s each on one CPU thread.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from autodata.augment import OPS, PolicyAugment, load_policy, save_policy
from autodata.search import search_augmentation
from autodata.search.known_answer import KNOWN_ANSWER_TASKS, digits_splits, pretrained_model, retrained_accuracy


def _search_and_retrain(name: str, tmp_path: Path, seed: int = 0):
    task = KNOWN_ANSWER_TASKS[name]
    train, val, test = digits_splits(task, seed)
    result = search_augmentation(train, val, pretrained_model(train, seed), seed=seed)
    save_policy(result.policy, tmp_path / "searched.json")
    saved = load_policy(tmp_path / "searched.json")
    assert saved == result.policy
    none = retrained_accuracy(train, test, None, seed)
    searched = retrained_accuracy(train, test, PolicyAugment(saved, seed=seed), seed)
    return task, result, saved, none, searched


@pytest.mark.slow
def test_colour_invert_is_ranked_first_and_its_policy_helps(tmp_path: Path) -> None:
    """Validation and test images inverted (``1 - x``): Invert."""
    task, result, _, none, searched = _search_and_retrain("invert", tmp_path)
    assert result.ranking[0][0] == task.op, result.ranking[:3]
    assert searched > none + 0.2, (none, searched)


@pytest.mark.slow
def test_geometry_one_sided_rotate_is_ranked_first_with_its_sign(tmp_path: Path) -> None:
    """Validation and test images rotated by +20 degrees: Rotate, positive sign.

    The search must learn the sign, and the saved policy must keep it: a fair-coin Rotate
    would turn half of the training images away from the test images.
    """
    task, result, saved, none, searched = _search_and_retrain("rotate", tmp_path)
    assert result.ranking[0][0] == task.op, result.ranking[:3]
    rotates = [(w, op) for w, sub in zip(saved.stages[0].probabilities, saved.stages[0].sub_policies)
               for op in sub.ops if op.name == "Rotate"]
    assert rotates and OPS["Rotate"].signed
    mean_sign = sum(w * op.probability * op.sign_probability for w, op in rotates) / sum(
        w * op.probability for w, op in rotates)
    assert mean_sign > 0.5, mean_sign  # the saved Rotate turns the right way more often than not
    assert searched > none + 0.05, (none, searched)


@pytest.mark.slow
def test_intensity_solarize_is_ranked_first_and_its_policy_helps(tmp_path: Path) -> None:
    """Validation and test images solarized at half intensity (strokes dark, background black): Solarize.

    Not darkening (Brightness x0.3): BatchNorm in training mode makes that shift invisible to
    the validation loss that steers the search (see ``autodata.search.known_answer``).
    """
    task, result, _, none, searched = _search_and_retrain("solarize", tmp_path)
    assert result.ranking[0][0] == task.op, result.ranking[:3]
    assert searched > none + 0.05, (none, searched)
