"""Gradient estimators for the discrete choices of a learned policy (which sub-policy, apply or
not, which sign).

The policy's discrete draw per sample is ``b = H(z)``: the sub-policy ``k = argmax(log pi + G)``
(Gumbel noise ``G``, Jang et al. 2017), each gate ``1[logit(p) + L > 0]`` and each sign
``1[logit(q) + L' > 0]`` (logistic noise ``L``). The quantity to minimise is
``E_b[F(b)]``, the validation loss after the look-ahead step. The bilevel engine hands each
sample's *reward*: the derivative of the validation loss with respect to that sample's loss
weight at 1, ``f_i = dF / d alpha_i``. To first order in the step size, dropping sample ``i``
changes ``F`` by ``-f_i``, so ``F(b) ~ F(b without i) + f_i(b_i)`` and the per-sample
score-function estimator ``sum_i f_i * d log p(b_i)`` is unbiased for ``dE[F]`` up to the
curvature of ``F`` along one sample's share of the step (second order in the step size).

Estimators (:data:`ESTIMATORS`):

* ``"reinforce"``: score function with a leave-one-out baseline (Williams 1992; Kool et al.
  2019): ``sum_i (f_i - mean_{j != i} f_j) * d log p(b_i)``; unbiased, no relaxation.
* ``"relax"``: RELAX (Grathwohl et al., ICLR 2018, eq. 7), as DADA (Li et al., ECCV 2020)
  uses: ``(f(b) - c(z~)) d log p(b) + d c(z) - d c(z~)`` with ``z~ ~ p(z | b)`` (the
  conditional noise of Tucker et al. 2017, App. B) and a learned control variate ``c``.
  DADA's ``c`` is a small network of the relaxed choices; here ``c`` is a table of the
  relaxed choices (:func:`table_control_variate`), one value per sub-policy and per gate and
  sign in it, scaled by the running spread of the rewards, learned by minimising the squared
  estimate as in RELAX. Unbiased whatever ``c`` is; the leave-one-out baseline is added to the
  score term.
* ``"straight_through"``: the relaxed gate and choice with the straight-through forward
  (the original DADA-style module); biased, kept for comparison.

Magnitudes are continuous: they keep their pathwise gradient through the ops in every case.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "ESTIMATORS",
    "Draw",
    "bernoulli_conditional",
    "categorical_conditional",
    "check_estimator",
    "leave_one_out",
    "relax_surrogate",
    "reinforce_surrogate",
    "table_control_variate",
]

ESTIMATORS: tuple[str, ...] = ("relax", "reinforce", "straight_through")
"""Names of the estimators of the discrete choices."""

_EPS = 1e-6


def check_estimator(name: object) -> str:
    """``name`` if it is one of :data:`ESTIMATORS`; a ValueError otherwise."""
    if not isinstance(name, str) or name not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {list(ESTIMATORS)}, but got {name!r}.")
    return name


def bernoulli_conditional(logits: Tensor, b: Tensor, v: Tensor) -> Tensor:
    """Logistic-perturbed logits ``z~ ~ p(z | H(z) = b)`` for ``z = logits + L``.

    With ``p = sigmoid(logits)``, ``u~ = v * (1 - p)`` when ``b = 0`` and
    ``1 - p + v * p`` when ``b = 1``; ``z~ = logits + logit(u~)``. Differentiable in ``logits``.

    Shape:
        - logits: broadcastable to ``b``; b (0/1 float), v (uniform), output: same shape.
    """
    p = torch.sigmoid(logits)
    u = torch.where(b > 0.5, 1 - p + v * p, v * (1 - p)).clamp(_EPS, 1 - _EPS)
    return logits + torch.log(u) - torch.log1p(-u)


def categorical_conditional(log_probs: Tensor, b: Tensor, v: Tensor) -> Tensor:
    """Gumbel-perturbed log-probabilities ``z~ ~ p(z | argmax z = b)`` for ``z = log pi + G``.

    The chosen entry is ``-log(-log v_b)``; the others ``-log(-log v_k / pi_k - log v_b)``
    (Tucker et al. 2017, App. B). Differentiable in ``log_probs``.

    Shape:
        - log_probs: :math:`(K,)` normalised; b: :math:`(B,)` long; v, output: :math:`(B, K)`.
    """
    v = v.clamp(_EPS, 1 - _EPS)
    v_b = v.gather(1, b.view(-1, 1))  # (B, 1)
    others = -torch.log(-torch.log(v) * torch.exp(-log_probs) - torch.log(v_b))  # (B, K)
    top = -torch.log(-torch.log(v_b))  # (B, 1)
    return others.scatter(1, b.view(-1, 1), top)


def leave_one_out(values: Tensor) -> Tensor:
    """``mean_{j != i} values_j`` for each ``i`` (zeros for a batch of one). Shape: :math:`(B,)`."""
    n = values.shape[0]
    if n < 2:
        return torch.zeros_like(values)
    return (values.sum() - values) / (n - 1)


def reinforce_surrogate(log_prob: Tensor, rewards: Tensor) -> Tensor:
    """A scalar whose gradient is ``sum_i (f_i - mean_{j != i} f_j) * d log p(b_i)``.

    Shape:
        - log_prob: :math:`(B,)` with its graph to the policy's logits; rewards: :math:`(B,)`.
    """
    rewards = rewards.detach()
    return ((rewards - leave_one_out(rewards)) * log_prob).sum()


def relax_surrogate(log_prob: Tensor, rewards: Tensor, c_z: Tensor, c_tilde: Tensor,
                    c_score: Tensor | None = None) -> Tensor:
    """A scalar whose gradient in the policy's logits is the RELAX estimate.

    ``sum_i (f_i - c(z~_i) - baseline_i) d log p(b_i) + d c(z_i) - d c(z~_i)``, with the
    leave-one-out mean of ``f - c(z~)`` as ``baseline_i`` (independent of ``b_i``).

    Args:
        log_prob: log-probability of each sample's draw, with its graph to the logits.
        rewards: per-sample rewards ``f(b_i)``.
        c_z: the control variate at ``z`` with its graph (logits and control variate).
        c_tilde: the control variate at ``z~`` with its graph.
        c_score: ``c(z~)`` for the score term, with a graph to the control variate's own
            parameters only (``z~`` detached), so that the estimate can be differentiated
            with respect to them (RELAX's variance objective); default ``c_tilde`` detached.

    Shape:
        - log_prob, rewards, c_z, c_tilde, c_score: :math:`(B,)`.
    """
    c_score = c_tilde.detach() if c_score is None else c_score
    advantage = rewards.detach() - c_score
    return ((advantage - leave_one_out(advantage)) * log_prob).sum() + (c_z - c_tilde).sum()


@dataclass(frozen=True)
class Draw:
    """The relaxed latent of one batch's discrete draw, for a control variate.

    Attributes:
        choice: :math:`(B, K)` ``softmax(z / temperature)`` of the sub-policy choice.
        gate: :math:`(B, K, J)` ``sigmoid(z / temperature)`` of the gates.
        sign: :math:`(B, K, J)` ``sigmoid(z / temperature)`` of the signs (0.5 where unsigned).
    """

    choice: Tensor
    gate: Tensor
    sign: Tensor


def table_control_variate(draw: Draw, table: Tensor, scale: Tensor | float) -> Tensor:
    """``c(z) = scale * sum_k choice_k (a_k + sum_j gate_kj (g_kj + sign_kj s_kj))``, per sample.

    A multilinear function of the relaxed draw with one learned value per sub-policy (``a``)
    and per gate (``g``) and sign (``s``) in it: at a hard draw it is the table's estimate of
    that draw's reward. Continuous in ``z``, as RELAX requires.

    Shape:
        - table: :math:`(K, 1 + 2J)`; output: :math:`(B,)`.
    """
    j = draw.gate.shape[-1]
    a, g, s = table[:, 0], table[:, 1 : 1 + j], table[:, 1 + j :]  # (K,), (K, J), (K, J)
    inner = a + (draw.gate * (g + draw.sign * s)).sum(-1)  # (B, K)
    return scale * (draw.choice * inner).sum(-1)


def relaxed(choice_z: Tensor, gate_z: Tensor, sign_z: Tensor, temperature: float) -> Draw:
    """The relaxed :class:`Draw` of the perturbed logits ``z``."""
    return Draw(F.softmax(choice_z / temperature, -1), torch.sigmoid(gate_z / temperature),
                torch.sigmoid(sign_z / temperature))


def squared_norm(grads: Sequence[Tensor]) -> Tensor:
    """``sum ||g||^2`` over a list of tensors: the variance objective of RELAX's control variate."""
    return sum((g**2).sum() for g in grads)
