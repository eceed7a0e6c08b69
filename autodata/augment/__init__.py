"""Augmentation: an op table, policies as data, and modules that apply or learn them."""
from __future__ import annotations

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
    "DifferentiableParams",
    "DifferentiablePolicy",
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
