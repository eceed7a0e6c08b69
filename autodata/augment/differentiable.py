"""DADA's differentiable augmentation search space (Li et al. 2020, "DADA: Differentiable
Automatic Data Augmentation", eqs. 3-6).

K sub-policies of J ops each (J = 2 by default). Per sample, a Gumbel-softmax over learnable
logits picks one sub-policy (eq. 3, straight-through one-hot when ``hard``); each of its ops
is gated by a relaxed Bernoulli with a learnable probability (eq. 5),
``x <- x + g * (op(x, m) - x)``, with a learnable magnitude ``m = sigmoid(theta)``
(eq. 6). The output is the chosen sub-policy's result scaled by its (straight-through)
weight, so gradients reach every weight logit, and the gate and magnitude of every
sub-policy that some sample picked. Samples are grouped by op within each slot (not by
sub-policy), so a batch costs about J * (number of ops) batched calls however large K is.
With ``hard=False`` every sample runs every sub-policy and sums them by the soft weights
(K times the compute; for tests and small K).

Gradients with respect to magnitudes are exact or straight-through depending on the op
(see :mod:`autodata.augment.ops`). Ops without a magnitude (AutoContrast, Equalize,
Invert, ...) get no magnitude parameter; they learn through probability and weight.
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from autodata.augment._base import BaseAugment
from autodata.augment._checks import check_generator, check_images, check_per_sample
from autodata.augment._grouped import apply_grouped
from autodata.augment.apply import _new_generator
from autodata.augment.ops import AUTOAUGMENT_OPS, OPS, get_op
from autodata.augment.policy import OpConfig, Policy, SubPolicy
from autodata.augment.relax import gumbel_noise, gumbel_softmax, logistic_noise, relaxed_bernoulli

_EPS = 1e-4


def _logit(p: float) -> float:
    p = min(max(p, _EPS), 1.0 - _EPS)
    return math.log(p / (1.0 - p))


@dataclass(frozen=True)
class DifferentiableParams:
    """The noise of one :meth:`DifferentiablePolicy.sample`; the choices follow from it
    and the current learnable parameters.

    Shape:
        - gumbel: :math:`(B, K)` standard Gumbel noise of the sub-policy choice.
        - gate_noise: :math:`(B, K, J)` standard logistic noise of the gates.
        - sign: :math:`(B, K, J)` float, ``-1.0`` or ``+1.0``.
        - position: :math:`(B, K, J, 2)` float in ``[0, 1]``.
    """

    gumbel: Tensor
    gate_noise: Tensor
    sign: Tensor
    position: Tensor

    @property
    def batch_size(self) -> int:
        """B."""
        return self.gumbel.shape[0]

    def to(self, device: torch.device | str) -> DifferentiableParams:
        """A copy with every tensor on ``device``."""
        return DifferentiableParams(*(getattr(self, f).to(device) for f in self.__dataclass_fields__))


def all_pairs(ops: Sequence[str] = AUTOAUGMENT_OPS) -> tuple[tuple[str, str], ...]:
    """All ordered pairs of distinct ops: 15 * 14 = 210 sub-policies for AutoAugment's 15 ops."""
    return tuple(itertools.permutations(ops, 2))


class DifferentiablePolicy(BaseAugment):
    """A learnable augmentation policy (DADA search space).

    As ``augment=`` of :class:`autodata.MetaLearner` its parameters are learned on the clean
    validation set; :meth:`meta_param_groups` gives the meta-optimizer settings below (DADA's
    released search uses Adam with learning rate 5e-3 and betas (0.5, 0.999) for the policy).

    Args:
        sub_policies: op names of each sub-policy, all of the same length J; default
            :func:`all_pairs` of ``ops``.
        ops: the op set of the default sub-policies (AutoAugment's 15 ops).
        probability: initial application probability of every op.
        magnitude: initial magnitude of every op.
        temperature: relaxation temperature of the gates and of the choice.
        hard: straight-through hard choices (DADA) rather than soft mixtures.
        seed: seeds the module's own generator, used when none is passed.
        meta_lr: learning rate of the policy's meta-optimizer (Adam).
        meta_betas: Adam's betas for the policy (DADA: ``(0.5, 0.999)``).
        meta_weight_decay: weight decay of the policy's parameters in the meta-optimizer.

    Example:
        >>> policy = DifferentiablePolicy([("Rotate", "Color"), ("Posterize", "Cutout")])
        >>> g = torch.Generator().manual_seed(0)
        >>> x = torch.rand(8, 3, 32, 32)
        >>> params = policy.sample(8, g)
        >>> policy(x, params).shape
        torch.Size([8, 3, 32, 32])

    Shape:
        - x: :math:`(B, C, H, W)` float in ``[0, 1]``.
        - output: :math:`(B, C, H, W)`.
    """

    params_type = DifferentiableParams

    def __init__(
        self,
        sub_policies: Sequence[Sequence[str]] | None = None,
        *,
        ops: Sequence[str] = AUTOAUGMENT_OPS,
        probability: float = 0.5,
        magnitude: float = 0.5,
        temperature: float = 0.5,
        hard: bool = True,
        seed: int | None = None,
        meta_lr: float = 5e-3,
        meta_betas: tuple[float, float] = (0.5, 0.999),
        meta_weight_decay: float = 0.0,
    ) -> None:
        super().__init__()
        if not (math.isfinite(meta_lr) and meta_lr > 0):
            raise ValueError(f"meta_lr must be a finite number > 0, but got {meta_lr!r}.")
        if len(meta_betas) != 2 or not all(0.0 <= b < 1.0 for b in meta_betas):
            raise ValueError(f"meta_betas must be two numbers in [0, 1), but got {meta_betas!r}.")
        if not (math.isfinite(meta_weight_decay) and meta_weight_decay >= 0):
            raise ValueError(f"meta_weight_decay must be a finite number >= 0, but got {meta_weight_decay!r}.")
        self.meta_lr = float(meta_lr)
        self.meta_betas = (float(meta_betas[0]), float(meta_betas[1]))
        self.meta_weight_decay = float(meta_weight_decay)
        subs = all_pairs(tuple(ops)) if sub_policies is None else tuple(tuple(s) for s in sub_policies)
        if not subs or not subs[0]:
            raise ValueError(f"sub_policies must be a non-empty list of non-empty op lists, but got {sub_policies!r}.")
        if len({len(s) for s in subs}) != 1:
            raise ValueError(f"sub_policies must all have the same length, but got lengths {[len(s) for s in subs]}.")
        for sub in subs:
            for name in sub:
                get_op(name)
        for label, value in (("probability", probability), ("magnitude", magnitude)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{label} must be in [0, 1], but got {value}.")
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, but got {temperature}.")
        self.sub_policies: tuple[tuple[str, ...], ...] = subs
        self.temperature = float(temperature)
        self.hard = bool(hard)
        k, j = len(subs), len(subs[0])
        slot = torch.full((k, j), -1, dtype=torch.long)
        count = 0
        for ki, sub in enumerate(subs):
            for ji, name in enumerate(sub):
                if OPS[name].uses_magnitude:
                    slot[ki, ji] = count
                    count += 1
        self.register_buffer("_magnitude_slot", slot, persistent=False)
        self._op_names: tuple[str, ...] = tuple(dict.fromkeys(name for sub in subs for name in sub))
        index = {name: i for i, name in enumerate(self._op_names)}
        table = torch.tensor([[index[name] for name in sub] for sub in subs], dtype=torch.long)  # (K, J)
        self.register_buffer("_op_table", table, persistent=False)
        self._slot_candidates = [sorted({index[sub[ji]] for sub in subs}) for ji in range(j)]
        self.weight_logits = nn.Parameter(torch.zeros(k))
        self.probability_logits = nn.Parameter(torch.full((k, j), _logit(probability)))
        self.magnitude_logits = nn.Parameter(torch.full((count,), _logit(magnitude)))
        self.generator = _new_generator(seed)

    @property
    def num_sub_policies(self) -> int:
        """K."""
        return len(self.sub_policies)

    def weights(self) -> Tensor:
        """(K,) sub-policy probabilities, ``softmax(weight_logits)``."""
        return torch.softmax(self.weight_logits, 0)

    def probabilities(self) -> Tensor:
        """(K, J) op application probabilities."""
        return torch.sigmoid(self.probability_logits)

    def magnitudes(self) -> Tensor:
        """(K, J) op magnitudes in [0, 1]; 0 for ops without a magnitude."""
        mags = torch.sigmoid(self.magnitude_logits)
        padded = torch.cat([mags, mags.new_zeros(1)])  # index -1 reads the trailing zero
        return padded[self._magnitude_slot]

    def chosen(self, params: DifferentiableParams) -> Tensor:
        """(B,) index of the sub-policy each sample runs under ``params`` (hard mode), for logging."""
        return (self.weight_logits.detach() + params.gumbel.to(self.weight_logits.device)).argmax(-1)

    def sample(
        self, batch_size: int, generator: torch.Generator | None = None, device: torch.device | str | None = None
    ) -> DifferentiableParams:
        """Draw the noise of ``batch_size`` samples from ``generator`` (default: the module's own)."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 0:
            raise ValueError(f"batch_size must be an int >= 0, but got {batch_size!r}.")
        g = self.generator if generator is None else check_generator(generator)
        device = self.weight_logits.device if device is None else torch.device(device)
        b, (k, j) = batch_size, self.probability_logits.shape
        sign = torch.where(torch.rand((b, k, j), generator=g, device=g.device) < 0.5, -1.0, 1.0)
        return DifferentiableParams(
            gumbel=gumbel_noise((b, k), g).to(device),
            gate_noise=logistic_noise((b, k, j), g).to(device),
            sign=sign.to(device),
            position=torch.rand((b, k, j, 2), generator=g, device=g.device).to(device),
        )

    def forward(self, x: Tensor, params: DifferentiableParams | None = None) -> Tensor:
        """Augment ``x``, drawing fresh noise unless ``params`` are given."""
        check_images(x)
        b, (k, j) = x.shape[0], self.probability_logits.shape
        if params is None:
            params = self.sample(b, device=x.device)
        if not isinstance(params, DifferentiableParams):
            raise TypeError(f"params must be DifferentiableParams, but got {type(params).__name__}.")
        check_per_sample(params.gumbel, b, "params.gumbel", (k,))
        check_per_sample(params.gate_noise, b, "params.gate_noise", (k, j))
        check_per_sample(params.sign, b, "params.sign", (k, j))
        check_per_sample(params.position, b, "params.position", (k, j, 2))
        params = params.to(x.device)
        weight = gumbel_softmax(self.weight_logits, params.gumbel, self.temperature, self.hard)  # (B, K)
        gate = relaxed_bernoulli(self.probability_logits, params.gate_noise, self.temperature, self.hard)  # (B, K, J)
        mags = self.magnitudes().to(x.dtype)  # (K, J)
        if not self.hard:  # every sample runs every sub-policy, mixed by the soft weights
            out = torch.zeros_like(x)
            for ki, sub in enumerate(self.sub_policies):
                xs = x
                for ji, name in enumerate(sub):
                    y = OPS[name].apply(xs, mags[ki, ji].expand(b), params.sign[:, ki, ji], params.position[:, ki, ji])
                    xs = xs + gate[:, ki, ji].view(-1, 1, 1, 1) * (y - xs)
                out = out + weight[:, ki].view(-1, 1, 1, 1) * xs
            return out
        choice = weight.detach().argmax(-1)  # (B,) the one-hot's position
        rows = torch.arange(b, device=x.device)
        xs = x
        for ji in range(j):
            y = apply_grouped(
                xs,
                self._op_table[choice, ji],
                self._op_names,
                self._slot_candidates[ji],
                mags[choice, ji],  # (B,), differentiable gather
                params.sign[rows, choice, ji],
                params.position[rows, choice, ji],
            )
            xs = xs + gate[rows, choice, ji].view(-1, 1, 1, 1) * (y - xs)  # (B, C, H, W)
        return weight[rows, choice].view(-1, 1, 1, 1) * xs

    def to_policy(self, name: str = "dada", description: str = "") -> Policy:
        """Export the learned probabilities, magnitudes and weights as a fixed :class:`Policy`."""
        probs, mags, weights = self.probabilities().tolist(), self.magnitudes().tolist(), self.weights().tolist()
        subs = [
            SubPolicy(tuple(OpConfig(n, float(probs[ki][ji]), float(mags[ki][ji])) for ji, n in enumerate(sub)))
            for ki, sub in enumerate(self.sub_policies)
        ]
        return Policy.single_stage(name, subs, [float(w) for w in weights], description)

    @classmethod
    def from_policy(
        cls, policy: Policy, *, temperature: float = 0.5, hard: bool = True, seed: int | None = None, **meta: Any
    ) -> DifferentiablePolicy:
        """Start the search from a one-stage policy whose sub-policies have equal lengths.

        ``meta`` takes the meta-optimizer settings of the constructor (``meta_lr``, ...).
        """
        if not isinstance(policy, Policy) or len(policy.stages) != 1:
            raise ValueError(f"policy must be a Policy with exactly one stage, but got {policy!r}.")
        stage = policy.stages[0]
        for sub in stage.sub_policies:
            for op in sub.ops:
                if op.magnitude_sampling != "fixed":
                    raise ValueError(
                        f"magnitude_sampling must be 'fixed' in a DifferentiablePolicy, but got "
                        f"{op.magnitude_sampling!r} for op {op.name!r}."
                    )
        module = cls([[op.name for op in sub.ops] for sub in stage.sub_policies], temperature=temperature,
                     hard=hard, seed=seed, **meta)
        with torch.no_grad():
            for ki, sub in enumerate(stage.sub_policies):
                for ji, op in enumerate(sub.ops):
                    module.probability_logits[ki, ji] = _logit(op.probability)
                    slot = int(module._magnitude_slot[ki, ji])
                    if slot >= 0:
                        module.magnitude_logits[slot] = _logit(op.magnitude)
            module.weight_logits.copy_(torch.tensor([math.log(max(p, _EPS)) for p in stage.probabilities]))
        return module

    def extra_repr(self) -> str:
        return (f"sub_policies={self.num_sub_policies}, temperature={self.temperature}, hard={self.hard}, "
                f"meta_lr={self.meta_lr}, meta_betas={self.meta_betas}")
