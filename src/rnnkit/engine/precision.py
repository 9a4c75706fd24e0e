"""bf16 on the CPU: ``torch.autocast("cpu", dtype=torch.bfloat16)``, and modules cast to bf16.

In both cases the engine runs its float32 loop with bf16 GEMMs: the loop receives x as bfloat16
and everything else as float32, and multiplies each step's input projection and recurrent matmul
(forward and backward) and the weight-gradient products with both operands rounded to bf16 and
float32 sums, by AMX tiles where the CPU has them (csrc/packed_gemm.h; elsewhere the same math
in float32 FMAs). The cell state, the gate nonlinearities, the carried gradients and the
weight-gradient sums stay float32. Without the compiled loop, the input
projection is one bf16 GEMM by torch and the recurrent weight is rounded to bf16.

The output dtype is torch.nn's: under CPU autocast torch runs ``lstm`` and ``rnn_tanh``/``rnn_relu``
in bf16 and returns bf16, but ``gru`` is not on autocast's list and returns float32 (for a float32
module); a bf16 module with bf16 input returns bf16 for every cell.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from ..ops import CellSpec, Weights

# What torch.nn's module returns under CPU bf16 autocast, for float32 weights (torch 2.3-2.13).
AUTOCAST_OUTPUT = {"lstm": torch.bfloat16, "rnn": torch.bfloat16, "gru": torch.float32}


def cpu_autocast_bf16() -> bool:
    """Whether ``torch.autocast("cpu", dtype=torch.bfloat16)`` is on."""
    if hasattr(torch, "get_autocast_dtype"):  # torch >= 2.4
        return torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
    return torch.is_autocast_cpu_enabled() and torch.get_autocast_cpu_dtype() == torch.bfloat16


def bf16_output(spec: CellSpec, x: object, weights: Weights) -> Optional[torch.dtype]:
    """The output dtype when this call runs with bf16 GEMMs, or None when it runs as it is."""
    if not isinstance(x, Tensor) or x.device.type != "cpu":
        return None
    w = weights.weight_ih.dtype
    if cpu_autocast_bf16() and w in (torch.float32, torch.bfloat16) and x.dtype in (torch.float32, torch.bfloat16):
        return torch.bfloat16 if w == torch.bfloat16 else AUTOCAST_OUTPUT[spec.kind]
    if w == torch.bfloat16 and x.dtype == torch.bfloat16:
        return torch.bfloat16
    return None


def as_float(t):
    """A floating tensor as float32 (differentiably), anything else unchanged."""
    return t.float() if isinstance(t, Tensor) and t.dtype.is_floating_point else t
