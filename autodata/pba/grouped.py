"""The population as one wide model: every layer grouped by member, plain autograd, no vmap.

N members of one architecture are N independent networks. Laid side by side along the
channels, ``(B, C, H, W)`` per member becomes ``(B, N * C, H, W)`` for all of them, and each
layer with weights becomes *one* grouped layer: a convolution with ``groups = N * groups``, a
BatchNorm over ``N * C`` channels (per-member statistics, because every channel has its own;
the running buffers are views of the stacked ``(N, C)`` buffers, updated in place), a linear
layer as one batched matmul. Layers without weights (ReLU, pooling, dropout, flatten after a
global pool) act per channel and are kept as they are, so the model's own ``forward`` runs the
whole population. One forward and one backward per step replace N of each: on a CPU that
saves the per-op overhead (Python, dispatch, allocation) that dominates small layers, and,
unlike ``vmap``, BatchNorm stays one native op.

:func:`widen` converts a module tree through :data:`WIDE_LAYERS`, a registry from a layer type
to its grouped version; a layer with weights of any other type is an error (the caller falls
back to another engine). A ``forward`` that mixes channels (a softmax or a concatenation over
them, a reshape that moves them) cannot be seen from the layers; the population's ``probe``
compares the wide model with each member on an example batch and refuses on any difference.
:func:`pool_before_relu` rewrites a wide model's ``max_pool2d(relu(x))`` as the equal
``relu(max_pool2d(x))`` (:mod:`torch.fx`), which spares the wide activations a pass.

Example:
    >>> from autodata.models import create_model
    >>> members = [create_model("small_cnn", num_classes=3) for _ in range(2)]
    >>> params, buffers = stacked_state(members)
    >>> wide = widen(members[0], 2, {**params, **buffers})
    >>> wide(torch.rand(4, 2 * 1, 8, 8)).shape  # (B, N * K): member i's logits are columns 3i..3i+2
    torch.Size([4, 6])
"""
from __future__ import annotations

import copy
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, fx, nn
from torch.func import stack_module_state

from autodata.models.normalize import Normalize

__all__ = [
    "WIDE_LAYERS", "WideBatchNorm", "WideConv2d", "WideLinear", "WideNormalize", "pool_before_relu", "stacked_state",
    "widen",
]


def stacked_state(models: list[nn.Module]) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Every member's parameters and buffers stacked: ``name -> (N, ...)``, contiguous, detached.

    Parameters come back as leaves that require grad; buffers as plain tensors.
    """
    params, buffers = stack_module_state(list(models))
    p = {n: t.detach().clone().contiguous().requires_grad_(True) for n, t in params.items()}
    b = {n: t.detach().clone().contiguous() for n, t in buffers.items()}
    return p, b


class _Wide(nn.Module):
    """A grouped layer: reads its member-stacked tensors (``name -> (N, ...)``) at each call."""

    def __init__(self, layer: nn.Module, size: int, tensors: dict[str, Tensor]) -> None:
        super().__init__()
        self.size = size
        self.tensors = tensors  # the population's own tensors (updated in place), never copies

    def _get(self, name: str) -> Tensor | None:
        return self.tensors.get(name)


class WideConv2d(_Wide):
    """N ``nn.Conv2d`` as one convolution with ``groups = N * groups``.

    Shape:
        - x: :math:`(B, N C_{in}, H, W)`; output: :math:`(B, N C_{out}, H', W')`.
    """

    def __init__(self, conv: nn.Conv2d, size: int, tensors: dict[str, Tensor]) -> None:
        super().__init__(conv, size, tensors)
        if conv.padding_mode != "zeros":
            raise ValueError(f"Conv2d.padding_mode must be 'zeros' to be grouped, but got {conv.padding_mode!r}.")
        self.stride, self.padding, self.dilation, self.groups = conv.stride, conv.padding, conv.dilation, conv.groups

    def forward(self, x: Tensor) -> Tensor:
        w = self.tensors["weight"]  # (N, C_out, C_in / groups, k, k)
        # (N C_out, C_in / groups, k, k); w[0] keeps the strides of a one-channel channels-last weight
        # (flatten re-strides its size-1 channel), and a one-channel input leaves the layout to them
        w = w[0] if self.size == 1 else w.flatten(0, 1)
        bias = self._get("bias")
        return F.conv2d(x, w, None if bias is None else bias.flatten(), self.stride, self.padding,
                        self.dilation, self.size * self.groups)


class WideBatchNorm(_Wide):
    """N ``nn.BatchNorm1d/2d`` as one BatchNorm over ``N * C`` channels, statistics per member.

    The running mean and variance are flat views of the stacked ``(N, C)`` buffers, so the
    native op's in-place update is each member's own. ``num_batches_tracked`` counts per member
    (all members step together, so the counts are equal).
    """

    def __init__(self, bn: nn.modules.batchnorm._BatchNorm, size: int, tensors: dict[str, Tensor]) -> None:
        super().__init__(bn, size, tensors)
        self.eps, self.momentum, self.track_running_stats = bn.eps, bn.momentum, bn.track_running_stats

    def forward(self, x: Tensor) -> Tensor:
        mean, var = self._get("running_mean"), self._get("running_var")
        use_batch = self.training or mean is None
        factor = 0.0 if self.momentum is None else self.momentum
        count = self._get("num_batches_tracked")
        if self.training and self.track_running_stats and count is not None:
            count.add_(1)
            if self.momentum is None:  # cumulative moving average, as nn.BatchNorm
                factor = 1.0 / float(count[0])
        weight, bias = self._get("weight"), self._get("bias")
        return F.batch_norm(
            x, None if mean is None else mean.view(-1), None if var is None else var.view(-1),
            None if weight is None else weight.flatten(), None if bias is None else bias.flatten(),
            use_batch, factor, self.eps,
        )


class WideLinear(_Wide):
    """N ``nn.Linear`` as one batched matmul.

    Shape:
        - x: :math:`(B, N K_{in})` (member ``i``'s features in columns ``i K_in .. (i + 1) K_in``);
          output: :math:`(B, N K_{out})`.
    """

    def forward(self, x: Tensor) -> Tensor:
        w = self.tensors["weight"]  # (N, K_out, K_in)
        n, _, k_in = w.shape
        if x.dim() != 2 or x.shape[1] != n * k_in:
            raise ValueError(f"x must have shape (B, {n * k_in}) for {n} grouped Linear layers, but got {tuple(x.shape)}.")
        xs = x.view(x.shape[0], n, k_in).transpose(0, 1)  # (N, B, K_in)
        bias = self._get("bias")
        if bias is None:
            out = torch.bmm(xs, w.transpose(1, 2))
        else:
            out = torch.baddbmm(bias.unsqueeze(1), xs, w.transpose(1, 2))  # (N, B, K_out)
        return out.transpose(0, 1).flatten(1)  # (B, N * K_out)


class WideNormalize(_Wide):
    """N :class:`~autodata.models.Normalize` (``(x - mean) / std`` per channel) side by side."""

    def forward(self, x: Tensor) -> Tensor:
        mean, std = self.tensors["mean"], self.tensors["std"]  # (N, 1, C, 1, 1)
        return (x - mean.reshape(1, -1, 1, 1)) / std.reshape(1, -1, 1, 1)


WIDE_LAYERS: dict[type[nn.Module], Callable[[nn.Module, int, dict[str, Tensor]], nn.Module]] = {
    nn.Conv2d: WideConv2d,
    nn.BatchNorm1d: WideBatchNorm,
    nn.BatchNorm2d: WideBatchNorm,
    nn.Linear: WideLinear,
    Normalize: WideNormalize,
}
"""Layer type (exactly; a subclass may change ``forward``) -> its grouped version, built from
``(layer, N, {local name: stacked tensor})``. Add an entry to widen another layer."""


def widen(template: nn.Module, size: int, tensors: dict[str, Tensor]) -> nn.Module:
    """A copy of ``template`` with every layer that holds tensors replaced by its grouped version.

    Args:
        template: one member (its structure; its tensors are not used).
        size: N, the number of members.
        tensors: every stacked parameter and buffer of the population, by the member's names.

    Raises:
        ValueError: a layer holds tensors and its type is not in :data:`WIDE_LAYERS`.
    """
    wide = copy.deepcopy(template).to("meta")  # structure only; the stacked tensors are the data
    replaced: dict[str, nn.Module] = {}
    for name, module in wide.named_modules():
        own = [n for n, _ in module.named_parameters(recurse=False)] + [n for n, _ in module.named_buffers(recurse=False)]
        if not own:
            continue
        if any(name == r or name.startswith(r + ".") for r in replaced if r):
            continue  # inside a replaced layer
        build = WIDE_LAYERS.get(type(module))
        if build is None:
            raise ValueError(
                f"every layer with parameters or buffers must have a grouped version in WIDE_LAYERS, but "
                f"{name or 'the model'} is a {type(module).__name__}."
            )
        prefix = f"{name}." if name else ""
        local = {k[len(prefix):]: t for k, t in tensors.items() if k.startswith(prefix) and "." not in k[len(prefix):]}
        replaced[name] = build(module, size, local)
    if "" in replaced:
        return replaced[""]
    for name, module in replaced.items():
        parent_name, _, child = name.rpartition(".")
        setattr(wide.get_submodule(parent_name), child, module)
    return wide


class _LayerTracer(fx.Tracer):
    """Traces a (wide) model's ``forward`` with every layer as one call: grouped and PyTorch layers
    alike (their insides are not rewritten, only what the model's own code does between them)."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return isinstance(m, _Wide) or super().is_leaf_module(m, module_qualified_name)


def _is_relu(node: fx.Node, modules: dict[str, nn.Module]) -> bool:
    if node.op == "call_function":
        return node.target in (F.relu, torch.relu) and not node.kwargs.get("inplace", False) and len(node.args) == 1
    module = modules.get(str(node.target)) if node.op == "call_module" else None
    return type(module) is nn.ReLU and not module.inplace


def _all_equal(v: object, value: int) -> bool:
    """Whether an int or a tuple of ints (a pooling option) is ``value`` in every dimension."""
    items = v if isinstance(v, (tuple, list)) else (v,)
    return all(isinstance(i, int) and i == value for i in items)


def _is_max_pool(node: fx.Node, modules: dict[str, nn.Module]) -> bool:
    """A max-pool whose every window holds an element of the input: with padding and dilation a
    window can fall wholly in the padding (its maximum -inf, not relu's 0), so not both."""
    if node.op == "call_function":
        if node.target is not F.max_pool2d or len(node.args) >= 7 or node.kwargs.get("return_indices", False):
            return False
        options = dict(zip(("padding", "dilation"), node.args[3:5]))
        padding, dilation = node.kwargs.get("padding", options.get("padding", 0)), node.kwargs.get(
            "dilation", options.get("dilation", 1))
    else:
        module = modules.get(str(node.target)) if node.op == "call_module" else None
        if type(module) is not nn.MaxPool2d or module.return_indices:
            return False
        padding, dilation = module.padding, module.dilation
    return _all_equal(padding, 0) or _all_equal(dilation, 1)


def _trace(model: nn.Module, training: bool) -> fx.Graph:
    """``model``'s graph traced with every module in train (or eval) mode; the modes are restored."""
    modes = [(m, m.training) for m in model.modules()]
    try:
        model.train(training)
        return _LayerTracer().trace(model)
    finally:
        for m, mode in modes:
            m.training = mode


def pool_before_relu(model: nn.Module) -> nn.Module:
    """``model`` with every ``max_pool2d(relu(x))`` computed as ``relu(max_pool2d(x))``; ``model``
    itself when its ``forward`` cannot be traced (:mod:`torch.fx`) or has no such pair.

    Both orders give the same values and the same gradients (max-pooling and ReLU commute: the
    ReLU is monotone; a window whose maximum is not positive passes no gradient either way),
    but ReLU and its backward then touch a quarter of the elements (a 2 x 2 pool). In the
    grouped model these are N-times-larger activations that fall out of a CPU's caches, so the
    saving is larger there (small CNN, 8 members, 64 x 1x8x8, thread CPU time: the wide model of
    all 8 about 1.2x faster in one run; the loop of members 1.0x to 1.1x, ``BENCHMARKS.md``).

    A trace fixes what the model's own code reads from ``self.training`` (a functional dropout's
    ``training=self.training``); a model whose graph differs between train and eval mode is kept
    as it is, as is a max-pool with both padding and dilation (a window may then lie wholly in
    the padding: ``-inf`` against ReLU's 0).

    Args:
        model: any module (typically a :func:`widen` result).

    Example:
        >>> net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.MaxPool2d(2))
        >>> fast = pool_before_relu(net)
        >>> [type(m).__name__ for m in fast.children()]
        ['Conv2d', 'MaxPool2d', 'ReLU']
        >>> x = torch.randn(1, 1, 6, 6)
        >>> torch.equal(fast(x), net(x))
        True
    """
    try:
        graph = _trace(model, True)
        if str(graph) != str(_trace(model, False)):  # its code reads ``self.training``, which a trace fixes
            return model
    except Exception:  # data-dependent control flow, unsupported Python: keep the model as it is
        return model
    modules = dict(model.named_modules())
    swapped = 0
    for pool in list(graph.nodes):
        relu = pool.args[0] if _is_max_pool(pool, modules) and pool.args else None
        if not isinstance(relu, fx.Node) or not _is_relu(relu, modules) or len(relu.users) != 1:
            continue
        pool.replace_input_with(relu, relu.args[0])  # pool(x)
        pool.replace_all_uses_with(relu)  # ... users now read relu(...)
        relu.replace_input_with(relu.args[0], pool)  # relu(pool(x))
        pool.append(relu)  # keep the graph in topological order
        swapped += 1
    if not swapped:
        return model
    graph.lint()
    out = fx.GraphModule(model, graph, class_name=type(model).__name__)
    out.training = model.training  # its layers are the model's own, modes as they are (not out.train())
    return out
