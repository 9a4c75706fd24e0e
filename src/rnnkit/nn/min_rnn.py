r"""``MinGRU`` and ``MinLSTM`` (Feng et al. 2024) with torch.nn's recurrent-module interface.

Same constructor shape and forward contract as ``torch.nn.GRU``: ``input_size, hidden_size,
num_layers, bias, batch_first, dropout, bidirectional``; ``forward(input, hx=None, *, lengths=None)
-> (output, h_n)``. Each layer direction is one GEMM over all B*T rows and one scan
(``rnnkit.engine.min_scan``), so training is parallel over time; ``cell(layer, direction)``
gives the same weights as a one-step ``rnnkit.cells.MinRNNCell`` for streaming.

Parameters per layer k and direction (suffix ``_reverse``), G = 2H (minGRU) or 3H (minLSTM):
    weight_ih_l{k} (G, F) for k = 0, (G, D*H) above;  bias_ih_l{k} (G,) with ``bias``.
"""

from __future__ import annotations

import warnings
from typing import Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence

from ..cells import MinRNNCell, initialize
from ..engine.min_scan import BACKENDS, run_min
from ..ops import min_rnn
from ._checks import check_bool, check_features, check_float_tensor, check_positive_int, check_rate, check_state_shape, check_tbptt
from .rnn import _batch_first, _repack

Input = Union[Tensor, PackedSequence]
Lengths = Union[Tensor, Sequence[int]]


class MinRNNBase(nn.Module):
    """Shared body of ``MinGRU`` and ``MinLSTM``; use those. ``kind``: "mingru" or "minlstm"."""

    def __init__(self, kind: str, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 device: Optional[Union[torch.device, str]] = None, dtype: Optional[torch.dtype] = None, *,
                 tbptt: Optional[int] = None, backend: str = "auto") -> None:
        super().__init__()
        blocks = min_rnn.check_min_kind(kind)
        self.kind = kind
        self.input_size = check_positive_int(input_size, "input_size")
        self.hidden_size = check_positive_int(hidden_size, "hidden_size")
        self.num_layers = check_positive_int(num_layers, "num_layers")
        self.bias = check_bool(bias, "bias")
        self.batch_first = check_bool(batch_first, "batch_first")
        self.dropout = check_rate(dropout, "dropout", allow_one=True)
        self.bidirectional = check_bool(bidirectional, "bidirectional")
        self.tbptt = check_tbptt(tbptt)
        if backend not in BACKENDS:
            raise ValueError(f"Received an invalid value for argument `backend`, expected one of {BACKENDS}, got {backend!r}")
        self.backend = backend
        if self.dropout > 0 and self.num_layers == 1:
            warnings.warn(f"`dropout` acts between stacked layers only, so dropout={self.dropout} does nothing with "
                          "num_layers=1", stacklevel=3)
        self.probes: Optional[list] = None  # Contract P (rnnkit.diagnostics)
        factory = {"device": device, "dtype": dtype}
        G, D = blocks * hidden_size, self.num_directions
        for layer in range(num_layers):
            for direction in range(D):
                suffix = f"_l{layer}{'_reverse' if direction else ''}"
                F_in = input_size if layer == 0 else D * hidden_size
                self.register_parameter("weight_ih" + suffix, nn.Parameter(torch.empty(G, F_in, **factory)))
                if bias:
                    self.register_parameter("bias_ih" + suffix, nn.Parameter(torch.empty(G, **factory)))
        self.reset_parameters()

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    def reset_parameters(self) -> None:
        """torch.nn's recurrent init: every weight and bias U(-1/sqrt(H), 1/sqrt(H))."""
        for p in self.parameters():
            initialize(p.data, "torch_default", self.hidden_size)

    def _weights(self, layer: int, direction: int) -> tuple[Tensor, Optional[Tensor]]:
        suffix = f"_l{layer}{'_reverse' if direction else ''}"
        return getattr(self, "weight_ih" + suffix), getattr(self, "bias_ih" + suffix, None)

    def cell(self, layer: int = 0, direction: int = 0) -> MinRNNCell:
        """A one-step ``MinRNNCell`` that shares this layer direction's parameters (for ``engine.Streamer``)."""
        weight, bias = self._weights(layer, direction)
        cell = MinRNNCell(self.kind, weight.shape[1], self.hidden_size, bias=bias is not None, dtype=weight.dtype)
        cell.weight_ih = weight
        cell.bias_ih = bias
        return cell

    def _check_input(self, input: object) -> None:
        layout = ("(B, T, F)" if self.batch_first else "(T, B, F)") + " or unbatched (T, F)"
        dtype = self.weight_ih_l0.dtype
        if isinstance(input, PackedSequence):
            data = check_float_tensor(input.data, "input.data", "(N, F)", dtype)
            check_features(data, "input.data", "(N, F)", self.input_size)
            return
        x = check_float_tensor(input, "input", layout + " or a PackedSequence", dtype)
        if x.dim() not in (2, 3):
            raise ValueError(f"Argument `input` must have shape {layout} (rank 3 or 2), got shape {tuple(x.shape)}")
        check_features(x, "input", layout, self.input_size)

    def forward(self, input: Input, hx: Optional[Tensor] = None, *,
                lengths: Optional[Lengths] = None) -> tuple[Input, Tensor]:
        """input (T, B, F) / (B, T, F) with ``batch_first`` / unbatched (T, F) / PackedSequence;
        hx (num_layers * D, B, H) or (num_layers * D, H) unbatched, zeros if None; lengths (B,).

        Returns output (T, B, D * H) in the input's layout (zero past each sequence's end) and
        h_n (num_layers * D, B, H), the state after each sequence's last step.
        """
        self._check_input(input)
        x, lengths, batched, packed = _batch_first(input, lengths, self.batch_first)
        B, T = x.shape[:2]
        LD = self.num_layers * self.num_directions
        if hx is not None:
            expected = (LD, B, self.hidden_size) if batched else (LD, self.hidden_size)
            layout = "(num_layers * num_directions, B, H)" if batched else "(num_layers * num_directions, H) for unbatched input"
            hx = check_state_shape(hx, "hx", layout, expected, x.dtype)
            hx = hx if batched else hx.unsqueeze(1)
        layer_input, finals = x, []
        for layer in range(self.num_layers):
            outs = []
            for direction in range(self.num_directions):
                idx = layer * self.num_directions + direction
                probe = None
                if self.probes is not None:
                    probe = x.new_zeros(T, 1, requires_grad=True)
                    self.probes.append({"layer": f"{self.kind}_l{layer}",
                                        "direction": "backward" if direction else "forward", "probe": probe})
                weight, bias = self._weights(layer, direction)
                out, h_n = run_min(self.kind, layer_input, weight, bias, None if hx is None else hx[idx],
                                   lengths=lengths, reverse=direction == 1, tbptt=self.tbptt, probe=probe,
                                   backend=self.backend)
                outs.append(out)
                finals.append(h_n)
            layer_input = outs[0] if len(outs) == 1 else torch.cat(outs, dim=2)  # (B, T, D*H)
            if self.dropout > 0 and self.training and layer < self.num_layers - 1:
                layer_input = F.dropout(layer_input, self.dropout, training=True)
        h_n = torch.stack(finals)  # (L*D, B, H)
        if packed:
            return _repack(layer_input, input, lengths), h_n
        out = layer_input if self.batch_first else layer_input.transpose(0, 1)
        if not batched:
            return out.squeeze(0 if self.batch_first else 1), h_n.squeeze(1)
        return out, h_n

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        for name, default in (("num_layers", 1), ("bias", True), ("batch_first", False), ("dropout", 0.0),
                              ("bidirectional", False), ("tbptt", None), ("backend", "auto")):
            if getattr(self, name) != default:
                s += f", {name}={getattr(self, name)!r}"
        return s


class MinGRU(MinRNNBase):
    r"""minGRU (Feng et al. 2024), trained with a parallel scan over time:

    .. math::
        z_t = \sigma(W_z x_t + b_z) \qquad \tilde h_t = g(W_h x_t + b_h) \qquad
        h_t = (1 - z_t) \odot h_{t-1} + z_t \odot \tilde h_t

    with g(x) = x + 1/2 for x >= 0, sigma(x) below. Gate blocks z, h in ``weight_ih``.
    Extras (keyword-only): ``tbptt`` (window length) and ``backend`` ("auto" | "compiled" | "python").
    Inputs and outputs as ``torch.nn.GRU``: output (T, B, D * H), h_n (num_layers * D, B, H).
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 device: Optional[Union[torch.device, str]] = None, dtype: Optional[torch.dtype] = None, *,
                 tbptt: Optional[int] = None, backend: str = "auto") -> None:
        super().__init__("mingru", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         device, dtype, tbptt=tbptt, backend=backend)


class MinLSTM(MinRNNBase):
    r"""minLSTM (Feng et al. 2024), trained with a parallel scan over time:

    .. math::
        i_t = \sigma(W_i x_t + b_i) \quad f_t = \sigma(W_f x_t + b_f) \quad \tilde h_t = g(W_h x_t + b_h) \\
        h_t = \frac{f_t}{f_t + i_t} \odot h_{t-1} + \frac{i_t}{f_t + i_t} \odot \tilde h_t

    Gate blocks i, f, h in ``weight_ih`` (torch's LSTM order). Extras and the forward contract as ``MinGRU``.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 device: Optional[Union[torch.device, str]] = None, dtype: Optional[torch.dtype] = None, *,
                 tbptt: Optional[int] = None, backend: str = "auto") -> None:
        super().__init__("minlstm", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         device, dtype, tbptt=tbptt, backend=backend)
