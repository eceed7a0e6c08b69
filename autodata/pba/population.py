"""A population of models trained together: as one grouped model, with ``torch.func.vmap``, or in a loop.

PBA (Ho et al., ICML 2019) trains its population as separate Ray trials. Here the members live
in one process on one device, in one of three engines:

- :class:`VmapPopulation` stacks the members' parameters and buffers
  (``torch.func.stack_module_state``) and computes every member's forward, loss and gradients
  in one ``vmap(grad_and_value(functional_call))`` call. BatchNorm keeps per-member
  statistics: the running mean, variance and batch count are stacked buffers, passed in
  batched, and BatchNorm's in-place update of a *batched* buffer is allowed under ``vmap`` (the
  torch.func docs' failure case is an unbatched buffer updated from a batched input, which
  ``replace_all_batch_norm_modules_`` avoids by dropping the running statistics altogether;
  members here keep theirs). Any model ``vmap`` takes.
- :class:`GroupedPopulation` keeps the same stacked tensors but runs the members as one wide
  model (:mod:`autodata.pba.grouped`): members side by side along the channels, every layer
  with weights one grouped layer (a grouped convolution, one BatchNorm over ``N * C``
  channels, one batched matmul), plain autograd, one forward and backward per step. Models
  whose layers all have a grouped version (convolutions, BatchNorm, linear, the input
  normalisation, any layer without tensors) and whose ``forward`` keeps members' channels apart.
- :class:`LoopPopulation` is the reference: one ``nn.Module`` and one ``torch.optim.SGD`` per
  member, stepped one after another. It takes any model; :func:`make_population` falls back to
  it, with a warning that says why, when a model cannot run in the engine asked for.

The two stacked engines step SGD (momentum, Nesterov, weight decay) with ``torch.optim.SGD``'s
update written on the stacked tensors (:func:`sgd_update`). All share one state format
(:meth:`BasePopulation.state_dict`: stacked tensors by name), so a search checkpointed by one
engine resumes with another, and they can be compared (same seed, same batches: the same
losses, parameters, BatchNorm statistics and momentum up to float rounding).

Which is faster depends on the device and the size of the activations. On a CPU (one thread,
``experiments/pba_throughput.py``): ``vmap`` is the slowest (each convolution becomes a grouped
convolution, BatchNorm with batched weights unfused element-wise ops, plus the transforms'
overhead); the grouped engine saves the per-op overhead that dominates a member's step on
small images (8 x 8 digits), but makes activations as many times larger as it groups members,
and on a CPU they then fall out of the caches and, freed, go back to the system (glibc), to
return as page faults at the next step: it therefore groups only as many members as keep a wide
model's input about :data:`GROUPED_CHUNK_ELEMENTS` numbers (:func:`grouped_chunk_size`). Telling
glibc to keep freed memory (``MALLOC_MMAP_THRESHOLD_`` and ``MALLOC_TRIM_THRESHOLD_``, a process
setting) made the grouped engine 1.2x -> 1.5x the loop at 64 x 1x8x8 (BENCHMARKS.md); the search's command
line sets it on a CPU (``--keep-freed-memory``, :func:`autodata._malloc.keep_freed_memory`).
``engine="auto"`` picks it on a CPU when at least two members fit in one wide model
(:func:`auto_engine`) and ``vmap`` on an accelerator, where one large kernel per layer replaces
N small ones.

Precision (``TrainConfig.precision``, :data:`AUTOCAST_DTYPES`): ``"bf16"`` runs every member's
forward, in training and in evaluation, under ``torch.autocast(device.type, dtype=torch.bfloat16)``,
as a single run does (:mod:`autodata.train.run`); the losses are computed in float32 from the
logits, and the parameters, their gradients, the momentum and the BatchNorm statistics stay
float32, so one state format serves both precisions. Under ``vmap`` autocast alone leaves
convolutions in float32 and linear layers returning float32, and BatchNorm refuses a bfloat16
input, so :class:`VmapPopulation` gives those layers explicit casts
(:data:`VMAP_AUTOCAST_LAYERS`); the engines then agree up to bfloat16 rounding.

Shape:
    - step: x :math:`(N, B, C, H, W)` (each member's own augmented images), y :math:`(B,)`;
      returns the losses :math:`(N,)`.
    - logits: x :math:`(B, C, H, W)` (shared clean images); returns :math:`(N, B, K)`.
"""
from __future__ import annotations

import abc
import contextlib
import copy
import functools
import warnings
from collections.abc import Callable
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, grad_and_value, vmap

from autodata.pba.grouped import pool_before_relu, stacked_state, widen
from autodata.train import TrainConfig

__all__ = [
    "AUTOCAST_DTYPES", "ENGINE_CLASSES", "GROUPED_CHUNK_ELEMENTS", "GROUPED_MAX_ELEMENTS", "VMAP_AUTOCAST_LAYERS",
    "BasePopulation", "GroupedPopulation", "LoopPopulation", "StackedPopulation", "VmapPopulation", "auto_engine",
    "autocast_dtype", "grouped_chunk_size", "make_population", "prefers_channels_last", "sgd_settings", "sgd_update",
]

PopulationState = dict[str, Any]

AUTOCAST_DTYPES: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16}
"""``TrainConfig.precision`` -> the dtype of the members' forwards under ``torch.autocast``
(``None``: no autocast, float32 throughout). Parameters, gradients, momentum, BatchNorm
statistics and losses are float32 in every precision."""


def autocast_dtype(precision: str) -> torch.dtype | None:
    """The autocast dtype of ``precision`` (:data:`AUTOCAST_DTYPES`); raises on any other value.

    Example:
        >>> autocast_dtype("bf16"), autocast_dtype("fp32")
        (torch.bfloat16, None)
    """
    if precision not in AUTOCAST_DTYPES:
        raise ValueError(f"precision must be one of {list(AUTOCAST_DTYPES)} for a population, but got {precision!r}.")
    return AUTOCAST_DTYPES[precision]


def prefers_channels_last(model: nn.Module) -> bool:
    """Whether the engines run ``model`` in channels-last layout: on a CPU, for a model with a
    2-D convolution (PyTorch's CPU kernels for BatchNorm, pooling and oneDNN's convolutions are
    faster on NHWC: about 1.5x for the small CNN's training step, loop and grouped alike)."""
    device = next(iter(model.parameters())).device
    return device.type == "cpu" and any(isinstance(m, nn.Conv2d) for m in model.modules())


def _layout(x: Tensor, channels_last: bool) -> Tensor:
    """``x`` in channels-last layout when asked and 4-D, else as it is."""
    return x.contiguous(memory_format=torch.channels_last) if channels_last and x.dim() == 4 else x


def sgd_settings(config: TrainConfig) -> tuple[float, bool, float]:
    """``(momentum, nesterov, weight_decay)`` as :func:`autodata.train.build_run` sets up SGD."""
    return config.momentum, config.nesterov and config.momentum > 0, config.weight_decay


class BasePopulation(abc.ABC):
    """N members of one architecture, stepped together on the same batch of (per-member) images.

    Subclasses implement :meth:`step`, :meth:`logits`, :meth:`state_dict` and
    :meth:`load_state_dict`; copying a member goes through the state (:meth:`copy_member`).
    """

    engine: ClassVar[str] = ""

    def __init__(self, models: list[nn.Module], config: TrainConfig) -> None:
        if not isinstance(models, (list, tuple)) or len(models) < 2:
            raise ValueError(f"models must be a list of >= 2 modules, but got {models!r:.80}.")
        self.size = len(models)
        self.momentum, self.nesterov, self.weight_decay = sgd_settings(config)
        self.precision = config.precision
        self.autocast_dtype = autocast_dtype(config.precision)
        self.device = next(iter(models[0].parameters())).device
        self.steps = 0  # optimizer steps taken (0: no momentum buffer yet, as torch.optim.SGD)

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """The context of the members' forwards: ``torch.autocast`` in bf16, nothing in fp32."""
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    @abc.abstractmethod
    def step(self, x: Tensor, y: Tensor, lr: float) -> Tensor:
        """One SGD step of every member on its images ``x[i]``; returns the losses (N,) (detached)."""

    @abc.abstractmethod
    def logits(self, x: Tensor) -> Tensor:
        """Every member's logits (N, B, K) on the shared images ``x`` (B, C, H, W), eval mode, no grad."""

    @abc.abstractmethod
    def state_dict(self) -> PopulationState:
        """``{"params", "buffers", "momentum": {name: (N, ...)}, "steps": int}`` (copies)."""

    @abc.abstractmethod
    def load_state_dict(self, state: PopulationState) -> None:
        """Load a :meth:`state_dict` (of either engine)."""

    def copy_member(self, dst: int, src: int) -> None:
        """Member ``dst`` takes member ``src``'s weights, buffers and optimizer state (PBT's exploit)."""
        for i, what in ((dst, "dst"), (src, "src")):
            if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < self.size:
                raise ValueError(f"{what} must be a member index in [0, {self.size}), but got {i!r}.")
        state = self.state_dict()
        for group in ("params", "buffers", "momentum"):
            for t in state[group].values():
                t[dst] = t[src]
        self.load_state_dict(state)

    def member_state_dict(self, i: int) -> dict[str, Tensor]:
        """Member ``i``'s model ``state_dict`` (parameters and buffers), loadable into one model."""
        state = self.state_dict()
        return {n: t[i].clone() for group in ("params", "buffers") for n, t in state[group].items()}

    @torch.no_grad()
    def evaluate(self, loader: Any) -> Tensor:
        """Accuracy (%) of every member on ``loader`` (clean images): (N,) float64."""
        correct = None
        total = 0
        for x, y in loader:
            hits = (self.logits(x).argmax(-1) == y).sum(1).double()  # (N,)
            correct = hits if correct is None else correct + hits
            total += int(y.numel())
        if correct is None or total == 0:
            raise ValueError("loader must yield at least one batch to evaluate on, but it yielded none.")
        return 100.0 * correct.cpu() / total


def sgd_update(params: list[Tensor], grads: list[Tensor], buffers: list[Tensor], first: bool, lr: float,
               momentum: float, nesterov: bool, weight_decay: float) -> None:
    """``torch.optim.SGD``'s update (no dampening) on lists of tensors, with ``torch._foreach`` ops.

    Every op is in place: a fresh tensor of the size of a stacked weight costs page faults on a
    CPU (its allocation goes to the system), more than the arithmetic.

    Args:
        params: updated in place.
        grads: their gradients, used as scratch (overwritten).
        buffers: the momentum buffers, updated in place (``first``: set to the gradient).
        first: whether this is the first step (no momentum yet).
    """
    with torch.no_grad():
        g = grads
        if weight_decay:
            torch._foreach_add_(g, params, alpha=weight_decay)
        if momentum:
            if first:
                torch._foreach_copy_(buffers, g)
            else:
                torch._foreach_mul_(buffers, momentum)
                torch._foreach_add_(buffers, g)
            if nesterov:
                torch._foreach_add_(g, buffers, alpha=momentum)
            else:
                g = buffers
        torch._foreach_add_(params, g, alpha=-lr)


class StackedPopulation(BasePopulation):
    """Members whose tensors are stacked (``name -> (N, ...)``) and stepped by one functional SGD.

    Subclasses compute the gradients (:meth:`gradients`) and the logits; the state, the update
    and the copies are shared. ``probe`` checks, on an example, that the engine can take the model.
    """

    def __init__(self, models: list[nn.Module], config: TrainConfig) -> None:
        super().__init__(models, config)
        params, buffers = stacked_state(list(models))
        self.params = params  # name -> (N, ...) leaves that require grad
        self.buffers = buffers  # name -> (N, ...)
        self.momentum_buffers = {n: torch.zeros_like(p, requires_grad=False) for n, p in self.params.items()}

    @abc.abstractmethod
    def gradients(self, x: Tensor, y: Tensor) -> tuple[list[Tensor], Tensor]:
        """The gradients of every member's loss on its images ``x[i]`` (one per parameter, in the
        order of ``self.params``, each (N, ...)) and the losses (N,), detached. The gradients may
        live in buffers that the next call (and :meth:`step`) overwrite."""

    def probe(self, x: Tensor, y: Tensor, models: list[nn.Module] | None = None) -> None:
        """Raise if this engine cannot train these members (nothing moves). Default: nothing to check."""

    def step(self, x: Tensor, y: Tensor, lr: float) -> Tensor:
        grads, losses = self.gradients(x, y)
        sgd_update(list(self.params.values()), grads, list(self.momentum_buffers.values()), self.steps == 0, lr,
                   self.momentum, self.nesterov, self.weight_decay)
        self.steps += 1
        return losses

    def state_dict(self) -> PopulationState:
        return {
            "params": {n: p.detach().clone() for n, p in self.params.items()},
            "buffers": {n: b.clone() for n, b in self.buffers.items()},
            "momentum": {n: b.clone() for n, b in self.momentum_buffers.items()},
            "steps": self.steps,
        }

    def load_state_dict(self, state: PopulationState) -> None:
        _check_state(state, self.params, self.buffers)
        with torch.no_grad():
            for group, mine in (("params", self.params), ("buffers", self.buffers), ("momentum", self.momentum_buffers)):
                for n, t in mine.items():
                    t.copy_(state[group][n])
        self.steps = int(state["steps"])


class VmapPopulation(StackedPopulation):
    """All members in one ``torch.func.vmap`` call per step (see the module docstring); any
    model that ``vmap`` takes.

    Args:
        models: N models of one architecture (their current weights are the start).
        config: the member setup (SGD's momentum, Nesterov and weight decay).
    """

    engine = "vmap"

    def __init__(self, models: list[nn.Module], config: TrainConfig) -> None:
        super().__init__(models, config)
        self._template = copy.deepcopy(models[0]).to("meta")  # structure only; tensors come from the stacks
        if self.autocast_dtype is not None:
            _autocast_under_vmap(self._template, self.autocast_dtype)

        def loss(params: dict[str, Tensor], buffers: dict[str, Tensor], x: Tensor, y: Tensor) -> Tensor:
            with self.autocast():
                logits = functional_call(self._template, (params, buffers), (x,))  # (B, K)
            return F.cross_entropy(logits.float(), y)

        def forward(params: dict[str, Tensor], buffers: dict[str, Tensor], x: Tensor) -> Tensor:
            with self.autocast():
                return functional_call(self._template, (params, buffers), (x,)).float()  # (B, K)

        # BatchNorm updates the stacked running statistics in place, member by member.
        self._grad = vmap(grad_and_value(loss), in_dims=(0, 0, 0, None), randomness="different")
        self._forward = vmap(forward, in_dims=(0, 0, None), randomness="different")

    def _detached(self) -> dict[str, Tensor]:
        return {n: p.detach() for n, p in self.params.items()}

    def probe(self, x: Tensor, y: Tensor, models: list[nn.Module] | None = None) -> None:
        """Run one vmapped forward and backward on copies (nothing moves); raises if vmap cannot."""
        buffers = {n: b.clone() for n, b in self.buffers.items()}
        self._template.train()
        self._grad(self._detached(), buffers, x, y)
        self._template.eval()
        self._forward(self._detached(), buffers, x[0])

    def gradients(self, x: Tensor, y: Tensor) -> tuple[list[Tensor], Tensor]:
        self._template.train()
        grads, losses = self._grad(self._detached(), self.buffers, x, y)  # name -> (N, ...), (N,)
        return [grads[n] for n in self.params], losses.detach()

    @torch.no_grad()
    def logits(self, x: Tensor) -> Tensor:
        self._template.eval()
        return self._forward(self._detached(), self.buffers, x)  # (N, B, K)


class GroupedPopulation(StackedPopulation):
    """All members as wide models, each layer grouped by member (:mod:`autodata.pba.grouped`).

    The members are split into consecutive chunks of at most ``members_per_model``, each chunk
    one wide model over views of the stacked tensors (so one SGD update still covers them
    all); per chunk, one forward and one backward of plain autograd per step. Grouping saves
    per-op overhead, but makes every activation as many times larger as there are members in
    the wide model, and a CPU's caches and allocator (page faults on large fresh tensors) then
    cost more than the overhead saves: chunks keep the activations small
    (:func:`grouped_chunk_size`). ``max_pool2d(relu(x))`` runs as
    ``relu(max_pool2d(x))`` (:func:`~autodata.pba.grouped.pool_before_relu`, exact).

    Every layer with tensors must be in :data:`~autodata.pba.grouped.WIDE_LAYERS`, and the
    model's own ``forward`` must act on channels independently outside those layers (checked
    by :meth:`probe` against each member).

    Args:
        models: N models of one architecture (their current weights are the start).
        config: the member setup (SGD's momentum, Nesterov and weight decay).
        channels_last: run in channels-last layout; ``None``: :func:`prefers_channels_last`.
        members_per_model: at most this many members per wide model; ``None``: by the size of
            each call's images (:func:`grouped_chunk_size`).
        pool_first: compute ``max_pool2d(relu(x))`` as ``relu(max_pool2d(x))`` (the same values
            and gradients, less memory traffic).
    """

    engine = "grouped"

    def __init__(self, models: list[nn.Module], config: TrainConfig, channels_last: bool | None = None,
                 members_per_model: int | None = None, pool_first: bool = True) -> None:
        super().__init__(models, config)
        per_model = members_per_model
        if per_model is not None and (isinstance(per_model, bool) or not isinstance(per_model, int) or per_model < 1):
            raise ValueError(f"members_per_model must be None or an int >= 1, but got {members_per_model!r}.")
        self.members_per_model = members_per_model
        self.pool_first = pool_first
        self.channels_last = prefers_channels_last(models[0]) if channels_last is None else channels_last
        if self.channels_last:  # each member's convolution weights channels-last, as the loop's models
            self.params = {n: _channels_last_stack(p) for n, p in self.params.items()}
            self.momentum_buffers = {n: torch.zeros_like(p) for n, p in self.params.items()}
        self._template = copy.deepcopy(models[0]).to("meta")  # structure only
        self._chunks: dict[tuple[int, int], tuple[nn.Module, list[Tensor]]] = {}
        self._grads: list[Tensor] | None = None
        self.model = self._chunk(0, self.size)[0]  # all members in one wide model (probe, inspection)

    def _chunk(self, lo: int, hi: int) -> tuple[nn.Module, list[Tensor]]:
        """Members ``lo .. hi - 1`` as one wide model, and its parameters: leaves that are views of
        the stacked parameters (the update moves them), in the order of ``self.params``."""
        if (lo, hi) not in self._chunks:
            leaves = {n: p.detach()[lo:hi].requires_grad_(True) for n, p in self.params.items()}
            views = {**leaves, **{n: b[lo:hi] for n, b in self.buffers.items()}}
            model = widen(self._template, hi - lo, views)
            model = pool_before_relu(model) if self.pool_first else model
            self._chunks[lo, hi] = (model, list(leaves.values()))
        return self._chunks[lo, hi]

    def chunks(self, x: Tensor) -> list[tuple[int, int]]:
        """The member ranges ``[lo, hi)`` that run as one wide model on images like ``x`` (one
        member's batch, (B, C, H, W)): consecutive, of near-equal sizes."""
        m = self.members_per_model or grouped_chunk_size(x.numel(), self.size)
        k = -(-self.size // min(m, self.size))  # ceil
        bounds = [round(i * self.size / k) for i in range(k + 1)]
        return list(zip(bounds[:-1], bounds[1:]))

    def _wide_input(self, x: Tensor) -> Tensor:
        """(n, B, C, H, W) -> (B, n * C, H, W), member i's channels in block i, in one copy."""
        n, b, c = x.shape[:3]
        if self.channels_last and x.dim() == 5:
            h, w = x.shape[3:]
            nhwc = x.permute(1, 3, 4, 0, 2).contiguous().view(b, h, w, n * c)  # (B, H, W, n * C), one copy
            return nhwc.permute(0, 3, 1, 2)  # (B, n * C, H, W) in channels-last memory
        return x.transpose(0, 1).reshape(b, n * c, *x.shape[3:])

    @staticmethod
    def _member_logits(out: Tensor, n: int) -> Tensor:
        return out.view(out.shape[0], n, -1).transpose(0, 1)  # (n, B, K)

    def gradients(self, x: Tensor, y: Tensor) -> tuple[list[Tensor], Tensor]:
        # each gradient in its parameter's layout (torch._foreach ops fall back to one slow
        # strided kernel per tensor when the layouts of their lists differ), in buffers kept from
        # step to step (fresh ones of this size cost page faults on a CPU)
        if self._grads is None:
            self._grads = [torch.empty_like(p) for p in self.params.values()]
        grads = self._grads
        losses = torch.empty(self.size, dtype=grads[0].dtype, device=grads[0].device)
        for lo, hi in self.chunks(x[0]):
            model, leaves = self._chunk(lo, hi)
            if not model.training:  # (Module.train walks every submodule: a tenth of a ms per call)
                model.train()
            with self.autocast():
                out = model(self._wide_input(x[lo:hi]))
            logits = self._member_logits(out.float(), hi - lo)  # (n, B, K), float32 in every precision
            n, b, k = logits.shape
            loss = F.cross_entropy(logits.reshape(n * b, k), y.repeat(n), reduction="none").view(n, b).mean(1)  # (n,)
            chunk_grads = torch.autograd.grad(loss.sum(), leaves)  # members share no parameter
            with torch.no_grad():
                for full, g in zip(grads, chunk_grads):
                    full[lo:hi].copy_(g)
                losses[lo:hi] = loss
        return grads, losses

    @torch.no_grad()
    def logits(self, x: Tensor) -> Tensor:
        out = []
        for lo, hi in self.chunks(x):
            model = self._chunk(lo, hi)[0].eval()
            wide = self._wide_input(x.unsqueeze(0).expand(hi - lo, *x.shape))  # (B, n * C, ...)
            with self.autocast():
                out.append(self._member_logits(model(wide).float(), hi - lo))
        return torch.cat(out)  # (N, B, K)

    @torch.no_grad()
    def probe(self, x: Tensor, y: Tensor, models: list[nn.Module] | None = None) -> None:
        """Compare the wide model with each member on ``x`` (train and eval mode); raises on a difference.

        Args:
            x: (N, b, ...) each member's images; y: (b,) labels (unused: the logits are compared).
            models: the members as given (copied, never changed); ``None``: only run the wide model.
        """
        saved = {n: b.clone() for n, b in self.buffers.items()}
        try:
            self.model.train()
            _dropout_off(self.model)  # random masks differ between the wide model and a member
            train = self._member_logits(self.model(self._wide_input(x)), self.size)
            self.model.eval()
            wide = self._wide_input(x[0].unsqueeze(0).expand(self.size, *x[0].shape))
            evaluated = self._member_logits(self.model(wide), self.size)
        finally:
            self.model.eval()  # the next step sets train mode again, dropout included
            for n, b in self.buffers.items():
                b.copy_(saved[n])
        for i, member in enumerate(models or []):
            member = copy.deepcopy(member)
            for mode, got, images in (("train", train[i], x[i]), ("eval", evaluated[i], x[0])):
                member.train(mode == "train")
                _dropout_off(member)
                want = member(images)
                if got.shape != want.shape or not torch.allclose(got, want, atol=1e-4, rtol=1e-3):
                    raise ValueError(
                        f"the grouped model must compute each member's own logits, but member {i} differs in {mode} "
                        f"mode (its forward mixes members' channels?)."
                    )


def _channels_last_stack(p: Tensor) -> Tensor:
    """A stacked (N, C_out, C_in, k, k) weight laid out so that each member's weight ``p[i]`` is
    channels-last, as the loop's models are (a convolution takes a weight's layout as a hint: with
    one input channel the input's own layout is ambiguous); other tensors as they are. Still a
    leaf that requires grad."""
    if p.dim() != 5:
        return p
    _, c_out, c_in, kh, kw = p.shape
    out = torch.empty_strided(p.shape, (c_out * kh * kw * c_in, kh * kw * c_in, 1, kw * c_in, c_in), dtype=p.dtype,
                              device=p.device)  # explicit strides: .contiguous() keeps a size-1 C_in's stride
    return out.copy_(p.detach()).requires_grad_(p.requires_grad)


def _dropout_off(model: nn.Module) -> None:
    """Put every dropout layer in eval mode (BatchNorm keeps its mode): the probe compares
    deterministic forwards, and dropout acts per element, so it cannot mix members."""
    for module in model.modules():
        if isinstance(module, nn.modules.dropout._DropoutNd):
            module.eval()


def _conv_in(dtype: torch.dtype, module: nn.Module, x: Tensor) -> Tensor:
    bias = None if module.bias is None else module.bias.to(dtype)
    return module._conv_forward(x.to(dtype), module.weight.to(dtype), bias)  # type: ignore[operator]


def _linear_in(dtype: torch.dtype, module: nn.Module, x: Tensor) -> Tensor:
    bias = None if module.bias is None else module.bias.to(dtype)
    return F.linear(x.to(dtype), module.weight.to(dtype), bias)


def _batch_norm_in_float32(dtype: torch.dtype, module: nn.Module, x: Tensor) -> Tensor:
    return type(module).forward(module, x.float()).to(x.dtype)


VMAP_AUTOCAST_LAYERS: dict[type[nn.Module], Callable[[torch.dtype, nn.Module, Tensor], Tensor]] = {
    nn.Conv1d: _conv_in, nn.Conv2d: _conv_in, nn.Conv3d: _conv_in, nn.Linear: _linear_in,
    nn.BatchNorm1d: _batch_norm_in_float32, nn.BatchNorm2d: _batch_norm_in_float32,
    nn.BatchNorm3d: _batch_norm_in_float32,
}
"""Layer type (exactly) -> its forward ``(dtype, layer, x)`` under ``vmap`` and autocast, where
autocast alone does not do what it does outside ``vmap``. Seen with PyTorch 2.14 on a CPU: under
a plain ``vmap`` (the evaluation) a convolution is not autocast (it computes in float32) and a
linear layer adds its bias in float32 and returns float32 (pytorch/pytorch#192617); under
``vmap(grad_and_value(...))`` (the training step) both were autocast, and their casts change
nothing there (tests/pba/test_pba_bf16_layers.py checks both phases); BatchNorm's batch rule with
batched running statistics has no mixed-type kernel and raises "expected scalar type BFloat16
but found Float" on a bfloat16 input. Convolutions and linear layers therefore cast their
input, weight and bias to ``dtype`` themselves, as autocast does outside ``vmap``; BatchNorm
computes in float32 (its input cast up exactly) and returns its input's dtype, as the native
mixed-type BatchNorm does. Other layers are left to autocast (a matmul is autocast under vmap)."""


def _autocast_under_vmap(model: nn.Module, dtype: torch.dtype) -> None:
    """Give every layer of ``model`` in :data:`VMAP_AUTOCAST_LAYERS` its forward for ``dtype``."""
    for module in model.modules():
        forward = VMAP_AUTOCAST_LAYERS.get(type(module))
        if forward is not None:
            module.forward = functools.partial(forward, dtype, module)  # type: ignore[method-assign]


class LoopPopulation(BasePopulation):
    """One model and one ``torch.optim.SGD`` per member, stepped one after another (any model).

    Args:
        models: N models (trained in place).
        config: the member setup (SGD's momentum, Nesterov and weight decay).
        channels_last: run in channels-last layout; ``None``: :func:`prefers_channels_last`.
    """

    engine = "loop"

    def __init__(self, models: list[nn.Module], config: TrainConfig, channels_last: bool | None = None) -> None:
        super().__init__(models, config)
        self.channels_last = prefers_channels_last(models[0]) if channels_last is None else channels_last
        self.models = [m.to(memory_format=torch.channels_last) if self.channels_last else m for m in models]
        self.optimizers = [
            torch.optim.SGD(m.parameters(), lr=config.lr, momentum=self.momentum, nesterov=self.nesterov,
                            weight_decay=self.weight_decay)
            for m in self.models
        ]

    def step(self, x: Tensor, y: Tensor, lr: float) -> Tensor:
        losses = []
        for i, (model, opt) in enumerate(zip(self.models, self.optimizers)):
            for group in opt.param_groups:
                group["lr"] = lr
            model.train()
            with self.autocast():
                logits = model(_layout(x[i], self.channels_last))
            loss = F.cross_entropy(logits.float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.detach())
        self.steps += 1
        return torch.stack(losses)  # (N,)

    @torch.no_grad()
    def logits(self, x: Tensor) -> Tensor:
        out = []
        x = _layout(x, self.channels_last)
        for model in self.models:
            model.eval()
            with self.autocast():
                out.append(model(x).float())
        return torch.stack(out)  # (N, B, K)

    def state_dict(self) -> PopulationState:
        def stack(pairs_per_member: list[list[tuple[str, Tensor]]]) -> dict[str, Tensor]:
            names = [n for n, _ in pairs_per_member[0]]
            return {n: torch.stack([dict(pairs)[n].detach() for pairs in pairs_per_member]) for n in names}

        momentum: dict[str, Tensor] = {}
        for name, _ in self.models[0].named_parameters():
            per_member = []
            for model, opt in zip(self.models, self.optimizers):
                p = dict(model.named_parameters())[name]
                buf = opt.state.get(p, {}).get("momentum_buffer")
                per_member.append(torch.zeros_like(p.detach()) if buf is None else buf.detach())
            momentum[name] = torch.stack(per_member)
        return {
            "params": stack([list(m.named_parameters()) for m in self.models]),
            "buffers": stack([list(m.named_buffers()) for m in self.models]),
            "momentum": momentum,
            "steps": self.steps,
        }

    def load_state_dict(self, state: PopulationState) -> None:
        _check_state(state, dict(self.models[0].named_parameters()), dict(self.models[0].named_buffers()), self.size)
        steps = int(state["steps"])
        with torch.no_grad():
            for i, (model, opt) in enumerate(zip(self.models, self.optimizers)):
                for n, p in model.named_parameters():
                    p.copy_(state["params"][n][i])
                    if self.momentum and steps > 0:
                        opt.state[p]["momentum_buffer"] = state["momentum"][n][i].clone()
                    else:
                        opt.state.pop(p, None)
                for n, b in model.named_buffers():
                    b.copy_(state["buffers"][n][i])
        self.steps = steps


def _check_state(state: Any, params: dict[str, Tensor], buffers: dict[str, Tensor], size: int | None = None) -> None:
    if not isinstance(state, dict) or not {"params", "buffers", "momentum", "steps"} <= set(state):
        raise ValueError("state must be a population state_dict with params, buffers, momentum and steps, but it is not.")
    for group, mine in (("params", params), ("buffers", buffers), ("momentum", params)):
        theirs = state[group]
        if set(theirs) != set(mine):
            raise ValueError(f"state[{group!r}] must hold the tensors {sorted(mine)}, but got {sorted(theirs)}.")
        for n, t in mine.items():
            want = tuple(t.shape) if size is None else (size, *t.shape)
            if tuple(theirs[n].shape) != want:
                raise ValueError(f"state[{group!r}][{n!r}] must have shape {want}, but got {tuple(theirs[n].shape)}.")


ENGINE_CLASSES: dict[str, type[BasePopulation]] = {
    "grouped": GroupedPopulation,
    "vmap": VmapPopulation,
    "loop": LoopPopulation,
}
"""Engine name -> its population class (``"auto"`` picks one by device: :func:`make_population`)."""

GROUPED_CHUNK_ELEMENTS = 16384
"""The grouped engine puts ``max(1, GROUPED_CHUNK_ELEMENTS // e)`` members in one wide model,
where ``e`` is one member's input batch (batch size x C x H x W): a wide model then takes about
16,384 numbers of input, which keeps its activations within reach of a CPU's caches. Measured (thread CPU
time, population 8, small CNN, 2-core machine under load, ``experiments/pba_throughput.py``):
at 64 x 1x8x8 four members per model 1.0x to 1.6x the loop, two 1.0x to 1.4x, all eight 0.9x to
1.6x from run to run; at 64 x 1x16x16 two 1.1x to 1.2x, one 1.1x (BENCHMARKS.md)."""

GROUPED_MAX_ELEMENTS = GROUPED_CHUNK_ELEMENTS // 2
"""On a CPU, ``"auto"`` groups the members when at least two fit in one wide model: one
member's input batch has at most this many numbers (8,192: 64 or 128 digits of 8 x 8; grouped
1.1x to 1.6x the loop at 64 from run to run, 1.2x at 128). With one member per wide model the
grouped engine is no population engine, but it still beat the loop for the small CNN (1.08x at
64 x 1x16x16, 1.13x at 64 x 1x28x28, 1.16x at 128 x 3x32x32: the pool-first rewrite and the
stacked SGD update); ``"auto"`` keeps the loop there, which takes any model."""


def grouped_chunk_size(elements: int, size: int) -> int:
    """How many members the grouped engine puts in one wide model.

    Args:
        elements: the numbers in one member's input batch (batch size x C x H x W).
        size: N, the number of members.

    Example:
        >>> grouped_chunk_size(64 * 8 * 8, 8), grouped_chunk_size(64 * 28 * 28, 8)
        (4, 1)
    """
    return max(1, min(size, GROUPED_CHUNK_ELEMENTS // max(elements, 1)))


def auto_engine(device: torch.device, config: TrainConfig, example: tuple[Tensor, Tensor] | None) -> str:
    """The engine ``"auto"`` picks: vmap off the CPU; on it, grouped when two members fit in one wide
    model (:data:`GROUPED_MAX_ELEMENTS`), else the loop.

    Args:
        device: where the members live.
        config: the member setup (its ``batch_size``).
        example: ``(x (N, b, C, H, W), y)``, for the image size; ``None`` on a CPU: the loop.
    """
    if device.type != "cpu":
        return "vmap"
    if example is None:
        return "loop"
    per_member = config.batch_size * example[0][0, 0].numel()
    return "grouped" if per_member <= GROUPED_MAX_ELEMENTS else "loop"


def make_population(
    models: list[nn.Module], config: TrainConfig, engine: str = "auto", example: tuple[Tensor, Tensor] | None = None
) -> BasePopulation:
    """The population engine for ``models``: ``"grouped"``, ``"vmap"``, ``"loop"`` or ``"auto"``.

    ``"auto"`` is :func:`auto_engine`'s choice (the faster engine on a CPU for the input size,
    see the module docstring; vmap elsewhere). A model that the chosen engine cannot take (its
    layers, or its behaviour on ``example``, a small batch ``(x (N, b, C, H, W), y (b,))``) falls
    back to the loop with a warning that says why.
    """
    choices = ["auto", *ENGINE_CLASSES]
    if engine not in choices:
        raise ValueError(f"engine must be one of {choices}, but got {engine!r}.")
    device = next(iter(models[0].parameters())).device
    if engine == "auto":
        engine = auto_engine(device, config, example)
    if engine == "loop":
        return LoopPopulation(models, config)
    try:
        population = ENGINE_CLASSES[engine](models, config)
        if example is not None:
            population.probe(*example, models)  # type: ignore[attr-defined]
    except Exception as err:  # any failure of the engine on this model means: train member by member
        name = type(models[0]).__name__
        warnings.warn(
            f"{name} cannot be trained by the {engine} engine ({type(err).__name__}: {str(err).splitlines()[0]}); "
            f"training the population one member after another instead (engine='loop').",
            RuntimeWarning, stacklevel=2,
        )
        return LoopPopulation(models, config)
    return population
