r"""ONNX export of a ``Sequential`` model, written node by node from the layers' weights.

The graph is built here with ``onnx.helper``, from the model's layer list and without tracing
(``torch.onnx.export`` works too, through ``rnnkit.onnx_native``), and each recurrent layer
becomes one of ONNX's own ``RNN``, ``LSTM`` or
``GRU`` operators, fed the layer's weights in ONNX's layout (the table in ``rnnkit.onnx_native``,
which writes the same operators for ``torch.onnx.export`` of ``rnnkit.nn`` modules).

The graph takes ``"input"``, (batch, time, F) floats or (batch, time) int64 token ids
(batch and time are symbolic dims, so any batch size and sequence length run), and gives
``"output"``. Weights keep the model's dtype (float32, or float64).

Masks: ``Embedding(mask_zero=True)`` and ``Masking`` become ``sequence_lens`` of the
recurrent operators, the number of unmasked steps in each row. That is the same as our
mask when the padding sits at the end of each row (right padding, as
``pad_sequences(padding="post")`` makes); a mask with holes (a padding id or an all-
``mask_value`` step between real steps) is counted, not skipped, so its outputs differ.
Padded steps of a ``return_sequences`` output are zeros, as in rnnkit.

Refused with ``UnsupportedForExport`` (a ValueError that says why), because ONNX's
operators cannot express them: ``layer_norm`` (normalises the gates inside the loop),
``zoneout`` (mixes the previous state in, also at inference), ``stateful`` (state carried
between calls), ``return_state`` and ``Bidirectional(merge_mode=None)`` (several outputs),
a mask that reached a recurrent layer reversed by an earlier ``go_backwards`` layer (left
padding), activations given as Python callables, and modules that are not rnnkit layers.
Dropout, and the ``dropout``/``recurrent_dropout`` of recurrent layers, act only in
training and export as nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch
from torch import Tensor

from ..onnx_native import onnx_attributes, onnx_blocks, onnx_peephole
from ..onnx_native import UnsupportedForExport as UnsupportedForExport

OPSET = 17
IR_VERSION = 8
_INT64_MIN = -(2**63)




def _onnx() -> Any:
    try:
        import onnx
    except ImportError as e:  # a test-only dependency
        raise ImportError("export_onnx needs the `onnx` package (pip install onnx); onnxruntime runs the result") from e
    return onnx


@dataclass
class _Flow:
    """The tensor between two layers: its name, static shape (None = batch/time), and mask."""

    name: str
    shape: tuple
    lengths: Optional[str] = None  # (B,) int32: unmasked steps per row of a right-padded mask
    flipped: bool = False          # the mask was reversed by a go_backwards layer (left padding)
    ids: bool = False              # int64 token ids (before the Embedding)


class _Graph:
    def __init__(self, onnx: Any, dtype: torch.dtype) -> None:
        self.onnx, self.helper = onnx, onnx.helper
        self.dtype = dtype
        self.np_dtype = {torch.float32: np.float32, torch.float64: np.float64}[dtype]
        self.elem = {torch.float32: onnx.TensorProto.FLOAT, torch.float64: onnx.TensorProto.DOUBLE}[dtype]
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self.count = 0

    def fresh(self, hint: str) -> str:
        self.count += 1
        return f"{hint}_{self.count}"

    def const(self, value: Any, hint: str, dtype: Any = None) -> str:
        if isinstance(value, Tensor):
            value = value.detach().cpu().numpy()
        array = np.asarray(value, dtype=dtype or self.np_dtype)
        name = self.fresh(hint)
        self.initializers.append(self.onnx.numpy_helper.from_array(array, name))
        return name

    def ints(self, values: Sequence[int], hint: str = "ints") -> str:
        return self.const(np.asarray(values, dtype=np.int64), hint, np.int64)

    def op(self, op_type: str, inputs: Sequence[str], hint: Optional[str] = None, outputs: int = 1, **attrs: Any) -> Any:
        names = [self.fresh(hint or op_type.lower()) for _ in range(outputs)]
        self.nodes.append(self.helper.make_node(op_type, list(inputs), names, **attrs))
        return names[0] if outputs == 1 else names

    def flip_time(self, x: str) -> str:
        """x[:, ::-1]: reverse axis 1 whatever its length."""
        return self.op("Slice", [x, self.ints([-1]), self.ints([_INT64_MIN]), self.ints([1]), self.ints([-1])], "flip")


def export_onnx(model: Any, path: Any, *, dtype: Any = None, opset: int = OPSET) -> Any:
    """Write ``model`` (a built ``Sequential`` of rnnkit layers) to ``path`` as ONNX; returns the ModelProto.

    The graph computes ``model.predict(x)`` (inference mode) for any batch size and sequence
    length; see the module docstring for masks and what is refused.

    Args:
        dtype: the graph's float type, "float32" or "float64"; default the model's. onnxruntime
            runs RNN/LSTM/GRU in float32 only, so export float64 models with dtype="float32"
            to run them there.
        opset: the ONNX opset (default 17; the graph uses nothing newer).
    """
    onnx = _onnx()
    from .models.sequential import Sequential
    from .layers.base import is_built

    if not isinstance(model, Sequential):
        raise UnsupportedForExport(f"export_onnx exports Sequential models; {type(model).__name__} defines its "
                                   "forward in Python code (call), which has no graph to write")
    if not isinstance(path, (str, Path)) or not str(path):
        raise ValueError(f"Argument `path` must be a file path such as 'model.onnx', got {path!r}")
    if not model.layers:
        raise UnsupportedForExport(f"Model {model.name!r} has no layers to export")
    shape = model._build_input_shape or model._input_shape
    if not is_built(model) or shape is None:
        raise UnsupportedForExport(f"Model {model.name!r} is not built yet, so it has no weights to export: call "
                                   "build(input_shape), fit, or the model on a batch first")
    dtypes = {None: model._float_dtype(), "float32": torch.float32, "float64": torch.float64,
              torch.float32: torch.float32, torch.float64: torch.float64}
    if dtype not in dtypes or dtypes[dtype] not in (torch.float32, torch.float64):
        raise ValueError(f"Received an invalid value for argument `dtype`, expected 'float32', 'float64' or None, "
                         f"got {dtype!r}")
    g = _Graph(onnx, dtypes[dtype])
    ids = _first_is_embedding(model)
    in_shape = tuple(shape)
    elem = onnx.TensorProto.INT64 if ids else g.elem
    flow = _Flow("input", in_shape, ids=ids)
    for layer in model.layers:
        flow = _layer(g, layer, flow)
    g.nodes.append(onnx.helper.make_node("Identity", [flow.name], ["output"]))  # a name callers can rely on
    graph = onnx.helper.make_graph(
        g.nodes, model.name or "rnnkit_model",
        [onnx.helper.make_tensor_value_info("input", elem, _dims(in_shape))],
        [onnx.helper.make_tensor_value_info("output", g.elem, _dims(flow.shape))],
        initializer=g.initializers,
    )
    proto = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", opset)],
                                   producer_name="rnnkit", doc_string=f"rnnkit Sequential {model.name!r}")
    proto.ir_version = IR_VERSION  # the oldest that opset 17 allows, so older runtimes load it too
    onnx.checker.check_model(proto)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    onnx.save(proto, str(path))
    return proto


def _dims(shape: Sequence[Optional[int]]) -> list[Any]:
    names = ["batch", "time"]
    return [d if d is not None else (names[i] if i < 2 else f"dim{i}") for i, d in enumerate(shape)]


def _first_is_embedding(model: Any) -> bool:
    from .layers import Embedding

    return isinstance(model.layers[0], Embedding)


# -- layers ---------------------------------------------------------------------------------

def _layer(g: _Graph, layer: Any, flow: _Flow) -> _Flow:
    from . import layers as L

    where = f"layer {getattr(layer, 'name', type(layer).__name__)!r} ({type(layer).__name__})"
    if not isinstance(layer, L.Layer):
        raise UnsupportedForExport(f"Cannot export {where}: it is a plain torch module, not an rnnkit layer")
    if isinstance(layer, L.Bidirectional):
        return _bidirectional(g, layer, flow, where)
    if isinstance(layer, L.BaseRNN):
        name = _recurrent(g, layer, flow, where)
        return _after_recurrent(layer, flow, name, layer.compute_output_shape(flow.shape))
    if isinstance(layer, L.TimeDistributed):
        return _time_distributed(g, layer, flow, where)
    if isinstance(layer, L.Embedding):
        return _embedding(g, layer, flow)
    if isinstance(layer, L.Masking):
        return _masking(g, layer, flow)
    if isinstance(layer, L.Dense):
        y = g.op("MatMul", [flow.name, g.const(layer.kernel, "kernel")])
        if layer.bias is not None:
            y = g.op("Add", [y, g.const(layer.bias, "bias")])
        y = _activation(g, y, layer.activation, where)
        return _Flow(y, tuple(layer.compute_output_shape(flow.shape)), flow.lengths, flow.flipped)
    if isinstance(layer, L.Dropout):
        return flow
    if isinstance(layer, L.Activation):
        return _Flow(_activation(g, flow.name, layer.activation, where), flow.shape, flow.lengths, flow.flipped)
    if isinstance(layer, L.Flatten):
        return _Flow(g.op("Flatten", [flow.name], axis=1), tuple(layer.compute_output_shape(flow.shape)))
    if isinstance(layer, L.RepeatVector):
        x = g.op("Unsqueeze", [flow.name, g.ints([1])])  # (B, 1, F)
        y = g.op("Expand", [x, g.ints([1, layer.n, 1])])  # (B, n, F)
        return _Flow(y, tuple(layer.compute_output_shape(flow.shape)))
    if isinstance(layer, L.InputLayer):
        return flow
    raise UnsupportedForExport(f"Cannot export {where}: export_onnx knows Embedding, Masking, SimpleRNN, LSTM, GRU, "
                               "Bidirectional, Dense, Dropout, Activation, Flatten, RepeatVector and TimeDistributed")


def _activation(g: _Graph, x: str, activation: Any, where: str) -> str:
    from .layers.activations import activation_name

    try:
        name = activation_name(activation)
    except TypeError:
        raise UnsupportedForExport(f"Cannot export {where}: its activation {activation!r} is Python code; "
                                   "use an activation name") from None
    simple = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh", "elu": "Elu", "softplus": "Softplus",
              "softsign": "Softsign", "exponential": "Exp", "hard_swish": "HardSwish", "hard_silu": "HardSwish"}
    if name in (None, "linear"):
        return x
    if name in simple:
        return g.op(simple[name], [x])
    if name == "softmax":
        return g.op("Softmax", [x], axis=-1)
    if name == "log_softmax":
        return g.op("LogSoftmax", [x], axis=-1)
    if name == "selu":  # torch's constants, to full precision
        return g.op("Selu", [x], alpha=1.6732632423543772, gamma=1.0507009873554805)
    if name == "leaky_relu":
        return g.op("LeakyRelu", [x], alpha=0.2)
    if name == "hard_sigmoid":  # relu6(x + 3) / 6
        return g.op("HardSigmoid", [x], alpha=1.0 / 6.0, beta=0.5)
    if name == "relu6":
        return g.op("Clip", [x, g.const(0.0, "zero"), g.const(6.0, "six")])
    if name in ("swish", "silu"):
        return g.op("Mul", [x, g.op("Sigmoid", [x])])
    if name == "mish":
        return g.op("Mul", [x, g.op("Tanh", [g.op("Softplus", [x])])])
    if name == "gelu":  # exact: x/2 (1 + erf(x / sqrt 2))
        erf = g.op("Erf", [g.op("Mul", [x, g.const(1.0 / math.sqrt(2.0), "inv_sqrt2")])])
        return g.op("Mul", [g.op("Mul", [x, g.const(0.5, "half")]), g.op("Add", [erf, g.const(1.0, "one")])])
    raise UnsupportedForExport(f"Cannot export {where}: no ONNX form for activation {name!r}")


def _embedding(g: _Graph, layer: Any, flow: _Flow) -> _Flow:
    ids = flow.name if flow.ids else g.op("Cast", [flow.name], to=g.onnx.TensorProto.INT64)
    y = g.op("Gather", [g.const(layer.embeddings, "embeddings"), ids], axis=0)  # (B, T, D)
    lengths = None
    if layer.mask_zero:
        zero = g.const(0, "zero_id", np.int64)
        real = g.op("Cast", [g.op("Not", [g.op("Equal", [ids, zero])])], to=g.onnx.TensorProto.INT32)
        lengths = g.op("ReduceSum", [real, g.ints([1])], "lengths", keepdims=0)  # (B,)
    return _Flow(y, tuple(layer.compute_output_shape(flow.shape)), lengths)


def _masking(g: _Graph, layer: Any, flow: _Flow) -> _Flow:
    differs = g.op("Cast", [g.op("Not", [g.op("Equal", [flow.name, g.const(layer.mask_value, "mask_value")])])],
                   to=g.elem)
    keep = g.op("Greater", [g.op("ReduceSum", [differs, g.ints([-1])], keepdims=0), g.const(0.0, "zero")])  # (B, T)
    y = g.op("Mul", [flow.name, g.op("Unsqueeze", [g.op("Cast", [keep], to=g.elem), g.ints([-1])])])
    lengths = g.op("ReduceSum", [g.op("Cast", [keep], to=g.onnx.TensorProto.INT32), g.ints([1])], "lengths",
                   keepdims=0)
    if flow.lengths is not None:  # Keras ANDs the masks; for right padding that is the shorter length
        lengths = g.op("Min", [lengths, flow.lengths])
    return _Flow(y, flow.shape, lengths, flow.flipped)


def _check_recurrent(layer: Any, flow: _Flow, where: str) -> None:
    reasons = []
    if getattr(layer, "layer_norm", False):
        reasons.append("layer_norm normalises the gates inside the time loop, which ONNX's LSTM cannot express")
    if layer.zoneout:
        reasons.append("zoneout mixes the previous state into each step, also at inference "
                       "(h = p h_{t-1} + (1 - p) h_t), which ONNX's recurrent operators cannot express")
    if layer.stateful:
        reasons.append("stateful layers carry their state from call to call; the graph would start from zeros")
    if layer.return_state:
        reasons.append("return_state gives several outputs; export a model whose layers return one tensor")
    if flow.lengths is not None and flow.flipped:
        reasons.append("its mask was reversed by an earlier go_backwards layer, so the padding is at the start of "
                       "each row; ONNX's sequence_lens describes padding at the end only")
    if reasons:
        raise UnsupportedForExport(f"Cannot export {where}: " + "; ".join(reasons))


def _recurrent(g: _Graph, layer: Any, flow: _Flow, where: str) -> str:
    """One direction: returns the layer's output, (B, T, H) (time in processing order, as the
    layer gives it) or (B, H)."""
    _check_recurrent(layer, flow, where)
    cell, H, kind = layer.cell, layer.units, layer.kind

    def blocks(t: Tensor) -> Tensor:  # (G, ...) in ONNX's gate order
        return onnx_blocks(t, kind, H)

    zeros = torch.zeros(cell.weight_ih.shape[0], dtype=cell.weight_ih.dtype)
    b_ih = cell.bias_ih.detach() if cell.bias_ih is not None else zeros
    b_hh = cell.bias_hh.detach() if cell.bias_hh is not None else zeros
    W = g.const(blocks(cell.weight_ih.detach()).unsqueeze(0), f"{kind}_W")  # (1, G, F)
    R = g.const(blocks(cell.weight_hh.detach()).unsqueeze(0), f"{kind}_R")  # (1, G, H)
    B = g.const(torch.cat([blocks(b_ih), blocks(b_hh)]).unsqueeze(0), f"{kind}_B")  # (1, 2G): Wb then Rb
    x = g.op("Transpose", [flow.name], perm=[1, 0, 2])  # (T, B, F): ONNX's layout 0
    inputs = [x, W, R, B, flow.lengths or "", ""]
    attrs = onnx_attributes(cell.spec, H, bool(layer.go_backwards))
    op_type, outputs = {"rnn": ("RNN", 2), "lstm": ("LSTM", 3), "gru": ("GRU", 2)}[kind]
    if kind == "lstm":
        inputs.append("")  # initial_c
        if cell.peephole is not None:
            inputs.append(g.const(onnx_peephole(cell.peephole.detach()).unsqueeze(0), "lstm_P"))
    while inputs and inputs[-1] == "":
        inputs.pop()
    Y, Y_h = g.op(op_type, inputs, kind, outputs=outputs, **attrs)[:2]
    if layer.return_sequences:
        y = g.op("Transpose", [g.op("Squeeze", [Y, g.ints([1])])], perm=[1, 0, 2])  # (T, 1, B, H) -> (B, T, H)
        # ONNX keeps time in data order; a go_backwards layer returns processing order.
        return g.flip_time(y) if layer.go_backwards else y
    return g.op("Squeeze", [Y_h, g.ints([0])])  # (1, B, H) -> (B, H): the state after each row's last real step


def _after_recurrent(layer: Any, flow: _Flow, name: str, shape: Any) -> _Flow:
    if layer.return_sequences:
        return _Flow(name, tuple(shape), flow.lengths, flow.flipped != bool(layer.go_backwards))
    return _Flow(name, tuple(shape))


def _bidirectional(g: _Graph, layer: Any, flow: _Flow, where: str) -> _Flow:
    if layer.merge_mode is None:
        raise UnsupportedForExport(f"Cannot export {where}: merge_mode=None gives two outputs; use 'concat', 'sum', "
                                   "'mul' or 'ave'")
    if layer.return_state:
        raise UnsupportedForExport(f"Cannot export {where}: return_state gives several outputs")
    y = _recurrent(g, layer.forward_layer, flow, where)
    y_rev = _recurrent(g, layer.backward_layer, flow, where)
    if layer.return_sequences:
        y_rev = g.flip_time(y_rev)  # back into data order, as Bidirectional does
    if layer.merge_mode == "concat":
        out = g.op("Concat", [y, y_rev], axis=-1)
    elif layer.merge_mode == "sum":
        out = g.op("Add", [y, y_rev])
    elif layer.merge_mode == "mul":
        out = g.op("Mul", [y, y_rev])
    else:
        out = g.op("Mul", [g.op("Add", [y, y_rev]), g.const(0.5, "half")])
    shape = tuple(layer.compute_output_shape(flow.shape))
    if layer.return_sequences:
        return _Flow(out, shape, flow.lengths, flow.flipped)
    return _Flow(out, shape)


def _time_distributed(g: _Graph, layer: Any, flow: _Flow, where: str) -> _Flow:
    rest = tuple(flow.shape[2:])
    if len(flow.shape) < 3 or any(d is None for d in rest):
        raise UnsupportedForExport(f"Cannot export {where}: it needs inputs (B, T, ...) with known sizes after T, "
                                   f"got {flow.shape}")
    steps = g.op("Reshape", [flow.name, g.ints([-1, *rest])])  # (B * T, ...)
    inner = _layer(g, layer.layer, _Flow(steps, (None, *rest)))
    out_rest = tuple(inner.shape[1:])
    if any(d is None for d in out_rest):
        raise UnsupportedForExport(f"Cannot export {where}: the wrapped layer's output size is unknown")
    bt = g.op("Slice", [g.op("Shape", [flow.name]), g.ints([0]), g.ints([2])])  # [B, T]
    y = g.op("Reshape", [inner.name, g.op("Concat", [bt, g.ints(list(out_rest))], axis=0)])
    return _Flow(y, (flow.shape[0], flow.shape[1], *out_rest), flow.lengths, flow.flipped)
