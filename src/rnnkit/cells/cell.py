"""A recurrent cell: its weights, their initialisation, and one step of its math.

The step math lives in ``rnnkit.ops``; the loop over time lives in
``rnnkit.engine``. A cell only owns parameters (torch layout, PyTorch gate
order) and knows how to initialise them.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..ops import CELL_OPS, CellSpec, Weights, cell_spec
from .init import initialize


def check_step_input(x: Tensor, input_size: int) -> None:
    """One step's input must be a floating-point (B, F) tensor with F = ``input_size``."""
    if not isinstance(x, Tensor) or not x.dtype.is_floating_point:
        got = f"dtype {x.dtype}" if isinstance(x, Tensor) else type(x).__name__
        raise TypeError(f"Argument `x` must be a floating-point tensor of shape (B, {input_size}), got {got}")
    if x.dim() != 2 or x.shape[1] != input_size:
        raise ValueError(f"Argument `x` must have shape (B, {input_size}), got {tuple(x.shape)}")


def check_positive_int(value: object, argument: str, allow_zero: bool = False) -> int:
    ok = isinstance(value, int) and not isinstance(value, bool) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        kind = "a non-negative" if allow_zero else "a positive"
        raise ValueError(f"Received an invalid value for argument `{argument}`, expected {kind} integer, got {value!r}")
    return value  # type: ignore[return-value]


class RecurrentCell(nn.Module):
    """Weights of one Elman, LSTM or GRU cell, and a single step.

    Parameters (torch.nn layout, G = gates * H, P = proj_size or H):
        weight_ih (G, F), weight_hh (G, P), bias_ih (G,), bias_hh (G,) when ``bias="double"``,
        weight_hr (P, H) with ``proj_size``, peephole (3, H), ln_gamma/ln_beta (G,),
        ln_cell_gamma/ln_cell_beta (H,) with ``layer_norm``.

    Args:
        bias: "double" (b_ih and b_hh, as torch.nn and Keras GRU reset_after), "single"
            (one bias, as Keras LSTM/SimpleRNN), or "none".
        init: initialiser names for "kernel", "recurrent", "bias"; "torch_default" everywhere
            reproduces torch.nn. ``unit_forget_bias`` sets the LSTM forget bias to 1.
    """

    def __init__(
        self,
        kind: str,
        input_size: int,
        hidden_size: int,
        *,
        bias: str = "double",
        proj_size: int = 0,
        peephole: bool = False,
        layer_norm: bool = False,
        activation: str = "tanh",
        recurrent_activation: str = "sigmoid",
        reset_after: bool = True,
        kernel_initializer: str = "torch_default",
        recurrent_initializer: str = "torch_default",
        bias_initializer: str = "torch_default",
        unit_forget_bias: bool = False,
        dtype: Optional[torch.dtype] = None,
    ) -> None:
        super().__init__()
        self._spec_args = (kind, activation, recurrent_activation, reset_after)
        cell_spec(*self._spec_args)  # checks the activation names
        self.input_size = check_positive_int(input_size, "input_size")
        self.hidden_size = check_positive_int(hidden_size, "hidden_size")
        self.proj_size = check_positive_int(proj_size, "proj_size", allow_zero=True)
        if bias not in ("double", "single", "none"):
            raise ValueError(f"Received an invalid value for argument `bias`: expected 'double', 'single' or 'none', got {bias!r}")
        if (peephole or layer_norm or proj_size) and kind != "lstm":
            raise ValueError(f"peephole, layer_norm and proj_size are LSTM options; got them for a {kind!r} cell")
        if proj_size >= hidden_size and proj_size:
            raise ValueError(f"Argument `proj_size` must be smaller than hidden_size={hidden_size}, got {proj_size}")
        self.bias_mode = bias
        self.init_names = {"kernel": kernel_initializer, "recurrent": recurrent_initializer, "bias": bias_initializer}
        self.unit_forget_bias = unit_forget_bias
        G, H = self.spec.gates * hidden_size, hidden_size
        P = proj_size or H
        kw = {"dtype": dtype}
        self.weight_ih = nn.Parameter(torch.empty(G, input_size, **kw))
        self.weight_hh = nn.Parameter(torch.empty(G, P, **kw))
        self.bias_ih = nn.Parameter(torch.empty(G, **kw)) if bias != "none" else None
        self.bias_hh = nn.Parameter(torch.empty(G, **kw)) if bias == "double" else None
        self.weight_hr = nn.Parameter(torch.empty(P, H, **kw)) if proj_size else None
        self.peephole = nn.Parameter(torch.empty(3, H, **kw)) if peephole else None
        self.ln_gamma = nn.Parameter(torch.empty(G, **kw)) if layer_norm else None
        self.ln_beta = nn.Parameter(torch.empty(G, **kw)) if layer_norm else None
        self.ln_cell_gamma = nn.Parameter(torch.empty(H, **kw)) if layer_norm else None
        self.ln_cell_beta = nn.Parameter(torch.empty(H, **kw)) if layer_norm else None
        self.reset_parameters()

    @property
    def spec(self) -> CellSpec:
        """The cell's math (kind, activations); kept as primitives so that a pickled cell holds no CellSpec."""
        return cell_spec(*self._spec_args)

    def __prepare_scriptable__(self) -> None:
        # torch.jit.script would fail deep inside the engine's Python; say what works instead.
        raise TypeError(
            f"torch.jit.script cannot compile {type(self).__name__}: rnnkit's time loop is a torch operator "
            "called from Python code that TorchScript does not parse. Use torch.jit.trace(module, example_inputs), "
            "torch.export.export, or torch.compile instead"
        )

    @property
    def state_sizes(self) -> tuple[int, ...]:
        """Sizes of the state components: (P,) or, for LSTM, (P, H)."""
        P = self.proj_size or self.hidden_size
        return (P, self.hidden_size) if self.spec.kind == "lstm" else (P,)

    def reset_parameters(self) -> None:
        H = self.hidden_size
        initialize(self.weight_ih.data, self.init_names["kernel"], H, "kernel_initializer")
        initialize(self.weight_hh.data, self.init_names["recurrent"], H, "recurrent_initializer")
        for b in (self.bias_ih, self.bias_hh):
            if b is not None:
                initialize(b.data, self.init_names["bias"], H, "bias_initializer")
        if self.unit_forget_bias and self.spec.kind == "lstm" and self.bias_ih is not None:
            # Jozefowicz et al. (2015): start by remembering. Only one bias carries the 1.
            self.bias_ih.data[H : 2 * H] = 1.0
            if self.bias_hh is not None:
                self.bias_hh.data[H : 2 * H] = 0.0
        if self.weight_hr is not None:
            initialize(self.weight_hr.data, self.init_names["kernel"], H, "kernel_initializer")
        if self.peephole is not None:
            initialize(self.peephole.data, "torch_default", H)
        if self.ln_gamma is not None:
            for p in (self.ln_gamma, self.ln_cell_gamma):
                nn.init.ones_(p)
            for p in (self.ln_beta, self.ln_cell_beta):
                nn.init.zeros_(p)

    def weights(self) -> Weights:
        return Weights(*(getattr(self, name) for name in Weights._fields))

    def initial_state(self, batch_size: int, like: Tensor) -> tuple[Tensor, ...]:
        return tuple(like.new_zeros(batch_size, n) for n in self.state_sizes)

    def forward(self, x: Tensor, state: Optional[tuple[Tensor, ...]] = None) -> tuple[Tensor, ...]:
        """One step: x (B, F), state ((B, P),) or ((B, P), (B, H)) -> new state. Autograd does the backward."""
        check_step_input(x, self.input_size)
        if state is None:
            state = self.initial_state(x.shape[0], x)
        state = tuple(state)
        expected = [(x.shape[0], n) for n in self.state_sizes]
        got_shapes = [tuple(s.shape) if isinstance(s, Tensor) else type(s).__name__ for s in state]
        if got_shapes != expected:
            # Without this a wrong state fails deep in a matmul, or in tuple unpacking.
            raise ValueError(f"Argument `state` must be {len(expected)} tensor(s) of shapes {expected}, got {got_shapes}")
        w = self.weights()
        bias = w.bias_ih
        if self.spec.folds_hh_bias and w.bias_hh is not None:
            bias = w.bias_hh if bias is None else bias + w.bias_hh
        inner = w if not self.spec.folds_hh_bias else w._replace(bias_hh=None)
        new, _ = CELL_OPS[self.spec.kind].step(F.linear(x, w.weight_ih, bias), state, state[0], inner, self.spec)
        return new

    def extra_repr(self) -> str:
        s = f"{self.spec.kind}, {self.input_size}, {self.hidden_size}"
        if self.proj_size:
            s += f", proj_size={self.proj_size}"
        if self.peephole is not None:
            s += ", peephole=True"
        if self.ln_gamma is not None:
            s += ", layer_norm=True"
        if self.spec.kind == "gru" and not self.spec.reset_after:
            s += ", reset_after=False"
        return s
