"""``TrainConfig.compile``: a run trains a ``torch.compile``d model and keeps the plain one."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from autodata import MetaLearner
from autodata.augment import DifferentiablePolicy
from autodata.train import TrainConfig, build_run

BASE = dict(dataset="digits", n_train=400, epochs=2, batch_size=64)


@pytest.mark.slow
def test_a_compiled_run_trains_as_the_eager_run_and_keeps_the_plain_model() -> None:
    eager = build_run(TrainConfig(**BASE))
    compiled = build_run(TrainConfig(**BASE, compile="default"))
    assert isinstance(compiled.learner.model, torch._dynamo.eval_frame.OptimizedModule)
    assert compiled.model is compiled.learner.model._orig_mod  # the run's model is the plain module
    for _ in range(2):
        a, b = eager.run_epoch(), compiled.run_epoch()
        # inductor fuses and reorders float32 arithmetic: equal up to rounding, not bit for bit
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-4)
    # checkpoints and evaluation see the plain module: the same keys as an eager run's
    assert list(compiled.state_dict()["model"]) == list(eager.state_dict()["model"])
    for (name, p), q in zip(eager.model.state_dict().items(), compiled.model.state_dict().values()):
        torch.testing.assert_close(q, p, rtol=1e-3, atol=1e-4, msg=name)
    assert compiled.evaluate()["accuracy"] == pytest.approx(eager.evaluate()["accuracy"], abs=1.0)


@pytest.mark.parametrize("learned", [dict(reweighter="mwn", meta_per_class=4), dict(augment="learned", meta_per_class=4)])
@pytest.mark.parametrize("method", ["exact", "last"])
def test_a_second_order_method_with_a_compiled_model_and_a_learned_part_is_accepted(learned: dict, method: str) -> None:
    """Their meta forwards run the plain module (tests/bilevel: they learn what the eager model learns)."""
    config = TrainConfig(**BASE, **learned, method=method, compile="reduce-overhead")
    assert (config.method, config.compile) == (method, "reduce-overhead")


@pytest.mark.slow
def test_a_compiled_run_with_a_second_order_method_meta_learns_as_the_eager_run() -> None:
    config = dict(BASE, reweighter="mwn", meta_per_class=4, method="exact", every=2)
    eager = build_run(TrainConfig(**config))
    compiled = build_run(TrainConfig(**config, compile="default"))
    for _ in range(2):
        a, b = eager.run_epoch(), compiled.run_epoch()
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-4)
    for p, q in zip(eager.learner.reweighter.parameters(), compiled.learner.reweighter.parameters()):
        torch.testing.assert_close(q, p, rtol=1e-3, atol=1e-5)
    assert any(not torch.equal(p, q) for p, q in zip(
        build_run(TrainConfig(**config)).learner.reweighter.parameters(), compiled.learner.reweighter.parameters()))


def test_compile_names_its_modes() -> None:
    with pytest.raises(ValueError, match=r"compile must be one of \['default', 'max-autotune', 'none', 'reduce-overhead'\]"):
        TrainConfig(**BASE, compile="fast")


def test_a_learner_checks_its_method_when_a_learned_part_arrives() -> None:
    """Nothing learned: any method is taken (it never runs); a learned augmentation assigned later is checked."""
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.LazyLinear(3))
    model(torch.zeros(1, 3, 8, 8))
    compiled = torch.compile(model)  # wrapping compiles nothing until the first call
    learner = MetaLearner(compiled, torch.optim.SGD(model.parameters(), lr=0.1), method="exact", accumulation_steps=2)
    with pytest.raises(ValueError, match=r"accumulation_steps > 1 needs a first-order method .* but got method='exact'"):
        learner.augment = DifferentiablePolicy(ops=("Invert", "Solarize"))
