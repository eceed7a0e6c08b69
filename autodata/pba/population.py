"""A population of models trained together: all at once with ``torch.func.vmap``, or in a loop.

PBA (Ho et al., ICML 2019) trains its population as separate Ray trials. Here the members live
in one process on one device. :class:`VmapPopulation` stacks the members' parameters and
buffers (``torch.func.stack_module_state``) and computes every member's forward, loss and
gradients in one ``vmap(grad_and_value(functional_call))`` call; it then steps SGD (momentum,
Nesterov, weight decay; ``torch.optim.SGD``'s update, written on the stacked tensors).
BatchNorm keeps per-member statistics: the running mean, variance and batch count are
stacked buffers, passed in batched, and BatchNorm's in-place update of a *batched* buffer is
allowed under ``vmap`` (the torch.func docs' failure case is an unbatched buffer updated from
a batched input, which ``replace_all_batch_norm_modules_`` avoids by dropping the running
statistics altogether; members here keep theirs). :class:`LoopPopulation` is the reference:
one ``nn.Module`` and one ``torch.optim.SGD`` per member, stepped one after another. It takes
any model; :func:`make_population` falls back to it, with a warning that says why, when a model
cannot run under ``vmap``.

Both share one state format (:meth:`BasePopulation.state_dict`: stacked tensors by name), so a
search checkpointed by one engine resumes with the other, and the two can be compared.

Which is faster depends on the device. On a CPU, ``vmap`` turns each convolution into a
grouped convolution (about 2x slower per FLOP in oneDNN) and BatchNorm with batched weights
into unfused element-wise ops, so the loop wins there (``experiments/pba_throughput.py``);
on a GPU one large kernel per layer replaces N small ones. ``engine="auto"`` picks the loop
on a CPU and ``vmap`` elsewhere.

Shape:
    - step: x :math:`(N, B, C, H, W)` (each member's own augmented images), y :math:`(B,)`;
      returns the losses :math:`(N,)`.
    - logits: x :math:`(B, C, H, W)` (shared clean images); returns :math:`(N, B, K)`.
"""
from __future__ import annotations

import abc
import copy
import warnings
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, grad_and_value, stack_module_state, vmap

from autodata.train import TrainConfig

__all__ = ["BasePopulation", "LoopPopulation", "VmapPopulation", "make_population", "sgd_settings"]

PopulationState = dict[str, Any]


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
        self.steps = 0  # optimizer steps taken (0: no momentum buffer yet, as torch.optim.SGD)

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


class VmapPopulation(BasePopulation):
    """All members in one ``torch.func.vmap`` call per step (see the module docstring).

    Args:
        models: N models of one architecture (their current weights are the start).
        config: the member setup (SGD's momentum, Nesterov and weight decay).
    """

    engine = "vmap"

    def __init__(self, models: list[nn.Module], config: TrainConfig) -> None:
        super().__init__(models, config)
        params, buffers = stack_module_state(list(models))
        self.params = {n: p.detach().clone() for n, p in params.items()}  # name -> (N, ...)
        self.buffers = {n: b.detach().clone() for n, b in buffers.items()}  # name -> (N, ...)
        self.momentum_buffers = {n: torch.zeros_like(p) for n, p in self.params.items()}
        self._template = copy.deepcopy(models[0]).to("meta")  # structure only; tensors come from the stacks

        def loss(params: dict[str, Tensor], buffers: dict[str, Tensor], x: Tensor, y: Tensor) -> Tensor:
            logits = functional_call(self._template, (params, buffers), (x,))  # (B, K)
            return F.cross_entropy(logits, y)

        def forward(params: dict[str, Tensor], buffers: dict[str, Tensor], x: Tensor) -> Tensor:
            return functional_call(self._template, (params, buffers), (x,))  # (B, K)

        # BatchNorm updates the stacked running statistics in place, member by member.
        self._grad = vmap(grad_and_value(loss), in_dims=(0, 0, 0, None), randomness="different")
        self._forward = vmap(forward, in_dims=(0, 0, None), randomness="different")

    def probe(self, x: Tensor, y: Tensor) -> None:
        """Run one vmapped forward and backward on copies (nothing moves); raises if vmap cannot."""
        buffers = {n: b.clone() for n, b in self.buffers.items()}
        self._template.train()
        self._grad(self.params, buffers, x, y)
        self._template.eval()
        self._forward(self.params, buffers, x[0])

    def step(self, x: Tensor, y: Tensor, lr: float) -> Tensor:
        self._template.train()
        grads, losses = self._grad(self.params, self.buffers, x, y)  # name -> (N, ...), (N,)
        m, wd = self.momentum, self.weight_decay
        with torch.no_grad():
            for name, p in self.params.items():
                g = grads[name]  # (N, ...)
                if wd:
                    g = g.add(p, alpha=wd)
                if m:
                    buf = self.momentum_buffers[name]
                    if self.steps == 0:
                        buf.copy_(g)
                    else:
                        buf.mul_(m).add_(g)
                    g = g.add(buf, alpha=m) if self.nesterov else buf
                p.add_(g, alpha=-lr)
        self.steps += 1
        return losses.detach()

    @torch.no_grad()
    def logits(self, x: Tensor) -> Tensor:
        self._template.eval()
        return self._forward(self.params, self.buffers, x)  # (N, B, K)

    def state_dict(self) -> PopulationState:
        return {
            "params": {n: p.clone() for n, p in self.params.items()},
            "buffers": {n: b.clone() for n, b in self.buffers.items()},
            "momentum": {n: b.clone() for n, b in self.momentum_buffers.items()},
            "steps": self.steps,
        }

    def load_state_dict(self, state: PopulationState) -> None:
        _check_state(state, self.params, self.buffers)
        for group, mine in (("params", self.params), ("buffers", self.buffers), ("momentum", self.momentum_buffers)):
            for n, t in mine.items():
                t.copy_(state[group][n])
        self.steps = int(state["steps"])


class LoopPopulation(BasePopulation):
    """One model and one ``torch.optim.SGD`` per member, stepped one after another (any model).

    Args:
        models: N models (trained in place).
        config: the member setup (SGD's momentum, Nesterov and weight decay).
    """

    engine = "loop"

    def __init__(self, models: list[nn.Module], config: TrainConfig) -> None:
        super().__init__(models, config)
        self.models = list(models)
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
            loss = F.cross_entropy(model(x[i]), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.detach())
        self.steps += 1
        return torch.stack(losses)  # (N,)

    @torch.no_grad()
    def logits(self, x: Tensor) -> Tensor:
        out = []
        for model in self.models:
            model.eval()
            out.append(model(x))
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


def make_population(
    models: list[nn.Module], config: TrainConfig, engine: str = "auto", example: tuple[Tensor, Tensor] | None = None
) -> BasePopulation:
    """The population engine for ``models``: ``"vmap"``, ``"loop"`` or ``"auto"``.

    ``"auto"`` is the loop on a CPU (faster there, see the module docstring) and vmap
    elsewhere. A model that ``vmap`` cannot take (tried on ``example``, a small batch
    ``(x (N, b, C, H, W), y (b,))``) falls back to the loop with a warning that says why.
    """
    if engine not in ("auto", "vmap", "loop"):
        raise ValueError(f"engine must be one of ['auto', 'vmap', 'loop'], but got {engine!r}.")
    device = next(iter(models[0].parameters())).device
    if engine == "loop" or (engine == "auto" and device.type == "cpu"):
        return LoopPopulation(models, config)
    population = VmapPopulation(models, config)
    if example is not None:
        try:
            population.probe(*example)
        except Exception as err:  # any failure of a vmap transform means: train member by member
            name = type(models[0]).__name__
            warnings.warn(
                f"{name} cannot be trained under torch.func.vmap ({type(err).__name__}: {str(err).splitlines()[0]}); "
                f"training the population one member after another instead (engine='loop').",
                RuntimeWarning, stacklevel=2,
            )
            return LoopPopulation(models, config)
    return population
