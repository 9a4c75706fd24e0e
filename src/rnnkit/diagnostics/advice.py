"""Read a gradient-flow measurement and say what is wrong and what to try.

The ratio r = ||dL/ds_first|| / ||dL/ds_last|| (processing order: h_1 against h_T for a
forward layer) measures how much error signal crosses the whole sequence. A ratio far
below 1 means the early steps learn nothing from the loss (vanishing); far above 1 means
the gradient grows as it travels back (exploding through time).
"""

from __future__ import annotations

import math
import warnings
from typing import NamedTuple, Optional

from .flow import LayerFlow

VANISH_BELOW = 1e-6
EXPLODE_ABOVE = 1e6


# What to try, by cell kind: a plain RNN needs another cell or init; a gated cell needs its gates open.
VANISH_ADVICE = {
    "": "try LSTM/GRU, identity init (IRNN), or shorter sequences",
    "rnn": "try LSTM/GRU, identity init (IRNN), or shorter sequences",
    "lstm": "the forget gates are closing the cell path: train longer, keep unit_forget_bias=True or raise "
            "the forget-gate bias, or use shorter sequences",
    "gru": "the update gates are closing the path: train longer, start with a positive update-gate bias, "
           "or use shorter sequences",
}


class VanishingGradientWarning(UserWarning):
    """The error signal reaching the start of a sequence is negligible."""


class ExplodingGradientWarning(UserWarning):
    """The error signal grows as it travels back through time."""


def flow_ratio(flow: LayerFlow) -> float:
    """||dL/dh_first|| / ||dL/dh_last|| in processing order; nan if undefined.

    For LSTM, h_1 receives its gradient through c as well (dL/dh_1 = dL/dh_2 dh_2/dh_1 with
    dh_2/dh_1 including the path through c_2), so h alone measures the whole flow.
    """
    return flow.ratio("h")


def _ratio_text(flow: LayerFlow, value: float) -> str:
    T = len(flow.h)
    first, last = (1, T) if flow.direction == "forward" else (T, 1)
    return f"||dL/dh_{first}||/||dL/dh_{last}|| = {value:.1e} over T={T} steps"


class Finding(NamedTuple):
    key: str
    category: type
    ratio: float
    message: str


def diagnose_flow(
    flows: dict[str, LayerFlow], vanish_below: float = VANISH_BELOW, explode_above: float = EXPLODE_ABOVE
) -> list[Finding]:
    """A ``Finding`` for every layer whose flow ratio lies outside [vanish_below, explode_above]."""
    found: list[Finding] = []
    for key, flow in flows.items():
        r = flow_ratio(flow)
        if math.isnan(r) or len(flow.h) < 2:
            continue
        if r < vanish_below:
            found.append(Finding(key, VanishingGradientWarning, r,
                          f"gradients vanish in layer '{key}': {_ratio_text(flow, r)}; the start of the sequence "
                          f"gets almost no learning signal ({VANISH_ADVICE.get(flow.cell or '', VANISH_ADVICE[''])})"))
        elif r > explode_above:
            found.append(Finding(key, ExplodingGradientWarning, r,
                          f"gradients explode through time in layer '{key}': {_ratio_text(flow, r)} "
                          "(try clipnorm=1.0, a smaller recurrent init such as orthogonal, or LSTM/GRU)"))
    return found


def warn_flow(
    flows: dict[str, LayerFlow], vanish_below: float = VANISH_BELOW, explode_above: float = EXPLODE_ABOVE,
    prefix: Optional[str] = None, stacklevel: int = 2,
) -> list[str]:
    """Issue ``diagnose_flow``'s findings as warnings; returns their messages."""
    messages = []
    for finding in diagnose_flow(flows, vanish_below, explode_above):
        text = f"{prefix}: {finding.message}" if prefix else finding.message
        warnings.warn(text, finding.category, stacklevel=stacklevel + 1)
        messages.append(text)
    return messages
