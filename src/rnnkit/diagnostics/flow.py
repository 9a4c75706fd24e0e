r"""Gradient flow through time: ||dL/dh_t|| (and ||dL/dc_t||) per step, per recurrent layer.

The engine computes d state_t during its backward anyway; a *probe* (a (T, n_state) zero
tensor that requires grad, passed to ``rnnkit.engine.run``) makes it report their norms
as the probe's gradient. ``gradient_flow`` switches the probes on in every module that
follows Contract P (an attribute ``probes``, see ``rnnkit.diagnostics.models``), runs one
forward and backward pass with ``torch.autograd.grad`` (so no parameter's ``.grad`` is
touched), and switches them off again.

For a loss read at the last step, BPTT carries

.. math::
    \frac{\partial L}{\partial h_t} = \frac{\partial L}{\partial h_T}
        \prod_{k=t+1}^{T} \frac{\partial h_k}{\partial h_{k-1}},

so the ratio ||dL/dh_1|| / ||dL/dh_T|| shows how much of the error signal reaches the
start of the sequence: ~1e-9 for a tanh RNN at T = 100 (vanishing), ~1 for an LSTM
whose forget gates are open.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass
class LayerFlow:
    """Per-step gradient norms of one recurrent layer direction, in data time order.

    h: (T,) ||dL/dh_t|| over the batch: the total gradient of h_t (through the output at t
        and through every later step).
    c: (T,) for LSTM, else None: ||dL/dc_t|| carried back along the cell path from step t+1
        (the gradient c_t receives as an input of the next step; the part through h_t at the
        same step is not included, so it is 0 at the last processed step). This is the
        engine's d c carry, the constant-error-carousel signal.
    cell: "rnn", "lstm" or "gru" when the layer exposes its ``cell`` (for advice), else None.
    """

    layer: str
    direction: str
    h: np.ndarray
    c: Optional[np.ndarray] = None
    cell: Optional[str] = None

    @property
    def distance(self) -> np.ndarray:
        """Steps between each h_t and the end of processing (0 = the last processed step)."""
        T = len(self.h)
        return np.arange(T)[::-1].copy() if self.direction == "forward" else np.arange(T)

    def by_distance(self, component: str = "h") -> np.ndarray:
        """Norms reordered by distance from the end of processing: index 0 is the last processed step."""
        g = self.h if component == "h" else self.c
        if g is None:
            raise ValueError(f"Layer {self.layer!r} has no component {component!r}")
        return g[::-1].copy() if self.direction == "forward" else g.copy()

    def ratio(self, component: str = "h") -> float:
        """||dL/d s_first|| / ||dL/d s_last|| in processing order (h_1 vs h_T for a forward layer)."""
        g = self.by_distance(component)
        if len(g) == 0 or g[0] == 0 or not np.isfinite(g[0]):
            return float("nan")
        return float(g[-1] / g[0])


def default_loss(out: Tensor, y: Tensor) -> Tensor:
    """Mean squared error for float targets; cross-entropy on the last axis for integer targets."""
    if not y.dtype.is_floating_point:
        return F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1))
    return F.mse_loss(out, y.reshape(out.shape))


def compiled_loss(model: nn.Module) -> Optional[Callable[[Tensor, Tensor], Tensor]]:
    """The loss of a compiled rnnkit ``Model``/``Sequential`` as ``loss_fn(out, y)``, or None."""
    from ..keras.losses import Loss

    loss = getattr(model, "loss", None)
    if isinstance(loss, Loss):
        return lambda out, y: loss(y, out)  # rnnkit losses take (y_true, y_pred), as Keras's do
    return None


def probed_modules(model: nn.Module) -> list[nn.Module]:
    """The submodules (model included) that follow Contract P."""
    return [m for m in model.modules() if hasattr(m, "probes")]


def _cell_kinds(modules: list[nn.Module]) -> dict[str, str]:
    """Layer name -> cell kind, for the layers that expose ``name`` and ``cell.spec``."""
    kinds = {}
    for m in modules:
        spec = getattr(getattr(m, "cell", None), "spec", None)
        if isinstance(getattr(m, "name", None), str) and spec is not None:
            kinds[m.name] = spec.kind
    return kinds


def _as_tensor(a: object, name: str) -> Tensor:
    if isinstance(a, Tensor):
        return a
    if isinstance(a, np.ndarray):
        return torch.from_numpy(a)
    raise TypeError(f"Argument `{name}` must be a torch.Tensor or numpy array, got {type(a).__name__}")


def gradient_flow(
    model: nn.Module, x: object, y: object, loss_fn: Optional[Callable[[Tensor, Tensor], Tensor]] = None
) -> dict[str, LayerFlow]:
    """Per-step gradient norms of every recurrent layer (and direction) of ``model`` on one batch.

    Args:
        model: a module whose recurrent submodules follow Contract P (``probes`` attribute).
            It runs in its current mode (train/eval); its parameters' ``.grad`` is left as is.
        x: the batch (B, T, F) (numpy or torch); y: its targets.
        loss_fn: ``loss_fn(model(x), y) -> scalar``. If None: the loss the model was compiled
            with (rnnkit ``Model``/``Sequential``), else ``default_loss`` (MSE or cross-entropy).
    Returns:
        {key: LayerFlow} in call order; key is the layer name, with ":backward" for a reverse
        direction and "#2", "#3" when one layer ran several times.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"Argument `model` must be a torch.nn.Module, got {type(model).__name__}")
    modules = probed_modules(model)
    if not modules:
        raise ValueError(
            "Argument `model` has no recurrent layer that reports gradient flow (no submodule with a `probes` attribute)"
        )
    params = [p for p in model.parameters()]
    dtype = params[0].dtype if params else torch.get_default_dtype()
    x = _as_tensor(x, "x")
    x = x.to(dtype) if x.dtype.is_floating_point else x
    y = _as_tensor(y, "y")
    y = y.to(dtype) if y.dtype.is_floating_point else y
    loss_fn = loss_fn or compiled_loss(model) or default_loss
    saved = [m.probes for m in modules]
    records: list[dict] = []
    try:
        for m in modules:
            m.probes = records
        with torch.enable_grad():
            out = model(x)
            if isinstance(out, (tuple, list)):
                out = out[0]
            loss = loss_fn(out, y)
            probes = [r["probe"] for r in records]
            if not probes:
                raise ValueError("The model ran no recurrent layer with a probe; is the recurrent layer bypassed?")
            grads = torch.autograd.grad(loss, probes, allow_unused=True)
    finally:
        for m, s in zip(modules, saved):
            m.probes = s
    result: dict[str, LayerFlow] = {}
    kinds = _cell_kinds(modules)
    for r, g in zip(records, grads):
        T, n_state = r["probe"].shape
        g = torch.zeros(T, n_state) if g is None else g.detach().to("cpu", torch.float64)
        key = r["layer"] + (":backward" if r["direction"] == "backward" else "")
        base, n = key, 1
        while key in result:
            n += 1
            key = f"{base}#{n}"
        result[key] = LayerFlow(r["layer"], r["direction"], g[:, 0].numpy(), g[:, 1].numpy() if n_state > 1 else None,
                                kinds.get(r["layer"]))
    return result
