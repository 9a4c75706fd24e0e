r"""The weights of one minGRU or minLSTM layer direction, and a single step (the sequential mode).

Parameters (G = 2H for minGRU, blocks z, h; G = 3H for minLSTM, blocks i, f, h):
    weight_ih (G, F), bias_ih (G,) unless ``bias=False``. There is no recurrent weight: the
    gates read x_t alone, which is what lets the engine run the whole sequence as one scan
    (``rnnkit.engine.min_scan``). The equations are in ``rnnkit.ops.min_rnn``.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..ops import min_rnn
from .cell import check_positive_int, check_step_input
from .init import initialize


class MinRNNCell(nn.Module):
    """One minGRU/minLSTM direction: ``forward(x, state)`` is one step, x (B, F), state ((B, H),) -> ((B, H),).

    Args:
        kind: "mingru" or "minlstm".
        bias: whether to keep bias_ih.
        kernel_initializer, bias_initializer: names from ``rnnkit.cells.INITIALIZERS``;
            "torch_default" is torch.nn's U(-1/sqrt(H), 1/sqrt(H)).
    """

    def __init__(self, kind: str, input_size: int, hidden_size: int, *, bias: bool = True,
                 kernel_initializer: str = "torch_default", bias_initializer: str = "torch_default",
                 dtype: Optional[torch.dtype] = None) -> None:
        super().__init__()
        blocks = min_rnn.check_min_kind(kind)
        self.kind = kind
        self.input_size = check_positive_int(input_size, "input_size")
        self.hidden_size = check_positive_int(hidden_size, "hidden_size")
        self.init_names = {"kernel": kernel_initializer, "bias": bias_initializer}
        G = blocks * hidden_size
        self.weight_ih = nn.Parameter(torch.empty(G, input_size, dtype=dtype))
        self.bias_ih = nn.Parameter(torch.empty(G, dtype=dtype)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        H = self.hidden_size
        initialize(self.weight_ih.data, self.init_names["kernel"], H, "kernel_initializer")
        if self.bias_ih is not None:
            initialize(self.bias_ih.data, self.init_names["bias"], H, "bias_initializer")

    @property
    def state_sizes(self) -> tuple[int, ...]:
        return (self.hidden_size,)

    def initial_state(self, batch_size: int, like: Tensor) -> tuple[Tensor, ...]:
        return (like.new_zeros(batch_size, self.hidden_size),)

    def forward(self, x: Tensor, state: Optional[tuple[Tensor, ...]] = None) -> tuple[Tensor, ...]:
        """One step: x (B, F), state ((B, H),) -> ((B, H),). Autograd does the backward."""
        check_step_input(x, self.input_size)
        if state is None:
            state = self.initial_state(x.shape[0], x)
        state = tuple(state)
        expected = [(x.shape[0], self.hidden_size)]
        got_shapes = [tuple(s.shape) if isinstance(s, Tensor) else type(s).__name__ for s in state]
        if got_shapes != expected:
            raise ValueError(f"Argument `state` must be 1 tensor of shape {expected[0]}, got {got_shapes}")
        return (min_rnn.min_step(F.linear(x, self.weight_ih, self.bias_ih), state[0], self.kind),)

    def extra_repr(self) -> str:
        return f"{self.kind}, {self.input_size}, {self.hidden_size}" + (", bias=False" if self.bias_ih is None else "")
