from __future__ import annotations

import json

import numpy as np
import pytest

from autodata.data import NoisyLabels, corrupt_labels, noise_transition_matrix

K = 10
CLEAN = np.tile(np.arange(K), 2000)  # 20,000 balanced labels


@pytest.mark.parametrize(
    ("kind", "keep_true", "expected"),
    [("symmetric", False, 0.4), ("symmetric", True, 0.4 * (K - 1) / K), ("pairflip", False, 0.4)],
)
def test_realised_rate(kind: str, keep_true: bool, expected: float) -> None:
    noisy = corrupt_labels(CLEAN, K, kind, 0.4, seed=1, keep_true=keep_true)
    assert abs(noisy.noise_rate - expected) < 0.015
    assert noisy.requested_rate == 0.4
    np.testing.assert_array_equal(noisy.flipped, np.flatnonzero(noisy.labels != CLEAN))
    np.testing.assert_array_equal(noisy.clean_labels, CLEAN)
    np.testing.assert_allclose(noisy.transition.sum(axis=1), 1.0)


def test_symmetric_keep_false_never_keeps_and_spreads_uniformly() -> None:
    noisy = corrupt_labels(CLEAN, K, "symmetric", 1.0, seed=0)
    assert noisy.noise_rate == 1.0
    counts = np.bincount(noisy.labels[CLEAN == 0], minlength=K)
    assert counts[0] == 0 and counts[1:].min() > 150  # 2000 / 9 ~ 222 each


def test_pairflip_goes_to_next_class() -> None:
    noisy = corrupt_labels(CLEAN, K, "pairflip", 0.3, seed=0)
    f = noisy.flipped
    np.testing.assert_array_equal(noisy.labels[f], (CLEAN[f] + 1) % K)
    assert abs(noisy.noise_rate - 0.3) < 0.015


def test_transition_matrix_is_honoured() -> None:
    rng = np.random.default_rng(0)
    t = rng.dirichlet(np.ones(4) * 2, size=4)
    clean = np.tile(np.arange(4), 5000)
    noisy = corrupt_labels(clean, 4, "transition", transition=t, seed=3)
    for c in range(4):
        freq = np.bincount(noisy.labels[clean == c], minlength=4) / 5000
        np.testing.assert_allclose(freq, t[c], atol=0.025)
    np.testing.assert_allclose(noisy.requested_rate, np.mean(1 - np.diag(t)), atol=1e-12)
    # zero-probability classes are never drawn
    t0 = np.array([[0.0, 1.0, 0.0], [0.0, 0.5, 0.5], [1.0, 0.0, 0.0]])
    out = corrupt_labels(np.tile(np.arange(3), 100), 3, "transition", transition=t0, seed=0)
    assert set(out.labels[np.tile(np.arange(3), 100) == 0]) == {1}
    assert set(out.labels[np.tile(np.arange(3), 100) == 1]) <= {1, 2}


def test_seeding() -> None:
    a = corrupt_labels(CLEAN, K, "symmetric", 0.5, seed=7)
    b = corrupt_labels(CLEAN, K, "symmetric", 0.5, seed=7)
    c = corrupt_labels(CLEAN, K, "symmetric", 0.5, seed=8)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert (a.labels != c.labels).any()
    assert corrupt_labels(CLEAN, K, "symmetric", 0.0, seed=0).noise_rate == 0.0


def test_record_round_trips_through_json(tmp_path) -> None:
    noisy = corrupt_labels(CLEAN[:100], K, "pairflip", 0.2, seed=4)
    d = json.loads(json.dumps(noisy.to_dict()))
    back = NoisyLabels.from_dict(d)
    np.testing.assert_array_equal(back.labels, noisy.labels)
    assert back.kind == "pairflip" and back.seed == 4 and back.noise_rate == noisy.noise_rate
    noisy.save(tmp_path / "noise.json")
    assert json.loads((tmp_path / "noise.json").read_text())["flipped"] == noisy.flipped.tolist()


def test_bad_input() -> None:
    for rate in (-0.1, 1.5):
        with pytest.raises(ValueError, match=r"rate must be in \[0, 1\]"):
            corrupt_labels(CLEAN, K, "symmetric", rate)
    with pytest.raises(ValueError, match="symmetric.*pairflip.*transition"):
        corrupt_labels(CLEAN, K, "asymmetric", 0.2)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 10\)"):
        corrupt_labels([0, 10], K, "symmetric", 0.2)
    with pytest.raises(ValueError, match=r"labels must lie"):
        corrupt_labels([-1, 0], K, "symmetric", 0.2)
    with pytest.raises(ValueError, match="rows must sum to 1"):
        corrupt_labels([0, 1], 2, "transition", transition=[[0.5, 0.4], [0.0, 1.0]])
    with pytest.raises(ValueError, match="non-negative"):
        corrupt_labels([0, 1], 2, "transition", transition=[[1.5, -0.5], [0.0, 1.0]])
    with pytest.raises(ValueError, match=r"shape \(2, 2\)"):
        corrupt_labels([0, 1], 2, "transition", transition=np.eye(3))
    with pytest.raises(ValueError, match="got None"):
        corrupt_labels([0, 1], 2, "transition")
    with pytest.raises(ValueError, match="must be one of"):
        noise_transition_matrix("transition", 0.1, 3)
