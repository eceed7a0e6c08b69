"""DADA's differentiable augmentation search space (Li et al. 2020, "DADA: Differentiable
Automatic Data Augmentation", eqs. 3-6).

K sub-policies of J ops each (J = 2 by default). Per sample, a Gumbel-max draw over learnable
logits picks one sub-policy (eq. 3); each of its ops is applied when a Bernoulli gate with a
learnable probability fires (eq. 5), with a learnable magnitude ``m = sigmoid(theta)`` (eq. 6)
and, for a signed op (rotation, shear, translation, enhance), a learnable probability of the
positive sign. Samples are grouped by op within each slot (not by sub-policy), so a batch
costs about J * (number of ops) batched calls however large K is.

How the discrete choices learn is the ``estimator`` (:mod:`autodata.augment.estimators`):

* ``"relax"`` and ``"reinforce"``: unbiased score-function estimators. The forward
  applies the hard draw (no scaling, no blending); :meth:`DifferentiablePolicy.discrete_gradients`
  turns each sample's reward from the bilevel engine (its effect on the validation loss) into
  the gradients of the weight, probability and sign logits. Magnitudes keep their pathwise
  gradient through the ops.
* ``"straight_through"`` (the module's default, for a plain :class:`~autodata.MetaLearner`):
  the original relaxation, ``x <- x + g * (op(x, m) - x)`` with a
  straight-through relaxed gate ``g`` and the output scaled by the straight-through weight.
  It measures an infinitesimal blend towards an op's output and a scaling of intensities,
  not "apply the op or not"; on known-answer tasks it points the wrong way (see
  ``experiments/known_answer.py``). Kept for comparison. Signs then do not learn.

With ``hard=False`` every sample runs every sub-policy and sums them by the soft weights
(K times the compute; a fully relaxed, pathwise-differentiable module for tests and small K).
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import torch
from torch import Tensor, nn

from autodata.augment import estimators as est
from autodata.augment._base import BaseAugment, new_generator
from autodata.augment._checks import check_generator, check_images, check_per_sample
from autodata.augment._grouped import apply_grouped
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
        - sign: :math:`(B, K, J)` standard logistic noise of the signs: the sign is ``+1``
          where ``sign_logit + sign > 0`` (an unsigned op ignores it).
        - position: :math:`(B, K, J, 2)` float in ``[0, 1]``.
        - conditional: :math:`(B, K, 1 + 2J)` uniform noise of RELAX's conditional draw
          ``z~ ~ p(z | b)`` (choice, gates, signs); ``None`` when not drawn.
    """

    gumbel: Tensor
    gate_noise: Tensor
    sign: Tensor
    position: Tensor
    conditional: Tensor | None = None

    @property
    def batch_size(self) -> int:
        """B."""
        return self.gumbel.shape[0]

    def to(self, device: torch.device | str) -> DifferentiableParams:
        """A copy with every tensor on ``device``."""
        return DifferentiableParams(
            *(None if getattr(self, f.name) is None else getattr(self, f.name).to(device) for f in fields(self))
        )


def all_pairs(ops: Sequence[str] = AUTOAUGMENT_OPS, length: int = 2) -> tuple[tuple[str, ...], ...]:
    """All ordered tuples of ``length`` distinct ops: 15 * 14 = 210 pairs for AutoAugment's 15 ops."""
    return tuple(itertools.permutations(ops, length))


def _sub_policies(
    sub_policies: Sequence[Sequence[str]] | None, ops: Sequence[str] | None, ops_per_sub_policy: int
) -> tuple[tuple[str, ...], ...]:
    if sub_policies is not None and ops is not None:
        raise ValueError(
            f"give either sub_policies or ops (whose ordered tuples make the sub-policies), but got both: "
            f"sub_policies={sub_policies!r:.60}, ops={ops!r:.60}."
        )
    if isinstance(ops_per_sub_policy, bool) or not isinstance(ops_per_sub_policy, int) or ops_per_sub_policy < 1:
        raise ValueError(f"ops_per_sub_policy must be an int >= 1, but got {ops_per_sub_policy!r}.")
    if sub_policies is not None:
        subs = tuple(tuple(s) for s in sub_policies)
        if not subs or not subs[0]:
            raise ValueError(f"sub_policies must be a non-empty list of non-empty op lists, but got {sub_policies!r}.")
        return subs
    ops = AUTOAUGMENT_OPS if ops is None else tuple(ops)
    if isinstance(ops, str) or not ops:
        raise ValueError(f"ops must be a non-empty sequence of op names, but got {ops!r}.")
    if len(set(ops)) != len(ops):
        raise ValueError(f"ops must be distinct, but got {ops!r}.")
    if len(ops) < ops_per_sub_policy:
        raise ValueError(
            f"ops={ops!r} cannot make a sub-policy of ops_per_sub_policy={ops_per_sub_policy} distinct ops: give "
            f"at least {ops_per_sub_policy} ops, or ops_per_sub_policy={len(ops)} (e.g. one-op sub-policies)."
        )
    return all_pairs(ops, ops_per_sub_policy)


class DifferentiablePolicy(BaseAugment):
    """A learnable augmentation policy (DADA search space).

    As ``augment=`` of :class:`autodata.MetaLearner` its parameters are learned on the clean
    validation set; :meth:`meta_param_groups` gives the meta-optimizer settings below.

    Args:
        sub_policies: op names of each sub-policy, all of the same length J; give this or
            ``ops``, not both.
        ops: the op set whose ordered tuples of ``ops_per_sub_policy`` distinct ops are the
            sub-policies (default AutoAugment's 15 ops: 210 pairs).
        ops_per_sub_policy: J for ``ops`` (2 as DADA; 1 for one-op sub-policies).
        probability: initial application probability of every op.
        magnitude: initial magnitude of every op.
        temperature: relaxation temperature of the gates and of the choice (the control
            variate's relaxation with RELAX).
        hard: hard choices (DADA) rather than a soft mixture of every sub-policy.
        estimator: gradient estimator of the discrete choices, one of
            :data:`~autodata.augment.estimators.ESTIMATORS`. ``"relax"`` and ``"reinforce"``
            need a learner that hands rewards (:class:`autodata.MetaLearner` does, which
            :func:`autodata.search.search_augmentation` uses with ``"relax"``); the default
            ``"straight_through"`` learns in a plain :class:`autodata.MetaLearner`.
        seed: seeds the module's own generator, used when none is passed.
        meta_lr: learning rate of the policy's meta-optimizer (Adam); DADA's 5e-3 by default.
            :func:`autodata.search.search_augmentation` uses 0.05, chosen on the known-answer
            tasks (``experiments/known_answer.py``).
        meta_betas: Adam's betas for the policy (DADA: ``(0.5, 0.999)``).
        meta_weight_decay: weight decay of the policy's parameters in the meta-optimizer.
        control_lr: learning rate of RELAX's control variate.

    Example:
        >>> policy = DifferentiablePolicy([("Rotate", "Color"), ("Posterize", "Cutout")])
        >>> g = torch.Generator().manual_seed(0)
        >>> x = torch.rand(8, 3, 32, 32)
        >>> params = policy.sample(8, g)
        >>> policy(x, params).shape
        torch.Size([8, 3, 32, 32])
        >>> DifferentiablePolicy(ops=("Invert", "Rotate", "Color")).num_sub_policies
        6

    Shape:
        - x: :math:`(B, C, H, W)` float in ``[0, 1]``.
        - output: :math:`(B, C, H, W)`.
    """

    params_type = DifferentiableParams

    def __init__(
        self,
        sub_policies: Sequence[Sequence[str]] | None = None,
        *,
        ops: Sequence[str] | None = None,
        ops_per_sub_policy: int = 2,
        probability: float = 0.5,
        magnitude: float = 0.5,
        temperature: float = 0.5,
        hard: bool = True,
        estimator: str = "straight_through",
        seed: int | None = None,
        meta_lr: float = 5e-3,
        meta_betas: tuple[float, float] = (0.5, 0.999),
        meta_weight_decay: float = 0.0,
        control_lr: float = 0.01,
    ) -> None:
        super().__init__()
        for label, value in (("meta_lr", meta_lr), ("control_lr", control_lr)):
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{label} must be a finite number > 0, but got {value!r}.")
        if len(meta_betas) != 2 or not all(0.0 <= b < 1.0 for b in meta_betas):
            raise ValueError(f"meta_betas must be two numbers in [0, 1), but got {meta_betas!r}.")
        if not (math.isfinite(meta_weight_decay) and meta_weight_decay >= 0):
            raise ValueError(f"meta_weight_decay must be a finite number >= 0, but got {meta_weight_decay!r}.")
        self.meta_lr = float(meta_lr)
        self.meta_betas = (float(meta_betas[0]), float(meta_betas[1]))
        self.meta_weight_decay = float(meta_weight_decay)
        self.control_lr = float(control_lr)
        self.estimator = est.check_estimator(estimator)
        subs = _sub_policies(sub_policies, ops, ops_per_sub_policy)
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
        mag_slot = torch.full((k, j), -1, dtype=torch.long)
        sign_slot = torch.full((k, j), -1, dtype=torch.long)
        mags = signs = 0
        for ki, sub in enumerate(subs):
            for ji, name in enumerate(sub):
                if OPS[name].uses_magnitude:
                    mag_slot[ki, ji], mags = mags, mags + 1
                if OPS[name].signed:
                    sign_slot[ki, ji], signs = signs, signs + 1
        self.register_buffer("_magnitude_slot", mag_slot, persistent=False)
        self.register_buffer("_sign_slot", sign_slot, persistent=False)
        self._op_names: tuple[str, ...] = tuple(dict.fromkeys(name for sub in subs for name in sub))
        index = {name: i for i, name in enumerate(self._op_names)}
        table = torch.tensor([[index[name] for name in sub] for sub in subs], dtype=torch.long)  # (K, J)
        self.register_buffer("_op_table", table, persistent=False)
        self._slot_candidates = [sorted({index[sub[ji]] for sub in subs}) for ji in range(j)]
        self.weight_logits = nn.Parameter(torch.zeros(k))
        self.probability_logits = nn.Parameter(torch.full((k, j), _logit(probability)))
        self.magnitude_logits = nn.Parameter(torch.full((mags,), _logit(magnitude)))
        scored = self.hard and self.estimator != "straight_through"
        if scored and signs > 0:  # the signs learn only with a score-function estimator
            self.sign_logits = nn.Parameter(torch.zeros(signs))
        else:  # a fixed fair coin: a buffer, so every parameter of the module learns
            self.register_buffer("sign_logits", torch.zeros(signs))
        if not (self.hard and self.estimator == "relax"):
            self.control = None
        else:  # RELAX's control variate: one value per sub-policy, gate and sign (estimators.table_control_variate)
            self.control = nn.Parameter(torch.zeros(k, 1 + 2 * j))
            self.register_buffer("reward_scale", torch.zeros(()))
        self.generator = new_generator(seed)

    # ------------------------------------------------------------------ the learned values
    @property
    def num_sub_policies(self) -> int:
        """K."""
        return len(self.sub_policies)

    @property
    def needs_rewards(self) -> bool:
        """Whether the bilevel engine must hand per-sample rewards to :meth:`discrete_gradients`."""
        return self.hard and self.estimator != "straight_through"

    def weights(self) -> Tensor:
        """(K,) sub-policy probabilities, ``softmax(weight_logits)``."""
        return torch.softmax(self.weight_logits, 0)

    def probabilities(self) -> Tensor:
        """(K, J) op application probabilities."""
        return torch.sigmoid(self.probability_logits)

    def _gather(self, flat: Tensor, slot: Tensor, missing: float) -> Tensor:
        padded = torch.cat([flat, flat.new_full((1,), missing)])  # index -1 reads the trailing value
        return padded[slot]

    def magnitudes(self) -> Tensor:
        """(K, J) op magnitudes in [0, 1]; 0 for ops without a magnitude."""
        return self._gather(torch.sigmoid(self.magnitude_logits), self._magnitude_slot, 0.0)

    def sign_probabilities(self) -> Tensor:
        """(K, J) probability of the positive sign; 0.5 for unsigned ops."""
        return self._gather(torch.sigmoid(self.sign_logits), self._sign_slot, 0.5)

    def _sign_logit_table(self) -> Tensor:
        return self._gather(self.sign_logits, self._sign_slot, 0.0)  # (K, J)

    def expected_application(self) -> Tensor:
        """(K, J) weight x probability: how often each op of each sub-policy is applied."""
        return self.weights()[:, None] * self.probabilities()

    def op_ranking(self) -> list[tuple[str, float]]:
        """Each op with its total expected application (how often a sample gets it), largest first."""
        totals: dict[str, float] = dict.fromkeys(self._op_names, 0.0)
        for (ki, ji), value in zip(itertools.product(range(self.num_sub_policies), range(self._op_table.shape[1])),
                                   self.expected_application().detach().flatten().tolist()):
            totals[self.sub_policies[ki][ji]] += value
        return sorted(totals.items(), key=lambda item: -item[1])

    def chosen(self, params: DifferentiableParams) -> Tensor:
        """(B,) index of the sub-policy each sample runs under ``params`` (hard mode), for logging."""
        return (self.weight_logits.detach() + params.gumbel.to(self.weight_logits.device)).argmax(-1)

    # ------------------------------------------------------------------ draw and apply
    def sample(
        self, batch_size: int, generator: torch.Generator | None = None, device: torch.device | str | None = None
    ) -> DifferentiableParams:
        """Draw the noise of ``batch_size`` samples from ``generator`` (default: the module's own)."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 0:
            raise ValueError(f"batch_size must be an int >= 0, but got {batch_size!r}.")
        g = self.generator if generator is None else check_generator(generator)
        device = self.weight_logits.device if device is None else torch.device(device)
        b, (k, j) = batch_size, self.probability_logits.shape
        return DifferentiableParams(
            gumbel=gumbel_noise((b, k), g).to(device),
            gate_noise=logistic_noise((b, k, j), g).to(device),
            sign=logistic_noise((b, k, j), g).to(device),
            position=torch.rand((b, k, j, 2), generator=g, device=g.device).to(device),
            conditional=torch.rand((b, k, 1 + 2 * j), generator=g, device=g.device).to(device),
        )

    def _check_params(self, params: Any, b: int, device: torch.device) -> DifferentiableParams:
        k, j = self.probability_logits.shape
        if not isinstance(params, DifferentiableParams):
            raise TypeError(f"params must be DifferentiableParams, but got {type(params).__name__}.")
        check_per_sample(params.gumbel, b, "params.gumbel", (k,))
        check_per_sample(params.gate_noise, b, "params.gate_noise", (k, j))
        check_per_sample(params.sign, b, "params.sign", (k, j))
        check_per_sample(params.position, b, "params.position", (k, j, 2))
        if params.conditional is not None:
            check_per_sample(params.conditional, b, "params.conditional", (k, 1 + 2 * j))
        return params.to(device)

    def forward(self, x: Tensor, params: DifferentiableParams | None = None) -> Tensor:
        """Augment ``x``, drawing fresh noise unless ``params`` are given."""
        check_images(x)
        b, j = x.shape[0], self.probability_logits.shape[1]
        params = self._check_params(self.sample(b, device=x.device) if params is None else params, b, x.device)
        sign = torch.where(self._sign_logit_table().detach() + params.sign > 0, 1.0, -1.0)  # (B, K, J)
        mags = self.magnitudes().to(x.dtype)  # (K, J)
        if not self.hard:  # every sample runs every sub-policy, mixed by the soft weights
            weight = gumbel_softmax(self.weight_logits, params.gumbel, self.temperature, False)  # (B, K)
            gate = relaxed_bernoulli(self.probability_logits, params.gate_noise, self.temperature, False)
            out = torch.zeros_like(x)
            for ki, sub in enumerate(self.sub_policies):
                xs = x
                for ji, name in enumerate(sub):
                    y = OPS[name].apply(xs, mags[ki, ji].expand(b), sign[:, ki, ji], params.position[:, ki, ji])
                    xs = xs + gate[:, ki, ji].view(-1, 1, 1, 1) * (y - xs)
                out = out + weight[:, ki].view(-1, 1, 1, 1) * xs
            return out
        rows = torch.arange(b, device=x.device)
        if self.estimator == "straight_through":
            weight = gumbel_softmax(self.weight_logits, params.gumbel, self.temperature, True)  # (B, K)
            gate = relaxed_bernoulli(self.probability_logits, params.gate_noise, self.temperature, True)
            choice = weight.detach().argmax(-1)  # (B,)
        else:  # the hard draw; the logits learn through discrete_gradients
            choice = self.chosen(params)  # (B,)
            gate = (self.probability_logits.detach() + params.gate_noise > 0).to(x.dtype)  # (B, K, J)
        xs = x
        for ji in range(j):
            on = gate[rows, choice, ji]  # (B,)
            active = None if self.estimator == "straight_through" else on > 0.5
            y = apply_grouped(
                xs,
                self._op_table[choice, ji],
                self._op_names,
                self._slot_candidates[ji],
                mags[choice, ji],  # (B,), differentiable gather
                sign[rows, choice, ji],
                params.position[rows, choice, ji],
                active=active,
            )
            xs = y if active is not None else xs + on.view(-1, 1, 1, 1) * (y - xs)  # (B, C, H, W)
        if self.estimator == "straight_through":
            return weight[rows, choice].view(-1, 1, 1, 1) * xs
        return xs

    # ------------------------------------------------------------------ the discrete choices
    def _perturbed(self, params: DifferentiableParams) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``log pi`` and the perturbed logits ``z`` of the choice, gates and signs (with graphs)."""
        log_pi = torch.log_softmax(self.weight_logits, 0)  # (K,)
        return (log_pi, log_pi + params.gumbel, self.probability_logits + params.gate_noise,
                self._sign_logit_table() + params.sign)

    def log_prob(self, params: DifferentiableParams) -> Tensor:
        """(B,) log-probability of each sample's draw, over the choices that change its image:
        the sub-policy, its gates, and the signs of its applied signed ops."""
        log_pi, z_c, z_g, z_s = self._perturbed(params)
        rows = torch.arange(z_c.shape[0], device=z_c.device)
        choice = z_c.detach().argmax(-1)  # (B,)
        gate = (z_g.detach() > 0).to(z_g.dtype)  # (B, K, J)
        sign = (z_s.detach() > 0).to(z_s.dtype)
        signed = (self._sign_slot >= 0).to(z_g.dtype)  # (K, J)
        gate_lp = -torch.nn.functional.binary_cross_entropy_with_logits(
            self.probability_logits.expand_as(gate), gate, reduction="none")  # (B, K, J)
        sign_lp = -torch.nn.functional.binary_cross_entropy_with_logits(
            self._sign_logit_table().expand_as(sign), sign, reduction="none") * signed * gate
        return log_pi[choice] + (gate_lp + sign_lp)[rows, choice].sum(-1)

    def _full_log_prob(self, log_pi: Tensor, z_c: Tensor, z_g: Tensor, z_s: Tensor) -> Tensor:
        """(B,) log-probability of the whole draw (every gate and sign), which RELAX's control variate sees."""
        signed = (self._sign_slot >= 0).to(z_g.dtype)
        gate_lp = -torch.nn.functional.binary_cross_entropy_with_logits(
            self.probability_logits.expand_as(z_g), (z_g.detach() > 0).to(z_g.dtype), reduction="none")
        sign_lp = -torch.nn.functional.binary_cross_entropy_with_logits(
            self._sign_logit_table().expand_as(z_s), (z_s.detach() > 0).to(z_s.dtype), reduction="none") * signed
        return log_pi[z_c.detach().argmax(-1)] + (gate_lp + sign_lp).flatten(1).sum(-1)  # (B,)

    def discrete_gradients(self, params: DifferentiableParams, rewards: Tensor) -> list[Tensor]:
        """Gradients of the learnable parameters from the per-sample rewards of a step.

        Args:
            params: the draw of the batch (as given to :meth:`forward`).
            rewards: per-sample derivative of the validation loss with respect to each
                sample's loss weight (from :class:`autodata.MetaLearner`).

        Returns:
            One tensor per trainable parameter (in ``parameters()`` order): the estimator's
            gradient of the logits, zero for the magnitudes (their pathwise gradient comes
            from the engine), and for RELAX the gradient of the control variate's objective.

        Shape:
            - rewards: :math:`(B,)`.
        """
        trainable = [p for p in self.parameters() if p.requires_grad]
        if not self.needs_rewards:
            return [torch.zeros_like(p) for p in trainable]
        b = rewards.shape[0]
        params = self._check_params(params, b, self.weight_logits.device)
        rewards = rewards.detach().to(self.weight_logits.dtype)
        logits = [self.weight_logits, self.probability_logits,
                  *([self.sign_logits] if isinstance(self.sign_logits, nn.Parameter) else [])]
        with torch.enable_grad():
            if self.estimator == "reinforce":
                surrogate = est.reinforce_surrogate(self.log_prob(params), rewards)
                grads = torch.autograd.grad(surrogate, logits, allow_unused=True)
                found = dict(zip(map(id, logits), grads))
                return [found.get(id(p)) if found.get(id(p)) is not None else torch.zeros_like(p) for p in trainable]
            return self._relax(params, rewards, logits, trainable)

    def _relax(self, params: DifferentiableParams, rewards: Tensor, logits: list[Tensor],
               trainable: list[Tensor]) -> list[Tensor]:
        assert self.control is not None  # set in __init__ whenever estimator == "relax" and hard
        if params.conditional is None:
            raise ValueError("estimator='relax' needs params.conditional (drawn by sample()), but got None.")
        with torch.no_grad():  # the scale of the rewards, so that the table learns in units of it
            spread = rewards.std() if rewards.numel() > 1 else rewards.abs().mean()
            self.reward_scale.copy_(torch.where(self.reward_scale > 0, 0.9 * self.reward_scale + 0.1 * spread, spread))
        log_pi, z_c, z_g, z_s = self._perturbed(params)
        j = z_g.shape[-1]
        v = params.conditional  # (B, K, 1 + 2J)
        signed = self._sign_slot >= 0  # (K, J)
        choice = z_c.detach().argmax(-1)
        t_c = est.categorical_conditional(log_pi, choice, v[..., 0])
        t_g = est.bernoulli_conditional(self.probability_logits, (z_g.detach() > 0).to(z_g.dtype), v[..., 1 : 1 + j])
        t_s = est.bernoulli_conditional(self._sign_logit_table(), (z_s.detach() > 0).to(z_s.dtype), v[..., 1 + j :])
        z_s, t_s = torch.where(signed, z_s, 0.0), torch.where(signed, t_s, 0.0)  # unsigned: constant 0.5
        scale = self.reward_scale.clamp_min(1e-12)
        c_z = est.table_control_variate(est.relaxed(z_c, z_g, z_s, self.temperature), self.control, scale)
        c_t = est.table_control_variate(est.relaxed(t_c, t_g, t_s, self.temperature), self.control, scale)
        c_score = est.table_control_variate(  # c(z~) in the score term: a graph to the table only
            est.relaxed(t_c.detach(), t_g.detach(), t_s.detach(), self.temperature), self.control, scale)
        surrogate = est.relax_surrogate(self._full_log_prob(log_pi, z_c, z_g, z_s), rewards, c_z, c_t, c_score)
        grads = torch.autograd.grad(surrogate, logits, create_graph=True, allow_unused=True)
        grads = [torch.zeros_like(p) if g is None else g for p, g in zip(logits, grads)]
        (control_grad,) = torch.autograd.grad(est.squared_norm(grads) / scale**2, [self.control])
        found = {id(p): g.detach() for p, g in zip(logits, grads)}
        found[id(self.control)] = control_grad
        return [found.get(id(p), torch.zeros_like(p)) for p in trainable]

    def meta_param_groups(self) -> list[dict[str, Any]]:
        """The policy's group, and RELAX's control variate in its own (``control_lr``).

        The control variate's group says ``"scale_with_every": False``: it is the estimator's, trained
        once per meta update on that update's own sample, so ``MetaLearner(every=k)`` keeps its rate."""
        policy = [p for p in self.parameters() if p.requires_grad and p is not self.control]
        groups = [{"params": policy, "lr": self.meta_lr, "betas": tuple(self.meta_betas),
                   "weight_decay": self.meta_weight_decay}]
        if self.control is not None and self.control.requires_grad:
            groups.append({"params": [self.control], "lr": self.control_lr, "betas": (0.9, 0.999), "weight_decay": 0.0,
                           "scale_with_every": False})
        return groups

    # ------------------------------------------------------------------ export
    def to_policy(self, name: str = "dada", description: str = "") -> Policy:
        """Export the learned probabilities, magnitudes, signs and weights as a fixed :class:`Policy`.

        A signed op keeps its learned probability of the positive sign
        (:meth:`sign_probabilities`) as its ``sign_probability``; an op without a sign has 0.5.
        """
        probs, mags, weights = self.probabilities().tolist(), self.magnitudes().tolist(), self.weights().tolist()
        signs = self.sign_probabilities().tolist()
        subs = [
            SubPolicy(tuple(OpConfig(n, float(probs[ki][ji]), float(mags[ki][ji]),
                                     sign_probability=float(signs[ki][ji]) if OPS[n].signed else 0.5)
                            for ji, n in enumerate(sub)))
            for ki, sub in enumerate(self.sub_policies)
        ]
        return Policy.single_stage(name, subs, [float(w) for w in weights], description)

    @classmethod
    def from_policy(
        cls, policy: Policy, *, temperature: float = 0.5, hard: bool = True, seed: int | None = None, **meta: Any
    ) -> DifferentiablePolicy:
        """Start the search from a one-stage policy whose sub-policies have equal lengths.

        ``meta`` takes the other keyword arguments of the constructor (``meta_lr``, ``estimator``...).
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
                    slot = int(module._sign_slot[ki, ji])
                    if slot >= 0:
                        module.sign_logits[slot] = _logit(op.sign_probability)
            module.weight_logits.copy_(torch.tensor([math.log(max(p, _EPS)) for p in stage.probabilities]))
        return module

    def extra_repr(self) -> str:
        return (f"sub_policies={self.num_sub_policies}, estimator={self.estimator!r}, temperature={self.temperature}, "
                f"hard={self.hard}, meta_lr={self.meta_lr}, meta_betas={self.meta_betas}")
