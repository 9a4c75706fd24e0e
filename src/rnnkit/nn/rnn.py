r"""Drop-in replacements for ``torch.nn.RNN``, ``LSTM`` and ``GRU``.

Same constructor, parameter names, ``state_dict`` layout, initialisation and
forward contract as torch.nn. Each layer and direction is one call to
``rnnkit.recurrent.run_layer``, which runs torch's fused kernel or rnnkit's
hand-derived BPTT engine; the step math is in ``rnnkit.ops``.

rnnkit's extras are keyword-only and create parameters only when switched on,
so a plain module's ``state_dict`` is exactly torch's:

    peephole_l{k}[_reverse] (3, H)                    LSTM ``peephole=True``
    ln_gamma_l{k}, ln_beta_l{k} (G,)                  LSTM ``layer_norm=True``
    ln_cell_gamma_l{k}, ln_cell_beta_l{k} (H,)        LSTM ``layer_norm=True``
"""

from __future__ import annotations

import warnings
from typing import Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from .. import engine
from ..cells import RecurrentCell, initialize
from ..ops import CellSpec, Weights, cell_spec
from ..recurrent import check_implementation, run_layer
from ._checks import (
    check_bool,
    check_features,
    check_float_tensor,
    check_nonlinearity,
    check_positive_int,
    check_rate,
    check_state_shape,
    check_tbptt,
)

_MODES = {"RNN_TANH": ("rnn", "tanh"), "RNN_RELU": ("rnn", "relu"), "LSTM": ("lstm", "tanh"), "GRU": ("gru", "tanh")}
_TORCH_FIELDS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr")
_EXTRA_FIELDS = ("peephole", "ln_gamma", "ln_beta", "ln_cell_gamma", "ln_cell_beta")

Input = Union[Tensor, PackedSequence]
Lengths = Union[Tensor, Sequence[int]]


class RNNBase(nn.Module):
    """Shared body of ``RNN``, ``LSTM`` and ``GRU``; use those.

    ``mode`` is torch's: "RNN_TANH", "RNN_RELU", "LSTM" or "GRU".
    """

    def __init__(
        self,
        mode: str,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        device: Optional[Union[torch.device, str]] = None,
        dtype: Optional[torch.dtype] = None,
        *,
        reset_after: bool = True,
        peephole: bool = False,
        layer_norm: bool = False,
        recurrent_dropout: float = 0.0,
        zoneout: float = 0.0,
        implementation: str = "auto",
        tbptt: Optional[int] = None,
    ) -> None:
        super().__init__()
        if mode not in _MODES:
            raise ValueError(f"Received an invalid value for argument `mode`, expected one of {tuple(_MODES)}, got {mode!r}")
        kind, activation = _MODES[mode]
        self.mode = mode
        self.input_size = check_positive_int(input_size, "input_size")
        self.hidden_size = check_positive_int(hidden_size, "hidden_size")
        self.num_layers = check_positive_int(num_layers, "num_layers")
        self.bias = check_bool(bias, "bias")
        self.batch_first = check_bool(batch_first, "batch_first")
        self.dropout = check_rate(dropout, "dropout", allow_one=True)
        self.bidirectional = check_bool(bidirectional, "bidirectional")
        self.proj_size = check_positive_int(proj_size, "proj_size", allow_zero=True)
        if proj_size and proj_size >= hidden_size:
            raise ValueError(
                f"Received an invalid value for argument `proj_size`, expected 0 (off) or a size smaller than "
                f"hidden_size={hidden_size}, got {proj_size}"
            )
        self._spec_args = (kind, activation, "sigmoid", check_bool(reset_after, "reset_after"))
        self.peephole = check_bool(peephole, "peephole")
        self.layer_norm = check_bool(layer_norm, "layer_norm")
        self.recurrent_dropout = check_rate(recurrent_dropout, "recurrent_dropout", allow_one=False)
        self.zoneout = check_rate(zoneout, "zoneout", allow_one=False)
        self.implementation = check_implementation(implementation)
        self.tbptt = check_tbptt(tbptt)
        self._check_options()
        # Per layer-direction (index layer * D + direction): Weights field -> parameter name.
        self._names: list[dict[str, str]] = self._make_parameters({"device": device, "dtype": dtype})
        self.reset_parameters()

    def _check_options(self) -> None:
        kind = self.spec.kind
        if (self.peephole or self.layer_norm) and kind != "lstm":
            raise ValueError(f"`peephole` and `layer_norm` are LSTM options, got them for {self.mode}")
        if not self.spec.reset_after and kind != "gru":
            raise ValueError(f"`reset_after` is a GRU option, got reset_after=False for {self.mode}")
        if self.dropout > 0 and self.num_layers == 1:
            warnings.warn(
                f"`dropout` acts between stacked layers only, so dropout={self.dropout} does nothing with num_layers=1",
                stacklevel=4,
            )
        if self.implementation == "fused":
            # Refused here, at construction, rather than at the first forward in training.
            unfusable = [
                name
                for name, on in (
                    ("reset_after=False", not self.spec.reset_after),
                    ("peephole", self.peephole),
                    ("layer_norm", self.layer_norm),
                    ("recurrent_dropout", self.recurrent_dropout > 0),
                    ("zoneout", self.zoneout > 0),
                )
                if on
            ]
            if unfusable:
                raise ValueError(
                    f"implementation='fused' runs torch's kernel, which has no {', '.join(unfusable)}; "
                    "use implementation='auto' or 'bptt'"
                )

    def _make_parameters(self, factory: dict) -> list[dict[str, str]]:
        H, D = self.hidden_size, self.num_directions
        P = self.proj_size or H
        G = self.spec.gates * H
        shapes = {
            "weight_ih": (G, P * D),  # layer 0 reads the input instead, see below
            "weight_hh": (G, P),
            "bias_ih": (G,) if self.bias else None,
            "bias_hh": (G,) if self.bias else None,
            "weight_hr": (P, H) if self.proj_size else None,
            "peephole": (3, H) if self.peephole else None,
            "ln_gamma": (G,) if self.layer_norm else None,
            "ln_beta": (G,) if self.layer_norm else None,
            "ln_cell_gamma": (H,) if self.layer_norm else None,
            "ln_cell_beta": (H,) if self.layer_norm else None,
        }
        names: list[dict[str, str]] = [{} for _ in range(self.num_layers * D)]
        # torch's parameters of every layer come first and the extras after, so a plain module
        # has torch's exact parameter order and a seeded init draws torch's weights, extras or not.
        for fields in (_TORCH_FIELDS, _EXTRA_FIELDS):
            for layer in range(self.num_layers):
                for direction in range(D):
                    for field in fields:
                        shape = (G, self.input_size) if field == "weight_ih" and layer == 0 else shapes[field]
                        if shape is None:
                            continue
                        name = f"{field}_l{layer}{'_reverse' if direction else ''}"
                        self.register_parameter(name, nn.Parameter(torch.empty(shape, **factory)))
                        names[layer * D + direction][field] = name
        return names

    @property
    def spec(self) -> CellSpec:
        """The cell's math (kind, activations); kept as primitives so that ``torch.save(module)`` pickles no
        rnnkit class but the module's own."""
        return cell_spec(*self._spec_args)

    __prepare_scriptable__ = RecurrentCell.__prepare_scriptable__  # torch.jit.script: say what works instead

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def all_weights(self) -> list[list[nn.Parameter]]:
        """The parameters of each layer-direction (torch's first, then extras)."""
        return [[getattr(self, n) for n in names.values()] for names in self._names]

    def flatten_parameters(self) -> None:
        """For torch compatibility; rnnkit keeps no flat weight buffer, so this does nothing."""

    def reset_parameters(self) -> None:
        """torch's init for torch's weights and the peepholes, U(-1/sqrt(H), 1/sqrt(H)); LayerNorm gains 1, shifts 0."""
        field_of = {name: field for names in self._names for field, name in names.items()}
        for name, p in self._parameters.items():
            field = field_of[name]
            if field in ("ln_gamma", "ln_cell_gamma"):
                nn.init.ones_(p)
            elif field in ("ln_beta", "ln_cell_beta"):
                nn.init.zeros_(p)
            else:
                initialize(p.data, "torch_default", self.hidden_size)

    def layer_weights(self, layer: int, direction: int = 0) -> Weights:
        """The ``rnnkit.ops.Weights`` of one layer (0-based) and direction (1 = reverse)."""
        names = self._names[layer * self.num_directions + direction]
        return Weights(**{field: getattr(self, name) for field, name in names.items()})

    # -- forward ------------------------------------------------------------------------------

    def _state_sizes(self) -> tuple[int, ...]:
        P = self.proj_size or self.hidden_size
        return (P, self.hidden_size)[: self.spec.n_states]

    def _check_hx(
        self, hx: object, B: int, batched: bool, dtype: torch.dtype
    ) -> Optional[tuple[Tensor, ...]]:
        """hx as torch takes it -> one (L*D, B, n) tensor per state component, or None."""
        if hx is None:
            return None
        lstm = self.spec.kind == "lstm"
        if lstm and not (isinstance(hx, (tuple, list)) and len(hx) == 2):
            raise TypeError(f"Argument `hx` of an LSTM must be a tuple (h_0, c_0), got {type(hx).__name__}")
        states = tuple(hx) if lstm else (hx,)  # type: ignore[arg-type]
        LD = self.num_layers * self.num_directions
        letters = ("P" if self.proj_size else "H", "H")
        checked = []
        for i, (s, n) in enumerate(zip(states, self._state_sizes())):
            argument = f"hx[{i}]" if lstm else "hx"
            if batched:
                layout = f"(num_layers * num_directions, B, {letters[i]})"
                expected: tuple[int, ...] = (LD, B, n)
            else:
                layout = f"(num_layers * num_directions, {letters[i]}) for unbatched input"
                expected = (LD, n)
            s = check_state_shape(s, argument, layout, expected, dtype)
            checked.append(s if batched else s.unsqueeze(1))
        return tuple(checked)

    def _check_input(self, input: object) -> None:
        layout = "(B, T, F)" if self.batch_first else "(T, B, F)"
        layout += " or unbatched (T, F)"
        if isinstance(input, PackedSequence):
            data = check_float_tensor(input.data, "input.data", "(N, F)", self.weight_ih_l0.dtype)
            if data.dim() != 2:
                raise ValueError(f"Argument `input` (a PackedSequence) must hold data of shape (N, F), got {tuple(data.shape)}")
            check_features(data, "input.data", "(N, F)", self.input_size)
            return
        x = check_float_tensor(input, "input", layout + " or a PackedSequence", self.weight_ih_l0.dtype)
        if x.dim() not in (2, 3):
            raise ValueError(f"Argument `input` must have shape {layout} (rank 3 or 2), got shape {tuple(x.shape)}")
        check_features(x, "input", layout, self.input_size)

    def _forward(
        self, input: Input, hx: object, lengths: Optional[Lengths]
    ) -> tuple[Input, tuple[Tensor, ...]]:
        """Returns the output in the input's layout and the final states, each (L*D, B, n)."""
        self._check_input(input)
        x, lengths, batched, packed = _batch_first(input, lengths, self.batch_first)
        B, T = x.shape[:2]
        state0 = self._check_hx(hx, B, batched, x.dtype)
        out, finals = self._run(x, state0, lengths)

        if packed:
            output: Input = _repack(out, input, lengths)
        else:
            if not self.batch_first:
                out = out.transpose(0, 1)
            output = out if batched else out.squeeze(0 if self.batch_first else 1)
            if not batched:
                finals = tuple(s.squeeze(1) for s in finals)
        return output, finals

    def _run(
        self, x: Tensor, state0: Optional[tuple[Tensor, ...]], lengths: Optional[Tensor]
    ) -> tuple[Tensor, tuple[Tensor, ...]]:
        """x (B, T, F) -> out (B, T, D*P) and final states (L*D, B, n), layer by layer."""
        B, T = x.shape[:2]
        D = self.num_directions
        sizes = self._state_sizes()
        finals: list[list[Tensor]] = [[] for _ in sizes]
        layer_input = x
        for layer in range(self.num_layers):
            outs = []
            for direction in range(D):
                idx = layer * D + direction
                # One variational mask per sequence and layer-direction; no dropout at inference.
                rdm = engine.recurrent_dropout_mask(
                    B, sizes[0], self.recurrent_dropout if self.training else 0.0, like=x
                )
                zoneout = None
                if self.zoneout > 0:
                    zoneout = [engine.zoneout_keep(B, T, n, self.zoneout, self.training, like=x) for n in sizes]
                out, final = run_layer(
                    self.spec,
                    layer_input,
                    self.layer_weights(layer, direction),
                    None if state0 is None else tuple(s[idx] for s in state0),
                    lengths=lengths,
                    reverse=direction == 1,
                    tbptt=self.tbptt,
                    recurrent_mask=rdm,
                    zoneout=zoneout,
                    implementation=self.implementation,
                )
                outs.append(out)
                for acc, s in zip(finals, final):
                    acc.append(s)
            layer_input = outs[0] if D == 1 else torch.cat(outs, dim=2)  # (B, T, D*P)
            if self.dropout > 0 and self.training and layer < self.num_layers - 1:
                layer_input = F.dropout(layer_input, self.dropout, training=True)
        return layer_input, tuple(torch.stack(acc) for acc in finals)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.proj_size:
            s += f", proj_size={self.proj_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.mode == "RNN_RELU":
            s += ", nonlinearity='relu'"
        defaults = {
            "bias": True, "batch_first": False, "dropout": 0.0, "bidirectional": False, "peephole": False,
            "layer_norm": False, "recurrent_dropout": 0.0, "zoneout": 0.0, "implementation": "auto", "tbptt": None,
        }
        for name, default in defaults.items():
            if getattr(self, name) != default:
                s += f", {name}={getattr(self, name)!r}"
        if self.spec.kind == "gru" and not self.spec.reset_after:
            s += ", reset_after=False"
        return s


def _batch_first(input: Input, lengths: Optional[Lengths], batch_first: bool
                 ) -> tuple[Tensor, Optional[Tensor], bool, bool]:
    """A checked input as (x (B, T, F), lengths (B,) or None, batched, packed): a PackedSequence is
    padded (lengths from it, in the original batch order), an unbatched (T, F) input gets B = 1."""
    packed = isinstance(input, PackedSequence)
    if packed:
        if lengths is not None:
            raise ValueError("Pass either a PackedSequence `input` or `lengths`, not both")
        x, lengths = pad_packed_sequence(input, batch_first=True)
        batched = True
    else:
        batched = input.dim() == 3
        x = input if batched else input.unsqueeze(0 if batch_first else 1)
        if not batch_first:
            x = x.transpose(0, 1)
    if lengths is not None:
        lengths = engine.sequence.check_lengths(lengths, x.shape[0], x.shape[1])
    return x, lengths, batched, packed


def _repack(out: Tensor, like: PackedSequence, lengths: Tensor) -> PackedSequence:
    """(B, T, P) padded output in original batch order -> a PackedSequence laid out like ``like``."""
    if like.sorted_indices is not None:
        out = out.index_select(0, like.sorted_indices)
        lengths = lengths.index_select(0, like.sorted_indices.to(lengths.device))
    data = pack_padded_sequence(out, lengths, batch_first=True, enforce_sorted=True).data
    return like._replace(data=data)


class RNN(RNNBase):
    r"""Elman RNN, a drop-in for ``torch.nn.RNN``:

    .. math::
        h_t = \phi(W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh}), \quad \phi = \tanh \text{ or ReLU}

    Extras (keyword-only): ``recurrent_dropout`` (one mask per sequence and layer-direction, training
    only), ``zoneout``, ``implementation`` ("auto" | "fused" | "bptt") and ``tbptt`` (window length).

    Inputs: ``input, hx=None, *, lengths=None``
        input: (T, B, F), or (B, T, F) with ``batch_first``, or unbatched (T, F), or a PackedSequence.
        hx: (num_layers * D, B, H), zeros if None; (num_layers * D, H) for unbatched input.
        lengths: (B,) integer lengths of right-padded sequences, an alternative to a PackedSequence.
    Outputs: ``output, h_n``
        output: (T, B, D * H) in the input's layout, or a PackedSequence for PackedSequence input;
            zero past each sequence's end.
        h_n: (num_layers * D, B, H), the state after each sequence's last step.
    D = 2 if bidirectional else 1.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device: Optional[Union[torch.device, str]] = None,
        dtype: Optional[torch.dtype] = None,
        *,
        recurrent_dropout: float = 0.0,
        zoneout: float = 0.0,
        implementation: str = "auto",
        tbptt: Optional[int] = None,
    ) -> None:
        self.nonlinearity = check_nonlinearity(nonlinearity)
        super().__init__(
            "RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU",
            input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, 0, device, dtype,
            recurrent_dropout=recurrent_dropout, zoneout=zoneout, implementation=implementation, tbptt=tbptt,
        )

    def forward(
        self, input: Input, hx: Optional[Tensor] = None, *, lengths: Optional[Lengths] = None
    ) -> tuple[Input, Tensor]:
        output, (h_n,) = self._forward(input, hx, lengths)
        return output, h_n


class LSTM(RNNBase):
    r"""LSTM, a drop-in for ``torch.nn.LSTM`` (gate order i, f, g, o):

    .. math::
        i_t = \sigma(a_i + p_i \odot c_{t-1}) \quad f_t = \sigma(a_f + p_f \odot c_{t-1}) \quad g_t = \tanh(a_g) \\
        c_t = f_t \odot c_{t-1} + i_t \odot g_t \quad o_t = \sigma(a_o + p_o \odot c_t) \\
        h_t = W_{hr} (o_t \odot \tanh(c_t))

    with a = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh; the peepholes p only with ``peephole=True``,
    W_hr only with ``proj_size`` > 0 (then P = proj_size, else P = H).

    Extras (keyword-only): ``peephole``, ``layer_norm`` (per gate block of a, and of c_t before its
    tanh), ``recurrent_dropout``, ``zoneout``, ``implementation``, ``tbptt``.

    Inputs: ``input, hx=None, *, lengths=None``
        input: (T, B, F), or (B, T, F) with ``batch_first``, or unbatched (T, F), or a PackedSequence.
        hx: (h_0, c_0) with h_0 (num_layers * D, B, P) and c_0 (num_layers * D, B, H), zeros if None;
            without the B axis for unbatched input.
        lengths: (B,) integer lengths of right-padded sequences, an alternative to a PackedSequence.
    Outputs: ``output, (h_n, c_n)``
        output: (T, B, D * P) in the input's layout, or a PackedSequence for PackedSequence input;
            zero past each sequence's end.
        h_n: (num_layers * D, B, P) and c_n: (num_layers * D, B, H), after each sequence's last step.
    D = 2 if bidirectional else 1.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        device: Optional[Union[torch.device, str]] = None,
        dtype: Optional[torch.dtype] = None,
        *,
        peephole: bool = False,
        layer_norm: bool = False,
        recurrent_dropout: float = 0.0,
        zoneout: float = 0.0,
        implementation: str = "auto",
        tbptt: Optional[int] = None,
    ) -> None:
        super().__init__(
            "LSTM", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, proj_size,
            device, dtype, peephole=peephole, layer_norm=layer_norm, recurrent_dropout=recurrent_dropout,
            zoneout=zoneout, implementation=implementation, tbptt=tbptt,
        )

    def forward(
        self,
        input: Input,
        hx: Optional[tuple[Tensor, Tensor]] = None,
        *,
        lengths: Optional[Lengths] = None,
    ) -> tuple[Input, tuple[Tensor, Tensor]]:
        output, (h_n, c_n) = self._forward(input, hx, lengths)
        return output, (h_n, c_n)


class GRU(RNNBase):
    r"""GRU, a drop-in for ``torch.nn.GRU`` (gate order r, z, n):

    .. math::
        r_t = \sigma(W_{ir} x_t + b_{ir} + W_{hr} h_{t-1} + b_{hr}) \\
        z_t = \sigma(W_{iz} x_t + b_{iz} + W_{hz} h_{t-1} + b_{hz}) \\
        n_t = \tanh(W_{in} x_t + b_{in} + r_t \odot (W_{hn} h_{t-1} + b_{hn})) \\
        h_t = (1 - z_t) \odot n_t + z_t \odot h_{t-1}

    Extras (keyword-only): ``reset_after=False`` applies r before the recurrent matmul,
    n_t = tanh(W_in x_t + b_in + W_hn (r_t * h_{t-1}) + b_hn) (Cho et al. 2014, Keras);
    ``recurrent_dropout``, ``zoneout``, ``implementation``, ``tbptt``.

    Inputs and outputs as ``RNN``: input (T, B, F) / (B, T, F) / (T, F) / PackedSequence,
    hx (num_layers * D, B, H); returns output (T, B, D * H) and h_n (num_layers * D, B, H).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device: Optional[Union[torch.device, str]] = None,
        dtype: Optional[torch.dtype] = None,
        *,
        reset_after: bool = True,
        recurrent_dropout: float = 0.0,
        zoneout: float = 0.0,
        implementation: str = "auto",
        tbptt: Optional[int] = None,
    ) -> None:
        super().__init__(
            "GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, 0, device, dtype,
            reset_after=reset_after, recurrent_dropout=recurrent_dropout, zoneout=zoneout,
            implementation=implementation, tbptt=tbptt,
        )

    def forward(
        self, input: Input, hx: Optional[Tensor] = None, *, lengths: Optional[Lengths] = None
    ) -> tuple[Input, Tensor]:
        output, (h_n,) = self._forward(input, hx, lengths)
        return output, h_n
