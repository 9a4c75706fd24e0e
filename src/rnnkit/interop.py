"""Move weights between the Keras-style layers, torch.nn / rnnkit.nn modules and Keras.

Three layouts hold the same function:

    rnnkit.layers (Keras front)   cell.weight_ih (G, F), cell.weight_hh (G, H), one bias
                                  cell.bias_ih (G,) (LSTM, SimpleRNN, GRU reset_after=False)
                                  or two (GRU reset_after=True); gate order i,f,g,o / r,z,n
    torch.nn / rnnkit.nn          weight_ih_l0 (G, F), weight_hh_l0 (G, H), bias_ih_l0, bias_hh_l0,
                                  "_reverse" for the backward direction; same gate order
    Keras (numpy, get_weights())  kernel (F, G), recurrent_kernel (H, G), bias (G,) or (2, G);
                                  GRU gate order z, r, h

A single bias b is the pair (b_ih = b, b_hh = 0); a pair becomes b = b_ih + b_hh
where the two are only ever added (every cell except GRU with reset_after, whose
b_hn sits inside r * (W_hn h + b_hn)). Both directions are exact.

Functions:
    layer_state_dict(layer)            -> torch-named state dict (biases split)
    load_layer_state_dict(layer, sd)   torch-named state dict -> layer (biases merged)
    to_torch(layer, module_class=None) -> torch.nn.LSTM/GRU/RNN (or rnnkit.nn ...) with the weights
    from_torch(module, **kwargs)       -> LSTM/GRU/SimpleRNN, or Bidirectional for bidirectional modules
    get_keras_weights(layer) / set_keras_weights(layer, arrays)   Keras numpy layout
    from_keras_weights(kind, arrays, **kwargs) -> a new layer holding Keras weights
"""

from __future__ import annotations

from typing import Any, Optional, Sequence, Union

import numpy as np
import torch
from torch import Tensor, nn

from .keras.layers import GRU, LSTM, BaseRNN, Bidirectional, Layer, SimpleRNN

RecurrentLike = Union[BaseRNN, Bidirectional]

_EXTRAS = ("peephole", "ln_gamma", "ln_beta", "ln_cell_gamma", "ln_cell_beta")
_KINDS = {"rnn": SimpleRNN, "lstm": LSTM, "gru": GRU}
_TORCH_CLASSES = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
_MODE_KIND = {"LSTM": "lstm", "GRU": "gru", "RNN_TANH": "rnn", "RNN_RELU": "rnn"}


def _directions(layer: RecurrentLike) -> list[tuple[BaseRNN, str]]:
    """(layer, torch suffix) per direction; the layer must be built."""
    if isinstance(layer, Bidirectional):
        pairs = [(layer.forward_layer, "_l0"), (layer.backward_layer, "_l0_reverse")]
    elif isinstance(layer, BaseRNN):
        if layer.go_backwards:
            raise ValueError(f"Layer {layer.name!r} has go_backwards=True; a torch module runs its first direction forwards")
        pairs = [(layer, "_l0")]
    else:
        raise TypeError(f"Expected a SimpleRNN, LSTM, GRU or Bidirectional layer, got {type(layer).__name__}")
    for sub, _ in pairs:
        if sub.cell is None:
            raise ValueError(f"Layer {sub.name!r} is not built yet; call it on data or pass input_shape=")
    return pairs


def layer_state_dict(layer: RecurrentLike) -> dict[str, Tensor]:
    """The layer's weights under torch.nn's names, with a single bias split as (b, 0).

    Loads into ``torch.nn.LSTM/GRU/RNN`` (or ``rnnkit.nn``) with num_layers=1 and
    ``bidirectional`` for a ``Bidirectional`` layer.
    """
    out: dict[str, Tensor] = {}
    for sub, suffix in _directions(layer):
        c = sub.cell
        out["weight_ih" + suffix] = c.weight_ih.detach().clone()
        out["weight_hh" + suffix] = c.weight_hh.detach().clone()
        if c.bias_ih is not None:
            out["bias_ih" + suffix] = c.bias_ih.detach().clone()
            out["bias_hh" + suffix] = c.bias_hh.detach().clone() if c.bias_hh is not None else torch.zeros_like(c.bias_ih)
        for field in _EXTRAS:
            p = getattr(c, field)
            if p is not None:
                out[field + suffix] = p.detach().clone()
    return out


def load_layer_state_dict(layer: RecurrentLike, state_dict: dict[str, Tensor]) -> None:
    """Copy torch-named weights (num_layers=1) into ``layer``, merging b_ih + b_hh where exact.

    Builds an unbuilt layer from ``weight_ih_l0``'s shape. Every key must be used.
    """
    if isinstance(layer, (BaseRNN, Bidirectional)) and not layer.built and "weight_ih_l0" in state_dict:
        layer.maybe_build((None, None, int(state_dict["weight_ih_l0"].shape[1])))
    used: set[str] = set()
    with torch.no_grad():
        for sub, suffix in _directions(layer):
            c = sub.cell

            def take(field: str) -> Optional[Tensor]:
                key = field + suffix
                if key in state_dict:
                    used.add(key)
                    return torch.as_tensor(state_dict[key])
                return None

            values = {f: take(f) for f in ("weight_ih", "weight_hh", "bias_ih", "bias_hh", *_EXTRAS)}
            b_ih, b_hh = values["bias_ih"], values["bias_hh"]
            if sub.bias_mode == "single" and b_ih is not None:
                values["bias_ih"], values["bias_hh"] = b_ih + (b_hh if b_hh is not None else 0), None
            elif sub.bias_mode == "none" and (b_ih is not None or b_hh is not None):
                raise ValueError(f"Layer {sub.name!r} has use_bias=False but the state dict has biases ({suffix})")
            for field, value in values.items():
                target = getattr(c, field)
                if target is None and value is None:
                    continue
                if target is None or value is None:
                    what = "missing from the state dict" if value is None else "not a weight of the layer"
                    raise ValueError(f"Layer {sub.name!r}: {field}{suffix} is {what}")
                if tuple(value.shape) != tuple(target.shape):
                    raise ValueError(
                        f"Layer {sub.name!r}: {field}{suffix} must have shape {tuple(target.shape)}, got {tuple(value.shape)}"
                    )
                target.copy_(value)
    unused = sorted(set(state_dict) - used)
    if unused:
        raise ValueError(f"Keys with no place in layer {layer.name!r}: {unused} (only num_layers=1 modules convert)")


def to_torch(layer: RecurrentLike, module_class: Optional[type] = None) -> nn.Module:
    """A batch-first ``torch.nn.LSTM/GRU/RNN`` (or ``module_class``, e.g. ``rnnkit.nn.GRU``) with the layer's weights.

    The module returns all steps, (B, T, D * H), directions concatenated as Keras's
    merge_mode="concat" does, and h_n (D, B, H). torch.nn has no peepholes, layer
    norm or GRU reset_after=False: pass the ``rnnkit.nn`` class for those.
    """
    first = _directions(layer)[0][0]
    kind, c = first.kind, first.cell
    extras: dict[str, Any] = {}
    if kind == "gru" and not first.reset_after:
        extras["reset_after"] = False
    if first.peephole:
        extras["peephole"] = True
    if first.layer_norm:
        extras["layer_norm"] = True
    if module_class is None:
        if extras:
            raise ValueError(
                f"torch.nn has no {', '.join(sorted(extras))}; pass module_class=rnnkit.nn.{_TORCH_CLASSES[kind].__name__}"
            )
        module_class = _TORCH_CLASSES[kind]
    if kind == "rnn":
        if first.activation not in ("tanh", "relu"):
            raise ValueError(f"A torch RNN's nonlinearity is 'tanh' or 'relu'; layer {first.name!r} uses {first.activation!r}")
        extras["nonlinearity"] = first.activation
    elif (first.activation, first.recurrent_activation) != ("tanh", "sigmoid"):
        raise ValueError(f"torch's {kind.upper()} uses tanh and sigmoid; layer {first.name!r} uses "
                         f"{first.activation!r} and {first.recurrent_activation!r}")
    module = module_class(
        c.input_size, c.hidden_size, num_layers=1, bias=first.use_bias, batch_first=True,
        bidirectional=isinstance(layer, Bidirectional), dtype=c.weight_ih.dtype, **extras,
    )
    module.load_state_dict(layer_state_dict(layer))
    return module.to(c.weight_ih.device)


def from_torch(module: nn.Module, **layer_kwargs: Any) -> RecurrentLike:
    """A Keras-style layer holding a ``torch.nn``/``rnnkit.nn`` LSTM, GRU or RNN's weights.

    A bidirectional module gives ``Bidirectional(layer)`` (merge_mode="concat", as torch).
    ``layer_kwargs`` go to the layer (e.g. ``return_sequences=True``). Only num_layers=1
    and proj_size=0 convert.
    """
    mode = getattr(module, "mode", None)
    if mode not in _MODE_KIND:
        raise TypeError(f"Expected a torch.nn or rnnkit.nn LSTM, GRU or RNN module, got {type(module).__name__}")
    if getattr(module, "num_layers", 1) != 1:
        raise ValueError(f"Only num_layers=1 modules convert to one layer, got num_layers={module.num_layers}")
    if getattr(module, "proj_size", 0):
        raise ValueError("Keras-style layers have no proj_size; got a module with proj_size > 0")
    kind = _MODE_KIND[mode]
    spec = getattr(module, "spec", None)
    kwargs: dict[str, Any] = {"use_bias": bool(module.bias), "dtype": next(module.parameters()).dtype}
    if kind == "rnn":
        kwargs["activation"] = "relu" if mode == "RNN_RELU" else "tanh"
    if kind == "gru":
        kwargs["reset_after"] = spec.reset_after if spec is not None else True
    if kind == "lstm":
        kwargs["peephole"] = bool(getattr(module, "peephole", False))
        kwargs["layer_norm"] = bool(getattr(module, "layer_norm", False))
    kwargs.update(layer_kwargs)
    kwargs.pop("input_shape", None)
    layer: RecurrentLike = _KINDS[kind](module.hidden_size, **kwargs)
    if module.bidirectional:
        layer = Bidirectional(layer)
    layer.maybe_build((None, None, module.input_size))
    load_layer_state_dict(layer, {k: v for k, v in module.state_dict().items()})
    return layer


def get_keras_weights(layer: Layer) -> list[np.ndarray]:
    """The layer's weights as Keras's ``layer.get_weights()`` lists them (layout and gate order)."""
    return layer.get_weights()


def set_keras_weights(layer: Layer, weights: Sequence[Any]) -> None:
    """Load arrays from a Keras layer's ``get_weights()`` into the matching rnnkit layer."""
    layer.set_weights(weights)


def from_keras_weights(kind: str, weights: Sequence[Any], **layer_kwargs: Any) -> BaseRNN:
    """A new "SimpleRNN"/"LSTM"/"GRU" layer built from Keras arrays [kernel, recurrent_kernel, bias].

    units and F come from the shapes; a GRU bias of shape (2, G) means reset_after=True.
    """
    classes = {"SimpleRNN": SimpleRNN, "LSTM": LSTM, "GRU": GRU}
    if kind not in classes:
        raise ValueError(f"Received an invalid value for argument `kind`: expected one of {sorted(classes)}, got {kind!r}")
    weights = [np.asarray(w) for w in weights]
    if len(weights) not in (2, 3) or weights[1].ndim != 2:
        raise ValueError("Expected Keras weights [kernel (F, G), recurrent_kernel (H, G)] and optionally bias")
    kwargs: dict[str, Any] = {"use_bias": len(weights) == 3}
    if kind == "GRU" and len(weights) == 3:
        kwargs["reset_after"] = weights[2].ndim == 2
    kwargs.update(layer_kwargs)
    layer = classes[kind](int(weights[1].shape[0]), **kwargs)
    layer.set_weights(weights)
    return layer
