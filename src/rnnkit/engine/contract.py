"""The flat argument layout shared by the engine's two loops (Python ``Recurrence`` and C++).

``torch.autograd.Function.apply`` takes tensors positionally:
    (spec, tbptt, xw, n_state, *state0, *keeps, out_mask, rdm, probe, *weights)
"""

from __future__ import annotations

from torch import Tensor

from ..ops import Weights


def unpack_inputs(n_state: int, rest: tuple) -> tuple:
    """Split ``Recurrence.apply``'s flat tensor arguments: (state0, keeps, out_mask, rdm, probe, weights).

    autograd.Function takes tensors positionally; both loops (Python and C++) share this layout.
    """
    state0 = rest[:n_state]
    keeps = rest[n_state : 2 * n_state]
    out_mask, rdm, probe = rest[2 * n_state : 2 * n_state + 3]
    return state0, keeps, out_mask, rdm, probe, Weights(*rest[2 * n_state + 3 :])


def backward_outputs(n_state: int, dxw: Tensor, d_state0, d_probe, d_weights) -> tuple:
    """The gradients in ``Recurrence.apply``'s argument order (None for the non-differentiable ones)."""
    return (None, None, dxw, None, *d_state0, *([None] * n_state), None, None, d_probe, *d_weights)
