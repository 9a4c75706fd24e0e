r"""Drop-in replacements for ``torch.nn.RNNCell``, ``LSTMCell`` and ``GRUCell``.

Each is an ``rnnkit.cells.RecurrentCell`` (torch's parameter names and init, the
step math of ``rnnkit.ops``) wrapped in torch.nn's single-step contract: input
(B, F) or unbatched (F,), optional hx, returns h or (h, c). Extras that make sense
for one step are keyword-only: ``peephole`` and ``layer_norm`` (LSTMCell), and
``reset_after`` (GRUCell); their parameters (``peephole``, ``ln_gamma``, ...)
exist only when switched on.

Stepped by hand in a Python loop, a well-formed call of a batched input goes straight to one
kernel after a few cheap checks, with no more Python per step than torch.nn's cells: for LSTM and
GRU on the CPU, the engine's one-step operator (one autograd node over the C++ loop's row kernels,
``cell_step`` in csrc/recurrence.cpp), else torch's one-step kernel (``rnnkit.fused.CELL_KERNELS``,
also under torch.compile and tracing), both only where they compute exactly this cell (not with
peepholes, layer norm or ``reset_after=False``). Any other call takes ``_step``, which checks
everything and explains what is wrong.
"""

from __future__ import annotations

from typing import Optional, Union

import torch
from torch import Tensor

from ..cells import RecurrentCell
from ..engine import kernels, library
from ..engine.stream import step
from ..fused import CELL_KERNELS, cell_kernel_key
from ._checks import check_bool, check_features, check_float_tensor, check_nonlinearity, check_state_shape

# The fast path's conditions for the C++ step (read at every call, so kept to attribute reads and
# C calls): torch.compile, jit tracing and dispatch modes (fake tensors, flop counters) must see
# torch's kernel, which they can trace; engine.library.traced asks the same, in more calls.
_dynamo_compiling = torch.compiler.is_dynamo_compiling
_tracing_state = torch._C._get_tracing_state
_dispatch_modes = torch._C._len_torch_dispatch_stack
_CXX_DTYPES = (torch.float32, torch.float64)


class RNNCellBase(RecurrentCell):
    """Shared body of the torch.nn-style cells; use ``RNNCell``, ``LSTMCell`` or ``GRUCell``."""

    def __init__(
        self,
        kind: str,
        input_size: int,
        hidden_size: int,
        bias: bool,
        device: Optional[Union[torch.device, str]],
        dtype: Optional[torch.dtype],
        **options: object,
    ) -> None:
        check_bool(bias, "bias")
        super().__init__(kind, input_size, hidden_size, bias="double" if bias else "none", dtype=dtype, **options)  # type: ignore[arg-type]
        self.bias = bias
        # torch's fused one-step kernel where it computes exactly this cell, else None (see above).
        self._kernel_key = cell_kernel_key(self.spec, self.weights())
        # Where the engine's one-step operator computes it too: its kind code (see above).
        self._step_code = {("lstm", "tanh"): 1, ("gru", "tanh"): 2}.get(self._kernel_key)
        if self._step_code is not None:
            kernels.load_kernels()  # built once per machine; without a compiler, torch's kernel serves
        if device is not None:
            self.to(device)

    def _step(self, input: Tensor, hx: Optional[tuple[Tensor, ...]]) -> tuple[Tensor, ...]:
        """input (B, F) or (F,); hx per state component (B, n) or (n,), or None -> new state, same layout."""
        layout = "(B, F) or unbatched (F,)"
        check_float_tensor(input, "input", layout, self.weight_ih.dtype)
        if input.dim() not in (1, 2):
            raise ValueError(f"Argument `input` must have shape {layout} (rank 2 or 1), got shape {tuple(input.shape)}")
        check_features(input, "input", layout, self.input_size)
        batched = input.dim() == 2
        x = input if batched else input.unsqueeze(0)
        state = None
        if hx is not None:
            lstm = self.spec.kind == "lstm"
            state = tuple(
                check_state_shape(
                    s,
                    f"hx[{i}]" if lstm else "hx",
                    "(B, H)" if batched else "(H,) for unbatched input",
                    (x.shape[0], n) if batched else (n,),
                    input.dtype,
                )
                for i, (s, n) in enumerate(zip(hx, self.state_sizes))
            )
            if not batched:
                state = tuple(s.unsqueeze(0) for s in state)
        if self._kernel_key is not None and torch.is_grad_enabled():
            # The fast path's kernels (tests/nn/test_cell_step.py holds them to rnnkit.ops' step).
            if state is None:
                zeros = x.new_zeros(x.shape[0], self.hidden_size)
                state = (zeros, zeros) if self.spec.kind == "lstm" else (zeros,)
            new = self._fused(x, state)
        else:
            new = step(self, x, state)
        return new if batched else tuple(s.squeeze(0) for s in new)

    def _fused(self, x: Tensor, state: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        """The fast path's step on checked arguments: x (B, F), state per component (B, H)."""
        lstm = self.spec.kind == "lstm"
        module = kernels._module
        if (self._step_code is not None and module is not None and x.dtype in _CXX_DTYPES and x.device.type == "cpu"
                and not library.traced(x)):
            return tuple(module.cell_step(self._step_code, x, state[0], state[1] if lstm else None, self.weight_ih,
                                          self.weight_hh, self.bias_ih, self.bias_hh))
        kernel = CELL_KERNELS[self._kernel_key]
        if lstm:
            return tuple(kernel(x, state, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh))
        return (kernel(x, state[0], self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh),)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if not self.bias:
            s += ", bias=False"
        if self.spec.kind == "rnn" and self.spec.activation != "tanh":
            s += f", nonlinearity={self.spec.activation!r}"
        if self.peephole is not None:
            s += ", peephole=True"
        if self.ln_gamma is not None:
            s += ", layer_norm=True"
        if self.spec.kind == "gru" and not self.spec.reset_after:
            s += ", reset_after=False"
        return s


class RNNCell(RNNCellBase):
    r"""Elman cell, a drop-in for ``torch.nn.RNNCell``:

    .. math::
        h' = \phi(W_{ih} x + b_{ih} + W_{hh} h + b_{hh}), \quad \phi = \tanh \text{ or ReLU}

    Inputs: input (B, F) or (F,); hx (B, H) or (H,), zeros if None.
    Output: h' (B, H) or (H,).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        nonlinearity: str = "tanh",
        device: Optional[Union[torch.device, str]] = None,
        dtype: Optional[torch.dtype] = None,
    ) -> None:
        super().__init__("rnn", input_size, hidden_size, bias, device, dtype, activation=check_nonlinearity(nonlinearity))
        self.nonlinearity = nonlinearity

    def forward(self, input: Tensor, hx: Optional[Tensor] = None) -> Tensor:
        # The fast path's checks are inline, not a helper: a Python call per step is what it saves.
        key = self._kernel_key
        if key is not None and type(input) is Tensor and type(hx) is Tensor and input.dim() == 2:
            w_ih = self.weight_ih
            if (input.dtype == w_ih.dtype == hx.dtype and input.shape[1] == self.input_size
                    and hx.shape == (input.shape[0], self.hidden_size)):
                return CELL_KERNELS[key](input, hx, w_ih, self.weight_hh, self.bias_ih, self.bias_hh)
        (h,) = self._step(input, None if hx is None else (hx,))
        return h


class LSTMCell(RNNCellBase):
    r"""LSTM cell, a drop-in for ``torch.nn.LSTMCell`` (gate order i, f, g, o):

    .. math::
        i = \sigma(a_i + p_i \odot c) \quad f = \sigma(a_f + p_f \odot c) \quad g = \tanh(a_g) \\
        c' = f \odot c + i \odot g \quad o = \sigma(a_o + p_o \odot c') \quad h' = o \odot \tanh(c')

    with a = W_ih x + b_ih + W_hh h + b_hh. Extras: ``peephole`` (p, parameter ``peephole`` (3, H)),
    ``layer_norm`` (per gate block of a: ``ln_gamma``/``ln_beta`` (4H,); of c' before its tanh:
    ``ln_cell_gamma``/``ln_cell_beta`` (H,)).

    Inputs: input (B, F) or (F,); hx = (h, c), each (B, H) or (H,), zeros if None.
    Output: (h', c'), each (B, H) or (H,).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        device: Optional[Union[torch.device, str]] = None,
        dtype: Optional[torch.dtype] = None,
        *,
        peephole: bool = False,
        layer_norm: bool = False,
    ) -> None:
        super().__init__(
            "lstm", input_size, hidden_size, bias, device, dtype,
            peephole=check_bool(peephole, "peephole"), layer_norm=check_bool(layer_norm, "layer_norm"),
        )

    def forward(self, input: Tensor, hx: Optional[tuple[Tensor, Tensor]] = None) -> tuple[Tensor, Tensor]:
        key = self._kernel_key  # the fast path, as in RNNCell.forward
        if key is not None and type(input) is Tensor and type(hx) is tuple and len(hx) == 2 and input.dim() == 2:
            w_ih, (h, c) = self.weight_ih, hx
            if (type(h) is Tensor and type(c) is Tensor and input.dtype == w_ih.dtype == h.dtype == c.dtype
                    and input.shape[1] == self.input_size and h.shape == c.shape == (input.shape[0], self.hidden_size)):
                module = kernels._module
                if (module is not None and input.dtype in _CXX_DTYPES and input.device.type == "cpu"
                        and not _dynamo_compiling() and _tracing_state() is None and not _dispatch_modes()):
                    return tuple(module.cell_step(1, input, h, c, w_ih, self.weight_hh, self.bias_ih, self.bias_hh))
                return CELL_KERNELS[key](input, hx, w_ih, self.weight_hh, self.bias_ih, self.bias_hh)
        if hx is not None and not (isinstance(hx, (tuple, list)) and len(hx) == 2):
            raise TypeError(f"Argument `hx` of an LSTMCell must be a tuple (h, c), got {type(hx).__name__}")
        h, c = self._step(input, None if hx is None else tuple(hx))
        return h, c


class GRUCell(RNNCellBase):
    r"""GRU cell, a drop-in for ``torch.nn.GRUCell`` (gate order r, z, n):

    .. math::
        r = \sigma(W_{ir} x + b_{ir} + W_{hr} h + b_{hr}) \quad
        z = \sigma(W_{iz} x + b_{iz} + W_{hz} h + b_{hz}) \\
        n = \tanh(W_{in} x + b_{in} + r \odot (W_{hn} h + b_{hn})) \quad
        h' = (1 - z) \odot n + z \odot h

    Extra: ``reset_after=False`` gives n = tanh(W_in x + b_in + W_hn (r * h) + b_hn).

    Inputs: input (B, F) or (F,); hx (B, H) or (H,), zeros if None.
    Output: h' (B, H) or (H,).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        device: Optional[Union[torch.device, str]] = None,
        dtype: Optional[torch.dtype] = None,
        *,
        reset_after: bool = True,
    ) -> None:
        super().__init__("gru", input_size, hidden_size, bias, device, dtype, reset_after=check_bool(reset_after, "reset_after"))

    def forward(self, input: Tensor, hx: Optional[Tensor] = None) -> Tensor:
        # The fast path's checks are inline, not a helper: a Python call per step is what it saves.
        key = self._kernel_key
        if key is not None and type(input) is Tensor and type(hx) is Tensor and input.dim() == 2:
            w_ih = self.weight_ih
            if (input.dtype == w_ih.dtype == hx.dtype and input.shape[1] == self.input_size
                    and hx.shape == (input.shape[0], self.hidden_size)):
                module = kernels._module  # the engine's step where it applies, as in LSTMCell.forward
                if (module is not None and input.dtype in _CXX_DTYPES and input.device.type == "cpu"
                        and not _dynamo_compiling() and _tracing_state() is None and not _dispatch_modes()):
                    return module.cell_step(2, input, hx, None, w_ih, self.weight_hh, self.bias_ih, self.bias_hh)[0]
                return CELL_KERNELS[key](input, hx, w_ih, self.weight_hh, self.bias_ih, self.bias_hh)
        (h,) = self._step(input, None if hx is None else (hx,))
        return h
