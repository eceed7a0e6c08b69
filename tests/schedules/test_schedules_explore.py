"""PBA's explore and exploit: ranges, probabilities (fixed seeds, generous bounds), clipping."""
from __future__ import annotations

import pytest
import torch

from autodata.schedules import PBAPolicy, exploit, explore, quantile_size


def _population(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    limits = torch.tensor([10, 9] * 30)
    return (torch.rand(n, 60, generator=g) * (limits + 1)).floor().long()


def test_explore_is_deterministic_and_in_range() -> None:
    x = _population(2000, 0)
    a = explore(x, torch.Generator().manual_seed(1))
    b = explore(x, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and a.shape == x.shape and a.dtype == x.dtype
    assert int(a[:, 0::2].min()) == 0 and int(a[:, 0::2].max()) == 10
    assert int(a[:, 1::2].min()) == 0 and int(a[:, 1::2].max()) == 9
    assert not torch.equal(a, explore(x, torch.Generator().manual_seed(2)))


def test_explore_moves_at_most_three_levels_unless_resampled() -> None:
    x = torch.full((20_000, 60), 5)
    y = explore(x, torch.Generator().manual_seed(0))
    step = (y - x).abs()
    # a move is 0..3 levels; a resample from 5 lands 4+ away on {0, 1, 9, 10} (p: 4/11) or {0, 1, 9} (m: 3/10)
    far = (step > 3).double().mean()
    expected_far = 0.2 * (4 / 11 + 3 / 10) / 2
    assert abs(float(far) - expected_far) < 0.01
    # P(unchanged) = 0.8 * 1/4 + 0.2 * 1/11 (p) or 0.2 * 1/10 (m)
    same_p = float((y[:, 0::2] == 5).double().mean())
    same_m = float((y[:, 1::2] == 5).double().mean())
    assert abs(same_p - (0.2 + 0.2 / 11)) < 0.01 and abs(same_m - (0.2 + 0.2 / 10)) < 0.01
    # each step 1, 2, 3 with probability 0.8 * 1/4 (both signs together) plus the resample's share
    for k in (1, 2, 3):
        share = float((step[:, 1::2] == k).double().mean())
        assert abs(share - (0.2 + 0.2 * 2 / 10)) < 0.012


def test_explore_clips_at_both_ends() -> None:
    g = torch.Generator().manual_seed(0)
    low = explore(torch.zeros(10_000, 60, dtype=torch.long), g)
    high = explore(torch.tensor([10, 9] * 30).repeat(10_000, 1), g)
    # at 0, "down" clips to 0: P(0) = 0.8 * (1/2 + 1/2 * 1/4) + 0.2 * 1/11 for a probability level
    p0 = float((low[:, 0::2] == 0).double().mean())
    assert abs(p0 - (0.8 * 0.625 + 0.2 / 11)) < 0.015
    top = float((high[:, 1::2] == 9).double().mean())
    assert abs(top - (0.8 * 0.625 + 0.2 / 10)) < 0.015
    assert int(high[:, 0::2].max()) == 10 and int(high[:, 1::2].max()) == 9


def test_explore_policy_and_errors() -> None:
    new = explore(PBAPolicy((10, 9) * 30), torch.Generator().manual_seed(0))
    assert isinstance(new, PBAPolicy)
    g = torch.Generator()
    with pytest.raises(ValueError, match=r"must lie in \[0, 10\] at even and \[0, 9\] at odd positions"):
        explore(torch.tensor([0, 10]), g)
    with pytest.raises(ValueError, match="must have an even last dimension"):
        explore(torch.zeros(3, dtype=torch.long), g)
    with pytest.raises(ValueError, match="must be an integer tensor"):
        explore(torch.zeros(2), g)
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        explore(torch.zeros(2, dtype=torch.long), None)  # type: ignore[arg-type]


def test_exploit_bottom_copies_top() -> None:
    scores = torch.arange(16.0).flip(0)  # member 0 best, member 15 worst
    src = exploit(scores, 0.25, torch.Generator().manual_seed(0))
    assert torch.equal(src[:12], torch.full((12,), -1))
    assert set(src[12:].tolist()) <= {0, 1, 2, 3}
    assert torch.equal(src, exploit(scores, 0.25, torch.Generator().manual_seed(0)))


def test_exploit_draws_top_members_uniformly() -> None:
    g = torch.Generator().manual_seed(0)
    scores = torch.tensor([0.1, 0.9, 0.8, 0.2, 0.5, 0.6, 0.7, 0.3])  # bottom: 0, 3; top: 1, 2
    picks = torch.stack([exploit(scores, 0.25, g) for _ in range(4000)])  # (4000, 8)
    assert bool((picks[:, [1, 2, 4, 5, 6, 7]] == -1).all())
    chosen = picks[:, [0, 3]].flatten()
    assert set(chosen.tolist()) == {1, 2}
    assert abs(float((chosen == 1).double().mean()) - 0.5) < 0.03


def test_quantile_sizes_and_errors() -> None:
    assert [quantile_size(n, 0.25) for n in (0, 1, 2, 3, 4, 5, 16)] == [0, 0, 1, 1, 1, 2, 4]
    assert quantile_size(3, 0.5) == 1  # at most half
    g = torch.Generator()
    assert exploit(torch.tensor([1.0]), 0.25, g).tolist() == [-1]
    with pytest.raises(ValueError, match=r"fraction must be a number in \(0, 0.5\], but got 0.6"):
        exploit(torch.zeros(4), 0.6, g)
    with pytest.raises(ValueError, match="scores must not contain NaN"):
        exploit(torch.tensor([0.0, float("nan")]), 0.25, g)
    with pytest.raises(ValueError, match=r"scores must be a 1-D tensor \(N,\), but got \(2, 2\)"):
        exploit(torch.zeros(2, 2), 0.25, g)
    with pytest.raises(TypeError, match="generator must be a torch.Generator, but got None"):
        exploit(torch.zeros(4))
