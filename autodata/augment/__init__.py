"""Augmentation: an op table, policies as data, and modules that apply or learn them.

Three layers (see ``STYLE.md``): pure batched ops ``OPS[name](x, magnitude)``; samplers
``module.sample(batch_size, generator) -> params`` drawing per-sample parameters from an
explicit generator; modules ``module(x, params=None)`` replaying them. Every module is a
:class:`BaseAugment`; :class:`IdentityAugment` is the null one.

Example:
    >>> import torch
    >>> from autodata.augment import DifferentiablePolicy, Policy, PolicyAugment
    >>> x = torch.rand(16, 3, 32, 32)
    >>> g = torch.Generator().manual_seed(0)
    >>> fixed = PolicyAugment(Policy.identity())  # or load_policy("policies/autoaugment_cifar10.json")
    >>> torch.equal(fixed(x, fixed.sample(16, g)), x)
    True
    >>> search = DifferentiablePolicy(ops=("Rotate", "Color", "Posterize"))  # 6 sub-policies
    >>> params = search.sample(16, g)
    >>> search(x, params).mean().backward()  # gradients reach every policy parameter
    >>> search.to_policy("learned").stages[0].weights[:2]
    (0.1666666716337204, 0.1666666716337204)
"""
from __future__ import annotations

from autodata.augment._base import BaseAugment, IdentityAugment
from autodata.augment.apply import PolicyAugment, PolicyParams, PolicyTransform
from autodata.augment.differentiable import DifferentiableParams, DifferentiablePolicy, all_pairs
from autodata.augment.ops import AUTOAUGMENT_OPS, OPS, RANDAUGMENT_OPS, OpSpec, get_op
from autodata.augment.policy import MAGNITUDE_SAMPLINGS, OpConfig, Policy, Stage, SubPolicy
from autodata.augment.policy_io import (
    load_policy,
    policy_from_dict,
    policy_from_json,
    policy_to_dict,
    policy_to_json,
    save_policy,
)
from autodata.augment.relax import gumbel_noise, gumbel_softmax, logistic_noise, relaxed_bernoulli

__all__ = [
    "AUTOAUGMENT_OPS",
    "BaseAugment",
    "DifferentiableParams",
    "DifferentiablePolicy",
    "IdentityAugment",
    "MAGNITUDE_SAMPLINGS",
    "OPS",
    "RANDAUGMENT_OPS",
    "OpConfig",
    "OpSpec",
    "Policy",
    "PolicyAugment",
    "PolicyParams",
    "PolicyTransform",
    "Stage",
    "SubPolicy",
    "all_pairs",
    "get_op",
    "gumbel_noise",
    "gumbel_softmax",
    "load_policy",
    "logistic_noise",
    "policy_from_dict",
    "policy_from_json",
    "policy_to_dict",
    "policy_to_json",
    "relaxed_bernoulli",
    "save_policy",
]
