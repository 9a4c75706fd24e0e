"""Truncated BPTT in ``fit``: state carried (detached) between windows of a batch.

Recurrent layers follow Contract S:
    layer.carry_state: bool   when ``stateful or carry_state``, the layer starts from
                              ``layer.states`` (detached) if set with a matching batch size,
                              and stores its final state there
    layer.reset_states()      clears ``layer.states``

``fit(tbptt=k)`` turns ``carry_state`` on for every such submodule, resets the
non-stateful ones at each new batch, and restores the flags (and resets) when the
epoch's training batches end, so validation and ``predict`` run from zero states.
Stateful layers are never reset by fit: they carry across batches, as in Keras;
pass ``shuffle=False`` and a batch size that divides the data for that to mean
anything (fit does not check this).
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from typing import Iterator

from torch import nn


def recurrent_modules(model: nn.Module) -> list[nn.Module]:
    """Submodules that follow Contract S (have ``carry_state`` and ``reset_states``)."""
    return [m for m in model.modules() if hasattr(m, "carry_state") and callable(getattr(m, "reset_states", None))]


def reset_states(modules: list[nn.Module], include_stateful: bool = False) -> None:
    for m in modules:
        if include_stateful or not getattr(m, "stateful", False):
            m.reset_states()


@contextmanager
def carrying_state(model: nn.Module) -> Iterator[list[nn.Module]]:
    """Turn ``carry_state`` on in every recurrent submodule; restore and reset on exit."""
    modules = recurrent_modules(model)
    if not modules:
        raise ValueError(
            "fit(tbptt=k) needs recurrent layers that can carry their state between windows "
            "(attributes `carry_state` and `reset_states()`); this model has none"
        )
    if any(getattr(m, "go_backwards", False) for m in modules):
        warnings.warn(
            "fit(tbptt=k) with a backward-running layer (go_backwards or Bidirectional): its state is carried "
            "from window to window in forward order, so it does not see the future beyond its window",
            stacklevel=4,
        )
    saved = [m.carry_state for m in modules]
    for m in modules:
        m.carry_state = True
    try:
        yield modules
    finally:
        for m, flag in zip(modules, saved):
            m.carry_state = flag
        reset_states(modules)


def windows(T: int, k: int) -> list[tuple[int, int]]:
    """[start, stop) of each window of at most ``k`` steps over ``T`` steps."""
    return [(s, min(s + k, T)) for s in range(0, T, k)]


def check_tbptt(tbptt: object) -> None:
    if tbptt is not None and (isinstance(tbptt, bool) or not isinstance(tbptt, int) or tbptt < 1):
        raise ValueError(f"Received an invalid value for argument `tbptt`, expected a positive integer (window length) or None, got {tbptt!r}")
