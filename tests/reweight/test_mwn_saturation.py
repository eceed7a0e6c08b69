"""Meta-Weight-Net never sits silently in a saturated sigmoid (issue #9).

With mean-1 normalisation only the ratios of the sigmoid's outputs matter; a net whose outputs
are all near 1 gives uniform weights and no gradient, a state it cannot leave (``exact`` on
pair-flip Fashion-MNIST stalled there on 3 seeds of 13). A centred net (``center="on"``) feeds the
sigmoid its inputs minus their batch mean, which removes that state; the default
(``center="on_stall"``) is the released net until it gets there and centred from then on; the
released net (``center="off"``) is watched and reported when it gets there.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

from autodata import MetaLearner, MetaWeightNet

LOSSES = torch.linspace(0.05, 4.0, 64)  # (B,) a batch's losses, as early in training
TARGETS = torch.zeros(64, dtype=torch.long)


def _saturated(center: bool) -> MetaWeightNet:
    """An increasing w(l) pushed up into the sigmoid's flat top (seed 21's net after one epoch of ``exact``)."""
    torch.manual_seed(0)
    mwn = MetaWeightNet(hidden=16, center=center)
    with torch.no_grad():
        mwn.net[0].weight.fill_(1.0)
        mwn.net[0].bias.copy_(torch.linspace(-3.0, 1.0, 16))
        mwn.net[2].weight.fill_(0.2)
        if not center:
            mwn.net[2].bias.fill_(5.0)
    return mwn


def _learn_to_prefer_small_losses(mwn: MetaWeightNet, steps: int) -> torch.Tensor:
    """Adam (the benchmark's meta optimizer) on the meta loss ``mean(w * l)``: clean small-loss samples should win."""
    opt = torch.optim.Adam([p for p in mwn.parameters() if p.requires_grad], lr=1e-3, weight_decay=1e-4)
    for _ in range(steps):
        w, _ = mwn.step_weights(LOSSES, TARGETS)
        opt.zero_grad()
        (w * LOSSES).mean().backward()
        opt.step()
    with torch.no_grad():
        return mwn(LOSSES, TARGETS)


def test_the_released_net_saturated_gives_uniform_weights_and_no_gradient() -> None:
    mwn = _saturated(center=False)
    w, params = mwn.step_weights(LOSSES, TARGETS)
    assert float(w.std()) < 0.01  # uniform after normalisation (seed 21: s.d. 0.04 and falling)
    grads = torch.autograd.grad((w * LOSSES).mean(), params)
    centred = MetaWeightNet(hidden=16, center="on")
    centred.load_state_dict(mwn.state_dict())
    w_c, params_c = centred.step_weights(LOSSES, TARGETS)
    grads_c = torch.autograd.grad((w_c * LOSSES).mean(), params_c)
    norm = torch.cat([g.flatten() for g in grads]).norm()
    assert norm < 0.01 * torch.cat([g.flatten() for g in grads_c]).norm()  # the same net centred has 100x more
    after = _learn_to_prefer_small_losses(mwn, 300)
    assert float(after.std()) < 0.01  # 300 Adam steps later still uniform: the net cannot leave


def test_the_centred_net_learns_from_the_same_state() -> None:
    released = _saturated(center=False)
    mwn = MetaWeightNet(hidden=16, center="on")  # centred (what a stalled net switches to by default)
    mwn.load_state_dict(released.state_dict())
    before = mwn(LOSSES, TARGETS).detach()
    assert float(before.std()) > 0.05  # centred, the same parameters weigh the batch unevenly
    after = _learn_to_prefer_small_losses(mwn, 300)
    assert float(after[:8].mean()) > float(after[-8:].mean()) + 0.5  # turned: small losses now weigh more
    assert torch.corrcoef(torch.stack([after, LOSSES]))[0, 1] < -0.9


def test_centring_cancels_a_shift_of_the_sigmoid_input() -> None:
    mwn = _saturated(center=True)
    with torch.no_grad():
        mwn.net[0].bias.add_(3.0)  # every unit on over the batch
        w = mwn(LOSSES, TARGETS)
        mwn.net[0].bias.add_(10.0)  # z shifts by 0.2 * 16 * 10: the released net's outputs would all be ~1
    assert torch.allclose(mwn(LOSSES, TARGETS), w, atol=1e-5)
    assert not mwn.net[2].bias.requires_grad and float(mwn.net[2].bias) == 0.0
    assert float(w.mean()) == pytest.approx(1.0)


def _tiny_learner(mwn: MetaWeightNet) -> tuple[MetaLearner, nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    return MetaLearner(model, optimizer, reweighter=mwn, method="exact"), model, optimizer


def _train(learner: MetaLearner, optimizer: torch.optim.Optimizer, steps: int) -> None:
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(16, 5, generator=g), torch.randint(0, 3, (16,), generator=g)
    for _ in range(steps):
        loss = learner.step(x, y, x, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def test_a_stalled_net_is_reported_with_a_warning_and_in_step_info() -> None:
    mwn = MetaWeightNet(hidden=8, center=False, stall_patience=5)
    with torch.no_grad():
        mwn.net[2].bias.fill_(12.0)  # every output ~1 - 6e-6
    learner, _, optimizer = _tiny_learner(mwn)
    with pytest.warns(RuntimeWarning, match="saturated for 5 meta steps.*stopped learning.*center='on_stall'"):
        _train(learner, optimizer, 8)
    assert learner.last.stalled and mwn.saturated_steps == 8
    assert mwn.sensitivity < 1e-4


def test_a_learning_net_is_not_reported(recwarn: pytest.WarningsRecorder) -> None:
    learner, _, optimizer = _tiny_learner(MetaWeightNet(hidden=8, stall_patience=5))
    _train(learner, optimizer, 8)
    assert not learner.last.stalled and learner.reweighter.saturated_steps == 0
    assert not [w for w in recwarn if "stopped learning" in str(w.message)]


@pytest.mark.parametrize("kwargs, match", [
    (dict(center=True, normalize=False), "center must be 'off'"),
    (dict(center="on_stall", floor=0.5), "center must be 'off'"),
    (dict(stall_threshold=1.0), "stall_threshold must be"),
    (dict(stall_patience=0), "stall_patience must be"),
])
def test_bad_options_say_what_was_expected(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        MetaWeightNet(**kwargs)


def test_centring_on_a_stall_is_the_default_only_where_it_applies() -> None:
    assert MetaWeightNet().center_mode == "on_stall" and not MetaWeightNet().center  # the released net until a stall
    assert MetaWeightNet(normalize=False).center_mode == "off" and MetaWeightNet(floor=0.5).center_mode == "off"
    assert not MetaWeightNet(normalize=False).center and not MetaWeightNet(floor=0.5).center
    assert MetaWeightNet(normalize=False).net[2].bias.requires_grad


def test_on_stall_is_the_released_net_until_it_stalls_then_it_centres_and_learns() -> None:
    """``center="on_stall"``: step for step the released net while it learns; once saturated for ``stall_patience``
    meta steps it warns, centres from then on (the bias frozen) and its weights spread again."""
    def net(center: str) -> MetaWeightNet:
        mwn = MetaWeightNet(hidden=8, center=center, stall_patience=5)
        torch.manual_seed(0)
        mwn.net.apply(lambda m: m.reset_parameters() if isinstance(m, nn.Linear) else None)
        with torch.no_grad():
            mwn.net[2].bias.fill_(12.0)  # every output ~1: saturated from the first meta step
        return mwn

    released, on_stall = net("off"), net("on_stall")
    (learner_r, _, opt_r), (learner_s, _, opt_s) = _tiny_learner(released), _tiny_learner(on_stall)
    _train(learner_r, opt_r, 4)
    _train(learner_s, opt_s, 4)
    assert not on_stall.center and on_stall.saturated_steps == 4
    for a, b in zip(released.parameters(), on_stall.parameters()):
        assert torch.equal(a, b)  # the released net, bit for bit
    with pytest.warns(RuntimeWarning, match="saturated for 5 meta steps.*centres the sigmoid's input"):
        _train(learner_s, opt_s, 1)
    assert on_stall.center and not on_stall.net[2].bias.requires_grad and on_stall.saturated_steps == 0
    assert not learner_s.last.stalled  # it learns again: nothing to report
    with torch.no_grad():
        assert float(on_stall(LOSSES, TARGETS).std()) > 10 * float(released(LOSSES, TARGETS).std())


def test_the_switch_is_saved_with_the_net_and_old_states_load_as_the_released_net() -> None:
    switched = MetaWeightNet(hidden=8, center="on_stall")
    switched._start_centring()
    switched.stall_count.fill_(0)
    state = switched.state_dict()
    resumed = MetaWeightNet(hidden=8, center="on_stall")
    resumed.load_state_dict(state)
    assert resumed.center and not resumed.net[2].bias.requires_grad
    old = {k: v for k, v in MetaWeightNet(hidden=8, center="off").state_dict().items() if k not in ("centred", "stall_count")}
    fresh = MetaWeightNet(hidden=8, center="on_stall")
    fresh.load_state_dict(old)  # saved before the buffers existed
    assert not fresh.center and fresh.saturated_steps == 0 and fresh.net[2].bias.requires_grad
    fixed_on = MetaWeightNet(hidden=8, center="on")
    fixed_on.load_state_dict(MetaWeightNet(hidden=8, center="off").state_dict())
    assert fixed_on.center  # "on" and "off" are configuration, not state


def test_center_modes_are_checked() -> None:
    with pytest.raises(ValueError, match=r"center must be one of \['off', 'on', 'on_stall'\] \(or a bool, or None\), but got 'yes'"):
        MetaWeightNet(center="yes")


def test_a_data_parallel_net_decides_on_the_mean_over_the_ranks() -> None:
    """Given the learner's mean over the ranks, the stall watch reads it, not its own batch: here the other
    ranks are saturated (a mean of 0), so this rank switches with them although its own batch is not."""
    mwn = MetaWeightNet(hidden=8, stall_patience=3)
    mwn.data_parallel(lambda tensors: [torch.zeros_like(t) for t in tensors])
    with pytest.warns(RuntimeWarning, match="centres the sigmoid's input"):
        for _ in range(3):
            mwn.step_weights(LOSSES, TARGETS)
    assert mwn.center and mwn.sensitivity == 0.0  # the mean it was given, not its own batch's


def test_a_net_drifting_towards_the_flat_top_is_caught_before_it_gets_there() -> None:
    """The band the watch once missed (every-5 ``jvp-online``, pair-flip seed 1: 0.059-0.092 for four epochs with
    near-uniform weights): a released net with an increasing ``w(l)`` there keeps climbing into the sigmoid's flat
    top instead of turning. The default threshold counts it as stalled, and ``on_stall`` centres it, which turns."""
    def drifting(center: str) -> MetaWeightNet:
        mwn = MetaWeightNet(hidden=16, center=center, stall_patience=5)
        mwn.load_state_dict(_saturated(center=False).state_dict())
        with torch.no_grad():
            mwn.net[2].bias.fill_(0.0)  # in the band: every output near 1, but not yet flat
        return mwn

    released, on_stall = drifting("off"), drifting("on_stall")
    with torch.no_grad():
        w = released(LOSSES, TARGETS)
    released.step_weights(LOSSES, TARGETS)
    assert 0.05 < released.sensitivity < released.stall_threshold  # missed by the old threshold, 0.05
    assert torch.corrcoef(torch.stack([w, LOSSES]))[0, 1] > 0.5  # still trusting high losses
    after = _learn_to_prefer_small_losses(released, 300)
    assert float(after.std()) < 0.05 and float(after[:8].mean()) < float(after[-8:].mean())  # drifted flatter, never turned
    with pytest.warns(RuntimeWarning, match="centres the sigmoid's input"):
        after = _learn_to_prefer_small_losses(on_stall, 300)
    assert on_stall.center and torch.corrcoef(torch.stack([after, LOSSES]))[0, 1] < -0.9  # turned: small losses weigh more
