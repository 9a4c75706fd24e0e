r"""Convolutional LSTM (Shi et al. 2015), Keras's ``ConvLSTM1D`` and ``ConvLSTM2D``.

An LSTM whose matrix products are convolutions, so its state keeps the input's
spatial layout. With ∗ a convolution (the input's: ``strides``, ``padding``,
``dilation_rate``; the state's: stride 1, "same" padding):

.. math::
    i_t = \sigma(W_i * x_t + U_i * h_{t-1} + b_i) \quad f_t = \sigma(W_f * x_t + U_f * h_{t-1} + b_f) \\
    g_t = \tanh(W_c * x_t + U_c * h_{t-1} + b_c) \quad o_t = \sigma(W_o * x_t + U_o * h_{t-1} + b_o) \\
    c_t = f_t \odot c_{t-1} + i_t \odot g_t \qquad h_t = o_t \odot \tanh(c_t)

Shapes (channels_last): ConvLSTM1D x (B, T, S, C) -> h (B, S', U); ConvLSTM2D
x (B, T, R, S, C) -> h (B, R', S', U), S' as in ``Conv1D`` along each spatial axis.
Weights in Keras layout: kernel (K..., C, 4U), recurrent_kernel (K..., U, 4U), bias (4U,),
gates in the order i, f, c, o. Parameters: prod(K) (C + U) 4U + 4U.

The cell runs in the general loop (``rnnkit.engine.general``: autograd through each
step); masks, ``go_backwards``, ``return_sequences``/``return_state``, ``stateful`` and
``tbptt=`` work as in ``RNN``. Dropout, as in Keras, draws one mask per gate for the
input and one per gate for the state, once per sequence.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence, Union

import torch
from torch import Tensor, nn

from ...cells.cell import check_positive_int
from .activations import get_activation
from .base import Layer, Shape, check_flag, check_rate
from .conv_utils import check_data_format, check_padding, convolve, int_tuple, output_length, to_channels_first
from .initializers import check_initializer, initialize
from .rnn_cells import RNN

IntOrTuple = Union[int, Sequence[int]]


class ConvLSTMCell(Layer):
    """One ConvLSTM step (equations in the module docstring), Keras's ``ConvLSTMCell``.

    forward(inputs (B, S..., C), states [h, c], training=None) -> (h, [h, c]),
    h and c (B, S'..., U) (channels_last). ``state_size`` is known once built.
    """

    def __init__(
        self,
        rank: int,
        filters: int,
        kernel_size: IntOrTuple,
        strides: IntOrTuple = 1,
        padding: str = "valid",
        data_format: Optional[str] = None,
        dilation_rate: IntOrTuple = 1,
        activation: Optional[str] = "tanh",
        recurrent_activation: Optional[str] = "sigmoid",
        use_bias: bool = True,
        kernel_initializer: str = "glorot_uniform",
        recurrent_initializer: str = "orthogonal",
        bias_initializer: str = "zeros",
        unit_forget_bias: bool = True,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        seed: Optional[int] = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if rank not in (1, 2, 3) or isinstance(rank, bool):
            raise ValueError(f"Received an invalid value for argument `rank`, expected 1, 2 or 3, got {rank!r}")
        self.rank = rank
        self.filters = check_positive_int(filters, "filters")
        self.kernel_size = int_tuple(kernel_size, rank, "kernel_size")
        self.strides = int_tuple(strides, rank, "strides")
        self.padding = check_padding(padding)
        self.data_format = check_data_format(data_format)
        self.dilation_rate = int_tuple(dilation_rate, rank, "dilation_rate")
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError(
                f"Arguments `strides` > 1 and `dilation_rate` > 1 cannot be combined (as in Keras), got "
                f"strides={self.strides} and dilation_rate={self.dilation_rate}"
            )
        self.activation = "linear" if activation is None else activation
        self.recurrent_activation = "linear" if recurrent_activation is None else recurrent_activation
        self._act = get_activation(self.activation, "activation")
        self._rec_act = get_activation(self.recurrent_activation, "recurrent_activation")
        self.use_bias = check_flag(use_bias, "use_bias")
        self.kernel_initializer = check_initializer(kernel_initializer, "kernel_initializer")
        self.recurrent_initializer = check_initializer(recurrent_initializer, "recurrent_initializer")
        self.bias_initializer = check_initializer(bias_initializer, "bias_initializer")
        self.unit_forget_bias = check_flag(unit_forget_bias, "unit_forget_bias")
        self.dropout = check_rate(dropout, "dropout")
        self.recurrent_dropout = check_rate(recurrent_dropout, "recurrent_dropout")
        self.seed = seed
        self.kernel: Optional[nn.Parameter] = None
        self.recurrent_kernel: Optional[nn.Parameter] = None
        self.bias: Optional[nn.Parameter] = None
        self._state_shape: Optional[tuple[int, ...]] = None
        self._masks: dict[str, Tensor] = {}

    # ---------------------------------------------------------------- build

    @property
    def state_size(self) -> list[torch.Size]:
        if self._state_shape is None:
            raise ValueError(f"Cell {self.name!r}: the state shape is known only once the cell is built")
        return [torch.Size(self._state_shape)] * 2

    @property
    def output_size(self) -> tuple[int, ...]:
        return tuple(self.state_size[0])

    def _split(self, input_shape: Shape) -> tuple[tuple, Optional[int]]:
        """(B, S..., C) -> (spatial sizes, channels), for either data format."""
        if len(input_shape) != self.rank + 2:
            raise ValueError(f"Cell {self.name!r} expects step inputs of rank {self.rank + 2}, got shape {tuple(input_shape)}")
        if self.data_format == "channels_last":
            return tuple(input_shape[1:-1]), input_shape[-1]
        return tuple(input_shape[2:]), input_shape[1]

    def build(self, input_shape: Shape) -> None:
        spatial, channels = self._split(tuple(input_shape))
        if channels is None or any(d is None for d in spatial):
            raise ValueError(f"Cell {self.name!r} needs known spatial sizes and channels, got shape {tuple(input_shape)}")
        out = tuple(output_length(n, k, s, d, self.padding)
                    for n, k, s, d in zip(spatial, self.kernel_size, self.strides, self.dilation_rate))
        if min(out) < 1:
            raise ValueError(f"Cell {self.name!r}: the spatial sizes {spatial} are too small for kernel_size={self.kernel_size}")
        U = self.filters
        self._state_shape = (*out, U) if self.data_format == "channels_last" else (U, *out)
        kw = {"dtype": self.weight_dtype}
        self.kernel = nn.Parameter(torch.empty(*self.kernel_size, channels, 4 * U, **kw))
        self.recurrent_kernel = nn.Parameter(torch.empty(*self.kernel_size, U, 4 * U, **kw))
        self.bias = nn.Parameter(torch.empty(4 * U, **kw)) if self.use_bias else None
        self.built = True
        self.reset_parameters()

    def reset_parameters(self) -> None:
        initialize(self.kernel.data, self.kernel_initializer)
        initialize(self.recurrent_kernel.data, self.recurrent_initializer)
        if self.bias is not None:
            initialize(self.bias.data, self.bias_initializer)
            if self.unit_forget_bias:
                U = self.filters
                self.bias.data[U : 2 * U] = 1.0  # Keras: the forget gate's bias starts at 1

    def get_initial_state(self, batch_size: int) -> list[Tensor]:
        return [torch.zeros(batch_size, *self.state_size[0], dtype=self.kernel.dtype) for _ in range(2)]

    # ------------------------------------------------------------ dropout

    def reset_dropout_mask(self) -> None:
        self._masks = {}

    def _gate_masks(self, key: str, like: Tensor, rate: float) -> Tensor:
        m = self._masks.get(key)
        if m is None or m.shape[1:] != like.shape:
            m = (torch.rand(4, *like.shape, dtype=like.dtype, device=like.device) >= rate).to(like.dtype) / (1.0 - rate)
            self._masks[key] = m
        return m

    # -------------------------------------------------------------- step

    def _conv(self, x: Tensor, kernel: Tensor, bias: Optional[Tensor], recurrent: bool) -> Tensor:
        """Channels-first convolution; the state's is stride 1, "same", no dilation (Keras)."""
        if recurrent:
            return convolve(x, kernel, bias, (1,) * self.rank, "same", (1,) * self.rank)
        return convolve(x, kernel, bias, self.strides, self.padding, self.dilation_rate)

    def _gates(self, x: Tensor, kernel: Tensor, bias: Optional[Tensor], masks: Optional[Tensor], recurrent: bool) -> Tensor:
        """(B, 4U, S'...): one convolution, or one per gate when each gate has its own dropout mask."""
        x = to_channels_first(x, self.data_format)
        if masks is None:
            return self._conv(x, kernel, bias, recurrent)
        U = self.filters
        masks = to_channels_first(masks.flatten(0, 1), self.data_format).unflatten(0, (4, x.shape[0]))
        parts = [self._conv(x * masks[g], kernel[..., g * U:(g + 1) * U], None if bias is None else bias[g * U:(g + 1) * U],
                            recurrent) for g in range(4)]
        return torch.cat(parts, dim=1)

    def forward(self, inputs: Tensor, states: Sequence[Tensor], training: Optional[bool] = None) -> tuple[Tensor, list[Tensor]]:
        if not isinstance(inputs, Tensor) or inputs.dim() != self.rank + 2:
            got = tuple(inputs.shape) if isinstance(inputs, Tensor) else type(inputs).__name__
            raise ValueError(f"Cell {self.name!r} expects step inputs of rank {self.rank + 2}, got {got}")
        h, c = states
        x = inputs.to(self.kernel.dtype)
        training = self.training if training is None else bool(training)
        x_masks = self._gate_masks("input", x, self.dropout) if training and self.dropout else None
        h_masks = self._gate_masks("recurrent", h, self.recurrent_dropout) if training and self.recurrent_dropout else None
        z = self._gates(x, self.kernel, self.bias, x_masks, False) + self._gates(h, self.recurrent_kernel, None, h_masks, True)
        ingate, forgetgate, cellgate, outgate = z.chunk(4, dim=1)
        if self.data_format == "channels_last":
            ingate, forgetgate, cellgate, outgate = (g.movedim(1, -1) for g in (ingate, forgetgate, cellgate, outgate))
        c_new = self._rec_act(forgetgate) * c + self._rec_act(ingate) * self._act(cellgate)
        h_new = self._rec_act(outgate) * self._act(c_new)
        return h_new, [h_new, c_new]

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(_conv_config(self))
        config["rank"] = self.rank
        return config


def _conv_config(cell: ConvLSTMCell) -> dict[str, Any]:
    return dict(
        filters=cell.filters, kernel_size=list(cell.kernel_size), strides=list(cell.strides), padding=cell.padding,
        data_format=cell.data_format, dilation_rate=list(cell.dilation_rate), activation=cell.activation,
        recurrent_activation=cell.recurrent_activation, use_bias=cell.use_bias,
        kernel_initializer=cell.kernel_initializer, recurrent_initializer=cell.recurrent_initializer,
        bias_initializer=cell.bias_initializer, unit_forget_bias=cell.unit_forget_bias, dropout=cell.dropout,
        recurrent_dropout=cell.recurrent_dropout, seed=cell.seed,
    )


class _ConvLSTM(RNN):
    rank = 1

    def __init__(
        self,
        filters: int,
        kernel_size: IntOrTuple,
        strides: IntOrTuple = 1,
        padding: str = "valid",
        data_format: Optional[str] = None,
        dilation_rate: IntOrTuple = 1,
        activation: Optional[str] = "tanh",
        recurrent_activation: Optional[str] = "sigmoid",
        use_bias: bool = True,
        kernel_initializer: str = "glorot_uniform",
        recurrent_initializer: str = "orthogonal",
        bias_initializer: str = "zeros",
        unit_forget_bias: bool = True,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        seed: Optional[int] = None,
        return_sequences: bool = False,
        return_state: bool = False,
        go_backwards: bool = False,
        stateful: bool = False,
        *,
        tbptt: Optional[int] = None,
        **kwargs: Any,
    ) -> None:
        cell = ConvLSTMCell(
            self.rank, filters, kernel_size, strides=strides, padding=padding, data_format=data_format,
            dilation_rate=dilation_rate, activation=activation, recurrent_activation=recurrent_activation,
            use_bias=use_bias, kernel_initializer=kernel_initializer, recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer, unit_forget_bias=unit_forget_bias, dropout=dropout,
            recurrent_dropout=recurrent_dropout, seed=seed, name="conv_lstm_cell", dtype=kwargs.get("dtype"),
        )
        super().__init__(cell, return_sequences=return_sequences, return_state=return_state, go_backwards=go_backwards,
                         stateful=stateful, tbptt=tbptt, **kwargs)

    def output_shapes(self, input_shape: Shape) -> tuple[tuple[Optional[int], ...], list[tuple[Optional[int], ...]]]:
        if not self.cell.built:
            self.cell.maybe_build((input_shape[0], *input_shape[2:]))
        shape = tuple(self.cell.state_size[0])
        return shape, [shape, shape]

    def get_config(self) -> dict[str, Any]:
        config = RNN.get_config(self)
        del config["cell"], config["unroll"]
        config.update(_conv_config(self.cell))
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "_ConvLSTM":
        return cls(**config)


class ConvLSTM1D(_ConvLSTM):
    """1D convolutional LSTM: x (B, T, S, C) -> (B, S', U), or (B, T, S', U) with ``return_sequences``.

    Keras's arguments and defaults (see ``Conv1D`` and ``LSTM``); equations and weights in
    the module docstring.
    """

    rank = 1
    input_rank = 4
    input_letters = "B, T, S, C"


class ConvLSTM2D(_ConvLSTM):
    """2D convolutional LSTM: x (B, T, R, S, C) -> (B, R', S', U), or (B, T, R', S', U) with ``return_sequences``.

    Keras's arguments and defaults; equations and weights in the module docstring.
    """

    rank = 2
    input_rank = 5
    input_letters = "B, T, R, S, C"


__all__ = ["ConvLSTM1D", "ConvLSTM2D", "ConvLSTMCell"]
