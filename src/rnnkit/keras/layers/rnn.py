r"""Keras-style recurrent layers: ``SimpleRNN``, ``LSTM``, ``GRU``.

Each layer owns a ``rnnkit.cells.RecurrentCell`` (``self.cell``, created on the
first call when F is known) and runs it with ``rnnkit.recurrent.run_layer``; the
step math and the time loop live there, not here. What this module adds is
Keras's front: names, defaults, lazy build, masks, dropout, statefulness, the
output conventions, and Keras's weight layout in ``get_weights``.

Shapes: x (B, T, F) -> output (B, H), or (B, T, H) with ``return_sequences``;
with ``return_state`` a list [output, h] or, for LSTM, [output, h, c] (h, c (B, H)).

Parameter counts equal Keras's (G = gates * H, gates = 1, 4, 3):
    SimpleRNN, LSTM:          G * (F + H) + G           (one bias)
    GRU, reset_after=True:    G * (F + H) + 2 G         (input and recurrent bias)
    GRU, reset_after=False:   G * (F + H) + G
    use_bias=False drops the bias terms. Our LSTM extras add 3 H (``peephole``) and
    2 G + 2 H (``layer_norm``: gain and shift per gate block and for the cell).

Deliberate differences from Keras:
    - With ``return_sequences`` a masked step outputs zeros (Keras's plain layers repeat
      the previous output there; its ``Bidirectional`` zeroes them, as we always do).
    - With ``go_backwards`` the output mask is reversed along with the outputs (Keras
      passes the input mask on unchanged, misaligned with its reversed outputs).
    - ``input_shape=(T,)`` reads (B, T) inputs as univariate (B, T, 1) series (Keras raises).
    - ``training=None`` means ``self.training``, torch's flag, which is True until
      ``.eval()``; Keras's direct calls default to inference.

Contracts used by other parts of rnnkit:
    S (state carrying, ``fit(tbptt=k)``): when ``stateful or carry_state``, the final
      state is stored detached in ``self.states`` after each call and used as the next
      call's initial state if its batch size matches. ``reset_states()`` clears it.
    P (gradient-flow probes, ``rnnkit.diagnostics``): when ``probes`` is a list, each
      call appends {"layer", "direction", "probe"} with a (T, n_state) zero tensor that
      requires grad; after backward ``probe.grad[t, 0] = ||dL/dh_t||`` and
      ``probe.grad[t, 1]`` = the dL/dc_t carried back from step t+1 (LSTM), over the batch, in data time order.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence, Union

import numpy as np
import torch
from torch import Tensor

from ... import engine
from ...cells import INITIALIZERS, RecurrentCell
from ...cells.cell import check_positive_int
from ...ops import CellSpec
from ...recurrent import check_implementation, run_layer
from .base import Layer, Shape, assign_arrays, check_flag, check_rate

StateLike = Union[Tensor, Sequence[Tensor], None]


def _check_cell_initializer(name: Any, argument: str) -> str:
    if name not in INITIALIZERS:
        raise ValueError(f"Received an invalid value for argument `{argument}`: expected one of {INITIALIZERS}, got {name!r}")
    return name


def _resolve_implementation(implementation: Any) -> str:
    # Keras's implementation=1|2 picks a kernel for the same function; "auto" is ours.
    if implementation in (1, 2) and not isinstance(implementation, bool):
        return "auto"
    return check_implementation(implementation)


def keras_gate_order(kind: str, H: int, t: Tensor) -> Tensor:
    """Reorder gate blocks along dim 0 between ours and Keras's (self-inverse).

    LSTM's i, f, g, o is Keras's i, f, c, o; GRU's r, z, n is Keras's z, r, h swapped.
    """
    if kind != "gru":
        return t
    return torch.cat([t[H : 2 * H], t[:H], t[2 * H :]])


def keras_weights(cell: RecurrentCell, bias_mode: str) -> list[np.ndarray]:
    """A cell's weights in Keras layout: [kernel (F, G), recurrent_kernel (H, G), bias (G,) or (2, G)]."""
    kind, H = cell.spec.kind, cell.hidden_size
    arrays = [keras_gate_order(kind, H, cell.weight_ih).T, keras_gate_order(kind, H, cell.weight_hh).T]
    if bias_mode == "single":
        arrays.append(keras_gate_order(kind, H, cell.bias_ih))
    elif bias_mode == "double":
        arrays.append(torch.stack([keras_gate_order(kind, H, cell.bias_ih), keras_gate_order(kind, H, cell.bias_hh)]))
    return [a.detach().cpu().numpy().copy() for a in arrays]


def set_keras_weights(owner: str, cell: RecurrentCell, weights: Sequence[np.ndarray]) -> None:
    """Inverse of ``keras_weights``; counts and shapes are checked."""
    kind, H = cell.spec.kind, cell.hidden_size
    params = [cell.weight_ih, cell.weight_hh] + [b for b in (cell.bias_ih, cell.bias_hh) if b is not None]
    ours = [keras_gate_order(kind, H, torch.as_tensor(weights[0]).T), keras_gate_order(kind, H, torch.as_tensor(weights[1]).T)]
    if len(weights) > 2:
        bias = torch.as_tensor(weights[2])
        rows = bias.unsqueeze(0) if bias.dim() == 1 else bias
        ours += [keras_gate_order(kind, H, b) for b in rows]
    ours += [torch.as_tensor(w) for w in weights[3:]]  # surplus arrays: reported as a count mismatch
    assign_arrays(owner, params, [o.numpy() for o in ours])


def run_engine_cell(
    cell: RecurrentCell,
    x: Tensor,
    mask: Optional[Tensor],
    state0: Optional[tuple[Tensor, ...]],
    training: bool,
    *,
    dropout: float = 0.0,
    recurrent_dropout: float = 0.0,
    zoneout: float = 0.0,
    reverse: bool = False,
    tbptt: Optional[int] = None,
    implementation: str = "auto",
    probe: Optional[Tensor] = None,
) -> tuple[Tensor, tuple[Tensor, ...]]:
    """One built-in cell over x (B, T, F) through ``run_layer``, with Keras's dropout.

    Returns out (B, T, H) in data order and the final state tuple.
    """
    B, T, F = x.shape
    if training and dropout:
        # Variational input dropout: one mask per sequence, shared by all steps.
        keep = (torch.rand(B, 1, F, dtype=x.dtype, device=x.device) >= dropout).to(x.dtype)
        x = x * keep / (1.0 - dropout)
    rdm = None
    if training and recurrent_dropout:
        rdm = engine.recurrent_dropout_mask(B, cell.state_sizes[0], recurrent_dropout, like=x)
    zone = None
    if zoneout:
        zone = [engine.zoneout_keep(B, T, n, zoneout, training, like=x) for n in cell.state_sizes]
    return run_layer(
        cell.spec, x, cell.weights(), state0, mask=mask, reverse=reverse, tbptt=tbptt, recurrent_mask=rdm,
        zoneout=zone, implementation=implementation, probe=probe,
    )


class RecurrentLayer(Layer):
    """The Keras front every recurrent layer shares: checks, initial and carried state, outputs, masks.

    Subclasses provide:
        state_shapes() -> [per-sample shape of each state tensor], e.g. [(H,), (H,)] (built layer)
        output_shapes(input_shape) -> (per-sample step output shape, per-sample state shapes)
        _check_input(x) -> x cast to the weights' dtype, or a ValueError
        _run(x, mask, state0, training) -> (out (B, T, ...) in data order, output of the last
            real step (B, ...), final state tuple)
    and may override ``_flat_states`` / ``_pack_states`` (how a user passes and gets states).

    forward(x, mask=None, initial_state=None, training=None):
        x: (B, T, ...) floating. mask: (B, T) bool, True on real steps; a masked step keeps
        the state and outputs 0. initial_state: the state tensors, (B, ...) each.
        training: defaults to ``self.training``.
    Returns the last real step's output (B, ...), or (B, T, ...) with ``return_sequences``
    (in processing order with ``go_backwards``, as Keras); with ``return_state`` a list
    [output, *states].
    """

    supports_masking = True
    input_rank = 3
    input_letters = "B, T, F"

    def __init__(self, *, return_sequences: bool, return_state: bool, go_backwards: bool, stateful: bool,
                 tbptt: Optional[int], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.return_sequences = check_flag(return_sequences, "return_sequences")
        self.return_state = check_flag(return_state, "return_state")
        self.go_backwards = check_flag(go_backwards, "go_backwards")
        self.stateful = check_flag(stateful, "stateful")
        if tbptt is not None:
            check_positive_int(tbptt, "tbptt")
        self.tbptt = tbptt
        self.states: Optional[tuple[Tensor, ...]] = None
        self.carry_state = False

    # -------------------------------------------------------------- hooks

    def _full_shape(self, input_shape: Shape) -> Shape:
        shape = tuple(input_shape)
        if len(shape) != self.input_rank:
            raise ValueError(
                f"Layer {self.name!r} expects inputs of shape ({self.input_letters}) (rank {self.input_rank}), got shape {shape}"
            )
        return shape

    def state_shapes(self) -> list[tuple[int, ...]]:
        raise NotImplementedError

    def output_shapes(self, input_shape: Shape) -> tuple[tuple[Optional[int], ...], list[tuple[Optional[int], ...]]]:
        raise NotImplementedError

    def _run(self, x: Tensor, mask: Optional[Tensor], state0: Optional[tuple[Tensor, ...]],
             training: bool) -> tuple[Tensor, Tensor, tuple[Tensor, ...]]:
        raise NotImplementedError

    def _state_dtype(self) -> torch.dtype:
        for p in self.parameters():
            return p.dtype
        return self.weight_dtype

    def _flat_states(self, states: Any) -> tuple[Any, ...]:
        return (states,) if isinstance(states, Tensor) else tuple(states)

    def _pack_states(self, states: tuple[Tensor, ...]) -> list[Any]:
        return list(states)

    # --------------------------------------------------------------- checks

    def __call__(self, x: Any, *args: Any, **kwargs: Any) -> Any:
        x = self._to_tensor(x)
        if not isinstance(x, Tensor):
            raise TypeError(f"Layer {self.name!r} expects a tensor or numpy array of shape ({self.input_letters}), got {type(x).__name__}")
        if not x.is_floating_point():
            raise TypeError(
                f"Layer {self.name!r} expects floating-point inputs of shape ({self.input_letters}), got dtype {x.dtype}; "
                "integer token ids go through an Embedding layer first"
            )
        self._full_shape(x.shape)
        return super().__call__(x, *args, **kwargs)

    def _check_mask(self, mask: Any, x: Tensor) -> Optional[Tensor]:
        if mask is None:
            return None
        mask = torch.as_tensor(mask, device=x.device)
        if tuple(mask.shape) != tuple(x.shape[:2]):
            raise ValueError(f"Layer {self.name!r}: `mask` must have shape (B, T) = {tuple(x.shape[:2])}, got {tuple(mask.shape)}")
        return mask.bool()

    def _check_state(self, state: Any, B: int, argument: str) -> tuple[Tensor, ...]:
        state = self._flat_states(state)
        shapes = self.state_shapes()
        if len(state) != len(shapes):
            raise ValueError(f"Layer {self.name!r}: `{argument}` must hold {len(shapes)} tensor(s), got {len(state)}")
        dtype = self._state_dtype()
        for i, (s, shape) in enumerate(zip(state, shapes)):
            if not isinstance(s, Tensor) or tuple(s.shape) != (B, *shape):
                got = tuple(s.shape) if isinstance(s, Tensor) else type(s).__name__
                letters = "B, H" if len(shape) == 1 else "B, ..."
                want = ", ".join(str(d) for d in (B, *shape))
                raise ValueError(f"Layer {self.name!r}: `{argument}[{i}]` must have shape ({letters}) = ({want}), got {got}")
        return tuple(s.to(dtype) for s in state)

    def _initial_state(self, initial_state: Any, B: int) -> Optional[tuple[Tensor, ...]]:
        if initial_state is not None:
            return self._check_state(initial_state, B, "initial_state")
        if (self.stateful or self.carry_state) and self.states is not None and self.states[0].shape[0] == B:
            return self.states
        return None

    def reset_states(self, states: Any = None) -> None:
        """Forget the carried state (``stateful`` / ``carry_state``), or set it to ``states``."""
        if states is None:
            self.states = None
            return
        if not self.built:
            raise ValueError(f"Layer {self.name!r} is not built yet; call it on data before setting its states")
        flat = self._flat_states(states)
        B = flat[0].shape[0] if flat and isinstance(flat[0], Tensor) else 0
        self.states = tuple(s.detach() for s in self._check_state(states, B, "states"))

    # -------------------------------------------------------------- forward

    def forward(self, x: Tensor, mask: Optional[Tensor] = None, initial_state: Any = None,
                training: Optional[bool] = None) -> Union[Tensor, list[Any]]:
        x = self._check_input(x)
        if x.shape[1] == 0:
            raise ValueError(f"Layer {self.name!r} needs at least one time step (T >= 1), got shape {tuple(x.shape)}")
        training = self.training if training is None else bool(training)
        mask = self._check_mask(mask, x)
        out, last, final = self._run(x, mask, self._initial_state(initial_state, x.shape[0]), training)
        if self.stateful or self.carry_state:
            self.states = tuple(s.detach() for s in final)
        if self.return_sequences:
            # Keras: a backwards layer returns its outputs in processing order.
            y = out.flip(1) if self.go_backwards else out  # (B, T, ...)
        else:
            y = last  # (B, ...): the output of the last real step
        return [y, *self._pack_states(final)] if self.return_state else y

    def compute_mask(self, x: Any, mask: Optional[Tensor] = None) -> Optional[Tensor]:
        """The input mask with ``return_sequences`` (reversed with ``go_backwards``, like the outputs), else None."""
        if not self.return_sequences or mask is None:
            return None
        mask = torch.as_tensor(mask)
        return mask.flip(1) if self.go_backwards else mask

    def compute_output_shape(self, input_shape: Shape) -> Union[Shape, list[Any]]:
        shape = self._full_shape(input_shape)
        B, T = shape[0], shape[1]
        step, states = self.output_shapes(shape)
        out: Shape = (B, T, *step) if self.return_sequences else (B, *step)
        if self.return_state:
            return [out, *self._pack_states(tuple((B, *s) for s in states))]  # type: ignore[arg-type]
        return out

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(return_sequences=self.return_sequences, return_state=self.return_state,
                      go_backwards=self.go_backwards, stateful=self.stateful, tbptt=self.tbptt)
        return config


class CellSettings:
    """The Keras arguments of a built-in cell, validated once: shared by ``BaseRNN`` and the cells
    (``SimpleRNNCell``, ``LSTMCell``, ``GRUCell``) so both build the same ``RecurrentCell``."""

    kind = "rnn"

    def _set_cell_settings(
        self, units: int, activation: Optional[str], recurrent_activation: Optional[str], use_bias: bool,
        kernel_initializer: str, recurrent_initializer: str, bias_initializer: str, unit_forget_bias: bool,
        reset_after: bool, dropout: float, recurrent_dropout: float,
    ) -> None:
        self.units = check_positive_int(units, "units")
        self.activation = "linear" if activation is None else activation
        self.recurrent_activation = "linear" if recurrent_activation is None else recurrent_activation
        self.reset_after = check_flag(reset_after, "reset_after")
        # Validates the activation names now rather than at the first call.
        self.spec = CellSpec(self.kind, self.activation, self.recurrent_activation, self.reset_after)
        self.use_bias = check_flag(use_bias, "use_bias")
        self.kernel_initializer = _check_cell_initializer(kernel_initializer, "kernel_initializer")
        self.recurrent_initializer = _check_cell_initializer(recurrent_initializer, "recurrent_initializer")
        self.bias_initializer = _check_cell_initializer(bias_initializer, "bias_initializer")
        self.unit_forget_bias = check_flag(unit_forget_bias, "unit_forget_bias")
        self.dropout = check_rate(dropout, "dropout")
        self.recurrent_dropout = check_rate(recurrent_dropout, "recurrent_dropout")

    @property
    def bias_mode(self) -> str:
        """How many bias vectors Keras keeps: GRU with reset_after has two."""
        if not self.use_bias:
            return "none"
        return "double" if self.kind == "gru" and self.reset_after else "single"

    @property
    def n_states(self) -> int:
        return self.spec.n_states

    def _new_cell(self, features: int, dtype: torch.dtype, **extras: bool) -> RecurrentCell:
        return RecurrentCell(
            self.kind, features, self.units, bias=self.bias_mode, activation=self.activation,
            recurrent_activation=self.recurrent_activation, reset_after=self.reset_after,
            kernel_initializer=self.kernel_initializer, recurrent_initializer=self.recurrent_initializer,
            bias_initializer=self.bias_initializer, unit_forget_bias=self.unit_forget_bias, dtype=dtype, **extras,
        )

    def _cell_config(self) -> dict[str, Any]:
        return dict(
            units=self.units, activation=self.activation, use_bias=self.use_bias,
            kernel_initializer=self.kernel_initializer, recurrent_initializer=self.recurrent_initializer,
            bias_initializer=self.bias_initializer, dropout=self.dropout, recurrent_dropout=self.recurrent_dropout,
        )


class BaseRNN(RecurrentLayer, CellSettings):
    """Shared front of ``SimpleRNN``, ``LSTM`` and ``GRU``; see the module docstring.

    forward(x, mask=None, initial_state=None, training=None):
        x: (B, T, F) floating. mask: (B, T) bool, True on real steps; a masked step keeps
        the state. initial_state: [h] or [h, c], each (B, H). training: defaults to
        ``self.training``; it switches dropout and recurrent dropout on, and zoneout to
        sampling.
    """

    kind = "rnn"

    def __init__(
        self,
        units: int,
        *,
        activation: Optional[str],
        recurrent_activation: Optional[str],
        use_bias: bool,
        kernel_initializer: str,
        recurrent_initializer: str,
        bias_initializer: str,
        dropout: float,
        recurrent_dropout: float,
        return_sequences: bool,
        return_state: bool,
        go_backwards: bool,
        stateful: bool,
        zoneout: float,
        implementation: Union[str, int],
        tbptt: Optional[int],
        _cell_options: Optional[dict[str, bool]] = None,
        **kwargs: Any,
    ) -> None:
        # Cell-kind options (LSTM: unit_forget_bias, peephole, layer_norm; GRU: reset_after) come
        # from the subclass, so SimpleRNN(peephole=True) fails as an unknown argument.
        options = {"unit_forget_bias": False, "reset_after": True, "peephole": False, "layer_norm": False}
        options.update(_cell_options or {})
        super().__init__(return_sequences=return_sequences, return_state=return_state, go_backwards=go_backwards,
                         stateful=stateful, tbptt=tbptt, **kwargs)
        self._set_cell_settings(units, activation, recurrent_activation, use_bias, kernel_initializer,
                                recurrent_initializer, bias_initializer, options["unit_forget_bias"],
                                options["reset_after"], dropout, recurrent_dropout)
        self.peephole = check_flag(options["peephole"], "peephole")
        self.layer_norm = check_flag(options["layer_norm"], "layer_norm")
        self.zoneout = check_rate(zoneout, "zoneout")
        self.implementation = implementation
        self._implementation = _resolve_implementation(implementation)
        # (B, T) inputs read as univariate (B, T, 1) series only when asked for with input_shape=(T,).
        self._univariate = self.declared_input_shape is not None and len(self.declared_input_shape) == 2
        self.cell: Optional[RecurrentCell] = None
        self.probes: Optional[list] = None
        self._build_declared()

    # ---------------------------------------------------------------- build

    def _full_shape(self, input_shape: Shape) -> Shape:
        shape = tuple(input_shape)
        if self._univariate and len(shape) == 2:
            shape = (*shape, 1)
        return super()._full_shape(shape)

    def build(self, input_shape: Shape) -> None:
        features = self._full_shape(input_shape)[-1]
        if features is None:
            raise ValueError(f"Layer {self.name!r} needs a known feature size F (last axis), got shape {tuple(input_shape)}")
        self.cell = self._new_cell(features, self.weight_dtype, peephole=self.peephole, layer_norm=self.layer_norm)
        self.built = True

    def input_shape_from_state(self, state_dict: dict, prefix: str) -> Optional[Shape]:
        w = state_dict.get(prefix + "cell.weight_ih")
        return (None, None, int(w.shape[1])) if w is not None else None

    def state_shapes(self) -> list[tuple[int, ...]]:
        return [(self.units,)] * self.n_states

    def output_shapes(self, input_shape: Shape) -> tuple[tuple[Optional[int], ...], list[tuple[Optional[int], ...]]]:
        return (self.units,), [(self.units,)] * self.n_states

    def _state_dtype(self) -> torch.dtype:
        return self.cell.weight_ih.dtype

    # --------------------------------------------------------------- checks

    def _check_input(self, x: Tensor) -> Tensor:
        if self._univariate and x.dim() == 2:
            x = x.unsqueeze(-1)
        features = self.cell.input_size
        if x.dim() != 3 or x.shape[-1] != features:
            raise ValueError(
                f"Layer {self.name!r} was built for inputs of shape (B, T, {features}), got shape {tuple(x.shape)}"
            )
        # Keras casts float inputs to the layer's dtype; so do we.
        return x.to(self.cell.weight_ih.dtype)

    # -------------------------------------------------------------- forward

    def _run(self, x: Tensor, mask: Optional[Tensor], state0: Optional[tuple[Tensor, ...]],
             training: bool) -> tuple[Tensor, Tensor, tuple[Tensor, ...]]:
        implementation, probe = self._implementation, None
        if self.probes is not None:
            probe = x.new_zeros(x.shape[1], self.n_states, requires_grad=True)
            self.probes.append({"layer": self.name, "direction": "backward" if self.go_backwards else "forward", "probe": probe})
            if implementation == "fused":
                implementation = "bptt"  # the same function; only the engine can report gradient flow
        out, final = run_engine_cell(
            self.cell, x, mask, state0, training, dropout=self.dropout, recurrent_dropout=self.recurrent_dropout,
            zoneout=self.zoneout, reverse=self.go_backwards, tbptt=self.tbptt, implementation=implementation, probe=probe,
        )
        return out, final[0], final  # h after the last real step is that step's output

    # ------------------------------------------------------ Keras weights

    def _keras_gate_order(self, t: Tensor) -> Tensor:
        return keras_gate_order(self.kind, self.units, t)

    def _check_keras_compatible(self) -> None:
        if self.peephole or self.layer_norm:
            raise ValueError(f"Layer {self.name!r} uses peephole/layer_norm, which Keras layers do not have")

    def get_weights(self) -> list[np.ndarray]:
        """Keras layout: [kernel (F, G), recurrent_kernel (H, G), bias (G,) or (2, G)], Keras gate order."""
        if self.cell is None:
            return []
        self._check_keras_compatible()
        return keras_weights(self.cell, self.bias_mode)

    def set_weights(self, weights: Sequence[Any]) -> None:
        """Inverse of ``get_weights``; builds the layer from the kernel's shape if needed."""
        weights = [np.asarray(w) for w in weights]
        if not weights or weights[0].ndim != 2:
            raise ValueError(f"Layer {self.name!r}: expected Keras weights [kernel (F, G), recurrent_kernel (H, G), bias]")
        self.maybe_build((None, None, int(weights[0].shape[0])))
        self._check_keras_compatible()
        set_keras_weights(self.name, self.cell, weights)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), **self._cell_config(), "zoneout": self.zoneout, "implementation": self.implementation}

    def extra_repr(self) -> str:
        return f"name={self.name!r}, units={self.units}"


class SimpleRNN(BaseRNN):
    r"""Fully connected RNN, Keras's ``SimpleRNN``: :math:`h_t = \phi(W x_t + U h_{t-1} + b)`.

    IRNN (Le et al. 2015): ``SimpleRNN(units, activation="relu", recurrent_initializer="identity")``.
    """

    kind = "rnn"

    def __init__(
        self,
        units: int,
        activation: Optional[str] = "tanh",
        use_bias: bool = True,
        kernel_initializer: str = "glorot_uniform",
        recurrent_initializer: str = "orthogonal",
        bias_initializer: str = "zeros",
        *,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        return_sequences: bool = False,
        return_state: bool = False,
        go_backwards: bool = False,
        stateful: bool = False,
        zoneout: float = 0.0,
        implementation: Union[str, int] = "auto",
        tbptt: Optional[int] = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            units, activation=activation, recurrent_activation="sigmoid", use_bias=use_bias,
            kernel_initializer=kernel_initializer, recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer, dropout=dropout, recurrent_dropout=recurrent_dropout,
            return_sequences=return_sequences, return_state=return_state, go_backwards=go_backwards, stateful=stateful,
            zoneout=zoneout, implementation=implementation, tbptt=tbptt, **kwargs,
        )


class LSTM(BaseRNN):
    r"""Long short-term memory, Keras's ``LSTM`` (Hochreiter & Schmidhuber 1997).

    .. math::
        i_t = \sigma(W_i x_t + U_i h_{t-1} + b_i) \quad f_t = \sigma(W_f x_t + U_f h_{t-1} + b_f) \\
        g_t = \tanh(W_g x_t + U_g h_{t-1} + b_g) \quad o_t = \sigma(W_o x_t + U_o h_{t-1} + b_o) \\
        c_t = f_t \odot c_{t-1} + i_t \odot g_t \qquad h_t = o_t \odot \tanh(c_t)

    ``unit_forget_bias`` starts b_f at 1. Extras: ``peephole`` (Gers & Schmidhuber 2000),
    ``layer_norm`` (Ba et al. 2016), ``zoneout`` (Krueger et al. 2017); see ``rnnkit.ops.lstm``.
    """

    kind = "lstm"

    def __init__(
        self,
        units: int,
        activation: Optional[str] = "tanh",
        recurrent_activation: Optional[str] = "sigmoid",
        use_bias: bool = True,
        kernel_initializer: str = "glorot_uniform",
        recurrent_initializer: str = "orthogonal",
        bias_initializer: str = "zeros",
        unit_forget_bias: bool = True,
        *,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        return_sequences: bool = False,
        return_state: bool = False,
        go_backwards: bool = False,
        stateful: bool = False,
        zoneout: float = 0.0,
        layer_norm: bool = False,
        peephole: bool = False,
        implementation: Union[str, int] = "auto",
        tbptt: Optional[int] = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            units, activation=activation, recurrent_activation=recurrent_activation, use_bias=use_bias,
            kernel_initializer=kernel_initializer, recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer, dropout=dropout, recurrent_dropout=recurrent_dropout,
            return_sequences=return_sequences, return_state=return_state, go_backwards=go_backwards, stateful=stateful,
            zoneout=zoneout, implementation=implementation, tbptt=tbptt, **kwargs,
            _cell_options={"unit_forget_bias": unit_forget_bias, "peephole": peephole, "layer_norm": layer_norm},
        )

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(recurrent_activation=self.recurrent_activation, unit_forget_bias=self.unit_forget_bias,
                      layer_norm=self.layer_norm, peephole=self.peephole)
        return config


class GRU(BaseRNN):
    r"""Gated recurrent unit, Keras's ``GRU`` (Cho et al. 2014).

    .. math::
        z_t = \sigma(W_z x_t + U_z h_{t-1} + b_z) \qquad r_t = \sigma(W_r x_t + U_r h_{t-1} + b_r) \\
        \tilde h_t = \tanh(W_h x_t + b_h + r_t \odot (U_h h_{t-1} + b'_h))
            \quad \text{(reset_after=True; else } \tanh(W_h x_t + U_h (r_t \odot h_{t-1}) + b_h)) \\
        h_t = z_t \odot h_{t-1} + (1 - z_t) \odot \tilde h_t

    ``reset_after=True`` (Keras's default, cuDNN's form) keeps a second, recurrent bias.
    """

    kind = "gru"

    def __init__(
        self,
        units: int,
        activation: Optional[str] = "tanh",
        recurrent_activation: Optional[str] = "sigmoid",
        use_bias: bool = True,
        kernel_initializer: str = "glorot_uniform",
        recurrent_initializer: str = "orthogonal",
        bias_initializer: str = "zeros",
        *,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        return_sequences: bool = False,
        return_state: bool = False,
        go_backwards: bool = False,
        stateful: bool = False,
        reset_after: bool = True,
        zoneout: float = 0.0,
        implementation: Union[str, int] = "auto",
        tbptt: Optional[int] = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            units, activation=activation, recurrent_activation=recurrent_activation, use_bias=use_bias,
            kernel_initializer=kernel_initializer, recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer, dropout=dropout, recurrent_dropout=recurrent_dropout,
            return_sequences=return_sequences, return_state=return_state, go_backwards=go_backwards, stateful=stateful,
            zoneout=zoneout, implementation=implementation, tbptt=tbptt, **kwargs,
            _cell_options={"reset_after": reset_after},
        )

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(recurrent_activation=self.recurrent_activation, reset_after=self.reset_after)
        return config
