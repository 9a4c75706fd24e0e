r"""Keras-style ``MinGRU`` and ``MinLSTM`` (Feng et al. 2024): recurrent layers trained with a scan.

The layer owns a ``rnnkit.cells.MinRNNCell`` (``self.cell``, built on the first call when F is
known) and runs it with ``rnnkit.engine.min_scan.run_min``: one GEMM for all B*T rows, then
h_t = a_t h_{t-1} + b_t over t. The Keras front (masks, ``go_backwards``, ``return_sequences``,
``return_state``, ``stateful`` and ``fit(tbptt=k)``'s carried state, probes) is
``RecurrentLayer``'s, as for ``GRU``.

Shapes: x (B, T, F) -> output (B, H), or (B, T, H) with ``return_sequences``; with
``return_state`` a list [output, h] (h (B, H)). Weights: kernel (F, G), bias (G,), G = 2H
(blocks z, h) for MinGRU, 3H (blocks i, f, h) for MinLSTM.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np
import torch
from torch import Tensor

from ...cells import INITIALIZERS, MinRNNCell
from ...cells.cell import check_positive_int
from ...engine.min_scan import BACKENDS, run_min
from .base import Layer, Shape, assign_arrays, check_flag
from .rnn import RecurrentLayer


class MinRNN(RecurrentLayer):
    """Shared front of ``MinGRU`` and ``MinLSTM``; use those."""

    kind = "mingru"

    def __init__(self, units: int, use_bias: bool = True, kernel_initializer: str = "glorot_uniform",
                 bias_initializer: str = "zeros", *, return_sequences: bool = False, return_state: bool = False,
                 go_backwards: bool = False, stateful: bool = False, tbptt: Optional[int] = None,
                 backend: str = "auto", **kwargs: Any) -> None:
        super().__init__(return_sequences=return_sequences, return_state=return_state, go_backwards=go_backwards,
                         stateful=stateful, tbptt=tbptt, **kwargs)
        self.units = check_positive_int(units, "units")
        self.use_bias = check_flag(use_bias, "use_bias")
        for name, value in (("kernel_initializer", kernel_initializer), ("bias_initializer", bias_initializer)):
            if value not in INITIALIZERS:
                raise ValueError(f"Received an invalid value for argument `{name}`: expected one of {INITIALIZERS}, "
                                 f"got {value!r}")
        self.kernel_initializer = kernel_initializer
        self.bias_initializer = bias_initializer
        if backend not in BACKENDS:
            raise ValueError(f"Received an invalid value for argument `backend`: expected one of {BACKENDS}, got {backend!r}")
        self.backend = backend
        self.cell: Optional[MinRNNCell] = None
        self.probes: Optional[list] = None  # Contract P (rnnkit.diagnostics)
        self._build_declared()

    def build(self, input_shape: Shape) -> None:
        features = self._full_shape(input_shape)[-1]
        if features is None:
            raise ValueError(f"Layer {self.name!r} needs a known feature size F (last axis), got shape {tuple(input_shape)}")
        self.cell = MinRNNCell(self.kind, features, self.units, bias=self.use_bias,
                               kernel_initializer=self.kernel_initializer, bias_initializer=self.bias_initializer,
                               dtype=self.weight_dtype)
        self.built = True

    def input_shape_from_state(self, state_dict: dict, prefix: str) -> Optional[Shape]:
        w = state_dict.get(prefix + "cell.weight_ih")
        return (None, None, int(w.shape[1])) if w is not None else None

    def state_shapes(self) -> list[tuple[int, ...]]:
        return [(self.units,)]

    def output_shapes(self, input_shape: Shape) -> tuple[tuple[Optional[int], ...], list[tuple[Optional[int], ...]]]:
        return (self.units,), [(self.units,)]

    def _state_dtype(self) -> torch.dtype:
        return self.cell.weight_ih.dtype

    def _check_input(self, x: Tensor) -> Tensor:
        features = self.cell.input_size
        if x.dim() != 3 or x.shape[-1] != features:
            raise ValueError(f"Layer {self.name!r} was built for inputs of shape (B, T, {features}), got shape {tuple(x.shape)}")
        return x.to(self.cell.weight_ih.dtype)  # Keras casts float inputs to the layer's dtype

    def _run(self, x: Tensor, mask: Optional[Tensor], state0: Optional[tuple[Tensor, ...]],
             training: bool) -> tuple[Tensor, Tensor, tuple[Tensor, ...]]:
        probe = None
        if self.probes is not None:
            probe = x.new_zeros(x.shape[1], 1, requires_grad=True)
            self.probes.append({"layer": self.name, "direction": "backward" if self.go_backwards else "forward",
                                "probe": probe})
        out, h_n = run_min(self.kind, x, self.cell.weight_ih, self.cell.bias_ih, None if state0 is None else state0[0],
                           mask=mask, reverse=self.go_backwards, tbptt=self.tbptt, probe=probe, backend=self.backend)
        return out, h_n, (h_n,)  # h after the last real step is that step's output

    def get_weights(self) -> list[np.ndarray]:
        """Keras layout: [kernel (F, G), bias (G,)]."""
        if self.cell is None:
            return []
        arrays = [self.cell.weight_ih.T] + ([self.cell.bias_ih] if self.cell.bias_ih is not None else [])
        return [a.detach().cpu().numpy().copy() for a in arrays]

    def set_weights(self, weights: Sequence[Any]) -> None:
        """Inverse of ``get_weights``; builds the layer from the kernel's shape if needed."""
        weights = [np.asarray(w) for w in weights]
        if not weights or weights[0].ndim != 2:
            raise ValueError(f"Layer {self.name!r}: expected weights [kernel (F, G), bias (G,)]")
        self.maybe_build((None, None, int(weights[0].shape[0])))
        params = [self.cell.weight_ih] + ([self.cell.bias_ih] if self.cell.bias_ih is not None else [])
        assign_arrays(self.name, params, [weights[0].T.copy(), *weights[1:]])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "units": self.units, "use_bias": self.use_bias,
                "kernel_initializer": self.kernel_initializer, "bias_initializer": self.bias_initializer,
                "backend": self.backend}

    def extra_repr(self) -> str:
        return f"name={self.name!r}, units={self.units}"


class MinGRU(MinRNN):
    r"""minGRU (Feng et al. 2024), trained with a parallel scan over time:

    .. math::
        z_t = \sigma(W_z x_t + b_z) \qquad \tilde h_t = g(W_h x_t + b_h) \qquad
        h_t = (1 - z_t) \odot h_{t-1} + z_t \odot \tilde h_t

    g(x) = x + 1/2 for x >= 0, sigma(x) below. Arguments as Keras's ``GRU`` where they apply
    (``units``, ``use_bias``, initialisers, ``return_sequences``, ``return_state``,
    ``go_backwards``, ``stateful``), plus ``tbptt`` and ``backend`` ("auto" | "compiled" | "python").
    """

    kind = "mingru"


class MinLSTM(MinRNN):
    r"""minLSTM (Feng et al. 2024), trained with a parallel scan over time:

    .. math::
        i_t = \sigma(W_i x_t + b_i) \quad f_t = \sigma(W_f x_t + b_f) \quad \tilde h_t = g(W_h x_t + b_h) \\
        h_t = \frac{f_t}{f_t + i_t} \odot h_{t-1} + \frac{i_t}{f_t + i_t} \odot \tilde h_t

    Arguments as ``MinGRU``.
    """

    kind = "minlstm"
