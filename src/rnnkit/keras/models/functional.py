"""The functional API's model: ``keras.Model(inputs, outputs)`` over a graph of layer calls.

    enc_in = keras.Input(shape=(None, 8))                       # (B, Te, F)
    _, h, c = layers.LSTM(32, return_state=True)(enc_in)        # (B, H) twice
    dec_in = keras.Input(shape=(None, 8))                       # (B, Td, F)
    seq = layers.LSTM(32, return_sequences=True)(dec_in, initial_state=[h, c])
    model = keras.Model([enc_in, dec_in], layers.Dense(8)(seq))

The graph is plain data: the ``Node``s (``rnnkit.keras.layers.symbolic``) between the
inputs and the outputs, put in topological order once, when the model is built, and
checked then (every output reachable from the inputs, every input used). A call runs
those nodes in that order on real tensors, with Keras's mask rules; nothing is traced
again. ``get_config`` writes the graph as JSON (each layer's config and the calls that
feed it), and ``from_config`` replays the calls, so a model saves and loads without code.

Layers are registered under their names, so ``state_dict`` keys read ``lstm.cell.weight_ih``;
a layer called twice is one module with one set of weights.
"""

from __future__ import annotations

import json
from typing import Any, Optional

import numpy as np
import torch
from torch import Tensor, nn

from ..layers import base as layers_base
from ..layers.symbolic import KerasTensor, Node, flatten, format_shape, inbound_nodes, map_structure, pack_like, run_node
from .model import Model

_TENSOR_KEY = "__keras_tensor__"


def _node_of(kt: KerasTensor) -> Node:
    if kt.history is None:
        raise ValueError(f"{kt!r} was not made by a layer call")
    return kt.node


class Functional(Model):
    """A model whose architecture is a graph of layer calls on symbolic tensors.

    Args:
        inputs: a KerasTensor (from ``keras.Input`` or any layer's output), or a list or
            dict of them; the model is then called with a tensor, a list or a dict alike.
        outputs: a KerasTensor, or a (nested) list or dict of them; the model returns the
            same structure of tensors.
        name: the model's name.

    Attributes: ``inputs``/``outputs`` (flat lists), ``input``/``output`` (as given),
    ``input_names``/``output_names``, ``layers`` (input layers first, then in graph order).
    """

    def __init__(self, inputs: Any, outputs: Any, name: Optional[str] = None, trainable: bool = True) -> None:
        super().__init__(name=name)
        if isinstance(inputs, tuple):
            inputs = list(inputs)
        if isinstance(outputs, tuple):
            outputs = list(outputs)
        self._input_struct = inputs
        self._output_struct = outputs
        self._flat_inputs: list[KerasTensor] = self._symbolic_leaves(inputs, "inputs")
        self._flat_outputs: list[KerasTensor] = self._symbolic_leaves(outputs, "outputs")
        self.input_names = list(inputs) if isinstance(inputs, dict) else [kt.name or f"input_{i}" for i, kt in
                                                                          enumerate(self._flat_inputs)]
        self.output_names = _unique(list(outputs) if isinstance(outputs, dict) else
                                    [kt.history[0].name for kt in self._flat_outputs])
        self._nodes = self._topological_order()
        self._node_set = set(map(id, self._nodes))
        self._input_layers = [kt.history[0] if kt.history[2] == 0 and getattr(kt.history[0], "is_input_layer", False)
                              else None for kt in self._flat_inputs]
        graph_layers: list[nn.Module] = [l for l in self._input_layers if l is not None]
        for node in self._nodes:
            if not any(node.layer is l for l in graph_layers):
                graph_layers.append(node.layer)
        self._graph_layers = graph_layers
        for layer in graph_layers:
            name = getattr(layer, "name", None)
            if name in self._modules and self._modules[name] is not layer:
                raise ValueError(f"Model {self.name!r}: two different layers are named {name!r}; layer names must be "
                                 "unique within a model (pass name=... to one of them)")
            if not isinstance(name, str) or "." in name or not name:
                raise ValueError(f"Model {self.name!r}: layer name {name!r} must be a non-empty string without '.'")
            # Straight into the registry: a layer may be named like a Model attribute ("output").
            self._modules[name] = layer
        self.built = True
        self._multi_output = len(self._flat_outputs) > 1
        self._flat_predict = False
        if not trainable:
            for p in self.parameters():
                p.requires_grad_(False)

    # -- building -------------------------------------------------------------------------

    @staticmethod
    def _symbolic_leaves(structure: Any, argument: str) -> list[KerasTensor]:
        flat = flatten(structure)
        if not flat:
            raise ValueError(f"Model(inputs, outputs): `{argument}` is empty")
        for i, kt in enumerate(flat):
            if not isinstance(kt, KerasTensor):
                raise TypeError(f"Model(inputs, outputs): `{argument}` must hold symbolic tensors (keras.Input(...) or "
                                f"a layer's output), but item {i} is {type(kt).__name__}; real tensors go to model(x)")
            if kt.history is None:
                raise ValueError(f"Model(inputs, outputs): `{argument}` item {i} ({kt!r}) was not made by a layer call")
        return flat

    def _topological_order(self) -> list[Node]:
        """The nodes between inputs and outputs, each after the nodes it reads from."""
        inputs = {id(kt): i for i, kt in enumerate(self._flat_inputs)}
        used: set[int] = set()
        order: list[Node] = []
        done: set[int] = set()
        for j, out in enumerate(self._flat_outputs):
            # Iterative depth-first search: deep graphs do not hit Python's recursion limit.
            stack: list[tuple[KerasTensor, bool]] = [(out, False)]
            while stack:
                kt, expanded = stack.pop()
                if id(kt) in inputs:
                    used.add(id(kt))
                    continue
                node = _node_of(kt)
                if id(node) in done:
                    continue
                if expanded:
                    done.add(id(node))
                    order.append(node)
                    continue
                if not node.parents:
                    raise ValueError(
                        f"Model {self.name!r}: output {j} ({self.output_names[j]!r}) depends on input {kt.name!r} "
                        f"{format_shape(kt.shape)}, which is not in `inputs` {self.input_names}; pass it in `inputs`, "
                        "or build the output from the given inputs (the graph is disconnected)")
                stack.append((kt, True))
                for parent in reversed(node.parents):
                    stack.append((parent, False))
        unused = [self.input_names[i] for kt, i in inputs.items() if kt not in used]
        if unused:
            raise ValueError(f"Model {self.name!r}: input(s) {unused} are not used by any output; remove them from "
                             "`inputs`, or connect them")
        return order

    # -- Keras attributes -------------------------------------------------------------------

    @property
    def inputs(self) -> list[KerasTensor]:
        return list(self._flat_inputs)

    @property
    def outputs(self) -> list[KerasTensor]:
        return list(self._flat_outputs)

    @property
    def input(self) -> Any:
        return self._input_struct

    @property
    def output(self) -> Any:
        return self._output_struct

    @property
    def layers(self) -> list[nn.Module]:  # type: ignore[override]
        """The layers: input layers first, then each layer once, in the order the graph runs them."""
        return list(self._graph_layers)

    def get_layer(self, name: Optional[str] = None, index: Optional[int] = None) -> nn.Module:
        """The layer called ``name`` (or at position ``index`` of ``layers``)."""
        if index is not None:
            if not isinstance(index, int) or not -len(self._graph_layers) <= index < len(self._graph_layers):
                raise ValueError(f"Argument `index` must be an int below {len(self._graph_layers)}, got {index!r}")
            return self._graph_layers[index]
        for layer in self._graph_layers:
            if getattr(layer, "name", None) == name:
                return layer
        raise ValueError(f"No layer named {name!r} in model {self.name!r}; its layers are "
                         f"{[getattr(l, 'name', '?') for l in self._graph_layers]}")

    # -- running ---------------------------------------------------------------------------

    def _by_names(self, values: dict, names: list[str], argument: str, what: str) -> list[Any]:
        """``values`` (a dict keyed by input or output name) as a list in ``names`` order."""
        missing = [k for k in names if k not in values]
        unexpected = [k for k in values if k not in names]
        if missing or unexpected:
            raise ValueError(f"Model {self.name!r}: the keys of `{argument}` must be the {what} names {names}; "
                             f"missing {missing}, unexpected {unexpected}")
        return [values[k] for k in names]

    def _flatten_inputs(self, inputs: Any, argument: str = "inputs") -> list[Any]:
        n = len(self._flat_inputs)
        if isinstance(inputs, dict):
            return self._by_names(inputs, self.input_names, argument, "input")
        if n == 1:
            if isinstance(self._input_struct, (list, dict)) and isinstance(inputs, (list, tuple)) and len(inputs) == 1:
                return [inputs[0]]
            return [inputs]
        if not isinstance(inputs, (list, tuple)) or len(inputs) != n:
            got = f"{len(inputs)} items" if isinstance(inputs, (list, tuple)) else f"one {type(inputs).__name__}"
            raise ValueError(f"Model {self.name!r} takes {n} inputs {self.input_names} (a list in that order, or a "
                             f"dict by name) as `{argument}`, got {got}")
        flat = flatten(list(inputs))
        if len(flat) != n:
            raise ValueError(f"Model {self.name!r} takes {n} inputs {self.input_names}, got {len(flat)} tensors")
        return flat

    def _run(self, inputs: Any, mask: Any = None, training: Optional[bool] = None) -> tuple[list[Any], list[Any]]:
        flat = self._flatten_inputs(inputs)
        masks_in = [None] * len(flat) if mask is None else self._flatten_inputs(mask, "mask")
        values: dict[int, Any] = {}
        masks: dict[int, Any] = {}
        for i, (kt, x, m, layer) in enumerate(zip(self._flat_inputs, flat, masks_in, self._input_layers)):
            if isinstance(x, np.ndarray):
                # numpy floats become the default float, as layers do (float64 data is no request for float64).
                x = torch.from_numpy(np.ascontiguousarray(x))
                x = x.to(torch.get_default_dtype()) if x.is_floating_point() and layer is None else x
                x = x.to(layer.input_dtype) if layer is not None and x.is_floating_point() else x
            if layer is not None:
                layer.check(x, self.input_names[i] if len(flat) > 1 else "inputs")
            values[id(kt)] = x
            masks[id(kt)] = m
        for node in self._nodes:
            out, out_masks = run_node(node.layer, node.args, node.kwargs, lambda k: values[id(k)], lambda k: masks.get(id(k)),
                                      training)
            for kt, v, m in zip(node.flat_outputs, flatten(out), out_masks):
                values[id(kt)] = v
                masks[id(kt)] = m
        return [values[id(kt)] for kt in self._flat_outputs], [masks.get(id(kt)) for kt in self._flat_outputs]

    def forward(self, inputs: Any, mask: Any = None, training: Optional[bool] = None) -> Any:  # type: ignore[override]
        """inputs: a tensor, list or dict like the model's ``inputs``; returns the ``outputs`` structure.

        ``training`` overrides each layer's mode for this call (default: the module's ``.training``).
        """
        outs, _ = self._run(inputs, mask, training)
        if self._flat_predict:
            return outs if len(outs) > 1 else outs[0]
        return pack_like(self._output_struct, outs)

    def predict(self, x: Any, batch_size: Optional[int] = None, verbose: Any = "auto", callbacks: Any = None) -> Any:
        """Outputs as numpy, in the ``outputs`` structure (a dict of outputs gives a dict)."""
        if not isinstance(self._output_struct, dict):
            return super().predict(x, batch_size=batch_size, verbose=verbose, callbacks=callbacks)
        # The batch loop concatenates lists of outputs; the dict is put back together after it.
        self._flat_predict = True
        try:
            flat = super().predict(x, batch_size=batch_size, verbose=verbose, callbacks=callbacks)
        finally:
            self._flat_predict = False
        return pack_like(self._output_struct, list(flat) if len(self._flat_outputs) > 1 else [flat])

    def call(self, inputs: Any, mask: Any = None, training: Optional[bool] = None) -> Any:  # type: ignore[override]
        return self.forward(inputs, mask=mask, training=training)

    def _call_with_mask(self, inputs: Any, mask: Any = None, training: Optional[bool] = None) -> tuple[Any, Any]:
        outs, masks = self._run(inputs, mask, training)
        if len(outs) == 1 and not isinstance(self._output_struct, (list, dict)):
            return outs[0], masks[0]
        return outs, masks

    def build(self, input_shape: Any = None) -> None:
        """A functional model is built when it is made; nothing to do."""
        self.built = True

    # -- data for fit/evaluate/predict -------------------------------------------------------

    def _standardize_data(self, x: Any, y: Any) -> tuple[Any, Any]:
        """Arrays in the order of ``inputs``/``outputs``; a dict is mapped by name. Generators,
        datasets and loaders pass through (the data adapters read them)."""
        n = len(self._flat_inputs)
        if isinstance(x, dict) or (n > 1 and isinstance(x, (list, tuple, np.ndarray, Tensor))):
            x = self._flatten_inputs(x, "x")
        if isinstance(y, dict):
            y = self._by_names(y, self.output_names, "y", "output")
        elif self._multi_output and isinstance(y, (list, tuple, np.ndarray, Tensor)):
            if not isinstance(y, (list, tuple)) or len(y) != len(self._flat_outputs):
                got = f"{len(y)} items" if isinstance(y, (list, tuple)) else f"one {type(y).__name__}"
                raise ValueError(f"Model {self.name!r} has {len(self._flat_outputs)} outputs {self.output_names}, so `y` "
                                 f"must be a list of that many arrays (or a dict by output name), got {got}")
        return x, y

    # -- summary -----------------------------------------------------------------------------

    def _summary_rows(self) -> list[tuple[str, str, str, str]]:
        from .summary import format_shape as fmt, params_of

        rows = []
        for layer in self._graph_layers:
            nodes = [n for n in inbound_nodes(layer) if id(n) in self._node_set]
            if getattr(layer, "is_input_layer", False):
                nodes = inbound_nodes(layer)[:1]
            shapes = [map_structure(lambda kt: kt.shape, n.outputs) for n in nodes]
            shape = fmt(shapes[0]) if shapes and all(s == shapes[0] for s in shapes) else "multiple"
            sources = []
            for n in nodes:
                for kt in n.parents:
                    src, _, t = kt.history
                    src_nodes = self._local_nodes(src)
                    idx = src_nodes.index(kt.node) if kt.node in src_nodes else 0
                    sources.append(f"{src.name}[{idx}][{t}]")
            rows.append((f"{layer.name} ({type(layer).__name__})", shape, f"{sum(params_of(layer))}",
                         ", ".join(sources) or "-"))
        return rows

    def _local_nodes(self, layer: Any) -> list[Node]:
        """The nodes of ``layer`` that belong to this model, in call order (Keras's node indices)."""
        if getattr(layer, "is_input_layer", False):
            return inbound_nodes(layer)[:1]
        return [n for n in inbound_nodes(layer) if id(n) in self._node_set]

    # -- config ------------------------------------------------------------------------------

    def get_config(self) -> dict[str, Any]:
        """JSON-safe: each layer's config with the calls that feed it, and the input/output references."""
        for i, layer in enumerate(self._input_layers):
            if layer is None:
                raise ValueError(f"Model {self.name!r}: input {self.input_names[i]!r} is an intermediate tensor, not a "
                                 "keras.Input, so the model cannot be rebuilt from a config; build it from Inputs")

        def ref(kt: KerasTensor) -> dict[str, Any]:
            layer, _, t = kt.history
            return {_TENSOR_KEY: [layer.name, self._local_nodes(layer).index(kt.node), t]}

        def arg(value: Any, where: str) -> Any:
            if isinstance(value, KerasTensor):
                return ref(value)
            if value is None or isinstance(value, (bool, int, float, str)):
                return value
            if isinstance(value, (list, tuple)):
                return [arg(v, where) for v in value]
            if isinstance(value, dict):
                return {str(k): arg(v, where) for k, v in value.items()}
            raise TypeError(f"Model {self.name!r}: {where} has an argument of type {type(value).__name__}, which cannot "
                            "be saved as JSON; pass tensors through keras.Input instead")

        layer_configs = []
        for layer in self._graph_layers:
            if not isinstance(layer, (layers_base.Layer, Model)):
                raise TypeError(f"Model {self.name!r}: {type(layer).__name__} is not an rnnkit layer and has no config; "
                                "use save_weights")
            nodes = [] if getattr(layer, "is_input_layer", False) else [
                {"args": arg(list(n.args), f"the call of {layer.name!r}"),
                 "kwargs": arg(n.kwargs, f"the call of {layer.name!r}")} for n in self._local_nodes(layer)]
            data = serialize_layer(layer)
            data["name"] = layer.name
            data["inbound_nodes"] = nodes
            layer_configs.append(data)

        def refs(structure: Any) -> Any:
            return map_structure(ref, structure)

        return {"name": self.name, "layers": layer_configs, "input_layers": refs(self._input_struct),
                "output_layers": refs(self._output_struct)}

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects: Optional[dict[str, Any]] = None) -> "Functional":
        """Rebuild the graph: create each layer from its config, then replay its calls in dependency order."""
        layers: dict[str, Any] = {}
        pending: list[tuple[str, int, dict]] = []
        made: dict[tuple[str, int], list[KerasTensor]] = {}
        for data in config["layers"]:
            layer = deserialize_layer(data, custom_objects)
            name = data.get("name", getattr(layer, "name", None))
            layers[name] = layer
            if getattr(layer, "is_input_layer", False):
                made[(name, 0)] = [layer.output]
            for i, node in enumerate(data.get("inbound_nodes", [])):
                pending.append((name, i, node))

        def resolve(value: Any) -> Any:
            if isinstance(value, dict) and _TENSOR_KEY in value:
                lname, idx, t = value[_TENSOR_KEY]
                return made[(lname, idx)][t]
            if isinstance(value, list):
                return [resolve(v) for v in value]
            if isinstance(value, dict):
                return {k: resolve(v) for k, v in value.items()}
            return value

        def ready(value: Any) -> bool:
            if isinstance(value, dict) and _TENSOR_KEY in value:
                return tuple(value[_TENSOR_KEY][:2]) in made
            if isinstance(value, list):
                return all(ready(v) for v in value)
            if isinstance(value, dict):
                return all(ready(v) for v in value.values())
            return True

        while pending:
            progressed = False
            for item in list(pending):
                name, i, node = item
                # A layer's calls are replayed in order, so node indices match the saved ones.
                if (i > 0 and (name, i - 1) not in made) or not ready(node):
                    continue
                out = layers[name](*resolve(node["args"]), **resolve(node["kwargs"]))
                made[(name, i)] = flatten(out)
                pending.remove(item)
                progressed = True
            if not progressed:
                raise ValueError(f"Model config {config.get('name')!r}: calls of {[p[0] for p in pending]} refer to "
                                 "tensors that no layer makes")
        return cls(resolve(config["input_layers"]), resolve(config["output_layers"]), name=config.get("name"))


def _unique(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for n in names:
        k = seen.get(n, 0)
        seen[n] = k + 1
        out.append(n if k == 0 else f"{n}_{k}")
    return out


def serialize_layer(layer: Any) -> dict[str, Any]:
    """{"class_name", "config"} for a layer or a model used as a layer."""
    from ..saving import registered_name
    from .sequential import Sequential

    if isinstance(layer, Functional):
        return {"class_name": "Functional", "config": layer.get_config()}
    if isinstance(layer, Sequential):
        return {"class_name": "Sequential", "config": layer.get_config()}
    if isinstance(layer, Model):
        return {"class_name": registered_name(type(layer)), "config": layer.get_config(),
                "build": getattr(layer, "_build_spec", None)}
    return layers_base.serialize(layer)


def deserialize_layer(data: dict[str, Any], custom_objects: Optional[dict[str, Any]] = None) -> Any:
    from ..saving import model_from_data

    if not isinstance(data, dict) or "class_name" not in data or "config" not in data:
        raise ValueError(f"Expected a dict with keys 'class_name' and 'config', got {json.dumps(data)[:200]}")
    name = data["class_name"]
    if custom_objects and name in custom_objects:
        return custom_objects[name].from_config(dict(data["config"]))
    if name in ("Functional", "Sequential") or name not in layers_base._REGISTRY:
        return model_from_data(data, custom_objects)
    return layers_base.deserialize(data)


def zeros_like_spec(spec: Any) -> Any:
    """Zeros (floats) or ones (ids) for a recorded input spec: [shape with None, dtype name]."""
    from ..layers.symbolic import input_dtype

    def make(s: Any) -> Tensor:
        shape, dtype = s
        dt = input_dtype(dtype)
        size = [1 if d is None else int(d) for d in shape]
        return torch.zeros(size, dtype=dt) if dt.is_floating_point else torch.ones(size, dtype=dt)

    if isinstance(spec, list) and len(spec) == 2 and isinstance(spec[1], str):
        return make(spec)
    if isinstance(spec, list):
        return [zeros_like_spec(s) for s in spec]
    if isinstance(spec, dict):
        return {k: zeros_like_spec(v) for k, v in spec.items()}
    raise ValueError(f"Not an input spec: {spec!r}")
