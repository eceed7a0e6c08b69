"""``TrainConfig``: one frozen, validated dataclass describes a whole training run.

It is the single source of truth for a run: :func:`autodata.train.build_run` builds from it,
the command line's flags are generated from its fields (their ``help`` lives here), the run
directory stores it as ``config.json``, and Optuna search spaces name its fields. A config is
checked when it is built, before any data is read: a wrong op name, a negative learning
rate or an unknown model fail at once with a message in Optuna's style.

Short method strings of the noisy-label literature parse into fields:
``TrainConfig.from_method("mwn-last2")`` sets ``reweighter="mwn", method="last", every=2``.

Example:
    >>> config = TrainConfig(dataset="digits", reweighter="mwn", meta_per_class=10, epochs=2)
    >>> TrainConfig.from_json(config.to_json()) == config
    True
    >>> TrainConfig(lr=-1.0)
    Traceback (most recent call last):
    ...
    ValueError: lr must be a positive finite number, but got -1.0.
"""
from __future__ import annotations

import dataclasses
import math
import re
import typing
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from autodata._config import JsonConfig

__all__ = ["TrainConfig", "config_field_help", "parse_method"]

Check = Callable[[Any], str | None]  # returns the rule the value breaks, or None


def _positive(v: Any) -> str | None:
    return None if v > 0 and math.isfinite(v) else "a positive finite number"


def _non_negative(v: Any) -> str | None:
    return None if v >= 0 and math.isfinite(v) else "a non-negative finite number"


def _unit(v: Any) -> str | None:
    return None if 0.0 <= v <= 1.0 else "in [0, 1]"


def _momentum(v: Any) -> str | None:
    return None if 0.0 <= v < 1.0 else "in [0, 1)"


def _at_least_one(v: Any) -> str | None:
    return None if v >= 1 and math.isfinite(v) else ">= 1"


def _seed(v: Any) -> str | None:
    return None if 0 <= v < 2**63 else "in [0, 2**63)"


def _device(v: Any) -> str | None:
    import torch

    try:
        torch.device(v)
    except RuntimeError:
        return "a torch device such as 'cpu', 'cuda' or 'cuda:1'"
    return None


def _models() -> Collection[str]:
    from autodata.models import MODELS

    return MODELS


def _datasets() -> Collection[str]:
    from autodata.data import DATASETS

    return DATASETS


def _noise_kinds() -> Collection[str]:
    from autodata.data import NOISE_KINDS

    return ("none", *(k for k in NOISE_KINDS if k != "transition"))


def _methods() -> Mapping[str, Any]:
    """The hypergradient methods by name (:data:`autodata.bilevel.HYPERGRADIENTS`: name -> class)."""
    from autodata.bilevel import HYPERGRADIENTS

    return HYPERGRADIENTS


def _ops() -> Collection[str]:
    from autodata.augment import OPS

    return OPS


def _estimators() -> Collection[str]:
    from autodata.augment.estimators import ESTIMATORS

    return ESTIMATORS


def _reweighters() -> Collection[str]:
    from autodata.reweight import REWEIGHTERS

    return ("none", *(name for name in REWEIGHTERS if name != "uniform"))


AUGMENT_KINDS = ("none", "policy", "schedule", "learned")
OPTIMIZERS = ("sgd", "adam", "adamw")
LR_SCHEDULES = ("cosine", "constant")
PRECISIONS = ("fp32", "bf16")
COMPILE_MODES = ("none", "default", "reduce-overhead", "max-autotune")


def _f(default: Any, help: str, check: Check | None = None, choices: Any = None) -> Any:
    """A config field: its default, its help text (the flag's) and its rule."""
    return field(default=default, metadata={"help": help, "check": check, "choices": choices})


@dataclass(frozen=True)
class TrainConfig(JsonConfig):
    """Everything that defines one training run (see the module docstring)."""

    # --- data
    dataset: str = _f("digits", "dataset name (digits is bundled; others read --data-root)", choices=_datasets)
    data_root: str | None = _f(None, "data root (the .npz file for dataset npz); default $AUTODATA_DATA")
    n_train: int = _f(0, "use a seeded subset of this many training images (0: all)", _non_negative)
    imbalance: float = _f(1.0, "long-tailed imbalance factor n_max/n_min of the training set (1: as is)", _at_least_one)
    noise: str = _f("none", "label noise of the training set", choices=_noise_kinds)
    noise_rate: float = _f(0.0, "label noise rate", _unit)
    meta_per_class: int = _f(0, "clean meta images per class, held out before the noise (for learned parts)", _non_negative)
    val_per_class: int = _f(0, "clean validation images per class, held out for model selection and tuning", _non_negative)
    # --- model and optimisation
    model: str = _f("small_cnn", "model name", choices=_models)
    optimizer: str = _f("sgd", "optimizer", choices=OPTIMIZERS)
    lr: float = _f(0.05, "learning rate", _positive)
    momentum: float = _f(0.9, "SGD momentum", _momentum)
    nesterov: bool = _f(True, "Nesterov momentum (SGD)")
    weight_decay: float = _f(5e-4, "weight decay", _non_negative)
    lr_schedule: str = _f("cosine", "learning-rate schedule over the epochs", choices=LR_SCHEDULES)
    warmup_epochs: int = _f(
        0, "linear learning-rate warm-up over this many first epochs (lr * (e + 1) / (warmup + 1) in epoch e), then "
           "lr_schedule over the remaining epochs (0: none)", _non_negative)
    epochs: int = _f(10, "training epochs", _at_least_one)
    batch_size: int = _f(128, "training batch size", _at_least_one)
    eval_batch_size: int = _f(1000, "evaluation batch size", _at_least_one)
    # --- augmentation
    crop_padding: int = _f(0, "random crop with this zero padding (0: none)", _non_negative)
    flip: bool = _f(False, "random horizontal flips")
    augment: str = _f("none", "augmentation: none, a policy file, a schedule file, or a learned policy", choices=AUGMENT_KINDS)
    policy: str | None = _f(None, "policy file (augment=policy) or schedule file (augment=schedule)")
    policy_ops: tuple[str, ...] = _f((), "ops of a learned policy (empty: the 15 AutoAugment ops)")
    policy_temperature: float = _f(0.5, "temperature of a learned policy's relaxed choices", _positive)
    policy_lr: float = _f(0.05, "meta learning rate of a learned policy (0.05: measured on known-answer tasks)", _positive)
    policy_estimator: str = _f("relax", "gradient estimator of a learned policy's discrete choices", choices=_estimators)
    # --- sample reweighting
    reweighter: str = _f("none", "sample reweighter", choices=_reweighters)
    reweighter_hidden: int = _f(100, "hidden width of Meta-Weight-Net", _at_least_one)
    reweighter_lr: float = _f(1e-3, "meta learning rate of Meta-Weight-Net", _positive)
    reweighter_floor: float = _f(
        0.0, "Meta-Weight-Net's normalisation floor: weights are divided by max(mean, floor), none above 1/floor "
             "(0: plain mean-1 normalisation)", _unit)
    reweighter_center: str = _f(
        "on_stall", "Meta-Weight-Net's centring of its sigmoid's input on the batch mean: off (the released code's net), "
              "on, or on_stall (the released net until its sigmoid saturates into uniform weights with no gradient, "
              "centred from then on); with a reweighter_floor above 0 it is off", choices=("off", "on", "on_stall"))
    reweighter_max_step_ratio: float = _f(
        1.0, "L2RW's bound on the real step, in multiples of plain training's step on the last layer (0: unbounded)",
        _non_negative)
    # --- the bilevel step
    method: str = _f("exact", "hypergradient method", choices=_methods)
    every: int = _f(1, "update the learned parts every this many optimizer steps", _at_least_one)
    scale_meta_lr: bool = _f(True, "with every > 1, multiply the meta learning rates (reweighter_lr, policy_lr) by "
                                   "every: one meta update stands for that many optimizer steps, so the learned parts "
                                   "move about as far per epoch (a config saved before this field read as false "
                                   "where every > 1)")
    meta_batch_size: int = _f(100, "meta (clean validation) batch size", _at_least_one)
    guard: bool = _f(True, "divergence guard of a learned reweighter: when the validation loss at the look-ahead "
                           "climbs past twice its best, warn and train with uniform weights until it is back")
    # --- runtime
    device: str = _f("cpu", "device", _device)
    precision: str = _f("fp32", "precision of the forward passes", choices=PRECISIONS)
    compile: str = _f(
        "none", "torch.compile the model for training, in this mode (none: eager; reduce-overhead replays CUDA "
                "graphs, which removes the per-kernel launch cost that bounds small models on a GPU); every method "
                "takes it: evaluation, the forwards a meta step differentiates and, for a model with dropout, the "
                "forwards online/jvp-online replay stay eager", choices=COMPILE_MODES)
    seed: int = _f(0, "seed of every random draw of the run", _seed)

    @classmethod
    def _meant_when_absent(cls, data: dict[str, Any]) -> dict[str, Any]:
        # before scale_meta_lr existed every-k kept the meta learning rates (a no-op at every=1)
        return {"scale_meta_lr": data.get("every", 1) == 1}

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            value = _coerce(f.name, getattr(self, f.name), hints[f.name])
            object.__setattr__(self, f.name, value)
            check, choices = f.metadata["check"], f.metadata["choices"]
            if value is None:
                continue
            if choices is not None:
                known = choices() if callable(choices) else choices
                if value not in known:
                    raise ValueError(f"{f.name} must be one of {sorted(known)}, but got {value!r}.")
            if check is not None:
                rule = check(value)
                if rule is not None:
                    raise ValueError(f"{f.name} must be {rule}, but got {value!r}.")
        self._check_together()

    def _check_together(self) -> None:
        if self.warmup_epochs >= self.epochs:
            raise ValueError(
                f"warmup_epochs must be < epochs ({self.epochs}): the schedule needs an epoch after the warm-up, but got "
                f"{self.warmup_epochs}; lower warmup_epochs or raise epochs."
            )
        ops = _ops()
        unknown = [op for op in self.policy_ops if op not in ops]
        if unknown:
            raise ValueError(f"policy_ops must name ops of {sorted(ops)}, but got unknown {unknown}.")
        if self.augment in ("policy", "schedule") and not self.policy:
            raise ValueError(f"policy must name a file when augment={self.augment!r}, but got {self.policy!r}.")
        if self.augment not in ("policy", "schedule") and self.policy:
            raise ValueError(
                f"policy is only read with augment='policy' or 'schedule', but got policy={self.policy!r} "
                f"with augment={self.augment!r}; set augment too."
            )
        if self.policy_ops and self.augment != "learned":
            raise ValueError(f"policy_ops is only used with augment='learned', but got augment={self.augment!r}.")
        if self.noise == "none" and self.noise_rate != 0:
            raise ValueError(f"noise_rate must be 0 when noise='none', but got {self.noise_rate}; set noise too.")
        if self.learns and self.meta_per_class == 0:
            raise ValueError(
                "meta_per_class must be > 0 when a part is learned (reweighter or augment='learned'): "
                "the learned parts are steered by a clean meta set, but got 0."
            )
        delayed = _methods()[self.method].delayed  # applied one step late: 'online', 'jvp-online'
        if self.augment == "learned" and self.policy_estimator != "straight_through" and delayed:
            raise ValueError(
                f"method must not be {self.method!r} with policy_estimator={self.policy_estimator!r} (its rewards are "
                f"needed at once), but got {self.method!r}; use 'fd', 'jvp' or 'exact', or policy_estimator='straight_through'."
            )
        if self.reweighter == "l2rw" and delayed:
            raise ValueError(f"method must not be {self.method!r} with reweighter='l2rw' (per-batch weights), but got {self.method!r}.")

    # ------------------------------------------------------------------ derived
    @property
    def learns(self) -> bool:
        """Whether the run has a learned data component (and so a bilevel step)."""
        return self.reweighter != "none" or self.augment == "learned"

    def lr_at(self, epoch: int) -> float:
        """The learning rate of ``epoch`` (0-based), as the run's scheduler sets it.

        ``lr * (epoch + 1) / (warmup_epochs + 1)`` during the warm-up; then ``lr_schedule`` over
        the remaining ``epochs - warmup_epochs`` epochs: cosine, ``lr * (1 + cos(pi * t / T)) / 2``
        with ``t = epoch - warmup_epochs`` and ``T = epochs - warmup_epochs`` (the closed form of
        ``CosineAnnealingLR(T_max=T)``), or constant.

        Example:
            >>> config = TrainConfig(lr=0.1, epochs=10, warmup_epochs=2)
            >>> [round(config.lr_at(e), 4) for e in (0, 1, 2, 6)]
            [0.0333, 0.0667, 0.1, 0.05]
        """
        if epoch < self.warmup_epochs:
            return self.lr * (epoch + 1) / (self.warmup_epochs + 1)
        if self.lr_schedule == "cosine":
            t, total = epoch - self.warmup_epochs, self.epochs - self.warmup_epochs
            return self.lr * (1.0 + math.cos(math.pi * t / total)) / 2.0
        return self.lr

    @classmethod
    def from_method(cls, text: str, /, **fields: Any) -> TrainConfig:
        """A config from a method string such as ``"mwn-last2"`` plus other fields."""
        return cls(**{**fields, **parse_method(text)})


def _coerce(name: str, value: Any, hint: Any) -> Any:
    """Check ``value`` against the field's type; ints pass as floats, lists as tuples."""
    args = typing.get_args(hint)
    optional = type(None) in args
    base = next((a for a in args if a is not type(None)), hint) if optional else hint
    if value is None:
        if optional:
            return None
        raise ValueError(f"{name} must be {_type_name(base)}, but got None.")
    origin = typing.get_origin(base)
    if origin is tuple:
        if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            return tuple(value)
        raise ValueError(f"{name} must be a list of strings, but got {value!r}.")
    if base is bool:
        if isinstance(value, bool):
            return value
    elif base is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif base is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                number = float(value)
            except OverflowError:
                raise ValueError(f"{name} must be a finite number, but got an integer too large for a float.") from None
            if not math.isfinite(number):
                raise ValueError(f"{name} must be a finite number, but got {value!r}.")
            return number
    elif base is str:
        if isinstance(value, str):
            return value
    raise ValueError(f"{name} must be {_type_name(base)}, but got {value!r} ({type(value).__name__}).")


def _type_name(t: Any) -> str:
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(t, str(t))


def _method_pattern() -> re.Pattern[str]:
    """``<reweighter>[-<method>][<k>]``, the methods read from the registry (longest first, so
    ``jvp-online`` is not taken for ``jvp``)."""
    names = sorted(_methods(), key=len, reverse=True)
    alternatives = "|".join(re.escape(name) for name in names)
    return re.compile(rf"^(?P<rw>ce|clean|mwn|l2rw)(?:-(?P<method>{alternatives}))?(?:-?every)?(?P<every>\d+)?$")


def parse_method(text: str) -> dict[str, Any]:
    """Fields of a method string: ``ce``, ``clean``, ``mwn``, ``l2rw``, ``mwn-last2``, ``mwn-every5``...

    ``ce`` trains with plain cross-entropy; ``clean`` with the true labels (noise off);
    ``<reweighter>[-<method>][<k>]`` learns the reweighter with a hypergradient method every
    ``k`` steps (``-every<k>`` also reads as ``k``).

    Example:
        >>> parse_method("mwn-last2")
        {'reweighter': 'mwn', 'method': 'last', 'every': 2}
        >>> parse_method("mwn-jvp-online")
        {'reweighter': 'mwn', 'method': 'jvp-online', 'every': 1}
    """
    match = _method_pattern().match(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(
            f"method string must look like ce, clean, mwn, l2rw, mwn-fd, mwn-last2 or mwn-every5, but got {text!r}."
        )
    rw, method, every = match["rw"], match["method"], match["every"]
    if rw in ("ce", "clean"):
        if method or every:
            raise ValueError(f"method string {text!r}: {rw} learns nothing, so it takes no method or period.")
        return {"reweighter": "none"} if rw == "ce" else {"reweighter": "none", "noise": "none", "noise_rate": 0.0}
    out: dict[str, Any] = {"reweighter": rw, "method": method or "exact", "every": int(every) if every else 1}
    if out["every"] < 1:
        raise ValueError(f"method string {text!r}: the period must be >= 1, but got {out['every']}.")
    return out


def config_field_help() -> dict[str, str]:
    """Each field's help text (what the command line shows)."""
    return {f.name: f.metadata["help"] for f in dataclasses.fields(TrainConfig)}
