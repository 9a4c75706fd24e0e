"""Symbolic tensors and graph nodes: what ``layer(keras.Input(...))`` returns and records.

A ``KerasTensor`` holds no data: a shape with None for the sizes only data can tell
(usually B and T), a dtype, whether a Keras mask travels with it, and where it came
from (``history``: the layer, the index of the call on that layer, the output index).
Calling a layer on KerasTensors records a ``Node`` (the layer and the call's arguments
with KerasTensors where tensors will be) and returns KerasTensors for its outputs.
``keras.Model(inputs, outputs)`` later collects the nodes between inputs and outputs
into a graph that runs in a precomputed order (``rnnkit.keras.models.functional``).

How a node's outputs are found: the node is *run* once, by the same function that runs
it inside a model (``run_node``), on small tensors (zeros for floats, ones for integer
ids, True for bools) in which each None size is filled in. So the output structure
(one tensor or a list, as with ``return_state=True``), dtype, mask and every check a
layer makes on its input are exactly those of a real call, for every layer, with no
second description of the layer to keep in sync; a wrong rank or feature size fails
here, when the graph is built, with the layer's own message. Shapes come from two such
runs with different fillers (B = 2 then 3, other None sizes 13 then 17): an output size
that changes between them depends on a free input size and becomes None. The runs take
place in eval mode under ``no_grad``, and the carried states of stateful layers are
restored afterwards. They also build a lazy layer, from the filled-in shape; rnnkit's
layers take only feature sizes from it.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Iterator, Optional

import torch
from torch import Tensor, nn

Shape = tuple[Optional[int], ...]

# None sizes are filled with these in the two shape-finding runs; they differ so that a
# size that depends on a free input size differs too (primes, and large enough for
# typical pooling windows and kernels).
_FILL = ({"batch": 2, "free": 13}, {"batch": 3, "free": 17})

_DTYPES = {
    "float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32, "float64": torch.float64,
    "int32": torch.int32, "int64": torch.int64, "uint8": torch.uint8, "int8": torch.int8, "int16": torch.int16,
    "bool": torch.bool,
}


def input_dtype(dtype: Any) -> torch.dtype:
    """``Input``'s dtype: None (the default float), a torch dtype or a Keras name ("int32", "bool", ...)."""
    if dtype is None:
        return torch.get_default_dtype()
    if isinstance(dtype, torch.dtype) and not dtype.is_complex:
        return dtype
    if isinstance(dtype, str) and dtype in _DTYPES:
        return _DTYPES[dtype]
    raise ValueError(f"Received an invalid value for argument `dtype`: expected one of {sorted(_DTYPES)} or a torch "
                     f"dtype, got {dtype!r}")


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


def format_shape(shape: Shape) -> str:
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


class KerasTensor:
    """A symbolic tensor: shape (None = known only from data), dtype, mask flag, and its origin.

    ``history`` is (layer, node_index, tensor_index): the layer that made it, which of
    that layer's calls, and which of the call's outputs. Arithmetic on a KerasTensor is
    not recorded; wrap it in a ``Lambda`` layer.
    """

    __slots__ = ("shape", "dtype", "has_mask", "history", "name", "__weakref__")

    def __init__(self, shape: Shape, dtype: torch.dtype, has_mask: bool = False,
                 history: Optional[tuple[Any, int, int]] = None, name: Optional[str] = None) -> None:
        self.shape = tuple(shape)
        self.dtype = dtype
        self.has_mask = has_mask
        self.history = history
        self.name = name

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def node(self) -> "Node":
        layer, node_index, _ = self.history  # type: ignore[misc]
        return layer._inbound_nodes[node_index]

    def __repr__(self) -> str:
        return (f"<KerasTensor shape={format_shape(self.shape)}, dtype={dtype_name(self.dtype)}, "
                f"name={self.name!r}{', masked' if self.has_mask else ''}>")

    def __bool__(self) -> bool:
        raise TypeError(f"{self!r} is symbolic and has no truth value; layers compute on it only inside a Model")

    def _no_ops(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(f"{self!r} is symbolic: operators and torch functions are not recorded in a functional "
                        "model; wrap the computation in a layers.Lambda layer")

    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = __truediv__ = __matmul__ = __getitem__ = _no_ops
    __neg__ = __pow__ = __lt__ = __gt__ = __le__ = __ge__ = _no_ops

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        self._no_ops()


def flatten(structure: Any) -> list[Any]:
    """The leaves of nested lists/tuples/dicts (dicts in key order as given), depth first."""
    return list(_leaves(structure))


def _leaves(s: Any) -> Iterator[Any]:
    if isinstance(s, (list, tuple)):
        for e in s:
            yield from _leaves(e)
    elif isinstance(s, dict):
        for e in s.values():
            yield from _leaves(e)
    else:
        yield s


def map_structure(fn: Callable[[Any], Any], s: Any) -> Any:
    if isinstance(s, list):
        return [map_structure(fn, e) for e in s]
    if isinstance(s, tuple):
        return tuple(map_structure(fn, e) for e in s)
    if isinstance(s, dict):
        return {k: map_structure(fn, v) for k, v in s.items()}
    return fn(s)


def pack_like(structure: Any, flat: list[Any]) -> Any:
    """Inverse of ``flatten``: leaves back into ``structure``'s shape."""
    it = iter(flat)
    return map_structure(lambda _: next(it), structure)


def is_symbolic(args: Any, kwargs: Optional[dict] = None) -> bool:
    """Whether any leaf of a call's arguments is a KerasTensor (then the call records a node).

    Runs on every eager layer call, so it avoids generators: a tensor argument costs one
    isinstance check.
    """
    for a in args:
        if isinstance(a, KerasTensor) or (isinstance(a, (list, tuple, dict)) and _has_symbolic(a)):
            return True
    if kwargs:
        for v in kwargs.values():
            if isinstance(v, KerasTensor) or (isinstance(v, (list, tuple, dict)) and _has_symbolic(v)):
                return True
    return False


def _has_symbolic(s: Any) -> bool:
    return any(isinstance(x, KerasTensor) for x in _leaves(s))


class Node:
    """One call of a layer on symbolic tensors: the layer, its arguments, its outputs.

    ``args``/``kwargs`` are the call's arguments with KerasTensors in place of tensors;
    ``outputs`` is what the call returned (a KerasTensor or a list of them); ``parents``
    the KerasTensors it reads, in order.
    """

    def __init__(self, layer: Any, args: tuple, kwargs: dict, outputs: Any) -> None:
        self.layer = layer
        self.args = args
        self.kwargs = kwargs
        self.outputs = outputs
        self.flat_outputs: list[KerasTensor] = flatten(outputs)
        self.parents: list[KerasTensor] = [x for x in flatten((args, kwargs)) if isinstance(x, KerasTensor)]

    @property
    def is_input(self) -> bool:
        return not self.parents and bool(getattr(self.layer, "is_input_layer", False))


def inbound_nodes(layer: Any) -> list[Node]:
    nodes = layer.__dict__.get("_inbound_nodes")
    if nodes is None:
        nodes = layer.__dict__["_inbound_nodes"] = []
    return nodes


# ----------------------------------------------------------------------------- running

_TAKES: dict[type, frozenset[str]] = {}


def _takes(layer: Any) -> frozenset[str]:
    """Which of "mask"/"training" a layer's forward accepts (cached per class)."""
    cls = type(layer)
    if cls not in _TAKES:
        from ..models.model import Model

        params = inspect.signature(layer.forward).parameters
        if isinstance(layer, Model):
            # A model takes `training`; its own graph carries its masks.
            _TAKES[cls] = frozenset({"training"})
        elif any(p.kind is p.VAR_KEYWORD for p in params.values()):
            _TAKES[cls] = frozenset({"mask", "training"})
        else:
            _TAKES[cls] = frozenset({"mask", "training"} & set(params))
    return _TAKES[cls]


def run_node(layer: Any, args: tuple, kwargs: dict, value: Callable[[KerasTensor], Any],
             mask: Callable[[KerasTensor], Any], training: Optional[bool]) -> tuple[Any, list[Any]]:
    """Call ``layer`` with each KerasTensor in ``args``/``kwargs`` replaced by ``value(kt)``.

    Keras's mask rules: when the call gives no ``mask=`` and the layer's forward takes
    one, the masks of the first argument's tensors go in (one mask, or a list for a list
    of inputs); the outputs' masks are ``layer.compute_mask(first argument, that mask)``,
    the first output getting it when the layer returns several tensors.
    Returns (the layer's result, the masks of its flattened tensors).
    """
    from .base import Layer

    def real(x: Any) -> Any:
        return value(x) if isinstance(x, KerasTensor) else x

    call_args = map_structure(real, args)
    call_kwargs = map_structure(real, kwargs)
    takes = _takes(layer)
    first = args[0] if args else None
    if "mask" in kwargs:
        in_mask = call_kwargs["mask"]
    else:
        in_mask = map_structure(lambda x: mask(x) if isinstance(x, KerasTensor) else None, first)
        if all(m is None for m in flatten(in_mask)):
            in_mask = None
        if in_mask is not None and "mask" in takes:
            call_kwargs["mask"] = in_mask
    if training is not None and "training" in takes and "training" not in kwargs:
        call_kwargs["training"] = training
    out = layer(*call_args, **call_kwargs)
    flat_out = flatten(out)
    out_mask = layer.compute_mask(call_args[0] if call_args else None, in_mask) if isinstance(layer, Layer) else None
    if out_mask is None:
        masks: list[Any] = [None] * len(flat_out)
    elif isinstance(out_mask, Tensor):
        masks = [out_mask] + [None] * (len(flat_out) - 1)
    else:
        masks = list(flatten(out_mask)) + [None] * max(0, len(flat_out) - len(flatten(out_mask)))
    return out, masks[: len(flat_out)]


def _filled(kt: KerasTensor, fill: dict[str, int]) -> Tensor:
    shape = [fill["batch"] if (i == 0 and d is None) else fill["free"] if d is None else d for i, d in enumerate(kt.shape)]
    if kt.dtype == torch.bool:
        return torch.ones(shape, dtype=torch.bool)
    if kt.dtype.is_floating_point:
        return torch.zeros(shape, dtype=kt.dtype)
    return torch.ones(shape, dtype=kt.dtype)  # token ids: 1 is a real token even with mask_zero=True


def _describe(args: tuple, kwargs: dict, layer: Any) -> str:
    try:
        names = [p for p in inspect.signature(layer.forward).parameters][: len(args)]
    except (TypeError, ValueError):
        names = []
    names = ["inputs" if i == 0 else (names[i] if i < len(names) else f"args[{i}]") for i in range(len(args))]
    parts = []

    def walk(s: Any, path: str) -> None:
        if isinstance(s, KerasTensor):
            origin = s.history[0].name if s.history is not None else "?"
            parts.append(f"`{path}` of shape {format_shape(s.shape)} (from {origin!r})")
        elif isinstance(s, (list, tuple)):
            for i, e in enumerate(s):
                walk(e, f"{path}[{i}]")
        elif isinstance(s, dict):
            for k, e in s.items():
                walk(e, f"{path}[{k!r}]")

    for name, a in zip(names, args):
        walk(a, name)
    for k, v in kwargs.items():
        walk(v, k)
    return ", ".join(parts)


def _stateful_modules(layer: nn.Module) -> list[nn.Module]:
    return [m for m in layer.modules() if "states" in m.__dict__]


def probe(layer: Any, args: tuple, kwargs: dict, fill: dict[str, int]) -> tuple[Any, list[Any]]:
    """Run the call once on filled-in tensors (eval mode, no grad, carried states kept)."""
    carried = [(m, m.states) for m in _stateful_modules(layer)]
    was_training = layer.training
    layer.train(False)
    try:
        with torch.no_grad():
            return run_node(layer, args, kwargs, lambda kt: _filled(kt, fill),
                            lambda kt: torch.ones(_filled(kt, fill).shape[:2], dtype=torch.bool) if kt.has_mask else None,
                            training=None)
    finally:
        layer.train(was_training)
        for m, states in carried:
            m.states = states


def call_symbolic(layer: Any, args: tuple, kwargs: dict) -> Any:
    """``layer(*args, **kwargs)`` on KerasTensors: record a Node, return its symbolic outputs."""
    try:
        runs = [probe(layer, args, kwargs, fill) for fill in _FILL]
    except (ValueError, TypeError, RuntimeError, IndexError, NotImplementedError) as e:
        raise type(e)(f"Layer {layer.name!r} ({type(layer).__name__}) cannot be called on {_describe(args, kwargs, layer)}: "
                      f"{e}") from None
    (result, masks), (second, _) = runs
    first = flatten(result)
    second = flatten(second)
    for i, t in enumerate(first):
        if not isinstance(t, Tensor):
            raise TypeError(f"Layer {layer.name!r} returned {type(t).__name__} as output {i}; a layer in a functional "
                            "model must return tensors (or a list of tensors)")
    nodes = inbound_nodes(layer)
    node_index = len(nodes)
    flat = []
    for i, (a, b, m) in enumerate(zip(first, second, masks)):
        shape = tuple(x if x == y else None for x, y in zip(a.shape, b.shape))
        name = layer.name if len(first) == 1 else f"{layer.name}_{i}"
        flat.append(KerasTensor(shape, a.dtype, has_mask=m is not None, history=(layer, node_index, i), name=name))
    # The structure of a real call's result: one tensor, or a list (return_state=True, ...).
    outputs = pack_like(result, flat)
    nodes.append(Node(layer, tuple(args), dict(kwargs), outputs))
    return outputs

